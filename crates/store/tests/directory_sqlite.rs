//! The SQLite directory: the directory and alert conformance suites on a temporary
//! directory, plus what only a file database has — reopening keeps every record, the schema
//! version guard, and the connection settings shared with the region databases. (The upgrade
//! from schema version 1 is tested beside the migrations, in `directory_sqlite.rs`.)

use model::StaffId;
use std::collections::BTreeMap;

use store::{
    AccessRequestRecord, AlertAction, AlertNote, AlertRecord, AlertStatus, AlertStore,
    ApprovalRecord, CaseRecord, DIRECTORY_SCHEMA_VERSION, Delivery, DetectorCheckpoint,
    DirectoryStore, EvidenceRef, HrEvent, HrFact, LegalProcess, OnCall, RequestStatus, Severity,
    Shift, SqliteDirectory, SqlitePragmas, StaffRecord, StoreError, alert_conformance,
    directory_conformance,
};

fn staff_id(name: &str) -> StaffId {
    StaffId::new(name).unwrap()
}

#[tokio::test]
async fn conformance_suite_passes_twice_on_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let directory = SqliteDirectory::open(dir.path()).unwrap();
    directory_conformance::run_all(&directory, "sqlite").await;
    alert_conformance::run_all(&directory, "sqlite").await;
    directory_conformance::run_all(&directory, "sqlite").await;
    alert_conformance::run_all(&directory, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let directory = SqliteDirectory::open(dir.path()).unwrap();
    directory_conformance::run_all(&directory, "sqlite").await;
    alert_conformance::run_all(&directory, "sqlite").await;
}

#[tokio::test]
async fn reopening_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("data");
    let staff = StaffRecord {
        id: staff_id("alice"),
        roles: vec!["support".to_owned()],
        team: Some("tier-1".to_owned()),
        entity: Some("Example Ltd".to_owned()),
        country: Some("GB".to_owned()),
        region: Some("eu".to_owned()),
        shift: Some(Shift {
            tz: "Europe/London".to_owned(),
            start: "09:00".to_owned(),
            end: "17:30".to_owned(),
        }),
        updated_at_ms: 5,
    };
    let fact = HrFact {
        staff: staff_id("alice"),
        at_ms: 10,
        event: HrEvent::Travel,
        country: Some("SG".to_owned()),
        until_ms: Some(20),
    };
    let period = OnCall {
        staff: staff_id("alice"),
        from_ms: 100,
        until_ms: 200,
    };
    let case = CaseRecord {
        id: "case:2026-0001".to_owned(),
        purpose: "account takeover".to_owned(),
        open: true,
        assignees: vec![staff_id("alice")],
        subjects: vec![model::SubjectId::new("user-1").unwrap()],
        requested_by: None,
        legal_process: Some(LegalProcess {
            kind: "subpoena".to_owned(),
            issuer: "a court".to_owned(),
            document_sha256: "ab".repeat(32),
            validated: false,
            validated_by: None,
            nondisclosure_until_ms: None,
        }),
        destinations: vec!["ticket:ATO-1".to_owned()],
        created_at_ms: 1,
        updated_at_ms: 2,
    };
    let request = AccessRequestRecord {
        id: "request-1".to_owned(),
        actor: "alice".to_owned(),
        created_at_ms: 1,
        expires_at_ms: 100,
        status: RequestStatus::Pending,
        needs: vec!["independent".to_owned()],
        request: serde_json::json!({"case": "case:2026-0001"}),
        approvals: Vec::new(),
    };
    let approval = ApprovalRecord {
        approver: "bob".to_owned(),
        approve: true,
        note: String::new(),
        at_ms: 3,
        satisfies: vec!["independent".to_owned()],
    };
    let alert = AlertRecord {
        id: "0123456789abcdef0123456789abcdef".to_owned(),
        rule: "colleague_lookup".to_owned(),
        severity: Severity::High,
        actor: "alice".to_owned(),
        subjects: vec!["user-1".to_owned()],
        evidence: vec![EvidenceRef {
            region: "eu".to_owned(),
            index: 7,
            request: "request-1".to_owned(),
        }],
        summary: "alice read a colleague's record".to_owned(),
        at_ms: 10,
        raised_at_ms: 11,
        status: AlertStatus::Open,
        updated_at_ms: 11,
    };
    let acknowledged = AlertNote {
        at_ms: 12,
        by: "bob".to_owned(),
        action: AlertAction::Acknowledge,
        note: "looking".to_owned(),
    };
    let checkpoint = DetectorCheckpoint {
        name: "detector".to_owned(),
        cursors: BTreeMap::from([("eu".to_owned(), 8)]),
        state: vec![1, 2, 3],
        saved_at_ms: 13,
    };
    let (decided, acknowledged_alert) = {
        let directory = SqliteDirectory::open(&nested).unwrap();
        directory
            .insert_alerts(std::slice::from_ref(&alert), true, 20)
            .await
            .unwrap();
        let acknowledged_alert = directory
            .update_alert(&alert.id, &acknowledged)
            .await
            .unwrap();
        directory
            .save_detector_checkpoint(&checkpoint)
            .await
            .unwrap();
        directory.upsert_staff(&staff).await.unwrap();
        directory.add_hr_fact(&fact).await.unwrap();
        directory.add_on_call(&period).await.unwrap();
        directory.create_case(&case).await.unwrap();
        directory.create_access_request(&request).await.unwrap();
        let decided = directory
            .record_approval(&request.id, &approval, RequestStatus::Approved, &[])
            .await
            .unwrap();
        (decided, acknowledged_alert)
    };
    let directory = SqliteDirectory::open(&nested).unwrap();
    assert_eq!(directory.path(), nested.join("directory.db"));
    assert_eq!(directory.staff(&staff.id).await.unwrap(), Some(staff));
    assert_eq!(
        directory.hr_facts(&staff_id("alice")).await.unwrap(),
        vec![fact]
    );
    assert_eq!(
        directory.on_call(&staff_id("alice")).await.unwrap(),
        vec![period]
    );
    assert_eq!(directory.case(&case.id).await.unwrap(), Some(case));
    assert_eq!(
        directory.access_request(&request.id).await.unwrap(),
        Some(decided)
    );
    assert_eq!(
        directory.alert(&alert.id).await.unwrap(),
        Some((acknowledged_alert.clone(), vec![acknowledged]))
    );
    assert_eq!(
        directory.due_deliveries(20, 10).await.unwrap(),
        [(
            Delivery {
                alert_id: alert.id.clone(),
                attempts: 0,
                next_at_ms: 20,
                last_error: None
            },
            acknowledged_alert
        )]
    );
    assert_eq!(
        directory.detector_checkpoint("detector").await.unwrap(),
        Some(checkpoint)
    );
    assert_eq!(
        directory.schema_version().await.unwrap(),
        DIRECTORY_SCHEMA_VERSION
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteDirectory::open(dir.path()).unwrap());
    let connection = rusqlite::Connection::open(SqliteDirectory::path_for(dir.path())).unwrap();
    connection
        .execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, 0)",
            [DIRECTORY_SCHEMA_VERSION + 1],
        )
        .unwrap();
    drop(connection);
    match SqliteDirectory::open(dir.path()) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(
                (found, supported),
                (DIRECTORY_SCHEMA_VERSION + 1, DIRECTORY_SCHEMA_VERSION)
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn wal_and_pragmas_match_the_region_databases() {
    let dir = tempfile::tempdir().unwrap();
    let directory = SqliteDirectory::open(dir.path()).unwrap();
    let expected = SqlitePragmas {
        journal_mode: "wal".to_owned(),
        synchronous: 2,
        secure_delete: true,
        foreign_keys: true,
        busy_timeout_ms: store::SQLITE_BUSY_TIMEOUT_MS as i64,
        // SQLite's defaults: 2 MiB of cache, a checkpoint every 1,000 WAL pages.
        cache_size: -2000,
        wal_autocheckpoint: 1000,
    };
    assert_eq!(directory.pragmas().await.unwrap(), expected);
    let tables: Vec<(String, i64)> = {
        let connection = rusqlite::Connection::open(SqliteDirectory::path_for(dir.path())).unwrap();
        let mut select = connection
            .prepare("SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        select
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "access_requests",
            "alert_deliveries",
            "alert_notes",
            "alert_subjects",
            "alerts",
            "cases",
            "detector_checkpoints",
            "hr_facts",
            "on_call",
            "schema_migrations",
            "staff"
        ]
    );
    assert!(
        tables.iter().all(|(_, strict)| *strict == 1),
        "every table is STRICT: {tables:?}"
    );
}
