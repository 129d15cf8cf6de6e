//! The access side of the `custos` binary: `scenario run` on the shipped leak-hunt scenario and
//! on malformed files, `policy validate` and `policy test`, and `staff token` from a
//! deployment's development issuer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos")).args(args).env("CUSTOS_LOG", "warn").output().expect("run custos")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn the_leak_hunt_scenario_is_refused_held_and_logged() {
    let file = repository().join("scenarios/leak-hunt-2022.jsonl");
    let output = custos(&["scenario", "run", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let lines = lines(&output);
    let mut decisions: HashMap<String, Vec<&Value>> = HashMap::new();
    for line in lines.iter().filter(|line| line["kind"] == "decision") {
        decisions.entry(line["access"].as_str().unwrap().to_owned()).or_default().push(line);
        assert!(line["log_index"].is_u64(), "every decision has its log index: {line}");
    }
    let first = |access: &str| decisions[access][0];
    // Ordinary support work: granted, coarsened to what support may see.
    assert_eq!(first("a-1")["decision"], "allow");
    assert_eq!(first("a-1")["fields"]["email"], "masked");
    assert_eq!(first("a-1")["fields"]["ip_address"], "country");
    // The leak hunt on journalists and their contacts: refused outright.
    for access in ["a-2", "a-3", "a-4", "a-7"] {
        assert_eq!(first(access)["decision"], "deny", "{access}: {}", first(access));
        assert!(first(access)["fields"].as_object().unwrap().is_empty());
    }
    assert!(first("a-2")["policies"].as_array().unwrap().iter().any(|policy| policy.as_str().unwrap().starts_with("internal-investigation")));
    // On employees from abroad: held for the US custodian; self-approval refused; the
    // custodian's approval releases a prefix, never the exact address.
    assert_eq!(first("a-5")["decision"], "pending");
    assert_eq!(first("a-5")["needs"], serde_json::json!(["custodian"]));
    let refused = lines.iter().find(|line| line["kind"] == "approval" && line["access"] == "a-5").expect("the self-approval is reported");
    assert_eq!(refused["outcome"], "refused");
    let released = decisions["a-5"].last().unwrap();
    assert_eq!(released["decision"], "allow", "{released}");
    assert_eq!(released["fields"]["ip_address"], "prefix");
    assert_eq!(first("a-6")["decision"], "pending");
    assert_eq!(first("a-8")["decision"], "deny", "a purpose other than the case's");

    let summary = lines.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["accesses"], 8);
    assert_eq!(summary["log_verified"], true);
    assert_eq!(summary["allowed"], 2);
    assert_eq!(summary["pending"], 1);
    assert_eq!(summary["denied"], 5);
    // 8 first decisions, 1 decision after approval, 2 approval entries.
    assert_eq!(summary["log_size"], 11, "{summary}");
}

#[test]
fn malformed_scenarios_exit_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown-op.jsonl", "{\"op\":\"subject\",\"id\":\"u-1\",\"region\":\"us\"}\n{\"op\":\"teleport\"}\n", ":2: field op: unknown op \"teleport\""),
        ("unknown-field.jsonl", "{\"op\":\"subject\",\"id\":\"u-1\",\"region\":\"us\",\"colour\":\"red\"}\n", ":1: op subject: unknown field `colour`"),
        (
            "backwards.jsonl",
            "{\"op\":\"subject\",\"id\":\"u-1\",\"region\":\"us\"}\n{\"op\":\"case\",\"at\":\"2026-03-02T09:00:00Z\",\"id\":\"T-1\",\"purpose\":\"support\"}\n{\"op\":\"case\",\"at\":\"2026-03-01T09:00:00Z\",\"id\":\"T-2\",\"purpose\":\"support\"}\n",
            ":3: field at:",
        ),
        (
            "case-twice.jsonl",
            "{\"op\":\"subject\",\"id\":\"u-1\",\"region\":\"us\"}\n{\"op\":\"case\",\"id\":\"T-1\",\"purpose\":\"support\"}\n{\"op\":\"case\",\"id\":\"T-1\",\"purpose\":\"support\"}\n",
            ":3: case T-1 already exists",
        ),
        ("bad-value.jsonl", "{\"op\":\"subject\",\"id\":\"u-1\",\"region\":\"us\",\"values\":{\"ip_address\":[\"999.1.1.1\"]}}\n", ":1: subject \"u-1\", field ip_address"),
        ("bad-view.jsonl", "{\"op\":\"subject\",\"id\":\"u-1\",\"region\":\"us\"}\n{\"op\":\"access\",\"id\":\"a\",\"actor\":\"s\",\"subjects\":[\"u-1\"],\"fields\":{\"email\":\"country\"},\"purpose\":\"support\"}\n", ":2: invalid request: fields.email"),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let output = custos(&["scenario", "run", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", text(&output));
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(name) && message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn policy_validate_and_test_catch_broken_sets_and_wrong_expectations() {
    let validated = custos(&["policy", "validate"]);
    assert!(validated.status.success(), "{}", text(&validated));
    let tables = repository().join("policies/tests");
    let tested = custos(&["policy", "test", tables.to_str().unwrap()]);
    assert!(tested.status.success(), "{}", text(&tested));
    assert!(text(&tested).contains(" 0 failed"), "{}", text(&tested));

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::create_dir(&wrong).unwrap();
    let table = std::fs::read_to_string(tables.join("case.json")).unwrap();
    std::fs::write(wrong.join("case.json"), table.replacen("\"decision\": \"deny\"", "\"decision\": \"allow\"", 1)).unwrap();
    let failed = custos(&["policy", "test", wrong.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("FAIL case.json: no case"), "{}", text(&failed));

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("bad.cedar"), "@id(\"x\") permit (principal, action, resource) when { context.nope == };").unwrap();
    let refused = custos(&["policy", "validate", broken.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("bad.cedar"), "{}", text(&refused));
}

#[test]
fn staff_tokens_come_only_from_a_configured_development_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    assert!(custos(&["init", "--data", plain.to_str().unwrap()]).status.success());
    let refused = custos(&["staff", "token", "--data", plain.to_str().unwrap(), "--id", "s-1"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("no development issuer"), "{}", text(&refused));

    let dev = dir.path().join("dev");
    let init = custos(&["init", "--data", dev.to_str().unwrap(), "--dev-issuer"]);
    assert!(init.status.success(), "{}", text(&init));
    let config = std::fs::read_to_string(dev.join("custos.toml")).unwrap();
    assert!(config.contains("[identity]") && config.contains("dev-issuer/dev-jwks.json"), "{config}");
    let minted = custos(&["staff", "token", "--data", dev.to_str().unwrap(), "--id", "s-1", "--role", "support_agent"]);
    assert!(minted.status.success(), "{}", text(&minted));
    let token = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
}
