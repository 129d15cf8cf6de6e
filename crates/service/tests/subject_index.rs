//! The per-subject access index follower over real stores (SQLite, PostgreSQL): complete
//! against a full scan of the log, idempotent when run again, and exact when two followers
//! race (as a restarted node and a report catching up would).

use std::collections::BTreeMap;

use serde_json::json;
use service::testing::{TestVault, postgres_vault, sqlite_vault, subject};
use service::{AccessInput, AccessSettings, Caller, CallerKind};

/// Accesses to three subjects, interleaved, plus a search matching nobody (an entry that
/// names no subject); returns each subject's log indexes found by scanning the whole log.
async fn accesses(t: &TestVault) -> BTreeMap<String, Vec<u64>> {
    let gate = t.gate(AccessSettings::default());
    for id in ["u-1", "u-2", "u-3"] {
        t.ingest(id, &[("email", &format!("{id}@example.com"))]).await;
    }
    let caller = Caller {
        id: "s-1".to_owned(),
        kind: CallerKind::Staff,
        roles: vec!["support_agent".to_owned()],
        team: None,
        entity: None,
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    };
    for round in 0..7 {
        let who = ["u-1", "u-2", "u-1", "u-3"][round % 4];
        let input: AccessInput = serde_json::from_value(json!({"subjects": [who], "fields": {"email": "exact"}, "purpose": "support"})).unwrap();
        gate.access(&caller, &input).await.unwrap();
    }
    let search: AccessInput = serde_json::from_value(
        json!({"action": "search", "query": {"email": "nobody@example.com"}, "fields": {"email": "masked"}, "purpose": "support"}),
    )
    .unwrap();
    gate.access(&caller, &search).await.unwrap();
    let log = t.vault.log(&t.region).unwrap();
    let size = log.size().await.unwrap();
    let mut scanned: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (index, canonical) in log.canonical_entries(0, size).await.unwrap().iter().enumerate() {
        if let detect::Entry::Access(access) = detect::decode("us", index as u64, canonical).unwrap()
            && !access.subject.id.is_empty()
        {
            scanned.entry(access.subject.id.clone()).or_default().push(index as u64);
        }
    }
    assert_eq!(scanned.values().map(Vec::len).sum::<usize>(), 7, "seven accesses name a subject: {scanned:?}");
    assert_eq!(size, 8, "and the search that matched nobody is logged too");
    scanned
}

async fn the_index_is_complete_idempotent_and_exact_under_racing_followers(t: TestVault) {
    let scanned = accesses(&t).await;
    let log = t.vault.log(&t.region).unwrap();
    let size = log.size().await.unwrap();
    // Part of the way, then two followers at once, then once more with nothing left.
    assert_eq!(log.index_subjects_to(3).await.unwrap(), 3);
    let (first, second) = tokio::join!(log.index_subjects_to(size), log.index_subjects_to(size));
    assert_eq!((first.unwrap(), second.unwrap()), (size, size));
    assert_eq!(log.index_subjects_to(u64::MAX).await.unwrap(), size, "clamped to the log's size");
    let index = log.subject_index().unwrap();
    for (id, expected) in &scanned {
        assert_eq!(&index.subject_entries(&subject(id), 0, size, 100).await.unwrap(), expected, "{id}");
    }
    assert_eq!(index.subject_index_cursor().await.unwrap(), size);
}

#[tokio::test]
async fn the_index_is_complete_idempotent_and_exact_under_racing_followers_on_sqlite() {
    the_index_is_complete_idempotent_and_exact_under_racing_followers(sqlite_vault(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_complete_idempotent_and_exact_under_racing_followers_on_postgres() {
    let Some(t) = postgres_vault(None, None).await else { return };
    the_index_is_complete_idempotent_and_exact_under_racing_followers(t).await;
}

/// An index ahead of its log (a region database restored from a backup without its index
/// file) is refused with what to do, not read.
async fn an_index_ahead_of_its_log_is_refused(t: TestVault) {
    accesses(&t).await;
    let log = t.vault.log(&t.region).unwrap();
    let size = log.size().await.unwrap();
    let index = log.subject_index().unwrap();
    index.index_subjects(&store::SubjectIndexBatch { from: 0, to: size + 5, rows: Vec::new(), timeline: Vec::new() }).await.unwrap();
    let error = log.index_subjects_to(u64::MAX).await.unwrap_err().to_string();
    assert!(error.contains(&format!("covers {} log entries but the log holds {size}", size + 5)), "{error}");
    assert!(error.contains(&format!("delete {}.index.db", t.region)), "{error}");
}

#[tokio::test]
async fn an_index_ahead_of_its_log_is_refused_on_sqlite() {
    an_index_ahead_of_its_log_is_refused(sqlite_vault(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_ahead_of_its_log_is_refused_on_postgres() {
    let Some(t) = postgres_vault(None, None).await else { return };
    an_index_ahead_of_its_log_is_refused(t).await;
}
