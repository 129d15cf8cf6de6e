//! Tampering with a real deployment's stored log, caught by `custos log verify`.
//!
//! Each test sets up a data directory with `custos init`, appends entries by opening the
//! deployment in-process (`service::open_deployment` and `Vault::append_log`, the writer
//! the access flow will use; there is no HTTP append yet), serves it with the real
//! `custos serve`, and audits it with the real `custos log verify`. Then the server is
//! stopped, the SQLite database is changed directly with rusqlite — as someone with the
//! file, or the operator, could — the server is started again and the audit must fail,
//! naming the entry index, the tile, or the rollback or fork against the auditor's state.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use model::RegionId;
use rusqlite::{Connection, params};
use service::SystemClock;
use tlog::{CompactRange, Hash, TreeSize, encode_tile, leaf_hash, tile_hashes, tiles_for_size};

/// Entries in every test log: two full tiles and bundles, and a partial one of 88.
const ENTRIES: u64 = 600;
/// How long a starting server may take to accept connections.
const SERVER_START_MAX: Duration = Duration::from_secs(30);

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env("CUSTOS_LOG", "warn")
        .output()
        .expect("run custos")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn region() -> RegionId {
    RegionId::new("us").expect("region")
}

/// A data directory with a log of [`ENTRIES`] entries, its service token, its log key and
/// an auditor's state directory.
struct Deployment {
    _root: tempfile::TempDir,
    data: PathBuf,
    state: PathBuf,
    token: String,
    vkey: String,
}

impl Deployment {
    fn new() -> Deployment {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let output = custos(&[
            "init",
            "--data",
            data.to_str().expect("utf-8 path"),
            "--regions",
            "us",
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let token = stdout
            .lines()
            .find(|line| line.starts_with("cst_"))
            .expect("init prints the token")
            .to_owned();
        let output = custos(&[
            "log",
            "key",
            "--data",
            data.to_str().expect("utf-8 path"),
            "--region",
            "us",
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let vkey = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let deployment = Deployment {
            state: root.path().join("auditor"),
            _root: root,
            data,
            token,
            vkey,
        };
        deployment.append("honest", ENTRIES);
        deployment
    }

    fn database(&self) -> Connection {
        Connection::open(self.data.join("regions").join("us.db")).expect("open the region database")
    }

    /// Appends `count` entries as the node does, signs, and closes the deployment.
    fn append(&self, label: &str, count: u64) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_, vault) = service::open_deployment(&self.data, Arc::new(SystemClock))
                .await
                .expect("open deployment");
            let vault = Arc::new(vault);
            let mut appends = tokio::task::JoinSet::new();
            for index in 0..count {
                let vault = Arc::clone(&vault);
                let payload = format!("{label} access {index}").into_bytes();
                appends.spawn(async move {
                    vault.append_log(&region(), payload).await.expect("append")
                });
            }
            appends.join_all().await;
            vault.sign_checkpoint_now(&region()).await.expect("sign");
        });
    }

    /// Starts `custos serve` on a free port and waits until it accepts connections.
    fn serve(&self) -> Server {
        // Port 0, and the address the server says it bound: a port picked here and handed
        // over could be taken by another test's server in between.
        let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["serve", "--data", self.data.to_str().expect("utf-8 path"), "--listen", "127.0.0.1:0"])
            .env("CUSTOS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start custos serve");
        let stderr = child.stderr.take().expect("the server's stderr");
        let mut server = Server { child, address: SocketAddr::from(([127, 0, 0, 1], 0)) };
        let (sender, receiver) = std::sync::mpsc::channel();
        // Reads the server's stderr to the end (warnings may come before and after the line
        // naming the address), so the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("custos serving regions")
                    && let Some(address) = line.rsplit("http://").next()
                {
                    let _ = sender.send(address.trim().to_owned());
                }
            }
        });
        let address = receiver.recv_timeout(SERVER_START_MAX).expect("custos serve did not say where it listens");
        server.address = address.parse().expect("a socket address");
        assert!(TcpStream::connect(server.address).is_ok(), "custos serve listens on {}", server.address);
        server
    }

    /// Runs `custos log verify` against `server` with the auditor's state.
    fn verify(&self, server: &Server, entries: bool) -> Output {
        let url = format!("http://{}/log/us", server.address);
        let state = self.state.to_str().expect("utf-8 path");
        let mut args = vec![
            "log", "verify", "--url", &url, "--key", &self.vkey, "--state", state,
        ];
        if entries {
            args.push("--entries");
        }
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(&args)
            .env("CUSTOS_TOKEN", &self.token)
            .env("CUSTOS_LOG", "warn")
            .output()
            .expect("run custos log verify")
    }

    /// Serves the log, audits it, and stops the server; expects success or a failure
    /// whose output contains `expected`.
    fn audit(&self, entries: bool, expected: Result<&str, &str>) {
        let server = self.serve();
        let output = self.verify(&server, entries);
        drop(server);
        let printed = text(&output);
        eprintln!(
            "custos log verify{}: {}",
            if entries { " --entries" } else { "" },
            printed.trim()
        );
        match expected {
            Ok(summary) => {
                assert!(output.status.success(), "expected success, got: {printed}");
                assert!(
                    printed.contains(summary),
                    "expected {summary:?} in: {printed}"
                );
            }
            Err(error) => {
                assert!(
                    !output.status.success(),
                    "expected a failure naming {error:?}, got success: {printed}"
                );
                assert!(printed.contains(error), "expected {error:?} in: {printed}");
            }
        }
    }

    /// The auditor's stored state file, which a failed audit must leave as it was.
    fn stored_state(&self) -> String {
        let mut files = std::fs::read_dir(&self.state)
            .expect("state directory")
            .map(|entry| entry.expect("entry").path());
        let path = files.next().expect("one state file");
        std::fs::read_to_string(path).expect("state file")
    }
}

/// A running `custos serve`, killed when dropped (SIGKILL releases its lock too).
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stored_entry(database: &Connection, index: u64) -> Vec<u8> {
    database
        .query_row(
            "SELECT entry FROM log_entries WHERE entry_index = ?1",
            [index as i64],
            |row| row.get(0),
        )
        .expect("stored entry")
}

#[test]
fn changed_entry_byte_is_named_by_index_with_entries() {
    let deployment = Deployment::new();
    deployment.audit(true, Ok("verified localhost/custos/us size 600"));
    let before = deployment.stored_state();

    let database = deployment.database();
    let mut entry = stored_entry(&database, 261);
    // The last byte is the payload's, after the salt and the length.
    *entry.last_mut().expect("non-empty entry") ^= 1;
    let changed = database
        .execute(
            "UPDATE log_entries SET entry = ?1 WHERE entry_index = 261",
            params![entry],
        )
        .expect("update");
    assert_eq!(changed, 1);
    drop(database);

    // The tiles are untouched, so only an audit of the entries sees the change.
    deployment.audit(false, Ok("verified localhost/custos/us size 600"));
    deployment.audit(
        true,
        Err("entry 261 in tile/entries/001 does not hash to its leaf in tile/0/001"),
    );
    assert_eq!(
        deployment.stored_state(),
        before,
        "a failed audit changed the stored state"
    );
}

#[test]
fn deleted_entry_row_fails_the_bundle_that_held_it() {
    let deployment = Deployment::new();
    deployment.audit(true, Ok("entries 600"));

    let database = deployment.database();
    let deleted = database
        .execute("DELETE FROM log_entries WHERE entry_index = 300", [])
        .expect("delete");
    assert_eq!(deleted, 1);
    drop(database);

    deployment.audit(false, Ok("verified localhost/custos/us size 600"));
    // The server cannot build the bundle holding entries 256..512 and says so; the
    // auditor names the bundle it could not get.
    deployment.audit(true, Err("failed to fetch tile/entries/001"));
}

#[test]
fn changed_tile_row_is_named_by_path() {
    let deployment = Deployment::new();
    deployment.audit(false, Ok("verified localhost/custos/us size 600"));

    let database = deployment.database();
    let mut hashes: Vec<u8> = database
        .query_row(
            "SELECT hashes FROM log_tiles WHERE tile_level = 0 AND tile_index = 1",
            [],
            |row| row.get(0),
        )
        .expect("stored tile");
    hashes[32 * 7] ^= 0x80;
    let changed = database
        .execute(
            "UPDATE log_tiles SET hashes = ?1 WHERE tile_level = 0 AND tile_index = 1",
            params![hashes],
        )
        .expect("update");
    assert_eq!(changed, 1);
    drop(database);

    deployment.audit(
        false,
        Err("tile/0/001 does not hash to its entry in tile/1/000.p/2"),
    );
}

/// The operator rewinds the log to `size` entries: drops the later entries and their
/// checkpoints, and rewrites the tiles and the sequencer state as they were at `size`, so
/// the node resumes there and signs with its own key.
fn rewind(database: &Connection, size: u64) {
    let mut leaves: Vec<Hash> = Vec::new();
    {
        let mut select = database
            .prepare("SELECT entry FROM log_entries WHERE entry_index < ?1 ORDER BY entry_index")
            .expect("prepare");
        let rows = select
            .query_map([size as i64], |row| row.get::<_, Vec<u8>>(0))
            .expect("select");
        for entry in rows {
            leaves.push(leaf_hash(&entry.expect("entry")));
        }
    }
    assert_eq!(leaves.len() as u64, size);
    let mut range = CompactRange::new();
    range.extend(&leaves);
    let frontier: Vec<u8> = range.hashes().iter().flat_map(|hash| hash.0).collect();
    database
        .execute(
            "DELETE FROM log_entries WHERE entry_index >= ?1",
            [size as i64],
        )
        .expect("delete entries");
    database
        .execute(
            "DELETE FROM log_checkpoints WHERE tree_size > ?1",
            [size as i64],
        )
        .expect("delete checkpoints");
    database
        .execute("DELETE FROM log_tiles", [])
        .expect("delete tiles");
    for tile in tiles_for_size(TreeSize(size)) {
        let hashes =
            tile_hashes(leaves.as_slice(), TreeSize(size), tile).expect("tile within the tree");
        database
            .execute(
                "INSERT INTO log_tiles (tile_level, tile_index, hashes) VALUES (?1, ?2, ?3)",
                params![tile.level(), tile.index() as i64, encode_tile(&hashes)],
            )
            .expect("insert tile");
    }
    let updated = database
        .execute(
            "UPDATE log_state SET tree_size = ?1, frontier = ?2 WHERE id = 1",
            params![size as i64, frontier],
        )
        .expect("update state");
    assert_eq!(updated, 1);
}

#[test]
fn rewound_and_resigned_log_is_a_rollback_or_fork_for_the_auditor() {
    let deployment = Deployment::new();
    deployment.audit(true, Ok("verified localhost/custos/us size 600"));
    let before = deployment.stored_state();

    rewind(&deployment.database(), 250);
    // The node restarts on the rewound store and signs size 250 with the deployment's key.
    deployment.audit(
        true,
        Err("checkpoint size 250 is smaller than the stored size 600 (rollback)"),
    );

    // A different history of the same size as the one the auditor saw.
    deployment.append("rewritten", 350);
    deployment.audit(
        true,
        Err("root at size 600 differs from the stored root (fork)"),
    );

    // And grown past it.
    deployment.append("rewritten later", 100);
    deployment.audit(true, Err("checkpoint at size 700 is not consistent with the stored checkpoint at size 600 (fork)"));
    assert_eq!(
        deployment.stored_state(),
        before,
        "a failed audit changed the stored state"
    );

    // The rewritten log is internally sound and signed by the real key: an auditor without
    // a stored state accepts it. Only the state from an earlier audit exposes the lie.
    let fresh = tempfile::tempdir().expect("tempdir");
    let server = deployment.serve();
    let url = format!("http://{}/log/us", server.address);
    let output = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args([
            "log",
            "verify",
            "--url",
            &url,
            "--key",
            &deployment.vkey,
            "--entries",
        ])
        .args(["--state", fresh.path().to_str().expect("utf-8 path")])
        .env("CUSTOS_TOKEN", &deployment.token)
        .output()
        .expect("run custos log verify");
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("size 700"), "{}", text(&output));
}
