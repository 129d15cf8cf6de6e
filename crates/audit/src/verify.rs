//! `verify_log`: the full audit of one log at its current checkpoint. The checkpoint must
//! be signed by the log key; every tile of its tree is fetched and checked against the
//! signed root; optionally every entry is checked against its leaf hash and the root is
//! recomputed from the entries; and the checkpoint must extend the stored state.
//!
//! All tiles are held in memory while they are checked ([`tlog::TileHashReader`] needs
//! them together), which is why [`TREE_SIZE_MAX`] bounds the trees this verifier takes.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, mpsc};

use tlog::{
    BUNDLE_ENTRIES_MAX, Checkpoint, CompactRange, CosignatureVerifier, ENTRY_BYTES_MAX,
    EntryBundleId, Hash, Note, NoteVerifyError, TILE_HEIGHT, TILE_WIDTH_MAX, TileHashReader,
    TileId, TileVerifyError, TreeSize, Verifier, VkeyError, bundles_for_size, consistency_proof,
    decode_bundle, encode_bundle, root_from_leaves, tiles_for_size, verify_consistency,
};

use tlog::hash::HASH_BYTES;
use tlog::tile::TILE_BYTES_MAX;

use crate::fetch::{FetchError, Fetcher};
use crate::state::TrustedState;

/// The largest checkpoint note accepted: a checkpoint is three short lines, and even a
/// hundred Ed25519 cosignatures stay far below this.
pub const CHECKPOINT_BYTES_MAX: usize = 64 * 1024;
/// The largest entry bundle accepted: 256 entries of the largest size a u16 prefix can
/// state, with their prefixes.
pub const BUNDLE_BYTES_MAX: usize = BUNDLE_ENTRIES_MAX * (2 + ENTRY_BYTES_MAX);
/// Most threads that hash entries with [`VerifyOptions::entries`] (fewer on machines with
/// fewer cores): SHA-256 of the entries is the verifier's main cost.
pub const ENTRY_THREADS_MAX: usize = 8;
/// Entry bundles fetched and handed to the hashing threads but not yet folded into the
/// recomputed root; bounds the bundle bytes held at once.
pub const BUNDLES_IN_FLIGHT_MAX: usize = 32;
/// The largest tree verified. All its tiles are held in memory at once (about 33 bytes
/// per entry: 32 at level 0 plus the levels above), so 2^24 entries need about 550 MB.
pub const TREE_SIZE_MAX: u64 = 1 << 24;

/// What to check beyond the signature and the tiles.
#[derive(Default, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Fetch every entry bundle, check each entry against its leaf hash, and recompute
    /// the root from the entries.
    pub entries: bool,
    /// Witness cosigner vkeys (type 0x04) whose valid cosignatures are counted. A
    /// cosignature from one of these keys that fails to verify rejects the checkpoint.
    pub witnesses: &'a [&'a str],
    /// Called after each tile or bundle with (resources done, resources in total).
    pub progress: Option<&'a dyn Fn(u64, u64)>,
}

/// The outcome of a successful audit.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The verified checkpoint note as fetched, with all its signature lines.
    pub note: Note,
    pub checkpoint: Checkpoint,
    /// The state for the caller to store for the next run.
    pub state: TrustedState,
    /// Names of the given witnesses whose cosignatures verified.
    pub cosigners: Vec<String>,
    pub tiles_verified: u64,
    /// Partial tiles that were gone and were checked from the first hashes of the full
    /// tile instead (tlog-tiles allows logs to delete them).
    pub partial_tile_fallbacks: u64,
    /// Entries checked against their leaf hashes; `None` when entries were not fetched.
    pub entries_verified: Option<u64>,
}

/// Why a log failed the audit. Each message names the resource, entry or state at fault.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("log verifier key is not a valid Ed25519 vkey")]
    Vkey(#[source] VkeyError),
    #[error("witness verifier key {vkey:?} is not a valid cosignature vkey")]
    WitnessVkey { vkey: String, source: VkeyError },
    #[error("failed to fetch {path}")]
    Fetch { path: String, source: FetchError },
    #[error("checkpoint is missing")]
    MissingCheckpoint,
    #[error("checkpoint has {bytes} bytes, more than {CHECKPOINT_BYTES_MAX}")]
    CheckpointTooLarge { bytes: usize },
    #[error("checkpoint is not a well-formed signed note: {reason}")]
    CheckpointNote { reason: String },
    #[error("checkpoint carries no signature by the log key {key}")]
    Unsigned { key: String },
    #[error("checkpoint signature by the log key {key} does not verify")]
    BadSignature { key: String },
    #[error("cosignature by witness {witness} does not verify")]
    BadCosignature { witness: String },
    #[error("checkpoint text is malformed: {reason}")]
    CheckpointText { reason: String },
    #[error(
        "checkpoint size {size} exceeds the {TREE_SIZE_MAX} entries this verifier holds in memory"
    )]
    TreeTooLarge { size: u64 },
    #[error("checkpoint origin {found:?} differs from the stored origin {stored:?}")]
    OriginChanged { stored: String, found: String },
    #[error("checkpoint size {size} is smaller than the stored size {stored_size} (rollback)")]
    Rollback { size: u64, stored_size: u64 },
    #[error("root at size {size} differs from the stored root (fork)")]
    ForkAtStoredSize { size: u64 },
    #[error(
        "checkpoint at size {size} is not consistent with the stored checkpoint at size {stored_size} (fork): {reason}"
    )]
    Inconsistent {
        size: u64,
        stored_size: u64,
        reason: String,
    },
    #[error("tile {path} is missing")]
    MissingTile { path: String },
    #[error("tile {path} has {actual} bytes, expected {expected}")]
    TileLength {
        path: String,
        expected: usize,
        actual: usize,
    },
    #[error("{path} does not hash to its entry in {parent}")]
    TileMismatch { path: String, parent: String },
    #[error("right-edge tiles {paths} do not hash to the signed root of size {size}")]
    RootMismatch { size: u64, paths: String },
    #[error("checkpoint at size 0 has a root other than the empty-tree hash")]
    EmptyTreeRoot,
    #[error("tiles rejected: {reason}")]
    Tiles { reason: String },
    #[error("entry bundle {path} is missing")]
    MissingBundle { path: String },
    #[error("entry bundle {path} has {bytes} bytes, more than {BUNDLE_BYTES_MAX}")]
    BundleTooLarge { path: String, bytes: usize },
    #[error("entry bundle {path} is malformed: {reason}")]
    Bundle { path: String, reason: String },
    #[error("entry bundle {path} has {actual} entries, expected {expected}")]
    BundleCount {
        path: String,
        expected: usize,
        actual: usize,
    },
    #[error("entry {index} in {path} does not hash to its leaf in {tile}")]
    EntryMismatch {
        index: u64,
        path: String,
        tile: String,
    },
    #[error("root recomputed from the entries differs from the signed root of size {size}")]
    EntriesRootMismatch { size: u64 },
    #[error("consistency proof could not be read from the verified tiles: {reason}")]
    ConsistencyProof { reason: String },
}

/// Audits the log behind `fetcher` at its current checkpoint, signed by the Ed25519 key
/// `verifier_key` (a vkey), against `previous` (the state the last run returned, if any).
/// On success the report carries the new state for the caller to store.
pub fn verify_log(
    fetcher: &dyn Fetcher,
    verifier_key: &str,
    previous: Option<&TrustedState>,
    options: VerifyOptions<'_>,
) -> Result<VerifyReport, VerifyError> {
    let log_verifier = Verifier::from_vkey(verifier_key).map_err(VerifyError::Vkey)?;
    let witnesses = options
        .witnesses
        .iter()
        .map(|vkey| {
            CosignatureVerifier::from_vkey(vkey).map_err(|source| VerifyError::WitnessVkey {
                vkey: (*vkey).to_owned(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let (note, checkpoint) = fetch_checkpoint(fetcher, &log_verifier)?;
    let cosigners = count_cosignatures(&note, &witnesses)?;
    let size = checkpoint.size();
    if size.0 > TREE_SIZE_MAX {
        return Err(VerifyError::TreeTooLarge { size: size.0 });
    }
    // Rollback and same-size forks are visible from the checkpoint alone: report them
    // before fetching a single tile.
    if let Some(stored) = previous {
        check_against_stored(&checkpoint, stored)?;
    }

    let tiles = tiles_for_size(size);
    let bundles = if options.entries {
        bundles_for_size(size)
    } else {
        Vec::new()
    };
    let total = (tiles.len() + bundles.len()) as u64;
    let mut done = 0u64;
    let mut report_progress = || {
        done += 1;
        if let Some(progress) = options.progress {
            progress(done, total);
        }
    };

    let mut fetched = Vec::with_capacity(tiles.len());
    let mut partial_tile_fallbacks = 0;
    for tile in &tiles {
        let (bytes, fell_back) = fetch_tile(fetcher, *tile)?;
        partial_tile_fallbacks += u64::from(fell_back);
        fetched.push((*tile, bytes));
        report_progress();
    }
    let reader = TileHashReader::new(size, checkpoint.root(), fetched)
        .map_err(|error| tile_error(error, size))?;

    let mut entries_verified = None;
    if options.entries {
        let recomputed = check_entries(fetcher, &reader, &bundles, &mut report_progress)?;
        // The tiles already tie each leaf to the root; recomputing from the entries
        // alone means the result does not rest on the tile-checking code being right.
        if recomputed.size() != size || recomputed.root() != checkpoint.root() {
            return Err(VerifyError::EntriesRootMismatch { size: size.0 });
        }
        entries_verified = Some(size.0);
    }

    if let Some(stored) = previous
        && stored.size < size
    {
        let proof = consistency_proof(&reader, stored.size, size).map_err(|error| {
            VerifyError::ConsistencyProof {
                reason: error.to_string(),
            }
        })?;
        verify_consistency(stored.size, size, stored.root, checkpoint.root(), &proof).map_err(
            |error| VerifyError::Inconsistent {
                size: size.0,
                stored_size: stored.size.0,
                reason: error.to_string(),
            },
        )?;
    }

    Ok(VerifyReport {
        state: TrustedState::from_checkpoint(&checkpoint),
        note,
        checkpoint,
        cosigners,
        tiles_verified: tiles.len() as u64,
        partial_tile_fallbacks,
        entries_verified,
    })
}

/// What one hashing thread hands back for a bundle whose entries all matched their tile:
/// the root of a full bundle's 256 leaves, or the leaves of the (last) partial bundle.
enum BundleHashes {
    Root(Hash),
    Leaves(Vec<Hash>),
}

/// Fetches the bundles in order on this thread and checks them on up to
/// [`ENTRY_THREADS_MAX`] threads: each entry is hashed once, its leaf hash compared with the
/// verified level-0 tile, and the leaves folded (a full bundle into its root on the
/// hashing thread) into a root recomputed from the entries alone, in order. The first
/// failing bundle in log order is reported, as a one-thread run would report it.
fn check_entries(
    fetcher: &dyn Fetcher,
    reader: &TileHashReader,
    bundles: &[EntryBundleId],
    report_progress: &mut dyn FnMut(),
) -> Result<CompactRange, VerifyError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, ENTRY_THREADS_MAX);
    let (job_sender, job_receiver) = mpsc::sync_channel::<(usize, Vec<u8>)>(BUNDLES_IN_FLIGHT_MAX);
    let jobs = Mutex::new(job_receiver);
    let (result_sender, results) = mpsc::channel::<(usize, Result<BundleHashes, VerifyError>)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (jobs, result_sender) = (&jobs, result_sender.clone());
            scope.spawn(move || {
                loop {
                    let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    // The sender is gone: every bundle was handed out, or the check stopped.
                    let Ok((position, bytes)) = job else { return };
                    let bundle = bundles[position];
                    let hashed = reader
                        .verify_bundle_leaves(bundle, &bytes)
                        .map(|leaves| {
                            if bundle.is_partial() {
                                BundleHashes::Leaves(leaves)
                            } else {
                                BundleHashes::Root(root_from_leaves(&leaves))
                            }
                        })
                        .map_err(|error| bundle_error(error, bundle));
                    if result_sender.send((position, hashed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_sender);

        let mut folding = Folding { recomputed: CompactRange::new(), next: 0, arrived: BTreeMap::new() };
        let mut job_sender = Some(job_sender);
        for (position, bundle) in bundles.iter().enumerate() {
            // Bound what is fetched but not yet folded.
            while position - folding.next >= BUNDLES_IN_FLIGHT_MAX {
                folding.receive(&results, report_progress)?;
            }
            match fetch_bundle(fetcher, *bundle) {
                Ok(bytes) => {
                    // INVARIANT: the sender is only taken below, after which the loop ends.
                    let sender = job_sender.as_ref().expect("sender held while fetching");
                    // The workers only stop once the sender is dropped or a send of theirs
                    // fails, which needs `results` dropped: both outlive this loop.
                    sender.send((position, bytes)).expect("hashing threads run until the sender is dropped");
                }
                Err(error) => {
                    // An earlier bundle's failure comes first in log order.
                    drop(job_sender.take());
                    while folding.next < position {
                        folding.receive(&results, report_progress)?;
                    }
                    return Err(error);
                }
            }
            folding.drain(&results, report_progress)?;
        }
        drop(job_sender);
        while folding.next < bundles.len() {
            folding.receive(&results, report_progress)?;
        }
        Ok(folding.recomputed)
    })
}

/// Bundle results folded in log order into the recomputed root.
struct Folding {
    recomputed: CompactRange,
    /// The position of the next bundle to fold.
    next: usize,
    arrived: BTreeMap<usize, Result<BundleHashes, VerifyError>>,
}

type Hashed = mpsc::Receiver<(usize, Result<BundleHashes, VerifyError>)>;

impl Folding {
    /// Waits for one result, then folds what is ready.
    fn receive(&mut self, results: &Hashed, report_progress: &mut dyn FnMut()) -> Result<(), VerifyError> {
        // INVARIANT: callers only wait for bundles already handed to the threads, and a
        // thread sends the result of every bundle it took before it exits.
        let (position, hashed) = results.recv().expect("a hashing thread answers every bundle it took");
        self.arrived.insert(position, hashed);
        self.fold_ready(report_progress)
    }

    /// Folds what has arrived without waiting.
    fn drain(&mut self, results: &Hashed, report_progress: &mut dyn FnMut()) -> Result<(), VerifyError> {
        while let Ok((position, hashed)) = results.try_recv() {
            self.arrived.insert(position, hashed);
        }
        self.fold_ready(report_progress)
    }

    fn fold_ready(&mut self, report_progress: &mut dyn FnMut()) -> Result<(), VerifyError> {
        while let Some(hashed) = self.arrived.remove(&self.next) {
            match hashed? {
                BundleHashes::Root(root) => {
                    // INVARIANT: only the last bundle is partial, so a full one starts at a
                    // multiple of 256 entries.
                    self.recomputed.append_subtree(TILE_HEIGHT, root).expect("full bundles are aligned");
                }
                BundleHashes::Leaves(leaves) => self.recomputed.extend(&leaves),
            }
            self.next += 1;
            report_progress();
        }
        Ok(())
    }
}

/// Fetches the checkpoint and checks the log's signature before reading its text, so
/// nothing unsigned is ever interpreted.
fn fetch_checkpoint(
    fetcher: &dyn Fetcher,
    log_verifier: &Verifier,
) -> Result<(Note, Checkpoint), VerifyError> {
    let path = "checkpoint";
    let bytes = fetch(fetcher, path)?.ok_or(VerifyError::MissingCheckpoint)?;
    if bytes.len() > CHECKPOINT_BYTES_MAX {
        return Err(VerifyError::CheckpointTooLarge { bytes: bytes.len() });
    }
    let note = Note::parse(&bytes).map_err(|error| VerifyError::CheckpointNote {
        reason: error.to_string(),
    })?;
    let key = log_verifier.to_vkey();
    note.verify(&[log_verifier]).map_err(|error| match error {
        NoteVerifyError::NoKnownSignature => VerifyError::Unsigned { key: key.clone() },
        NoteVerifyError::BadSignature { .. } => VerifyError::BadSignature { key: key.clone() },
    })?;
    let checkpoint =
        Checkpoint::parse(note.text()).map_err(|error| VerifyError::CheckpointText {
            reason: error.to_string(),
        })?;
    Ok((note, checkpoint))
}

/// Names of the witnesses whose cosignatures verify; unknown cosigners are ignored as
/// signed-note requires.
fn count_cosignatures(
    note: &Note,
    witnesses: &[CosignatureVerifier],
) -> Result<Vec<String>, VerifyError> {
    let verifiers: Vec<&dyn tlog::NoteVerifier> = witnesses
        .iter()
        .map(|witness| witness as &dyn tlog::NoteVerifier)
        .collect();
    let verified = note.verify_known(&verifiers).map_err(|error| match error {
        NoteVerifyError::BadSignature { name, .. } => VerifyError::BadCosignature {
            witness: name.to_string(),
        },
        // INVARIANT: verify_known never reports a missing signature.
        NoteVerifyError::NoKnownSignature => unreachable!("verify_known accepts no signatures"),
    })?;
    Ok(verified
        .iter()
        .map(|signature| signature.name().to_string())
        .collect())
}

fn check_against_stored(checkpoint: &Checkpoint, stored: &TrustedState) -> Result<(), VerifyError> {
    if checkpoint.origin() != stored.origin {
        return Err(VerifyError::OriginChanged {
            stored: stored.origin.clone(),
            found: checkpoint.origin().to_owned(),
        });
    }
    let size = checkpoint.size();
    if size < stored.size {
        return Err(VerifyError::Rollback {
            size: size.0,
            stored_size: stored.size.0,
        });
    }
    if size == stored.size && checkpoint.root() != stored.root {
        return Err(VerifyError::ForkAtStoredSize { size: size.0 });
    }
    Ok(())
}

fn fetch(fetcher: &dyn Fetcher, path: &str) -> Result<Option<Vec<u8>>, VerifyError> {
    fetcher.fetch(path).map_err(|source| VerifyError::Fetch {
        path: path.to_owned(),
        source,
    })
}

/// Fetches a tile; a partial tile that is gone is read from the first hashes of the full
/// tile at the same position, which tlog-tiles lets logs serve instead. Returns whether
/// that fallback was taken.
fn fetch_tile(fetcher: &dyn Fetcher, tile: TileId) -> Result<(Vec<u8>, bool), VerifyError> {
    let path = tile.path();
    let expected = usize::from(tile.width()) * HASH_BYTES;
    if let Some(bytes) = fetch(fetcher, &path)? {
        if bytes.len() != expected {
            return Err(VerifyError::TileLength {
                path,
                expected,
                actual: bytes.len(),
            });
        }
        return Ok((bytes, false));
    }
    if !tile.is_partial() {
        return Err(VerifyError::MissingTile { path });
    }
    let full =
        TileId::new(tile.level(), tile.index(), TILE_WIDTH_MAX).expect("a tile's level is valid");
    let full_path = full.path();
    let Some(mut bytes) = fetch(fetcher, &full_path)? else {
        return Err(VerifyError::MissingTile { path });
    };
    if bytes.len() != TILE_BYTES_MAX {
        return Err(VerifyError::TileLength {
            path: full_path,
            expected: TILE_BYTES_MAX,
            actual: bytes.len(),
        });
    }
    bytes.truncate(expected);
    Ok((bytes, true))
}

/// Fetches an entry bundle, falling back to the first entries of the full bundle as for
/// tiles.
fn fetch_bundle(fetcher: &dyn Fetcher, bundle: EntryBundleId) -> Result<Vec<u8>, VerifyError> {
    let path = bundle.path();
    if let Some(bytes) = fetch(fetcher, &path)? {
        check_bundle_length(&path, &bytes)?;
        return Ok(bytes);
    }
    if !bundle.is_partial() {
        return Err(VerifyError::MissingBundle { path });
    }
    let full = EntryBundleId::new(bundle.index(), TILE_WIDTH_MAX).expect("full width is valid");
    let full_path = full.path();
    let Some(bytes) = fetch(fetcher, &full_path)? else {
        return Err(VerifyError::MissingBundle { path });
    };
    check_bundle_length(&full_path, &bytes)?;
    let entries = decode_bundle(&bytes).map_err(|error| VerifyError::Bundle {
        path: full_path.clone(),
        reason: error.to_string(),
    })?;
    let width = usize::from(bundle.width());
    if entries.len() != BUNDLE_ENTRIES_MAX {
        return Err(VerifyError::BundleCount {
            path: full_path,
            expected: BUNDLE_ENTRIES_MAX,
            actual: entries.len(),
        });
    }
    // INVARIANT: the entries came from a decoded bundle, so they re-encode.
    Ok(encode_bundle(&entries[..width]).expect("decoded entries re-encode"))
}

fn check_bundle_length(path: &str, bytes: &[u8]) -> Result<(), VerifyError> {
    if bytes.len() > BUNDLE_BYTES_MAX {
        return Err(VerifyError::BundleTooLarge {
            path: path.to_owned(),
            bytes: bytes.len(),
        });
    }
    Ok(())
}

fn tile_error(error: TileVerifyError, size: TreeSize) -> VerifyError {
    match error {
        TileVerifyError::Length(length) => VerifyError::TileLength {
            path: length.tile.path(),
            expected: length.expected,
            actual: length.actual,
        },
        TileVerifyError::Missing { tile } => VerifyError::MissingTile { path: tile.path() },
        TileVerifyError::EmptyTreeRoot => VerifyError::EmptyTreeRoot,
        TileVerifyError::TileMismatch { tile, parent } => VerifyError::TileMismatch {
            path: tile.path(),
            parent: parent.path(),
        },
        TileVerifyError::RootMismatch { .. } => {
            // Any of the right-edge partial tiles (or the full tiles holding a root
            // subtree) can be the one at fault; name them all.
            let paths: Vec<String> = tiles_for_size(size)
                .iter()
                .filter(|tile| tile.is_partial())
                .map(|tile| tile.path())
                .collect();
            VerifyError::RootMismatch {
                size: size.0,
                paths: paths.join(", "),
            }
        }
        other => VerifyError::Tiles {
            reason: other.to_string(),
        },
    }
}

fn bundle_error(error: TileVerifyError, bundle: EntryBundleId) -> VerifyError {
    let path = bundle.path();
    match error {
        TileVerifyError::BundleEntryMismatch { position, .. } => VerifyError::EntryMismatch {
            // INVARIANT: bundles of a tree within TREE_SIZE_MAX start far below u64::MAX.
            index: bundle.first_entry().expect("bundle index fits") + position as u64,
            path,
            tile: bundle.tile().path(),
        },
        TileVerifyError::BundleCount {
            expected, actual, ..
        } => VerifyError::BundleCount {
            path,
            expected,
            actual,
        },
        TileVerifyError::Bundle { source, .. } => VerifyError::Bundle {
            path,
            reason: source.to_string(),
        },
        other => VerifyError::Bundle {
            path,
            reason: other.to_string(),
        },
    }
}
