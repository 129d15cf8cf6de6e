//! The transparency-log kernel of custos: Merkle tree hashing, proofs, tiles, signed
//! notes, checkpoints, cosignatures and offline proofs. Pure: no IO, no clock (timestamps
//! are passed in), no randomness (keys are passed in as bytes).
//!
//! Specifications implemented, and the versions pinned:
//!
//! | spec | version | module |
//! |---|---|---|
//! | RFC 6962 §2.1 Merkle Tree Hash, audit paths, consistency proofs | RFC 6962 | [`merkle`] |
//! | RFC 9162 §2.1.3.2 and §2.1.4.2 proof verification | RFC 9162 | [`verify`] |
//! | c2sp.org/signed-note (Ed25519, type 0x01; vkeys) | v1.0.0 | [`note`], [`ed25519`] |
//! | c2sp.org/tlog-checkpoint | v1.0.0 | [`checkpoint`] |
//! | c2sp.org/tlog-tiles (tiles, partial tiles, entry bundles) | v0.1.0 | [`tile`], [`bundle`], [`tile_reader`] |
//! | c2sp.org/tlog-cosignature (Ed25519, type 0x04) | v1.0.1 | [`cosignature`] |
//! | c2sp.org/tlog-proof | v1 | [`tlog_proof`] |
//!
//! Not implemented: ML-DSA-44 cosignatures (type 0x06, tlog-cosignature v1.1.0-rc.1),
//! ECDSA note signatures (type 0x02), RFC 6962 tree head signatures (type 0x05).
//!
//! Edge cases decided here, beyond the RFC 9162 algorithms: a consistency proof from
//! size 0 must be empty and a root given for size 0 must be `SHA-256()`; a consistency
//! proof between equal sizes must be empty and the roots equal (as tlog-witness v1.0.0
//! requires). Proofs longer than [`PROOF_HASHES_MAX`] hashes are rejected unread.

pub mod bundle;
pub mod checkpoint;
pub mod compact_range;
pub mod cosignature;
pub mod ed25519;
pub mod hash;
pub mod merkle;
pub mod note;
pub mod tile;
pub mod tile_reader;
pub mod tlog_proof;
pub mod verify;

pub use bundle::{BUNDLE_ENTRIES_MAX, BundleError, ENTRY_BYTES_MAX, decode_bundle, decode_bundle_slices, encode_bundle};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use compact_range::{CompactRange, CompactRangeError, SubtreeUnaligned};
pub use cosignature::{
    COSIGNATURE_TIMESTAMP_SECONDS_MAX, CosignError, CosignatureVerifier, Cosigner, cosignature_message,
};
pub use ed25519::{
    ED25519_SECRET_KEY_BYTES, KeyError, SIGNATURE_TYPE_COSIGNATURE_ED25519, SIGNATURE_TYPE_ED25519, Signer, Verifier, Vkey,
    VkeyError,
    key_id, verifier_from_vkey,
};
pub use hash::{Hash, HashParseError, LeafIndex, TreeSize, empty_root, leaf_hash, node_hash};
pub use merkle::{
    HashReader, LeavesTooFew, PROOF_HASHES_MAX, ProveError, Subtree, consistency_proof, inclusion_proof, root,
    root_from_entries, root_from_leaves, subtrees_for_consistency_proof, subtrees_for_inclusion_proof,
    subtrees_for_root,
};
pub use note::{
    KeyId, KeyName, KeyNameError, NOTE_BYTES_MAX, NOTE_SIGNATURES_MAX, Note, NoteError, NoteSignature, NoteVerifier,
    NoteVerifyError, SignatureError,
};
pub use tile::{
    EntryBundleId, TILE_HEIGHT, TILE_LEVEL_MAX, TILE_WIDTH_MAX, TileId, TileIdError, TileLengthError, TilePathError,
    TileResource, bundles_for_size, decode_tile, encode_tile, parse_path, tile_hashes, tiles_added, tiles_for_size,
};
pub use tile_reader::{TileHashReader, TileReadError, TileVerifyError, tiles_to_verify};
pub use tlog_proof::{TLOG_PROOF_HEADER, TlogProof, TlogProofError, TlogProofVerifyError};
pub use verify::{ProofError, verify_consistency, verify_inclusion};
