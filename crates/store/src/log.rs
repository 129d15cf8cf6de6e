//! Storage of one region's append-only Merkle log: entries, the tiles of hashes the tile
//! endpoints serve, the sequencer's integration state and the signed checkpoints. Both
//! backends implement [`LogStore`] in the same database (and transaction discipline) as
//! the rest of the region, and are held to the checks in [`crate::conformance`].
//!
//! The store does no Merkle math: the sequencer computes leaf hashes, tiles and the
//! frontier; the store only makes each batch durable atomically and refuses what would
//! move an acknowledged entry (a batch that does not start at the stored size) or sign a
//! rollback (a checkpoint smaller than, or forking, the last one saved).

use async_trait::async_trait;
use tlog::hash::HASH_BYTES;
use tlog::{ENTRY_BYTES_MAX, Hash, TILE_WIDTH_MAX, TileId, TreeSize};

use crate::StoreError;

/// Most entries one [`LogStore::append_batch`] or [`LogStore::log_entries`] call carries.
pub const LOG_BATCH_ENTRIES_MAX: usize = 4_096;
/// Most tiles one [`LogStore::append_batch`] call writes. A batch of
/// [`LOG_BATCH_ENTRIES_MAX`] entries completes at most 17 level-0 tiles plus the tiles
/// above them; this bound leaves ample room.
pub const LOG_BATCH_TILES_MAX: usize = 256;

/// Where the sequencer stands: the tree size and the hashes of the complete subtrees on
/// its right edge (`tlog::CompactRange::hashes`), so a restart resumes without reading the
/// log back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogState {
    pub size: TreeSize,
    pub frontier: Vec<Hash>,
}

/// One durable step of the log: entries `first_index..first_index + entries.len()`, the
/// tiles they changed (full or partial, each replacing any narrower version of the same
/// tile), and the state after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    pub first_index: u64,
    pub entries: Vec<Vec<u8>>,
    pub tiles: Vec<(TileId, Vec<u8>)>,
    pub state: LogState,
}

/// A signed checkpoint as persisted: its size, root and full note text (with signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: TreeSize,
    pub root: Hash,
    pub note: String,
}

/// A witness's cosignature of a saved checkpoint: the C2SP signed-note signature line
/// (`— <witness name> <base64 key id ‖ timestamp ‖ signature>`), kept per checkpoint size
/// and witness (a newer cosignature of the same size replaces the older one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCosignature {
    pub size: TreeSize,
    pub witness: String,
    pub line: String,
}

/// Longest stored cosignature line, in bytes: a key name of at most a few hundred bytes and
/// 96 base64 characters.
pub const COSIGNATURE_LINE_BYTES_MAX: usize = 1_024;
/// Most cosignatures kept for one checkpoint.
pub const COSIGNATURES_PER_CHECKPOINT_MAX: usize = 64;

/// One region's Merkle log. Every method is one transaction.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Writes a batch atomically and durably (fsync / COMMIT before returning). Fails with
    /// [`StoreError::LogSizeMismatch`] without writing when the stored size is not
    /// `batch.first_index`, so two sequencers can never both extend the log, and with
    /// [`StoreError::LogBatchInvalid`] when the batch contradicts itself.
    async fn append_batch(&self, batch: &LogBatch) -> Result<(), StoreError>;

    /// The stored state; size 0 and no hashes for a new log.
    async fn log_state(&self) -> Result<LogState, StoreError>;

    /// Entries `start..end` (clamped to the stored size), in index order. At most
    /// [`LOG_BATCH_ENTRIES_MAX`] per call.
    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The bytes of `tile`, or `None` if fewer than its width hashes are stored at its
    /// position. A narrower (older partial) tile is served as a prefix of the stored one.
    async fn log_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError>;

    /// The checkpoint with the largest size: the anchor every later one must extend.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Persists a signed checkpoint. Refuses with [`StoreError::CheckpointRollback`] a size
    /// below the latest saved one, and with [`StoreError::CheckpointFork`] the same size
    /// with another root. Saving the latest checkpoint again is a no-op.
    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;

    /// The saved checkpoint of exactly `size` leaves, if one was saved.
    async fn checkpoint_at(&self, size: TreeSize) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Keeps a witness's cosignature of the saved checkpoint of its size (the caller has
    /// verified it). Refuses one for a size with no saved checkpoint, an over-long line,
    /// or more than [`COSIGNATURES_PER_CHECKPOINT_MAX`] witnesses for one checkpoint.
    async fn save_cosignature(&self, cosignature: &StoredCosignature) -> Result<(), StoreError>;

    /// The cosignatures kept for the checkpoint of `size`, by witness name.
    async fn cosignatures(&self, size: TreeSize) -> Result<Vec<StoredCosignature>, StoreError>;
}

/// Checks a cosignature before it touches the database.
pub(crate) fn check_cosignature(cosignature: &StoredCosignature) -> Result<(), StoreError> {
    if cosignature.line.len() > COSIGNATURE_LINE_BYTES_MAX || cosignature.witness.is_empty() {
        return Err(StoreError::LogBatchInvalid(format!(
            "cosignature line of {} bytes by {:?} is empty or over {COSIGNATURE_LINE_BYTES_MAX} bytes",
            cosignature.line.len(),
            cosignature.witness
        )));
    }
    Ok(())
}

/// Checks a batch against itself before it touches the database.
pub(crate) fn check_batch(batch: &LogBatch) -> Result<(), StoreError> {
    let invalid = |reason: String| Err(StoreError::LogBatchInvalid(reason));
    if batch.entries.is_empty() {
        return invalid("batch has no entries".to_owned());
    }
    if batch.entries.len() > LOG_BATCH_ENTRIES_MAX {
        return Err(StoreError::BatchTooLarge {
            rows: batch.entries.len(),
            max: LOG_BATCH_ENTRIES_MAX,
        });
    }
    if batch.tiles.len() > LOG_BATCH_TILES_MAX {
        return Err(StoreError::BatchTooLarge {
            rows: batch.tiles.len(),
            max: LOG_BATCH_TILES_MAX,
        });
    }
    let end = batch.first_index.checked_add(batch.entries.len() as u64);
    if end != Some(batch.state.size.0) {
        return invalid(format!(
            "state size {} is not first index {} plus {} entries",
            batch.state.size,
            batch.first_index,
            batch.entries.len()
        ));
    }
    if batch.state.frontier.len() != batch.state.size.0.count_ones() as usize {
        return invalid(format!(
            "a tree of size {} has {} frontier hashes, {} given",
            batch.state.size,
            batch.state.size.0.count_ones(),
            batch.state.frontier.len()
        ));
    }
    if let Some(entry) = batch
        .entries
        .iter()
        .find(|entry| entry.len() > ENTRY_BYTES_MAX)
    {
        return invalid(format!(
            "entry of {} bytes exceeds {ENTRY_BYTES_MAX}",
            entry.len()
        ));
    }
    for (tile, bytes) in &batch.tiles {
        if bytes.len() != usize::from(tile.width()) * HASH_BYTES {
            return invalid(format!("tile {tile} has {} bytes", bytes.len()));
        }
        if !tile.is_within(batch.state.size) {
            return invalid(format!(
                "tile {tile} is not within the tree of size {}",
                batch.state.size
            ));
        }
    }
    Ok(())
}

/// Checks a checkpoint against the latest saved one.
pub(crate) fn check_checkpoint(
    latest: Option<(u64, Vec<u8>)>,
    checkpoint: &StoredCheckpoint,
) -> Result<bool, StoreError> {
    let Some((size, root)) = latest else {
        return Ok(true);
    };
    if checkpoint.size.0 < size {
        return Err(StoreError::CheckpointRollback {
            saved: size,
            new: checkpoint.size.0,
        });
    }
    if checkpoint.size.0 == size {
        if root.as_slice() != checkpoint.root.as_bytes() {
            return Err(StoreError::CheckpointFork { size });
        }
        return Ok(false);
    }
    Ok(true)
}

/// The frontier as stored: the hashes concatenated.
pub(crate) fn encode_frontier(frontier: &[Hash]) -> Vec<u8> {
    frontier.iter().flat_map(|hash| hash.0).collect()
}

pub(crate) fn decode_frontier(size: u64, bytes: &[u8]) -> Result<LogState, StoreError> {
    if bytes.len() != size.count_ones() as usize * HASH_BYTES {
        return Err(StoreError::Corrupt(format!(
            "log state of size {size} has {} frontier bytes",
            bytes.len()
        )));
    }
    let frontier = bytes
        .chunks_exact(HASH_BYTES)
        .map(|chunk| {
            Hash::from_slice(chunk).map_err(|error| StoreError::Corrupt(error.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok(LogState {
        size: TreeSize(size),
        frontier,
    })
}

pub(crate) fn decode_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    Hash::from_slice(bytes).map_err(|error| StoreError::Corrupt(format!("stored hash: {error}")))
}

/// The requested tile cut from the stored (possibly wider) one.
pub(crate) fn cut_tile(tile: TileId, stored: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut bytes = stored?;
    let wanted = usize::from(tile.width()) * HASH_BYTES;
    if bytes.len() < wanted || bytes.len() > usize::from(TILE_WIDTH_MAX) * HASH_BYTES {
        return None;
    }
    bytes.truncate(wanted);
    Some(bytes)
}

/// Converts a u64 index to the signed 64-bit integer both databases store.
pub(crate) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::LogBatchInvalid(format!("index {value} exceeds 2^63")))
}
