//! Hashes of complete subtrees read from a log's stored tiles, so that the log can build
//! inclusion and consistency proofs (the proof functions are synchronous; the store is not,
//! so the hashes a proof needs are read first). [`StoredHashes::read`] reads every tile a
//! proof needs from the store; [`crate::TileCache::read`] keeps full tiles between proofs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use store::{LogStore, StoreError};
use tlog::{Hash, HashReader, Subtree, TILE_HEIGHT, TILE_WIDTH_MAX, TileId, TreeSize, decode_tile, encode_tile, leaf_hash, node_hash};

/// The hashes of a planned set of subtrees, read from stored tiles.
#[derive(Debug)]
pub struct StoredHashes(HashMap<Subtree, Hash>);

#[derive(Debug, thiserror::Error)]
pub enum StoredHashError {
    #[error("no stored hash for subtree at level {level} index {index} of tree size {size}")]
    Missing { level: u8, index: u64, size: u64 },
    #[error("failed to read a tile")]
    Store(#[source] StoreError),
}

/// Where a complete subtree's hash lies: the tile (at its width in the tree of `size`)
/// and the `2^rest` consecutive tile hashes from `offset` whose perfect root it is.
pub(crate) struct TileSpan {
    pub(crate) tile: TileId,
    pub(crate) offset: usize,
    pub(crate) rest: u8,
    subtree: Subtree,
    size: TreeSize,
}

impl TileSpan {
    /// A subtree at tree level `8l + r` is the perfect root of `2^r` consecutive hashes of
    /// one tile at tile level `l`.
    pub(crate) fn locate(size: TreeSize, subtree: Subtree) -> Result<TileSpan, StoredHashError> {
        let missing = || missing(subtree, size);
        let width_max = u64::from(TILE_WIDTH_MAX);
        let tile_level = subtree.level / TILE_HEIGHT;
        let rest = subtree.level % TILE_HEIGHT;
        let first = subtree.index.checked_shl(u32::from(rest)).ok_or_else(missing)?;
        let tile_index = first / width_max;
        let at_level = size.0.checked_shr(u32::from(TILE_HEIGHT) * u32::from(tile_level)).unwrap_or(0);
        let width = at_level.saturating_sub(tile_index * width_max).min(width_max);
        let width = u16::try_from(width).ok().filter(|&width| width > 0).ok_or_else(missing)?;
        let tile = TileId::new(tile_level, tile_index, width).map_err(|_| missing())?;
        let offset = usize::try_from(first % width_max).map_err(|_| missing())?;
        Ok(TileSpan { tile, offset, rest, subtree, size })
    }

    /// The tile hashes under the subtree, if the tile holds them all.
    pub(crate) fn slice<'a>(&self, tile: &'a [Hash]) -> Option<&'a [Hash]> {
        tile.get(self.offset..self.offset + (1usize << self.rest))
    }

    pub(crate) fn missing(&self) -> StoredHashError {
        missing(self.subtree, self.size)
    }
}

fn missing(subtree: Subtree, size: TreeSize) -> StoredHashError {
    StoredHashError::Missing { level: subtree.level, index: subtree.index, size: size.0 }
}

impl StoredHashes {
    /// Reads the hashes of `subtrees` (complete subtrees of the tree of `size` leaves),
    /// each tile they lie in read once from the store.
    pub async fn read(store: &dyn LogStore, size: TreeSize, subtrees: &[Subtree]) -> Result<StoredHashes, StoredHashError> {
        let mut tiles: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
        let mut hashes = HashMap::with_capacity(subtrees.len());
        for &subtree in subtrees {
            let span = TileSpan::locate(size, subtree)?;
            let tile = match tiles.entry((span.tile.level(), span.tile.index())) {
                Entry::Occupied(occupied) => occupied.into_mut(),
                Entry::Vacant(vacant) => vacant.insert(StoredHashes::read_tile(store, span.tile, subtree, size).await?),
            };
            hashes.insert(subtree, perfect_root(span.slice(tile).ok_or_else(|| span.missing())?));
        }
        Ok(StoredHashes(hashes))
    }

    /// The hashes of one stored tile; `subtree` and `size` name what is missing if it is not stored.
    pub(crate) async fn read_tile(store: &dyn LogStore, tile: TileId, subtree: Subtree, size: TreeSize) -> Result<Vec<Hash>, StoredHashError> {
        let bytes = tile_bytes(store, tile).await.map_err(StoredHashError::Store)?.ok_or_else(|| missing(subtree, size))?;
        decode_tile(tile, &bytes).map_err(|_| missing(subtree, size))
    }

    pub(crate) fn from_map(hashes: HashMap<Subtree, Hash>) -> StoredHashes {
        StoredHashes(hashes)
    }
}

/// The bytes of `tile` as the log holds it, or `None` if fewer than its width hashes are
/// stored at its position.
///
/// A partial tile of level 0 is not stored (the sequencer would rewrite up to 8 KiB of it at
/// every commit): its hashes are the leaf hashes of the entries past the last full tile, so
/// it is read as those entries and hashed. A stored one (a full tile it is a prefix of, or
/// a partial row an earlier version wrote) is used when it is wide enough.
pub async fn tile_bytes(store: &dyn LogStore, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
    if tile.level() != 0 || !tile.is_partial() {
        return store.log_tile(tile).await;
    }
    if let Some(bytes) = store.log_tile(tile).await? {
        return Ok(Some(bytes));
    }
    let start = tile.index() * u64::from(TILE_WIDTH_MAX);
    let width = usize::from(tile.width());
    let entries = store.log_entries(start, start + width as u64).await?;
    if entries.len() < width {
        return Ok(None);
    }
    let hashes: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
    Ok(Some(encode_tile(&hashes)))
}

/// The root of a perfect tree over `hashes` (a power of two of them).
pub(crate) fn perfect_root(hashes: &[Hash]) -> Hash {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
    }
    level[0]
}

#[derive(Debug, thiserror::Error)]
#[error("subtree at level {level} index {index} was not read beforehand")]
pub struct NotRead {
    level: u8,
    index: u64,
}

impl HashReader for StoredHashes {
    type Error = NotRead;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, NotRead> {
        subtrees
            .iter()
            .map(|subtree| self.0.get(subtree).copied().ok_or(NotRead { level: subtree.level, index: subtree.index }))
            .collect()
    }
}
