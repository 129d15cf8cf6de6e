//! The one conformance suite every [`DirectoryStore`] backend must pass: round trips of every
//! record (optional fields set and unset), replacing upserts, duplicate and missing ids,
//! limits rejected with nothing written, and the compare-and-set of `record_approval`, also
//! under concurrent calls. Compiled always so that the crates above can run it.
//!
//! Every check makes its own ids (a per-process counter and the time in the prefix), so the
//! suite can run any number of times against the same directory. The checks panic with a
//! message naming the backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use model::{StaffId, SubjectId};

use crate::StoreError;
use crate::directory::{
    AccessRequestRecord, ApprovalRecord, CASE_ASSIGNEES_MAX, CASE_DESTINATIONS_MAX,
    CASE_PURPOSE_BYTES_MAX, CASE_SUBJECTS_MAX, CaseRecord, DirectoryStore, HR_FACTS_PER_STAFF_MAX,
    HrEvent, HrFact, LegalProcess, OnCall, REQUEST_APPROVALS_MAX, REQUEST_BYTES_MAX,
    REQUEST_NEEDS_MAX, RequestStatus, STAFF_ROLES_MAX, Shift, StaffRecord,
};

/// Runs every check, in order.
pub async fn run_all(directory: &dyn DirectoryStore, backend: &str) {
    check_staff(directory, backend).await;
    check_hr_facts(directory, backend).await;
    check_on_call(directory, backend).await;
    check_cases(directory, backend).await;
    check_access_requests(directory, backend).await;
    check_record_approval(directory, backend).await;
    check_concurrent_approvals(directory, backend).await;
    check_limits(directory, backend).await;
    check_invalid_records(directory, backend).await;
}

/// Staff round trips with every optional field set and unset; an upsert replaces every field.
pub async fn check_staff(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let id = ids.staff("full");
    assert_eq!(
        directory.staff(&id).await.expect("staff"),
        None,
        "{backend}"
    );
    let full = full_staff(&id);
    directory.upsert_staff(&full).await.expect("upsert");
    assert_eq!(
        directory.staff(&id).await.expect("staff"),
        Some(full),
        "{backend}: every field set"
    );
    let bare = bare_staff(&id);
    directory.upsert_staff(&bare).await.expect("replace");
    assert_eq!(
        directory.staff(&id).await.expect("staff"),
        Some(bare.clone()),
        "{backend}: the upsert replaced every field"
    );
    let other = ids.staff("other");
    assert_eq!(
        directory.staff(&other).await.expect("staff"),
        None,
        "{backend}: another id is untouched"
    );
}

/// HR facts come back by time, then in the order added; every event and optional field
/// survives; another staff member's facts stay apart.
pub async fn check_hr_facts(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let (id, other) = (ids.staff("a"), ids.staff("b"));
    let fact = |at_ms, event, country: Option<&str>, until_ms| HrFact {
        staff: id.clone(),
        at_ms,
        event,
        country: country.map(str::to_owned),
        until_ms,
    };
    let facts = [
        fact(300, HrEvent::Travel, Some("FR"), Some(400)),
        fact(100, HrEvent::NewHire, None, None),
        fact(300, HrEvent::DismissalNotice, None, Some(900)),
        fact(200, HrEvent::Leaving, None, None),
    ];
    for fact in &facts {
        directory.add_hr_fact(fact).await.expect("add hr fact");
    }
    directory
        .add_hr_fact(&HrFact {
            staff: other.clone(),
            ..facts[0].clone()
        })
        .await
        .expect("add another's fact");
    let expected = vec![
        facts[1].clone(),
        facts[3].clone(),
        facts[0].clone(),
        facts[2].clone(),
    ];
    assert_eq!(
        directory.hr_facts(&id).await.expect("hr facts"),
        expected,
        "{backend}: ordered by time, then as added"
    );
    assert_eq!(
        directory.hr_facts(&other).await.expect("hr facts").len(),
        1,
        "{backend}"
    );
    assert_eq!(
        directory
            .hr_facts(&ids.staff("nobody"))
            .await
            .expect("hr facts"),
        vec![],
        "{backend}"
    );
}

/// On-call periods come back by start, then in the order added.
pub async fn check_on_call(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let id = ids.staff("a");
    let period = |from_ms, until_ms| OnCall {
        staff: id.clone(),
        from_ms,
        until_ms,
    };
    let periods = [period(50, 60), period(10, 20), period(50, 55)];
    for period in &periods {
        directory.add_on_call(period).await.expect("add on call");
    }
    assert_eq!(
        directory.on_call(&id).await.expect("on call"),
        vec![periods[1].clone(), periods[0].clone(), periods[2].clone()],
        "{backend}"
    );
    assert_eq!(
        directory
            .on_call(&ids.staff("nobody"))
            .await
            .expect("on call"),
        vec![],
        "{backend}"
    );
}

/// Cases round trip with every optional field set and unset; creating twice fails and keeps
/// the first; updating a missing case fails and creates nothing; an update keeps
/// `created_at_ms`.
pub async fn check_cases(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let full = full_case(&ids, "full");
    let bare = bare_case(&ids, "bare");
    assert_eq!(
        directory.case(&full.id).await.expect("case"),
        None,
        "{backend}"
    );
    directory.create_case(&full).await.expect("create full");
    directory.create_case(&bare).await.expect("create bare");
    assert_eq!(
        directory.case(&full.id).await.expect("case"),
        Some(full.clone()),
        "{backend}: every field set"
    );
    assert_eq!(
        directory.case(&bare.id).await.expect("case"),
        Some(bare.clone()),
        "{backend}: every optional field unset"
    );

    let twice = CaseRecord {
        purpose: "another purpose".to_owned(),
        ..bare.clone()
    };
    match directory.create_case(&twice).await {
        Err(StoreError::AlreadyExists { what, id }) => {
            assert_eq!((what, id.as_str()), ("case", bare.id.as_str()), "{backend}");
        }
        other => panic!("{backend}: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        directory.case(&bare.id).await.expect("case"),
        Some(bare.clone()),
        "{backend}: the first case is kept"
    );

    let missing = bare_case(&ids, "missing");
    match directory.update_case(&missing).await {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!(
                (what, id.as_str()),
                ("case", missing.id.as_str()),
                "{backend}"
            );
        }
        other => panic!("{backend}: expected NotFound, got {other:?}"),
    }
    assert_eq!(
        directory.case(&missing.id).await.expect("case"),
        None,
        "{backend}: an update creates nothing"
    );

    // Full becomes bare and bare becomes full; the created time given is ignored.
    let emptied = CaseRecord {
        created_at_ms: 1,
        updated_at_ms: 9_000,
        ..bare_case(&ids, "full")
    };
    directory
        .update_case(&emptied)
        .await
        .expect("update to bare");
    assert_eq!(
        directory.case(&full.id).await.expect("case"),
        Some(CaseRecord {
            created_at_ms: full.created_at_ms,
            ..emptied
        }),
        "{backend}: replaced, created_at_ms kept"
    );
    let filled = CaseRecord {
        created_at_ms: 2,
        ..full_case(&ids, "bare")
    };
    directory
        .update_case(&filled)
        .await
        .expect("update to full");
    assert_eq!(
        directory.case(&bare.id).await.expect("case"),
        Some(CaseRecord {
            created_at_ms: bare.created_at_ms,
            ..filled
        }),
        "{backend}"
    );
}

/// Access requests round trip (nested request JSON, approvals or none); creating twice fails.
pub async fn check_access_requests(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let fresh = pending_request(&ids.record("fresh"));
    let decided = AccessRequestRecord {
        status: RequestStatus::Rejected,
        needs: Vec::new(),
        approvals: vec![approval("approver-1", false, &["independent"])],
        request: serde_json::json!({"nested": {"list": [1, 2.5, null, true]}, "text": "é"}),
        ..pending_request(&ids.record("decided"))
    };
    assert_eq!(
        directory.access_request(&fresh.id).await.expect("request"),
        None,
        "{backend}"
    );
    for request in [&fresh, &decided] {
        directory
            .create_access_request(request)
            .await
            .expect("create request");
        assert_eq!(
            directory
                .access_request(&request.id)
                .await
                .expect("request"),
            Some(request.clone()),
            "{backend}"
        );
    }
    match directory
        .create_access_request(&AccessRequestRecord {
            actor: "someone-else".to_owned(),
            ..fresh.clone()
        })
        .await
    {
        Err(StoreError::AlreadyExists { what, id }) => {
            assert_eq!(
                (what, id),
                ("access request", fresh.id.clone()),
                "{backend}"
            );
        }
        other => panic!("{backend}: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        directory.access_request(&fresh.id).await.expect("request"),
        Some(fresh),
        "{backend}: the first request is kept"
    );
}

/// An approval that leaves the request pending is appended; the deciding one sets the
/// status; any later one fails with `AlreadyDecided` and changes nothing.
pub async fn check_record_approval(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let request = pending_request(&ids.record("r"));
    directory
        .create_access_request(&request)
        .await
        .expect("create");
    let first = approval("approver-1", true, &["independent"]);
    let needs = vec!["custodian".to_owned()];
    let after_first = directory
        .record_approval(&request.id, &first, RequestStatus::Pending, &needs)
        .await
        .expect("first approval");
    let expected = AccessRequestRecord {
        approvals: vec![first.clone()],
        needs: needs.clone(),
        ..request.clone()
    };
    assert_eq!(after_first, expected, "{backend}: returned record");
    assert_eq!(
        directory
            .access_request(&request.id)
            .await
            .expect("request"),
        Some(expected.clone()),
        "{backend}: stored record"
    );

    let second = approval("approver-2", true, &["custodian"]);
    let decided = directory
        .record_approval(&request.id, &second, RequestStatus::Approved, &[])
        .await
        .expect("deciding approval");
    let expected = AccessRequestRecord {
        status: RequestStatus::Approved,
        needs: Vec::new(),
        approvals: vec![first, second],
        ..expected
    };
    assert_eq!(decided, expected, "{backend}");

    let late = approval("approver-3", false, &[]);
    match directory
        .record_approval(&request.id, &late, RequestStatus::Rejected, &[])
        .await
    {
        Err(StoreError::AlreadyDecided { id, status }) => {
            assert_eq!(
                (id, status),
                (request.id.clone(), RequestStatus::Approved),
                "{backend}"
            );
        }
        other => panic!("{backend}: expected AlreadyDecided, got {other:?}"),
    }
    assert_eq!(
        directory
            .access_request(&request.id)
            .await
            .expect("request"),
        Some(expected),
        "{backend}: a late approval changes nothing"
    );

    let missing = ids.record("missing");
    match directory
        .record_approval(&missing, &late, RequestStatus::Rejected, &[])
        .await
    {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!((what, id), ("access request", missing), "{backend}");
        }
        other => panic!("{backend}: expected NotFound, got {other:?}"),
    }
}

/// Two deciding approvals at once: exactly one wins, the other is `AlreadyDecided`, and only
/// the winner's approval is stored. Two approvals at once that both leave the request
/// pending are both kept (no lost update).
pub async fn check_concurrent_approvals(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let request = pending_request(&ids.record("race"));
    directory
        .create_access_request(&request)
        .await
        .expect("create");
    let approve = approval("approver-a", true, &["independent", "custodian"]);
    let reject = approval("approver-b", false, &[]);
    let (approved, rejected) = tokio::join!(
        directory.record_approval(&request.id, &approve, RequestStatus::Approved, &[]),
        directory.record_approval(&request.id, &reject, RequestStatus::Rejected, &[]),
    );
    let stored = directory
        .access_request(&request.id)
        .await
        .expect("request")
        .expect("the request exists");
    let winner = match (approved, rejected) {
        (Ok(record), Err(StoreError::AlreadyDecided { status, .. })) => {
            assert_eq!(status, RequestStatus::Approved, "{backend}");
            record
        }
        (Err(StoreError::AlreadyDecided { status, .. }), Ok(record)) => {
            assert_eq!(status, RequestStatus::Rejected, "{backend}");
            record
        }
        other => panic!("{backend}: expected exactly one approval to win, got {other:?}"),
    };
    assert_eq!(stored, winner, "{backend}: the winner's record is stored");
    assert_eq!(stored.approvals.len(), 1, "{backend}");

    let request = pending_request(&ids.record("both"));
    directory
        .create_access_request(&request)
        .await
        .expect("create");
    let needs = request.needs.clone();
    let (left, right) = (approval("left", true, &[]), approval("right", true, &[]));
    let (left_result, right_result) = tokio::join!(
        directory.record_approval(&request.id, &left, RequestStatus::Pending, &needs),
        directory.record_approval(&request.id, &right, RequestStatus::Pending, &needs),
    );
    left_result.expect("left approval");
    right_result.expect("right approval");
    let stored = directory
        .access_request(&request.id)
        .await
        .expect("request")
        .expect("the request exists");
    let mut approvers: Vec<&str> = stored
        .approvals
        .iter()
        .map(|approval| approval.approver.as_str())
        .collect();
    approvers.sort_unstable();
    assert_eq!(
        approvers,
        ["left", "right"],
        "{backend}: both approvals kept"
    );
}

/// Each limit is rejected naming the limit and the record, and nothing is written; a record
/// exactly at a limit is accepted.
pub async fn check_limits(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();

    let staff = StaffRecord {
        roles: vec!["role".to_owned(); STAFF_ROLES_MAX + 1],
        ..bare_staff(&ids.staff("roles"))
    };
    expect_limit(
        directory.upsert_staff(&staff).await,
        "STAFF_ROLES_MAX",
        staff.id.as_str(),
        backend,
    );
    assert_eq!(
        directory.staff(&staff.id).await.expect("staff"),
        None,
        "{backend}"
    );

    let at_max = bare_case(&ids, "subjects-at-max");
    let at_max = CaseRecord {
        subjects: (0..CASE_SUBJECTS_MAX)
            .map(|index| subject(&format!("subject-{index}")))
            .collect(),
        ..at_max
    };
    directory
        .create_case(&at_max)
        .await
        .expect("a case with CASE_SUBJECTS_MAX subjects");
    assert_eq!(
        directory.case(&at_max.id).await.expect("case"),
        Some(at_max.clone()),
        "{backend}"
    );
    let mut over = at_max.clone();
    over.subjects.push(subject("one-too-many"));
    expect_limit(
        directory.update_case(&over).await,
        "CASE_SUBJECTS_MAX",
        &over.id,
        backend,
    );
    assert_eq!(
        directory.case(&at_max.id).await.expect("case"),
        Some(at_max),
        "{backend}: a rejected update changes nothing"
    );

    let base = bare_case(&ids, "limits");
    let cases = [
        (
            "CASE_SUBJECTS_MAX",
            CaseRecord {
                subjects: vec![subject("s"); CASE_SUBJECTS_MAX + 1],
                ..base.clone()
            },
        ),
        (
            "CASE_ASSIGNEES_MAX",
            CaseRecord {
                assignees: vec![ids.staff("assignee"); CASE_ASSIGNEES_MAX + 1],
                ..base.clone()
            },
        ),
        (
            "CASE_DESTINATIONS_MAX",
            CaseRecord {
                destinations: vec!["ticket".to_owned(); CASE_DESTINATIONS_MAX + 1],
                ..base.clone()
            },
        ),
        (
            "CASE_PURPOSE_BYTES_MAX",
            CaseRecord {
                purpose: "p".repeat(CASE_PURPOSE_BYTES_MAX + 1),
                ..base.clone()
            },
        ),
    ];
    for (limit, case) in &cases {
        expect_limit(directory.create_case(case).await, limit, &base.id, backend);
    }
    assert_eq!(
        directory.case(&base.id).await.expect("case"),
        None,
        "{backend}"
    );

    let request = pending_request(&ids.record("request-limits"));
    let requests = [
        (
            "REQUEST_BYTES_MAX",
            AccessRequestRecord {
                request: serde_json::Value::String("x".repeat(REQUEST_BYTES_MAX)),
                ..request.clone()
            },
        ),
        (
            "REQUEST_NEEDS_MAX",
            AccessRequestRecord {
                needs: vec!["kind".to_owned(); REQUEST_NEEDS_MAX + 1],
                ..request.clone()
            },
        ),
        (
            "REQUEST_APPROVALS_MAX",
            AccessRequestRecord {
                approvals: vec![approval("a", true, &[]); REQUEST_APPROVALS_MAX + 1],
                ..request.clone()
            },
        ),
    ];
    for (limit, record) in &requests {
        expect_limit(
            directory.create_access_request(record).await,
            limit,
            &request.id,
            backend,
        );
    }
    assert_eq!(
        directory
            .access_request(&request.id)
            .await
            .expect("request"),
        None,
        "{backend}"
    );

    // Approvals up to the limit are recorded; the next one is refused.
    directory
        .create_access_request(&request)
        .await
        .expect("create");
    let one = approval("approver", true, &[]);
    for _ in 0..REQUEST_APPROVALS_MAX {
        directory
            .record_approval(&request.id, &one, RequestStatus::Pending, &request.needs)
            .await
            .expect("approval within the limit");
    }
    expect_limit(
        directory
            .record_approval(&request.id, &one, RequestStatus::Approved, &[])
            .await
            .map(|_| ()),
        "REQUEST_APPROVALS_MAX",
        &request.id,
        backend,
    );
    let stored = directory
        .access_request(&request.id)
        .await
        .expect("request")
        .expect("exists");
    assert_eq!(
        (stored.status, stored.approvals.len()),
        (RequestStatus::Pending, REQUEST_APPROVALS_MAX),
        "{backend}: the refused approval changed nothing"
    );

    // Facts per staff member: up to the limit, then refused.
    let busy = ids.staff("busy");
    let fact = HrFact {
        staff: busy.clone(),
        at_ms: 1,
        event: HrEvent::Travel,
        country: None,
        until_ms: None,
    };
    for _ in 0..HR_FACTS_PER_STAFF_MAX {
        directory
            .add_hr_fact(&fact)
            .await
            .expect("fact within the limit");
    }
    expect_limit(
        directory.add_hr_fact(&fact).await,
        "HR_FACTS_PER_STAFF_MAX",
        busy.as_str(),
        backend,
    );
    assert_eq!(
        directory.hr_facts(&busy).await.expect("hr facts").len(),
        HR_FACTS_PER_STAFF_MAX,
        "{backend}"
    );
}

/// Malformed records are refused with `InvalidRecord` and nothing is written.
pub async fn check_invalid_records(directory: &dyn DirectoryStore, backend: &str) {
    let ids = Ids::new();
    let id = ids.staff("invalid");
    let staff_cases = [
        StaffRecord {
            country: Some("fr".to_owned()),
            ..bare_staff(&id)
        },
        StaffRecord {
            region: Some("Not A Region".to_owned()),
            ..bare_staff(&id)
        },
        StaffRecord {
            shift: Some(Shift {
                tz: "Europe/Paris".to_owned(),
                start: "24:00".to_owned(),
                end: "08:00".to_owned(),
            }),
            ..bare_staff(&id)
        },
        StaffRecord {
            roles: vec![String::new()],
            ..bare_staff(&id)
        },
    ];
    for staff in &staff_cases {
        expect_invalid(directory.upsert_staff(staff).await, backend);
    }
    assert_eq!(
        directory.staff(&id).await.expect("staff"),
        None,
        "{backend}"
    );

    let case = bare_case(&ids, "bad id");
    expect_invalid(directory.create_case(&case).await, backend);
    let digest = CaseRecord {
        legal_process: Some(LegalProcess {
            document_sha256: "ABC".to_owned(),
            ..legal_process()
        }),
        ..bare_case(&ids, "digest")
    };
    expect_invalid(directory.create_case(&digest).await, backend);
    assert_eq!(
        directory.case(&digest.id).await.expect("case"),
        None,
        "{backend}"
    );

    let backwards = OnCall {
        staff: id.clone(),
        from_ms: 10,
        until_ms: 10,
    };
    expect_invalid(directory.add_on_call(&backwards).await, backend);
    let fact = HrFact {
        staff: id.clone(),
        at_ms: 10,
        event: HrEvent::Travel,
        country: Some("FRA".to_owned()),
        until_ms: None,
    };
    expect_invalid(directory.add_hr_fact(&fact).await, backend);
    assert_eq!(
        directory.on_call(&id).await.expect("on call"),
        vec![],
        "{backend}"
    );
    assert_eq!(
        directory.hr_facts(&id).await.expect("hr facts"),
        vec![],
        "{backend}"
    );

    let expired = AccessRequestRecord {
        expires_at_ms: 0,
        ..pending_request(&ids.record("expired"))
    };
    expect_invalid(directory.create_access_request(&expired).await, backend);
    assert_eq!(
        directory
            .access_request(&expired.id)
            .await
            .expect("request"),
        None,
        "{backend}"
    );
}

fn expect_limit(result: Result<(), StoreError>, limit: &str, id: &str, backend: &str) {
    match result {
        Err(StoreError::LimitExceeded {
            limit: found_limit,
            id: found_id,
            count,
            max,
            ..
        }) => {
            assert_eq!((found_limit, found_id.as_str()), (limit, id), "{backend}");
            assert!(count > max, "{backend}: {limit}: {count} > {max}");
        }
        other => panic!("{backend}: expected {limit} exceeded for {id}, got {other:?}"),
    }
}

fn expect_invalid(result: Result<(), StoreError>, backend: &str) {
    assert!(
        matches!(result, Err(StoreError::InvalidRecord { .. })),
        "{backend}: expected InvalidRecord, got {result:?}"
    );
}

/// Unique ids for one check.
struct Ids {
    prefix: String,
}

impl Ids {
    fn new() -> Ids {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        Ids {
            prefix: format!("directory-{}-{nanos}-{run}-", std::process::id()),
        }
    }

    fn staff(&self, name: &str) -> StaffId {
        StaffId::new(&format!("{}{name}", self.prefix)).expect("valid staff id")
    }

    /// A case or access request id.
    fn record(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

fn subject(name: &str) -> SubjectId {
    SubjectId::new(name).expect("valid subject id")
}

fn full_staff(id: &StaffId) -> StaffRecord {
    StaffRecord {
        id: id.clone(),
        roles: vec!["support".to_owned(), "trust-and-safety".to_owned()],
        team: Some("tier-2".to_owned()),
        entity: Some("Example GmbH".to_owned()),
        country: Some("DE".to_owned()),
        region: Some("eu".to_owned()),
        shift: Some(Shift {
            tz: "Europe/Berlin".to_owned(),
            start: "22:00".to_owned(),
            end: "06:30".to_owned(),
        }),
        updated_at_ms: 1_000,
    }
}

fn bare_staff(id: &StaffId) -> StaffRecord {
    StaffRecord {
        id: id.clone(),
        roles: Vec::new(),
        team: None,
        entity: None,
        country: None,
        region: None,
        shift: None,
        updated_at_ms: 2_000,
    }
}

fn legal_process() -> LegalProcess {
    LegalProcess {
        kind: "court_order".to_owned(),
        issuer: "Amtsgericht Berlin".to_owned(),
        document_sha256: "0123456789abcdef".repeat(4),
        validated: true,
        validated_by: Some(StaffId::new("legal-1").expect("valid staff id")),
        nondisclosure_until_ms: None,
    }
}

fn full_case(ids: &Ids, name: &str) -> CaseRecord {
    CaseRecord {
        id: ids.record(name),
        purpose: "fraud investigation: chargebacks".to_owned(),
        open: true,
        assignees: vec![ids.staff("investigator"), ids.staff("lead")],
        subjects: vec![subject("subject-1"), subject("subject-2")],
        requested_by: Some(subject("subject-1")),
        legal_process: Some(legal_process()),
        destinations: vec!["ticket:FRAUD-1".to_owned(), "police".to_owned()],
        created_at_ms: 100,
        updated_at_ms: 200,
    }
}

fn bare_case(ids: &Ids, name: &str) -> CaseRecord {
    CaseRecord {
        id: ids.record(name),
        purpose: String::new(),
        open: false,
        assignees: Vec::new(),
        subjects: Vec::new(),
        requested_by: None,
        legal_process: None,
        destinations: Vec::new(),
        created_at_ms: 300,
        updated_at_ms: 300,
    }
}

fn pending_request(id: &str) -> AccessRequestRecord {
    AccessRequestRecord {
        id: id.to_owned(),
        actor: "staff-7".to_owned(),
        created_at_ms: 1_000,
        expires_at_ms: 61_000,
        status: RequestStatus::Pending,
        needs: vec!["independent".to_owned(), "custodian".to_owned()],
        request: serde_json::json!({"subject": "subject-1", "fields": ["email"], "view": "domain"}),
        approvals: Vec::new(),
    }
}

fn approval(approver: &str, approve: bool, satisfies: &[&str]) -> ApprovalRecord {
    ApprovalRecord {
        approver: approver.to_owned(),
        approve,
        note: format!("{approver} looked at the case"),
        at_ms: 2_000,
        satisfies: satisfies.iter().map(|kind| (*kind).to_owned()).collect(),
    }
}
