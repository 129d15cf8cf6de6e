//! Hashes of complete subtrees read from a log's stored tiles, so that the log can build
//! inclusion and consistency proofs (the proof functions are synchronous; the store is not,
//! so the hashes a proof needs are read first).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use store::{LogStore, StoreError};
use tlog::{Hash, HashReader, Subtree, TILE_HEIGHT, TILE_WIDTH_MAX, TileId, TreeSize, decode_tile, node_hash};

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

impl StoredHashes {
    /// Reads the hashes of `subtrees` (complete subtrees of the tree of `size` leaves): a
    /// subtree at tree level `8l + r` is the perfect root of `2^r` consecutive hashes of one
    /// tile at tile level `l`.
    pub async fn read(store: &dyn LogStore, size: TreeSize, subtrees: &[Subtree]) -> Result<StoredHashes, StoredHashError> {
        let missing = |subtree: Subtree| StoredHashError::Missing { level: subtree.level, index: subtree.index, size: size.0 };
        let width_max = u64::from(TILE_WIDTH_MAX);
        let mut tiles: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
        let mut hashes = HashMap::with_capacity(subtrees.len());
        for &subtree in subtrees {
            let tile_level = subtree.level / TILE_HEIGHT;
            let rest = u32::from(subtree.level % TILE_HEIGHT);
            let first = subtree.index.checked_shl(rest).ok_or_else(|| missing(subtree))?;
            let count = 1usize << rest;
            let tile_index = first / width_max;
            let tile = match tiles.entry((tile_level, tile_index)) {
                Entry::Occupied(occupied) => occupied.into_mut(),
                Entry::Vacant(vacant) => {
                    let at_level = size.0.checked_shr(u32::from(TILE_HEIGHT) * u32::from(tile_level)).unwrap_or(0);
                    let width = at_level.saturating_sub(tile_index * width_max).min(width_max);
                    let width = u16::try_from(width).ok().filter(|&width| width > 0).ok_or_else(|| missing(subtree))?;
                    let id = TileId::new(tile_level, tile_index, width).map_err(|_| missing(subtree))?;
                    let bytes = store.log_tile(id).await.map_err(StoredHashError::Store)?.ok_or_else(|| missing(subtree))?;
                    vacant.insert(decode_tile(id, &bytes).map_err(|_| missing(subtree))?)
                }
            };
            let offset = usize::try_from(first % width_max).map_err(|_| missing(subtree))?;
            let span = tile.get(offset..offset + count).ok_or_else(|| missing(subtree))?;
            hashes.insert(subtree, perfect_root(span));
        }
        Ok(StoredHashes(hashes))
    }
}

/// The root of a perfect tree over `hashes` (a power of two of them).
fn perfect_root(hashes: &[Hash]) -> Hash {
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
