//! Crash test of the access log: a process appending under load is killed with SIGKILL at
//! random moments, and after every kill the deployment is reopened and checked.
//!
//! The appending process is this test binary run again with [`CHILD_ARGUMENT`] (the test
//! has no libtest harness, so `main` chooses the role). The child opens the deployment
//! with `service::open_deployment` — the path `custos serve` takes — and runs
//! [`APPENDERS`] concurrent appenders through `Vault::append_log`, so the sequencer's group
//! commits are large. On stdout it prints, only after `append_log` returned, `ack <index>
//! <leaf hash> <payload>`, and `checkpoint <note as a JSON string>` for each new checkpoint the log serves.
//!
//! After each kill the parent reopens the deployment (the restart: the sequencer resumes
//! from the stored state and signs) and checks that:
//! - every index acknowledged by any killed process is stored with exactly its entry (its
//!   leaf hash, and the payload behind the salt), and no index was acknowledged twice;
//! - the stored entries hash to the root of the new signed checkpoint (entries added since
//!   the previous check are read each time, and after the last kill all of them again);
//! - the new checkpoint is consistent (`tlog::verify_consistency`, proof from the stored
//!   tiles) with every checkpoint served before, in this and every earlier run.
//!
//! The kill delays come from a seeded generator; the seed is printed, and
//! `CUSTOS_CRASH_SEED=<seed>` replays a run. SQLite always runs; PostgreSQL runs when the
//! test server answers (`store::testing::postgres_url_or_skip`).
//!
//! A SIGKILL loses nothing the kernel already holds, so this checks atomicity and
//! "acknowledged only after commit", not the fsync itself (a power cut is not simulated).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::RegionId;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use service::{InitOptions, KeysConfig, StorageConfig, SystemClock};
use tlog::{
    Checkpoint, CompactRange, Hash, Note, TreeSize, Verifier, bundles_for_size, decode_bundle,
    leaf_hash, verify_consistency,
};

/// The first argument that makes this binary the appending child.
const CHILD_ARGUMENT: &str = "--crash-child";
/// Environment variable that replays a run with its printed seed.
const SEED_VARIABLE: &str = "CUSTOS_CRASH_SEED";
/// The name this test answers to in `--list` and filters.
const TEST_NAME: &str = "sigkill_during_appends_loses_nothing_acknowledged";
/// Kills per run on SQLite.
const SQLITE_CRASHES: u32 = 24;
/// Kills per run on PostgreSQL (slower per append, so fewer).
const POSTGRES_CRASHES: u32 = 10;
/// Concurrent appenders in the child: more than one sequencer batch can hold.
const APPENDERS: usize = 1_536;
/// The child is killed this long after it was started, drawn uniformly. The low end kills
/// some children while they are still opening the deployment.
const KILL_DELAY_MS_MIN: u64 = 5;
const KILL_DELAY_MS_MAX: u64 = 600;
/// Signing interval of the child's log, so that every run publishes several checkpoints.
const CHECKPOINT_INTERVAL_MS: u64 = 50;
/// Exit status of a child that failed on its own.
const CHILD_FAILED_STATUS: i32 = 70;
/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;
/// How often the child looks for a new served checkpoint.
const CHECKPOINT_POLL_MS: u64 = 10;

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.first().map(String::as_str) == Some(CHILD_ARGUMENT) {
        let data = PathBuf::from(&arguments[1]);
        let run: u32 = arguments[2].parse().expect("run number");
        runtime().block_on(child(data, run));
        return;
    }
    if arguments.iter().any(|argument| argument == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    if !selected(&arguments) {
        println!("running 0 tests ({TEST_NAME} filtered out)");
        return;
    }
    let seed = match std::env::var(SEED_VARIABLE) {
        Ok(text) => text.parse().expect("CUSTOS_CRASH_SEED is a u64"),
        Err(_) => rand::random(),
    };
    println!("{TEST_NAME}: seed {seed} (replay with {SEED_VARIABLE}={seed})");
    let started = Instant::now();
    let runtime = runtime();

    let sqlite = tempfile::tempdir().expect("tempdir");
    let region = RegionId::new("us").expect("region");
    let data = deployment(sqlite.path(), &region, StorageConfig::Sqlite);
    let report = crash_repeatedly(&runtime, &data, &region, seed, SQLITE_CRASHES);
    println!("sqlite: {report}");

    if let Some(url) = runtime.block_on(store::testing::postgres_url_or_skip()) {
        let region = store::testing::unique_region();
        let _guard = store::testing::SchemaGuard::new(&url, &region);
        let postgres = tempfile::tempdir().expect("tempdir");
        let data = deployment(postgres.path(), &region, StorageConfig::Postgres { url });
        let report = crash_repeatedly(&runtime, &data, &region, seed ^ 1, POSTGRES_CRASHES);
        println!("postgres: {report}");
    }
    println!(
        "test {TEST_NAME} ... ok ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// Reads libtest's arguments as libtest would for one test: name filters (substrings, or
/// the whole name with `--exact`) and `--skip`; the values of other options are not filters.
fn selected(arguments: &[String]) -> bool {
    const OPTIONS_WITH_VALUES: [&str; 6] = [
        "--test-threads",
        "--format",
        "--color",
        "--logfile",
        "-Z",
        "--shuffle-seed",
    ];
    let exact = arguments.iter().any(|argument| argument == "--exact");
    let matches = |filter: &str| {
        if exact {
            filter == TEST_NAME
        } else {
            TEST_NAME.contains(filter)
        }
    };
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut arguments = arguments.iter();
    while let Some(argument) = arguments.next() {
        if argument == "--skip" {
            skips.extend(arguments.next());
        } else if OPTIONS_WITH_VALUES.contains(&argument.as_str()) {
            arguments.next();
        } else if !argument.starts_with('-') {
            filters.push(argument);
        }
    }
    (filters.is_empty() || filters.iter().any(|filter| matches(filter)))
        && !skips.iter().any(|skip| TEST_NAME.contains(skip.as_str()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Creates a deployment serving `region` whose log signs every [`CHECKPOINT_INTERVAL_MS`].
fn deployment(root: &Path, region: &RegionId, storage: StorageConfig) -> PathBuf {
    let data = root.join("data");
    let options = InitOptions {
        regions: vec![region.clone()],
        storage,
        keys: KeysConfig::Keyring,
        geo: None,
        dev_issuer: false,
    };
    service::init_data_dir(&data, options).expect("init");
    let config_path = data.join(service::CONFIG_FILE_NAME);
    let config = std::fs::read_to_string(&config_path).expect("read config");
    let setting = format!("checkpoint_interval_ms = {CHECKPOINT_INTERVAL_MS}");
    // `init` writes the default; otherwise a top-level key goes before the first table.
    let config = if config
        .lines()
        .any(|line| line.starts_with("checkpoint_interval_ms"))
    {
        config
            .lines()
            .map(|line| {
                if line.starts_with("checkpoint_interval_ms") {
                    setting.as_str()
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        format!("{setting}\n{config}")
    };
    std::fs::write(&config_path, config).expect("write config");
    let read = service::read_config(&data).expect("config");
    assert_eq!(
        read.checkpoint_interval(),
        Duration::from_millis(CHECKPOINT_INTERVAL_MS)
    );
    data
}

/// What a killed child had printed.
#[derive(Default)]
struct ChildOutput {
    /// index → (leaf hash, payload)
    acknowledged: Vec<(u64, Hash, String)>,
    checkpoints: Vec<Vec<u8>>,
}

/// Totals of one backend's run, for the test's output.
#[derive(Default)]
struct Report {
    crashes: u32,
    acknowledged: usize,
    checkpoints: usize,
    final_size: u64,
    largest_run: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} kills, {} acknowledged entries (at most {} in one run) all present, {} served checkpoints all consistent, final size {}",
            self.crashes, self.acknowledged, self.largest_run, self.checkpoints, self.final_size
        )
    }
}

/// Everything acknowledged or served so far, which every later restart must honour.
struct History {
    verifier: Verifier,
    acknowledged: BTreeMap<u64, (Hash, String)>,
    /// (size, root) of every checkpoint served, in the order seen.
    checkpoints: Vec<(TreeSize, Hash)>,
    /// The tree of the entries read back so far (each one checked).
    verified: CompactRange,
    /// Runs in this backend's test.
    runs: u32,
}

fn crash_repeatedly(
    runtime: &tokio::runtime::Runtime,
    data: &Path,
    region: &RegionId,
    seed: u64,
    crashes: u32,
) -> Report {
    let vkey = service::log_verifier_key(data, region).expect("log key");
    let mut history = History {
        verifier: Verifier::from_vkey(&vkey).expect("vkey"),
        acknowledged: BTreeMap::new(),
        checkpoints: Vec::new(),
        verified: CompactRange::new(),
        runs: crashes,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    for run in 0..crashes {
        let delay = Duration::from_millis(rng.random_range(KILL_DELAY_MS_MIN..=KILL_DELAY_MS_MAX));
        let output = run_and_kill(data, run, delay);
        report.largest_run = report.largest_run.max(output.acknowledged.len());
        for (index, leaf, payload) in output.acknowledged {
            let earlier = history.acknowledged.insert(index, (leaf, payload.clone()));
            assert!(
                earlier.is_none(),
                "run {run}: index {index} acknowledged twice ({earlier:?}, then {payload:?})"
            );
        }
        for note in output.checkpoints {
            let checkpoint = verified_checkpoint(&history.verifier, &note);
            history
                .checkpoints
                .push((checkpoint.size(), checkpoint.root()));
        }
        let size = runtime.block_on(check_after_restart(data, region, &mut history, run, delay));
        report.final_size = size.0;
        report.crashes += 1;
    }
    report.acknowledged = history.acknowledged.len();
    report.checkpoints = history.checkpoints.len();
    assert!(
        report.acknowledged > 0,
        "no child acknowledged anything: the kills tested nothing"
    );
    report
}

/// Starts the child, kills it with SIGKILL after `delay`, and returns what it printed. A
/// line cut off by the kill is ignored: it was never fully printed.
fn run_and_kill(data: &Path, run: u32, delay: Duration) -> ChildOutput {
    let mut child: Child = Command::new(std::env::current_exe().expect("own path"))
        .arg(CHILD_ARGUMENT)
        .arg(data)
        .arg(run.to_string())
        .env("CUSTOS_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut output = ChildOutput::default();
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.last() != Some(&b'\n') => break,
                Ok(_) => parse_line(&line[..line.len() - 1], &mut output),
            }
        }
        output
    });
    std::thread::sleep(delay);
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no graceful shutdown.
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    // Anything else means the child stopped on its own: a failed append or open panics.
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "run {run}: the child was not killed but ended with {status}"
    );
    reader.join().expect("reader thread")
}

fn parse_line(line: &[u8], output: &mut ChildOutput) {
    let line = std::str::from_utf8(line).expect("child output is UTF-8");
    let mut parts = line.splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some("ack"), Some(rest)) => {
            let mut fields = rest.splitn(3, ' ');
            let index = fields
                .next()
                .and_then(|text| text.parse().ok())
                .expect("ack index");
            let leaf = fields
                .next()
                .and_then(|text| Hash::from_base64(text).ok())
                .expect("ack leaf hash");
            let payload = fields.next().expect("ack payload").to_owned();
            output.acknowledged.push((index, leaf, payload));
        }
        (Some("checkpoint"), Some(note)) => {
            let note: String = serde_json::from_str(note).expect("checkpoint as a JSON string");
            output.checkpoints.push(note.into_bytes());
        }
        (Some("ready"), None) => {}
        _ => panic!("unexpected child output {line:?}"),
    }
}

fn verified_checkpoint(verifier: &Verifier, note: &[u8]) -> Checkpoint {
    let note = Note::parse(note).expect("checkpoint note");
    note.verify(&[verifier])
        .expect("checkpoint signed by the log key");
    Checkpoint::parse(note.text()).expect("checkpoint text")
}

/// Reopens the deployment as `custos serve` would and checks the log against `history`;
/// returns the new signed size.
async fn check_after_restart(
    data: &Path,
    region: &RegionId,
    history: &mut History,
    run: u32,
    delay: Duration,
) -> TreeSize {
    let context = format!("after kill {run} ({} ms after start)", delay.as_millis());
    let (_, vault) = service::open_deployment(data, Arc::new(SystemClock))
        .await
        .unwrap_or_else(|error| panic!("{context}: reopen: {error}"));
    let log = vault.log(region).expect("served region");
    let note = vault.checkpoint(region).await.expect("checkpoint");
    let checkpoint = verified_checkpoint(&history.verifier, note.as_bytes());
    let (size, root) = (checkpoint.size(), checkpoint.root());

    for &(old_size, old_root) in &history.checkpoints {
        assert!(
            old_size <= size,
            "{context}: signed size {size} is below the served size {old_size} (rollback)"
        );
        let proof = log
            .consistency_proof(old_size.0, size.0)
            .await
            .expect("consistency proof");
        verify_consistency(old_size, size, old_root, root, &proof).unwrap_or_else(|error| {
            panic!("{context}: size {size} is not consistent with served size {old_size}: {error}")
        });
    }
    if let Some((&last, _)) = history.acknowledged.last_key_value() {
        assert!(
            last < size.0,
            "{context}: acknowledged index {last} is beyond the signed size {size}"
        );
    }
    // The entries added since the last check extend the tree checked then; the last run
    // reads them all again.
    let mut tree = if run + 1 == history.runs {
        CompactRange::new()
    } else {
        history.verified.clone()
    };
    check_entries(log, size, &mut tree, history, &context).await;
    assert_eq!(
        tree.size(),
        size,
        "{context}: bundles do not cover the tree"
    );
    assert_eq!(
        tree.root(),
        root,
        "{context}: stored entries do not hash to the signed root"
    );
    history.verified = tree;
    history.checkpoints.push((size, root));
    size
}

/// Reads the entries from `tree.size()` to the end of the signed tree through the bundles
/// the log serves, checks each acknowledged one against what its appender was promised,
/// and appends every leaf to `tree`.
async fn check_entries(
    log: &service::RegionLog,
    size: TreeSize,
    tree: &mut CompactRange,
    history: &History,
    context: &str,
) {
    let start = tree.size().0;
    for bundle in bundles_for_size(size) {
        let first = bundle.first_entry().expect("small index");
        if first + u64::from(bundle.width()) <= start {
            continue;
        }
        let bytes = log
            .entry_bundle(bundle)
            .await
            .expect("read bundle")
            .unwrap_or_else(|| panic!("{context}: bundle {bundle} missing"));
        for (offset, entry) in decode_bundle(&bytes).expect("bundle").iter().enumerate() {
            let index = first + offset as u64;
            if index < start {
                continue;
            }
            let leaf = leaf_hash(entry);
            if let Some((promised, payload)) = history.acknowledged.get(&index) {
                assert_eq!(
                    leaf, *promised,
                    "{context}: entry {index} differs from the one acknowledged"
                );
                let (_, stored) = sequencer::parse_salted_entry(entry).expect("entry layout");
                assert_eq!(
                    stored,
                    payload.as_bytes(),
                    "{context}: entry {index} payload"
                );
            }
            tree.append(leaf);
        }
    }
}

/// The child: opens the deployment and appends from [`APPENDERS`] tasks until killed.
async fn child(data: PathBuf, run: u32) {
    let (config, vault) = service::open_deployment(&data, Arc::new(SystemClock))
        .await
        .expect("open deployment");
    let region = config.regions[0].clone();
    let vault = Arc::new(vault);
    // One thread owns stdout so that lines never interleave; it flushes whenever it has
    // caught up, so a line is out soon after its append returned, and never before.
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        while let Ok(line) = received.recv() {
            stdout.write_all(line.as_bytes()).expect("write stdout");
            while let Ok(line) = received.try_recv() {
                stdout.write_all(line.as_bytes()).expect("write stdout");
            }
            stdout.flush().expect("flush stdout");
        }
    });
    lines.send("ready\n".to_owned()).expect("stdout thread");

    let watcher = {
        let (vault, region, lines) = (Arc::clone(&vault), region.clone(), lines.clone());
        tokio::spawn(async move {
            let mut last = String::new();
            loop {
                let note = match vault.checkpoint(&region).await {
                    Ok(note) => note,
                    Err(error) => fail(&format!("no served checkpoint: {error}")),
                };
                if note != last {
                    let quoted = serde_json::to_string(&note).expect("a string serializes");
                    lines
                        .send(format!("checkpoint {quoted}\n"))
                        .expect("stdout thread");
                    last = note;
                }
                tokio::time::sleep(Duration::from_millis(CHECKPOINT_POLL_MS)).await;
            }
        })
    };
    let mut appenders = Vec::with_capacity(APPENDERS);
    for appender in 0..APPENDERS {
        let (vault, region, lines) = (Arc::clone(&vault), region.clone(), lines.clone());
        appenders.push(tokio::spawn(async move {
            for sequence in 0u64.. {
                let payload = format!("run {run} appender {appender} entry {sequence}");
                let receipt = match vault
                    .append_log(&region, payload.clone().into_bytes())
                    .await
                {
                    Ok(receipt) => receipt,
                    Err(error) => fail(&format!("append failed: {error}")),
                };
                lines
                    .send(format!(
                        "ack {} {} {payload}\n",
                        receipt.index.0,
                        receipt.leaf_hash.to_base64()
                    ))
                    .expect("stdout thread");
            }
        }));
    }
    // Runs until killed; a task that fails ends the whole process (see `fail`).
    for appender in appenders {
        appender.await.expect("appender");
    }
    watcher.await.expect("watcher");
}

/// Ends the child at once with a status the parent reports: a panic in a task would only
/// end that task.
fn fail(message: &str) -> ! {
    eprintln!("crash child: {message}");
    std::process::exit(CHILD_FAILED_STATUS)
}
