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
//!
//! The periodic signer ([`Checkpointer::spawn_periodic`]) keeps a deadline rather than a
//! beat: with the sequencer's [`Coverage`] attached ([`Checkpointer::tracking`]), it signs
//! when the oldest acknowledged entry that no checkpoint covers is `interval` old less the
//! time a signing takes ([`Checkpointer::lead`]), so that entry is covered within `interval`
//! of its `append` call; and at the latest `interval` after the previous signing began, so
//! an idle log is re-signed every interval.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use store::{LogStore, StoreError, StoredCheckpoint};
use tlog::{
    Checkpoint, CompactRange, Hash, KeyError, Note, ProofError, Signer, TreeSize,
    consistency_proof, subtrees_for_consistency_proof, verify_consistency,
};

use crate::coverage::Coverage;
use crate::stored_hashes::StoredHashError;
use crate::tile_cache::TileCache;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often [`Checkpointer::spawn_periodic`] signs when not told otherwise.
pub const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Recent signings whose durations the periodic signer remembers.
pub const SIGNING_SAMPLES: usize = 8;
/// Added to the longest recent signing to get [`Checkpointer::lead`]: room for a signing
/// slower than any recent one and for the timer waking late on a busy machine.
pub const SIGNING_MARGIN: Duration = Duration::from_millis(25);

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
    /// Full tiles for the consistency proofs, shared with the log's proof endpoints.
    tiles: Arc<TileCache>,
    /// What the sequencer made durable and no checkpoint covers yet, if tracked.
    coverage: Option<Arc<Coverage>>,
    /// How long the last [`SIGNING_SAMPLES`] signings took, newest last.
    durations: Mutex<VecDeque<Duration>>,
    /// The last checkpoint persisted by this process.
    signed: watch::Sender<Option<SignedCheckpoint>>,
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
            tiles: Arc::new(TileCache::new()),
            coverage: None,
            durations: Mutex::new(VecDeque::with_capacity(SIGNING_SAMPLES)),
            signed: watch::Sender::new(None),
        })
    }

    /// Signs with a deadline: each signing reports what it covers to `coverage` (the
    /// log's [`crate::Sequencer::coverage`]), and [`Checkpointer::spawn_periodic`] signs
    /// before its oldest uncovered entry is an interval old.
    pub fn tracking(mut self, coverage: Arc<Coverage>) -> Checkpointer {
        self.coverage = Some(coverage);
        self
    }

    /// The cache of full tiles this checkpointer builds consistency proofs from; the
    /// log's proof endpoints share it.
    pub fn tile_cache(&self) -> Arc<TileCache> {
        Arc::clone(&self.tiles)
    }

    /// The checkpoints this process persists, as they are persisted (`None` before the
    /// first).
    pub fn subscribe(&self) -> watch::Receiver<Option<SignedCheckpoint>> {
        self.signed.subscribe()
    }

    /// How long before an entry's deadline the periodic signer starts signing: the
    /// longest of the last [`SIGNING_SAMPLES`] signings plus [`SIGNING_MARGIN`], at most
    /// half the interval (so the signer never signs back to back).
    pub fn lead(&self, interval: Duration) -> Duration {
        let longest = self.durations.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().max().unwrap_or_default();
        (longest + SIGNING_MARGIN).min(interval / 2)
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
        let started = Instant::now();
        let _signing = self.signing.lock().await;
        let result = self.sign_locked().await;
        match &result {
            Ok(signed) => {
                if let Some(coverage) = &self.coverage {
                    coverage.signed(signed.checkpoint.size());
                }
                self.signed.send_replace(Some(signed.clone()));
            }
            Err(error) => tracing::error!(%error, origin = %self.origin, "checkpoint not signed"),
        }
        let mut durations = self.durations.lock().unwrap_or_else(PoisonError::into_inner);
        if durations.len() == SIGNING_SAMPLES {
            durations.pop_front();
        }
        durations.push_back(started.elapsed());
        drop(durations);
        result
    }

    /// Signs now and then until the handle is aborted: when the oldest uncovered entry
    /// reaches its deadline (see the module docs), and at the latest `interval` after the
    /// previous signing began. Failures are logged by [`Checkpointer::sign_now`] and
    /// retried `interval` later.
    pub fn spawn_periodic(self: Arc<Self>, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let signed = self.sign_now().await.is_ok();
                loop {
                    let deadline = if signed {
                        let oldest = self.coverage.as_ref().and_then(|coverage| coverage.oldest_unsigned());
                        signing_deadline(interval, self.lead(interval), started, oldest)
                    } else {
                        started + interval
                    };
                    let Some(coverage) = self.coverage.as_ref().filter(|_| signed) else {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    };
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => break,
                        // A first uncovered entry may bring the deadline forward.
                        () = coverage.first_unsigned_arrived() => {}
                    }
                }
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
        let reader = self
            .tiles
            .read(self.store.as_ref(), new, &subtrees)
            .await
            .map_err(|error| match error {
                StoredHashError::Store(error) => CheckpointError::Store(error),
                missing => unavailable(missing.to_string().into()),
            })?;
        consistency_proof(&reader, old, new).map_err(|error| unavailable(error.to_string().into()))
    }
}


/// When the periodic signer signs next, given the last signing began at `last_started`:
/// `interval` after that (an idle log is re-signed every interval), or earlier when the
/// oldest uncovered entry, handed to `append` at `oldest_unsigned`, would otherwise wait
/// longer than `interval` — early by `lead`, the time a signing takes — but never sooner
/// than `lead` after the last signing began.
pub fn signing_deadline(interval: Duration, lead: Duration, last_started: Instant, oldest_unsigned: Option<Instant>) -> Instant {
    let idle = last_started + interval;
    match oldest_unsigned {
        Some(oldest) => (oldest + interval.saturating_sub(lead)).clamp(last_started + lead.min(interval), idle),
        None => idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(1_000);
    const LEAD: Duration = Duration::from_millis(40);

    #[test]
    fn an_idle_log_is_signed_every_interval() {
        let last = Instant::now();
        assert_eq!(signing_deadline(INTERVAL, LEAD, last, None), last + INTERVAL);
    }

    #[test]
    fn the_oldest_uncovered_entry_sets_the_deadline() {
        let last = Instant::now();
        // Acknowledged just before the last signing read the tree, so not covered by it.
        let oldest = last - Duration::from_millis(5);
        assert_eq!(signing_deadline(INTERVAL, LEAD, last, Some(oldest)), oldest + INTERVAL - LEAD);
        // Arrived later than the idle deadline allows for: the idle deadline comes first.
        let late = last + Duration::from_millis(500);
        assert_eq!(signing_deadline(INTERVAL, LEAD, last, Some(late)), last + INTERVAL);
        // Long overdue (signings failed): sign again, but not back to back.
        let stale = last - 3 * INTERVAL;
        assert_eq!(signing_deadline(INTERVAL, LEAD, last, Some(stale)), last + LEAD);
    }
}
