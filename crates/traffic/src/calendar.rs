//! Days, shifts and volumes: which days are working days, where a local time falls in UTC,
//! and how many accesses each person makes on each day.
//!
//! Day `k` is the calendar date `start + k` in every time zone: a person's working day is
//! their local date, Monday to Friday. Volumes are steady: each person has a rate, the total
//! is split across people by rate × days worked, then across each person's days with a small
//! wobble (±15 %); new hires work at half pace their first week.

use chrono::{Datelike, Days, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;

use crate::numbers::apportion;
use crate::world::{World, hashed_unit};

/// Most accesses one person makes on one working day: about one every five minutes of an
/// eight-hour shift.
pub const ACCESSES_PER_AGENT_DAY_MAX: u32 = 100;
/// How far a day's volume wanders from the person's rate, either way.
const DAILY_WOBBLE: f64 = 0.15;
/// New hires work at this share of their rate during their first days.
const NEW_HIRE_PACE: f64 = 0.5;
const NEW_HIRE_SLOW_DAYS: u32 = 7;
/// Seed tweak for the volume wobble, so it draws apart from everything else.
const WOBBLE_STREAM: u64 = 0x766f_6c75_6d65;

pub(crate) fn date_of(start: NaiveDate, day: u32) -> NaiveDate {
    start + Days::new(u64::from(day))
}

pub(crate) fn is_working_day(start: NaiveDate, day: u32) -> bool {
    !matches!(date_of(start, day).weekday(), Weekday::Sat | Weekday::Sun)
}

pub(crate) fn working_days(start: NaiveDate, days: u32) -> u32 {
    (0..days).filter(|day| is_working_day(start, *day)).count() as u32
}

/// The fewest calendar days from `start` that hold `working` working days.
pub(crate) fn days_for_working(start: NaiveDate, working: u32) -> u32 {
    let mut days = 0;
    let mut found = 0;
    while found < working {
        if is_working_day(start, days) {
            found += 1;
        }
        days += 1;
    }
    days.max(1)
}

/// Seconds since the epoch of a local wall-clock time (minutes after midnight, may pass 24 h
/// into the next date) on a date in a zone. A time skipped by a daylight-saving change is
/// read an hour later; a repeated one as its first occurrence.
pub(crate) fn local_instant(time_zone: Tz, date: NaiveDate, minutes: u32) -> i64 {
    let date = date + Days::new(u64::from(minutes / (24 * 60)));
    let minutes = minutes % (24 * 60);
    // INVARIANT: minutes < 24 h here.
    let time = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).expect("minutes within a day");
    let local = date.and_time(time);
    match time_zone.from_local_datetime(&local).earliest() {
        Some(instant) => instant.timestamp(),
        None => time_zone
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| local.and_utc().timestamp(), |instant| instant.timestamp()),
    }
}

/// Whether `staff` is inside their shift at `at` (seconds): a working day on their local
/// calendar, on or after their first day, between shift start and end.
pub(crate) fn on_shift(world: &World, staff: u32, at: i64) -> bool {
    let member = &world.staff[staff as usize];
    let Some(utc) = chrono::DateTime::from_timestamp(at, 0) else { return false };
    let local = utc.with_timezone(&member.time_zone);
    let date = local.date_naive();
    let Ok(day) = u32::try_from((date - world.start).num_days()) else { return false };
    let minutes = local.hour_minute();
    day >= member.hire_day
        && is_working_day(world.start, day)
        && minutes >= member.shift_start_minutes
        && minutes < member.shift_end_minutes
}

trait HourMinute {
    fn hour_minute(&self) -> u32;
}

impl<T: chrono::Timelike> HourMinute for T {
    fn hour_minute(&self) -> u32 {
        self.hour() * 60 + self.minute()
    }
}

/// Why volumes could not be planned.
pub(crate) enum QuotaError {
    /// Some person would exceed [`ACCESSES_PER_AGENT_DAY_MAX`] on some day.
    TooDense { busiest: u32 },
    /// No one works on any of the days.
    NoWorkingDay,
}

/// Accesses per person per day (index: staff, then day), adding up to `accesses` exactly.
pub(crate) fn quotas(world: &World, accesses: u64) -> Result<Vec<Vec<u16>>, QuotaError> {
    let seed = world.seed ^ WOBBLE_STREAM;
    let day_weights = |staff: usize| -> Vec<f64> {
        let member = &world.staff[staff];
        (0..world.days)
            .map(|day| {
                if member.rate <= 0.0 || day < member.hire_day || !is_working_day(world.start, day) {
                    return 0.0;
                }
                let pace = if member.new_hire && day < member.hire_day + NEW_HIRE_SLOW_DAYS { NEW_HIRE_PACE } else { 1.0 };
                let wobble = 1.0 + DAILY_WOBBLE * (2.0 * hashed_unit(seed, staff as u64, u64::from(day)) - 1.0);
                pace * wobble
            })
            .collect()
    };
    let staff_weights: Vec<f64> =
        (0..world.staff.len()).map(|staff| world.staff[staff].rate * day_weights(staff).iter().sum::<f64>()).collect();
    if staff_weights.iter().all(|weight| *weight <= 0.0) {
        return Err(QuotaError::NoWorkingDay);
    }
    let totals = apportion(accesses, &staff_weights);
    let mut quotas = Vec::with_capacity(world.staff.len());
    let mut busiest = 0;
    for (staff, total) in totals.into_iter().enumerate() {
        let days = apportion(total, &day_weights(staff));
        busiest = busiest.max(days.iter().copied().max().unwrap_or(0));
        quotas.push(days.into_iter().map(|count| u16::try_from(count).unwrap_or(u16::MAX)).collect());
    }
    if busiest > u64::from(ACCESSES_PER_AGENT_DAY_MAX) {
        return Err(QuotaError::TooDense { busiest: busiest as u32 });
    }
    Ok(quotas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_days_skip_weekends() {
        let monday = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(working_days(monday, 7), 5);
        assert_eq!(working_days(monday, 14), 10);
        assert_eq!(days_for_working(monday, 5), 5);
        assert_eq!(days_for_working(monday, 6), 8);
        let saturday = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(working_days(saturday, 2), 0);
        assert_eq!(days_for_working(saturday, 1), 3);
    }

    #[test]
    fn local_times_follow_daylight_saving() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        // Winter: UTC-5; after 8 March 2026: UTC-4.
        let winter = local_instant(new_york, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), 9 * 60);
        assert_eq!(chrono::DateTime::from_timestamp(winter, 0).unwrap().to_rfc3339(), "2026-03-02T14:00:00+00:00");
        let summer = local_instant(new_york, NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(), 9 * 60);
        assert_eq!(chrono::DateTime::from_timestamp(summer, 0).unwrap().to_rfc3339(), "2026-03-09T13:00:00+00:00");
        // 02:30 does not exist on 8 March in New York: read as 03:30 EDT.
        let skipped = local_instant(new_york, NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(), 2 * 60 + 30);
        assert_eq!(chrono::DateTime::from_timestamp(skipped, 0).unwrap().to_rfc3339(), "2026-03-08T07:30:00+00:00");
    }
}
