//! Builds tiled logs in memory with `tlog`, as a custos region would serve them, so the
//! verifier can be run against honest and tampered copies.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

use std::collections::BTreeMap;

use tlog::{
    Checkpoint, Hash, Note, Signer, TreeSize, bundles_for_size, encode_bundle, encode_tile,
    leaf_hash, root_from_leaves, tile_hashes, tiles_for_size,
};

pub const ORIGIN: &str = "custos.example/log/eu";
pub const LOG_SEED: [u8; 32] = [7; 32];
pub const OTHER_SEED: [u8; 32] = [9; 32];

/// Files of a log, keyed by path under the log prefix.
pub type Files = BTreeMap<String, Vec<u8>>;

/// A history of entries; `variant` makes a different history of the same length.
pub struct History {
    pub entries: Vec<Vec<u8>>,
    pub leaves: Vec<Hash>,
}

impl History {
    /// `count` entries; entries from `diverge_at` on carry `variant`, so two histories
    /// with different variants share exactly the prefix before `diverge_at`.
    pub fn new(count: u64, variant: u8, diverge_at: u64) -> History {
        let entries: Vec<Vec<u8>> = (0..count)
            .map(|index| {
                let variant = if index >= diverge_at { variant } else { 0 };
                format!("access {index} in history {variant}").into_bytes()
            })
            .collect();
        let leaves = entries.iter().map(|entry| leaf_hash(entry)).collect();
        History { entries, leaves }
    }

    pub fn honest(count: u64) -> History {
        History::new(count, 0, 0)
    }

    pub fn root(&self, size: u64) -> Hash {
        root_from_leaves(&self.leaves[..size as usize])
    }

    pub fn checkpoint(&self, size: u64) -> Checkpoint {
        Checkpoint::new(ORIGIN, TreeSize(size), self.root(size), Vec::new())
            .expect("valid checkpoint")
    }

    pub fn note(&self, size: u64, signer: &Signer) -> Note {
        self.checkpoint(size).sign(signer)
    }

    /// Tiles and bundles of the tree of `size` leaves, added to `files`.
    pub fn add_tiles(&self, size: u64, files: &mut Files) {
        let leaves = &self.leaves[..size as usize];
        for tile in tiles_for_size(TreeSize(size)) {
            let hashes = tile_hashes(leaves, TreeSize(size), tile).expect("tile within tree");
            files.insert(tile.path(), encode_tile(&hashes));
        }
        for bundle in bundles_for_size(TreeSize(size)) {
            let first = bundle.first_entry().expect("small index") as usize;
            let entries = &self.entries[first..first + usize::from(bundle.width())];
            files.insert(
                bundle.path(),
                encode_bundle(entries).expect("small entries"),
            );
        }
    }

    /// The files a log serves at `size`, checkpoint signed by `signer`.
    pub fn files(&self, size: u64, signer: &Signer) -> Files {
        let mut files = Files::new();
        self.add_tiles(size, &mut files);
        files.insert("checkpoint".to_owned(), self.note(size, signer).to_bytes());
        files
    }
}

pub fn log_signer() -> Signer {
    Signer::new(ORIGIN, &LOG_SEED).expect("valid signer")
}

pub fn log_vkey() -> String {
    log_signer().verifier().to_vkey()
}

/// Flips the lowest bit of byte `offset` of the file at `path`.
pub fn flip_byte(files: &mut Files, path: &str, offset: usize) {
    let bytes = files
        .get_mut(path)
        .unwrap_or_else(|| panic!("no file {path}"));
    bytes[offset] ^= 0x01;
}
