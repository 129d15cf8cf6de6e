//! Ed25519 note signatures (signed-note v1.0.0, signature type 0x01), key IDs, and
//! verifier keys (`<name>+<hex key ID>+base64(type ‖ public key)`) for every type this
//! crate knows. Keys come in as bytes; this crate never generates them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::cosignature::CosignatureVerifier;
use crate::hash::hex_decode;
use crate::note::{KeyId, KeyName, KeyNameError, NoteSignature, NoteVerifier, SignatureError};

/// Signature type byte of plain Ed25519 note signatures.
pub const SIGNATURE_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 checkpoint cosignatures.
pub const SIGNATURE_TYPE_COSIGNATURE_ED25519: u8 = 0x04;

/// Bytes of an Ed25519 public key, secret key and signature.
pub const ED25519_PUBLIC_KEY_BYTES: usize = 32;
pub const ED25519_SECRET_KEY_BYTES: usize = 32;
pub const ED25519_SIGNATURE_BYTES: usize = 64;

/// Signs notes with an Ed25519 key (type 0x01).
pub struct Signer {
    name: KeyName,
    key: SigningKey,
}

/// Verifies Ed25519 note signatures (type 0x01) with `verify_strict`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: KeyName,
    key_id: KeyId,
    key: VerifyingKey,
}

/// A parsed verifier key of any signature type, not yet tied to an algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vkey {
    pub name: KeyName,
    pub key_id: KeyId,
    pub signature_type: u8,
    pub public_key: Vec<u8>,
}

/// Why a key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key name is invalid")]
    Name(#[from] KeyNameError),
    #[error("public key is not a valid Ed25519 point")]
    PublicKey,
}

/// Why a verifier key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VkeyError {
    #[error("verifier key is not <name>+<key id>+<base64 key>")]
    Format,
    #[error("verifier key name is invalid")]
    Name(#[from] KeyNameError),
    #[error("verifier key ID {text:?} is not 8 lowercase hexadecimal digits")]
    KeyIdHex { text: String },
    #[error("verifier key material is not valid standard base64")]
    Base64,
    #[error("verifier key material is empty")]
    Empty,
    #[error("verifier key has signature type {found:#04x}, expected {expected:#04x}")]
    SignatureType { expected: u8, found: u8 },
    #[error("verifier key has unsupported signature type {found:#04x}")]
    UnsupportedType { found: u8 },
    #[error("public key has {actual} bytes, expected {ED25519_PUBLIC_KEY_BYTES}")]
    PublicKeyLength { actual: usize },
    #[error("public key is not a valid Ed25519 point")]
    PublicKey,
    #[error("verifier key states key ID {stated} but the key hashes to {computed}")]
    KeyIdMismatch { stated: KeyId, computed: KeyId },
}

/// The key ID `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`, big-endian.
pub fn key_id(name: &KeyName, signature_type: u8, public_key: &[u8]) -> KeyId {
    let mut hasher = Sha256::new();
    hasher.update(name.as_str().as_bytes());
    hasher.update([b'\n', signature_type]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    KeyId(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]))
}

/// Parses a vkey string into a verifier for its type: 0x01 gives a [`Verifier`], 0x04 a
/// [`CosignatureVerifier`].
pub fn verifier_from_vkey(vkey: &str) -> Result<Box<dyn NoteVerifier>, VkeyError> {
    let parsed = Vkey::parse(vkey)?;
    match parsed.signature_type {
        SIGNATURE_TYPE_ED25519 => Ok(Box::new(Verifier::from_parsed(&parsed)?)),
        SIGNATURE_TYPE_COSIGNATURE_ED25519 => Ok(Box::new(CosignatureVerifier::from_parsed(&parsed)?)),
        found => Err(VkeyError::UnsupportedType { found }),
    }
}

impl Signer {
    /// A signer named `name` with the 32-byte Ed25519 secret key (seed).
    pub fn new(name: &str, secret_key: &[u8; ED25519_SECRET_KEY_BYTES]) -> Result<Signer, KeyError> {
        Ok(Signer { name: KeyName::new(name)?, key: SigningKey::from_bytes(secret_key) })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        key_id(&self.name, SIGNATURE_TYPE_ED25519, self.key.verifying_key().as_bytes())
    }

    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_BYTES] {
        self.key.verifying_key().to_bytes()
    }

    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), key_id: self.key_id(), key: self.key.verifying_key() }
    }

    /// Signs a note text (which must end in a newline) and returns the signature line.
    pub fn sign(&self, text: &str) -> NoteSignature {
        let signature = self.key.sign(text.as_bytes());
        NoteSignature::new(self.name.clone(), self.key_id(), signature.to_bytes().to_vec())
            .expect("an Ed25519 signature is not empty")
    }
}

impl fmt::Debug for Signer {
    /// Shows the public identity only, never the secret key.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(name: &str, public_key: &[u8; ED25519_PUBLIC_KEY_BYTES]) -> Result<Verifier, KeyError> {
        let name = KeyName::new(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::PublicKey)?;
        Ok(Verifier { key_id: key_id(&name, SIGNATURE_TYPE_ED25519, public_key), name, key })
    }

    /// Parses a vkey of type 0x01, checking that its key ID matches the key.
    pub fn from_vkey(vkey: &str) -> Result<Verifier, VkeyError> {
        Verifier::from_parsed(&Vkey::parse(vkey)?)
    }

    pub fn to_vkey(&self) -> String {
        Vkey {
            name: self.name.clone(),
            key_id: self.key_id,
            signature_type: SIGNATURE_TYPE_ED25519,
            public_key: self.key.to_bytes().to_vec(),
        }
        .to_string()
    }

    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_BYTES] {
        self.key.to_bytes()
    }

    fn from_parsed(vkey: &Vkey) -> Result<Verifier, VkeyError> {
        let key = vkey.ed25519_key(SIGNATURE_TYPE_ED25519)?;
        Ok(Verifier { name: vkey.name.clone(), key_id: vkey.key_id, key })
    }
}

impl NoteVerifier for Verifier {
    fn name(&self) -> &KeyName {
        &self.name
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn verify(&self, text: &str, signature: &[u8]) -> Result<(), SignatureError> {
        verify_ed25519(&self.key, text.as_bytes(), signature)
    }
}

impl Vkey {
    /// Splits `<name>+<hex8>+<base64>`. The name cannot contain `+`, but base64 can, so
    /// only the first two `+` separate.
    pub fn parse(text: &str) -> Result<Vkey, VkeyError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hex), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VkeyError::Format);
        };
        let name = KeyName::new(name)?;
        let key_id_bytes = hex_decode(hex)
            .filter(|bytes| bytes.len() == 4)
            .ok_or_else(|| VkeyError::KeyIdHex { text: hex.to_owned() })?;
        let key_id = KeyId(u32::from_be_bytes([
            key_id_bytes[0],
            key_id_bytes[1],
            key_id_bytes[2],
            key_id_bytes[3],
        ]));
        let material = BASE64.decode(encoded).map_err(|_| VkeyError::Base64)?;
        let (&signature_type, public_key) = material.split_first().ok_or(VkeyError::Empty)?;
        Ok(Vkey { name, key_id, signature_type, public_key: public_key.to_vec() })
    }

    /// The Ed25519 key of a vkey of `expected_type`, after checking the stated key ID.
    pub(crate) fn ed25519_key(&self, expected_type: u8) -> Result<VerifyingKey, VkeyError> {
        if self.signature_type != expected_type {
            return Err(VkeyError::SignatureType { expected: expected_type, found: self.signature_type });
        }
        let bytes: &[u8; ED25519_PUBLIC_KEY_BYTES] = self
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| VkeyError::PublicKeyLength { actual: self.public_key.len() })?;
        let computed = key_id(&self.name, expected_type, bytes);
        if computed != self.key_id {
            return Err(VkeyError::KeyIdMismatch { stated: self.key_id, computed });
        }
        VerifyingKey::from_bytes(bytes).map_err(|_| VkeyError::PublicKey)
    }
}

impl fmt::Display for Vkey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = Vec::with_capacity(1 + self.public_key.len());
        material.push(self.signature_type);
        material.extend_from_slice(&self.public_key);
        write!(formatter, "{}+{}+{}", self.name, self.key_id, BASE64.encode(material))
    }
}

/// Strict Ed25519 verification: rejects small-order keys and non-canonical signatures,
/// so one message has one valid signature encoding per key.
pub(crate) fn verify_ed25519(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let bytes: &[u8; ED25519_SIGNATURE_BYTES] = signature.try_into().map_err(|_| SignatureError::Length {
        expected: ED25519_SIGNATURE_BYTES,
        actual: signature.len(),
    })?;
    key.verify_strict(message, &Signature::from_bytes(bytes))
        .map_err(|_| SignatureError::Invalid)
}
