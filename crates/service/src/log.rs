//! One region's access log as the node runs it: the sequencer (the one writer), the
//! checkpointer (signs on demand and on a fixed interval), and the reads the tile and
//! proof endpoints serve from the region's store.
//!
//! The server only serves what the store holds: clients check every tile against the
//! signed root (tlog-tiles), and every proof against a checkpoint they verified, so a read
//! here trusts nothing and promises nothing beyond "these are the stored bytes".
//!
//! Ownership of the periodic checkpoint task: the [`RegionLog`] owns it. It is spawned by
//! [`RegionLog::start`] when given an interval (as [`crate::open_deployment`] does, from
//! `checkpoint_interval_ms`) and aborted when the `RegionLog` (so the [`crate::Vault`]) is
//! dropped.

use std::sync::Arc;
use std::time::Duration;

use model::RegionId;
use sequencer::{Checkpointer, SALT_BYTES, Sequencer, StoredHashError, StoredHashes, salted_entry};
use store::LogStore;
use tlog::{
    EntryBundleId, Hash, LeafIndex, Subtree, TileId, TreeSize, encode_bundle, subtrees_for_consistency_proof,
    subtrees_for_inclusion_proof,
};
use tokio::task::JoinHandle;

use crate::ServiceError;

/// What an appender gets once its entry is durable: which log, where, and its leaf hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReceipt {
    pub origin: String,
    pub index: LeafIndex,
    pub leaf_hash: Hash,
}

/// The origin line (and signing key name) of a region's log.
pub fn log_origin(host: &str, region: &RegionId) -> String {
    format!("{host}/custos/{region}")
}

/// One served region's log.
pub struct RegionLog {
    region: RegionId,
    store: Arc<dyn LogStore>,
    sequencer: Sequencer,
    checkpointer: Arc<Checkpointer>,
    periodic: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RegionLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegionLog")
            .field("region", &self.region)
            .field("origin", &self.checkpointer.origin())
            .finish_non_exhaustive()
    }
}

impl Drop for RegionLog {
    fn drop(&mut self) {
        if let Some(task) = self.periodic.take() {
            task.abort();
        }
    }
}

impl RegionLog {
    /// Starts the sequencer over `store`, signs the current tree once (so a checkpoint is
    /// always published), and with `checkpoint_interval` spawns the periodic signer.
    pub async fn start(
        region: RegionId,
        store: Arc<dyn LogStore>,
        origin: &str,
        seed: &[u8; 32],
        checkpoint_interval: Option<Duration>,
    ) -> Result<RegionLog, ServiceError> {
        let internal = |message: String| ServiceError::Internal(format!("log of region {region}: {message}"));
        let checkpointer = Arc::new(
            Checkpointer::new(Arc::clone(&store), origin, seed).map_err(|error| internal(error.to_string()))?,
        );
        let sequencer = Sequencer::start(Arc::clone(&store)).await.map_err(|error| internal(error.to_string()))?;
        checkpointer.sign_now().await.map_err(|error| internal(error.to_string()))?;
        let periodic = checkpoint_interval.map(|interval| Arc::clone(&checkpointer).spawn_periodic(interval));
        Ok(RegionLog { region, store, sequencer, checkpointer, periodic })
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    pub fn origin(&self) -> &str {
        self.checkpointer.origin()
    }

    /// The log's verifier key (`<name>+<key id>+<base64 key>`).
    pub fn verifier_key(&self) -> String {
        self.checkpointer.verifier().to_vkey()
    }

    /// Appends `canonical` under a fresh 32-byte salt; returns once it is durable.
    pub async fn append(&self, canonical: &[u8]) -> Result<LogReceipt, ServiceError> {
        let mut salt = [0u8; SALT_BYTES];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| ServiceError::Internal("system random failed".to_owned()))?;
        let entry = salted_entry(canonical, salt).map_err(|error| ServiceError::LogEntryRejected(error.to_string()))?;
        let receipt = self.sequencer.append(entry).await.map_err(|error| ServiceError::Log(error.to_string()))?;
        Ok(LogReceipt { origin: self.origin().to_owned(), index: receipt.index, leaf_hash: receipt.leaf_hash })
    }

    /// Signs the current tree now and returns the note text.
    pub async fn sign_now(&self) -> Result<String, ServiceError> {
        let signed = self.checkpointer.sign_now().await.map_err(|error| ServiceError::Log(error.to_string()))?;
        note_text(signed.note.to_bytes())
    }

    /// The latest signed checkpoint note, as published.
    pub async fn checkpoint(&self) -> Result<String, ServiceError> {
        match self.store.latest_checkpoint().await? {
            Some(stored) => Ok(stored.note),
            // `start` signs once, so this only happens if the store lost the checkpoint.
            None => Err(ServiceError::Log("no checkpoint has been signed".to_owned())),
        }
    }

    /// The bytes of a hash tile, or `None` beyond the stored tree.
    pub async fn tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, ServiceError> {
        Ok(self.store.log_tile(tile).await?)
    }

    /// An entry bundle, or `None` when the stored tree does not reach its last entry.
    pub async fn entry_bundle(&self, bundle: EntryBundleId) -> Result<Option<Vec<u8>>, ServiceError> {
        let Some(first) = bundle.first_entry() else { return Ok(None) };
        let Some(end) = first.checked_add(u64::from(bundle.width())) else { return Ok(None) };
        if end > self.store.log_state().await?.size.0 {
            return Ok(None);
        }
        let entries = self.store.log_entries(first, end).await?;
        if entries.len() as u64 != end - first {
            return Err(ServiceError::Log(format!("entries {first}..{end} are not all stored")));
        }
        let bytes = encode_bundle(&entries).map_err(|error| ServiceError::Log(error.to_string()))?;
        Ok(Some(bytes))
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ServiceError> {
        self.check_size(size).await?;
        if index >= size {
            return Err(ServiceError::InvalidProofRequest(format!("index {index} is not below tree size {size}")));
        }
        let (index, size) = (LeafIndex(index), TreeSize(size));
        let reader = self.prefetch(size, subtrees_for_inclusion_proof(index, size)).await?;
        tlog::inclusion_proof(&reader, index, size).map_err(|error| ServiceError::Log(error.to_string()))
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ServiceError> {
        self.check_size(new).await?;
        if old > new {
            return Err(ServiceError::InvalidProofRequest(format!("old size {old} exceeds new size {new}")));
        }
        let (old, new) = (TreeSize(old), TreeSize(new));
        let reader = self.prefetch(new, subtrees_for_consistency_proof(old, new)).await?;
        tlog::consistency_proof(&reader, old, new).map_err(|error| ServiceError::Log(error.to_string()))
    }

    async fn check_size(&self, size: u64) -> Result<(), ServiceError> {
        let stored = self.store.log_state().await?.size.0;
        if size > stored {
            return Err(ServiceError::InvalidProofRequest(format!("tree size {size} exceeds the log's {stored} entries")));
        }
        Ok(())
    }

    /// Reads the hashes of `subtrees` (complete subtrees of the tree of `size` leaves) from
    /// the stored tiles.
    async fn prefetch(&self, size: TreeSize, subtrees: Vec<Subtree>) -> Result<StoredHashes, ServiceError> {
        StoredHashes::read(self.store.as_ref(), size, &subtrees).await.map_err(|error| match error {
            StoredHashError::Store(error) => error.into(),
            missing => ServiceError::Log(missing.to_string()),
        })
    }
}

fn note_text(bytes: Vec<u8>) -> Result<String, ServiceError> {
    String::from_utf8(bytes).map_err(|_| ServiceError::Internal("a signed note is not UTF-8".to_owned()))
}
