//! The right edge of a growing tree: one hash per set bit of the size, enough to append
//! leaves and compute the root in O(log n) memory. The sequencer keeps one per log and
//! feeds it each batch of leaf hashes.

use crate::hash::{Hash, TreeSize, node_hash};
use crate::merkle::{Subtree, fold_right, subtrees_for_root};

/// The frontier of a tree: the hashes of the complete subtrees that make up its root,
/// largest (leftmost) first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    // INVARIANT: hashes.len() == size.count_ones(), and hashes[i] is the hash of
    // subtrees_for_root(size)[i].
    hashes: Vec<Hash>,
}

/// The hashes given do not describe the right edge of a tree of that size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tree of size {size} has {expected} right-edge hashes, {actual} given")]
pub struct CompactRangeError {
    pub size: u64,
    pub expected: usize,
    pub actual: usize,
}

/// A subtree appended to a [`CompactRange`] does not start where the tree ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a subtree of 2^{level} leaves cannot be appended to a tree of size {size}")]
pub struct SubtreeUnaligned {
    pub size: u64,
    pub level: u8,
}

impl CompactRange {
    /// The frontier of the empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Restores a frontier from stored hashes of the subtrees
    /// [`CompactRange::subtrees`] lists for `size`, in that order.
    pub fn from_parts(size: TreeSize, hashes: Vec<Hash>) -> Result<CompactRange, CompactRangeError> {
        let expected = size.0.count_ones() as usize;
        if hashes.len() != expected {
            return Err(CompactRangeError { size: size.0, expected, actual: hashes.len() });
        }
        Ok(CompactRange { size: size.0, hashes })
    }

    /// The subtrees whose hashes form the frontier of a tree of `size` leaves, largest
    /// first; load these to call [`CompactRange::from_parts`].
    pub fn subtrees(size: TreeSize) -> Vec<Subtree> {
        subtrees_for_root(size)
    }

    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// The frontier hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The RFC 6962 root of the tree so far.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }

    /// Appends one leaf hash.
    pub fn append(&mut self, leaf: Hash) {
        self.append_reporting(leaf, |_, _| {});
    }

    /// Appends leaf hashes in order.
    pub fn extend(&mut self, leaves: &[Hash]) {
        for leaf in leaves {
            self.append(*leaf);
        }
    }

    /// Appends the hash of a complete subtree of `2^level` leaves, which must start where
    /// the tree ends (the size a multiple of `2^level`): a verifier that hashed a full
    /// entry bundle on another thread hands over the bundle's root instead of its leaves.
    pub fn append_subtree(&mut self, level: u8, hash: Hash) -> Result<(), SubtreeUnaligned> {
        let unaligned = SubtreeUnaligned { size: self.size, level };
        let span = 1u64.checked_shl(u32::from(level)).ok_or(unaligned)?;
        if self.size % span != 0 || self.size.checked_add(span).is_none() {
            return Err(unaligned);
        }
        let mut index = self.size >> level;
        let mut hash = hash;
        // As in `append_reporting`: each trailing one bit above `level` merges.
        while index & 1 == 1 {
            // INVARIANT: a set bit of the size has a frontier hash.
            let left = self.hashes.pop().expect("frontier has a hash per set bit");
            hash = node_hash(&left, &hash);
            index >>= 1;
        }
        self.hashes.push(hash);
        self.size += span;
        Ok(())
    }

    /// Appends one leaf hash and reports every complete subtree it completes, starting
    /// with the leaf itself at level 0, so the caller can store the hashes that tiles
    /// and proofs will read.
    pub fn append_reporting(&mut self, leaf: Hash, mut report: impl FnMut(Subtree, Hash)) {
        // A tree of 2^64 - 1 leaves cannot be reached by appending one at a time.
        assert!(self.size < u64::MAX, "tree is full");
        let index = self.size;
        let mut hash = leaf;
        let mut level = 0u8;
        report(Subtree { level, index }, hash);
        // Each trailing one bit of the old size is a frontier subtree of the same size as
        // the one just completed, so the two merge.
        while (index >> level) & 1 == 1 {
            // INVARIANT: a set bit of the size has a frontier hash.
            let left = self.hashes.pop().expect("frontier has a hash per set bit");
            hash = node_hash(&left, &hash);
            level += 1;
            report(Subtree { level, index: index >> level }, hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }
}
