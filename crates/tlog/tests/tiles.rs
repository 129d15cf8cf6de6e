//! Tiles and entry bundles: path spelling and parsing, which tiles a tree size has
//! (including the tlog-tiles example of size 70,000), and the verifier-side tile reader,
//! which must reject any tile that does not hash up to the signed root.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use proptest::prelude::*;
use tlog::{
    BundleError, CompactRange, HashReader, LeavesTooFew, Subtree, ENTRY_BYTES_MAX, EntryBundleId, Hash, LeafIndex, ProveError, TileHashReader, TileId, TilePathError,
    TileReadError, TileResource, TileVerifyError, TreeSize, bundles_for_size, consistency_proof, decode_bundle,
    decode_tile, encode_bundle, encode_tile, inclusion_proof, leaf_hash, parse_path, root_from_leaves,
    subtrees_for_consistency_proof, subtrees_for_inclusion_proof, tile_hashes, tiles_added, tiles_for_size,
    tiles_to_verify, verify_consistency, verify_inclusion,
};

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId::new(level, index, width).expect("valid tile")
}

fn entries(count: u64) -> Vec<Vec<u8>> {
    (0..count).map(|index| format!("entry {index}").into_bytes()).collect()
}

fn leaves_of(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|entry| leaf_hash(entry)).collect()
}

fn check_path(tile: TileId, expected: &str) {
    assert_eq!(tile.path(), expected);
    assert_eq!(parse_path(expected), Ok(TileResource::Hashes(tile)), "{expected}");
}

fn check_bundle_path(bundle: EntryBundleId, expected: &str) {
    assert_eq!(bundle.path(), expected);
    assert_eq!(parse_path(expected), Ok(TileResource::Entries(bundle)), "{expected}");
}

fn check_rejected(path: &str, expected: TilePathError) {
    assert_eq!(parse_path(path), Err(expected), "{path}");
}

#[test]
fn tile_paths() {
    check_path(tile(0, 0, 256), "tile/0/000");
    check_path(tile(0, 5, 256), "tile/0/005");
    check_path(tile(1, 999, 256), "tile/1/999");
    check_path(tile(2, 1000, 256), "tile/2/x001/000");
    check_path(tile(0, 1_234_067, 256), "tile/0/x001/x234/067");
    check_path(tile(0, 1_234_067, 5), "tile/0/x001/x234/067.p/5");
    check_path(tile(3, 0, 1), "tile/3/000.p/1");
    check_path(tile(63, 7, 255), "tile/63/007.p/255");
    check_path(tile(0, u64::MAX, 256), "tile/0/x018/x446/x744/x073/x709/x551/615");
    check_bundle_path(EntryBundleId::new(1_234_067, 256).expect("valid"), "tile/entries/x001/x234/067");
    check_bundle_path(EntryBundleId::new(273, 112).expect("valid"), "tile/entries/273.p/112");
}

#[test]
fn malformed_tile_paths_are_rejected() {
    check_rejected("tiles/0/000", TilePathError::Prefix);
    check_rejected("0/000", TilePathError::Prefix);
    check_rejected("tile/00/000", TilePathError::Level { text: "00".into() });
    check_rejected("tile/01/000", TilePathError::Level { text: "01".into() });
    check_rejected("tile/64/000", TilePathError::Level { text: "64".into() });
    check_rejected("tile/+1/000", TilePathError::Level { text: "+1".into() });
    check_rejected("tile/0", TilePathError::Level { text: "0".into() });
    check_rejected("tile/0/000.p/0", TilePathError::Width { text: "0".into() });
    check_rejected("tile/0/000.p/256", TilePathError::Width { text: "256".into() });
    check_rejected("tile/0/000.p/05", TilePathError::Width { text: "05".into() });
    check_rejected("tile/0/000.p/", TilePathError::Width { text: "".into() });
    check_rejected("tile/0/000.p/5/", TilePathError::Width { text: "5/".into() });
    check_rejected("tile/0/5", TilePathError::IndexElement { element: "5".into() });
    check_rejected("tile/0/0005", TilePathError::IndexElement { element: "0005".into() });
    check_rejected("tile/0/001/234", TilePathError::IndexElement { element: "001".into() });
    check_rejected("tile/0/x001/x234", TilePathError::IndexElement { element: "x234".into() });
    check_rejected("tile/0/x1/234", TilePathError::IndexElement { element: "x1".into() });
    check_rejected("tile/0/x00a/234", TilePathError::IndexElement { element: "x00a".into() });
    check_rejected("tile/0/", TilePathError::IndexElement { element: "".into() });
    check_rejected("tile/0/x000/005", TilePathError::IndexLeadingZero);
    check_rejected("tile/0/x018/x446/x744/x073/x709/x551/616", TilePathError::IndexOverflow);
    check_rejected("tile/entries/x000/001", TilePathError::IndexLeadingZero);
    check_rejected("tile/entries/001.p/256", TilePathError::Width { text: "256".into() });
}

#[test]
fn tile_ids_enforce_their_limits() {
    assert!(TileId::new(64, 0, 256).is_err());
    assert!(TileId::new(0, 0, 0).is_err());
    assert!(TileId::new(0, 0, 257).is_err());
    assert!(EntryBundleId::new(0, 0).is_err());
    assert!(!tile(0, 0, 256).is_partial());
    assert!(tile(0, 0, 255).is_partial());
}

#[test]
fn tiles_for_size_70000_match_the_spec_example() {
    let tiles = tiles_for_size(TreeSize(70_000));
    let level_0_full = tiles.iter().filter(|tile| tile.level() == 0 && !tile.is_partial()).count();
    assert_eq!(level_0_full, 273);
    let rest: Vec<TileId> = tiles.iter().copied().filter(|tile| tile.level() > 0 || tile.is_partial()).collect();
    assert_eq!(rest, vec![tile(0, 273, 112), tile(1, 0, 256), tile(1, 1, 17), tile(2, 0, 1)]);
    assert_eq!(tiles.len(), 277);
    assert_eq!(bundles_for_size(TreeSize(70_000)).len(), 274);
    assert_eq!(bundles_for_size(TreeSize(70_000))[273], EntryBundleId::new(273, 112).expect("valid"));
}

#[test]
fn tiles_for_small_sizes() {
    assert_eq!(tiles_for_size(TreeSize(0)), vec![]);
    assert_eq!(tiles_for_size(TreeSize(1)), vec![tile(0, 0, 1)]);
    assert_eq!(tiles_for_size(TreeSize(255)), vec![tile(0, 0, 255)]);
    // The spec: "a tree of size 256 will be represented by a full level 0 tile and a
    // partial level 1 tile of width 1".
    assert_eq!(tiles_for_size(TreeSize(256)), vec![tile(0, 0, 256), tile(1, 0, 1)]);
    assert_eq!(tiles_for_size(TreeSize(257)), vec![tile(0, 0, 256), tile(0, 1, 1), tile(1, 0, 1)]);
    // At the largest size only the level-0 partial tile changes, and the top tile sits
    // at level 7: no arithmetic overflows on the way.
    assert_eq!(tiles_added(TreeSize(u64::MAX - 1), TreeSize(u64::MAX)), vec![tile(0, u64::MAX >> 8, 255)]);
    assert!(tile(7, 0, 255).is_tile_of(TreeSize(u64::MAX)));
    assert!(!tile(8, 0, 1).is_tile_of(TreeSize(u64::MAX)));
}

proptest! {
    #[test]
    fn tiles_added_is_the_set_difference(old in 0u64..200_000, growth in 0u64..100_000) {
        let new = old + growth;
        let old_set: BTreeSet<TileId> = tiles_for_size(TreeSize(old)).into_iter().collect();
        let new_set: BTreeSet<TileId> = tiles_for_size(TreeSize(new)).into_iter().collect();
        let added: BTreeSet<TileId> = tiles_added(TreeSize(old), TreeSize(new)).into_iter().collect();
        let expected: BTreeSet<TileId> = new_set.difference(&old_set).copied().collect();
        prop_assert_eq!(added, expected);
        for tile in &new_set {
            prop_assert!(tile.is_tile_of(TreeSize(new)));
            prop_assert!(tile.is_within(TreeSize(new)));
        }
    }

    #[test]
    fn tile_paths_round_trip(level in 0u8..=63, index in any::<u64>(), width in 1u16..=256) {
        let tile = tile(level, index, width);
        prop_assert_eq!(parse_path(&tile.path()), Ok(TileResource::Hashes(tile)));
        let bundle = EntryBundleId::new(index, width).expect("valid");
        prop_assert_eq!(parse_path(&bundle.path()), Ok(TileResource::Entries(bundle)));
    }

    #[test]
    fn bundles_round_trip(bundle in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..=256)) {
        let bytes = encode_bundle(&bundle).expect("entries are short");
        prop_assert_eq!(decode_bundle(&bytes), Ok(bundle));
    }
}

/// Every complete subtree hash of a tree, recorded while appending, as a log's store
/// keeps them; far cheaper than recomputing subtrees from leaves.
struct StoredHashes(HashMap<Subtree, Hash>);

impl StoredHashes {
    fn new(leaves: &[Hash]) -> StoredHashes {
        let mut stored = HashMap::new();
        let mut range = CompactRange::new();
        for leaf in leaves {
            range.append_reporting(*leaf, |subtree, hash| {
                stored.insert(subtree, hash);
            });
        }
        StoredHashes(stored)
    }
}

impl HashReader for StoredHashes {
    type Error = LeavesTooFew;

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, LeavesTooFew> {
        subtrees
            .iter()
            .map(|subtree| {
                self.0.get(subtree).copied().ok_or(LeavesTooFew { level: subtree.level, index: subtree.index, leaves: 0 })
            })
            .collect()
    }
}

/// A tree as a log serves it: entries, leaf hashes, root, and every tile.
struct ServedTree {
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    root: Hash,
    tiles: Vec<(TileId, Vec<u8>)>,
    stored: StoredHashes,
}

impl ServedTree {
    fn new(size: u64) -> ServedTree {
        let entries = entries(size);
        let leaves = leaves_of(&entries);
        let stored = StoredHashes::new(&leaves);
        let tree_size = TreeSize(size);
        let root = tlog::root(&stored, tree_size).expect("all hashes stored");
        let tiles = tiles_for_size(tree_size)
            .into_iter()
            .map(|tile| {
                let hashes = tile_hashes(&stored, tree_size, tile).expect("tile is in the tree");
                (tile, encode_tile(&hashes))
            })
            .collect();
        ServedTree { entries, leaves, root, tiles, stored }
    }
}

/// The tlog-tiles example size, built once: debug-build hashing is slow.
fn tree_70000() -> &'static ServedTree {
    static TREE: OnceLock<ServedTree> = OnceLock::new();
    TREE.get_or_init(|| ServedTree::new(70_000))
}

fn served_tiles(leaves: &[Hash]) -> Vec<(TileId, Vec<u8>)> {
    let size = TreeSize(leaves.len() as u64);
    tiles_for_size(size)
        .into_iter()
        .map(|tile| {
            let hashes = tile_hashes(leaves, size, tile).expect("tile is in the tree");
            (tile, encode_tile(&hashes))
        })
        .collect()
}

#[test]
fn tile_reader_answers_proofs_from_verified_tiles() {
    let tree = tree_70000();
    let (all_entries, leaves, tree_root, tiles) = (&tree.entries, &tree.leaves, tree.root, &tree.tiles);
    let size = TreeSize(leaves.len() as u64);
    assert_eq!(tree_root, root_from_leaves(leaves));
    let reader = TileHashReader::new(size, tree_root, tiles.clone()).expect("honest tiles verify");
    assert_eq!(tlog::root(&reader, size).expect("edge tiles given"), tree_root);

    for index in [0u64, 1, 255, 256, 65_535, 65_536, 69_999] {
        let from_tiles = inclusion_proof(&reader, LeafIndex(index), size).expect("tiles given");
        let from_store = inclusion_proof(&tree.stored, LeafIndex(index), size).expect("all hashes stored");
        assert_eq!(from_tiles, from_store, "index {index}");
        assert_eq!(verify_inclusion(leaves[index as usize], LeafIndex(index), size, &from_tiles, tree_root), Ok(()));
    }
    for old in [1u64, 256, 300, 65_536, 69_999] {
        let from_tiles = consistency_proof(&reader, TreeSize(old), size).expect("tiles given");
        let from_store = consistency_proof(&tree.stored, TreeSize(old), size).expect("all hashes stored");
        assert_eq!(from_tiles, from_store, "old size {old}");
        let old_root = tlog::root(&tree.stored, TreeSize(old)).expect("all hashes stored");
        assert_eq!(verify_consistency(TreeSize(old), size, old_root, tree_root, &from_tiles), Ok(()));
    }

    // Only the tiles the planner names are needed.
    let subtrees = subtrees_for_inclusion_proof(LeafIndex(300), size);
    let needed = tiles_to_verify(size, &subtrees);
    assert_eq!(needed, vec![tile(0, 1, 256), tile(0, 273, 112), tile(1, 0, 256), tile(1, 1, 17), tile(2, 0, 1)]);
    let fetched: Vec<(TileId, Vec<u8>)> =
        tiles.iter().filter(|(tile, _)| needed.contains(tile)).cloned().collect();
    let partial_reader = TileHashReader::new(size, tree_root, fetched).expect("planned tiles verify");
    assert_eq!(
        inclusion_proof(&partial_reader, LeafIndex(300), size).expect("planned tiles suffice"),
        inclusion_proof(&tree.stored, LeafIndex(300), size).expect("all hashes stored"),
    );
    assert!(matches!(
        inclusion_proof(&partial_reader, LeafIndex(0), size),
        Err(ProveError::Reader(TileReadError::Missing { tile: missing })) if missing == tile(0, 0, 256)
    ));
    let consistency_tiles = tiles_to_verify(size, &subtrees_for_consistency_proof(TreeSize(1000), size));
    assert!(consistency_tiles.contains(&tile(0, 3, 256)));

    // Entry bundles are checked against the verified level-0 tiles.
    let bundle = EntryBundleId::new(273, 112).expect("valid");
    let bundle_bytes = encode_bundle(&all_entries[273 * 256..]).expect("short entries");
    assert_eq!(reader.verify_bundle(bundle, &bundle_bytes).expect("honest bundle"), all_entries[273 * 256..].to_vec());
    let mut forged = all_entries[273 * 256..].to_vec();
    forged[7] = b"forged".to_vec();
    assert_eq!(
        reader.verify_bundle(bundle, &encode_bundle(&forged).expect("short entries")),
        Err(TileVerifyError::BundleEntryMismatch { bundle, position: 7 })
    );
    assert_eq!(
        reader.verify_bundle(bundle, &encode_bundle(&forged[..111]).expect("short entries")),
        Err(TileVerifyError::BundleCount { bundle, expected: 112, actual: 111 })
    );
}

fn check_tampered(tree: &ServedTree, tamper: TileId, expected: TileVerifyError) {
    let size = tree.leaves.len() as u64;
    let mut tiles = tree.tiles.clone();
    let (_, bytes) = tiles.iter_mut().find(|(tile, _)| *tile == tamper).expect("tile is served");
    bytes[5] ^= 0x20;
    assert_eq!(TileHashReader::new(TreeSize(size), tree.root, tiles).map(|_| ()), Err(expected), "{tamper}");
}

/// A tree of 600 full level-0 tiles: large enough that the reader computes tile roots on
/// several threads (where the machine has more than one core).
#[test]
fn a_tampered_tile_is_named_when_tile_roots_are_computed_in_parallel() {
    let large = ServedTree::new(600 * 256 + 5);
    let size = TreeSize(large.leaves.len() as u64);
    TileHashReader::new(size, large.root, large.tiles.clone()).expect("honest tiles verify");
    // One tile early, one late (in another thread's share), and both: the first top down
    // is the highest index of the lowest level, as a one-thread check reports it.
    check_tampered(&large, tile(0, 3, 256), TileVerifyError::TileMismatch { tile: tile(0, 3, 256), parent: tile(1, 0, 256) });
    check_tampered(&large, tile(0, 590, 256), TileVerifyError::TileMismatch { tile: tile(0, 590, 256), parent: tile(1, 2, 88) });
    let mut tiles = large.tiles.clone();
    for tamper in [tile(0, 3, 256), tile(0, 590, 256)] {
        let (_, bytes) = tiles.iter_mut().find(|(tile, _)| *tile == tamper).expect("tile is served");
        bytes[0] ^= 1;
    }
    assert_eq!(
        TileHashReader::new(size, large.root, tiles).map(|_| ()),
        Err(TileVerifyError::TileMismatch { tile: tile(0, 590, 256), parent: tile(1, 2, 88) })
    );
}

#[test]
fn a_tile_that_does_not_hash_to_the_root_is_rejected_by_name() {
    let large = tree_70000();
    // A full tile is checked against its entry in the tile above.
    check_tampered(large, tile(0, 17, 256), TileVerifyError::TileMismatch { tile: tile(0, 17, 256), parent: tile(1, 0, 256) });
    check_tampered(large, tile(0, 272, 256), TileVerifyError::TileMismatch { tile: tile(0, 272, 256), parent: tile(1, 1, 17) });
    check_tampered(large, tile(1, 0, 256), TileVerifyError::TileMismatch { tile: tile(1, 0, 256), parent: tile(2, 0, 1) });
    // The right edge is checked against the signed root.
    check_tampered(large, tile(0, 273, 112), TileVerifyError::RootMismatch { size: 70_000 });
    check_tampered(large, tile(2, 0, 1), TileVerifyError::RootMismatch { size: 70_000 });
    check_tampered(&ServedTree::new(256), tile(1, 0, 1), TileVerifyError::RootMismatch { size: 256 });
    check_tampered(&ServedTree::new(5), tile(0, 0, 5), TileVerifyError::RootMismatch { size: 5 });
}

#[test]
fn tile_sets_that_cannot_be_checked_are_rejected() {
    let leaves = leaves_of(&entries(600));
    let size = TreeSize(600);
    let tree_root = root_from_leaves(&leaves);
    let tiles = served_tiles(&leaves);
    let without = |missing: TileId| tiles.iter().filter(|(tile, _)| *tile != missing).cloned().collect::<Vec<_>>();

    // A full tile without the tile above it cannot be tied to the root.
    assert_eq!(
        TileHashReader::new(size, tree_root, without(tile(1, 0, 2))).map(|_| ()),
        Err(TileVerifyError::Missing { tile: tile(1, 0, 2) })
    );
    assert_eq!(
        TileHashReader::new(size, tree_root, without(tile(0, 2, 88))).map(|_| ()),
        Err(TileVerifyError::Missing { tile: tile(0, 2, 88) })
    );
    // A tile of another tree size, e.g. an older partial tile, is refused.
    let mut stale = tiles.clone();
    stale.push((tile(0, 2, 10), vec![0; 320]));
    assert_eq!(
        TileHashReader::new(size, tree_root, stale).map(|_| ()),
        Err(TileVerifyError::NotInTree { tile: tile(0, 2, 10), size: 600 })
    );
    let mut duplicated = tiles.clone();
    duplicated.push(tiles[0].clone());
    assert_eq!(
        TileHashReader::new(size, tree_root, duplicated).map(|_| ()),
        Err(TileVerifyError::Duplicate { tile: tile(0, 0, 256) })
    );
    let mut short = tiles.clone();
    short[0].1.pop();
    assert!(matches!(TileHashReader::new(size, tree_root, short), Err(TileVerifyError::Length(_))));
    // A wrong root for the tiles given.
    assert_eq!(
        TileHashReader::new(size, leaves[0], tiles.clone()).map(|_| ()),
        Err(TileVerifyError::RootMismatch { size: 600 })
    );
    // The empty tree has no tiles and one root.
    assert!(TileHashReader::new(TreeSize(0), tlog::empty_root(), Vec::new()).is_ok());
    assert_eq!(
        TileHashReader::new(TreeSize(0), tree_root, Vec::new()).map(|_| ()),
        Err(TileVerifyError::EmptyTreeRoot)
    );
    // Reads outside the tree are refused rather than answered from a partial tile.
    let reader = TileHashReader::new(size, tree_root, tiles).expect("honest tiles");
    assert!(matches!(
        inclusion_proof(&reader, LeafIndex(600), size),
        Err(ProveError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        tlog::root(&reader, TreeSize(1024)),
        Err(ProveError::Reader(TileReadError::OutsideTree { level: 10, index: 0, size: 600 }))
    ));
}

#[test]
fn serving_tiles_checks_they_lie_in_the_tree() {
    let leaves = leaves_of(&entries(300));
    let size = TreeSize(300);
    // An older, shorter partial tile is still servable: its hashes never change.
    let old_partial = tile_hashes(leaves.as_slice(), size, tile(0, 1, 10)).expect("within the tree");
    assert_eq!(old_partial, leaves[256..266].to_vec());
    assert!(matches!(
        tile_hashes(leaves.as_slice(), size, tile(0, 1, 256)),
        Err(ProveError::TileOutsideTree { .. })
    ));
    assert!(matches!(
        tile_hashes(leaves.as_slice(), size, tile(9, 0, 1)),
        Err(ProveError::TileOutsideTree { .. })
    ));
    assert_eq!(decode_tile(tile(0, 1, 10), &encode_tile(&old_partial)), Ok(old_partial));
    assert!(decode_tile(tile(0, 1, 11), &[0; 320]).is_err());
}

#[test]
fn bundle_limits() {
    let too_long = vec![0u8; ENTRY_BYTES_MAX + 1];
    assert_eq!(
        encode_bundle(&[b"ok".to_vec(), too_long]),
        Err(BundleError::EntryTooLong { position: 1, bytes: ENTRY_BYTES_MAX + 1 })
    );
    let longest = vec![7u8; ENTRY_BYTES_MAX];
    let bytes = encode_bundle(std::slice::from_ref(&longest)).expect("65535 bytes fit");
    assert_eq!(decode_bundle(&bytes), Ok(vec![longest]));
    assert_eq!(encode_bundle(&vec![Vec::<u8>::new(); 257]), Err(BundleError::TooManyEntries));
    assert_eq!(decode_bundle(&[0u8; 2 * 257]), Err(BundleError::TooManyEntries));
    assert_eq!(decode_bundle(&[0, 1, 9, 0]), Err(BundleError::TruncatedLength { position: 1 }));
    assert_eq!(decode_bundle(&[0, 3, 9]), Err(BundleError::TruncatedEntry { position: 0, declared: 3, available: 1 }));
    assert_eq!(decode_bundle(&[]), Ok(vec![]));
}
