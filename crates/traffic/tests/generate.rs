//! The generator's promises at its API: the same parameters give the same bytes and another
//! seed other bytes; exactly the accesses asked for; memory bounded by the staff, not by the
//! accesses; bad parameters refused by name.

use chrono::NaiveDate;
use traffic::{ACCESSES_PER_AGENT_DAY_MAX, TrafficError, TrafficParams, TrafficStats, generate};

fn bytes(params: &TrafficParams) -> (Vec<u8>, TrafficStats) {
    let mut out = Vec::new();
    let stats = generate(params, &mut out).expect("traffic generates");
    (out, stats)
}

fn refusal(params: &TrafficParams) -> (&'static str, String) {
    match generate(params, &mut Vec::new()) {
        Err(TrafficError::Parameter { name, value, expected }) => {
            let message = TrafficError::Parameter { name, value, expected }.to_string();
            (name, message)
        }
        other => panic!("{params:?} was not refused: {other:?}"),
    }
}

#[test]
fn the_same_parameters_give_the_same_bytes_and_another_seed_others() {
    let params = TrafficParams::new(42, 40, 1_000, 3_000);
    let (first, stats) = bytes(&params);
    let (second, _) = bytes(&params);
    assert_eq!(first, second);
    let (other, _) = bytes(&TrafficParams { seed: 43, ..params.clone() });
    assert_ne!(first, other);
    let text = String::from_utf8(first).unwrap();
    let lines = text.lines().filter(|line| !line.starts_with('#')).count() as u64;
    assert_eq!(lines, stats.lines);
    let accesses = text.lines().filter(|line| line.starts_with("{\"op\":\"access\"")).count() as u64;
    assert_eq!(accesses, 3_000);
}

#[test]
fn every_line_is_a_known_op_in_time_order() {
    let params =
        TrafficParams { days: Some(12), start: NaiveDate::from_ymd_opt(2026, 10, 21).unwrap(), ..TrafficParams::new(5, 90, 4_000, 8_000) };
    let (out, stats) = bytes(&params);
    let text = String::from_utf8(out).unwrap();
    let mut last = String::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}"));
        let op = value["op"].as_str().unwrap();
        assert!(["staff", "subject", "case", "case_update", "hr", "on_call", "access", "approve"].contains(&op), "{line}");
        if let Some(at) = value["at"].as_str() {
            // RFC 3339 in UTC with a fixed width: text order is time order.
            assert_eq!(at.len(), 20, "{line}");
            assert!(at >= last.as_str(), "{at} after {last}");
            last = at.to_owned();
        }
    }
    assert_eq!(stats.days, 12);
    assert!(last.as_str() < "2026-11-03", "{last}");
}

#[test]
fn memory_follows_the_staff_not_the_accesses() {
    let small = bytes(&TrafficParams::new(9, 30, 2_000, 5_000)).1;
    let large = bytes(&TrafficParams::new(9, 30, 2_000, 100_000)).1;
    assert!(large.days >= 15 * small.days, "{} and {} days", small.days, large.days);
    // Twenty times the accesses over twenty times the days: the lines waiting in memory stay
    // about two days' worth.
    assert!(large.pending_lines_max < small.pending_lines_max * 2, "{} then {}", small.pending_lines_max, large.pending_lines_max);
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let base = TrafficParams::new(1, 60, 2_000, 1_000);
    for (params, name) in [
        (TrafficParams { staff: 0, ..base.clone() }, "staff"),
        (TrafficParams { staff: 9, ..base.clone() }, "staff"),
        (TrafficParams { staff: 10_001, ..base.clone() }, "staff"),
        (TrafficParams { subjects: 0, ..base.clone() }, "subjects"),
        (TrafficParams { subjects: 1_000_001, ..base.clone() }, "subjects"),
        (TrafficParams { accesses: 0, ..base.clone() }, "accesses"),
        (TrafficParams { accesses: 10_000_001, ..base.clone() }, "accesses"),
        (TrafficParams { days: Some(0), ..base.clone() }, "days"),
        (TrafficParams { days: Some(731), ..base.clone() }, "days"),
    ] {
        assert_eq!(refusal(&params).0, name, "{params:?}");
    }
    // A weekend holds no working day.
    let saturday = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
    let (name, message) = refusal(&TrafficParams { days: Some(2), start: saturday, ..base.clone() });
    assert_eq!(name, "days");
    assert!(message.contains("working day"), "{message}");
    // Too much work for the days given: the message says how many would do.
    let (name, message) = refusal(&TrafficParams { days: Some(1), accesses: 100_000, ..base.clone() });
    assert_eq!(name, "days");
    assert!(message.contains(&ACCESSES_PER_AGENT_DAY_MAX.to_string()) && message.contains("try"), "{message}");
    // Too much work for the staff in the longest period.
    let (name, _) = refusal(&TrafficParams { staff: 10, accesses: 10_000_000, ..base });
    assert_eq!(name, "accesses");
}
