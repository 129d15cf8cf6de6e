//! The sequencer's in-memory view of the tree: its right edge ([`tlog::CompactRange`]) and,
//! per tile level, the hashes of the partial tile at the edge. Integrating a batch reports
//! every tile it completes, and every partial tile above level 0 it grows, so tiles are
//! written incrementally, never recomputed from the log. Level 0's partial tile is not
//! stored: it is the leaf hashes of the entries past the last full tile
//! ([`crate::tile_bytes`]). Restoring reads the stored state, the partial tiles above level
//! 0, and at most 255 entries.

use store::{LogState, LogStore, StoreError};
use tlog::{
    CompactRange, CompactRangeError, Hash, TILE_HEIGHT, TILE_LEVEL_MAX, TILE_WIDTH_MAX, TileId,
    TreeSize, decode_tile, encode_tile, tiles_for_size,
};

/// The tree as the sequencer extends it. Cloning is cheap enough per batch: at most
/// 255 hashes per tile level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Integration {
    range: CompactRange,
    // INVARIANT: edge[level] holds the (size >> 8*level) % 256 hashes of the partial tile
    // at that tile level, in order; levels above the tree's height are empty or absent.
    edge: Vec<Vec<Hash>>,
}

/// The stored state cannot be resumed from.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("stored log state is not a tree frontier")]
    Frontier(#[source] CompactRangeError),
    #[error("stored partial tile {tile} is missing")]
    MissingTile { tile: TileId },
    #[error("stored partial tile {tile} has the wrong length")]
    TileLength { tile: TileId },
    #[error("reading the log state failed")]
    Store(#[source] StoreError),
}

impl Integration {
    /// The empty tree.
    pub fn new() -> Integration {
        Integration::default()
    }

    /// Resumes from the store: the state row and the partial tiles of its size.
    pub async fn load(store: &dyn LogStore) -> Result<Integration, IntegrationError> {
        let state = store.log_state().await.map_err(IntegrationError::Store)?;
        let range = CompactRange::from_parts(state.size, state.frontier)
            .map_err(IntegrationError::Frontier)?;
        let mut edge = Vec::new();
        for tile in tiles_for_size(range.size())
            .into_iter()
            .filter(TileId::is_partial)
        {
            let bytes = crate::tile_bytes(store, tile)
                .await
                .map_err(IntegrationError::Store)?
                .ok_or(IntegrationError::MissingTile { tile })?;
            let hashes =
                decode_tile(tile, &bytes).map_err(|_| IntegrationError::TileLength { tile })?;
            let level = usize::from(tile.level());
            if edge.len() <= level {
                edge.resize(level + 1, Vec::new());
            }
            edge[level] = hashes;
        }
        Ok(Integration { range, edge })
    }

    pub fn size(&self) -> TreeSize {
        self.range.size()
    }

    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The state to persist with the last batch integrated.
    pub fn state(&self) -> LogState {
        LogState {
            size: self.range.size(),
            frontier: self.range.hashes().to_vec(),
        }
    }

    /// The tree after appending `leaves`, and the tiles to store (each full tile the batch
    /// completed, then the partial tile of every level above 0 that grew), with their bytes.
    /// `self` is left as it was, so a batch that fails to persist changes nothing.
    pub fn integrate(&self, leaves: &[Hash]) -> (Integration, Vec<(TileId, Vec<u8>)>) {
        let mut next = self.clone();
        let Integration { range, edge } = &mut next;
        let mut tiles = Vec::new();
        let mut grown = [false; TILE_LEVEL_MAX as usize + 1];
        for leaf in leaves {
            range.append_reporting(*leaf, |subtree, hash| {
                if subtree.level % TILE_HEIGHT != 0 {
                    return;
                }
                let level = usize::from(subtree.level / TILE_HEIGHT);
                if edge.len() <= level {
                    edge.resize(level + 1, Vec::new());
                }
                edge[level].push(hash);
                grown[level] = true;
                if edge[level].len() == usize::from(TILE_WIDTH_MAX) {
                    let index = subtree.index / u64::from(TILE_WIDTH_MAX);
                    // INVARIANT: level <= 7 here (tree levels fit in u8) and width is 256.
                    let tile = TileId::new(level as u8, index, TILE_WIDTH_MAX)
                        .expect("full tile id is valid");
                    tiles.push((tile, encode_tile(&std::mem::take(&mut edge[level]))));
                }
            });
        }
        let size = range.size().0;
        // Level 0's partial tile is left out: it is the leaf hashes of the entries written
        // in the same batch, read back from them (crate::tile_bytes).
        for (level, hashes) in edge.iter().enumerate().skip(1) {
            if !grown[level] || hashes.is_empty() {
                continue;
            }
            let shift = u32::from(TILE_HEIGHT) * level as u32;
            let index = size.checked_shr(shift).unwrap_or(0) / u64::from(TILE_WIDTH_MAX);
            // INVARIANT: 1 <= hashes.len() < 256 and level <= 7.
            let width = hashes.len() as u16;
            let tile = TileId::new(level as u8, index, width).expect("partial tile id is valid");
            tiles.push((tile, encode_tile(hashes)));
        }
        (next, tiles)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use tlog::{leaf_hash, tile_hashes, tiles_added};

    use super::*;

    fn leaves(count: u64) -> Vec<Hash> {
        (0..count)
            .map(|index| leaf_hash(&index.to_be_bytes()))
            .collect()
    }

    /// Whether the sequencer stores `tile` (all but level 0's partial tile).
    fn is_stored(tile: &TileId) -> bool {
        tile.level() > 0 || !tile.is_partial()
    }

    /// Integrates `batches` one after another from the empty tree and checks, after each,
    /// that the tiles written are exactly `tiles_added` with the hashes tlog computes.
    fn check(batches: &[u64]) {
        let total: u64 = batches.iter().sum();
        let all = leaves(total);
        let mut integration = Integration::new();
        let mut written = BTreeMap::new();
        let mut start = 0;
        for &count in batches {
            let old = integration.size();
            let (next, tiles) =
                integration.integrate(&all[start as usize..(start + count) as usize]);
            start += count;
            assert_eq!(next.size(), TreeSize(start));
            assert_eq!(next.root(), tlog::root_from_leaves(&all[..start as usize]));
            let ids: Vec<TileId> = tiles.iter().map(|(tile, _)| *tile).collect();
            let mut expected: Vec<TileId> = tiles_added(old, next.size()).into_iter().filter(is_stored).collect();
            expected.sort();
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(sorted, expected, "tiles after {batches:?}");
            for (tile, bytes) in tiles {
                let hashes = tile_hashes(&all[..start as usize], next.size(), tile).unwrap();
                assert_eq!(bytes, encode_tile(&hashes), "tile {tile}");
                written.insert((tile.level(), tile.index()), bytes);
            }
            integration = next;
        }
        for tile in tiles_for_size(TreeSize(total)).into_iter().filter(is_stored) {
            let hashes = tile_hashes(&all[..], TreeSize(total), tile).unwrap();
            assert_eq!(
                written.get(&(tile.level(), tile.index())),
                Some(&encode_tile(&hashes)),
                "tile {tile}"
            );
        }
    }

    #[test]
    fn known_batch_sequences() {
        check(&[1]);
        check(&[255, 1]);
        check(&[256]);
        check(&[300, 65_236, 1]);
        check(&[65_536]);
        check(&[1, 1, 1, 253, 1000]);
    }

    #[test]
    fn an_empty_batch_changes_nothing() {
        let (next, tiles) = Integration::new().integrate(&leaves(5)).0.integrate(&[]);
        assert_eq!(next.size(), TreeSize(5));
        assert!(tiles.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn incremental_tiles_match_tlog(batches in proptest::collection::vec(1u64..700, 1..8)) {
            check(&batches);
        }
    }
}
