//! Known-answer vectors from RFC 6962 hashing and the C2SP specs, as collected in the
//! project's shared log-formats digest and DEPENDENCIES.md.

use tlog::{
    Hash, KeyId, LeafIndex, Note, NoteVerifier, TreeSize, Verifier, empty_root, inclusion_proof, key_id, leaf_hash,
    node_hash, root_from_entries, root_from_leaves, verifier_from_vkey, verify_inclusion,
};

const EXAMPLE_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const EXAMPLE_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

fn hex(text: &str) -> Hash {
    Hash::from_hex(text).expect("test vector is valid hex")
}

fn check_hash(actual: Hash, expected_hex: &str) {
    assert_eq!(actual.to_hex(), expected_hex);
}

#[test]
fn merkle_tree_hashes() {
    check_hash(empty_root(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(empty_root().to_base64(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    check_hash(root_from_leaves(&[]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hash(leaf_hash(b""), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    check_hash(leaf_hash(b"a"), "022a6979e6dab7aa5ae4c3e5e45f7e977112a7e63593820dbec1ec738a24f93c");
    check_hash(
        root_from_entries(&["a", "b", "c"]),
        "36642e73c2540ab121e3a6bf9545b0a24982cd830eb13d3cd19de3ce6c021ec1",
    );
    // A one-leaf tree's root is its leaf hash.
    assert_eq!(root_from_entries(&["a"]), leaf_hash(b"a"));
}

#[test]
fn inclusion_proof_for_index_2_of_3() {
    let leaves: Vec<Hash> = ["a", "b", "c"].iter().map(|entry| leaf_hash(entry.as_bytes())).collect();
    let proof = inclusion_proof(leaves.as_slice(), LeafIndex(2), TreeSize(3)).expect("index is in the tree");
    let expected = hex("b137985ff484fb600db93107c77b0365c80d78f5b429ded0fd97361d077999eb");
    assert_eq!(proof, vec![expected]);
    assert_eq!(node_hash(&leaves[0], &leaves[1]), expected);
    let root = hex("36642e73c2540ab121e3a6bf9545b0a24982cd830eb13d3cd19de3ce6c021ec1");
    assert_eq!(verify_inclusion(leaves[2], LeafIndex(2), TreeSize(3), &proof, root), Ok(()));
}

#[test]
fn signed_note_example_verifies() {
    let verifier = Verifier::from_vkey(EXAMPLE_VKEY).expect("spec vkey parses");
    assert_eq!(verifier.key_id(), KeyId(0x530d_903a));
    assert_eq!(verifier.key_id().to_string(), "530d903a");
    assert_eq!(key_id(verifier.name(), 0x01, &verifier.public_key()), KeyId(0x530d_903a));
    assert_eq!(verifier.to_vkey(), EXAMPLE_VKEY);

    let note = Note::parse(EXAMPLE_NOTE.as_bytes()).expect("spec note parses");
    assert_eq!(note.text(), "This is an example message.\n");
    assert_eq!(note.to_bytes(), EXAMPLE_NOTE.as_bytes());
    let verified = note.verify(&[&verifier]).expect("spec signature verifies");
    assert_eq!(verified.len(), 1);

    let boxed = verifier_from_vkey(EXAMPLE_VKEY).expect("spec vkey parses");
    assert_eq!(note.verify(&[boxed.as_ref()]).map(|signatures| signatures.len()), Ok(1));

    // The same signature over any other text fails.
    let altered = EXAMPLE_NOTE.replacen("example", "exemplary", 1);
    let altered = Note::parse(altered.as_bytes()).expect("still well-formed");
    assert!(altered.verify(&[&verifier]).is_err());
}
