//! The sequencer and checkpointer on PostgreSQL log stores, one fresh schema per test
//! (dropped at the end). Skips with a `SKIP postgres tests: …` line when the server is
//! unreachable, unless `CUSTOS_REQUIRE_POSTGRES=1`.

mod common;

use std::sync::Arc;

use sequencer::Sequencer;
use store::PostgresStore;
use store::testing::{self, SchemaGuard};
use tlog::LeafIndex;

async fn fresh() -> Option<(Arc<PostgresStore>, SchemaGuard, String)> {
    let url = testing::postgres_url_or_skip().await?;
    let (store, guard) = testing::postgres_test_store(&url).await;
    Some((Arc::new(store), guard, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_sequenced_once() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::concurrent_appends_are_sequenced_once(store).await;
}

#[tokio::test]
async fn entry_size_limit() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::entry_size_limit(store).await;
}

#[tokio::test]
async fn failed_batches_acknowledge_nothing() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::failed_batches_acknowledge_nothing(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_and_persisted() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::checkpoints_are_signed_and_persisted(store).await;
}

#[tokio::test]
async fn unsaved_checkpoints_are_not_returned() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::unsaved_checkpoints_are_not_returned(store).await;
}

#[tokio::test]
async fn partial_tiles_an_earlier_version_stored_are_outgrown() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::partial_tiles_an_earlier_version_stored_are_outgrown(store).await;
}

#[tokio::test]
async fn rewound_store_is_refused() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::rewound_store_is_refused(store).await;
}

#[tokio::test]
async fn restart_resumes_at_the_stored_size() {
    let Some((store, _guard, url)) = fresh().await else {
        return;
    };
    let first = Arc::new(Sequencer::start(store.clone()).await.expect("start"));
    for result in common::append_all(&first, common::entries("first run", 300)).await {
        result.expect("append");
    }
    Arc::try_unwrap(first).expect("sole owner").close().await;
    let region = store::RegionStore::region(store.as_ref()).clone();
    drop(store);

    let store = Arc::new(
        PostgresStore::connect(&url, region)
            .await
            .expect("reconnect"),
    );
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
async fn a_dropped_schema_acknowledges_nothing() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    let sequencer = Arc::new(Sequencer::start(store.clone()).await.expect("start"));
    for result in common::append_all(&sequencer, common::entries("before", 10)).await {
        result.expect("append");
    }
    store.drop_schema().await.expect("drop schema");
    common::appenders_fail_on_broken_store(&sequencer, 100).await;
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
}

#[tokio::test]
async fn two_sequencers_never_overwrite() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::two_sequencers_never_overwrite(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_proofs_match_uncached() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::cached_proofs_match_uncached(store).await;
}

#[tokio::test]
async fn a_grown_tile_is_never_served_stale() {
    let Some((store, _guard, _)) = fresh().await else {
        return;
    };
    common::a_grown_tile_is_never_served_stale(store).await;
}
