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

use std::sync::Arc;
use std::time::Duration;

use store::{LogStore, StoreError, StoredCheckpoint};
use tlog::{
    Checkpoint, CompactRange, Hash, KeyError, Note, ProofError, Signer, TreeSize,
    consistency_proof, subtrees_for_consistency_proof, verify_consistency,
};

use crate::stored_hashes::{StoredHashError, StoredHashes};
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
        let reader = StoredHashes::read(self.store.as_ref(), new, &subtrees)
            .await
            .map_err(|error| match error {
                StoredHashError::Store(error) => CheckpointError::Store(error),
                missing => unavailable(missing.to_string().into()),
            })?;
        consistency_proof(&reader, old, new).map_err(|error| unavailable(error.to_string().into()))
    }
}

