//! Entry bundles of c2sp.org/tlog-tiles: up to 256 log entries, each prefixed with its
//! length as a big-endian u16.

use crate::tile::TILE_WIDTH_MAX;

/// The largest entry a bundle can carry: its length prefix is a u16.
pub const ENTRY_BYTES_MAX: usize = 65_535;
/// Entries in a full bundle.
pub const BUNDLE_ENTRIES_MAX: usize = TILE_WIDTH_MAX as usize;

/// Why a bundle could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("entry {position} has {bytes} bytes, more than {ENTRY_BYTES_MAX}")]
    EntryTooLong { position: usize, bytes: usize },
    #[error("bundle has more than {BUNDLE_ENTRIES_MAX} entries")]
    TooManyEntries,
    #[error("bundle ends inside the length prefix of entry {position}")]
    TruncatedLength { position: usize },
    #[error("entry {position} declares {declared} bytes but only {available} remain")]
    TruncatedEntry { position: usize, declared: usize, available: usize },
}

/// Encodes entries as a bundle.
pub fn encode_bundle<T: AsRef<[u8]>>(entries: &[T]) -> Result<Vec<u8>, BundleError> {
    if entries.len() > BUNDLE_ENTRIES_MAX {
        return Err(BundleError::TooManyEntries);
    }
    let mut bytes = Vec::with_capacity(entries.iter().map(|entry| entry.as_ref().len() + 2).sum());
    for (position, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let length = u16::try_from(entry.len())
            .map_err(|_| BundleError::EntryTooLong { position, bytes: entry.len() })?;
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(entry);
    }
    Ok(bytes)
}

/// Decodes a bundle into its entries.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    Ok(decode_bundle_slices(bytes)?.into_iter().map(<[u8]>::to_vec).collect())
}

/// Decodes a bundle into slices of `bytes`, one per entry, without copying them (the
/// verifier hashes each entry once and keeps none).
pub fn decode_bundle_slices(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let position = entries.len();
        if position == BUNDLE_ENTRIES_MAX {
            return Err(BundleError::TooManyEntries);
        }
        let (prefix, after) = rest
            .split_first_chunk::<2>()
            .ok_or(BundleError::TruncatedLength { position })?;
        let declared = usize::from(u16::from_be_bytes(*prefix));
        if after.len() < declared {
            return Err(BundleError::TruncatedEntry { position, declared, available: after.len() });
        }
        let (entry, after) = after.split_at(declared);
        entries.push(entry);
        rest = after;
    }
    Ok(entries)
}
