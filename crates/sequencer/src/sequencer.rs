//! Group commit for one region's log. Appenders hand entries to one background task over a
//! bounded queue; the task drains what is queued (up to [`BATCH_ENTRIES_MAX`]), integrates
//! the batch, writes entries, tiles and state in one store transaction, and only then
//! answers each appender with its index. If the write fails, every appender of the batch
//! gets the error, none is acknowledged, and the task reloads its view from the store
//! before the next batch (the write may have committed even though it reported failure).
//!
//! An appender that stops waiting (its future dropped) may still have its entry logged:
//! the log records attempts, and a dropped caller is not a reason to rewrite it.

use std::sync::Arc;

use store::{LOG_BATCH_ENTRIES_MAX, LogBatch, LogStore, StoreError};
use tlog::{ENTRY_BYTES_MAX, Hash, LeafIndex, leaf_hash};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::coverage::Coverage;
use crate::integration::{Integration, IntegrationError};

/// Entries waiting for the sequencer; appenders wait for room beyond this (backpressure).
pub const QUEUE_ENTRIES_MAX: usize = 8_192;
/// Most entries integrated and written in one transaction.
pub const BATCH_ENTRIES_MAX: usize = 1_024;
/// How many times the sequencer yields to runnable tasks, taking what they queued, before it
/// seals a batch.
pub const BATCH_YIELDS: usize = 3;

const _: () = assert!(BATCH_ENTRIES_MAX <= LOG_BATCH_ENTRIES_MAX);

/// Proof of sequencing handed to an appender once its entry is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub index: LeafIndex,
    pub leaf_hash: Hash,
}

/// Why an entry was not acknowledged. Except for `EntryTooLarge`, the entry may or may
/// not be in the log; it was not acknowledged, so no one may rely on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("entry of {bytes} bytes exceeds the limit of {ENTRY_BYTES_MAX}")]
    EntryTooLarge { bytes: usize },
    #[error("the log store failed to write the batch")]
    Store(#[source] Arc<StoreError>),
    #[error("the log state could not be loaded from the store")]
    Unavailable(#[source] Arc<IntegrationError>),
    #[error("the sequencer has stopped")]
    Stopped,
}

struct Pending {
    entry: Vec<u8>,
    /// When `append` was called: the coverage deadline counts from here.
    received: Instant,
    reply: oneshot::Sender<Result<Receipt, AppendError>>,
}

/// The one writer of a region's log in this process. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Sequencer {
    sender: mpsc::Sender<Pending>,
    task: JoinHandle<()>,
    coverage: Arc<Coverage>,
}

impl Sequencer {
    /// Loads the log state from `store` and starts the sequencing task.
    pub async fn start(store: Arc<dyn LogStore>) -> Result<Sequencer, IntegrationError> {
        Sequencer::start_for(store, "").await
    }

    /// As [`Sequencer::start`], for the log of `region`: the name its commits are measured
    /// under (`custos_log_commit_seconds{region}` and the other log metrics).
    pub async fn start_for(store: Arc<dyn LogStore>, region: &str) -> Result<Sequencer, IntegrationError> {
        let integration = Integration::load(store.as_ref()).await?;
        let (sender, receiver) = mpsc::channel(QUEUE_ENTRIES_MAX);
        let coverage = Arc::new(Coverage::new());
        // Shared, so that labelling each batch's metrics copies no string.
        let region = metrics::SharedString::from_shared(Arc::<str>::from(region));
        let task = tokio::spawn(run(store, Some(integration), receiver, Arc::clone(&coverage), region));
        Ok(Sequencer { sender, task, coverage })
    }

    /// What this sequencer made durable that no checkpoint covers yet; hand it to the
    /// log's [`crate::Checkpointer::tracking`] so the periodic signer keeps its deadline.
    pub fn coverage(&self) -> Arc<Coverage> {
        Arc::clone(&self.coverage)
    }

    /// Sequences one entry; returns once the batch holding it is durable.
    pub async fn append(&self, entry: Vec<u8>) -> Result<Receipt, AppendError> {
        if entry.len() > ENTRY_BYTES_MAX {
            return Err(AppendError::EntryTooLarge { bytes: entry.len() });
        }
        let (reply, answer) = oneshot::channel();
        let received = Instant::now();
        self.sender
            .send(Pending { entry, received, reply })
            .await
            .map_err(|_| AppendError::Stopped)?;
        answer.await.map_err(|_| AppendError::Stopped)?
    }

    /// Stops taking entries, lets the task finish what is queued, and waits for it.
    pub async fn close(self) {
        let Sequencer { sender, task, coverage: _ } = self;
        drop(sender);
        if let Err(error) = task.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Moves what is queued into `batch`, up to [`BATCH_ENTRIES_MAX`] entries.
fn drain(receiver: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
    while batch.len() < BATCH_ENTRIES_MAX {
        match receiver.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(_) => break,
        }
    }
}

async fn run(
    store: Arc<dyn LogStore>,
    mut integration: Option<Integration>,
    mut receiver: mpsc::Receiver<Pending>,
    coverage: Arc<Coverage>,
    region: metrics::SharedString,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        drain(&mut receiver, &mut batch);
        // A few turns for the tasks already runnable before the batch is sealed: under load
        // they are requests a few microseconds from their own append, and each one that
        // joins this batch is a commit (and its fsync, about 60 µs of kernel CPU on this
        // machine class) less. With nothing else runnable a yield returns at once.
        // Measured over HTTP: one yield saves 8–13 % of the server's CPU per request, three
        // save 5–10 % more at 16, 32 and 64 connections (docs/PERFORMANCE.md).
        for _ in 0..BATCH_YIELDS {
            tokio::task::yield_now().await;
            drain(&mut receiver, &mut batch);
        }
        let current = match integration.take() {
            Some(current) => current,
            None => match Integration::load(store.as_ref()).await {
                Ok(loaded) => loaded,
                Err(error) => {
                    tracing::error!(%error, entries = batch.len(), "log state unavailable; batch refused");
                    let error = Arc::new(error);
                    for pending in batch {
                        let _ = pending
                            .reply
                            .send(Err(AppendError::Unavailable(Arc::clone(&error))));
                    }
                    continue;
                }
            },
        };
        // The queue is FIFO, so the first entry is the oldest; min() does not rely on it.
        let oldest = batch.iter().map(|pending| pending.received).min().unwrap_or_else(Instant::now);
        let (entries, replies): (Vec<Vec<u8>>, Vec<_>) = batch
            .into_iter()
            .map(|pending| (pending.entry, pending.reply))
            .unzip();
        let leaves: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
        let (next, tiles) = current.integrate(&leaves);
        let first_index = current.size().0;
        let log_batch = LogBatch {
            first_index,
            entries,
            tiles,
            state: next.state(),
        };
        // Every answer of the batch waits for this write: its duration, per batch, is the
        // floor of the access path's latency, and its tail is the disk's `fsync` tail.
        let writing = std::time::Instant::now();
        let written = store.append_batch(&log_batch).await;
        metrics::histogram!("custos_log_commit_seconds", "region" => region.clone()).record(writing.elapsed().as_secs_f64());
        metrics::histogram!("custos_log_batch_entries", "region" => region.clone()).record(log_batch.entries.len() as f64);
        if written.is_err() {
            metrics::counter!("custos_log_batches_failed_total", "region" => region.clone()).increment(1);
        }
        match written {
            Ok(()) => {
                // Before the appenders hear their index: from now on the signer owes them
                // a checkpoint.
                coverage.durable(next.size(), oldest);
                integration = Some(next);
                for (offset, (reply, leaf_hash)) in replies.into_iter().zip(leaves).enumerate() {
                    let receipt = Receipt {
                        index: LeafIndex(first_index + offset as u64),
                        leaf_hash,
                    };
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(error) => {
                tracing::error!(%error, first_index, entries = replies.len(), "log batch not persisted; nothing acknowledged");
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(AppendError::Store(Arc::clone(&error))));
                }
                // Resume from what the store holds, not from what this task believed.
                integration = match Integration::load(store.as_ref()).await {
                    Ok(loaded) => Some(loaded),
                    Err(error) => {
                        tracing::error!(%error, "log state unavailable after a failed batch");
                        None
                    }
                };
            }
        }
    }
}
