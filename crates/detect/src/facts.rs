//! What the detector knows besides the log: cases (the explanations), and staff shifts, HR
//! facts and on-call periods. The caller loads them (from the directory) and hands them in;
//! this crate never reads storage.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

/// A case as the detector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    pub id: String,
    pub purpose: String,
    pub open: bool,
    pub assignees: BTreeSet<String>,
    pub subjects: BTreeSet<String>,
    /// The subject who asked for the case (opened the ticket), if one did.
    pub requested_by: Option<String>,
    pub legal_process_validated: bool,
    pub destinations: Vec<String>,
    pub created_at_ms: i64,
    /// Changes whenever the case changes: new assignees, subjects, status. "New case
    /// activity" for the rules that ask whether a repeat look has a fresh reason.
    pub updated_at_ms: i64,
}

impl CaseFacts {
    /// Whether the case was already closed at `at_ms`. The directory keeps a case's status
    /// and its last change, not its history: a closed case was closed at or before its last
    /// change, so it is known closed at `at_ms` only when that change came no later. A case
    /// closed after the access (a ticket closed an hour after the last read, seen by a
    /// detector that lags or replays a stored log) still explains it.
    pub fn closed_by(&self, at_ms: i64) -> bool {
        !self.open && self.updated_at_ms <= at_ms
    }
}

/// Working hours in a time zone, as minutes after local midnight; `end` before `start`
/// crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftFacts {
    pub tz: Tz,
    pub start_minute: u16,
    pub end_minute: u16,
}

impl ShiftFacts {
    /// Parses `HH:MM` times and an IANA zone; `None` names nothing usable (no shift reasoning
    /// then, rather than a guess).
    pub fn parse(tz: &str, start: &str, end: &str) -> Option<ShiftFacts> {
        let minute = |text: &str| {
            let (hours, minutes) = text.split_once(':')?;
            let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
            (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
        };
        Some(ShiftFacts { tz: tz.parse().ok()?, start_minute: minute(start)?, end_minute: minute(end)? })
    }

    /// Whether `at_ms` falls inside the shift (start inclusive, end exclusive), local time.
    pub fn covers(&self, at_ms: i64) -> bool {
        let Some(at) = DateTime::<Utc>::from_timestamp_millis(at_ms) else { return false };
        let local = at.with_timezone(&self.tz);
        let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HrEventKind {
    DismissalNotice,
    Leaving,
    Travel,
    NewHire,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrFactFacts {
    pub at_ms: i64,
    pub event: HrEventKind,
    pub country: Option<String>,
    pub until_ms: Option<i64>,
}

/// A staff member as the detector sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaffFacts {
    pub id: String,
    pub shift: Option<ShiftFacts>,
    /// In time order.
    pub hr: Vec<HrFactFacts>,
    /// `(from_ms, until_ms)`, from inclusive, until exclusive.
    pub on_call: Vec<(i64, i64)>,
}

impl StaffFacts {
    /// Outside their shift and not on call. Someone without a shift is never off shift.
    pub fn off_shift(&self, at_ms: i64) -> bool {
        let Some(shift) = &self.shift else { return false };
        !shift.covers(at_ms) && !self.on_call_at(at_ms)
    }

    pub fn on_call_at(&self, at_ms: i64) -> bool {
        self.on_call.iter().any(|(from, until)| (*from..*until).contains(&at_ms))
    }

    /// When the latest dismissal notice or leaving date at or before `at_ms` was given.
    pub fn notice_since(&self, at_ms: i64) -> Option<i64> {
        self.hr
            .iter()
            .filter(|fact| matches!(fact.event, HrEventKind::DismissalNotice | HrEventKind::Leaving) && fact.at_ms <= at_ms)
            .map(|fact| fact.at_ms)
            .max()
    }

    /// The country of registered travel covering `at_ms`, if any.
    pub fn travelling_to(&self, at_ms: i64) -> Option<&str> {
        self.hr
            .iter()
            .filter(|fact| fact.event == HrEventKind::Travel && fact.at_ms <= at_ms && fact.until_ms.is_none_or(|until| at_ms < until))
            .find_map(|fact| fact.country.as_deref())
    }
}

/// Where rules look facts up.
pub trait Facts {
    fn case(&self, id: &str) -> Option<&CaseFacts>;
    fn staff(&self, id: &str) -> Option<&StaffFacts>;
}

/// Facts held in memory, shared cheaply between batches.
#[derive(Debug, Clone, Default)]
pub struct FactTable {
    pub cases: HashMap<String, Arc<CaseFacts>>,
    pub staff: HashMap<String, Arc<StaffFacts>>,
}

impl Facts for FactTable {
    fn case(&self, id: &str) -> Option<&CaseFacts> {
        self.cases.get(id).map(Arc::as_ref)
    }

    fn staff(&self, id: &str) -> Option<&StaffFacts> {
        self.staff.get(id).map(Arc::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).expect("time").timestamp_millis()
    }

    #[test]
    fn shifts_are_read_in_local_time_and_may_cross_midnight() {
        let day = ShiftFacts::parse("America/New_York", "08:00", "17:00").expect("shift");
        assert!(day.covers(ms("2026-03-02T13:00:00Z")), "08:00 in New York");
        assert!(!day.covers(ms("2026-03-02T07:00:00Z")), "02:00 in New York");
        let night = ShiftFacts::parse("Europe/Dublin", "22:00", "06:00").expect("shift");
        assert!(night.covers(ms("2026-01-10T23:30:00Z")));
        assert!(night.covers(ms("2026-01-10T05:59:00Z")));
        assert!(!night.covers(ms("2026-01-10T06:00:00Z")));
        assert_eq!(ShiftFacts::parse("Mars/Olympus", "08:00", "17:00"), None);
        assert_eq!(ShiftFacts::parse("UTC", "24:00", "17:00"), None);
    }

    #[test]
    fn on_call_covers_off_shift_and_facts_apply_from_their_time() {
        let staff = StaffFacts {
            id: "s-1".to_owned(),
            shift: ShiftFacts::parse("UTC", "09:00", "17:00"),
            hr: vec![
                HrFactFacts { at_ms: ms("2026-03-01T00:00:00Z"), event: HrEventKind::Travel, country: Some("FR".to_owned()), until_ms: Some(ms("2026-03-05T00:00:00Z")) },
                HrFactFacts { at_ms: ms("2026-03-10T00:00:00Z"), event: HrEventKind::DismissalNotice, country: None, until_ms: None },
            ],
            on_call: vec![(ms("2026-03-02T00:00:00Z"), ms("2026-03-02T06:00:00Z"))],
        };
        assert!(!staff.off_shift(ms("2026-03-02T03:00:00Z")), "on call");
        assert!(staff.off_shift(ms("2026-03-03T03:00:00Z")));
        assert_eq!(staff.travelling_to(ms("2026-03-04T00:00:00Z")), Some("FR"));
        assert_eq!(staff.travelling_to(ms("2026-03-05T00:00:00Z")), None);
        assert_eq!(staff.notice_since(ms("2026-03-09T00:00:00Z")), None);
        assert_eq!(staff.notice_since(ms("2026-03-11T00:00:00Z")), Some(ms("2026-03-10T00:00:00Z")));
    }
}
