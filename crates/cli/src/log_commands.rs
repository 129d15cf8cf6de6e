//! `custos log verify` and `custos receipt verify`: thin shells over the `audit` crate. This
//! file brings the transport (an HTTP(S) [`Fetcher`]), the progress bar, and the trusted
//! state kept between runs (one file per log origin, replaced atomically).
//!
//! Receipt input: the tlog-proof file (`--proof`) is the receipt the log handed out; the
//! entry is read from `--entry`. `--index`, `--leaf-hash` and `--origin` pin what the writer
//! was promised; each one left out is taken from the proof (index, origin) or the entry
//! (leaf hash), so the check then only shows that the entry is in a checkpoint signed by
//! the key.
//!
//! Report input (`--report`): a data subject's access report, JSON Lines; its first line
//! carries the signed checkpoint, and each further line an entry, its receipt and inclusion
//! proof, checked with the same receipt verifier, then decoded and compared with what the
//! line shows. Records input (`--records`): a records report (`custos report`), checked the
//! same way against each region's checkpoint, and each record against the report's scope.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use audit::{
    BUNDLE_BYTES_MAX, CHECKPOINT_BYTES_MAX, FetchError, Fetcher, Receipt, TrustedState,
    VerifyOptions, VerifyReport, verify_log, verify_receipt,
};
use tlog::tile::TILE_BYTES_MAX;
use tlog::{
    Checkpoint, Hash, LeafIndex, Note, TlogProof, bundles_for_size, leaf_hash, tiles_for_size,
};

/// Subcommands of `custos log`.
#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Audit a region's log: check the checkpoint signature, every tile (and with
    /// --entries every entry) against the signed root, and consistency with the state
    /// stored by the previous run.
    Verify(VerifyArgs),
    /// Print a region's log verifier key (signed-note `name+hash+base64` form), for auditors
    /// to pass to `custos log verify --key`.
    Key {
        #[arg(long, env = "CUSTOS_DATA")]
        data: std::path::PathBuf,
        #[arg(long)]
        region: model::RegionId,
    },
}

/// Subcommands of `custos receipt`.
#[derive(Debug, clap::Subcommand)]
pub enum ReceiptCommand {
    /// Check offline that an entry is in the log, from its tlog-proof.
    Verify(ReceiptVerifyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The log prefix, e.g. `https://custos.example/log/eu`; resources are fetched from
    /// `<url>/checkpoint` and `<url>/tile/...`.
    #[arg(long)]
    pub url: String,
    /// The log's verifier key (signed-note vkey).
    #[arg(long)]
    pub key: String,
    /// Directory keeping the last verified checkpoint per log (`<origin>.state`). Without
    /// it, nothing is remembered and consistency with earlier runs is not checked.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Also fetch every entry bundle and check every entry.
    #[arg(long)]
    pub entries: bool,
    /// A witness cosigner vkey whose cosignatures are counted (repeatable).
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// Bearer token for the entry bundles (the only resources that need one).
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReceiptVerifyArgs {
    /// The log's verifier key (signed-note vkey); with `--records`, one per region the
    /// report covers (repeat `--key`).
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
    /// The entry, exactly as it was appended.
    #[arg(long, required_unless_present_any = ["report", "records"], conflicts_with_all = ["report", "records"])]
    pub entry: Option<PathBuf>,
    /// The tlog-proof (`c2sp.org/tlog-proof@v1`) the log returned for the entry.
    #[arg(long, required_unless_present_any = ["report", "records"], conflicts_with_all = ["report", "records"])]
    pub proof: Option<PathBuf>,
    /// A data subject's access report (JSON Lines from `GET /v1/subjects/{id}/accesses`):
    /// checks its checkpoint and every line, instead of one entry and proof.
    #[arg(long, conflicts_with = "records")]
    pub report: Option<PathBuf>,
    /// A records report (JSON Lines from `custos report --format json`, `GET /v1/records`):
    /// checks each region's checkpoint and every record, its proof and that it belongs to
    /// the report's scope.
    #[arg(long)]
    pub records: Option<PathBuf>,
    /// The index the log promised; defaults to the proof's index.
    #[arg(long)]
    pub index: Option<u64>,
    /// The leaf hash the log promised (standard base64); defaults to the entry's hash.
    #[arg(long)]
    pub leaf_hash: Option<String>,
    /// The log origin the receipt is from; defaults to the proof checkpoint's origin.
    #[arg(long)]
    pub origin: Option<String>,
}

/// Runs a `custos log` subcommand; a log that fails the audit is an error naming the
/// tile, entry index, rollback or fork at fault.
pub fn run_log(command: LogCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Verify(args) => {
            let summary = verify_log_command(&args, progress_bar_if_terminal())?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Key { data, region } => {
            println!("{}", service::log_verifier_key(&data, &region)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a `custos receipt` subcommand.
pub fn run_receipt(command: ReceiptCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReceiptCommand::Verify(ReceiptVerifyArgs { records: Some(records), keys, .. }) => {
            let verified = verify_records_command(&records, &keys)?;
            println!(
                "records verified: {} records of {} against {}",
                verified.records,
                verified.scope,
                verified
                    .checkpoints
                    .iter()
                    .map(|checkpoint| format!("{} size {} root {}", checkpoint.origin(), checkpoint.size(), checkpoint.root().to_base64()))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Verify(ReceiptVerifyArgs { report: Some(report), keys, .. }) => {
            let verified = verify_report_command(&report, one_key(&keys, "--report")?)?;
            println!(
                "report verified: {} accesses of subject {} in {} size {} root {}",
                verified.accesses,
                verified.subject,
                verified.checkpoint.origin(),
                verified.checkpoint.size(),
                verified.checkpoint.root().to_base64()
            );
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Verify(args) => {
            let checkpoint = verify_receipt_command(&args)?;
            println!(
                "receipt verified: {} size {} root {}",
                checkpoint.origin(),
                checkpoint.size(),
                checkpoint.root().to_base64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The longest a whole request may take, connection to last byte: a full tile is 8 KiB
/// and the largest entry bundle about 16 MiB.
pub const REQUEST_DURATION_MAX: Duration = Duration::from_secs(120);
/// Tiles fetched at once before the verifier asks for them.
pub const FETCH_THREADS: usize = 4;
/// Entry bundles fetched ahead of the one the verifier is checking (with `--entries`), so
/// that checking and fetching overlap; bounds the memory held to this many bundles.
pub const BUNDLES_AHEAD_MAX: usize = 64;
/// Idle connections kept for reuse: one per thread that fetches (tiles, then bundles).
pub const CONNECTIONS_IDLE_MAX: usize = 2 * FETCH_THREADS;
/// Redirects followed; the bearer token is never sent across them (ureq's default).
pub const REDIRECTS_MAX: u32 = 5;

/// An audit [`Fetcher`] over HTTP and HTTPS (rustls on aws-lc-rs, Mozilla's roots). A 404
/// is a resource the log does not have; any other non-2xx status is an error. Responses
/// are read up to the limit of the resource kind (checkpoint, tile or entry bundle).
#[derive(Clone)]
pub struct HttpFetcher {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for HttpFetcher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: never print it.
        formatter
            .debug_struct("HttpFetcher")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HttpFetcher {
    /// A fetcher for the log at `base` (the log prefix, with or without a trailing `/`);
    /// `token` is sent as `Authorization: Bearer` with entry bundle requests only.
    pub fn new(base: &str, token: Option<String>) -> HttpFetcher {
        let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::WebPki)
            .unversioned_rustls_crypto_provider(crypto)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_DURATION_MAX))
            .max_redirects(REDIRECTS_MAX)
            // Keep a connection per fetching thread: with fewer (ureq's default is 3 per
            // host), connections are closed and reopened all the time.
            .max_idle_connections(CONNECTIONS_IDLE_MAX)
            .max_idle_connections_per_host(CONNECTIONS_IDLE_MAX)
            .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            ResolveOnce::default(),
        );
        HttpFetcher {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The log prefix requests are made under.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The agent, for other requests to the same server with the same settings.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

/// ureq resolves the host before every request, even on a pooled connection, and with a
/// timeout set it does so on a new thread each time: thousands of threads for one audit.
/// This resolver asks ureq's own once per scheme and authority (the log's host, and any
/// host a redirect leads to) and answers from that afterwards; an audit is short, so the
/// addresses do not go stale.
#[derive(Debug, Default)]
struct ResolveOnce {
    inner: ureq::unversioned::resolver::DefaultResolver,
    resolved: Mutex<HashMap<String, ureq::unversioned::resolver::ResolvedSocketAddrs>>,
}

impl ureq::unversioned::resolver::Resolver for ResolveOnce {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = format!("{}://{}", uri.scheme_str().unwrap_or(""), uri.authority().map_or("", |authority| authority.as_str()));
        if let Some(addresses) = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(addresses.clone());
        }
        let addresses = self.inner.resolve(uri, config, timeout)?;
        self.resolved.lock().unwrap_or_else(PoisonError::into_inner).insert(key, addresses.clone());
        Ok(addresses)
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            || path.contains(['?', '#', '%', '\\'])
        {
            return Err(FetchError::InvalidPath {
                path: path.to_owned(),
            });
        }
        let is_bundle = path.starts_with("tile/entries/");
        let bytes_max = if path == "checkpoint" {
            CHECKPOINT_BYTES_MAX
        } else if is_bundle {
            BUNDLE_BYTES_MAX
        } else {
            TILE_BYTES_MAX
        };
        let mut request = self
            .agent
            .get(format!("{}/{path}", self.base))
            .header("Accept-Encoding", "gzip, identity");
        if is_bundle && let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(FetchError::Status { status });
        }
        // The limit applies after decompression, so a small gzip bomb is stopped too.
        let bytes = response
            .body_mut()
            .with_config()
            .limit(bytes_max as u64)
            .read_to_vec()
            .map_err(|error| match error {
                ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge { bytes_max },
                other => transport(other),
            })?;
        Ok(Some(bytes))
    }
}

fn transport(error: ureq::Error) -> FetchError {
    FetchError::Transport {
        reason: error.to_string(),
    }
}

/// What a successful `custos log verify` prints.
#[derive(Clone, Debug)]
pub struct LogSummary {
    pub report: VerifyReport,
    /// Where the new state was written, if a state directory was given.
    pub state_file: Option<PathBuf>,
    /// The size of the stored state the new checkpoint was checked against.
    pub previous_size: Option<u64>,
}

impl fmt::Display for LogSummary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.report;
        let entries = match report.entries_verified {
            Some(count) => count.to_string(),
            None => "not checked".to_owned(),
        };
        let cosigners = if report.cosigners.is_empty() {
            "none".to_owned()
        } else {
            report.cosigners.join(",")
        };
        let consistency = match (self.previous_size, &self.state_file) {
            (Some(size), _) => format!("consistent with stored size {size}"),
            (None, Some(path)) => format!("first state stored in {}", path.display()),
            (None, None) => "no stored state".to_owned(),
        };
        write!(
            formatter,
            "verified {} size {} root {}: {} tiles, entries {}, cosigners {}, {}",
            report.checkpoint.origin(),
            report.checkpoint.size(),
            report.checkpoint.root().to_base64(),
            report.tiles_verified,
            entries,
            cosigners,
            consistency
        )
    }
}

/// The progress display: a bar on a terminal, nothing otherwise.
pub fn progress_bar_if_terminal() -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {wide_bar} {pos}/{len} tiles and bundles ({eta})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// `custos log verify` without printing: fetches the checkpoint, loads the state stored
/// for its origin, audits the log and, on success, stores the new state.
pub fn verify_log_command(
    args: &VerifyArgs,
    progress: indicatif::ProgressBar,
) -> anyhow::Result<LogSummary> {
    let http = HttpFetcher::new(&args.url, args.token.clone());
    // The checkpoint is read once here, before `verify_log` sees it, to learn which state
    // file to load and which tiles to fetch ahead. Nothing in it is trusted yet:
    // `verify_log` checks the signature on these same bytes and the origin against the
    // stored state.
    let checkpoint_bytes = http
        .fetch("checkpoint")
        .with_context(|| format!("failed to fetch {}/checkpoint", http.base()))?
        .with_context(|| format!("{}/checkpoint does not exist", http.base()))?;
    let unverified = unverified_checkpoint(&checkpoint_bytes)
        .with_context(|| format!("{}/checkpoint is not a checkpoint", http.base()))?;

    let state_file = args
        .state
        .as_ref()
        .map(|directory| state_path(directory, unverified.origin()));
    let previous = match &state_file {
        Some(path) => read_state(path)?,
        None => None,
    };

    // The verifier asks for the bundles in order (with --entries); they are fetched ahead
    // on a few threads while it checks.
    let prefetch_bundles = args.entries && unverified.size().0 <= audit::TREE_SIZE_MAX;
    let bundles = BundlePrefetch::new(&http, &unverified);
    let fetcher = PrefetchingFetcher::new(
        &http,
        checkpoint_bytes,
        prefetch_bundles.then_some(&bundles),
    );
    fetcher.prefetch_tiles(&unverified);

    let witnesses: Vec<&str> = args.witnesses.iter().map(String::as_str).collect();
    let report_progress = |done: u64, total: u64| {
        progress.set_length(total);
        progress.set_position(done);
    };
    let options = VerifyOptions {
        entries: args.entries,
        witnesses: &witnesses,
        progress: Some(&report_progress),
    };
    let outcome = if prefetch_bundles {
        std::thread::scope(|scope| {
            for _ in 0..FETCH_THREADS {
                scope.spawn(|| bundles.fetch_ahead());
            }
            let outcome = verify_log(&fetcher, &args.key, previous.as_ref(), options);
            bundles.stop();
            outcome
        })
    } else {
        verify_log(&fetcher, &args.key, previous.as_ref(), options)
    };
    progress.finish_and_clear();
    let report = outcome.with_context(|| format!("log at {} failed verification", http.base()))?;

    if let Some(path) = &state_file {
        write_state_atomically(path, &report.state)?;
    }
    Ok(LogSummary {
        report,
        state_file,
        previous_size: previous.map(|state| state.size.0),
    })
}

/// `custos receipt verify` without printing: returns the checkpoint the proof leads to.
pub fn verify_receipt_command(args: &ReceiptVerifyArgs) -> anyhow::Result<Checkpoint> {
    let (Some(entry_path), Some(proof_path)) = (&args.entry, &args.proof) else {
        anyhow::bail!("--entry and --proof are required without --report");
    };
    let entry = read_bounded(entry_path, tlog::ENTRY_BYTES_MAX)?;
    let proof_bytes = read_bounded(proof_path, tlog::tlog_proof::TLOG_PROOF_BYTES_MAX)?;
    let proof = TlogProof::parse(&proof_bytes)
        .with_context(|| format!("{} is not a tlog-proof", proof_path.display()))?;
    let leaf_hash = match &args.leaf_hash {
        Some(text) => Hash::from_base64(text)
            .with_context(|| format!("--leaf-hash {text:?} is not a base64 SHA-256 hash"))?,
        None => leaf_hash(&entry),
    };
    let receipt = Receipt {
        origin: args
            .origin
            .clone()
            .unwrap_or_else(|| proof.checkpoint().origin().to_owned()),
        index: args.index.map_or(proof.index(), LeafIndex),
        leaf_hash,
    };
    verify_receipt(&receipt, &entry, &proof, one_key(&args.keys, "a receipt")?).with_context(|| {
        format!(
            "receipt for entry {} of {} failed verification",
            receipt.index.0, receipt.origin
        )
    })
}

/// Largest subject report `receipt verify --report` reads: the report's limit of accesses,
/// each with an entry of at most 64 KiB in base64 and its proof.
pub const SUBJECT_REPORT_BYTES_MAX: usize = 128 * 1024 * 1024;

/// What a verified subject report holds.
#[derive(Debug)]
pub struct VerifiedReport {
    pub subject: String,
    pub accesses: u64,
    pub checkpoint: Checkpoint,
}

/// Checks a subject's access report offline: the checkpoint on its first line is signed by
/// `key`, and every following line is an entry of that log about that subject, included in
/// the checkpoint (the audit crate's receipt check), and shown as the entry says. The first
/// line found wrong fails the check, named by its line number.
pub fn verify_report_command(path: &Path, key: &str) -> anyhow::Result<VerifiedReport> {
    let bytes = read_bounded(path, SUBJECT_REPORT_BYTES_MAX)?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    verify_report(text, key).with_context(|| format!("{} failed verification", path.display()))
}

/// [`verify_report_command`] on the report's text.
pub fn verify_report(text: &str, key: &str) -> anyhow::Result<VerifiedReport> {
    let mut lines = text.lines().enumerate().map(|(offset, line)| (offset + 1, line));
    let Some((_, first)) = lines.next() else { anyhow::bail!("the report is empty") };
    let header: service::ReportHeader = serde_json::from_str(first).context("line 1: not a report header")?;
    anyhow::ensure!(header.format == service::SUBJECT_REPORT_FORMAT, "line 1: unknown report format {:?}", header.format);
    let note = Note::parse(header.checkpoint.as_bytes()).context("line 1: the checkpoint is not a signed note")?;
    let verifier = tlog::Verifier::from_vkey(key).context("--key is not a log verifier key")?;
    note.verify(&[&verifier]).map_err(|error| anyhow::anyhow!("line 1: the checkpoint is not signed by the key: {error}"))?;
    let checkpoint = Checkpoint::parse(note.text()).context("line 1: not a checkpoint")?;
    anyhow::ensure!(
        checkpoint.origin() == header.origin && checkpoint.size().0 == header.tree_size,
        "line 1: the header's origin and size are not the checkpoint's"
    );
    let mut previous: Option<u64> = None;
    let mut accesses = 0;
    for (number, line) in lines {
        if line.is_empty() {
            continue;
        }
        let index = verify_report_line(line, &header, &note, key).with_context(|| format!("line {number}"))?;
        anyhow::ensure!(previous.is_none_or(|previous| previous < index), "line {number}: entry {index} is out of order or repeated");
        previous = Some(index);
        accesses += 1;
    }
    anyhow::ensure!(accesses == header.accesses, "the report lists {accesses} accesses, its first line says {}", header.accesses);
    Ok(VerifiedReport { subject: header.subject, accesses, checkpoint })
}

/// The one `--key` a subject report or a single receipt is checked with.
fn one_key<'a>(keys: &'a [String], what: &str) -> anyhow::Result<&'a str> {
    match keys {
        [key] => Ok(key),
        _ => anyhow::bail!("{what} comes from one log: give one --key, not {}", keys.len()),
    }
}

/// The evidence one report line carries: the entry (base64), its receipt (origin, index,
/// leaf hash) and its inclusion proof in the signed checkpoint `note`. Checked with the
/// audit crate's receipt verifier; returns the entry's bytes.
struct LineEvidence<'a> {
    origin: &'a str,
    index: u64,
    leaf_hash: &'a str,
    entry: &'a str,
    proof: &'a [String],
}

impl LineEvidence<'_> {
    fn verify(&self, note: &Note, key: &str) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let entry = base64::engine::general_purpose::STANDARD.decode(self.entry).context("the entry is not base64")?;
        let hashes = self
            .proof
            .iter()
            .map(|hash| Hash::from_base64(hash).map_err(|_| anyhow::anyhow!("a proof hash is not a base64 SHA-256 hash")))
            .collect::<anyhow::Result<Vec<Hash>>>()?;
        let index = LeafIndex(self.index);
        let proof = TlogProof::new(None, index, hashes, note.clone()).context("the proof is too long")?;
        let receipt = Receipt {
            origin: self.origin.to_owned(),
            index,
            leaf_hash: Hash::from_base64(self.leaf_hash).map_err(|_| anyhow::anyhow!("the leaf hash is not base64 SHA-256"))?,
        };
        verify_receipt(&receipt, &entry, &proof, key)?;
        Ok(entry)
    }
}

/// One access line: returns its log index.
fn verify_report_line(line: &str, header: &service::ReportHeader, note: &Note, key: &str) -> anyhow::Result<u64> {
    let line: service::ReportLine = serde_json::from_str(line).context("not a report line")?;
    let evidence = LineEvidence {
        origin: &line.receipt.origin,
        index: line.receipt.index,
        leaf_hash: &line.receipt.leaf_hash,
        entry: &line.entry,
        proof: &line.proof,
    };
    let entry = evidence.verify(note, key)?;
    let index = LeafIndex(line.receipt.index);
    let (_salt, canonical) = sequencer::parse_salted_entry(&entry)?;
    let detect::Entry::Access(access) = detect::decode(&header.region, index.0, canonical)? else {
        anyhow::bail!("entry {} is not an access decision", index.0);
    };
    anyhow::ensure!(access.subject.id == header.subject, "entry {} is about another subject", index.0);
    let actor_ids = if line.access.actor.id.is_some() { service::ActorIds::Shown } else { service::ActorIds::Hidden };
    anyhow::ensure!(
        service::summarize_access(&access, actor_ids) == line.access,
        "the access shown differs from log entry {}",
        index.0
    );
    Ok(index.0)
}

/// Largest records report `receipt verify --records` reads, and `custos report` downloads
/// (10,000 records with proofs fit many times over).
pub const RECORDS_REPORT_BYTES_MAX: usize = 512 * 1024 * 1024;

/// What a verified records report holds.
#[derive(Debug)]
pub struct VerifiedRecords {
    /// As the report states it: `actor ID`, `case ID`, `subject ID` or `period FROM to UNTIL`.
    pub scope: String,
    pub records: u64,
    /// Each region's checkpoint the records were proved against, by region.
    pub checkpoints: Vec<Checkpoint>,
}

/// Checks a records report offline: each region's checkpoint in the first line is signed by
/// one of `keys`, and every following record is an entry of that region's log, included in
/// its checkpoint, shown as the log holds it, in the report's scope (naming its actor, case
/// or subject, or inside its period), oldest first and listed once. The first line found
/// wrong fails the check, named by its line number. What this cannot show is that nothing
/// was left out: `custos log verify --entries` checks the whole log.
pub fn verify_records_command(path: &Path, keys: &[String]) -> anyhow::Result<VerifiedRecords> {
    let bytes = read_bounded(path, RECORDS_REPORT_BYTES_MAX)?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    verify_records(text, keys).with_context(|| format!("{} failed verification", path.display()))
}

/// A region's signed checkpoint in a records report, with the key that signed it.
struct RegionCheckpoint<'a> {
    note: Note,
    checkpoint: Checkpoint,
    key: &'a str,
}

/// [`verify_records_command`] on the report's text.
pub fn verify_records<'a>(text: &str, keys: &'a [String]) -> anyhow::Result<VerifiedRecords> {
    let mut lines = text.lines().enumerate().map(|(offset, line)| (offset + 1, line));
    let Some((_, first)) = lines.next() else { anyhow::bail!("the report is empty") };
    let header: service::RecordsHeader = serde_json::from_str(first).context("line 1: not a records report header")?;
    anyhow::ensure!(header.format == service::RECORDS_FORMAT, "line 1: unknown report format {:?}", header.format);
    let scope: service::RecordScope = header.scope.parse().map_err(|error| anyhow::anyhow!("line 1: {error}"))?;
    let verifiers = keys
        .iter()
        .map(|key| tlog::Verifier::from_vkey(key).map(|verifier| (key.as_str(), verifier)).with_context(|| format!("--key {key:?} is not a log verifier key")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut regions: BTreeMap<&str, RegionCheckpoint<'a>> = BTreeMap::new();
    for (region, text) in &header.checkpoints {
        let note = Note::parse(text.as_bytes()).with_context(|| format!("line 1: the checkpoint of region {region} is not a signed note"))?;
        let checkpoint = Checkpoint::parse(note.text()).with_context(|| format!("line 1: the checkpoint of region {region} is not a checkpoint"))?;
        let key = verifiers
            .iter()
            .find(|(_, verifier)| note.verify(&[verifier]).is_ok())
            .map(|(key, _)| *key)
            .with_context(|| format!("line 1: the checkpoint of region {region} ({}) is not signed by any --key", checkpoint.origin()))?;
        regions.insert(region, RegionCheckpoint { note, checkpoint, key });
    }
    let mut previous: Option<(i64, String, u64)> = None;
    let mut records = 0;
    for (number, line) in lines {
        if line.is_empty() {
            continue;
        }
        let order = verify_records_line(line, &regions, &scope).with_context(|| format!("line {number}"))?;
        anyhow::ensure!(
            previous.as_ref().is_none_or(|previous| *previous < order),
            "line {number}: entry {} of region {} is out of order or repeated",
            order.2,
            order.1
        );
        previous = Some(order);
        records += 1;
    }
    anyhow::ensure!(records == header.records, "the report lists {records} records, its first line says {}", header.records);
    Ok(VerifiedRecords {
        scope: header.scope,
        records,
        checkpoints: regions.into_values().map(|region| region.checkpoint).collect(),
    })
}

/// One record: returns its place in the report's order (time, region, index).
fn verify_records_line(line: &str, regions: &BTreeMap<&str, RegionCheckpoint<'_>>, scope: &service::RecordScope) -> anyhow::Result<(i64, String, u64)> {
    let line: service::RecordLine = serde_json::from_str(line).context("not a record line")?;
    let region = regions
        .get(line.region.as_str())
        .with_context(|| format!("region {} has no checkpoint in the first line", line.region))?;
    anyhow::ensure!(line.origin == region.checkpoint.origin(), "the origin {:?} is not region {}'s ({:?})", line.origin, line.region, region.checkpoint.origin());
    let evidence = LineEvidence { origin: &line.origin, index: line.index, leaf_hash: &line.leaf_hash, entry: &line.entry, proof: &line.proof };
    let entry = evidence.verify(&region.note, region.key)?;
    let (_salt, canonical) = sequencer::parse_salted_entry(&entry)?;
    let logged: serde_json::Value = serde_json::from_slice(canonical).with_context(|| format!("entry {} is not JSON", line.index))?;
    anyhow::ensure!(logged == line.record, "the record shown differs from log entry {}", line.index);
    let decoded = detect::decode(&line.region, line.index, canonical)?;
    let at_ms = decoded.at_ms().with_context(|| format!("entry {} has no time", line.index))?;
    anyhow::ensure!(at_ms == line.at.timestamp_millis(), "the time shown is not log entry {}'s", line.index);
    match scope {
        service::RecordScope::Timeline(kind, key) => {
            let mut timelines = Vec::new();
            service::timeline_rows(&decoded, line.index, &mut timelines);
            anyhow::ensure!(
                timelines.iter().any(|row| row.kind == *kind && row.key == *key),
                "entry {} of region {} does not name {} {key}",
                line.index,
                line.region,
                kind.as_str()
            );
        }
        service::RecordScope::Period { since, until } => anyhow::ensure!(
            (since.timestamp_millis()..until.timestamp_millis()).contains(&at_ms),
            "entry {} of region {} is outside the period",
            line.index,
            line.region
        ),
    }
    Ok((at_ms, line.region, line.index))
}

/// The file holding the trusted state of the log `origin` in `directory`: the origin with
/// every byte outside `[A-Za-z0-9.-]` written as `_xx` (hex), so distinct origins never
/// share a file and no origin can name a path outside the directory.
pub fn state_path(directory: &Path, origin: &str) -> PathBuf {
    let mut name = String::with_capacity(origin.len() + ".state".len());
    for byte in origin.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("_{byte:02x}"));
        }
    }
    name.push_str(".state");
    directory.join(name)
}

/// The largest state file read: three short lines.
const STATE_FILE_BYTES_MAX: usize = 4 * 1024;

fn read_state(path: &Path) -> anyhow::Result<Option<TrustedState>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", path.display()));
        }
    };
    anyhow::ensure!(
        bytes.len() <= STATE_FILE_BYTES_MAX,
        "state file {} is larger than {STATE_FILE_BYTES_MAX} bytes",
        path.display()
    );
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("state file {} is not UTF-8", path.display()))?;
    let state = TrustedState::parse(text)
        .with_context(|| format!("state file {} is malformed", path.display()))?;
    Ok(Some(state))
}

/// Writes the state to a temporary file in the same directory, syncs it and renames it
/// over the old one, so a crash leaves either the old state or the new, never half of one.
fn write_state_atomically(path: &Path, state: &TrustedState) -> anyhow::Result<()> {
    let directory = path.parent().context("state path has no directory")?;
    std::fs::create_dir_all(directory)
        .with_context(|| format!("failed to create {}", directory.display()))?;
    let file_name = path
        .file_name()
        .context("state path has no file name")?
        .to_string_lossy();
    let temporary = directory.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(state.to_text().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename is durable only once the directory is synced.
        std::fs::File::open(directory)?.sync_all()
    })();
    if written.is_err() {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(&temporary);
    }
    written.with_context(|| format!("failed to write state file {}", path.display()))
}

fn read_bounded(path: &Path, bytes_max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(bytes_max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("failed to read {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() <= bytes_max,
        "{} is larger than {bytes_max} bytes",
        path.display()
    );
    Ok(bytes)
}

fn unverified_checkpoint(bytes: &[u8]) -> anyhow::Result<Checkpoint> {
    let note = Note::parse(bytes).map_err(|error| anyhow::anyhow!("{error}"))?;
    Checkpoint::parse(note.text()).map_err(|error| anyhow::anyhow!("{error}"))
}

type Fetched = Result<Option<Vec<u8>>, FetchError>;

/// Serves the checkpoint bytes already read, tiles fetched ahead on a few threads, and
/// (with `--entries`) entry bundles fetched ahead by a [`BundlePrefetch`]; anything else
/// (partial-tile fallbacks) is fetched when asked for. Each prefetched resource is handed
/// over once, so it is not held twice.
struct PrefetchingFetcher<'a> {
    http: &'a HttpFetcher,
    checkpoint: Vec<u8>,
    fetched: Mutex<HashMap<String, Fetched>>,
    bundles: Option<&'a BundlePrefetch<'a>>,
}

impl<'a> PrefetchingFetcher<'a> {
    fn new(
        http: &'a HttpFetcher,
        checkpoint: Vec<u8>,
        bundles: Option<&'a BundlePrefetch<'a>>,
    ) -> PrefetchingFetcher<'a> {
        PrefetchingFetcher {
            http,
            checkpoint,
            fetched: Mutex::new(HashMap::new()),
            bundles,
        }
    }

    /// Fetches every tile of the checkpoint's tree, unless the tree is beyond what the
    /// verifier takes (it will refuse it before asking for tiles).
    fn prefetch_tiles(&self, checkpoint: &Checkpoint) {
        if checkpoint.size().0 > audit::TREE_SIZE_MAX {
            return;
        }
        let paths: Vec<String> = tiles_for_size(checkpoint.size())
            .iter()
            .map(|tile| tile.path())
            .collect();
        let next = Mutex::new(paths.into_iter());
        std::thread::scope(|scope| {
            for _ in 0..FETCH_THREADS {
                scope.spawn(|| {
                    loop {
                        let Some(path) = next.lock().unwrap_or_else(PoisonError::into_inner).next()
                        else {
                            break;
                        };
                        let fetched = self.http.fetch(&path);
                        self.fetched
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(path, fetched);
                    }
                });
            }
        });
    }
}

impl Fetcher for PrefetchingFetcher<'_> {
    fn fetch(&self, path: &str) -> Fetched {
        if path == "checkpoint" {
            return Ok(Some(self.checkpoint.clone()));
        }
        if let Some(fetched) = self.bundles.and_then(|bundles| bundles.take(path)) {
            return fetched;
        }
        let prefetched = self
            .fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
        match prefetched {
            Some(fetched) => fetched,
            None => self.http.fetch(path),
        }
    }
}

/// Every resource an outside verifier would fetch from a region's log — checkpoint, hash
/// tiles, entry bundles — read from the running log in process (scenario replay audits its
/// own log this way, through the same verifier as `custos log verify`).
pub async fn snapshot_log(log: &service::RegionLog) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let note = log.checkpoint().await?;
    let parsed = Note::parse(note.as_bytes()).context("the log's checkpoint note does not parse")?;
    let checkpoint = Checkpoint::parse(parsed.text()).context("the log's checkpoint does not parse")?;
    let mut resources = BTreeMap::new();
    resources.insert("checkpoint".to_owned(), note.into_bytes());
    for tile in tiles_for_size(checkpoint.size()) {
        if let Some(bytes) = log.tile(tile).await? {
            resources.insert(tile.path(), bytes);
        }
    }
    for bundle in tlog::bundles_for_size(checkpoint.size()) {
        if let Some(bytes) = log.entry_bundle(bundle).await? {
            resources.insert(bundle.path(), bytes);
        }
    }
    Ok(resources)
}

/// Audits a snapshot taken by [`snapshot_log`], entries included; returns the verified size.
pub fn verify_snapshot(resources: &BTreeMap<String, Vec<u8>>, key: &str) -> anyhow::Result<u64> {
    let report = verify_log(resources, key, None, VerifyOptions { entries: true, witnesses: &[], progress: None })?;
    Ok(report.state.size.0)
}

/// Entry bundles of one tree fetched in order by worker threads, at most
/// [`BUNDLES_AHEAD_MAX`] beyond the last one the verifier took.
struct BundlePrefetch<'a> {
    http: &'a HttpFetcher,
    paths: Vec<String>,
    positions: HashMap<String, usize>,
    window: Mutex<BundleWindow>,
    changed: Condvar,
}

#[derive(Default)]
struct BundleWindow {
    /// The next bundle a worker will fetch.
    next: usize,
    /// Bundles before this one were taken by the verifier.
    taken: usize,
    fetched: HashMap<usize, Fetched>,
    stopped: bool,
}

impl<'a> BundlePrefetch<'a> {
    fn new(http: &'a HttpFetcher, checkpoint: &Checkpoint) -> BundlePrefetch<'a> {
        let paths: Vec<String> = bundles_for_size(checkpoint.size())
            .iter()
            .map(|bundle| bundle.path())
            .collect();
        let positions = paths
            .iter()
            .enumerate()
            .map(|(position, path)| (path.clone(), position))
            .collect();
        BundlePrefetch {
            http,
            paths,
            positions,
            window: Mutex::new(BundleWindow::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BundleWindow> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker: fetches the next bundle while the window has room, until all are
    /// fetched or [`BundlePrefetch::stop`] is called.
    fn fetch_ahead(&self) {
        let mut window = self.lock();
        loop {
            if window.stopped || window.next >= self.paths.len() {
                return;
            }
            if window.next >= window.taken + BUNDLES_AHEAD_MAX {
                window = self
                    .changed
                    .wait(window)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let position = window.next;
            window.next += 1;
            drop(window);
            let fetched = self.http.fetch(&self.paths[position]);
            window = self.lock();
            window.fetched.insert(position, fetched);
            self.changed.notify_all();
        }
    }

    /// The bundle at `path` once a worker has fetched it, or `None` if `path` is not one
    /// of the planned bundles (or was taken already).
    fn take(&self, path: &str) -> Option<Fetched> {
        let &position = self.positions.get(path)?;
        let mut window = self.lock();
        // Taken before, or far out of order: the caller fetches it itself.
        if (position < window.taken && !window.fetched.contains_key(&position))
            || position >= window.taken + BUNDLES_AHEAD_MAX
        {
            return None;
        }
        // Workers fetch in order and the window admits every bundle below
        // `taken + BUNDLES_AHEAD_MAX`, so this one arrives unless the workers stop.
        loop {
            if let Some(fetched) = window.fetched.remove(&position) {
                window.taken = window.taken.max(position + 1);
                self.changed.notify_all();
                return Some(fetched);
            }
            if window.stopped {
                return None;
            }
            window = self
                .changed
                .wait(window)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the workers after their current fetch.
    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}
