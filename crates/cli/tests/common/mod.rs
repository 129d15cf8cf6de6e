//! Helpers of the report verification tests: run `custos receipt verify` on a report's text,
//! and alter one line of a report.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `custos receipt verify <flag> FILE --key K …` on `text`: success, and what it said.
pub fn receipt_verify(dir: &Path, flag: &str, text: &str, keys: &[&str]) -> (bool, String) {
    let path = dir.join("report.jsonl");
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_custos"));
    command.args(["receipt", "verify", flag]).arg(&path);
    for key in keys {
        command.args(["--key", key]);
    }
    let output = command.output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said)
}

/// `text` with line `number` (1-based) replaced by `change` applied to its JSON.
pub fn altered(text: &str, number: usize, change: impl FnOnce(&mut Value)) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut value: Value = serde_json::from_str(&lines[number - 1]).unwrap();
    change(&mut value);
    lines[number - 1] = value.to_string();
    lines.join("\n") + "\n"
}
