//! Benchmark of `custos log verify --entries` on a large log, end to end: the real
//! `custos serve` serves a deployment whose log holds [`ENTRIES`] entries, on SQLite and
//! then on PostgreSQL (when the test server answers, see
//! `store::testing::postgres_url_or_skip`; its schema is dropped afterwards), and the real
//! `custos log verify` fetches every tile and entry bundle over HTTP and checks them.
//! Results: docs/PERFORMANCE.md, section "Access log". Run:
//! `cargo bench -p cli --bench log_verify` (`LOG_VERIFY_ENTRIES=<n>` for another size).
//!
//! The log is filled through the sequencer on the deployment's own store before the
//! server opens it (the same group-commit path as `Vault::append_log`, without the salt
//! draw). Each run starts from an empty auditor state, so every run checks everything.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::RegionId;
use sequencer::Sequencer;
use service::{InitOptions, KeysConfig, StorageConfig};
use store::{LogStore, PostgresStore, SqliteStore};

/// Entries in the benchmarked log unless `LOG_VERIFY_ENTRIES` says otherwise.
const ENTRIES: usize = 1 << 20;
/// Bytes of each entry: a salted entry with a decision of about 150 bytes.
const ENTRY_BYTES: usize = 192;
const APPENDERS: usize = 4_096;
const RUNS: usize = 3;

fn main() {
    // `cargo bench` passes `--bench`; anything else (a test run of benches) only checks
    // that this builds.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    let entries: usize = std::env::var("LOG_VERIFY_ENTRIES").map_or(ENTRIES, |text| {
        text.parse().expect("LOG_VERIFY_ENTRIES is a count")
    });
    measure("sqlite", StorageConfig::Sqlite, RegionId::new("us").expect("region"), entries);
    let url = tokio::runtime::Runtime::new().expect("runtime").block_on(store::testing::postgres_url_or_skip());
    if let Some(url) = url {
        let region = store::testing::unique_region();
        // Drops the region's schema when the measurement ends.
        let _guard = store::testing::SchemaGuard::new(&url, &region);
        measure("postgres", StorageConfig::Postgres { url }, region, entries);
    }
}

/// Fills a fresh deployment of one backend with `entries`, serves it with `custos serve`
/// and times [`RUNS`] runs of `custos log verify --entries` against it.
fn measure(backend: &str, storage: StorageConfig, region: RegionId, entries: usize) {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let options = InitOptions {
        regions: vec![region.clone()],
        storage: storage.clone(),
        keys: KeysConfig::Keyring,
        geo: None,
        dev_issuer: false,
    };
    let token = service::init_data_dir(&data, options).expect("init");

    let filled = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store: Arc<dyn LogStore> = match &storage {
            StorageConfig::Sqlite => {
                Arc::new(SqliteStore::open(&data.join("regions"), region.clone()).expect("open store"))
            }
            StorageConfig::Postgres { url } => {
                Arc::new(PostgresStore::connect(url, region.clone()).await.expect("connect store"))
            }
        };
        let sequencer = Arc::new(Sequencer::start(store).await.expect("start"));
        let mut tasks = tokio::task::JoinSet::new();
        for appender in 0..APPENDERS {
            let sequencer = Arc::clone(&sequencer);
            let share = entries / APPENDERS + usize::from(appender < entries % APPENDERS);
            tasks.spawn(async move {
                for sequence in 0..share {
                    let mut entry = format!("appender {appender} entry {sequence} ").into_bytes();
                    entry.resize(ENTRY_BYTES, b'.');
                    sequencer.append(entry).await.expect("append");
                }
            });
        }
        tasks.join_all().await;
    });
    drop(runtime);
    println!(
        "{backend}: filled {entries} entries in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let key = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args([
            "log",
            "key",
            "--data",
            data.to_str().expect("utf-8"),
            "--region",
            region.as_str(),
        ])
        .output()
        .expect("custos log key");
    assert!(key.status.success());
    let vkey = String::from_utf8(key.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let mut server = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args([
            "serve",
            "--data",
            data.to_str().expect("utf-8"),
            "--listen",
            &address.to_string(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("custos serve");
    while TcpStream::connect(address).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }

    let url = format!("http://{address}/log/{region}");
    let mut seconds = Vec::new();
    for _ in 0..RUNS {
        let state = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_custos"))
            .args([
                "log",
                "verify",
                "--url",
                &url,
                "--key",
                &vkey,
                "--entries",
                "--state",
                state.path().to_str().expect("utf-8"),
            ])
            .env("CUSTOS_TOKEN", &token)
            .output()
            .expect("custos log verify");
        let elapsed = started.elapsed().as_secs_f64();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("entries {entries}")));
        seconds.push(elapsed);
    }
    let _ = server.kill();
    let _ = server.wait();
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    println!(
        "log_verify --entries, {backend}: {entries} entries of {ENTRY_BYTES} bytes, median {median:.2} s of {RUNS} runs = {:.0} entries/s (runs: {seconds:.2?})",
        entries as f64 / median
    );
}
