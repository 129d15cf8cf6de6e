//! The access flow through `Gate` with real storage and the default policy set: coarsening,
//! denials that reveal nothing, approvals and their abuse, receipts that verify, and fail
//! closed when the log cannot be written.

use std::sync::Arc;

use base64::Engine as _;
use chrono::Duration;
use service::testing::{TestVault, sqlite_vault};
use service::{AccessEntry, AccessInput, AccessSettings, ApprovalInput, Caller, CallerKind, CaseInput, Gate, ServiceError, StaffInput};

const EMAIL: &str = "ada.reporter@newsroom.example";
const IP: &str = "198.51.100.23";

fn staff(id: &str, roles: &[&str], country: &str, region: &str) -> Caller {
    Caller {
        id: id.to_owned(),
        kind: CallerKind::Staff,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        team: None,
        entity: Some(format!("entity-{region}")),
        country: Some(country.to_owned()),
        region: Some(region.to_owned()),
    }
}

fn read(id: &str, subject: &str, fields: &[(&str, &str)], purpose: &str, case: Option<&str>) -> AccessInput {
    AccessInput {
        id: Some(id.to_owned()),
        action: "read".to_owned(),
        subjects: vec![subject.to_owned()],
        fields: fields.iter().map(|(field, view)| ((*field).to_owned(), (*view).to_owned())).collect(),
        purpose: purpose.to_owned(),
        case: case.map(str::to_owned),
        justification: "test".to_owned(),
        break_glass: false,
        destination: None,
        control: None,
        from_country: None,
        query: None,
    }
}

async fn label(t: &TestVault, id: &str, labels: &[&str], values: &[(&str, &str)]) {
    let mut grouped = std::collections::BTreeMap::new();
    for (field, value) in values {
        grouped.entry((*field).to_owned()).or_insert_with(Vec::new).push(service::ValueInput::Plain((*value).to_owned()));
    }
    let input = service::SubjectInput {
        id: id.to_owned(),
        region: t.region.to_string(),
        labels: labels.iter().map(|label| (*label).to_owned()).collect(),
        staff: None,
        values: grouped,
    };
    t.vault.ingest(vec![service::validate_subject(&input).unwrap()]).await.unwrap();
}

async fn case(gate: &Gate, id: &str, purpose: &str, assignees: &[&str], subjects: &[&str], requested_by: Option<&str>) {
    gate.register_case(&CaseInput {
        id: id.to_owned(),
        purpose: purpose.to_owned(),
        status: None,
        assignees: assignees.iter().map(|id| (*id).to_owned()).collect(),
        subjects: subjects.iter().map(|id| (*id).to_owned()).collect(),
        requested_by: requested_by.map(str::to_owned),
        legal_process: None,
        destinations: Vec::new(),
    })
    .await
    .unwrap();
}

/// The entry behind a receipt, decoded; also checks the receipt's leaf hash is the entry's.
fn logged(receipt: &service::Receipt) -> AccessEntry {
    let base64 = base64::engine::general_purpose::STANDARD;
    let entry = base64.decode(&receipt.entry).unwrap();
    assert_eq!(base64.decode(&receipt.leaf_hash).unwrap(), tlog::leaf_hash(&entry).as_bytes().to_vec(), "leaf hash of the entry");
    let (_, canonical) = sequencer::parse_salted_entry(&entry).unwrap();
    serde_json::from_slice(canonical).unwrap()
}

async fn setup() -> (TestVault, Arc<Gate>) {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    label(&t, "u-journalist", &["journalist"], &[("email", EMAIL), ("ip_address", IP)]).await;
    label(&t, "u-staff", &["staff"], &[("ip_address", "203.0.113.9")]).await;
    (t, gate)
}

#[tokio::test]
async fn a_journalists_own_ticket_is_ordinary_work_and_exact_email_is_coarsened_to_masked() {
    let (t, gate) = setup().await;
    case(&gate, "T-1", "support", &["s-agent"], &["u-journalist"], Some("u-journalist")).await;
    let agent = staff("s-agent", &["support_agent"], "US", "us");
    let answer = gate.access(&agent, &read("a-1", "u-journalist", &[("email", "exact")], "support", Some("T-1"))).await.unwrap();
    assert_eq!(answer.decision, "allow", "{answer:?}");
    let field = &answer.subjects[0].fields[0];
    assert_eq!((field.decision.as_str(), field.view.as_deref()), ("allow", Some("masked")));
    let values = field.values.as_ref().unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].value, "a***@newsroom.example");
    let entry = logged(&answer.subjects[0].receipt);
    assert_eq!((entry.request.as_str(), entry.decision.as_str(), entry.subject.id.as_str()), ("a-1", "allow", "u-journalist"));
    assert_eq!(entry.fields[0].view.as_deref(), Some("masked"));
    assert!(!entry.policies.is_empty(), "the deciding policies are named");
    assert!(!String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(&answer.subjects[0].receipt.entry).unwrap()).contains(EMAIL));
    let _ = t;
}

#[tokio::test]
async fn the_leak_hunt_is_denied_logged_and_reveals_nothing() {
    let (t, gate) = setup().await;
    case(&gate, "LEAK-1", "internal_investigation", &["s-cn-1"], &["u-journalist", "u-staff"], None).await;
    let auditor = staff("s-cn-1", &["internal_audit"], "CN", "cn");
    let answer =
        gate.access(&auditor, &read("a-2", "u-journalist", &[("ip_address", "exact")], "internal_investigation", Some("LEAK-1"))).await.unwrap();
    assert_eq!(answer.decision, "deny", "{answer:?}");
    let subject = &answer.subjects[0];
    assert!(subject.policies.iter().any(|policy| policy.starts_with("internal-investigation")), "{:?}", subject.policies);
    assert!(subject.fields[0].values.is_none());
    assert!(!format!("{answer:?}").contains(IP));
    let entry = logged(&subject.receipt);
    assert_eq!(entry.decision, "deny");
    assert!(entry.cross_border);
    assert_eq!(entry.actor.region, "cn");
    let size = t.vault.log(&t.region).unwrap().sign_now().await.unwrap();
    assert!(size.contains('\n'));
}

#[tokio::test]
async fn no_case_no_access_and_an_unregistered_case_is_named() {
    let (_t, gate) = setup().await;
    let agent = staff("s-agent", &["support_agent"], "US", "us");
    let answer = gate.access(&agent, &read("a-3", "u-staff", &[("ip_address", "country")], "support", None)).await.unwrap();
    assert_eq!(answer.decision, "deny");
    let answer = gate.access(&agent, &read("a-4", "u-staff", &[("ip_address", "country")], "support", Some("T-404"))).await.unwrap();
    assert_eq!(answer.decision, "deny");
    assert!(answer.subjects[0].reasons.iter().any(|reason| reason.contains("T-404 is not registered")), "{:?}", answer.subjects[0].reasons);
}

#[tokio::test]
async fn cross_border_waits_for_the_custodian_and_exact_ip_never_leaves_the_region() {
    let (t, gate) = setup().await;
    case(&gate, "LEAK-1", "internal_investigation", &["s-cn-1"], &["u-staff"], None).await;
    let auditor = staff("s-cn-1", &["internal_audit"], "CN", "cn");
    let asked = read("a-5", "u-staff", &[("ip_address", "exact")], "internal_investigation", Some("LEAK-1"));
    let answer = gate.access(&auditor, &asked).await.unwrap();
    assert_eq!(answer.decision, "pending", "{answer:?}");
    assert_eq!(answer.needs, vec!["custodian".to_owned()]);
    assert!(answer.subjects[0].fields[0].values.is_none());

    // Abuse: the requester, a non-approver, an approver of another region (independent but
    // not custodian) — none of them releases the request.
    let approve = ApprovalInput { decision: "approve".to_owned(), note: "ok".to_owned() };
    let self_approval = gate.approve(&staff("s-cn-1", &["internal_audit", "privacy_officer"], "CN", "cn"), "a-5", &approve).await;
    assert!(matches!(self_approval, Err(ServiceError::ApprovalRefused { .. })), "{self_approval:?}");
    let colleague = gate.approve(&staff("s-cn-2", &["internal_audit"], "CN", "cn"), "a-5", &approve).await;
    assert!(matches!(colleague, Err(ServiceError::ApprovalRefused { .. })), "{colleague:?}");
    let foreign = gate.approve(&staff("s-cn-po", &["privacy_officer"], "CN", "cn"), "a-5", &approve).await.unwrap();
    assert_eq!((foreign.status.as_str(), foreign.needs.clone()), ("pending", vec!["custodian".to_owned()]));
    let still = gate.open_request(&auditor, "a-5").await.unwrap();
    assert_eq!(still.decision, "pending");

    // The custodian of us approves; the requester opens it and gets a prefix, not the address.
    let view = gate.approve(&staff("s-us-po", &["privacy_officer"], "US", "us"), "a-5", &approve).await.unwrap();
    assert_eq!(view.status, "approved");
    assert!(!format!("{view:?}").contains("203.0.113"), "the approver sees no values");
    let opened = gate.open_request(&auditor, "a-5").await.unwrap();
    assert_eq!(opened.decision, "allow", "{opened:?}");
    let field = &opened.subjects[0].fields[0];
    assert_eq!(field.view.as_deref(), Some("prefix"));
    assert_eq!(field.values.as_ref().unwrap()[0].value, "203.0.113.0/24");
    let entry = logged(&opened.subjects[0].receipt);
    assert_eq!(entry.approved_by, vec!["s-cn-po".to_owned(), "s-us-po".to_owned()]);

    // Replayed and late approvals.
    let again = gate.approve(&staff("s-us-po", &["privacy_officer"], "US", "us"), "a-5", &approve).await;
    assert!(matches!(again, Err(ServiceError::AlreadyDecided { .. })), "{again:?}");
    let other = gate.access(&auditor, &read("a-6", "u-staff", &[("ip_address", "prefix")], "internal_investigation", Some("LEAK-1"))).await.unwrap();
    assert_eq!(other.decision, "pending", "an approval of a-5 does not carry over to a-6");
    assert!(matches!(gate.open_request(&staff("s-other", &["internal_audit"], "CN", "cn"), "a-5").await, Err(ServiceError::Forbidden(_))));
    let now = service::Clock::now(t.clock());
    t.clock().advance_to(now + Duration::hours(25));
    let late = gate.approve(&staff("s-us-po", &["privacy_officer"], "US", "us"), "a-6", &approve).await;
    assert!(matches!(late, Err(ServiceError::ApprovalExpired { .. })), "{late:?}");
}

#[tokio::test]
async fn when_the_log_cannot_be_written_the_answer_is_an_error_and_no_value_leaves() {
    let (t, gate) = setup().await;
    case(&gate, "T-1", "support", &["s-agent"], &["u-journalist"], Some("u-journalist")).await;
    let agent = staff("s-agent", &["support_agent"], "US", "us");
    let ok = gate.access(&agent, &read("a-7", "u-journalist", &[("email", "masked")], "support", Some("T-1"))).await.unwrap();
    assert_eq!(ok.decision, "allow");
    t.break_log_storage().await;
    let failed = gate.access(&agent, &read("a-8", "u-journalist", &[("email", "masked")], "support", Some("T-1"))).await;
    match failed {
        Err(ServiceError::Log(message)) => assert!(!message.contains("newsroom"), "{message}"),
        other => panic!("expected a log error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_directory_completes_the_caller() {
    let (_t, gate) = setup().await;
    gate.put_staff(&StaffInput {
        id: "s-dir".to_owned(),
        roles: vec!["support_agent".to_owned()],
        team: Some("support".to_owned()),
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
        shift: None,
    })
    .await
    .unwrap();
    let bare = Caller { id: "s-dir".to_owned(), kind: CallerKind::Staff, roles: vec![], team: None, entity: None, country: None, region: None };
    let caller = gate.caller(bare).await.unwrap();
    assert_eq!(caller.roles, vec!["support_agent".to_owned()]);
    assert_eq!(caller.region.as_deref(), Some("us"));
    let invalid = gate
        .put_staff(&StaffInput { id: "s-bad".to_owned(), roles: vec![], team: None, entity: None, country: Some("usa".to_owned()), region: None, shift: None })
        .await;
    assert!(matches!(invalid, Err(ServiceError::InvalidRequest { ref field, .. }) if field == "country"), "{invalid:?}");
}

fn search(id: &str, field: &str, value: &str, fields: &[(&str, &str)], case: &str) -> AccessInput {
    AccessInput {
        action: "search".to_owned(),
        subjects: Vec::new(),
        query: Some([(field.to_owned(), value.to_owned())].into()),
        ..read(id, "unused", fields, "support", Some(case))
    }
}

#[tokio::test]
async fn search_finds_by_exact_value_through_the_blind_index_and_never_logs_the_value() {
    let (t, gate) = setup().await;
    case(&gate, "T-1", "support", &["s-agent"], &["u-journalist"], Some("u-journalist")).await;
    let agent = staff("s-agent", &["support_agent"], "US", "us");
    // Normalized before digesting: the domain's case does not matter.
    let found = gate.access(&agent, &search("s-1", "email", "ada.reporter@NEWSROOM.example", &[("email", "masked")], "T-1")).await.unwrap();
    assert_eq!(found.decision, "allow", "{found:?}");
    assert_eq!(found.subjects.len(), 1);
    assert_eq!(found.subjects[0].subject, "u-journalist");
    assert_eq!(found.subjects[0].fields[0].values.as_ref().unwrap()[0].value, "a***@newsroom.example");
    let entry = logged(&found.subjects[0].receipt);
    let query = entry.query.expect("the query is logged");
    assert_eq!((query.field.as_str(), query.digest.len()), ("email", 64));
    let raw = String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(&found.subjects[0].receipt.entry).unwrap()).into_owned();
    assert!(!raw.contains("ada.reporter"), "the searched value never enters the log: {raw}");

    // Nothing matches: denied, and still on the record.
    let before = t.vault.log(&t.region).unwrap().sign_now().await.unwrap();
    let none = gate.access(&agent, &search("s-2", "email", "nobody@example.org", &[], "T-1")).await.unwrap();
    assert_eq!((none.decision.as_str(), none.subjects.len()), ("deny", 0));
    let after = t.vault.log(&t.region).unwrap().sign_now().await.unwrap();
    assert_ne!(before, after, "a search without a match is logged too");

    // A match outside the case is refused and withheld: the answer does not say who matched.
    case(&gate, "T-2", "support", &["s-agent"], &["u-journalist"], Some("u-journalist")).await;
    let outside = gate.access(&agent, &search("s-3", "ip_address", "203.0.113.9", &[], "T-2")).await.unwrap();
    assert_eq!((outside.decision.as_str(), outside.subjects.len(), outside.withheld), ("deny", 0, 1), "{outside:?}");

    // Bad queries are named.
    let bad = gate.access(&agent, &search("s-4", "location", "1,2", &[], "T-1")).await;
    assert!(matches!(bad, Err(ServiceError::InvalidRequest { .. })), "{bad:?}");
    let bad = gate.access(&agent, &search("s-5", "email", "not an email", &[], "T-1")).await;
    assert!(matches!(bad, Err(ServiceError::InvalidRequest { ref field, .. }) if field == "query.email"), "{bad:?}");

    // Erased subjects are not found any more.
    t.vault.erase(&t.region, &service::testing::subject("u-journalist"), "dsr", "asked").await.unwrap();
    let gone = gate.access(&agent, &search("s-6", "email", "ada.reporter@newsroom.example", &[], "T-1")).await.unwrap();
    assert_eq!((gone.decision.as_str(), gone.subjects.len(), gone.withheld), ("deny", 0, 0));
}

#[tokio::test]
async fn a_rejected_request_cannot_be_opened() {
    let (_t, gate) = setup().await;
    case(&gate, "LEAK-1", "internal_investigation", &["s-cn-1"], &["u-staff"], None).await;
    let auditor = staff("s-cn-1", &["internal_audit"], "CN", "cn");
    let pending = gate.access(&auditor, &read("a-r", "u-staff", &[("ip_address", "prefix")], "internal_investigation", Some("LEAK-1"))).await.unwrap();
    assert_eq!(pending.decision, "pending");
    let no = ApprovalInput { decision: "reject".to_owned(), note: "no reason given for a cross-border read".to_owned() };
    let view = gate.approve(&staff("s-us-po", &["privacy_officer"], "US", "us"), "a-r", &no).await.unwrap();
    assert_eq!(view.status, "rejected");
    let opened = gate.open_request(&auditor, "a-r").await;
    assert!(matches!(opened, Err(ServiceError::AlreadyDecided { ref status, .. }) if status == "rejected"), "{opened:?}");
}
