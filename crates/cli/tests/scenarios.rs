//! Every scenario shipped in `scenarios/`, replayed with `custos scenario run`, against the
//! expectations written in its own header comments:
//!
//! - `# expect-alert: actor=<id> severity>=<level>` — an alert at least that severe names the actor;
//! - `# expect-max-severity: <level>` — no alert is more severe (the legitimate look-alikes);
//! - `# expect-all-allowed` — every access ends allowed.
//!
//! A scenario without expectations fails: each one is there to show something.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const LEVELS: [&str; 5] = ["info", "low", "medium", "high", "critical"];

fn level(name: &str) -> usize {
    LEVELS.iter().position(|level| *level == name).unwrap_or_else(|| panic!("unknown severity {name:?}"))
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).filter(|path| path.extension().is_some_and(|ext| ext == "jsonl")).collect();
    files.sort();
    files
}

fn replay(path: &Path) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_custos")).args(["scenario", "run"]).arg(path).output().unwrap();
    assert!(output.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn every_shipped_scenario_raises_what_it_expects_and_nothing_it_must_not() {
    let files = scenarios();
    assert!(files.len() >= 9, "the five abuse scenarios and four look-alikes: {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let expectations: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("# expect")).collect();
        assert!(!expectations.is_empty(), "{name} states no expectations");
        let lines = replay(path);
        let alerts: Vec<&Value> = lines.iter().filter(|line| line["kind"] == "alert").collect();
        let summary = lines.last().unwrap();
        assert_eq!(summary["kind"], "summary", "{name}: the last line is the summary");
        assert_eq!(summary["log_verified"], true, "{name}");
        let mut last_decision: BTreeMap<String, String> = BTreeMap::new();
        for line in lines.iter().filter(|line| line["kind"] == "decision") {
            last_decision.insert(line["access"].as_str().unwrap().to_owned(), line["decision"].as_str().unwrap().to_owned());
        }
        for expectation in expectations {
            if let Some(rest) = expectation.strip_prefix("-alert: ") {
                let (actor, minimum) = rest.split_once(" severity>=").expect("actor=<id> severity>=<level>");
                let actor = actor.trim().strip_prefix("actor=").expect("actor=<id>");
                let minimum = level(minimum.trim());
                if !alerts.iter().any(|alert| alert["actor"] == actor && level(alert["severity"].as_str().unwrap()) >= minimum) {
                    failures.push(format!("{name}: no alert ≥ {} names {actor}", LEVELS[minimum]));
                }
            } else if let Some(maximum) = expectation.strip_prefix("-max-severity: ") {
                let maximum = level(maximum.trim());
                for alert in alerts.iter().filter(|alert| level(alert["severity"].as_str().unwrap()) > maximum) {
                    failures.push(format!("{name}: look-alike raised {} {}: {}", alert["severity"], alert["rule"], alert["summary"]));
                }
            } else if expectation.trim() == "-all-allowed" {
                for (access, decision) in last_decision.iter().filter(|(_, decision)| decision.as_str() != "allow") {
                    failures.push(format!("{name}: access {access} ended {decision}"));
                }
            } else {
                panic!("{name}: unknown expectation line `# expect{expectation}`");
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
