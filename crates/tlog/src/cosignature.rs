//! Timestamped Ed25519 checkpoint cosignatures of c2sp.org/tlog-cosignature v1.0.1
//! (signature type 0x04). The signed message is `cosignature/v1\ntime <t>\n` followed by
//! the checkpoint text; the signature bytes are the u64 big-endian timestamp followed by
//! the 64-byte Ed25519 signature. Time is passed in: this crate reads no clock.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::checkpoint::Checkpoint;
use crate::ed25519::{
    ED25519_PUBLIC_KEY_BYTES, ED25519_SECRET_KEY_BYTES, ED25519_SIGNATURE_BYTES, KeyError,
    SIGNATURE_TYPE_COSIGNATURE_ED25519, Vkey, VkeyError, key_id, verify_ed25519,
};
use crate::note::{KeyId, KeyName, NoteSignature, NoteVerifier, SignatureError};

/// The largest timestamp a cosignature may carry: 2^63 - 1 seconds.
pub const COSIGNATURE_TIMESTAMP_SECONDS_MAX: u64 = i64::MAX as u64;
/// Bytes after the key ID: an 8-byte timestamp and a 64-byte signature.
pub const COSIGNATURE_BYTES: usize = 8 + ED25519_SIGNATURE_BYTES;

/// Cosigns checkpoints with an Ed25519 key, as a witness does.
pub struct Cosigner {
    name: KeyName,
    key: SigningKey,
}

/// Verifies Ed25519 cosignatures (type 0x04).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: KeyName,
    key_id: KeyId,
    key: VerifyingKey,
}

/// Why a checkpoint could not be cosigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    #[error("timestamp {timestamp_seconds} exceeds 2^63 - 1")]
    TimestampTooLarge { timestamp_seconds: u64 },
}

/// The message a cosignature signs: header line, time line, checkpoint text.
pub fn cosignature_message(checkpoint_text: &str, timestamp_seconds: u64) -> String {
    format!("cosignature/v1\ntime {timestamp_seconds}\n{checkpoint_text}")
}

impl Cosigner {
    pub fn new(name: &str, secret_key: &[u8; ED25519_SECRET_KEY_BYTES]) -> Result<Cosigner, KeyError> {
        Ok(Cosigner { name: KeyName::new(name)?, key: SigningKey::from_bytes(secret_key) })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        key_id(&self.name, SIGNATURE_TYPE_COSIGNATURE_ED25519, self.key.verifying_key().as_bytes())
    }

    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_BYTES] {
        self.key.verifying_key().to_bytes()
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier { name: self.name.clone(), key_id: self.key_id(), key: self.key.verifying_key() }
    }

    /// Cosigns `checkpoint` as of `timestamp_seconds` (POSIX time) and returns the
    /// signature line to append to the checkpoint note.
    pub fn cosign(&self, checkpoint: &Checkpoint, timestamp_seconds: u64) -> Result<NoteSignature, CosignError> {
        if timestamp_seconds > COSIGNATURE_TIMESTAMP_SECONDS_MAX {
            return Err(CosignError::TimestampTooLarge { timestamp_seconds });
        }
        let message = cosignature_message(&checkpoint.to_text(), timestamp_seconds);
        let signature = self.key.sign(message.as_bytes());
        let mut bytes = Vec::with_capacity(COSIGNATURE_BYTES);
        bytes.extend_from_slice(&timestamp_seconds.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(NoteSignature::new(self.name.clone(), self.key_id(), bytes).expect("a cosignature is not empty"))
    }
}

impl fmt::Debug for Cosigner {
    /// Shows the public identity only, never the secret key.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl CosignatureVerifier {
    pub fn new(name: &str, public_key: &[u8; ED25519_PUBLIC_KEY_BYTES]) -> Result<CosignatureVerifier, KeyError> {
        let name = KeyName::new(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::PublicKey)?;
        Ok(CosignatureVerifier {
            key_id: key_id(&name, SIGNATURE_TYPE_COSIGNATURE_ED25519, public_key),
            name,
            key,
        })
    }

    /// Parses a vkey of type 0x04, checking that its key ID matches the key.
    pub fn from_vkey(vkey: &str) -> Result<CosignatureVerifier, VkeyError> {
        CosignatureVerifier::from_parsed(&Vkey::parse(vkey)?)
    }

    pub fn to_vkey(&self) -> String {
        Vkey {
            name: self.name.clone(),
            key_id: self.key_id,
            signature_type: SIGNATURE_TYPE_COSIGNATURE_ED25519,
            public_key: self.key.to_bytes().to_vec(),
        }
        .to_string()
    }

    /// Verifies a cosignature (the bytes after the key ID) over the checkpoint text and
    /// returns the timestamp it carries, in POSIX seconds.
    pub fn verify_cosignature(&self, checkpoint_text: &str, signature: &[u8]) -> Result<u64, SignatureError> {
        let (timestamp, ed25519_signature) = signature
            .split_first_chunk::<8>()
            .filter(|_| signature.len() == COSIGNATURE_BYTES)
            .ok_or(SignatureError::Length { expected: COSIGNATURE_BYTES, actual: signature.len() })?;
        let timestamp = u64::from_be_bytes(*timestamp);
        if timestamp > COSIGNATURE_TIMESTAMP_SECONDS_MAX {
            return Err(SignatureError::TimestampTooLarge { timestamp });
        }
        let message = cosignature_message(checkpoint_text, timestamp);
        verify_ed25519(&self.key, message.as_bytes(), ed25519_signature)?;
        Ok(timestamp)
    }

    pub(crate) fn from_parsed(vkey: &Vkey) -> Result<CosignatureVerifier, VkeyError> {
        let key = vkey.ed25519_key(SIGNATURE_TYPE_COSIGNATURE_ED25519)?;
        Ok(CosignatureVerifier { name: vkey.name.clone(), key_id: vkey.key_id, key })
    }
}

impl NoteVerifier for CosignatureVerifier {
    fn name(&self) -> &KeyName {
        &self.name
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn verify(&self, text: &str, signature: &[u8]) -> Result<(), SignatureError> {
        self.verify_cosignature(text, signature).map(|_| ())
    }
}
