//! The wrapped data key format both providers share, and its associated data.
//!
//! ```text
//! offset  bytes  content
//! 0       1      format version, 0x01
//! 1       12     GCM nonce, random per wrap
//! 13      32     AES-256-GCM ciphertext of the data key
//! 45      16     GCM tag
//! ```
//!
//! Associated data: the length-prefixed (big-endian u16) parts `"custos data-key v1"`, region
//! name, subject id. It binds a wrapped key to its subject and region: moved to another
//! subject's row, it no longer unwraps.

use model::{RegionId, SubjectId};

use crate::aead::{DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES, push_length_prefixed};
use crate::provider::KeyError;

/// Length of the key-encryption keys both providers use: AES-256.
pub(crate) const KEK_BYTES: usize = 32;
pub(crate) const WRAPPED_FORMAT_VERSION: u8 = 1;
/// Length of a wrapped data key.
pub(crate) const WRAPPED_KEY_BYTES: usize = 1 + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES;

const WRAP_AAD_LABEL: &[u8] = b"custos data-key v1";

pub(crate) fn wrap_aad(region: &RegionId, subject: &SubjectId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(6 + WRAP_AAD_LABEL.len() + region.as_str().len() + subject.as_str().len());
    push_length_prefixed(&mut aad, WRAP_AAD_LABEL);
    push_length_prefixed(&mut aad, region.as_str().as_bytes());
    push_length_prefixed(&mut aad, subject.as_str().as_bytes());
    aad
}

/// A wrapped key's parts, as read back.
pub(crate) struct WrappedParts<'a> {
    pub nonce: [u8; NONCE_BYTES],
    pub ciphertext_and_tag: &'a [u8],
}

/// Splits wrapped bytes; anything not of the one known shape was tampered with, which the
/// provider contract reports as an integrity failure.
pub(crate) fn split_wrapped(bytes: &[u8]) -> Result<WrappedParts<'_>, KeyError> {
    if bytes.len() != WRAPPED_KEY_BYTES || bytes[0] != WRAPPED_FORMAT_VERSION {
        return Err(KeyError::Integrity);
    }
    let (nonce, ciphertext_and_tag) = bytes[1..].split_at(NONCE_BYTES);
    Ok(WrappedParts { nonce: nonce.try_into().expect("split at the nonce length"), ciphertext_and_tag })
}

pub(crate) fn join_wrapped(nonce: &[u8; NONCE_BYTES], ciphertext_and_tag: &[u8]) -> Vec<u8> {
    // INVARIANT: both providers produce ciphertext ‖ tag of exactly the data key length plus
    // the tag; a provider returning anything else is a bug, caught here before it is stored.
    assert_eq!(ciphertext_and_tag.len(), DATA_KEY_BYTES + TAG_BYTES, "wrapped data key has the wrong length");
    let mut bytes = Vec::with_capacity(WRAPPED_KEY_BYTES);
    bytes.push(WRAPPED_FORMAT_VERSION);
    bytes.extend_from_slice(nonce);
    bytes.extend_from_slice(ciphertext_and_tag);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_layout() {
        let aad = wrap_aad(&RegionId::new("eu").unwrap(), &SubjectId::new("u-7").unwrap());
        let expected = format!("0012{}0002{}0003{}", hex::encode("custos data-key v1"), hex::encode("eu"), hex::encode("u-7"));
        assert_eq!(hex::encode(aad), expected);
    }

    #[test]
    fn split_refuses_other_shapes() {
        let good = join_wrapped(&[1; 12], &[2; 48]);
        assert_eq!(good.len(), WRAPPED_KEY_BYTES);
        assert!(split_wrapped(&good).is_ok());
        assert!(matches!(split_wrapped(&good[..60]), Err(KeyError::Integrity)));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(split_wrapped(&longer), Err(KeyError::Integrity)));
        let mut other_version = good;
        other_version[0] = 2;
        assert!(matches!(split_wrapped(&other_version), Err(KeyError::Integrity)));
    }
}
