//! Benchmarks of one region's access log on SQLite and PostgreSQL, side by side. Results,
//! the machine and the anchors: docs/PERFORMANCE.md, section "Access log". Run:
//! `cargo bench -p sequencer --bench log` (PostgreSQL rows appear when the test server
//! answers, see `store::testing::postgres_url_or_skip`).
//!
//! - `append/<backend>`: durable appends through [`Sequencer::append`] from
//!   [`APPENDERS`] concurrent tasks; an iteration is [`ENTRIES_PER_ITERATION`] entries of
//!   [`ENTRY_BYTES`] bytes, each acknowledged only after its batch committed.
//! - `inclusion_proof/<backend>`: inclusion proofs for random leaves of a log of
//!   [`PROOF_LOG_ENTRIES`] entries, hashes read through one [`TileCache`] (full tiles
//!   cached with their interior nodes, partial ones as the widest prefix read) and proofs built with
//!   `tlog`, from [`PROOF_TASKS`] concurrent tasks — what `RegionLog` does for the proof
//!   endpoints and receipts. An iteration is [`PROOFS_PER_ITERATION`] proofs; the cache
//!   warms during criterion's warm-up. `inclusion_proof_uncached/<backend>`: the same
//!   through [`StoredHashes`] alone (every tile read and hashed per proof), for comparison.
//! - `integration_latency/<backend>` (printed after criterion's output, not a criterion group):
//!   appends at full rate for [`LATENCY_RUN`] while the checkpointer's periodic signer runs
//!   with the default interval ([`CHECKPOINT_INTERVAL_DEFAULT`]) tracking the sequencer's
//!   coverage (as `RegionLog` runs it), and reports p50/p99/max of the time from calling
//!   `append` to the persisting of the first signed checkpoint that covers the entry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use model::RegionId;
use sequencer::{CHECKPOINT_INTERVAL_DEFAULT, Checkpointer, Sequencer, StoredHashes, TileCache};
use store::{LogStore, SqliteStore};
use tlog::{LeafIndex, TreeSize, inclusion_proof, subtrees_for_inclusion_proof};

/// Concurrent appenders: enough to fill the sequencer's batches.
const APPENDERS: usize = 4_096;
const ENTRIES_PER_ITERATION: usize = 131_072;
/// A salted entry with a decision of about 150 bytes.
const ENTRY_BYTES: usize = 192;
const PROOF_LOG_ENTRIES: usize = 1 << 20;
const PROOFS_PER_ITERATION: usize = 20_480;
/// Concurrent proof tasks unless `LOG_BENCH_PROOF_TASKS` says otherwise: as many as the
/// SQLite store keeps idle read connections (`store::SQLITE_READERS_IDLE_MAX`).
const PROOF_TASKS: usize = 4;
const LATENCY_RUN: Duration = Duration::from_secs(12);

/// Opens a fresh, empty log store of one backend.
type OpenStore = Box<dyn Fn() -> Arc<dyn LogStore>>;

fn main() {
    // `cargo bench` passes `--bench`; a test run of the benches (`cargo test --benches`)
    // only checks that this builds, rather than filling a log of 2^20 entries.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sqlite_dir = tempfile::tempdir().expect("tempdir");
    let mut backends: Vec<(&str, OpenStore)> = Vec::new();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let dir = sqlite_dir.path().to_owned();
        let counter = Arc::clone(&counter);
        backends.push((
            "sqlite",
            Box::new(move || {
                let region = RegionId::new(&format!(
                    "b{}",
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ))
                .expect("region");
                Arc::new(SqliteStore::open(&dir, region).expect("open")) as Arc<dyn LogStore>
            }),
        ));
    }
    let guards = Arc::new(Mutex::new(Vec::new()));
    if let Some(url) = runtime.block_on(store::testing::postgres_url_or_skip()) {
        let guards = Arc::clone(&guards);
        let handle = runtime.handle().clone();
        backends.push((
            "postgres",
            Box::new(move || {
                let (store, guard) = handle.block_on(store::testing::postgres_test_store(&url));
                guards.lock().expect("guards").push(guard);
                Arc::new(store) as Arc<dyn LogStore>
            }),
        ));
    }

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));
    append(&mut criterion, &runtime, &backends);
    proofs(&mut criterion, &runtime, &backends);
    criterion.final_summary();
    // Criterion's name filter, if any, also selects the latency run.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|argument| !argument.starts_with('-'))
        .collect();
    for (name, open) in &backends {
        let id = format!("integration_latency/{name}");
        if filters.is_empty() || filters.iter().any(|filter| id.contains(filter.as_str())) {
            latency(&runtime, name, open());
        }
    }
}

fn entry(appender: usize, sequence: usize) -> Vec<u8> {
    let mut entry = format!("appender {appender} entry {sequence} ").into_bytes();
    entry.resize(ENTRY_BYTES, b'.');
    entry
}

/// Appends `count` entries from [`APPENDERS`] tasks; returns (append call time, index)
/// of each when `record`.
async fn append_all(sequencer: &Arc<Sequencer>, count: usize, record: bool) -> Vec<(Instant, u64)> {
    let mut tasks = tokio::task::JoinSet::new();
    for appender in 0..APPENDERS {
        let sequencer = Arc::clone(sequencer);
        let share = count / APPENDERS + usize::from(appender < count % APPENDERS);
        tasks.spawn(async move {
            let mut times = Vec::with_capacity(if record { share } else { 0 });
            for sequence in 0..share {
                let started = Instant::now();
                let receipt = sequencer
                    .append(entry(appender, sequence))
                    .await
                    .expect("append");
                if record {
                    times.push((started, receipt.index.0));
                }
            }
            times
        });
    }
    tasks.join_all().await.into_iter().flatten().collect()
}

fn append(
    criterion: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    backends: &[(&str, OpenStore)],
) {
    let mut group = criterion.benchmark_group("append");
    group.throughput(Throughput::Elements(ENTRIES_PER_ITERATION as u64));
    for (name, open) in backends {
        let sequencer = Arc::new(runtime.block_on(Sequencer::start(open())).expect("start"));
        group.bench_function(*name, |bench| {
            bench.to_async(runtime).iter_custom(|iterations| {
                let sequencer = Arc::clone(&sequencer);
                async move {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        append_all(&sequencer, ENTRIES_PER_ITERATION, false).await;
                    }
                    started.elapsed()
                }
            });
        });
    }
    group.finish();
}

fn proofs(
    criterion: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    backends: &[(&str, OpenStore)],
) {
    let task_count: usize = std::env::var("LOG_BENCH_PROOF_TASKS").map_or(PROOF_TASKS, |text| {
        text.parse().expect("LOG_BENCH_PROOF_TASKS is a count")
    });
    let logs: Vec<(&str, Arc<dyn LogStore>, TreeSize)> = backends
        .iter()
        .map(|(name, open)| {
            let store = open();
            let size = runtime.block_on(async {
                let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("start"));
                append_all(&sequencer, PROOF_LOG_ENTRIES, false).await;
                TreeSize(store.log_state().await.expect("state").size.0)
            });
            (*name, store, size)
        })
        .collect();
    for cached in [true, false] {
        let group_name = if cached { "inclusion_proof" } else { "inclusion_proof_uncached" };
        let mut group = criterion.benchmark_group(group_name);
        group.throughput(Throughput::Elements(PROOFS_PER_ITERATION as u64));
        for (name, store, size) in &logs {
            let size = *size;
            let cache = Arc::new(TileCache::new());
            group.bench_function(*name, |bench| {
            bench.to_async(runtime).iter_custom(|iterations| {
                let (store, cache) = (Arc::clone(store), Arc::clone(&cache));
                async move {
                    let started = Instant::now();
                    for iteration in 0..iterations {
                        let mut tasks = tokio::task::JoinSet::new();
                        for task in 0..task_count {
                            let (store, cache) = (Arc::clone(&store), Arc::clone(&cache));
                            tasks.spawn(async move {
                                for proof in 0..PROOFS_PER_ITERATION / task_count {
                                    // A spread of leaves that differs per task and iteration.
                                    let spread = (iteration as usize * PROOFS_PER_ITERATION
                                        + task * 7_919
                                        + proof * 104_729)
                                        as u64;
                                    let index = LeafIndex(
                                        spread.wrapping_mul(0x9e37_79b9_7f4a_7c15) % size.0,
                                    );
                                    let subtrees = subtrees_for_inclusion_proof(index, size);
                                    let reader = if cached {
                                        cache.read(store.as_ref(), size, &subtrees).await
                                    } else {
                                        StoredHashes::read(store.as_ref(), size, &subtrees).await
                                    }
                                    .expect("read tiles");
                                    std::hint::black_box(
                                        inclusion_proof(&reader, index, size).expect("proof"),
                                    );
                                }
                            });
                        }
                        tasks.join_all().await;
                    }
                    started.elapsed()
                }
            });
        });
        }
        group.finish();
    }
}

/// Appends at full rate for [`LATENCY_RUN`] while the periodic signer runs with
/// [`CHECKPOINT_INTERVAL_DEFAULT`], tracking the sequencer (as `RegionLog` does), then
/// prints the percentiles of append call → first covering checkpoint persisted.
fn latency(runtime: &tokio::runtime::Runtime, name: &str, store: Arc<dyn LogStore>) {
    let (mut latencies, appended, elapsed, signings) = runtime.block_on(async {
        let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("start"));
        let checkpointer = Arc::new(
            Checkpointer::new(Arc::clone(&store), "bench.example/custos/bench", &[7; 32])
                .expect("checkpointer")
                .tracking(sequencer.coverage()),
        );
        let signed: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        // Each persisted checkpoint is announced right after it is saved; the time taken
        // here is at or after the save, so latencies are if anything overstated.
        let recorder = {
            let (mut receiver, signed) = (checkpointer.subscribe(), Arc::clone(&signed));
            tokio::spawn(async move {
                while receiver.changed().await.is_ok() {
                    let size = receiver.borrow_and_update().as_ref().map(|signed| signed.checkpoint.size().0);
                    if let Some(size) = size {
                        signed.lock().expect("signed").push((Instant::now(), size));
                    }
                }
            })
        };
        let signer = Arc::clone(&checkpointer).spawn_periodic(CHECKPOINT_INTERVAL_DEFAULT);
        let started = Instant::now();
        let mut appends = Vec::new();
        while started.elapsed() < LATENCY_RUN {
            appends.extend(append_all(&sequencer, ENTRIES_PER_ITERATION / 4, true).await);
        }
        let elapsed = started.elapsed();
        // Wait for the checkpoint covering the last entries.
        tokio::time::sleep(CHECKPOINT_INTERVAL_DEFAULT * 2).await;
        signer.abort();
        recorder.abort();
        let signed = signed.lock().expect("signed").clone();
        let latencies: Vec<Duration> = appends
            .iter()
            .map(|&(called, index)| {
                let (covered, _) = signed
                    .iter()
                    .find(|&&(_, size)| size > index)
                    .expect("a covering checkpoint");
                covered.duration_since(called)
            })
            .collect();
        let signings = signed.iter().filter(|&&(at, _)| at <= started + elapsed).count();
        (latencies, appends.len(), elapsed, signings)
    });
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "integration latency/{name}: {appended} entries at {:.0} entries/s, append → covering checkpoint p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (checkpoint interval {} ms; {signings} signings in {:.1} s)",
        appended as f64 / elapsed.as_secs_f64(),
        percentile(0.50).as_secs_f64() * 1e3,
        percentile(0.99).as_secs_f64() * 1e3,
        latencies.last().expect("entries").as_secs_f64() * 1e3,
        CHECKPOINT_INTERVAL_DEFAULT.as_millis(),
        elapsed.as_secs_f64()
    );
}
