//! Verifier-side access to a tiled log: tiles fetched for one checkpoint are checked
//! against its signed root before any of their hashes is used.
//!
//! The partial tiles on the right edge hash up to the root; every full tile hashes to
//! its entry in the tile one level up, which is itself checked the same way. A tile
//! that does not hash up to the root is rejected by name. Tile readers elsewhere have
//! shipped with gaps here, trusting a fetched hash that nothing tied to the root.

use std::collections::{BTreeMap, BTreeSet};

use crate::bundle::{BundleError, decode_bundle, decode_bundle_slices};
use crate::hash::{Hash, TreeSize, empty_root, leaf_hash};
use crate::merkle::{HashReader, Subtree, fold_right, perfect_root, subtrees_for_root};
use crate::tile::{
    EntryBundleId, TILE_HEIGHT, TILE_WIDTH_MAX, TileId, TileLengthError, decode_tile, tile_at,
};

/// Hashes of one tree, read from tiles that were all verified against its root.
#[derive(Clone, Debug)]
pub struct TileHashReader {
    size: TreeSize,
    root: Hash,
    // INVARIANT: every tile here is one of tiles_for_size(size) and hashes up to root.
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
}

/// Why fetched tiles were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileVerifyError {
    #[error("tile {tile} is not one of the tiles of a tree of size {size}")]
    NotInTree { tile: TileId, size: u64 },
    #[error("tile {tile} was given twice")]
    Duplicate { tile: TileId },
    #[error("tile has the wrong length")]
    Length(#[from] TileLengthError),
    #[error("tile {tile} is needed to check the others against the root")]
    Missing { tile: TileId },
    #[error("root given for the empty tree is not the hash of the empty string")]
    EmptyTreeRoot,
    #[error("right-edge tiles do not hash to the root of the tree of size {size}")]
    RootMismatch { size: u64 },
    #[error("tile {tile} does not hash to its entry in tile {parent}")]
    TileMismatch { tile: TileId, parent: TileId },
    #[error("entry bundle {bundle} is not one of the bundles of a tree of size {size}")]
    BundleNotInTree { bundle: EntryBundleId, size: u64 },
    #[error("entry bundle {bundle} could not be decoded")]
    Bundle { bundle: EntryBundleId, source: BundleError },
    #[error("entry bundle {bundle} has {actual} entries, expected {expected}")]
    BundleCount { bundle: EntryBundleId, expected: usize, actual: usize },
    #[error("entry {position} of bundle {bundle} does not hash to its leaf in the tile")]
    BundleEntryMismatch { bundle: EntryBundleId, position: usize },
}

/// Why a hash could not be read from the verified tiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileReadError {
    #[error("subtree at level {level} index {index} is not complete in the tree of size {size}")]
    OutsideTree { level: u8, index: u64, size: u64 },
    #[error("tile {tile} was not given")]
    Missing { tile: TileId },
}

impl TileHashReader {
    /// Checks `tiles` (id and bytes) against the tree of `size` leaves with `root`. All
    /// right-edge partial tiles must be present, and for each full tile the tile above
    /// it; [`tiles_to_verify`] lists what to fetch.
    pub fn new(
        size: TreeSize,
        root: Hash,
        tiles: impl IntoIterator<Item = (TileId, Vec<u8>)>,
    ) -> Result<TileHashReader, TileVerifyError> {
        let mut decoded = BTreeMap::new();
        for (tile, bytes) in tiles {
            if !tile.is_tile_of(size) {
                return Err(TileVerifyError::NotInTree { tile, size: size.0 });
            }
            let hashes = decode_tile(tile, &bytes)?;
            if decoded.insert((tile.level(), tile.index()), hashes).is_some() {
                return Err(TileVerifyError::Duplicate { tile });
            }
        }
        let reader = TileHashReader { size, root, tiles: decoded };
        reader.check_root()?;
        reader.check_full_tiles()?;
        Ok(reader)
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    /// The verified hashes of `tile`, if it was given.
    pub fn tile_hashes(&self, tile: TileId) -> Option<&[Hash]> {
        let hashes = self.tiles.get(&(tile.level(), tile.index()))?;
        (hashes.len() == usize::from(tile.width())).then_some(hashes.as_slice())
    }

    /// Decodes an entry bundle and checks every entry against the verified level-0
    /// tile, returning the entries.
    pub fn verify_bundle(
        &self,
        bundle: EntryBundleId,
        bytes: &[u8],
    ) -> Result<Vec<Vec<u8>>, TileVerifyError> {
        self.verify_bundle_leaves(bundle, bytes)?;
        decode_bundle(bytes).map_err(|source| TileVerifyError::Bundle { bundle, source })
    }

    /// Decodes an entry bundle, hashes each entry once and checks the leaf hash against
    /// the verified level-0 tile; returns the leaf hashes (so a caller recomputing the
    /// root from the entries need not hash them again). Takes `&self` only, so several
    /// threads can check bundles against one reader.
    pub fn verify_bundle_leaves(&self, bundle: EntryBundleId, bytes: &[u8]) -> Result<Vec<Hash>, TileVerifyError> {
        let tile = bundle.tile();
        if !tile.is_tile_of(self.size) {
            return Err(TileVerifyError::BundleNotInTree { bundle, size: self.size.0 });
        }
        let hashes = self.tile_hashes(tile).ok_or(TileVerifyError::Missing { tile })?;
        let entries = decode_bundle_slices(bytes).map_err(|source| TileVerifyError::Bundle { bundle, source })?;
        if entries.len() != hashes.len() {
            return Err(TileVerifyError::BundleCount {
                bundle,
                expected: hashes.len(),
                actual: entries.len(),
            });
        }
        let leaves: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
        if let Some(position) = leaves.iter().zip(hashes).position(|(leaf, hash)| leaf != hash) {
            return Err(TileVerifyError::BundleEntryMismatch { bundle, position });
        }
        Ok(leaves)
    }

    fn check_root(&self) -> Result<(), TileVerifyError> {
        if self.size.0 == 0 {
            if self.root != empty_root() {
                return Err(TileVerifyError::EmptyTreeRoot);
            }
            return Ok(());
        }
        // The subtrees of the root lie in the right-edge partial tiles, one per level.
        let hashes = subtrees_for_root(self.size)
            .iter()
            .map(|subtree| {
                self.subtree_hash(*subtree).map_err(|error| match error {
                    TileReadError::Missing { tile } => TileVerifyError::Missing { tile },
                    // INVARIANT: the root's subtrees are complete within the tree.
                    TileReadError::OutsideTree { .. } => unreachable!("root subtree outside tree"),
                })
            })
            .collect::<Result<Vec<Hash>, TileVerifyError>>()?;
        if fold_right(&hashes) != self.root {
            return Err(TileVerifyError::RootMismatch { size: self.size.0 });
        }
        Ok(())
    }

    fn check_full_tiles(&self) -> Result<(), TileVerifyError> {
        // Top down, so each parent is checked before its children rely on it. The roots
        // are computed first, on several threads for large trees (≈ 255 node hashes per
        // tile, the bulk of verifying a tree); the first mismatch top down is reported.
        let full: Vec<(&(u8, u64), &Vec<Hash>)> =
            self.tiles.iter().rev().filter(|(_, hashes)| hashes.len() == usize::from(TILE_WIDTH_MAX)).collect();
        let roots = tile_roots(&full);
        for (&(&(level, index), _), root) in full.iter().zip(roots) {
            let tile = TileId::new(level, index, TILE_WIDTH_MAX).expect("stored tiles are valid");
            let parent_index = index / u64::from(TILE_WIDTH_MAX);
            // INVARIANT: a full tile's root is a complete node of the tree, so the level
            // above has a tile holding it.
            let parent = tile_at(self.size, level + 1, parent_index).expect("full tile has a parent");
            let parent_hashes = self
                .tile_hashes(parent)
                .ok_or(TileVerifyError::Missing { tile: parent })?;
            let position = (index % u64::from(TILE_WIDTH_MAX)) as usize;
            if root != parent_hashes[position] {
                return Err(TileVerifyError::TileMismatch { tile, parent });
            }
        }
        Ok(())
    }

    fn subtree_hash(&self, subtree: Subtree) -> Result<Hash, TileReadError> {
        let outside = TileReadError::OutsideTree {
            level: subtree.level,
            index: subtree.index,
            size: self.size.0,
        };
        if subtree.end().is_none_or(|end| end > self.size.0) {
            return Err(outside);
        }
        let tile_level = subtree.level / TILE_HEIGHT;
        let levels_inside = subtree.level % TILE_HEIGHT;
        // The subtree's hash is the root of 2^levels_inside consecutive hashes of one
        // tile, aligned within it.
        let first = subtree.index << levels_inside;
        let tile_index = first / u64::from(TILE_WIDTH_MAX);
        let tile = tile_at(self.size, tile_level, tile_index).ok_or(outside)?;
        let hashes = self.tile_hashes(tile).ok_or(TileReadError::Missing { tile })?;
        let start = (first % u64::from(TILE_WIDTH_MAX)) as usize;
        let end = start + (1usize << levels_inside);
        Ok(perfect_root(&hashes[start..end]))
    }
}

impl HashReader for TileHashReader {
    type Error = TileReadError;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, TileReadError> {
        subtrees.iter().map(|subtree| self.subtree_hash(*subtree)).collect()
    }
}

/// Full tiles whose roots [`tile_roots`] computes on one thread; above this, on up to
/// [`TILE_ROOT_THREADS_MAX`] threads.
const TILE_ROOTS_PER_THREAD_MIN: usize = 256;
/// Most threads [`tile_roots`] uses (fewer on machines with fewer cores).
const TILE_ROOT_THREADS_MAX: usize = 8;

/// The perfect roots of `tiles` (full tiles), in order.
fn tile_roots(tiles: &[(&(u8, u64), &Vec<Hash>)]) -> Vec<Hash> {
    let root = |(_, hashes): &(&(u8, u64), &Vec<Hash>)| perfect_root(hashes);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(TILE_ROOT_THREADS_MAX)
        .min(tiles.len() / TILE_ROOTS_PER_THREAD_MIN);
    if threads <= 1 {
        return tiles.iter().map(root).collect();
    }
    let chunk = tiles.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> =
            tiles.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(root).collect::<Vec<Hash>>())).collect();
        // INVARIANT: hashing does not panic, so every worker returns.
        workers.into_iter().flat_map(|worker| worker.join().expect("tile root thread")).collect()
    })
}

/// The tiles a client must fetch so that [`TileHashReader::new`] can verify them and
/// then answer for `subtrees`: the tiles holding them, the tiles above those up to the
/// right edge, and the right-edge tiles. Subtrees outside the tree are skipped.
pub fn tiles_to_verify(size: TreeSize, subtrees: &[Subtree]) -> Vec<TileId> {
    let mut needed = BTreeSet::new();
    for subtree in subtrees_for_root(size).iter().chain(subtrees) {
        if subtree.end().is_none_or(|end| end > size.0) {
            continue;
        }
        let tile_level = subtree.level / TILE_HEIGHT;
        let first = subtree.index << (subtree.level % TILE_HEIGHT);
        let mut current = tile_at(size, tile_level, first / u64::from(TILE_WIDTH_MAX));
        while let Some(tile) = current {
            if !needed.insert(tile) || tile.is_partial() {
                break;
            }
            current = tile_at(size, tile.level() + 1, tile.index() / u64::from(TILE_WIDTH_MAX));
        }
    }
    needed.into_iter().collect()
}
