//! Merkle proofs: generated proofs match a recursive transcription of RFC 6962 §2.1,
//! verify, and fail on any flipped bit; malformed inputs fail with the error that names
//! the problem; the compact range agrees with the full tree.

use proptest::prelude::*;
use tlog::{
    CompactRange, Hash, HashReader, LeafIndex, PROOF_HASHES_MAX, ProofError, ProveError, Subtree, TreeSize,
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, root_from_leaves,
    subtrees_for_consistency_proof, subtrees_for_inclusion_proof, verify_consistency, verify_inclusion,
};

fn leaves(count: u64) -> Vec<Hash> {
    (0..count).map(|index| leaf_hash(&index.to_be_bytes())).collect()
}

fn flip(hash: Hash, bit: usize) -> Hash {
    let mut bytes = hash.0;
    bytes[bit / 8 % 32] ^= 1 << (bit % 8);
    Hash(bytes)
}

// A direct transcription of RFC 6962 §2.1, recursive and slow, to check the iterative
// code against.
fn split(length: usize) -> usize {
    let mut k = 1;
    while k * 2 < length {
        k *= 2;
    }
    k
}

fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        length => {
            let k = split(length);
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    if m < k {
        let mut path = reference_path(m, &leaves[..k]);
        path.push(reference_root(&leaves[k..]));
        path
    } else {
        let mut path = reference_path(m - k, &leaves[k..]);
        path.push(reference_root(&leaves[..k]));
        path
    }
}

fn reference_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![reference_root(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut proof = reference_subproof(m, &leaves[..k], whole);
        proof.push(reference_root(&leaves[k..]));
        proof
    } else {
        let mut proof = reference_subproof(m - k, &leaves[k..], false);
        proof.push(reference_root(&leaves[..k]));
        proof
    }
}

fn reference_consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if m == 0 || m == leaves.len() { Vec::new() } else { reference_subproof(m, leaves, true) }
}

#[test]
fn small_trees_match_the_reference_exhaustively() {
    let all = leaves(40);
    for n in 0..=all.len() {
        let tree = &all[..n];
        let tree_root = root_from_leaves(tree);
        assert_eq!(tree_root, reference_root(tree), "root of {n}");
        for index in 0..n {
            let proof = inclusion_proof(tree, LeafIndex(index as u64), TreeSize(n as u64)).expect("in range");
            assert_eq!(proof, reference_path(index, tree), "path {index} of {n}");
            assert_eq!(
                verify_inclusion(tree[index], LeafIndex(index as u64), TreeSize(n as u64), &proof, tree_root),
                Ok(()),
                "verify path {index} of {n}"
            );
        }
        for m in 0..=n {
            let proof = consistency_proof(tree, TreeSize(m as u64), TreeSize(n as u64)).expect("m <= n");
            assert_eq!(proof, reference_consistency(m, tree), "consistency {m} -> {n}");
            let old_root = root_from_leaves(&tree[..m]);
            assert_eq!(
                verify_consistency(TreeSize(m as u64), TreeSize(n as u64), old_root, tree_root, &proof),
                Ok(()),
                "verify consistency {m} -> {n}"
            );
        }
    }
}

fn check_inclusion(leaf: Hash, index: u64, size: u64, proof: &[Hash], root: Hash, expected: Result<(), ProofError>) {
    assert_eq!(verify_inclusion(leaf, LeafIndex(index), TreeSize(size), proof, root), expected);
}

fn check_consistency(old: u64, new: u64, old_root: Hash, new_root: Hash, proof: &[Hash], expected: Result<(), ProofError>) {
    assert_eq!(verify_consistency(TreeSize(old), TreeSize(new), old_root, new_root, proof), expected);
}

#[test]
fn malformed_inclusion_proofs_are_named() {
    let tree = leaves(5);
    let tree_root = root_from_leaves(&tree);
    let proof = inclusion_proof(tree.as_slice(), LeafIndex(1), TreeSize(5)).expect("in range");
    assert_eq!(proof.len(), 3);
    let mut longer = proof.clone();
    longer.push(tree[0]);

    check_inclusion(tree[1], 1, 5, &proof, tree_root, Ok(()));
    check_inclusion(tree[1], 5, 5, &proof, tree_root, Err(ProofError::IndexOutOfRange { index: 5, size: 5 }));
    check_inclusion(tree[1], 0, 0, &[], empty_root(), Err(ProofError::IndexOutOfRange { index: 0, size: 0 }));
    check_inclusion(tree[1], 1, 5, &longer, tree_root, Err(ProofError::WrongLength { expected: 3, actual: 4 }));
    check_inclusion(tree[1], 1, 5, &proof[..2], tree_root, Err(ProofError::WrongLength { expected: 3, actual: 2 }));
    check_inclusion(tree[2], 1, 5, &proof, tree_root, Err(ProofError::RootMismatch));
    check_inclusion(tree[1], 2, 5, &proof, tree_root, Err(ProofError::RootMismatch));
    check_inclusion(
        tree[1],
        1,
        5,
        &vec![tree[0]; PROOF_HASHES_MAX + 1],
        tree_root,
        Err(ProofError::TooManyHashes { count: 65, max: PROOF_HASHES_MAX }),
    );
    // A one-leaf tree: the leaf is the root and the proof is empty.
    check_inclusion(tree[0], 0, 1, &[], tree[0], Ok(()));
    check_inclusion(tree[0], 0, 1, &[tree[1]], tree[0], Err(ProofError::WrongLength { expected: 0, actual: 1 }));
    // Largest sizes do not overflow.
    check_inclusion(tree[0], u64::MAX - 1, u64::MAX, &[tree[1]; 63], tree[0], Err(ProofError::RootMismatch));
    check_inclusion(tree[0], u64::MAX - 1, u64::MAX, &[tree[1]; 64], tree[0], Err(ProofError::WrongLength { expected: 63, actual: 64 }));
}

#[test]
fn malformed_consistency_proofs_are_named() {
    let tree = leaves(7);
    let root_3 = root_from_leaves(&tree[..3]);
    let root_7 = root_from_leaves(&tree);
    let proof = consistency_proof(tree.as_slice(), TreeSize(3), TreeSize(7)).expect("3 <= 7");
    let empty = empty_root();

    check_consistency(3, 7, root_3, root_7, &proof, Ok(()));
    check_consistency(7, 3, root_7, root_3, &proof, Err(ProofError::OldSizeLarger { old_size: 7, new_size: 3 }));
    check_consistency(3, 7, root_3, root_7, &proof[1..], Err(ProofError::WrongLength { expected: proof.len(), actual: proof.len() - 1 }));
    check_consistency(3, 7, root_7, root_7, &proof, Err(ProofError::OldRootMismatch));
    check_consistency(3, 7, root_3, root_3, &proof, Err(ProofError::NewRootMismatch));
    // Old size 0: consistent with anything, proof must be empty, the old root must be
    // the empty-tree root.
    check_consistency(0, 7, empty, root_7, &[], Ok(()));
    check_consistency(0, 0, empty, empty, &[], Ok(()));
    check_consistency(0, 7, empty, root_7, &[root_3], Err(ProofError::WrongLength { expected: 0, actual: 1 }));
    check_consistency(0, 7, root_3, root_7, &[], Err(ProofError::EmptyTreeRoot));
    check_consistency(0, 0, empty, root_3, &[], Err(ProofError::EmptyTreeRoot));
    // Equal sizes: equal roots, empty proof.
    check_consistency(7, 7, root_7, root_7, &[], Ok(()));
    check_consistency(7, 7, root_7, root_3, &[], Err(ProofError::EqualSizeRootsDiffer));
    check_consistency(7, 7, root_7, root_7, &[root_3], Err(ProofError::WrongLength { expected: 0, actual: 1 }));
    check_consistency(
        3,
        7,
        root_3,
        root_7,
        &vec![root_3; PROOF_HASHES_MAX + 1],
        Err(ProofError::TooManyHashes { count: 65, max: PROOF_HASHES_MAX }),
    );
}

#[test]
fn proof_generation_rejects_bad_sizes() {
    let tree = leaves(4);
    assert!(matches!(
        inclusion_proof(tree.as_slice(), LeafIndex(4), TreeSize(4)),
        Err(ProveError::IndexOutOfRange { index: 4, size: 4 })
    ));
    assert!(matches!(
        consistency_proof(tree.as_slice(), TreeSize(5), TreeSize(4)),
        Err(ProveError::OldSizeLarger { old_size: 5, new_size: 4 })
    ));
    // A reader that lacks the leaves says which subtree it lacks.
    assert!(matches!(
        inclusion_proof(tree.as_slice(), LeafIndex(0), TreeSize(8)),
        Err(ProveError::Reader(tlog::LeavesTooFew { level: 2, index: 1, leaves: 4 }))
    ));
}

/// A reader that answers with one hash too few, to check the count is enforced.
struct ShortReader;

impl HashReader for ShortReader {
    type Error = std::fmt::Error;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, std::fmt::Error> {
        Ok(vec![Hash::default(); subtrees.len() - 1])
    }
}

#[test]
fn reader_returning_too_few_hashes_is_an_error() {
    assert!(matches!(root(&ShortReader, TreeSize(3)), Err(ProveError::ReaderCount { expected: 2, actual: 1 })));
}

#[test]
fn subtree_plans_cover_what_generation_reads() {
    assert_eq!(
        subtrees_for_inclusion_proof(LeafIndex(2), TreeSize(3)),
        vec![Subtree { level: 1, index: 0 }]
    );
    assert_eq!(
        subtrees_for_consistency_proof(TreeSize(3), TreeSize(7)),
        vec![
            Subtree { level: 0, index: 2 },
            Subtree { level: 0, index: 3 },
            Subtree { level: 1, index: 0 },
            Subtree { level: 1, index: 2 },
            Subtree { level: 0, index: 6 },
        ]
    );
    assert!(subtrees_for_inclusion_proof(LeafIndex(3), TreeSize(3)).is_empty());
}

fn sizes_and_index() -> impl Strategy<Value = (u64, u64, u64, usize)> {
    (1u64..=2000)
        .prop_flat_map(|new| (1..=new, Just(new)))
        .prop_flat_map(|(old, new)| (Just(old), Just(new), 0..new, 0usize..256))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_proofs_verify_and_any_flipped_bit_fails((_, size, index, bit) in sizes_and_index()) {
        let tree = leaves(size);
        let tree_root = root_from_leaves(&tree);
        let leaf = tree[index as usize];
        let proof = inclusion_proof(tree.as_slice(), LeafIndex(index), TreeSize(size)).expect("in range");
        prop_assert_eq!(&proof, &reference_path(index as usize, &tree));
        prop_assert_eq!(verify_inclusion(leaf, LeafIndex(index), TreeSize(size), &proof, tree_root), Ok(()));

        prop_assert!(verify_inclusion(flip(leaf, bit), LeafIndex(index), TreeSize(size), &proof, tree_root).is_err());
        prop_assert!(verify_inclusion(leaf, LeafIndex(index), TreeSize(size), &proof, flip(tree_root, bit)).is_err());
        for position in 0..proof.len() {
            let mut tampered = proof.clone();
            tampered[position] = flip(tampered[position], bit + position * 37);
            prop_assert_eq!(
                verify_inclusion(leaf, LeafIndex(index), TreeSize(size), &tampered, tree_root),
                Err(ProofError::RootMismatch)
            );
        }
    }

    #[test]
    fn consistency_proofs_verify_and_any_flipped_bit_fails((old, new, _, bit) in sizes_and_index()) {
        let tree = leaves(new);
        let old_root = root_from_leaves(&tree[..old as usize]);
        let new_root = root_from_leaves(&tree);
        let proof = consistency_proof(tree.as_slice(), TreeSize(old), TreeSize(new)).expect("old <= new");
        prop_assert_eq!(&proof, &reference_consistency(old as usize, &tree));
        prop_assert_eq!(verify_consistency(TreeSize(old), TreeSize(new), old_root, new_root, &proof), Ok(()));

        prop_assert!(verify_consistency(TreeSize(old), TreeSize(new), flip(old_root, bit), new_root, &proof).is_err());
        prop_assert!(verify_consistency(TreeSize(old), TreeSize(new), old_root, flip(new_root, bit), &proof).is_err());
        for position in 0..proof.len() {
            let mut tampered = proof.clone();
            tampered[position] = flip(tampered[position], bit + position * 37);
            prop_assert!(verify_consistency(TreeSize(old), TreeSize(new), old_root, new_root, &tampered).is_err());
        }
    }

    #[test]
    fn compact_range_matches_the_tree(size in 0u64..=2000, checkpoints in proptest::collection::vec(0u64..=2000, 4)) {
        let tree = leaves(size);
        let mut range = CompactRange::new();
        let mut reported = Vec::new();
        for (index, leaf) in tree.iter().enumerate() {
            if checkpoints.contains(&(index as u64)) {
                prop_assert_eq!(range.root(), root_from_leaves(&tree[..index]));
            }
            range.append_reporting(*leaf, |subtree, hash| reported.push((subtree, hash)));
        }
        prop_assert_eq!(range.size(), TreeSize(size));
        prop_assert_eq!(range.root(), root_from_leaves(&tree));
        // Every complete subtree was reported exactly once, with its hash.
        prop_assert_eq!(reported.len() as u64, 2 * size - u64::from(size.count_ones()));
        let subtrees: Vec<Subtree> = reported.iter().map(|(subtree, _)| *subtree).collect();
        let expected = tree.as_slice().subtree_hashes(&subtrees).expect("reported subtrees exist");
        let hashes: Vec<Hash> = reported.iter().map(|(_, hash)| *hash).collect();
        prop_assert_eq!(hashes, expected);
        // Restoring from the stored right edge gives the same frontier.
        let edge = tree.as_slice().subtree_hashes(&CompactRange::subtrees(TreeSize(size))).expect("edge exists");
        let restored = CompactRange::from_parts(TreeSize(size), edge).expect("right count");
        prop_assert_eq!(restored, range);
    }

    #[test]
    fn compact_range_takes_aligned_subtrees(chunks in proptest::collection::vec((0u8..=4, 0u64..=3), 0..12)) {
        // Appending a run of complete subtrees (each aligned where the tree ends) gives the
        // same frontier as appending their leaves one by one.
        let mut by_subtree = CompactRange::new();
        let mut by_leaf = CompactRange::new();
        let mut next_leaf = 0u64;
        for (level, leaves_first) in chunks {
            // A few single leaves first, then pad to the alignment the subtree needs.
            for _ in 0..leaves_first {
                let leaf = leaf_hash(&next_leaf.to_be_bytes());
                by_subtree.append(leaf);
                by_leaf.append(leaf);
                next_leaf += 1;
            }
            let span = 1u64 << level;
            if next_leaf % span != 0 {
                prop_assert!(by_subtree.append_subtree(level, Hash::default()).is_err());
                while next_leaf % span != 0 {
                    let leaf = leaf_hash(&next_leaf.to_be_bytes());
                    by_subtree.append(leaf);
                    by_leaf.append(leaf);
                    next_leaf += 1;
                }
            }
            let subtree = leaves(next_leaf + span)[next_leaf as usize..].to_vec();
            prop_assert_eq!(by_subtree.append_subtree(level, root_from_leaves(&subtree)), Ok(()));
            by_leaf.extend(&subtree);
            next_leaf += span;
        }
        prop_assert_eq!(by_subtree.root(), by_leaf.root());
        prop_assert_eq!(by_subtree, by_leaf);
    }
}

#[test]
fn compact_range_rejects_a_wrong_edge() {
    let error = CompactRange::from_parts(TreeSize(7), vec![Hash::default(); 2]).expect_err("7 has three set bits");
    assert_eq!(error.to_string(), "a tree of size 7 has 3 right-edge hashes, 2 given");
}
