//! The alert desk over a real deployment (SQLite): a detector killed mid-stream and restarted
//! stores exactly the alerts an uninterrupted run raises — none lost, none twice — and people's
//! actions on alerts are logged before they take effect.

use std::collections::BTreeMap;
use std::sync::Arc;

use detect::DetectionConfig;
use service::testing::{TestVault, sqlite_vault, us_staff};
use service::{AccessInput, AccessSettings, AlertDesk, Caller, CaseInput, DeskOptions, Detection, Gate, SubjectInput, validate_subject};
use store::{AlertAction, AlertFilter, AlertStatus};

async fn subject(t: &TestVault, id: &str, labels: &[&str], ip: &str) {
    let mut values = BTreeMap::new();
    values.insert("ip_address".to_owned(), vec![service::ValueInput::Plain(ip.to_owned())]);
    values.insert("email".to_owned(), vec![service::ValueInput::Plain(format!("{id}@mail.example"))]);
    let input = SubjectInput { id: id.to_owned(), region: "us".to_owned(), labels: labels.iter().map(|l| (*l).to_owned()).collect(), staff: None, values };
    t.vault.ingest(vec![validate_subject(&input).unwrap()]).await.unwrap();
}

fn read(id: String, subject: &str, fields: &[(&str, &str)], purpose: &str, case: Option<&str>) -> AccessInput {
    AccessInput {
        id: Some(id),
        action: "read".to_owned(),
        subjects: vec![subject.to_owned()],
        query: None,
        fields: fields.iter().map(|(field, view)| ((*field).to_owned(), (*view).to_owned())).collect(),
        purpose: purpose.to_owned(),
        case: case.map(str::to_owned),
        justification: String::new(),
        break_glass: false,
        destination: None,
        control: None,
        from_country: None,
    }
}

/// A few hundred decisions: tickets worked as they should be, and scattered abuse — looks
/// with no case, journalists and employees' IPs on one "inquiry".
async fn history(t: &TestVault, gate: &Gate) {
    for n in 0..40 {
        let labels: &[&str] = match n % 10 {
            0 => &["journalist"],
            1 => &["staff"],
            _ => &[],
        };
        subject(t, &format!("u-{n}"), labels, &format!("198.51.100.{n}")).await;
    }
    let agents: Vec<Caller> = (0..6).map(|n| us_staff(&format!("s-{n}"), &["support_agent"])).collect();
    let auditor = us_staff("s-audit", &["internal_audit"]);
    gate.register_case(&case("LEAK-1", "internal_investigation", &["s-audit"], &["u-0", "u-1", "u-10", "u-11"], None)).await.unwrap();
    let mut number = 0;
    for round in 0..12 {
        for n in 0..40 {
            number += 1;
            let agent = &agents[n % agents.len()];
            let ticket = format!("T-{round}-{n}");
            let subject = format!("u-{n}");
            if (n + round) % 9 == 0 {
                // No case at all.
                gate.access(agent, &read(format!("a-{number}"), &subject, &[("email", "masked")], "support", None)).await.unwrap();
                continue;
            }
            gate.register_case(&case(&ticket, "support", &[&agent.id], &[&subject], Some(&subject))).await.unwrap();
            gate.access(agent, &read(format!("a-{number}"), &subject, &[("email", "masked"), ("ip_address", "country")], "support", Some(&ticket)))
                .await
                .unwrap();
        }
        let target = ["u-0", "u-1", "u-10", "u-11"][round % 4];
        number += 1;
        gate.access(&auditor, &read(format!("a-{number}"), target, &[("ip_address", "exact")], "internal_investigation", Some("LEAK-1"))).await.unwrap();
        let clock = t.clock();
        assert!(clock.advance_to(service::Clock::now(clock) + chrono::Duration::hours(3)));
    }
}

fn case(id: &str, purpose: &str, assignees: &[&str], subjects: &[&str], requested_by: Option<&str>) -> CaseInput {
    CaseInput {
        id: id.to_owned(),
        purpose: purpose.to_owned(),
        status: None,
        assignees: assignees.iter().map(|a| (*a).to_owned()).collect(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        requested_by: requested_by.map(str::to_owned),
        legal_process: None,
        destinations: Vec::new(),
    }
}

async fn stored(desk: &AlertDesk) -> Vec<store::AlertRecord> {
    let mut all = Vec::new();
    let mut filter = AlertFilter { limit: store::ALERTS_PAGE_MAX, ..AlertFilter::default() };
    loop {
        let page = desk.store().alerts(&filter).await.unwrap();
        let Some(last) = page.last() else { return all };
        filter.before = Some((last.at_ms, last.id.clone()));
        all.extend(page);
    }
}

#[tokio::test]
async fn a_detector_killed_mid_stream_resumes_to_exactly_the_alerts_of_an_uninterrupted_run() {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    history(&t, &gate).await;

    // The uninterrupted run, in memory.
    let config = DetectionConfig::default();
    let mut whole = Detection::new(&config);
    let expected = whole.catch_up(&gate).await.unwrap();
    let entries = whole.observed();
    assert!(entries > 450, "{entries} entries");
    assert!(expected.iter().any(|alert| alert.rule == "co_location_probe"), "the inquiry is flagged");
    assert!(expected.iter().any(|alert| alert.rule == "unexplained_access"), "looks with no case are flagged");

    // A desk saving every 120 entries, reading 50 at a time, dies after 400 entries: its last
    // checkpoint is at 360, and alerts of entries 360..400 are stored but not checkpointed.
    let options = DeskOptions { checkpoint_every_entries: 120, read_entries_max: 50 };
    let first = AlertDesk::open_with(Arc::clone(&gate), config.clone(), true, options).await.unwrap();
    let mut observed = 0;
    while observed < 400 {
        observed += first.run_once().await.unwrap().observed;
    }
    let before_crash = stored(&first).await.len();
    drop(first);

    let second = AlertDesk::open_with(Arc::clone(&gate), config.clone(), true, options).await.unwrap();
    let newly = second.catch_up().await.unwrap();
    let after = stored(&second).await;
    assert_eq!(before_crash + newly.len(), after.len(), "alerts re-raised from re-read entries are not stored twice");
    let mut expected_records: Vec<_> = expected.iter().map(|alert| (alert.id.clone(), alert.rule.clone(), alert.severity, alert.summary.clone())).collect();
    let mut stored_records: Vec<_> = after.iter().map(|alert| (alert.id.clone(), alert.rule.clone(), alert.severity, alert.summary.clone())).collect();
    expected_records.sort();
    stored_records.sort();
    assert_eq!(stored_records, expected_records);
    // Each stored alert was queued for the webhook exactly once.
    let due = second.store().due_deliveries(i64::MAX, store::DELIVERIES_DUE_MAX).await.unwrap();
    assert_eq!(due.len(), after.len().min(store::DELIVERIES_DUE_MAX));
}

#[tokio::test]
async fn acknowledging_and_resolving_an_alert_is_logged_first_and_transitions_are_checked() {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    subject(&t, "u-1", &[], "198.51.100.1").await;
    gate.access(&us_staff("s-1", &["support_agent"]), &read("a-1".to_owned(), "u-1", &[("email", "masked")], "support", None)).await.unwrap();
    let desk = AlertDesk::open(Arc::clone(&gate), DetectionConfig::default(), false).await.unwrap();
    let raised = desk.catch_up().await.unwrap();
    assert!(!raised.is_empty());
    let id = raised[0].clone();
    let log = gate.vault().log(&model::RegionId::new("us").unwrap()).unwrap();
    let size = log.size().await.unwrap();
    let officer = us_staff("s-co", &["compliance_officer"]);
    let acknowledged = desk.act(&officer, &id, AlertAction::Acknowledge, "").await.unwrap();
    assert_eq!(acknowledged.status, AlertStatus::Acknowledged);
    let resolved = desk.act(&officer, &id, AlertAction::Resolve, "spoke with s-1: wrong ticket number, coaching given").await.unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved);
    let again = desk.act(&officer, &id, AlertAction::Resolve, "twice").await;
    assert!(matches!(again, Err(service::ServiceError::InvalidAlertTransition { .. })), "{again:?}");
    let logged = log.canonical_entries(size, log.size().await.unwrap()).await.unwrap();
    assert_eq!(logged.len(), 2, "two actions, two entries; the refused one wrote nothing");
    let text = String::from_utf8(logged[1].clone()).unwrap();
    assert!(text.contains("\"type\":\"alert_action\"") && text.contains("\"action\":\"resolve\"") && text.contains(&id), "{text}");
    // The detector reads its own actions back without complaint.
    desk.catch_up().await.unwrap();
}
