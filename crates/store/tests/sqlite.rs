//! The SQLite backend: the conformance suite on a temporary directory, plus what only a file
//! database has — reopening, the schema version guard, the WAL and pragmas, one file per
//! region, and erased bytes gone from the file.

use std::path::Path;

use model::{FieldKind, RegionId, SubjectId};
use store::conformance;
use store::{
    RegionStore, SCHEMA_VERSION, SealedValue, SqlitePragmas, SqliteStore, StoreError, StoredKey,
    SubjectIndexBatch, SubjectIndexStore, SubjectUpsert, WriteBatch,
};

fn region(name: &str) -> RegionId {
    RegionId::new(name).unwrap()
}

fn subject(name: &str) -> SubjectId {
    SubjectId::new(name).unwrap()
}

/// One subject with a key and one value whose sealed bytes are `sealed`.
async fn write_one(store: &SqliteStore, name: &str, sealed: &[u8]) {
    let id = subject(name);
    let key = StoredKey {
        subject: id.clone(),
        group: 1,
        version: 1,
        wrapped: vec![7; 40],
    };
    store.ensure_data_keys(&[key]).await.unwrap();
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![SubjectUpsert {
            id: id.clone(),
            labels: Default::default(),
            staff: None,
            at_ms: 1,
        }],
        values: vec![SealedValue {
            subject: id,
            field: FieldKind::Email,
            value_id: [1; 16],
            sealed: sealed.to_vec(),
            first_seen_ms: 1,
            last_seen_ms: 1,
        }],
    };
    store.write(&batch).await.unwrap();
}

#[tokio::test]
async fn conformance_suite_passes_twice_on_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    conformance::run_all(&store).await;
    conformance::run_all(&store).await;
    conformance::run_log_all(&store, "sqlite").await;
    conformance::run_log_all(&store, "sqlite").await;
}

#[tokio::test]
async fn subject_index_conformance_passes_twice_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    store::subject_index_conformance::run_all(&store, "sqlite").await;
    store::subject_index_conformance::run_all(&store, "sqlite").await;
    let cursor = store::SubjectIndexStore::subject_index_cursor(&store).await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(dir.path(), region("eu")).unwrap();
    assert_eq!(store::SubjectIndexStore::subject_index_cursor(&reopened).await.unwrap(), cursor, "the cursor is durable");
    store::subject_index_conformance::run_all(&reopened, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), region("us")).unwrap();
    conformance::run_all(&store).await;
    conformance::run_log_all(&store, "sqlite").await;
}

#[tokio::test]
async fn reopening_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("data").join("regions");
    {
        let store = SqliteStore::open(&nested, region("eu")).unwrap();
        write_one(&store, "kept", b"sealed bytes").await;
    }
    let store = SqliteStore::open(&nested, region("eu")).unwrap();
    assert_eq!(store.path(), nested.join("eu.db"));
    let values = store.values(&subject("kept"), &[]).await.unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].sealed, b"sealed bytes");
    assert_eq!(store.data_keys(&[subject("kept")]).await.unwrap().len(), 1);
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), region("eu")).unwrap());
    let path = SqliteStore::path_for(dir.path(), &region("eu"));
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    drop(connection);
    match SqliteStore::open(dir.path(), region("eu")) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn wal_file_and_pragmas_are_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    write_one(&store, "someone", b"x").await;
    let wal = dir.path().join("eu.db-wal");
    assert!(wal.exists(), "{} missing", wal.display());
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
    assert_eq!(store.pragmas().await.unwrap(), expected);
}

#[tokio::test]
async fn regions_are_separate_files() {
    let dir = tempfile::tempdir().unwrap();
    let eu = SqliteStore::open(dir.path(), region("eu")).unwrap();
    let us = SqliteStore::open(dir.path(), region("us-east")).unwrap();
    assert_ne!(eu.path(), us.path());
    assert!(dir.path().join("us-east.db").exists());
    write_one(&eu, "in-eu", b"a").await;
    write_one(&us, "in-us", b"b").await;
    assert!(eu.subject(&subject("in-us")).await.unwrap().is_none());
    assert!(us.subject(&subject("in-eu")).await.unwrap().is_none());
    assert!(eu.subject(&subject("in-eu")).await.unwrap().is_some());
    assert_eq!(us.stats().await.unwrap().subjects, 1);
}

#[tokio::test]
async fn erased_bytes_are_gone_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    let marker = b"MARKER-0123456789-sealed-value-that-must-vanish";
    write_one(&store, "erased", marker).await;
    write_one(&store, "kept", b"kept-value").await;
    // Push the value into the main file first, as a long-running database would have.
    drop(store);
    assert!(
        files_contain(dir.path(), marker),
        "the marker is written before the erasure"
    );

    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    store
        .erase(&subject("erased"), 2, "officer", "request")
        .await
        .unwrap();
    assert!(
        !files_contain(dir.path(), marker),
        "secure_delete and the checkpoint overwrite the value"
    );
    drop(store);
    assert!(!files_contain(dir.path(), marker));
}

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}

/// The tables of `path` (the `sqlite_` internals and the migrations table left out).
fn tables(path: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut select = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name")
        .unwrap();
    select.query_map([], |row| row.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

async fn index_two(store: &SqliteStore, from: u64) {
    let batch = SubjectIndexBatch { from, to: from + 2, rows: vec![(subject("ada"), from), (subject("bo"), from + 1)], timeline: Vec::new() };
    store.index_subjects(&batch).await.unwrap();
}

#[tokio::test]
async fn the_subject_index_lives_in_a_file_of_its_own_that_a_version_6_database_hands_over_to() {
    let dir = tempfile::tempdir().unwrap();
    let region_path = SqliteStore::path_for(dir.path(), &region("eu"));
    let index_path = SqliteStore::index_path_for(dir.path(), &region("eu"));
    assert_eq!(index_path, dir.path().join("eu.index.db"));
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    index_two(&store, 0).await;
    let index_tables = ["subject_entries", "subject_index_state", "timeline_entries"];
    assert_eq!(tables(&index_path), index_tables, "the index file holds the index");
    assert!(tables(&region_path).iter().all(|table| !index_tables.contains(&table.as_str())), "{:?}", tables(&region_path));
    // Derived data: its commits need not reach the disk one by one (NORMAL), the region's do (FULL).
    let (index_pragmas, region_pragmas) = (store.index_pragmas().await.unwrap(), store.pragmas().await.unwrap());
    assert_eq!((index_pragmas.synchronous, region_pragmas.synchronous), (1, 2));
    // Its writer keeps a step's pages in memory; both checkpoint at SQLite's default.
    assert_eq!((index_pragmas.cache_size, index_pragmas.wal_autocheckpoint), (-store::SQLITE_DERIVED_CACHE_KIB, 1000));
    assert_eq!((region_pragmas.cache_size, region_pragmas.wal_autocheckpoint), (-2000, 1000));
    drop(store);

    // A database written by schema version 6 held the index in the region's file.
    let connection = rusqlite::Connection::open(&region_path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE subject_entries (subject_id TEXT NOT NULL, entry_index INTEGER NOT NULL, PRIMARY KEY (subject_id, entry_index)) STRICT, WITHOUT ROWID;
             CREATE TABLE subject_index_state (id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), next_index INTEGER NOT NULL) STRICT;
             INSERT INTO subject_index_state (id, next_index) VALUES (1, 40);
             INSERT INTO subject_entries (subject_id, entry_index) VALUES ('ada', 39);
             CREATE TABLE timeline_entries (kind INTEGER NOT NULL, key TEXT NOT NULL, entry_index INTEGER NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (kind, key, entry_index)) STRICT, WITHOUT ROWID;
             DELETE FROM schema_migrations WHERE version = 7;",
        )
        .unwrap();
    drop(connection);
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert!(tables(&region_path).iter().all(|table| !index_tables.contains(&table.as_str())), "version 7 drops the old tables");
    assert_eq!(store.subject_index_cursor().await.unwrap(), 2, "the index file is the one read");
    assert_eq!(store.subject_entries(&subject("ada"), 0, 100, 100).await.unwrap(), vec![0]);
    drop(store);

    // The index is derived from the log: a deleted file comes back empty, for the follower
    // to fill from the log again.
    for suffix in ["", "-wal", "-shm"] {
        let path = dir.path().join(format!("eu.index.db{suffix}"));
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    assert_eq!(store.subject_index_cursor().await.unwrap(), 0);
    assert!(store.subject_entries(&subject("ada"), 0, 100, 100).await.unwrap().is_empty());
    index_two(&store, 0).await;
    assert_eq!(store.subject_entries(&subject("bo"), 0, 100, 100).await.unwrap(), vec![1]);
}

#[tokio::test]
async fn index_file_version_2_keeps_the_timelines_and_checks_their_kind_without_a_temporary_table() {
    let dir = tempfile::tempdir().unwrap();
    let index_path = SqliteStore::index_path_for(dir.path(), &region("eu"));
    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    index_two(&store, 0).await;
    drop(store);

    // An index file written by version 1: the timelines' kind checked with `IN (1, 2, 3, 4)`.
    let connection = rusqlite::Connection::open(&index_path).unwrap();
    connection
        .execute_batch(
            "DROP TABLE timeline_entries;
             CREATE TABLE timeline_entries (kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3, 4)), key TEXT NOT NULL, entry_index INTEGER NOT NULL CHECK (entry_index >= 0), at_ms INTEGER NOT NULL, PRIMARY KEY (kind, key, entry_index)) STRICT, WITHOUT ROWID;
             INSERT INTO timeline_entries (kind, key, entry_index, at_ms) VALUES (1, 's-ann', 0, 10), (3, 'ada', 0, 10), (4, 'support', 1, 20);
             DELETE FROM schema_migrations WHERE version = 2;",
        )
        .unwrap();
    let plan = |connection: &rusqlite::Connection| -> Vec<String> {
        let mut explain = connection.prepare("EXPLAIN INSERT INTO timeline_entries (kind, key, entry_index, at_ms) VALUES (?1, ?2, ?3, ?4)").unwrap();
        explain.query_map((1, "k", 0, 0), |row| row.get::<_, String>(1)).unwrap().map(Result::unwrap).collect()
    };
    assert!(plan(&connection).iter().any(|op| op == "OpenEphemeral"), "version 1 builds a temporary b-tree per insert");
    drop(connection);

    let store = SqliteStore::open(dir.path(), region("eu")).unwrap();
    assert_eq!(store.subject_index_cursor().await.unwrap(), 2, "the cursor is kept: nothing is indexed again");
    let actor = store.timeline(store::TimelineKind::Actor, "s-ann", 100, 10).await.unwrap();
    assert_eq!(actor, vec![store::TimelinePoint { index: 0, at_ms: 10 }], "the rows are copied");
    assert_eq!(store.timeline_next_key(store::TimelineKind::Tally, "").await.unwrap().as_deref(), Some("support"));
    drop(store);

    let connection = rusqlite::Connection::open(&index_path).unwrap();
    let version: i64 = connection.query_row("SELECT max(version) FROM schema_migrations", [], |row| row.get(0)).unwrap();
    assert_eq!(version, store::INDEX_SCHEMA_VERSION);
    assert_eq!(version, 2);
    assert!(!plan(&connection).iter().any(|op| op == "OpenEphemeral"), "{:?}", plan(&connection));
    let refused = connection.execute("INSERT INTO timeline_entries (kind, key, entry_index, at_ms) VALUES (5, 'x', 9, 1)", []);
    assert!(refused.unwrap_err().to_string().contains("CHECK constraint failed"), "kind 5 is still refused");
    let tables = tables(&index_path);
    assert!(!tables.iter().any(|table| table == "timeline_entries_v2"), "{tables:?}");
}
