//! `custos scenario mix`: hides scenarios inside background traffic, so detection can be
//! measured where abuse is rare — a few lines among millions of ordinary ones.
//!
//! Each scenario's own ids (the `id` of its staff, subjects, cases and accesses) get the
//! prefix `m<N>-`, N its position on the command line from 1, wherever they appear as a value
//! (actors, assignees, approvers, case and access references); personal data values are left
//! as they are. Every time in a scenario can be moved by whole days, or by whole weeks so that it
//! starts in a given week (scenarios written for different dates then all land inside the
//! background's period, on their own weekdays and local hours). The lines are then merged
//! by `at` into the background, which is read as a stream and never held in memory. A line
//! without `at` (a definition) goes just before its scenario's next timed line.
//!
//! The scenarios' `# expect-alert:` headers are carried over with the prefixed actor, so
//! `custos scenario run` and the tests can check the mix. File-wide expectations
//! (`# expect-max-severity`, `# expect-all-allowed`) do not hold for a mix and are dropped.
//!
//! Refused, naming the file and line: a scenario line that is not a JSON object, times that
//! go backwards, and an id a scenario defines that the background defines too.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;

/// Largest scenario file mixed in (the scenarios are held in memory; the background is not).
pub const MIX_SCENARIO_BYTES_MAX: u64 = 64 << 20;
/// Most days a scenario's times may be moved, either way.
pub const SHIFT_DAYS_MAX: i64 = 36_600;

#[derive(Debug, Clone, clap::Args)]
pub struct MixArgs {
    /// Background traffic to mix into (e.g. from `custos scenario generate`), read as a stream.
    #[arg(long)]
    pub background: PathBuf,
    /// Scenario files to hide in it; the ids of the N-th get the prefix `m<N>-`.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Move every time in the scenarios by this many days (a multiple of 7 keeps weekdays).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, conflicts_with = "start_week")]
    pub shift_days: i64,
    /// Move each scenario by whole weeks so that its first timed line falls in the seven days
    /// from this date (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub start_week: Option<NaiveDate>,
    /// Where to write the mix [default: standard output].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One scenario line ready to merge: when it goes, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Timed {
    at: DateTime<Utc>,
    text: String,
}

/// A scenario rewritten for the mix.
#[derive(Debug, Default)]
struct Rewritten {
    headers: Vec<String>,
    lines: Vec<Timed>,
    ids: HashSet<String>,
}

pub fn run(args: &MixArgs) -> anyhow::Result<()> {
    if args.shift_days.abs() > SHIFT_DAYS_MAX {
        bail!("--shift-days {}: at most {SHIFT_DAYS_MAX} days either way", args.shift_days);
    }
    let placement = match args.start_week {
        Some(week) => Placement::Week(week),
        None => Placement::Shift(TimeDelta::days(args.shift_days)),
    };
    let mut headers = Vec::new();
    let mut lines = Vec::new();
    let mut defined: HashSet<String> = HashSet::new();
    for (position, path) in args.scenarios.iter().enumerate() {
        let size = std::fs::metadata(path).with_context(|| format!("failed to read {}", path.display()))?.len();
        if size > MIX_SCENARIO_BYTES_MAX {
            bail!("{}: {size} bytes; a scenario mixed in is at most {MIX_SCENARIO_BYTES_MAX}", path.display());
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        let rewritten = rewrite(path, &text, &format!("m{}-", position + 1), placement)?;
        headers.push(format!("# from {} (ids prefixed m{}-)", path.display(), position + 1));
        headers.extend(rewritten.headers);
        lines.extend(rewritten.lines);
        defined.extend(rewritten.ids);
    }
    // Stable: lines at the same time keep their file order, and earlier files go first.
    lines.sort_by_key(|line| line.at);
    let background = std::fs::File::open(&args.background).with_context(|| format!("failed to open {}", args.background.display()))?;
    let background = std::io::BufReader::with_capacity(1 << 16, background);
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("failed to create {}", path.display()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
            merge(&args.background, background, &headers, lines, &defined, &mut out)?;
            let file = out.into_inner().map_err(|error| error.into_error()).with_context(|| format!("failed to write {}", path.display()))?;
            file.sync_all().with_context(|| format!("failed to write {}", path.display()))?;
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            merge(&args.background, background, &headers, lines, &defined, &mut out)?;
            out.flush().context("failed to write standard output")?;
        }
    }
    Ok(())
}

/// Where a scenario's times go.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// Every time moves by this much.
    Shift(TimeDelta),
    /// Every time moves by whole weeks, so that the first `at` falls in the seven days from
    /// this date.
    Week(NaiveDate),
}

/// Prefixes the ids `text` defines, moves its times, and gives each line the time it goes at.
fn rewrite(path: &Path, text: &str, prefix: &str, placement: Placement) -> anyhow::Result<Rewritten> {
    let mut parsed = Vec::new();
    let mut ids = HashSet::new();
    let mut headers = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Some(expectation) = comment.trim().strip_prefix("expect-alert:") {
                headers.push((number, expectation.trim().to_owned()));
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(trimmed).with_context(|| format!("{}:{number}: not a JSON object", path.display()))?;
        let Value::Object(object) = &value else { bail!("{}:{number}: not a JSON object", path.display()) };
        let defines = matches!(object.get("op").and_then(Value::as_str), Some("staff" | "subject" | "case" | "access"));
        if defines && let Some(Value::String(id)) = object.get("id") {
            ids.insert(id.clone());
        }
        parsed.push((number, value));
    }
    let shift = match placement {
        Placement::Shift(shift) => shift,
        Placement::Week(week) => {
            let first = parsed.iter().find_map(|(_, value)| value.get("at").and_then(Value::as_str));
            match first.map(DateTime::parse_from_rfc3339) {
                Some(Ok(first)) => {
                    let days = (week - first.to_utc().date_naive()).num_days();
                    TimeDelta::days(7 * days.div_euclid(7) + if days.rem_euclid(7) == 0 { 0 } else { 7 })
                }
                Some(Err(error)) => bail!("{}: field at: not an RFC 3339 time: {error}", path.display()),
                None => TimeDelta::zero(),
            }
        }
    };
    if shift.num_days().abs() > SHIFT_DAYS_MAX {
        bail!("{}: moving it to the week asked is {} days; at most {SHIFT_DAYS_MAX}", path.display(), shift.num_days());
    }
    let mut rewritten = Rewritten::default();
    for (number, expectation) in headers {
        let mut words = Vec::new();
        for word in expectation.split_whitespace() {
            match word.strip_prefix("actor=") {
                Some(actor) if ids.contains(actor) => words.push(format!("actor={prefix}{actor}")),
                Some(actor) => bail!("{}:{number}: expect-alert names actor {actor:?}, which the scenario does not define", path.display()),
                None => words.push(word.to_owned()),
            }
        }
        rewritten.headers.push(format!("# expect-alert: {}", words.join(" ")));
    }
    // A definition without `at` goes with the next timed line; trailing ones with the last.
    let mut untimed: Vec<String> = Vec::new();
    let mut last: Option<DateTime<Utc>> = None;
    for (number, mut value) in parsed {
        rename(&mut value, &ids, prefix, shift, false).with_context(|| format!("{}:{number}", path.display()))?;
        let text = value.to_string();
        match value.get("at").and_then(Value::as_str).map(DateTime::parse_from_rfc3339) {
            Some(Ok(at)) => {
                let at = at.to_utc();
                if last.is_some_and(|last| at < last) {
                    bail!("{}:{number}: field at: {at} is before the line above it", path.display());
                }
                last = Some(at);
                rewritten.lines.extend(untimed.drain(..).map(|text| Timed { at, text }));
                rewritten.lines.push(Timed { at, text });
            }
            Some(Err(error)) => bail!("{}:{number}: field at: not an RFC 3339 time: {error}", path.display()),
            None => untimed.push(text),
        }
    }
    let at = last.unwrap_or(DateTime::<Utc>::MIN_UTC);
    rewritten.lines.extend(untimed.into_iter().map(|text| Timed { at, text }));
    rewritten.ids = ids.into_iter().map(|id| format!("{prefix}{id}")).collect();
    Ok(rewritten)
}

/// Prefixes every string equal to one of `ids` (outside personal data `values`) and moves
/// every RFC 3339 time by `shift`.
fn rename(value: &mut Value, ids: &HashSet<String>, prefix: &str, shift: TimeDelta, in_values: bool) -> anyhow::Result<()> {
    match value {
        Value::String(text) => {
            if !in_values && ids.contains(text.as_str()) {
                *text = format!("{prefix}{text}");
            } else if !shift.is_zero()
                && let Ok(at) = DateTime::parse_from_rfc3339(text)
            {
                let moved = at.to_utc().checked_add_signed(shift).with_context(|| format!("time {text} moved out of range"))?;
                *text = moved.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            }
        }
        Value::Array(items) => {
            for item in items {
                rename(item, ids, prefix, shift, in_values)?;
            }
        }
        Value::Object(object) => {
            for (key, item) in object.iter_mut() {
                rename(item, ids, prefix, shift, in_values || key == "values")?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// The part of a background line the merge reads.
#[derive(serde::Deserialize)]
struct BackgroundLine {
    op: Option<String>,
    id: Option<String>,
    at: Option<String>,
}

/// Writes the headers, then the background with the scenario lines merged in by time.
fn merge(
    path: &Path,
    mut background: impl BufRead,
    headers: &[String],
    lines: Vec<Timed>,
    defined: &HashSet<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let write_failed = || "failed to write the mix";
    writeln!(out, "# custos scenario mix: {} scenario line(s) merged into {}", lines.len(), path.display()).with_context(write_failed)?;
    for header in headers {
        writeln!(out, "{header}").with_context(write_failed)?;
    }
    let mut pending = lines.into_iter().peekable();
    let mut buffer = Vec::new();
    let mut number = 0usize;
    let mut last: Option<DateTime<Utc>> = None;
    loop {
        number += 1;
        let text = match crate::scenario::read_line(&mut background, &mut buffer) {
            Ok(Some(text)) => text,
            Ok(None) => break,
            Err(message) => bail!("{}:{number}: {message}", path.display()),
        };
        let trimmed = text.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            let line: BackgroundLine =
                serde_json::from_str(trimmed).with_context(|| format!("{}:{number}: not a scenario line", path.display()))?;
            if let (Some("staff" | "subject" | "case" | "access"), Some(id)) = (line.op.as_deref(), &line.id)
                && defined.contains(id)
            {
                bail!("{}:{number}: id {id:?} is defined by the background and by a scenario mixed in", path.display());
            }
            if let Some(at) = &line.at {
                let at = DateTime::parse_from_rfc3339(at)
                    .with_context(|| format!("{}:{number}: field at: not an RFC 3339 time", path.display()))?
                    .to_utc();
                if last.is_some_and(|last| at < last) {
                    bail!("{}:{number}: field at: {at} is before the line above it", path.display());
                }
                last = Some(at);
                while let Some(line) = pending.next_if(|line| line.at <= at) {
                    writeln!(out, "{}", line.text).with_context(write_failed)?;
                }
            }
        }
        out.write_all(&buffer).with_context(write_failed)?;
        out.write_all(b"\n").with_context(write_failed)?;
    }
    for line in pending {
        writeln!(out, "{}", line.text).with_context(write_failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed(background: &str, scenarios: &[&str], shift_days: i64) -> anyhow::Result<String> {
        placed(background, scenarios, Placement::Shift(TimeDelta::days(shift_days)))
    }

    fn placed(background: &str, scenarios: &[&str], placement: Placement) -> anyhow::Result<String> {
        let mut headers = Vec::new();
        let mut lines = Vec::new();
        let mut defined = HashSet::new();
        for (position, text) in scenarios.iter().enumerate() {
            let rewritten = rewrite(Path::new("s.jsonl"), text, &format!("m{}-", position + 1), placement)?;
            headers.extend(rewritten.headers);
            lines.extend(rewritten.lines);
            defined.extend(rewritten.ids);
        }
        lines.sort_by_key(|line| line.at);
        let mut out = Vec::new();
        merge(Path::new("bg.jsonl"), background.as_bytes(), &headers, lines, &defined, &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    const SCENARIO: &str = r#"# expect-alert: actor=s-1 severity>=medium
{"op":"staff","id":"s-1","roles":["engineer"]}
{"op":"subject","id":"u-1","region":"us","values":{"email":["s-1@example.com"],"location":[{"value":"1,2","observed_at":"2026-03-02T10:00:00Z"}]}}
{"op":"access","at":"2026-03-02T11:00:00Z","id":"a-1","actor":"s-1","subjects":["u-1"],"purpose":"support"}
{"op":"approve","at":"2026-03-02T12:30:00Z","access":"a-1","approver":"s-1","decision":"approve"}
"#;

    const BACKGROUND: &str = r#"# generated
{"op":"staff","id":"s-us-1","roles":["support_agent"]}
{"op":"access","at":"2026-03-02T10:00:00Z","id":"g-1","actor":"s-us-1","subjects":["u-9"],"purpose":"support"}
{"op":"access","at":"2026-03-02T12:00:00Z","id":"g-2","actor":"s-us-1","subjects":["u-9"],"purpose":"support"}
{"op":"access","at":"2026-03-02T13:00:00Z","id":"g-3","actor":"s-us-1","subjects":["u-9"],"purpose":"support"}
"#;

    #[test]
    fn scenario_lines_go_in_by_time_with_their_ids_prefixed() {
        let out = mixed(BACKGROUND, &[SCENARIO], 0).expect("mix");
        let lines: Vec<&str> = out.lines().filter(|line| !line.starts_with('#')).collect();
        let ids: Vec<String> = lines
            .iter()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("json");
                value.get("id").or(value.get("access")).and_then(Value::as_str).expect("id").to_owned()
            })
            .collect();
        assert_eq!(ids, ["s-us-1", "g-1", "m1-s-1", "m1-u-1", "m1-a-1", "g-2", "m1-a-1", "g-3"]);
        assert!(out.contains("# expect-alert: actor=m1-s-1 severity>=medium"), "{out}");
        assert!(out.contains(r#""approver":"m1-s-1""#), "{out}");
        assert!(out.contains(r#""subjects":["m1-u-1"]"#), "{out}");
        assert!(out.contains("s-1@example.com"), "personal data is not renamed: {out}");
    }

    #[test]
    fn times_move_by_whole_days_everywhere() {
        let out = mixed("", &[SCENARIO], 7).expect("mix");
        assert!(out.contains(r#""at":"2026-03-09T11:00:00Z""#), "{out}");
        assert!(out.contains(r#""observed_at":"2026-03-09T10:00:00Z""#), "{out}");
        assert!(!out.contains("2026-03-02"), "{out}");
    }

    #[test]
    fn a_start_week_moves_each_scenario_by_whole_weeks_into_it() {
        // 2026-03-02 is a Monday; the week asked starts on Wednesday 2026-04-01, so the
        // scenario moves five weeks, to Monday 2026-04-06, keeping its weekday and hour.
        let week = NaiveDate::from_ymd_opt(2026, 4, 1).expect("date");
        let out = placed("", &[SCENARIO], Placement::Week(week)).expect("mix");
        assert!(out.contains(r#""at":"2026-04-06T11:00:00Z""#), "{out}");
        let early = SCENARIO.replace("2026-03-02", "2025-12-29");
        let out = placed("", &[&early], Placement::Week(week)).expect("mix");
        assert!(out.contains(r#""at":"2026-04-06T11:00:00Z""#), "each scenario is moved by its own weeks: {out}");
        let same = placed("", &[SCENARIO], Placement::Week(NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"))).expect("mix");
        assert!(same.contains(r#""at":"2026-03-02T11:00:00Z""#), "already in the week: not moved: {same}");
    }

    #[test]
    fn two_scenarios_get_their_own_prefixes() {
        let out = mixed(BACKGROUND, &[SCENARIO, SCENARIO], 0).expect("mix");
        assert!(out.contains(r#""id":"m1-a-1""#) && out.contains(r#""id":"m2-a-1""#), "{out}");
        assert!(out.contains("actor=m2-s-1"), "{out}");
    }

    #[test]
    fn refusals_name_the_file_and_line() {
        let collision = BACKGROUND.replace("g-3", "m1-a-1");
        let error = mixed(&collision, &[SCENARIO], 0).expect_err("collision");
        assert!(format!("{error:#}").contains("bg.jsonl:5: id \"m1-a-1\""), "{error:#}");
        let backwards = SCENARIO.replace("2026-03-02T12:30:00Z", "2026-03-01T00:00:00Z");
        let error = mixed(BACKGROUND, &[&backwards], 0).expect_err("backwards");
        assert!(format!("{error:#}").contains("s.jsonl:5: field at"), "{error:#}");
        let error = mixed(BACKGROUND, &["{\"op\":\"staff\""], 0).expect_err("not json");
        assert!(format!("{error:#}").contains("s.jsonl:1"), "{error:#}");
        let unknown_actor = SCENARIO.replace("actor=s-1", "actor=s-404");
        let error = mixed(BACKGROUND, &[&unknown_actor], 0).expect_err("unknown actor");
        assert!(format!("{error:#}").contains("s-404"), "{error:#}");
        let background_backwards = BACKGROUND.replace("13:00", "09:00");
        let error = mixed(&background_backwards, &[SCENARIO], 0).expect_err("background backwards");
        assert!(format!("{error:#}").contains("bg.jsonl:5"), "{error:#}");
    }
}
