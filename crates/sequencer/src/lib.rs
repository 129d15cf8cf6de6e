//! The writer side of a region's Merkle log: the [`Sequencer`] assigns each entry its index
//! by group commit (an appender hears its index only once the batch holding its entry is
//! durable in the store), [`Integration`] keeps the tree's right edge and the tiles a batch
//! changes, and the [`Checkpointer`] signs C2SP checkpoints that always extend the last one
//! it persisted. [`salted_entry`] is the entry layout: a decision's canonical bytes behind a
//! caller-drawn salt. [`TileCache`] keeps full tiles with their interior nodes for proofs;
//! [`Coverage`] tells the periodic signer how long acknowledged entries have waited.
//!
//! Pure parts ([`Integration`], [`salted_entry`]) do no IO and draw no randomness; the
//! async parts talk to a [`store::LogStore`] only.

mod checkpointer;
mod coverage;
mod entry;
mod integration;
mod sequencer;
mod stored_hashes;
mod tile_cache;

pub use checkpointer::{
    CHECKPOINT_INTERVAL_DEFAULT, CheckpointError, Checkpointer, SIGNING_MARGIN, SIGNING_SAMPLES, SignedCheckpoint,
    signing_deadline,
};
pub use coverage::{COVERAGE_BATCHES_MAX, Coverage};
pub use entry::{
    CANONICAL_BYTES_MAX, ENTRY_FORMAT_VERSION, EntryFormatError, SALT_BYTES, parse_salted_entry,
    salted_entry,
};
pub use integration::{Integration, IntegrationError};
pub use sequencer::{AppendError, BATCH_ENTRIES_MAX, QUEUE_ENTRIES_MAX, Receipt, Sequencer};
pub use stored_hashes::{NotRead, StoredHashError, StoredHashes, tile_bytes};
pub use tile_cache::{EDGE_TILES_MAX, TILE_CACHE_BYTES_MAX, TILE_CACHE_TILES_MAX, TILE_NODES, TileCache};
