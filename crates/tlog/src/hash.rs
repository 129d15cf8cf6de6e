//! SHA-256 hashes as RFC 6962 uses them: leaf and interior-node hashing with domain
//! separation, and the newtypes for hashes, tree sizes and leaf indexes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

/// Length of a SHA-256 hash in bytes.
pub const HASH_BYTES: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_BYTES]);

/// The number of leaves in a tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct TreeSize(pub u64);

/// The zero-based position of a leaf in the log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct LeafIndex(pub u64);

/// Why a textual hash was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("hash is not valid standard base64")]
    Base64,
    #[error("hash is not lowercase hexadecimal")]
    Hex,
    #[error("hash has {actual} bytes, expected 32")]
    Length { actual: usize },
}

/// The RFC 6962 leaf hash `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// The RFC 6962 interior node hash `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// The root of the empty tree, `SHA-256()` (RFC 6962 §2.1). Not all zeroes: some
/// implementations got this wrong, see the project's log-formats notes.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

impl Hash {
    pub const fn from_bytes(bytes: [u8; HASH_BYTES]) -> Hash {
        Hash(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashParseError> {
        let array: [u8; HASH_BYTES] = bytes
            .try_into()
            .map_err(|_| HashParseError::Length { actual: bytes.len() })?;
        Ok(Hash(array))
    }

    pub const fn as_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.0
    }

    /// Standard base64 with padding (RFC 4648 §4), as used in checkpoints and proofs.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses canonical standard base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Hash, HashParseError> {
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(|_| HashParseError::Base64)?;
        Hash::from_slice(&bytes)
    }

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 lowercase hexadecimal characters.
    pub fn from_hex(text: &str) -> Result<Hash, HashParseError> {
        let bytes = hex_decode(text).ok_or(HashParseError::Hex)?;
        Hash::from_slice(&bytes)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

impl fmt::Display for LeafIndex {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Decodes lowercase hexadecimal only: the C2SP specs fix the case, and accepting both
/// would give one value two spellings.
pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Parses an ASCII decimal with no sign and no leading zeroes (except `0` itself), the
/// number form every C2SP text format uses. `u64::from_str` is too lenient: it takes `+5`.
pub(crate) fn parse_canonical_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}
