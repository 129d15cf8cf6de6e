//! AEAD sealing of values under a subject's data key, bound by associated data to the region,
//! subject, field and value id it belongs to, and the keyed digest that gives each value a
//! deterministic id.
//!
//! Sealed value layout (format version 1):
//!
//! ```text
//! offset  bytes  content
//! 0       1      format version, 0x01
//! 1       12     nonce, random per seal (96 bits)
//! 13      n      AES-256-GCM ciphertext of the plaintext (n = plaintext length)
//! 13 + n  16     GCM tag (128 bits)
//! ```
//!
//! The associated data is [`ValueAad::to_bytes`]; it is not stored, the reader rebuilds it
//! from where the value was found, so a sealed value copied to another subject, field, value
//! id or region fails its integrity check.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use model::{FieldKind, RegionId, SubjectId};
use zeroize::Zeroizing;

/// Length of a data key: AES-256.
pub const DATA_KEY_BYTES: usize = 32;
/// Length of a value id ([`value_digest`]).
pub const VALUE_ID_BYTES: usize = 16;
/// Format version of sealed values, their first byte.
pub const SEALED_FORMAT_VERSION: u8 = 1;
/// Format version of the associated data, its first byte.
pub const VALUE_AAD_FORMAT_VERSION: u8 = 1;
/// GCM nonce length: 96 bits, random per seal. With at most a few thousand values per data
/// key the chance of a repeated nonce is negligible (birthday bound at 2^48 seals).
pub const NONCE_BYTES: usize = 12;
/// GCM tag length: 128 bits.
pub const TAG_BYTES: usize = 16;
/// What sealing adds to a plaintext: version byte, nonce and tag.
pub const SEALED_OVERHEAD_BYTES: usize = 1 + NONCE_BYTES + TAG_BYTES;
/// Largest plaintext `seal` accepts. Field values are short (a free-text field is the
/// longest); the bound keeps one value from growing a row without limit.
pub const PLAINTEXT_BYTES_MAX: usize = 64 * 1024;
/// Largest sealed value `open` accepts.
pub const SEALED_BYTES_MAX: usize = PLAINTEXT_BYTES_MAX + SEALED_OVERHEAD_BYTES;

/// Domain separation for the value-id subkey, so that the digest key is never the AES key.
const VALUE_ID_SUBKEY_LABEL: &[u8] = b"custos value-id v1";

/// Why sealing or opening a value failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "sealed value failed its integrity check (wrong key, or wrong region, subject, field or value id, or tampered)"
    )]
    Integrity,
    #[error("sealed value is truncated: {length} bytes, at least {minimum} expected")]
    Truncated { length: usize, minimum: usize },
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("sealed value is too large: {length} bytes, at most {maximum} accepted")]
    SealedTooLarge { length: usize, maximum: usize },
    #[error("value is too large to seal: {length} bytes, at most {maximum} accepted")]
    PlaintextTooLarge { length: usize, maximum: usize },
    #[error("the system random number generator failed")]
    Random,
}

/// A subject's 256-bit data key. The bytes are wiped when the key is dropped and never
/// printed; only key providers read them, to wrap the key.
pub struct DataKey {
    bytes: Zeroizing<[u8; DATA_KEY_BYTES]>,
}

impl DataKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<DataKey, SealError> {
        let mut bytes = Zeroizing::new([0u8; DATA_KEY_BYTES]);
        SystemRandom::new().fill(bytes.as_mut()).map_err(|_| SealError::Random)?;
        Ok(DataKey { bytes })
    }

    /// A key from its bytes, as a provider unwrapped them.
    pub fn from_bytes(bytes: [u8; DATA_KEY_BYTES]) -> DataKey {
        DataKey { bytes: Zeroizing::new(bytes) }
    }

    /// The key bytes, for key providers to wrap. Do not copy them anywhere else.
    pub fn as_bytes(&self) -> &[u8; DATA_KEY_BYTES] {
        &self.bytes
    }

    fn aead_key(&self) -> LessSafeKey {
        let unbound = UnboundKey::new(&AES_256_GCM, self.bytes.as_ref())
            .expect("a data key has the AES-256 key length");
        LessSafeKey::new(unbound)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(redacted)")
    }
}

/// Where a sealed value lives. Sealing binds the ciphertext to all four parts.
#[derive(Debug, Clone, Copy)]
pub struct ValueAad<'a> {
    pub region: &'a RegionId,
    pub subject: &'a SubjectId,
    pub field: FieldKind,
    pub value_id: &'a [u8; VALUE_ID_BYTES],
}

impl ValueAad<'_> {
    /// The associated data bytes. Layout (version 1): one version byte `0x01`, then four
    /// parts, each a big-endian u16 length followed by the bytes: the region name, the subject
    /// id, the field's snake_case name, the 16-byte value id. The lengths make the encoding
    /// unambiguous: no two different (region, subject, field, value id) give the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let parts: [&[u8]; 4] = [
            self.region.as_str().as_bytes(),
            self.subject.as_str().as_bytes(),
            self.field.as_str().as_bytes(),
            self.value_id,
        ];
        let mut bytes = Vec::with_capacity(1 + parts.iter().map(|part| 2 + part.len()).sum::<usize>());
        bytes.push(VALUE_AAD_FORMAT_VERSION);
        for part in parts {
            push_length_prefixed(&mut bytes, part);
        }
        bytes
    }
}

/// Appends `part` with its length as a big-endian u16.
pub(crate) fn push_length_prefixed(bytes: &mut Vec<u8>, part: &[u8]) {
    // INVARIANT: ids are at most 128 bytes and value ids 16, far below u16::MAX.
    let length = u16::try_from(part.len()).expect("associated data parts are short");
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(part);
}

/// Seals `plaintext` under `key`, bound to `aad`, with a fresh random nonce.
pub fn seal(key: &DataKey, aad: &ValueAad, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    if plaintext.len() > PLAINTEXT_BYTES_MAX {
        return Err(SealError::PlaintextTooLarge { length: plaintext.len(), maximum: PLAINTEXT_BYTES_MAX });
    }
    let mut nonce = [0u8; NONCE_BYTES];
    SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
    seal_with_nonce(key, aad, plaintext, nonce)
}

fn seal_with_nonce(key: &DataKey, aad: &ValueAad, plaintext: &[u8], nonce: [u8; NONCE_BYTES]) -> Result<Vec<u8>, SealError> {
    let mut sealed = Vec::with_capacity(plaintext.len() + SEALED_OVERHEAD_BYTES);
    sealed.push(SEALED_FORMAT_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    // The plaintext is encrypted in place, so no copy of it stays in `sealed`.
    let tag = key
        .aead_key()
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.to_bytes()),
            &mut sealed[1 + NONCE_BYTES..],
        )
        .map_err(|_| SealError::PlaintextTooLarge { length: plaintext.len(), maximum: PLAINTEXT_BYTES_MAX })?;
    sealed.extend_from_slice(tag.as_ref());
    debug_assert_eq!(sealed.len(), plaintext.len() + SEALED_OVERHEAD_BYTES);
    Ok(sealed)
}

/// Opens a value sealed by [`seal`]. Any change to the sealed bytes, a wrong key or a wrong
/// `aad` gives [`SealError::Integrity`]; a value too short to be sealed, or of a format this
/// version does not know, gives a distinct error.
pub fn open(key: &DataKey, aad: &ValueAad, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() > SEALED_BYTES_MAX {
        return Err(SealError::SealedTooLarge { length: sealed.len(), maximum: SEALED_BYTES_MAX });
    }
    let Some((&version, rest)) = sealed.split_first() else {
        return Err(SealError::Truncated { length: 0, minimum: SEALED_OVERHEAD_BYTES });
    };
    if version != SEALED_FORMAT_VERSION {
        return Err(SealError::UnknownVersion(version));
    }
    if sealed.len() < SEALED_OVERHEAD_BYTES {
        return Err(SealError::Truncated { length: sealed.len(), minimum: SEALED_OVERHEAD_BYTES });
    }
    let (nonce, ciphertext_and_tag) = rest.split_at(NONCE_BYTES);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Integrity)?;
    let mut buffer = ciphertext_and_tag.to_vec();
    let plaintext_length = key
        .aead_key()
        .open_in_place(nonce, Aad::from(aad.to_bytes()), &mut buffer)
        .map_err(|_| SealError::Integrity)?
        .len();
    buffer.truncate(plaintext_length);
    Ok(buffer)
}

/// A deterministic 16-byte id for a value: re-ingesting the same value of the same field for
/// the same subject gives the same id, so ingestion is idempotent; without the data key the
/// id says nothing about the value, and once the key is destroyed it is meaningless.
///
/// `subkey = HMAC-SHA-256(data key, "custos value-id v1")`, then
/// `id = HMAC-SHA-256(subkey, field name ‖ 0x00 ‖ canonical)[..16]`. Field names never
/// contain 0x00, so the input is unambiguous.
pub fn value_digest(key: &DataKey, field: FieldKind, canonical: &[u8]) -> [u8; VALUE_ID_BYTES] {
    let root = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let subkey_bytes = hmac::sign(&root, VALUE_ID_SUBKEY_LABEL);
    let subkey = hmac::Key::new(hmac::HMAC_SHA256, subkey_bytes.as_ref());
    let mut context = hmac::Context::with_key(&subkey);
    context.update(field.as_str().as_bytes());
    context.update(&[0]);
    context.update(canonical);
    let tag = context.sign();
    let mut id = [0u8; VALUE_ID_BYTES];
    id.copy_from_slice(&tag.as_ref()[..VALUE_ID_BYTES]);
    id
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY_BYTES: [u8; 32] = [7; 32];
    const VALUE_ID: [u8; 16] = [0xab; 16];

    fn region(name: &str) -> RegionId {
        RegionId::new(name).unwrap()
    }

    fn subject(id: &str) -> SubjectId {
        SubjectId::new(id).unwrap()
    }

    /// Seals `plaintext` where `sealed_at` says, opens it where `opened_at` says, and checks
    /// the outcome.
    fn check(sealed_at: (&str, &str, FieldKind, [u8; 16]), opened_at: (&str, &str, FieldKind, [u8; 16]), expected: Result<&[u8], SealError>) {
        let key = DataKey::from_bytes(KEY_BYTES);
        let plaintext = b"203.0.113.7";
        let (region_a, subject_a) = (region(sealed_at.0), subject(sealed_at.1));
        let aad_a = ValueAad { region: &region_a, subject: &subject_a, field: sealed_at.2, value_id: &sealed_at.3 };
        let sealed = seal(&key, &aad_a, plaintext).unwrap();
        let (region_b, subject_b) = (region(opened_at.0), subject(opened_at.1));
        let aad_b = ValueAad { region: &region_b, subject: &subject_b, field: opened_at.2, value_id: &opened_at.3 };
        let opened = open(&key, &aad_b, &sealed);
        assert_eq!(opened, expected.map(<[u8]>::to_vec), "sealed at {sealed_at:?}, opened at {opened_at:?}");
    }

    #[test]
    fn associated_data_binds_every_part() {
        let here = ("us", "u-1", FieldKind::IpAddress, VALUE_ID);
        check(here, here, Ok(b"203.0.113.7"));
        check(here, ("eu", "u-1", FieldKind::IpAddress, VALUE_ID), Err(SealError::Integrity));
        check(here, ("us", "u-2", FieldKind::IpAddress, VALUE_ID), Err(SealError::Integrity));
        check(here, ("us", "u-1", FieldKind::Email, VALUE_ID), Err(SealError::Integrity));
        check(here, ("us", "u-1", FieldKind::IpAddress, [0xac; 16]), Err(SealError::Integrity));
    }

    #[test]
    fn associated_data_layout() {
        let (region, subject) = (region("us"), subject("u-1"));
        let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Email, value_id: &[0x11; 16] };
        let expected = "01\
                        0002 7573\
                        0003 752d31\
                        0005 656d61696c\
                        0010 11111111111111111111111111111111"
            .replace(' ', "");
        assert_eq!(hex::encode(aad.to_bytes()), expected);
    }

    #[test]
    fn associated_data_is_unambiguous_across_part_boundaries() {
        // Without length prefixes "us" + "-1x" and "us-" + "1x" would concatenate the same.
        let (region_a, subject_a) = (region("us"), subject("-1x"));
        let (region_b, subject_b) = (region("us-"), subject("1x"));
        let a = ValueAad { region: &region_a, subject: &subject_a, field: FieldKind::Name, value_id: &VALUE_ID };
        let b = ValueAad { region: &region_b, subject: &subject_b, field: FieldKind::Name, value_id: &VALUE_ID };
        assert_ne!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn wrong_key_fails_integrity() {
        let (region, subject) = (region("us"), subject("u-1"));
        let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Phone, value_id: &VALUE_ID };
        let sealed = seal(&DataKey::from_bytes(KEY_BYTES), &aad, b"+15550100").unwrap();
        assert_eq!(open(&DataKey::from_bytes([8; 32]), &aad, &sealed), Err(SealError::Integrity));
        assert_eq!(open(&DataKey::generate().unwrap(), &aad, &sealed), Err(SealError::Integrity));
    }

    #[test]
    fn malformed_sealed_values_have_their_own_errors() {
        let key = DataKey::from_bytes(KEY_BYTES);
        let (region, subject) = (region("us"), subject("u-1"));
        let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Text, value_id: &VALUE_ID };
        let sealed = seal(&key, &aad, b"x").unwrap();
        assert_eq!(open(&key, &aad, &[]), Err(SealError::Truncated { length: 0, minimum: 29 }));
        assert_eq!(open(&key, &aad, &sealed[..28]), Err(SealError::Truncated { length: 28, minimum: 29 }));
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert_eq!(open(&key, &aad, &other_version), Err(SealError::UnknownVersion(2)));
        // A plaintext-free sealed value (29 bytes) is well formed; dropping its last tag byte
        // makes it truncated, dropping one ciphertext byte of a longer one breaks the tag.
        let empty = seal(&key, &aad, b"").unwrap();
        assert_eq!(open(&key, &aad, &empty), Ok(Vec::new()));
        assert_eq!(open(&key, &aad, &sealed[..sealed.len() - 1]), Err(SealError::Integrity));
        let too_large = vec![1u8; SEALED_BYTES_MAX + 1];
        assert_eq!(
            open(&key, &aad, &too_large),
            Err(SealError::SealedTooLarge { length: SEALED_BYTES_MAX + 1, maximum: SEALED_BYTES_MAX })
        );
    }

    #[test]
    fn plaintext_size_is_bounded() {
        let key = DataKey::from_bytes(KEY_BYTES);
        let (region, subject) = (region("us"), subject("u-1"));
        let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Text, value_id: &VALUE_ID };
        let largest = vec![b'a'; PLAINTEXT_BYTES_MAX];
        let sealed = seal(&key, &aad, &largest).unwrap();
        assert_eq!(sealed.len(), SEALED_BYTES_MAX);
        assert_eq!(open(&key, &aad, &sealed).unwrap(), largest);
        assert_eq!(
            seal(&key, &aad, &vec![b'a'; PLAINTEXT_BYTES_MAX + 1]),
            Err(SealError::PlaintextTooLarge { length: PLAINTEXT_BYTES_MAX + 1, maximum: PLAINTEXT_BYTES_MAX })
        );
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let key = DataKey::from_bytes(KEY_BYTES);
        let (region, subject) = (region("us"), subject("u-1"));
        let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Email, value_id: &VALUE_ID };
        let first = seal(&key, &aad, b"a@example.com").unwrap();
        let second = seal(&key, &aad, b"a@example.com").unwrap();
        assert_ne!(first[1..13], second[1..13]);
        assert_eq!(first[0], SEALED_FORMAT_VERSION);
    }

    #[test]
    fn generated_keys_differ_and_debug_hides_them() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(format!("{a:?}"), "DataKey(redacted)");
    }

    /// Known answer, computed independently with Python's `hmac` module:
    /// `sub = hmac(bytes([7]*32), b"custos value-id v1", sha256)`,
    /// `hmac(sub, b"email\x00a@example.com", sha256)[:16]`.
    #[test]
    fn value_digest_known_answer() {
        let key = DataKey::from_bytes(KEY_BYTES);
        let id = value_digest(&key, FieldKind::Email, b"a@example.com");
        assert_eq!(hex::encode(id), VALUE_DIGEST_KNOWN_ANSWER);
    }

    const VALUE_DIGEST_KNOWN_ANSWER: &str = "889522ff5195590eb239c38c7b426e0d";

    /// Known answer, computed independently with Python's `cryptography` (AESGCM with key
    /// `07`×32, nonce `00 01 … 0b`, the associated data of `associated_data_layout`).
    #[test]
    fn seal_known_answer() {
        let (region, subject) = (region("us"), subject("u-1"));
        let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Email, value_id: &[0x11; 16] };
        let nonce: [u8; 12] = std::array::from_fn(|index| index as u8);
        let sealed = seal_with_nonce(&DataKey::from_bytes(KEY_BYTES), &aad, b"a@example.com", nonce).unwrap();
        assert_eq!(hex::encode(&sealed), SEAL_KNOWN_ANSWER);
        assert_eq!(open(&DataKey::from_bytes(KEY_BYTES), &aad, &sealed).unwrap(), b"a@example.com");
    }

    const SEAL_KNOWN_ANSWER: &str = "01000102030405060708090a0b79c18c087c64a925129c86f38ff3697577f1a74438d89e5e74033c0892";

    #[test]
    fn value_digest_separates_keys_fields_and_values() {
        let key = DataKey::from_bytes(KEY_BYTES);
        let base = value_digest(&key, FieldKind::Name, b"ada");
        assert_eq!(base, value_digest(&key, FieldKind::Name, b"ada"));
        assert_ne!(base, value_digest(&key, FieldKind::Text, b"ada"));
        assert_ne!(base, value_digest(&key, FieldKind::Name, b"ada "));
        assert_ne!(base, value_digest(&DataKey::from_bytes([8; 32]), FieldKind::Name, b"ada"));
    }

    proptest! {
        #[test]
        fn round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..512), key in any::<[u8; 32]>(), value_id in any::<[u8; 16]>()) {
            let key = DataKey::from_bytes(key);
            let (region, subject) = (region("eu"), subject("subject-9"));
            let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::Location, value_id: &value_id };
            let sealed = seal(&key, &aad, &plaintext).unwrap();
            prop_assert_eq!(sealed.len(), plaintext.len() + SEALED_OVERHEAD_BYTES);
            prop_assert_eq!(open(&key, &aad, &sealed).unwrap(), plaintext);
        }

        /// Flipping any bits of any byte never yields a plaintext: byte 0 is the format
        /// version (a distinct error), every other byte fails the integrity check.
        #[test]
        fn tampering_any_byte_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..64), position in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let key = DataKey::from_bytes(KEY_BYTES);
            let (region, subject) = (region("us"), subject("u-1"));
            let aad = ValueAad { region: &region, subject: &subject, field: FieldKind::DeviceId, value_id: &VALUE_ID };
            let mut sealed = seal(&key, &aad, &plaintext).unwrap();
            let position = position.index(sealed.len());
            sealed[position] ^= flip;
            let expected = if position == 0 { SealError::UnknownVersion(SEALED_FORMAT_VERSION ^ flip) } else { SealError::Integrity };
            prop_assert_eq!(open(&key, &aad, &sealed), Err(expected));
        }
    }
}
