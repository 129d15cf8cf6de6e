//! `custos log verify` and `custos receipt verify` end to end: a log built in memory with
//! `tlog` is served over HTTP by a small axum server inside the test, and the commands'
//! functions are run against honest, grown, rolled-back, forked and tampered copies.

#[path = "../src/log_commands.rs"]
#[allow(
    dead_code,
    reason = "the binary uses parts of the module these tests do not"
)]
mod log_commands;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use audit::{FetchError, Fetcher as _};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use log_commands::{
    HttpFetcher, LogSummary, ReceiptVerifyArgs, VerifyArgs, state_path, verify_log_command,
    verify_receipt_command,
};
use tlog::{
    Checkpoint, Cosigner, Hash, LeafIndex, Note, Signer, TlogProof, TreeSize, bundles_for_size,
    decode_bundle, encode_bundle, encode_tile, inclusion_proof, leaf_hash, root_from_leaves,
    tile_hashes, tiles_for_size,
};

const ORIGIN: &str = "custos.example/log/eu";
const LOG_SEED: [u8; 32] = [7; 32];
const TOKEN: &str = "entries-token";

/// Files of a log, keyed by path under the log prefix.
type Files = BTreeMap<String, Vec<u8>>;
/// Requests a server saw: path under the log prefix and `Authorization` header.
type Requests = Vec<(String, Option<String>)>;

/// `count` entries; entries from `diverge_at` on carry `variant`, so two histories with
/// different variants share exactly the prefix before `diverge_at`.
struct History {
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
}

impl History {
    fn new(count: u64, variant: u8, diverge_at: u64) -> History {
        let entries: Vec<Vec<u8>> = (0..count)
            .map(|index| {
                let variant = if index >= diverge_at { variant } else { 0 };
                format!("access {index} in history {variant}").into_bytes()
            })
            .collect();
        let leaves = entries.iter().map(|entry| leaf_hash(entry)).collect();
        History { entries, leaves }
    }

    fn honest(count: u64) -> History {
        History::new(count, 0, 0)
    }

    fn note(&self, size: u64) -> Note {
        let root = root_from_leaves(&self.leaves[..size as usize]);
        Checkpoint::new(ORIGIN, TreeSize(size), root, Vec::new())
            .expect("valid checkpoint")
            .sign(&signer())
    }

    /// The files a log serves at `size`: checkpoint, tiles and entry bundles.
    fn files(&self, size: u64) -> Files {
        let mut files = Files::new();
        let leaves = &self.leaves[..size as usize];
        for tile in tiles_for_size(TreeSize(size)) {
            let hashes = tile_hashes(leaves, TreeSize(size), tile).expect("tile within tree");
            files.insert(tile.path(), encode_tile(&hashes));
        }
        for bundle in bundles_for_size(TreeSize(size)) {
            let first = bundle.first_entry().expect("small index") as usize;
            let entries = &self.entries[first..first + usize::from(bundle.width())];
            files.insert(
                bundle.path(),
                encode_bundle(entries).expect("small entries"),
            );
        }
        files.insert("checkpoint".to_owned(), self.note(size).to_bytes());
        files
    }

    fn proof(&self, index: u64, size: u64) -> TlogProof {
        let leaves = &self.leaves[..size as usize];
        let path = inclusion_proof(leaves, LeafIndex(index), TreeSize(size)).expect("in tree");
        TlogProof::new(None, LeafIndex(index), path, self.note(size)).expect("valid proof")
    }
}

fn signer() -> Signer {
    Signer::new(ORIGIN, &LOG_SEED).expect("valid signer")
}

fn vkey() -> String {
    signer().verifier().to_vkey()
}

/// A log served at `http://127.0.0.1:<port>/log/eu/`, whose files a test can swap, and
/// which records each request with its `Authorization` header. Entry bundles need
/// `Bearer TOKEN`, as custos serves them.
#[derive(Clone)]
struct LogServer {
    files: Arc<Mutex<Files>>,
    requests: Arc<Mutex<Requests>>,
    url: String,
}

impl LogServer {
    fn start(files: Files) -> LogServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/log/eu", listener.local_addr().expect("address"));
        let server = LogServer {
            files: Arc::new(Mutex::new(files)),
            requests: Arc::new(Mutex::new(Vec::new())),
            url,
        };
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(server.clone());
        // The server lives on its own runtime thread for the rest of the test process:
        // the commands under test are blocking.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        server
    }

    fn replace(&self, files: Files) {
        *self.files.lock().unwrap() = files;
    }

    fn requests(&self) -> Requests {
        self.requests.lock().unwrap().clone()
    }

    fn args(&self) -> VerifyArgs {
        VerifyArgs {
            url: self.url.clone(),
            key: vkey(),
            state: None,
            entries: false,
            witnesses: Vec::new(),
            token: Some(TOKEN.to_owned()),
        }
    }
}

async fn serve(State(server): State<LogServer>, uri: Uri, headers: HeaderMap) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let Some(path) = uri.path().strip_prefix("/log/eu/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    server
        .requests
        .lock()
        .unwrap()
        .push((path.to_owned(), authorization.clone()));
    if path.starts_with("tile/entries/")
        && authorization.as_deref() != Some(&format!("Bearer {TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match server.files.lock().unwrap().get(path) {
        Some(bytes) => Response::new(Body::from(bytes.clone())),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Runs `custos log verify` and expects success or an error whose full message contains
/// `expected`.
fn check(args: &VerifyArgs, expected: Result<(), &str>) -> Option<LogSummary> {
    let outcome = verify_log_command(args, indicatif::ProgressBar::hidden());
    match (outcome, expected) {
        (Ok(summary), Ok(())) => Some(summary),
        (Err(error), Err(expected)) => {
            let message = format!("{error:#}");
            assert!(
                message.contains(expected),
                "expected an error containing {expected:?}, got {message:?}"
            );
            None
        }
        (Ok(summary), Err(expected)) => panic!("expected {expected:?}, got success: {summary}"),
        (Err(error), Ok(())) => panic!("expected success, got {error:#}"),
    }
}

fn stored_state(directory: &Path) -> String {
    std::fs::read_to_string(state_path(directory, ORIGIN)).expect("state file written")
}

#[test]
fn honest_log_verifies_and_stores_its_state() {
    let history = History::honest(300);
    let server = LogServer::start(history.files(300));
    let state = tempfile::tempdir().unwrap();
    let args = VerifyArgs {
        state: Some(state.path().to_owned()),
        ..server.args()
    };
    let summary = check(&args, Ok(())).unwrap();
    assert_eq!(summary.report.checkpoint.size(), TreeSize(300));
    // Level 0: one full tile and a partial of 44; level 1: a partial of 1.
    assert_eq!(summary.report.tiles_verified, 3);
    assert_eq!(summary.report.entries_verified, None);
    assert_eq!(summary.previous_size, None);
    let root = root_from_leaves(&history.leaves).to_base64();
    assert_eq!(
        stored_state(state.path()),
        format!("{ORIGIN}\n300\n{root}\n")
    );
    assert_eq!(
        summary.to_string(),
        format!(
            "verified {ORIGIN} size 300 root {root}: 3 tiles, entries not checked, cosigners none, first state stored in {}",
            state_path(state.path(), ORIGIN).display()
        )
    );
    // No temporary file is left next to the state.
    let names: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["custos.example_2flog_2feu.state"]);
}

#[test]
fn grown_log_is_checked_for_consistency_with_the_stored_state() {
    let history = History::honest(70_000);
    let server = LogServer::start(history.files(300));
    let state = tempfile::tempdir().unwrap();
    let args = VerifyArgs {
        state: Some(state.path().to_owned()),
        ..server.args()
    };
    check(&args, Ok(()));
    let mut previous = 300;
    for size in [300, 1_000, 70_000] {
        server.replace(history.files(size));
        let summary = check(&args, Ok(())).unwrap();
        assert_eq!(summary.report.checkpoint.size(), TreeSize(size));
        assert_eq!(summary.previous_size, Some(previous));
        assert!(
            summary
                .to_string()
                .ends_with(&format!("consistent with stored size {previous}")),
            "{summary}"
        );
        assert!(stored_state(state.path()).contains(&format!("\n{size}\n")));
        previous = size;
    }
}

#[test]
fn rollbacks_and_forks_are_named_and_keep_the_stored_state() {
    let honest = History::honest(1_000);
    // The same first 200 entries, then different ones.
    let forked = History::new(1_000, 1, 200);
    let cases: [(&str, Files, &str); 3] = [
        (
            "rollback",
            honest.files(400),
            "smaller than the stored size 500 (rollback)",
        ),
        (
            "fork at the stored size",
            forked.files(500),
            "differs from the stored root (fork)",
        ),
        (
            "fork grown past the stored size",
            forked.files(900),
            "not consistent with the stored checkpoint at size 500 (fork)",
        ),
    ];
    for (name, files, expected) in cases {
        let server = LogServer::start(honest.files(500));
        let state = tempfile::tempdir().unwrap();
        let args = VerifyArgs {
            state: Some(state.path().to_owned()),
            ..server.args()
        };
        check(&args, Ok(()));
        let before = stored_state(state.path());
        server.replace(files);
        eprintln!("case: {name}");
        check(&args, Err(expected));
        assert_eq!(stored_state(state.path()), before, "{name}: state changed");
    }
}

#[test]
fn tampered_tiles_are_named() {
    let history = History::honest(300);
    for (path, offset, expected) in [
        (
            "tile/0/000",
            100,
            "tile/0/000 does not hash to its entry in tile/1/000.p/1",
        ),
        ("tile/0/001.p/44", 0, "tile/0/001.p/44"),
        ("tile/1/000.p/1", 31, "tile/1/000.p/1"),
    ] {
        let mut files = history.files(300);
        files.get_mut(path).unwrap()[offset] ^= 1;
        let server = LogServer::start(files);
        check(&server.args(), Err(expected));
    }
    let mut files = history.files(300);
    files.get_mut("tile/0/000").unwrap().pop();
    let server = LogServer::start(files);
    check(
        &server.args(),
        Err("tile tile/0/000 has 8191 bytes, expected 8192"),
    );
}

#[test]
fn tampered_entries_are_named_by_index_when_entries_are_checked() {
    let history = History::honest(300);
    let mut files = history.files(300);
    let path = "tile/entries/001.p/44";
    let mut entries = decode_bundle(&files[path]).unwrap();
    entries[5] = b"access 261 that never happened".to_vec();
    files.insert(path.to_owned(), encode_bundle(&entries).unwrap());
    let server = LogServer::start(files);
    // Without --entries the bundles are not read, and the tiles are honest.
    check(&server.args(), Ok(()));
    let args = VerifyArgs {
        entries: true,
        ..server.args()
    };
    check(
        &args,
        Err("entry 261 in tile/entries/001.p/44 does not hash to its leaf in tile/0/001.p/44"),
    );
}

#[test]
fn entry_bundles_are_requested_with_the_token_and_nothing_else_is() {
    let history = History::honest(300);
    let server = LogServer::start(history.files(300));
    let args = VerifyArgs {
        entries: true,
        ..server.args()
    };
    let summary = check(&args, Ok(())).unwrap();
    assert_eq!(summary.report.entries_verified, Some(300));
    let requests = server.requests();
    let bearer = format!("Bearer {TOKEN}");
    let mut bundles = 0;
    for (path, authorization) in &requests {
        if path.starts_with("tile/entries/") {
            bundles += 1;
            assert_eq!(authorization.as_deref(), Some(bearer.as_str()), "{path}");
        } else {
            assert_eq!(authorization, &None, "{path} carried the token");
        }
    }
    assert_eq!(bundles, 2);

    let without_token = VerifyArgs {
        token: None,
        ..args
    };
    check(
        &without_token,
        Err("failed to fetch tile/entries/000: server answered with status 401"),
    );
}

#[test]
fn witness_cosigners_are_listed_in_the_summary() {
    let history = History::honest(300);
    let mut files = history.files(300);
    let checkpoint = Checkpoint::parse(history.note(300).text()).unwrap();
    let witness = Cosigner::new("witness.example/one", &[1; 32]).unwrap();
    let mut note = history.note(300);
    note.add_signature(witness.cosign(&checkpoint, 1_700_000_000).unwrap())
        .unwrap();
    files.insert("checkpoint".to_owned(), note.to_bytes());
    let server = LogServer::start(files);
    let args = VerifyArgs {
        witnesses: vec![witness.verifier().to_vkey()],
        ..server.args()
    };
    let summary = check(&args, Ok(())).unwrap();
    assert!(
        summary
            .to_string()
            .contains("cosigners witness.example/one,"),
        "{summary}"
    );
    // Without the witness key, its cosignature is not counted.
    let summary = check(&server.args(), Ok(())).unwrap();
    assert!(summary.to_string().contains("cosigners none,"), "{summary}");
}

#[test]
fn missing_checkpoint_and_wrong_key_fail() {
    let history = History::honest(10);
    let server = LogServer::start(Files::new());
    check(&server.args(), Err("checkpoint does not exist"));
    server.replace(history.files(10));
    let other = Signer::new(ORIGIN, &[9; 32]).unwrap().verifier().to_vkey();
    let args = VerifyArgs {
        key: other,
        ..server.args()
    };
    check(&args, Err("checkpoint carries no signature by the log key"));
}

#[test]
fn http_fetcher_maps_statuses_and_refuses_paths_outside_the_log() {
    let history = History::honest(10);
    let server = LogServer::start(history.files(10));
    let fetcher = HttpFetcher::new(&format!("{}/", server.url), None);
    let check = |path: &str, expected: Result<Option<&[u8]>, FetchError>| {
        assert_eq!(
            fetcher.fetch(path).as_ref().map(|bytes| bytes.as_deref()),
            expected.as_ref().map(|bytes| *bytes),
            "{path}"
        );
    };
    let checkpoint = history.files(10)["checkpoint"].clone();
    check("checkpoint", Ok(Some(&checkpoint)));
    check("tile/0/999", Ok(None));
    check(
        "tile/entries/000.p/10",
        Err(FetchError::Status { status: 401 }),
    );
    for path in [
        "",
        "/checkpoint",
        "../checkpoint",
        "tile//0",
        "tile/./0",
        "checkpoint?x",
        "a%2f..",
    ] {
        check(
            path,
            Err(FetchError::InvalidPath {
                path: path.to_owned(),
            }),
        );
    }
    // HTTPS goes through rustls on aws-lc-rs: against a plain-HTTP port the handshake
    // fails as a transport error (and nothing panics for want of a crypto provider).
    let https = HttpFetcher::new(&server.url.replace("http://", "https://"), None);
    assert!(
        matches!(https.fetch("checkpoint"), Err(FetchError::Transport { .. })),
        "https to a plain-HTTP port must fail"
    );
}

#[test]
fn state_files_are_named_injectively_inside_the_directory() {
    let directory = Path::new("/state");
    for (origin, expected) in [
        ("custos.example/log/eu", "custos.example_2flog_2feu.state"),
        ("a_b", "a_5fb.state"),
        ("a/b", "a_2fb.state"),
        ("../..", ".._2f...state"),
        ("é", "_c3_a9.state"),
    ] {
        let path = state_path(directory, origin);
        assert_eq!(path.parent(), Some(directory), "{origin}");
        assert_eq!(
            path.file_name().unwrap().to_str(),
            Some(expected),
            "{origin}"
        );
    }
}

/// Writes the receipt files for entry `index` of `history` at `size` and runs
/// `custos receipt verify`, expecting success or an error containing `expected`.
fn check_receipt(
    entry: &[u8],
    proof: &TlogProof,
    change: impl FnOnce(&mut ReceiptVerifyArgs),
    expected: Result<(), &str>,
) {
    let directory = tempfile::tempdir().unwrap();
    let entry_path = directory.path().join("entry");
    let proof_path = directory.path().join("entry.tlog-proof");
    std::fs::write(&entry_path, entry).unwrap();
    std::fs::write(&proof_path, proof.to_bytes()).unwrap();
    let mut args = ReceiptVerifyArgs {
        keys: vec![vkey()],
        entry: Some(entry_path),
        proof: Some(proof_path),
        report: None,
        records: None,
        index: None,
        leaf_hash: None,
        origin: None,
    };
    change(&mut args);
    match (verify_receipt_command(&args), expected) {
        (Ok(checkpoint), Ok(())) => assert_eq!(checkpoint.origin(), ORIGIN),
        (Err(error), Err(expected)) => {
            let message = format!("{error:#}");
            assert!(
                message.contains(expected),
                "expected {expected:?}, got {message:?}"
            );
        }
        (Ok(_), Err(expected)) => panic!("expected {expected:?}, receipt verified"),
        (Err(error), Ok(())) => panic!("expected success, got {error:#}"),
    }
}

#[test]
fn receipts_verify_offline_and_modified_entries_fail() {
    let history = History::honest(1_000);
    let proof = history.proof(517, 1_000);
    let entry = history.entries[517].clone();
    let stated = leaf_hash(&entry).to_base64();
    check_receipt(&entry, &proof, |_| {}, Ok(()));
    check_receipt(
        &entry,
        &proof,
        |args| {
            args.index = Some(517);
            args.leaf_hash = Some(stated.clone());
            args.origin = Some(ORIGIN.to_owned());
        },
        Ok(()),
    );
    check_receipt(
        b"access 517 in history 1",
        &proof,
        |_| {},
        Err("inclusion proof for index 517"),
    );
    check_receipt(
        b"access 517 in history 1",
        &proof,
        |args| args.leaf_hash = Some(stated.clone()),
        Err("entry hashes to"),
    );
    check_receipt(
        &entry,
        &proof,
        |args| args.index = Some(516),
        Err("proof is for index 517, the receipt states index 516"),
    );
    check_receipt(
        &entry,
        &proof,
        |args| args.origin = Some("custos.example/log/us".to_owned()),
        Err("differs from the receipt's origin"),
    );
    check_receipt(
        &entry,
        &proof,
        |args| args.keys = vec![Signer::new(ORIGIN, &[9; 32]).unwrap().verifier().to_vkey()],
        Err("checkpoint carries no signature by the log key"),
    );
}
