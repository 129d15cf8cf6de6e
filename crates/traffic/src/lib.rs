//! Background traffic: a scenario file (shared/scenario-format.md) of ordinary, explained work
//! by a platform's staff — support tickets, tier-2 escalations and account recoveries, trust
//! and safety reports, fraud clusters, security incidents with on-call pages, legal and
//! emergency requests, data subject requests, the approvals the default policy asks for, new
//! hires — for `custos scenario run` to replay. It is the haystack detection is measured in:
//! nearly every access must be allowed, and nearly none should look like misuse.
//!
//! Deterministic: the same parameters give the same bytes (one seeded ChaCha8 stream, no
//! clock, no hash-map order). Streaming: lines are written as the simulated days pass, and
//! memory grows with the staff and subjects, not with the accesses (see `simulation`).
//! docs/scenarios.md ("Background traffic") describes what is generated and in what shares.

mod calendar;
mod numbers;
mod output;
mod simulation;
mod work;
mod world;

use std::io::{BufWriter, Write};

use chrono::{DateTime, NaiveDate, Utc};

pub use calendar::ACCESSES_PER_AGENT_DAY_MAX;

/// Fewest staff: one served region with its required roles and a few agents.
pub const STAFF_MIN: u32 = 10;
pub const STAFF_MAX: u32 = 10_000;
/// Fewest subjects: enough for every served region to have some without a protection label.
pub const SUBJECTS_MIN: u32 = 100;
pub const SUBJECTS_MAX: u32 = 1_000_000;
pub const ACCESSES_MAX: u64 = 10_000_000;
pub const DAYS_MAX: u32 = 730;
/// The first day when none is given: a Monday.
pub const START_DEFAULT: NaiveDate = match NaiveDate::from_ymd_opt(2026, 3, 2) {
    Some(date) => date,
    None => panic!("2026-03-02 is a date"),
};
/// Size of the output buffer, in bytes.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficParams {
    pub seed: u64,
    /// People on staff by the end of the period, new hires included ([`STAFF_MIN`] to
    /// [`STAFF_MAX`]).
    pub staff: u32,
    /// Platform users ([`SUBJECTS_MIN`] to [`SUBJECTS_MAX`]).
    pub subjects: u32,
    /// Access lines, exactly (1 to [`ACCESSES_MAX`]).
    pub accesses: u64,
    /// Calendar days the traffic spans; `None`: enough for about 20–40 accesses per agent
    /// per working day.
    pub days: Option<u32>,
    /// The first day (local date everywhere).
    pub start: NaiveDate,
}

impl TrafficParams {
    /// Parameters with the default days and start.
    pub fn new(seed: u64, staff: u32, subjects: u32, accesses: u64) -> Self {
        TrafficParams { seed, staff, subjects, accesses, days: None, start: START_DEFAULT }
    }
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficStats {
    /// Lines written, comments aside.
    pub lines: u64,
    pub regions: Vec<String>,
    pub staff: u32,
    pub new_hires: u64,
    pub subjects: u32,
    /// Subjects with a protection label (journalist, public official, activist, minor, staff).
    pub protected_subjects: u32,
    pub days: u32,
    pub accesses: u64,
    pub cases: u64,
    pub case_updates: u64,
    /// `approve` lines: accesses that waited for a privacy officer.
    pub approvals: u64,
    /// Accesses by staff outside the subject's region (each with the custodian's approval).
    pub cross_border_accesses: u64,
    pub on_call_periods: u64,
    /// Follow-ups and reviews dropped because their assignee had no slot for them in time.
    pub tasks_dropped: u64,
    /// Most lines held in memory waiting for their time: the streaming bound.
    pub pending_lines_max: u64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

/// Why no traffic was generated.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("accept {name} = {value}: {expected}")]
    Parameter { name: &'static str, value: u64, expected: String },
    #[error("write the scenario")]
    Write(#[source] std::io::Error),
}

/// Writes the traffic for `params` to `out`.
pub fn generate(params: &TrafficParams, out: &mut impl Write) -> Result<TrafficStats, TrafficError> {
    generate_with_progress(params, out, &mut |_| {})
}

/// [`generate`], calling `progress` with the number of accesses written so far after each
/// simulated day.
pub fn generate_with_progress(
    params: &TrafficParams,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<TrafficStats, TrafficError> {
    check_params(params)?;
    let mut rng = numbers::stream(params.seed);
    let mut world =
        world::World::build(params.seed, params.start, params.staff, params.subjects, &mut rng).map_err(|error| match error {
            world::WorldError::RegionWithoutOrdinarySubjects(region) => TrafficError::Parameter {
                name: "subjects",
                value: u64::from(params.subjects),
                expected: format!("more subjects: region {region} got none without a protection label"),
            },
        })?;
    let days = match params.days {
        Some(days) => days,
        None => default_days(&world, params)?,
    };
    if calendar::working_days(params.start, days) == 0 {
        return Err(TrafficError::Parameter {
            name: "days",
            value: u64::from(days),
            expected: format!("at least one working day (Monday to Friday) from {}", params.start),
        });
    }
    world.hire(days, &mut rng);
    let quotas = calendar::quotas(&world, params.accesses).map_err(|error| match error {
        calendar::QuotaError::TooDense { busiest } => TrafficError::Parameter {
            name: "days",
            value: u64::from(days),
            expected: format!(
                "more days: the busiest person would make {busiest} accesses in a day, more than {ACCESSES_PER_AGENT_DAY_MAX}; try {} days",
                (u64::from(days) * u64::from(busiest)).div_ceil(u64::from(ACCESSES_PER_AGENT_DAY_MAX))
            ),
        },
        calendar::QuotaError::NoWorkingDay => {
            TrafficError::Parameter { name: "days", value: u64::from(days), expected: "days on which someone works".to_owned() }
        }
    })?;
    let mut output = output::Output::new(BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, out), &world);
    let comment = format!(
        "Background traffic from `custos scenario generate --seed {} --staff {} --subjects {} --accesses {} --days {days} --start {}`:\n\
         ordinary, explained work by the staff of regions {} (docs/scenarios.md, \"Background traffic\").",
        params.seed,
        params.staff,
        params.subjects,
        params.accesses,
        params.start,
        world.regions.iter().map(|region| region.name).collect::<Vec<_>>().join(", "),
    );
    output.header(&comment).map_err(TrafficError::Write)?;
    let mut simulation = simulation::Simulation::new(&world, quotas, rng, output);
    simulation.run(progress).map_err(TrafficError::Write)?;
    let written = simulation.output.written;
    let counts = simulation.counts;
    let time = |at: Option<i64>| at.and_then(|at| DateTime::from_timestamp(at, 0));
    Ok(TrafficStats {
        lines: written.lines,
        regions: world.regions.iter().map(|region| region.name.to_owned()).collect(),
        staff: params.staff,
        new_hires: written.hires,
        subjects: params.subjects,
        protected_subjects: world.subjects.iter().filter(|subject| subject.label.is_some()).count() as u32,
        days,
        accesses: written.accesses,
        cases: written.cases,
        case_updates: written.case_updates,
        approvals: written.approvals,
        cross_border_accesses: counts.cross_border_accesses,
        on_call_periods: written.on_call,
        tasks_dropped: counts.tasks_dropped,
        pending_lines_max: counts.pending_lines_max,
        first_at: time(written.first_at),
        last_at: time(written.last_at),
    })
}

fn check_params(params: &TrafficParams) -> Result<(), TrafficError> {
    let range = |name: &'static str, value: u64, low: u64, high: u64| {
        if (low..=high).contains(&value) {
            Ok(())
        } else {
            Err(TrafficError::Parameter { name, value, expected: format!("from {low} to {high}") })
        }
    };
    range("staff", u64::from(params.staff), u64::from(STAFF_MIN), u64::from(STAFF_MAX))?;
    range("subjects", u64::from(params.subjects), u64::from(SUBJECTS_MIN), u64::from(SUBJECTS_MAX))?;
    range("accesses", params.accesses, 1, ACCESSES_MAX)?;
    if let Some(days) = params.days {
        range("days", u64::from(days), 1, u64::from(DAYS_MAX))?;
    }
    Ok(())
}

/// Enough working days for everyone to work at their own rate (20–40 accesses a day for
/// agents and analysts), as calendar days from the start.
fn default_days(world: &world::World, params: &TrafficParams) -> Result<u32, TrafficError> {
    let per_working_day: f64 = world.staff.iter().map(|member| member.rate).sum();
    let working = (params.accesses as f64 / per_working_day).ceil().max(1.0);
    let needed = (working * 7.0 / 5.0).ceil() as u64;
    if needed > u64::from(DAYS_MAX) {
        return Err(TrafficError::Parameter {
            name: "accesses",
            value: params.accesses,
            expected: format!(
                "at most what {} staff make in {DAYS_MAX} days at their usual pace (about {} accesses); add staff or give --days",
                params.staff,
                (per_working_day * f64::from(DAYS_MAX) * 5.0 / 7.0) as u64
            ),
        });
    }
    Ok(calendar::days_for_working(params.start, working as u32))
}
