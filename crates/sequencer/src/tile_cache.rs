//! A bounded cache of full hash tiles with their interior nodes, for proofs.
//!
//! A tile stores only the bottom row of its 8-level stratum, so a proof that reads a
//! subtree inside a tile recomputes it from up to 128 of the tile's hashes: about 250 node
//! hashes per tile a proof touches. A full tile never changes once written (the log is
//! append-only, and the sequencer writes a tile's full width once), so its interior nodes
//! are computed once and kept: a proof through cached tiles is lookups, not hashing.
//!
//! Partial tiles (the right edge of the tree) grow with every batch, but only at their end:
//! the first `w` hashes of a tile never change once `w` are written. So the cache keeps, per
//! edge tile, the widest prefix it has read ([`EDGE_TILES_MAX`] of them at most), and a proof
//! in a tree no larger than that prefix covers reads nothing from the store. Nothing here is trusted by the
//! verifiers of the proofs: a proof is checked against a signed root, and the checkpointer
//! verifies the consistency proof it builds before it signs, so a wrong cached hash could
//! only make a proof fail, never make a wrong one pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use store::{LogStore, StoreError};
use tlog::hash::HASH_BYTES;
use tlog::{Hash, Subtree, TILE_HEIGHT, TILE_WIDTH_MAX, TileId, TreeSize, decode_tile, encode_tile, node_hash};

use crate::stored_hashes::{StoredHashError, StoredHashes, TileSpan, perfect_root};

/// Hashes kept per cached tile: its rows at tile-internal levels 0 to 7 (256 + 128 + … + 2).
/// Level 8, the tile's root, is a hash of the tile above.
pub const TILE_NODES: usize = 2 * TILE_WIDTH_MAX as usize - 2;
/// Most full tiles one [`TileCache`] holds (per region log). A log of 2^20 entries has
/// 4,096 full tiles at level 0 and 16 at level 1, so it (almost) fits; in larger logs the
/// proofs for the most recently used tiles stay cheap.
pub const TILE_CACHE_TILES_MAX: usize = 4_096;
/// The memory the cached hashes take at most, in bytes: [`TILE_CACHE_TILES_MAX`] tiles of
/// [`TILE_NODES`] hashes (about 64 MiB), plus a small index.
pub const TILE_CACHE_BYTES_MAX: usize = TILE_CACHE_TILES_MAX * TILE_NODES * HASH_BYTES;

/// Partial tiles kept at once, each the widest prefix read of one tile. A log has one
/// partial tile per tile level at any size (five levels reach 2^40 entries), and proofs are
/// built against the latest few checkpoints, so a handful is enough; when the bound is hit
/// the prefixes of tiles that are full by now (and so in the main cache) are dropped first,
/// then all of them. They take at most 512 KiB.
pub const EDGE_TILES_MAX: usize = 64;

/// The interior nodes of one full tile, row by row: row `r` (the tile's hashes combined
/// `2^r` at a time) has `256 >> r` hashes and starts at `512 - (512 >> r)`.
#[derive(Debug)]
struct TileNodes(Box<[Hash]>);

impl TileNodes {
    fn compute(hashes: &[Hash]) -> TileNodes {
        debug_assert_eq!(hashes.len(), usize::from(TILE_WIDTH_MAX));
        let mut nodes = Vec::with_capacity(TILE_NODES);
        nodes.extend_from_slice(hashes);
        let mut row_start = 0;
        let mut row_len = hashes.len();
        while row_len > 2 {
            for pair in 0..row_len / 2 {
                let (left, right) = (nodes[row_start + 2 * pair], nodes[row_start + 2 * pair + 1]);
                nodes.push(node_hash(&left, &right));
            }
            row_start += row_len;
            row_len /= 2;
        }
        debug_assert_eq!(nodes.len(), TILE_NODES);
        TileNodes(nodes.into_boxed_slice())
    }

    /// The hash of `2^rest` consecutive tile hashes starting at `offset` (a multiple of
    /// `2^rest`), `rest` below [`TILE_HEIGHT`].
    fn node(&self, offset: usize, rest: u8) -> Option<Hash> {
        let row_start = 2 * usize::from(TILE_WIDTH_MAX) - (2 * usize::from(TILE_WIDTH_MAX) >> rest);
        self.0.get(row_start + (offset >> rest)).copied()
    }
}

struct Slot {
    key: (u8, u64),
    nodes: Arc<TileNodes>,
    /// Set on each hit, cleared by the eviction hand (CLOCK, a cheap approximation of
    /// least recently used that lets hits take only a read lock).
    referenced: AtomicBool,
}

#[derive(Default)]
struct Slots {
    positions: HashMap<(u8, u64), usize>,
    // INVARIANT: positions[slots[i].key] == i for every i, and slots.len() <= TILE_CACHE_TILES_MAX.
    slots: Vec<Slot>,
    hand: usize,
}

/// Full tiles of one log with their interior nodes, at most [`TILE_CACHE_TILES_MAX`].
/// Shared (behind an `Arc`) by the proof endpoints and the checkpointer of a region log.
#[derive(Default)]
pub struct TileCache {
    slots: RwLock<Slots>,
    /// The widest prefix read of each partial tile, by (tile level, tile index).
    // INVARIANT: each value is the first `len` hashes of that tile as the log stored them.
    edges: RwLock<HashMap<(u8, u64), Arc<[Hash]>>>,
}

impl std::fmt::Debug for TileCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TileCache").field("tiles", &self.len()).finish()
    }
}

impl TileCache {
    pub fn new() -> TileCache {
        TileCache::default()
    }

    /// Full tiles held now.
    pub fn len(&self) -> usize {
        self.slots.read().unwrap_or_else(PoisonError::into_inner).slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the hashes of `subtrees` (complete subtrees of the tree of `size` leaves), as
    /// [`StoredHashes::read`] does, taking full tiles from the cache (reading and caching
    /// those it lacks) and partial tiles from the edge prefixes (reading from the store a
    /// partial tile wider than its cached prefix).
    pub async fn read(&self, store: &dyn LogStore, size: TreeSize, subtrees: &[Subtree]) -> Result<StoredHashes, StoredHashError> {
        let mut full: HashMap<(u8, u64), Arc<TileNodes>> = HashMap::new();
        let mut partial: HashMap<(u8, u64), Arc<[Hash]>> = HashMap::new();
        let mut hashes = HashMap::with_capacity(subtrees.len());
        for &subtree in subtrees {
            let span = TileSpan::locate(size, subtree)?;
            let key = (span.tile.level(), span.tile.index());
            // A tile partial at `size` may be full (and cached) by now: its first hashes are
            // the partial tile's.
            if span.tile.is_partial() && !full.contains_key(&key) && let Some(nodes) = self.lookup(key) {
                full.insert(key, nodes);
            }
            let hash = if span.tile.is_partial() && !full.contains_key(&key) {
                let width = usize::from(span.tile.width());
                if !partial.contains_key(&key) {
                    let prefix = self.partial_prefix(store, span.tile).await.map_err(StoredHashError::Store)?.ok_or_else(|| span.missing())?;
                    partial.insert(key, prefix);
                }
                // The prefix may be wider than the tile is in this tree: only its first `width` count.
                let tile = partial[&key].get(..width).ok_or_else(|| span.missing())?;
                perfect_root(span.slice(tile).ok_or_else(|| span.missing())?)
            } else {
                if !full.contains_key(&key) {
                    let nodes = match self.lookup(key) {
                        Some(nodes) => nodes,
                        None => {
                            let tile_hashes = StoredHashes::read_tile(store, span.tile, subtree, size).await?;
                            self.insert(key, TileNodes::compute(&tile_hashes))
                        }
                    };
                    full.insert(key, nodes);
                }
                full[&key].node(span.offset, span.rest).ok_or_else(|| span.missing())?
            };
            hashes.insert(subtree, hash);
        }
        Ok(StoredHashes::from_map(hashes))
    }

    /// The bytes of `tile` for the tile endpoint, as [`crate::tile_bytes`] reads them, with
    /// partial tiles served from (and kept as) the edge prefixes: a level-0 partial tile is
    /// read back from up to 255 entries, which a client asking for it again and again must
    /// not make the log do each time.
    pub async fn tile_bytes(&self, store: &dyn LogStore, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        if !tile.is_partial() {
            return crate::tile_bytes(store, tile).await;
        }
        let width = usize::from(tile.width());
        Ok(self.partial_prefix(store, tile).await?.map(|prefix| encode_tile(&prefix[..width])))
    }

    /// The kept prefix of partial `tile` when it is at least as wide, or else the tile read
    /// from the store and kept; `None` if the log does not hold it.
    async fn partial_prefix(&self, store: &dyn LogStore, tile: TileId) -> Result<Option<Arc<[Hash]>>, StoreError> {
        let (key, width) = ((tile.level(), tile.index()), usize::from(tile.width()));
        if let Some(prefix) = self.edge(key, width) {
            return Ok(Some(prefix));
        }
        let Some(bytes) = crate::tile_bytes(store, tile).await? else { return Ok(None) };
        Ok(decode_tile(tile, &bytes).ok().map(|hashes| self.insert_edge(key, hashes)))
    }

    fn lookup(&self, key: (u8, u64)) -> Option<Arc<TileNodes>> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let slot = &slots.slots[*slots.positions.get(&key)?];
        slot.referenced.store(true, Ordering::Relaxed);
        Some(Arc::clone(&slot.nodes))
    }

    /// The cached prefix of partial tile `key`, if it holds at least `width` hashes.
    fn edge(&self, key: (u8, u64), width: usize) -> Option<Arc<[Hash]>> {
        let edges = self.edges.read().unwrap_or_else(PoisonError::into_inner);
        edges.get(&key).filter(|prefix| prefix.len() >= width).cloned()
    }

    /// Keeps `hashes` (a partial tile as read from the store) as the prefix of tile `key`
    /// unless a wider one is kept already, and returns the prefix kept.
    fn insert_edge(&self, key: (u8, u64), hashes: Vec<Hash>) -> Arc<[Hash]> {
        let hashes: Arc<[Hash]> = hashes.into();
        let mut edges = self.edges.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = edges.get(&key).filter(|kept| kept.len() >= hashes.len()) {
            return Arc::clone(kept);
        }
        if !edges.contains_key(&key) && edges.len() >= EDGE_TILES_MAX {
            let full = self.slots.read().unwrap_or_else(PoisonError::into_inner);
            edges.retain(|kept, _| !full.positions.contains_key(kept));
            if edges.len() >= EDGE_TILES_MAX {
                edges.clear();
            }
        }
        edges.insert(key, Arc::clone(&hashes));
        hashes
    }

    fn insert(&self, key: (u8, u64), nodes: TileNodes) -> Arc<TileNodes> {
        let nodes = Arc::new(nodes);
        let mut guard = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        let slots = &mut *guard;
        // Another task may have read the same tile meanwhile; its nodes are the same.
        if let Some(&position) = slots.positions.get(&key) {
            return Arc::clone(&slots.slots[position].nodes);
        }
        let slot = Slot { key, nodes: Arc::clone(&nodes), referenced: AtomicBool::new(false) };
        if slots.slots.len() < TILE_CACHE_TILES_MAX {
            slots.positions.insert(key, slots.slots.len());
            slots.slots.push(slot);
            return nodes;
        }
        // Evict the first tile not hit since the hand last passed it.
        loop {
            let hand = slots.hand;
            slots.hand = (hand + 1) % slots.slots.len();
            if !slots.slots[hand].referenced.swap(false, Ordering::Relaxed) {
                slots.positions.remove(&slots.slots[hand].key);
                slots.positions.insert(key, hand);
                slots.slots[hand] = slot;
                return nodes;
            }
        }
    }
}

const _: () = assert!(TILE_HEIGHT == 8 && TILE_WIDTH_MAX == 256);
