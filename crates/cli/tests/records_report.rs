//! `custos receipt verify --records` on a real records report: a report built by the service
//! over a SQLite test deployment verifies record by record with the binary, and every kind
//! of alteration — a shown record, the entry bytes, a moved index, another actor's record, a
//! changed scope, records reordered or dropped, another log's key — fails with a message
//! naming the line.

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use common::altered;
use serde_json::{Value, json};
use service::testing::{TestVault, sqlite_vault, us_staff};
use service::{AccessInput, AccessSettings, Clock as _, Gate, RecordScope};
use store::TimelineKind;

/// Three reads by `s-curious` and one by `s-other`, a minute apart, signed into the log.
async fn deployment() -> (TestVault, std::sync::Arc<Gate>) {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    t.ingest("u-ada", &[("email", "ada@newsroom.example")]).await;
    t.ingest("u-bob", &[("ip_address", "203.0.113.9")]).await;
    let reads = [("r-1", "s-curious", "u-ada"), ("r-2", "s-other", "u-bob"), ("r-3", "s-curious", "u-bob"), ("r-4", "s-curious", "u-ada")];
    for (request, actor, subject) in reads {
        let input: AccessInput = serde_json::from_value(json!({"id": request, "subjects": [subject], "fields": {"email": "exact"}, "purpose": "support"})).unwrap();
        gate.access(&us_staff(actor, &["support_agent"]), &input).await.unwrap();
        t.clock().advance_to(t.clock().now() + Duration::minutes(1));
    }
    t.vault.log(&t.region).unwrap().sign_now().await.unwrap();
    (t, gate)
}

async fn report(gate: &Gate, scope: &RecordScope) -> String {
    gate.records(&us_staff("s-officer", &["compliance_officer"]), scope).await.unwrap().to_json_lines()
}

fn verify(dir: &Path, text: &str, keys: &[&str]) -> (bool, String) {
    common::receipt_verify(dir, "--records", text, keys)
}

#[tokio::test]
async fn every_record_of_a_report_verifies_and_an_altered_line_is_named() {
    let (t, gate) = deployment().await;
    let dir = tempfile::tempdir().unwrap();
    let key = t.log_verifier_key();
    let curious = report(&gate, &RecordScope::Timeline(TimelineKind::Actor, "s-curious".to_owned())).await;
    let other = report(&gate, &RecordScope::Timeline(TimelineKind::Actor, "s-other".to_owned())).await;
    assert_eq!(curious.lines().count(), 4, "a header and three records:\n{curious}");
    let (verified, said) = verify(dir.path(), &curious, &[&key]);
    assert!(verified, "{said}");
    assert!(said.contains("records verified: 3 records of actor s-curious against custos.test/custos/us size "), "{said}");

    // A key for another log given first: each region's checkpoint finds the key that signed it.
    let other_key = tlog::Signer::new("custos.test/custos/eu", &[8; 32]).unwrap().verifier().to_vkey();
    let (verified, said) = verify(dir.path(), &curious, &[&other_key, &key]);
    assert!(verified, "{said}");
    // Only that key: the checkpoint on line 1 is not signed by it.
    let (verified, said) = verify(dir.path(), &curious, &[&other_key]);
    assert!(!verified && said.contains("line 1") && said.contains("not signed by any --key"), "{said}");

    // The record shown changed: the proof still holds, the line no longer shows the entry.
    let purpose = altered(&curious, 3, |line| line["record"]["purpose"] = json!("fraud"));
    let (verified, said) = verify(dir.path(), &purpose, &[&key]);
    assert!(!verified && said.contains("line 3") && said.contains("differs from log entry"), "{said}");

    // One byte of the entry changed: its hash is no longer the leaf hash.
    let entry = altered(&curious, 2, |line| {
        let mut bytes = STANDARD.decode(line["entry"].as_str().unwrap()).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        line["entry"] = json!(STANDARD.encode(bytes));
    });
    let (verified, said) = verify(dir.path(), &entry, &[&key]);
    assert!(!verified && said.contains("line 2"), "{said}");

    // The index moved: the inclusion proof fails.
    let index = altered(&curious, 4, |line| line["index"] = json!(line["index"].as_u64().unwrap() + 1));
    let (verified, said) = verify(dir.path(), &index, &[&key]);
    assert!(!verified && said.contains("line 4"), "{said}");

    // The time shown moved by a day.
    let time = altered(&curious, 4, |line| line["at"] = json!("2020-01-01T00:00:00Z"));
    let (verified, said) = verify(dir.path(), &time, &[&key]);
    assert!(!verified && said.contains("line 4") && said.contains("time shown"), "{said}");

    // Another actor's genuine, provable record put in this actor's report.
    let other_line: Value = serde_json::from_str(other.lines().nth(1).unwrap()).unwrap();
    let swapped = altered(&curious, 3, |line| *line = other_line.clone());
    let (verified, said) = verify(dir.path(), &swapped, &[&key]);
    assert!(!verified && said.contains("line 3") && said.contains("does not name actor s-curious"), "{said}");

    // The header's scope changed to another actor: the records no longer belong to it.
    let rescoped = altered(&curious, 1, |header| header["scope"] = json!("actor s-other"));
    let (verified, said) = verify(dir.path(), &rescoped, &[&key]);
    assert!(!verified && said.contains("line 2") && said.contains("does not name actor s-other"), "{said}");

    // Two records swapped, and one listed twice.
    let lines: Vec<&str> = curious.lines().collect();
    let reordered = [lines[0], lines[2], lines[1], lines[3]].join("\n");
    let (verified, said) = verify(dir.path(), &reordered, &[&key]);
    assert!(!verified && said.contains("line 3") && said.contains("out of order or repeated"), "{said}");
    let repeated = [lines[0], lines[1], lines[1], lines[3]].join("\n");
    let (verified, said) = verify(dir.path(), &repeated, &[&key]);
    assert!(!verified && said.contains("line 3") && said.contains("out of order or repeated"), "{said}");

    // A record dropped.
    let dropped = [lines[0], lines[1], lines[3]].join("\n");
    let (verified, said) = verify(dir.path(), &dropped, &[&key]);
    assert!(!verified && said.contains("lists 2 records, its first line says 3"), "{said}");
}

#[tokio::test]
async fn a_period_report_verifies_and_a_record_outside_the_period_is_named() {
    let (t, gate) = deployment().await;
    let dir = tempfile::tempdir().unwrap();
    let key = t.log_verifier_key();
    let now = t.vault.clock().now();
    let whole = RecordScope::Period { since: now - Duration::hours(1), until: now };
    let text = report(&gate, &whole).await;
    // Four decisions; the officer's own `record_view` entries came after the checkpoint.
    assert_eq!(text.lines().count(), 5, "{text}");
    let (verified, said) = verify(dir.path(), &text, &[&key]);
    assert!(verified && said.contains("records verified: 4 records of period "), "{said}");

    // The header's period narrowed to end before the last record.
    let last_at: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(last_at["at"].as_str().unwrap()).unwrap().to_utc();
    let scope = RecordScope::Period { since: now - Duration::hours(1), until };
    let narrowed = altered(&text, 1, |header| header["scope"] = json!(scope.to_string()));
    let (verified, said) = verify(dir.path(), &narrowed, &[&key]);
    assert!(!verified && said.contains("line 5") && said.contains("outside the period"), "{said}");

    // A scope no report has.
    let unknown = altered(&text, 1, |header| header["scope"] = json!("team blue"));
    let (verified, said) = verify(dir.path(), &unknown, &[&key]);
    assert!(!verified && said.contains("line 1") && said.contains("not a scope kind"), "{said}");
}
