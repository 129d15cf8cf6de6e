//! `custos receipt verify --report` on a real subject report: a report built by the service
//! over a SQLite test deployment verifies line by line with the binary, and every kind of
//! alteration — a shown field, the entry bytes, a line taken from another subject's report,
//! a dropped line, another log's key — fails with a message naming the line.

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::altered;
use serde_json::{Value, json};
use service::testing::{TestVault, sqlite_vault, subject};
use service::{AccessInput, AccessSettings, Caller, CallerKind, Gate};

/// Ada read three times (denied: no case explains it, and denials are accesses too), Bob once.
async fn reports() -> (TestVault, String, String) {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    t.ingest("u-ada", &[("email", "ada@newsroom.example")]).await;
    t.ingest("u-bob", &[("ip_address", "203.0.113.9")]).await;
    let caller = Caller {
        id: "s-curious".to_owned(),
        kind: CallerKind::Staff,
        roles: vec!["support_agent".to_owned()],
        team: None,
        entity: Some("entity-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    };
    for (request, who, field) in [("r-1", "u-ada", "email"), ("r-2", "u-bob", "ip_address"), ("r-3", "u-ada", "email"), ("r-4", "u-ada", "name")] {
        let input: AccessInput = serde_json::from_value(json!({"id": request, "subjects": [who], "fields": {field: "exact"}, "purpose": "support"})).unwrap();
        gate.access(&caller, &input).await.unwrap();
    }
    t.vault.log(&t.region).unwrap().sign_now().await.unwrap();
    let ada = report_of(&t, &gate, "u-ada").await;
    let bob = report_of(&t, &gate, "u-bob").await;
    (t, ada, bob)
}

async fn report_of(t: &TestVault, gate: &Gate, id: &str) -> String {
    let token = t.subject_token_keys().mint(&subject(id), &t.region, t.vault.clock().now(), std::time::Duration::from_secs(60)).unwrap();
    let bearer = gate.subject_bearer(&token, id).unwrap();
    gate.subject_report(&bearer, 0).await.unwrap().to_json_lines()
}

fn verify(dir: &Path, text: &str, key: &str) -> (bool, String) {
    common::receipt_verify(dir, "--report", text, &[key])
}

#[tokio::test]
async fn every_line_of_a_report_verifies_and_an_altered_line_is_named() {
    let (t, ada, bob) = reports().await;
    let dir = tempfile::tempdir().unwrap();
    let key = t.log_verifier_key();
    assert_eq!(ada.lines().count(), 4, "a header and Ada's three accesses:\n{ada}");
    let (verified, said) = verify(dir.path(), &ada, &key);
    assert!(verified, "{said}");
    assert!(said.contains("report verified: 3 accesses of subject u-ada"), "{said}");

    // A shown field changed: the proof still holds, the line no longer says what the entry says.
    let purpose = altered(&ada, 3, |line| line["access"]["purpose"] = json!("fraud"));
    let (verified, said) = verify(dir.path(), &purpose, &key);
    assert!(!verified && said.contains("line 3") && said.contains("differs from log entry"), "{said}");

    // One byte of the entry changed: its hash is no longer the receipt's.
    let entry = altered(&ada, 2, |line| {
        let mut bytes = STANDARD.decode(line["entry"].as_str().unwrap()).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        line["entry"] = json!(STANDARD.encode(bytes));
    });
    let (verified, said) = verify(dir.path(), &entry, &key);
    assert!(!verified && said.contains("line 2"), "{said}");

    // The receipt's index moved: the inclusion proof fails.
    let index = altered(&ada, 4, |line| line["receipt"]["index"] = json!(line["receipt"]["index"].as_u64().unwrap() + 1));
    let (verified, said) = verify(dir.path(), &index, &key);
    assert!(!verified && said.contains("line 4"), "{said}");

    // Bob's genuine, provable line put in Ada's report.
    let bob_line: Value = serde_json::from_str(bob.lines().nth(1).unwrap()).unwrap();
    let swapped = altered(&ada, 2, |line| *line = bob_line.clone());
    let (verified, said) = verify(dir.path(), &swapped, &key);
    assert!(!verified && said.contains("line 2") && said.contains("another subject"), "{said}");

    // A line dropped, and the header's count raised to hide a drop elsewhere.
    let dropped: String = ada.lines().enumerate().filter(|(number, _)| *number != 2).map(|(_, line)| format!("{line}\n")).collect();
    let (verified, said) = verify(dir.path(), &dropped, &key);
    assert!(!verified && said.contains("lists 2 accesses"), "{said}");

    // Another log's key: the checkpoint on line 1 is not signed by it.
    let other_key = tlog::Signer::new("custos.test/custos/us", &[8; 32]).unwrap().verifier().to_vkey();
    let (verified, said) = verify(dir.path(), &ada, &other_key);
    assert!(!verified && said.contains("line 1"), "{said}");
}
