//! The sequencer and checkpointer on SQLite log stores in temporary directories: the shared
//! scenarios, restart, and a store whose tables vanish under the sequencer.

mod common;

use std::sync::Arc;

use model::RegionId;
use sequencer::Sequencer;
use store::{LogStore, SqliteStore};
use tlog::{LeafIndex, TreeSize};

fn open(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir, RegionId::new("eu").expect("region")).expect("open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_sequenced_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::concurrent_appends_are_sequenced_once(open(dir.path())).await;
}

#[tokio::test]
async fn entry_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::entry_size_limit(open(dir.path())).await;
}

#[tokio::test]
async fn failed_batches_acknowledge_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::failed_batches_acknowledge_nothing(open(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_and_persisted() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::checkpoints_are_signed_and_persisted(open(dir.path())).await;
}

#[tokio::test]
async fn unsaved_checkpoints_are_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::unsaved_checkpoints_are_not_returned(open(dir.path())).await;
}

#[tokio::test]
async fn rewound_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::rewound_store_is_refused(open(dir.path())).await;
}

#[tokio::test]
async fn restart_resumes_at_the_stored_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Arc::new(Sequencer::start(open(dir.path())).await.expect("start"));
    for result in common::append_all(&first, common::entries("first run", 300)).await {
        result.expect("append");
    }
    Arc::try_unwrap(first).expect("sole owner").close().await;

    let store = open(dir.path());
    let second = Sequencer::start(store.clone()).await.expect("restart");
    let receipt = second
        .append(b"after restart".to_vec())
        .await
        .expect("append");
    assert_eq!(receipt.index, LeafIndex(300));
    second.close().await;
    let stored = common::verify_log(store.as_ref(), 301).await;
    assert_eq!(stored[300], b"after restart".to_vec());
}

#[tokio::test]
async fn a_store_whose_tables_vanish_acknowledges_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let sequencer = Arc::new(Sequencer::start(store.clone()).await.expect("start"));
    for result in common::append_all(&sequencer, common::entries("before", 10)).await {
        result.expect("append");
    }
    let connection = rusqlite::Connection::open(store.path()).expect("second connection");
    connection
        .execute_batch("DROP TABLE log_entries")
        .expect("drop");
    common::appenders_fail_on_broken_store(&sequencer, 100).await;
    assert_eq!(
        store.log_state().await.expect("state").size,
        TreeSize(10),
        "nothing was written"
    );
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
}

#[tokio::test]
async fn two_sequencers_never_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::two_sequencers_never_overwrite(open(dir.path())).await;
}
