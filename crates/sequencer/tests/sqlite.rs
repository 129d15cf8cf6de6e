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
async fn partial_tiles_an_earlier_version_stored_are_outgrown() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::partial_tiles_an_earlier_version_stored_are_outgrown(open(dir.path())).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_proofs_match_uncached() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::cached_proofs_match_uncached(open(dir.path())).await;
}

#[tokio::test]
async fn a_grown_tile_is_never_served_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::a_grown_tile_is_never_served_stale(open(dir.path())).await;
}

/// The periodic signer on tokio's paused clock (time moves only when every task waits on
/// a timer, so the instants below are exact): an idle log is re-signed every interval; an
/// entry whose wait began before a signing but became durable after it is covered before
/// it has waited an interval, not at the next beat.
#[tokio::test(start_paused = true)]
async fn the_periodic_signer_keeps_the_coverage_deadline() {
    use sequencer::{Checkpointer, Coverage, SIGNING_MARGIN};
    use std::time::Duration;
    use tokio::time::Instant;

    const INTERVAL: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn LogStore> = open(dir.path());
    let sequencer = Sequencer::start(Arc::clone(&store)).await.expect("start");
    // Reported to by hand below, to stand for a batch whose commit straddles a signing.
    let coverage = Arc::new(Coverage::new());
    let checkpointer = Arc::new(
        Checkpointer::new(Arc::clone(&store), common::ORIGIN, &common::SECRET_KEY)
            .expect("checkpointer")
            .tracking(Arc::clone(&coverage)),
    );
    let mut signed = checkpointer.subscribe();
    let mut next_signing = async || {
        signed.changed().await.expect("signer runs");
        let size = signed.borrow_and_update().as_ref().expect("signed").checkpoint.size();
        (Instant::now(), size)
    };
    let start = Instant::now();
    let periodic = Arc::clone(&checkpointer).spawn_periodic(INTERVAL);

    // Signed at once, then every interval while idle.
    assert_eq!(next_signing().await, (start, TreeSize(0)));
    assert_eq!(next_signing().await, (start + INTERVAL, TreeSize(0)));
    // Signing takes no time on the paused clock, so the lead is the margin alone.
    assert_eq!(checkpointer.lead(INTERVAL), SIGNING_MARGIN);

    // An entry handed to `append` 300 ms before the last signing, durable only now: the
    // old fixed beat would cover it at start + 2 s, 1.3 s after its append.
    let last = start + INTERVAL;
    tokio::time::sleep(Duration::from_millis(10)).await;
    sequencer.append(b"slow commit".to_vec()).await.expect("append");
    let received = last - Duration::from_millis(300);
    coverage.durable(TreeSize(1), received);
    let (covered, size) = next_signing().await;
    assert_eq!(size, TreeSize(1));
    assert_eq!(covered, received + INTERVAL - SIGNING_MARGIN);
    assert!(covered - received <= INTERVAL);

    // Covered, so idle again: the next signing is an interval after this one.
    assert_eq!(next_signing().await, (covered + INTERVAL, TreeSize(1)));

    // An entry arriving while the signer waits out an idle interval moves the deadline
    // forward only when it would otherwise wait longer than the interval: here it does
    // not, and the idle beat covers it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let appended = Instant::now();
    sequencer.append(b"on time".to_vec()).await.expect("append");
    coverage.durable(TreeSize(2), appended);
    let (covered_again, size) = next_signing().await;
    assert_eq!((covered_again, size), (covered + 2 * INTERVAL, TreeSize(2)));
    assert!(covered_again - appended <= INTERVAL);
    assert_eq!(coverage.oldest_unsigned(), None);
    periodic.abort();
    sequencer.close().await;
}

/// Each batch's durable write is measured under its region: how long it took, how many
/// entries it held, and whether it failed.
#[tokio::test]
async fn commits_are_measured_per_region() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The test's runtime has one thread: the sequencer's task records here.
    let _recording = metrics::set_default_local_recorder(&recorder);
    let dir = tempfile::tempdir().expect("tempdir");
    let faulty = common::FaultyStore::new(open(dir.path()));
    let sequencer = Arc::new(Sequencer::start_for(faulty.clone(), "eu").await.expect("start"));
    for result in common::append_all(&sequencer, common::entries("measured", 10)).await {
        result.expect("append");
    }
    let text = handle.render();
    assert!(text.contains("custos_log_batch_entries_sum{region=\"eu\"} 10"), "{text}");
    let commits = metric(&text, "custos_log_commit_seconds_count{region=\"eu\"}");
    assert!((1.0..=10.0).contains(&commits), "{text}");
    assert!(!text.contains("custos_log_batches_failed_total"), "{text}");

    faulty.failing_appends.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(sequencer.append(b"refused".to_vec()).await.is_err());
    let text = handle.render();
    assert_eq!(metric(&text, "custos_log_batches_failed_total{region=\"eu\"}"), 1.0, "{text}");
    assert_eq!(metric(&text, "custos_log_commit_seconds_count{region=\"eu\"}"), commits + 1.0, "{text}");
}

/// The value of the sample `series` in Prometheus text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).map(|value| value.trim().parse().expect("a number")))
        .unwrap_or_else(|| panic!("{series} missing from {text}"))
}
