//! Merkle tree math of RFC 6962 §2.1: tree roots, audit paths and consistency proofs,
//! computed from the hashes of complete subtrees that a [`HashReader`] supplies.
//!
//! Every RFC 6962 subtree `D[a:b]` that a root or proof needs starts at a multiple of the
//! largest power of two below its length, so its hash is a right-to-left fold of the
//! hashes of complete (perfect) subtrees. Proof generation therefore first plans which
//! complete subtrees it needs, asks the reader for all of them in one call (a store can
//! answer with one query), and then folds.

use crate::hash::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash, node_hash};
use crate::tile::TileId;

/// The most hashes accepted in one proof. An inclusion proof in a tree of fewer than
/// 2^64 leaves has at most 64 hashes; a consistency proof needs more only in trees of
/// more than 2^63 leaves (tlog-witness itself allows 63 lines). The limit stops a peer
/// from making a verifier hash without end.
pub const PROOF_HASHES_MAX: usize = 64;

/// A complete subtree of `2^level` leaves, the `index`-th one at that level: it covers
/// leaves `[index * 2^level, (index + 1) * 2^level)`. Level 0 subtrees are leaves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Subtree {
    pub level: u8,
    pub index: u64,
}

/// Supplies hashes of complete subtrees of one tree. The store implements it over the
/// hashes it persisted, [`crate::TileHashReader`] over verified tiles, and slices of leaf
/// hashes (`[Hash]`) compute them on the fly for tests.
pub trait HashReader {
    type Error: std::error::Error + 'static;

    /// Returns the hashes of `subtrees`, in the same order and as many.
    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, Self::Error>;
}

/// Why a root or proof could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E: std::error::Error + 'static> {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeLarger { old_size: u64, new_size: u64 },
    #[error("tile {tile} is not within the tree of size {size}")]
    TileOutsideTree { tile: TileId, size: u64 },
    #[error("hash reader returned {actual} hashes for {expected} subtrees")]
    ReaderCount { expected: usize, actual: usize },
    #[error("failed to read subtree hashes")]
    Reader(#[source] E),
}

/// A slice of leaf hashes is missing a subtree that was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subtree at level {level} index {index} lies beyond the {leaves} leaves given")]
pub struct LeavesTooFew {
    pub level: u8,
    pub index: u64,
    pub leaves: u64,
}

impl Subtree {
    /// The first leaf this subtree covers, or `None` if that does not fit in a u64.
    pub fn start(&self) -> Option<u64> {
        self.index.checked_mul(1u64.checked_shl(u32::from(self.level))?)
    }

    /// One past the last leaf this subtree covers, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.index
            .checked_add(1)?
            .checked_mul(1u64.checked_shl(u32::from(self.level))?)
    }
}

impl HashReader for [Hash] {
    type Error = LeavesTooFew;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, LeavesTooFew> {
        subtrees
            .iter()
            .map(|subtree| {
                let missing = LeavesTooFew {
                    level: subtree.level,
                    index: subtree.index,
                    leaves: self.len() as u64,
                };
                let (Some(start), Some(end)) = (subtree.start(), subtree.end()) else {
                    return Err(missing);
                };
                if end > self.len() as u64 {
                    return Err(missing);
                }
                // INVARIANT: end <= len, so both fit in usize.
                Ok(perfect_root(&self[start as usize..end as usize]))
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    type Error = LeavesTooFew;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, LeavesTooFew> {
        self.as_slice().subtree_hashes(subtrees)
    }
}

/// The RFC 6962 Merkle Tree Hash of a list of entries.
pub fn root_from_entries<T: AsRef<[u8]>>(entries: &[T]) -> Hash {
    let leaves: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry.as_ref())).collect();
    root_from_leaves(&leaves)
}

/// The RFC 6962 Merkle Tree Hash of a tree whose leaf hashes are given.
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    match root(leaves, TreeSize(leaves.len() as u64)) {
        Ok(root) => root,
        // INVARIANT: the size is the slice length, so every subtree asked for exists.
        Err(error) => unreachable!("leaf slice cannot miss its own subtrees: {error}"),
    }
}

/// The root of the tree of `size` leaves, from complete-subtree hashes.
pub fn root<R: HashReader + ?Sized>(reader: &R, size: TreeSize) -> Result<Hash, ProveError<R::Error>> {
    if size.0 == 0 {
        return Ok(empty_root());
    }
    let mut hashes = read_ranges(reader, &[(0, size.0)])?;
    Ok(hashes.remove(0))
}

/// The RFC 6962 §2.1.1 audit path for the leaf at `index` in the tree of `size` leaves,
/// leaf sibling first.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    reader: &R,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if index.0 >= size.0 {
        return Err(ProveError::IndexOutOfRange { index: index.0, size: size.0 });
    }
    read_ranges(reader, &inclusion_ranges(index.0, size.0))
}

/// The RFC 6962 §2.1.2 consistency proof from the tree of `old_size` leaves to the tree
/// of `new_size` leaves. Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof<R: HashReader + ?Sized>(
    reader: &R,
    old_size: TreeSize,
    new_size: TreeSize,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if old_size.0 > new_size.0 {
        return Err(ProveError::OldSizeLarger { old_size: old_size.0, new_size: new_size.0 });
    }
    read_ranges(reader, &consistency_ranges(old_size.0, new_size.0))
}

/// The complete subtrees whose hashes [`inclusion_proof`] reads, so a client can work
/// out which tiles to fetch. Empty if `index` is not below `size`.
pub fn subtrees_for_inclusion_proof(index: LeafIndex, size: TreeSize) -> Vec<Subtree> {
    if index.0 >= size.0 {
        return Vec::new();
    }
    ranges_subtrees(&inclusion_ranges(index.0, size.0))
}

/// The complete subtrees whose hashes [`consistency_proof`] reads. Empty if
/// `old_size > new_size`.
pub fn subtrees_for_consistency_proof(old_size: TreeSize, new_size: TreeSize) -> Vec<Subtree> {
    if old_size.0 > new_size.0 {
        return Vec::new();
    }
    ranges_subtrees(&consistency_ranges(old_size.0, new_size.0))
}

/// The complete subtrees whose hashes make up the root of a tree of `size` leaves,
/// largest (leftmost) first: one per set bit of `size`. This is also the right edge that
/// [`crate::CompactRange`] keeps.
pub fn subtrees_for_root(size: TreeSize) -> Vec<Subtree> {
    if size.0 == 0 {
        return Vec::new();
    }
    range_subtrees(0, size.0)
}

/// Root of a perfect tree whose leaf count is a power of two. Used for subtrees computed
/// from leaves and for hashing full tiles.
pub(crate) fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
    }
    level[0]
}

/// Folds complete-subtree hashes, largest (leftmost) first, into the hash of the range
/// they cover: RFC 6962 always splits off the largest power of two on the left, so the
/// rightmost pieces combine first.
pub(crate) fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iterator = hashes.iter().rev();
    let Some(last) = iterator.next() else {
        return empty_root();
    };
    iterator.fold(*last, |right, left| node_hash(left, &right))
}

/// The largest power of two strictly below `length`; `length` must be at least 2.
fn split_point(length: u64) -> u64 {
    debug_assert!(length >= 2);
    1 << (63 - (length - 1).leading_zeros())
}

/// The leaf ranges `[start, end)` whose hashes form the audit path, leaf sibling first.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let (mut low, mut high) = (0, size);
    let mut ranges = Vec::new();
    while high - low > 1 {
        let middle = low + split_point(high - low);
        if index < middle {
            ranges.push((middle, high));
            high = middle;
        } else {
            ranges.push((low, middle));
            low = middle;
        }
    }
    ranges.reverse();
    ranges
}

/// The leaf ranges whose hashes form the RFC 6962 `SUBPROOF(m, D[n], true)`, deepest
/// first.
fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<(u64, u64)> {
    if old_size == 0 || old_size == new_size {
        return Vec::new();
    }
    let (mut low, mut high) = (0, new_size);
    let mut whole_old_tree_known = true;
    let mut ranges = Vec::new();
    loop {
        if old_size == high {
            if !whole_old_tree_known {
                ranges.push((low, high));
            }
            break;
        }
        let middle = low + split_point(high - low);
        if old_size <= middle {
            ranges.push((middle, high));
            high = middle;
        } else {
            ranges.push((low, middle));
            low = middle;
            whole_old_tree_known = false;
        }
    }
    ranges.reverse();
    ranges
}

/// Splits `[start, end)` into complete subtrees, largest first. `start` must be a
/// multiple of the largest power of two not above the length, which holds for every
/// range RFC 6962 hashes.
fn range_subtrees(start: u64, end: u64) -> Vec<Subtree> {
    let mut subtrees = Vec::new();
    let mut cursor = start;
    let length = end - start;
    for level in (0..64u8).rev() {
        let span = 1u64 << level;
        if length & span != 0 {
            debug_assert_eq!(cursor % span, 0, "range start not aligned");
            subtrees.push(Subtree { level, index: cursor >> level });
            cursor += span;
        }
    }
    subtrees
}

fn ranges_subtrees(ranges: &[(u64, u64)]) -> Vec<Subtree> {
    ranges.iter().flat_map(|&(start, end)| range_subtrees(start, end)).collect()
}

/// Reads every complete subtree the ranges need in one call and folds each range.
fn read_ranges<R: HashReader + ?Sized>(
    reader: &R,
    ranges: &[(u64, u64)],
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let per_range: Vec<Vec<Subtree>> =
        ranges.iter().map(|&(start, end)| range_subtrees(start, end)).collect();
    let all: Vec<Subtree> = per_range.iter().flatten().copied().collect();
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.subtree_hashes(&all).map_err(ProveError::Reader)?;
    if hashes.len() != all.len() {
        return Err(ProveError::ReaderCount { expected: all.len(), actual: hashes.len() });
    }
    let mut offset = 0;
    Ok(per_range
        .iter()
        .map(|subtrees| {
            let folded = fold_right(&hashes[offset..offset + subtrees.len()]);
            offset += subtrees.len();
            folded
        })
        .collect())
}
