//! Signing checkpoints of one region's log: C2SP tlog-checkpoint text signed as a C2SP
//! signed note with Ed25519, the key named after the log origin.
//!
//! The log must never sign two checkpoints that are not consistent. The latest signed
//! checkpoint is persisted in the store and is the anchor: before signing, the tree the
//! store now holds (its size and frontier root) is checked against it with an RFC 6962
//! consistency proof built from the stored tiles, and verified with tlog's verifier. So
//! the check does not trust this process's memory, and a store rewound or swapped for a
//! fork is refused (error plus `tracing::error!`). The signed checkpoint is persisted
//! before it is returned, so nothing is published that a restart could contradict.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use store::{LogStore, StoreError, StoredCheckpoint};
use tlog::{
    Checkpoint, CompactRange, Hash, HashReader, KeyError, Note, ProofError, Signer, Subtree,
    TILE_HEIGHT, TILE_WIDTH_MAX, TileId, TreeSize, consistency_proof, decode_tile, node_hash,
    subtrees_for_consistency_proof, verify_consistency,
};
use tokio::task::JoinHandle;

/// How often [`Checkpointer::spawn_periodic`] signs when not told otherwise.
pub const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// A checkpoint that was signed and persisted.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: Note,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the log signing key is invalid")]
    Key(#[source] KeyError),
    #[error("the checkpoint text is invalid")]
    Text(#[source] tlog::CheckpointError),
    #[error("the log store failed")]
    Store(#[source] StoreError),
    #[error("stored log state is not a tree frontier")]
    Frontier(#[source] tlog::CompactRangeError),
    #[error("refused to sign: the log has {size} entries, fewer than the {signed} already signed")]
    Rollback { signed: u64, size: u64 },
    #[error(
        "refused to sign: the tree of size {size} does not extend the signed tree of size {signed}"
    )]
    Inconsistent {
        signed: u64,
        size: u64,
        #[source]
        source: ProofError,
    },
    #[error("refused to sign: hashes for the consistency proof are missing from the stored tiles")]
    ProofUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Signs checkpoints of one log. Share it behind an `Arc`.
pub struct Checkpointer {
    store: Arc<dyn LogStore>,
    signer: Signer,
    origin: String,
    // Serializes signing in this process; the store serializes saves across processes.
    signing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Checkpointer")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// `origin` is the log's origin line (e.g. `<host>/custos/<region>`) and the key name.
    pub fn new(
        store: Arc<dyn LogStore>,
        origin: &str,
        secret_key: &[u8; 32],
    ) -> Result<Checkpointer, CheckpointError> {
        let signer = Signer::new(origin, secret_key).map_err(CheckpointError::Key)?;
        // Fail at construction, not at the first tick, if the origin is not a valid line.
        Checkpoint::new(origin, TreeSize(0), tlog::empty_root(), Vec::new())
            .map_err(CheckpointError::Text)?;
        Ok(Checkpointer {
            store,
            signer,
            origin: origin.to_owned(),
            signing: tokio::sync::Mutex::new(()),
        })
    }

    /// The verifier for this log's signatures.
    pub fn verifier(&self) -> tlog::Verifier {
        self.signer.verifier()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs the tree the store holds now, after checking it extends the last signed one,
    /// and persists the note before returning it.
    pub async fn sign_now(&self) -> Result<SignedCheckpoint, CheckpointError> {
        let _signing = self.signing.lock().await;
        let result = self.sign_locked().await;
        if let Err(error) = &result {
            tracing::error!(%error, origin = %self.origin, "checkpoint not signed");
        }
        result
    }

    /// Signs every `interval` until the handle is aborted. Failures are logged by
    /// [`Checkpointer::sign_now`] and retried at the next tick.
    pub fn spawn_periodic(self: Arc<Self>, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let _ = self.sign_now().await;
            }
        })
    }

    async fn sign_locked(&self) -> Result<SignedCheckpoint, CheckpointError> {
        let state = self
            .store
            .log_state()
            .await
            .map_err(CheckpointError::Store)?;
        let range = CompactRange::from_parts(state.size, state.frontier)
            .map_err(CheckpointError::Frontier)?;
        let (size, root) = (range.size(), range.root());
        if let Some(signed) = self
            .store
            .latest_checkpoint()
            .await
            .map_err(CheckpointError::Store)?
        {
            if size.0 < signed.size.0 {
                return Err(CheckpointError::Rollback {
                    signed: signed.size.0,
                    size: size.0,
                });
            }
            let proof = self.consistency_proof(signed.size, size).await?;
            verify_consistency(signed.size, size, signed.root, root, &proof).map_err(|source| {
                CheckpointError::Inconsistent {
                    signed: signed.size.0,
                    size: size.0,
                    source,
                }
            })?;
        }
        let checkpoint =
            Checkpoint::new(&self.origin, size, root, Vec::new()).map_err(CheckpointError::Text)?;
        let note = checkpoint.sign(&self.signer);
        // INVARIANT: a note is its UTF-8 text plus ASCII signature lines.
        let text = String::from_utf8(note.to_bytes()).expect("a note is UTF-8");
        self.store
            .save_checkpoint(&StoredCheckpoint {
                size,
                root,
                note: text,
            })
            .await
            .map_err(CheckpointError::Store)?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// The consistency proof between two sizes, from the hashes in stored tiles.
    async fn consistency_proof(
        &self,
        old: TreeSize,
        new: TreeSize,
    ) -> Result<Vec<Hash>, CheckpointError> {
        let unavailable = |error: Box<dyn std::error::Error + Send + Sync>| {
            CheckpointError::ProofUnavailable(error)
        };
        let subtrees = subtrees_for_consistency_proof(old, new);
        let hashes = subtree_hashes(self.store.as_ref(), new, &subtrees).await?;
        let reader = PrefetchedHashes(subtrees.into_iter().zip(hashes).collect());
        consistency_proof(&reader, old, new).map_err(|error| unavailable(error.to_string().into()))
    }
}

/// Hashes of complete subtrees of the tree of `size` leaves, read from the stored tiles: a
/// subtree at tree level `8l + r` is the perfect root of `2^r` consecutive hashes of one
/// tile at tile level `l`.
async fn subtree_hashes(
    store: &dyn LogStore,
    size: TreeSize,
    subtrees: &[Subtree],
) -> Result<Vec<Hash>, CheckpointError> {
    let missing = |subtree: Subtree| {
        CheckpointError::ProofUnavailable(
            format!("no stored hash for subtree {subtree:?} of tree size {size}").into(),
        )
    };
    let width_max = u64::from(TILE_WIDTH_MAX);
    let mut tiles: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
    let mut hashes = Vec::with_capacity(subtrees.len());
    for &subtree in subtrees {
        let tile_level = subtree.level / TILE_HEIGHT;
        let rest = u32::from(subtree.level % TILE_HEIGHT);
        let first = subtree
            .index
            .checked_shl(rest)
            .ok_or_else(|| missing(subtree))?;
        let count = 1usize << rest;
        let tile_index = first / width_max;
        let tile = match tiles.entry((tile_level, tile_index)) {
            Entry::Occupied(occupied) => occupied.into_mut(),
            Entry::Vacant(vacant) => {
                let at_level = size
                    .0
                    .checked_shr(u32::from(TILE_HEIGHT) * u32::from(tile_level))
                    .unwrap_or(0);
                let width = at_level
                    .saturating_sub(tile_index * width_max)
                    .min(width_max);
                let width = u16::try_from(width)
                    .ok()
                    .filter(|&width| width > 0)
                    .ok_or_else(|| missing(subtree))?;
                let id =
                    TileId::new(tile_level, tile_index, width).map_err(|_| missing(subtree))?;
                let bytes = store
                    .log_tile(id)
                    .await
                    .map_err(CheckpointError::Store)?
                    .ok_or_else(|| missing(subtree))?;
                vacant.insert(decode_tile(id, &bytes).map_err(|_| missing(subtree))?)
            }
        };
        let offset = (first % width_max) as usize;
        let span = tile
            .get(offset..offset + count)
            .ok_or_else(|| missing(subtree))?;
        hashes.push(perfect_root(span));
    }
    Ok(hashes)
}

/// The root of a perfect tree over `hashes` (a power of two of them).
fn perfect_root(hashes: &[Hash]) -> Hash {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

/// The subtree hashes a proof was planned to need, fetched beforehand.
struct PrefetchedHashes(HashMap<Subtree, Hash>);

#[derive(Debug, thiserror::Error)]
#[error("subtree at level {level} index {index} was not prefetched")]
struct NotPrefetched {
    level: u8,
    index: u64,
}

impl HashReader for PrefetchedHashes {
    type Error = NotPrefetched;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, NotPrefetched> {
        subtrees
            .iter()
            .map(|subtree| {
                self.0.get(subtree).copied().ok_or(NotPrefetched {
                    level: subtree.level,
                    index: subtree.index,
                })
            })
            .collect()
    }
}
