//! Verification of inclusion and consistency proofs, following RFC 9162 §2.1.3.2 and
//! §2.1.4.2, plus the edge cases those algorithms leave out (an empty old tree, equal
//! sizes) as tlog-witness v1.0.0 spells them.
//!
//! The expected proof length is worked out from the sizes before any hashing, so a
//! proof that is too short or too long is reported as such rather than as a root
//! mismatch.

use crate::hash::{Hash, LeafIndex, TreeSize, empty_root, node_hash};
use crate::merkle::PROOF_HASHES_MAX;

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof has {count} hashes, more than the limit of {max}")]
    TooManyHashes { count: usize, max: usize },
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeLarger { old_size: u64, new_size: u64 },
    #[error("proof has {actual} hashes, a proof for these sizes has {expected}")]
    WrongLength { expected: usize, actual: usize },
    #[error("root given for the empty tree is not the hash of the empty string")]
    EmptyTreeRoot,
    #[error("proof does not lead from the leaf to the root")]
    RootMismatch,
    #[error("trees of equal size have different roots")]
    EqualSizeRootsDiffer,
    #[error("proof does not reproduce the old root")]
    OldRootMismatch,
    #[error("proof does not reproduce the new root")]
    NewRootMismatch,
}

/// Checks that `leaf` is the leaf hash at `index` in the tree of `size` leaves with
/// `root`, given its audit path (leaf sibling first).
pub fn verify_inclusion(
    leaf: Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: Hash,
) -> Result<(), ProofError> {
    check_count(proof)?;
    if index.0 >= size.0 {
        return Err(ProofError::IndexOutOfRange { index: index.0, size: size.0 });
    }
    let expected = path_length(index.0, size.0 - 1);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, actual: proof.len() });
    }
    let mut walk = Walk { first: index.0, second: size.0 - 1 };
    let mut computed = leaf;
    for sibling in proof {
        match walk.step() {
            Side::Left => computed = node_hash(sibling, &computed),
            Side::Right => computed = node_hash(&computed, sibling),
        }
    }
    if computed != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with `new_root` extends the tree of
/// `old_size` leaves with `old_root`. An empty old tree is consistent with every tree and
/// needs an empty proof; equal sizes need equal roots and an empty proof. A root given
/// for a size of 0 must be the empty-tree root.
pub fn verify_consistency(
    old_size: TreeSize,
    new_size: TreeSize,
    old_root: Hash,
    new_root: Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    check_count(proof)?;
    if old_size.0 > new_size.0 {
        return Err(ProofError::OldSizeLarger { old_size: old_size.0, new_size: new_size.0 });
    }
    if old_size.0 == 0 {
        // The empty tree has exactly one root, so any other value is a forgery even
        // though no proof is needed.
        let empty = empty_root();
        if old_root != empty || (new_size.0 == 0 && new_root != empty) {
            return Err(ProofError::EmptyTreeRoot);
        }
        return expect_empty(proof);
    }
    if old_size.0 == new_size.0 {
        expect_empty(proof)?;
        if old_root != new_root {
            return Err(ProofError::EqualSizeRootsDiffer);
        }
        return Ok(());
    }

    // RFC 9162 §2.1.4.2 step 1: a power-of-two old tree is a complete subtree of the
    // new one, so its root is the proof's implied first hash.
    let old_is_subtree = old_size.0.is_power_of_two();
    let mut walk = Walk { first: old_size.0 - 1, second: new_size.0 - 1 };
    // Step 3: skip the levels where the old tree's last node is a right child that is
    // also complete in the new tree.
    while walk.first & 1 == 1 {
        walk.shift();
    }
    let expected = usize::from(!old_is_subtree) + path_length(walk.first, walk.second);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, actual: proof.len() });
    }

    let (seed, rest) = if old_is_subtree {
        (old_root, proof)
    } else {
        // INVARIANT: expected >= 1 here, and proof.len() == expected.
        (proof[0], &proof[1..])
    };
    let mut old_computed = seed;
    let mut new_computed = seed;
    for sibling in rest {
        match walk.step() {
            Side::Left => {
                old_computed = node_hash(sibling, &old_computed);
                new_computed = node_hash(sibling, &new_computed);
            }
            Side::Right => new_computed = node_hash(&new_computed, sibling),
        }
    }
    if old_computed != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_computed != new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

fn check_count(proof: &[Hash]) -> Result<(), ProofError> {
    if proof.len() > PROOF_HASHES_MAX {
        return Err(ProofError::TooManyHashes { count: proof.len(), max: PROOF_HASHES_MAX });
    }
    Ok(())
}

fn expect_empty(proof: &[Hash]) -> Result<(), ProofError> {
    if !proof.is_empty() {
        return Err(ProofError::WrongLength { expected: 0, actual: proof.len() });
    }
    Ok(())
}

/// Which side the next proof hash goes on.
enum Side {
    Left,
    Right,
}

/// The `fn`/`sn` pair of the RFC 9162 algorithms: the position of the node being
/// computed and of the last node at the same level.
struct Walk {
    first: u64,
    second: u64,
}

impl Walk {
    fn shift(&mut self) {
        self.first >>= 1;
        self.second >>= 1;
    }

    /// One iteration of the RFC 9162 loop: where the sibling goes, then the shifts.
    fn step(&mut self) -> Side {
        let side = if self.first & 1 == 1 || self.first == self.second {
            // A right child, or the last node of its level: levels where it has no right
            // sibling are skipped, since RFC 6962 promotes such nodes unchanged.
            if self.first & 1 == 0 {
                while self.first & 1 == 0 && self.first != 0 {
                    self.shift();
                }
            }
            Side::Left
        } else {
            Side::Right
        };
        self.shift();
        side
    }
}

/// How many hashes the RFC 9162 loop consumes from `(first, second)` until `second`
/// reaches 0.
fn path_length(first: u64, second: u64) -> usize {
    let mut walk = Walk { first, second };
    let mut count = 0;
    while walk.second != 0 {
        walk.step();
        count += 1;
    }
    count
}
