//! The layout of one log entry: a format version byte, the 32-byte salt, and the canonical
//! decision bytes behind a big-endian u16 length.
//!
//! ```text
//! entry = 0x01 ‖ salt[32] ‖ u16_be(len(canonical)) ‖ canonical
//! ```
//!
//! The salt keeps published leaf hashes from confirming a guessed decision; the caller
//! draws it (from a CSPRNG) so that this function stays pure and testable. The length
//! prefix makes the layout self-delimiting, so a later version may append fields.

use tlog::ENTRY_BYTES_MAX;

/// The first byte of every entry this layout writes.
pub const ENTRY_FORMAT_VERSION: u8 = 1;
/// Bytes of the salt.
pub const SALT_BYTES: usize = 32;
/// Bytes of the header: version, salt, length.
const HEADER_BYTES: usize = 1 + SALT_BYTES + 2;
/// Largest canonical payload: what keeps the whole entry within [`ENTRY_BYTES_MAX`].
pub const CANONICAL_BYTES_MAX: usize = ENTRY_BYTES_MAX - HEADER_BYTES;

/// Why bytes are not (or cannot become) an entry of this layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryFormatError {
    #[error("canonical decision of {bytes} bytes exceeds {CANONICAL_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("entry of {bytes} bytes is shorter than its header")]
    Truncated { bytes: usize },
    #[error("entry format version {version} is not {ENTRY_FORMAT_VERSION}")]
    Version { version: u8 },
    #[error("entry declares {declared} payload bytes but carries {actual}")]
    Length { declared: usize, actual: usize },
}

/// Lays out one entry; refuses a payload that would make it exceed [`ENTRY_BYTES_MAX`].
pub fn salted_entry(canonical: &[u8], salt: [u8; SALT_BYTES]) -> Result<Vec<u8>, EntryFormatError> {
    let length = u16::try_from(canonical.len())
        .ok()
        .filter(|_| canonical.len() <= CANONICAL_BYTES_MAX)
        .ok_or(EntryFormatError::TooLarge {
            bytes: canonical.len(),
        })?;
    let mut entry = Vec::with_capacity(HEADER_BYTES + canonical.len());
    entry.push(ENTRY_FORMAT_VERSION);
    entry.extend_from_slice(&salt);
    entry.extend_from_slice(&length.to_be_bytes());
    entry.extend_from_slice(canonical);
    Ok(entry)
}

/// Splits an entry into its salt and canonical payload.
pub fn parse_salted_entry(entry: &[u8]) -> Result<([u8; SALT_BYTES], &[u8]), EntryFormatError> {
    if entry.len() < HEADER_BYTES {
        return Err(EntryFormatError::Truncated { bytes: entry.len() });
    }
    if entry[0] != ENTRY_FORMAT_VERSION {
        return Err(EntryFormatError::Version { version: entry[0] });
    }
    let mut salt = [0; SALT_BYTES];
    salt.copy_from_slice(&entry[1..=SALT_BYTES]);
    let declared = usize::from(u16::from_be_bytes([
        entry[1 + SALT_BYTES],
        entry[2 + SALT_BYTES],
    ]));
    let payload = &entry[HEADER_BYTES..];
    if payload.len() != declared {
        return Err(EntryFormatError::Length {
            declared,
            actual: payload.len(),
        });
    }
    Ok((salt, payload))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(
        canonical: &[u8],
        salt: [u8; SALT_BYTES],
        expected: Result<Vec<u8>, EntryFormatError>,
    ) {
        assert_eq!(salted_entry(canonical, salt), expected);
    }

    #[test]
    fn known_layouts() {
        let mut expected = vec![1];
        expected.extend_from_slice(&[0xab; 32]);
        expected.extend_from_slice(&[0x00, 0x03, b'a', b'b', b'c']);
        check(b"abc", [0xab; 32], Ok(expected));

        let mut empty = vec![1];
        empty.extend_from_slice(&[0; 32]);
        empty.extend_from_slice(&[0, 0]);
        check(b"", [0; 32], Ok(empty));

        let largest = salted_entry(&vec![9; CANONICAL_BYTES_MAX], [1; 32]).unwrap();
        assert_eq!(largest.len(), ENTRY_BYTES_MAX);
        check(
            &vec![9; CANONICAL_BYTES_MAX + 1],
            [1; 32],
            Err(EntryFormatError::TooLarge {
                bytes: CANONICAL_BYTES_MAX + 1,
            }),
        );
    }

    #[test]
    fn malformed_entries_are_refused() {
        let good = salted_entry(b"abc", [7; 32]).unwrap();
        assert_eq!(
            parse_salted_entry(&good[..34]),
            Err(EntryFormatError::Truncated { bytes: 34 })
        );
        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(
            parse_salted_entry(&version),
            Err(EntryFormatError::Version { version: 2 })
        );
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(
            parse_salted_entry(&longer),
            Err(EntryFormatError::Length {
                declared: 3,
                actual: 4
            })
        );
    }

    proptest! {
        #[test]
        fn entries_round_trip(canonical in proptest::collection::vec(any::<u8>(), 0..600), salt in any::<[u8; 32]>()) {
            let entry = salted_entry(&canonical, salt).unwrap();
            prop_assert_eq!(entry.len(), canonical.len() + 35);
            let (parsed_salt, payload) = parse_salted_entry(&entry).unwrap();
            prop_assert_eq!(parsed_salt, salt);
            prop_assert_eq!(payload, canonical.as_slice());
        }
    }
}
