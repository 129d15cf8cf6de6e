//! `custos scenario generate` end to end: the background traffic it writes is the same for
//! the same arguments, replays through `custos scenario run`, nearly every access ends
//! allowed and the detector raises nothing of severity medium or more; bad parameters are
//! refused with their name.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env("CUSTOS_LOG", "warn")
        // The replay finds the development geo database from the workspace root.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run custos")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn generate(out: &Path, seed: &str) -> Output {
    custos(&[
        "scenario",
        "generate",
        "--seed",
        seed,
        "--staff",
        "60",
        "--subjects",
        "2000",
        "--accesses",
        "5000",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn generated_traffic_replays_with_nearly_every_access_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traffic.jsonl");
    let generated = generate(&file, "7");
    assert!(generated.status.success(), "{}", text(&generated));
    assert!(text(&generated).contains("5000 accesses"), "{}", text(&generated));
    let again = dir.path().join("again.jsonl");
    assert!(generate(&again, "7").status.success());
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&again).unwrap(), "same arguments, same bytes");

    let replay = custos(&["scenario", "run", file.to_str().unwrap()]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    let stdout = String::from_utf8(replay.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|line| serde_json::from_str(line).expect("JSON lines")).collect();
    let mut latest: HashMap<String, String> = HashMap::new();
    for line in lines.iter().filter(|line| line["kind"] == "decision") {
        latest.insert(line["access"].as_str().unwrap().to_owned(), line["decision"].as_str().unwrap().to_owned());
    }
    let allowed = latest.values().filter(|decision| *decision == "allow").count();
    assert_eq!(latest.len(), 5_000, "one decision (or more) per access");
    assert!(allowed * 100 >= 97 * latest.len(), "only {allowed} of {} accesses ended allowed", latest.len());
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["accesses"], 5_000);
    assert_eq!(summary["allowed"], allowed);
    assert_eq!(summary["log_verified"], true);
    // Ordinary work raises (nearly) nothing: the bound is under one alert of severity
    // medium or more per 10,000 accesses, so none on these 5,000.
    let serious: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["kind"] == "alert" && ["medium", "high", "critical"].contains(&line["severity"].as_str().unwrap_or("")))
        .collect();
    assert!(serious.is_empty(), "ordinary work raised {} serious alerts: {serious:#?}", serious.len());
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.jsonl");
    let out = out.to_str().unwrap();
    for (args, expected) in [
        (["--staff", "0", "--subjects", "2000", "--accesses", "10"], "staff = 0"),
        (["--staff", "60", "--subjects", "1000001", "--accesses", "10"], "subjects = 1000001"),
        (["--staff", "60", "--subjects", "2000", "--accesses", "10000001"], "accesses = 10000001"),
    ] {
        let mut all = vec!["scenario", "generate", "--seed", "1", "--out", out];
        all.extend(args);
        let output = custos(&all);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(text(&output).contains(expected), "{args:?}: {}", text(&output));
    }
    let dense = custos(&[
        "scenario",
        "generate",
        "--seed",
        "1",
        "--staff",
        "10",
        "--subjects",
        "100",
        "--accesses",
        "100000",
        "--days",
        "1",
        "--out",
        out,
    ]);
    assert!(text(&dense).contains("days = 1"), "{}", text(&dense));
}
