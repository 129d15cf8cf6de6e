//! Tiles and entry bundles of c2sp.org/tlog-tiles v0.1.0: their identities, their URL
//! paths (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), which of them represent a
//! tree of a given size, and their byte encoding.

use std::fmt;

use crate::hash::{HASH_BYTES, Hash, TreeSize, parse_canonical_decimal};
use crate::merkle::{HashReader, ProveError, Subtree};

/// Tree levels spanned by one tile: a tile holds 2^8 hashes.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile (and entries in a full bundle).
pub const TILE_WIDTH_MAX: u16 = 256;
/// Highest tile level a path may name (tlog-tiles: "between 0 and 63").
pub const TILE_LEVEL_MAX: u8 = 63;
/// Bytes of a full tile: 256 hashes of 32 bytes.
pub const TILE_BYTES_MAX: usize = TILE_WIDTH_MAX as usize * HASH_BYTES;

/// One tile of hashes: the `index`-th tile at tile level `level`, holding `width`
/// hashes (256 for a full tile, 1..=255 for a partial one). Its hashes are those of the
/// complete subtrees at tree level `8 * level` numbered `index * 256 + i`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TileId {
    // INVARIANT: level <= TILE_LEVEL_MAX and 1 <= width <= TILE_WIDTH_MAX.
    level: u8,
    index: u64,
    width: u16,
}

/// One entry bundle: the entries whose leaf hashes make up level-0 tile `index`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EntryBundleId {
    // INVARIANT: 1 <= width <= TILE_WIDTH_MAX.
    index: u64,
    width: u16,
}

/// What a path under `tile/` names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TileResource {
    Hashes(TileId),
    Entries(EntryBundleId),
}

/// A tile level or width outside what tlog-tiles allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileIdError {
    #[error("tile level {level} is above {TILE_LEVEL_MAX}")]
    Level { level: u8 },
    #[error("tile width {width} is not between 1 and {TILE_WIDTH_MAX}")]
    Width { width: u16 },
}

/// Why a tile path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    #[error("path does not start with tile/")]
    Prefix,
    #[error("tile level {text:?} is not a decimal from 0 to 63 without leading zeroes")]
    Level { text: String },
    #[error("partial width {text:?} is not a decimal from 1 to 255 without leading zeroes")]
    Width { text: String },
    #[error("index element {element:?} is not three digits, x-prefixed unless last")]
    IndexElement { element: String },
    #[error("index has a redundant leading x000 element")]
    IndexLeadingZero,
    #[error("index does not fit in 64 bits")]
    IndexOverflow,
}

/// A tile's bytes do not match its width.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tile {tile} has {actual} bytes, expected {expected}")]
pub struct TileLengthError {
    pub tile: TileId,
    pub expected: usize,
    pub actual: usize,
}

impl TileId {
    pub fn new(level: u8, index: u64, width: u16) -> Result<TileId, TileIdError> {
        if level > TILE_LEVEL_MAX {
            return Err(TileIdError::Level { level });
        }
        if width == 0 || width > TILE_WIDTH_MAX {
            return Err(TileIdError::Width { width });
        }
        Ok(TileId { level, index, width })
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH_MAX
    }

    /// The path under the log prefix, e.g. `tile/0/x001/x234/067.p/5`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, index_path(self.index, self.width))
    }

    /// The complete subtrees whose hashes this tile holds, in order, or `None` when they
    /// would lie beyond 2^64 leaves (tile levels above 7, or indexes too large).
    pub fn subtrees(&self) -> Option<Vec<Subtree>> {
        let tree_level = u8::try_from(u32::from(self.level) * u32::from(TILE_HEIGHT)).ok()?;
        let first = self.index.checked_mul(u64::from(TILE_WIDTH_MAX))?;
        let subtrees: Vec<Subtree> = (0..u64::from(self.width))
            .map(|offset| Subtree { level: tree_level, index: first + offset })
            .collect();
        // The last subtree must end within u64 leaves for the tile to be meaningful.
        subtrees.last()?.end()?;
        Some(subtrees)
    }

    /// Whether every hash of this tile exists in the tree of `size` leaves. True for the
    /// tiles of [`tiles_for_size`] and for shorter prefixes of its partial tiles, which a
    /// log may still serve for older checkpoints.
    pub fn is_within(&self, size: TreeSize) -> bool {
        let hashes_at_level = hashes_at_tile_level(size, self.level);
        self.index
            .checked_mul(u64::from(TILE_WIDTH_MAX))
            .and_then(|first| first.checked_add(u64::from(self.width)))
            .is_some_and(|end| end <= hashes_at_level)
    }

    /// Whether this tile is exactly one of [`tiles_for_size`]`(size)`.
    pub fn is_tile_of(&self, size: TreeSize) -> bool {
        tile_at(size, self.level, self.index) == Some(*self)
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.path())
    }
}

impl EntryBundleId {
    pub fn new(index: u64, width: u16) -> Result<EntryBundleId, TileIdError> {
        if width == 0 || width > TILE_WIDTH_MAX {
            return Err(TileIdError::Width { width });
        }
        Ok(EntryBundleId { index, width })
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH_MAX
    }

    /// The path under the log prefix, e.g. `tile/entries/x001/234.p/17`.
    pub fn path(&self) -> String {
        format!("tile/entries/{}", index_path(self.index, self.width))
    }

    /// The level-0 tile holding the leaf hashes of these entries.
    pub fn tile(&self) -> TileId {
        TileId { level: 0, index: self.index, width: self.width }
    }

    /// Index of the first entry in the bundle, or `None` on overflow.
    pub fn first_entry(&self) -> Option<u64> {
        self.index.checked_mul(u64::from(TILE_WIDTH_MAX))
    }
}

impl fmt::Display for EntryBundleId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.path())
    }
}

/// Parses a path under the log prefix, such as `tile/1/x001/234.p/17` or
/// `tile/entries/000`, accepting only the one canonical spelling of each resource.
pub fn parse_path(path: &str) -> Result<TileResource, TilePathError> {
    let rest = path.strip_prefix("tile/").ok_or(TilePathError::Prefix)?;
    if let Some(rest) = rest.strip_prefix("entries/") {
        let (index, width) = parse_index_and_width(rest)?;
        return Ok(TileResource::Entries(EntryBundleId { index, width }));
    }
    let (level_text, rest) = rest.split_once('/').ok_or_else(|| TilePathError::Level {
        text: rest.to_owned(),
    })?;
    let level = parse_canonical_decimal(level_text)
        .filter(|&level| level <= u64::from(TILE_LEVEL_MAX))
        .ok_or_else(|| TilePathError::Level { text: level_text.to_owned() })?;
    let (index, width) = parse_index_and_width(rest)?;
    // INVARIANT: level <= 63 was checked above.
    Ok(TileResource::Hashes(TileId { level: level as u8, index, width }))
}

/// The tiles, full and partial, that represent a tree of `size` leaves, by level then
/// index. The partial tile at level `l` has `floor(size / 256^l) mod 256` hashes; empty
/// tiles are never part of the set.
pub fn tiles_for_size(size: TreeSize) -> Vec<TileId> {
    tiles_added(TreeSize(0), size)
}

/// The tiles of `tiles_for_size(new_size)` that are not in `tiles_for_size(old_size)`:
/// what a log has to write when it grows. Empty if `old_size >= new_size`.
pub fn tiles_added(old_size: TreeSize, new_size: TreeSize) -> Vec<TileId> {
    let mut tiles = Vec::new();
    if old_size.0 >= new_size.0 {
        return tiles;
    }
    for level in 0..=TILE_LEVEL_MAX {
        let new_hashes = hashes_at_tile_level(new_size, level);
        if new_hashes == 0 {
            break;
        }
        let old_hashes = hashes_at_tile_level(old_size, level);
        let width_max = u64::from(TILE_WIDTH_MAX);
        for index in old_hashes / width_max..new_hashes / width_max {
            tiles.push(TileId { level, index, width: TILE_WIDTH_MAX });
        }
        let partial_width = (new_hashes % width_max) as u16;
        if partial_width > 0 && new_hashes != old_hashes {
            tiles.push(TileId { level, index: new_hashes / width_max, width: partial_width });
        }
    }
    tiles
}

/// The entry bundles of a tree of `size` leaves: one per level-0 tile.
pub fn bundles_for_size(size: TreeSize) -> Vec<EntryBundleId> {
    tiles_for_size(size)
        .into_iter()
        .take_while(|tile| tile.level == 0)
        .map(|tile| EntryBundleId { index: tile.index, width: tile.width })
        .collect()
}

/// The hashes of `tile`, read from a tree of `size` leaves. The tile must lie within
/// the tree (see [`TileId::is_within`]).
pub fn tile_hashes<R: HashReader + ?Sized>(
    reader: &R,
    size: TreeSize,
    tile: TileId,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let outside = || ProveError::TileOutsideTree { tile, size: size.0 };
    if !tile.is_within(size) {
        return Err(outside());
    }
    let subtrees = tile.subtrees().ok_or_else(outside)?;
    let hashes = reader.subtree_hashes(&subtrees).map_err(ProveError::Reader)?;
    if hashes.len() != subtrees.len() {
        return Err(ProveError::ReaderCount { expected: subtrees.len(), actual: hashes.len() });
    }
    Ok(hashes)
}

/// A tile's bytes: its hashes concatenated.
pub fn encode_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

/// Splits a tile's bytes into hashes, checking the length against the tile's width.
pub fn decode_tile(tile: TileId, bytes: &[u8]) -> Result<Vec<Hash>, TileLengthError> {
    let expected = usize::from(tile.width) * HASH_BYTES;
    if bytes.len() != expected {
        return Err(TileLengthError { tile, expected, actual: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(HASH_BYTES)
        .map(|chunk| {
            let mut hash = [0; HASH_BYTES];
            hash.copy_from_slice(chunk);
            Hash(hash)
        })
        .collect())
}

/// The tile of `tiles_for_size(size)` at (`level`, `index`), if there is one.
pub(crate) fn tile_at(size: TreeSize, level: u8, index: u64) -> Option<TileId> {
    if level > TILE_LEVEL_MAX {
        return None;
    }
    let hashes = hashes_at_tile_level(size, level);
    let width_max = u64::from(TILE_WIDTH_MAX);
    let full_tiles = hashes / width_max;
    if index < full_tiles {
        return Some(TileId { level, index, width: TILE_WIDTH_MAX });
    }
    let partial_width = (hashes % width_max) as u16;
    (index == full_tiles && partial_width > 0).then_some(TileId { level, index, width: partial_width })
}

/// How many hashes tile level `level` holds in a tree of `size` leaves:
/// `floor(size / 256^level)`.
pub(crate) fn hashes_at_tile_level(size: TreeSize, level: u8) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    size.0.checked_shr(shift).unwrap_or(0)
}

/// `<N>[.p/<W>]`: the index in 3-digit groups, all but the last prefixed with `x`.
fn index_path(index: u64, width: u16) -> String {
    let mut groups = Vec::new();
    let mut remaining = index;
    loop {
        groups.push(remaining % 1000);
        remaining /= 1000;
        if remaining == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    let elements: Vec<String> = groups
        .iter()
        .rev()
        .enumerate()
        .map(|(position, group)| {
            if position == last { format!("{group:03}") } else { format!("x{group:03}") }
        })
        .collect();
    let path = elements.join("/");
    if width < TILE_WIDTH_MAX { format!("{path}.p/{width}") } else { path }
}

fn parse_index_and_width(text: &str) -> Result<(u64, u16), TilePathError> {
    let (index_text, width) = match text.split_once(".p/") {
        Some((index_text, width_text)) => {
            let width = parse_canonical_decimal(width_text)
                .filter(|width| (1..u64::from(TILE_WIDTH_MAX)).contains(width))
                .ok_or_else(|| TilePathError::Width { text: width_text.to_owned() })?;
            // INVARIANT: width < 256 was checked above.
            (index_text, width as u16)
        }
        None => (text, TILE_WIDTH_MAX),
    };
    Ok((parse_index(index_text)?, width))
}

fn parse_index(text: &str) -> Result<u64, TilePathError> {
    let elements: Vec<&str> = text.split('/').collect();
    let last = elements.len() - 1;
    let mut index: u64 = 0;
    for (position, element) in elements.iter().enumerate() {
        let malformed = || TilePathError::IndexElement { element: (*element).to_owned() };
        let digits = if position == last {
            *element
        } else {
            element.strip_prefix('x').ok_or_else(malformed)?
        };
        if digits.len() != 3 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(malformed());
        }
        if position == 0 && position != last && digits == "000" {
            return Err(TilePathError::IndexLeadingZero);
        }
        let group: u64 = digits.parse().map_err(|_| malformed())?;
        index = index
            .checked_mul(1000)
            .and_then(|value| value.checked_add(group))
            .ok_or(TilePathError::IndexOverflow)?;
    }
    Ok(index)
}
