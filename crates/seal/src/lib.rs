//! Sealing of personal data: per-subject data keys, AEAD sealing bound to where a value lives,
//! and the key providers that hold each region's key-encryption keys (a keyring file, or a
//! PKCS#11 token where the key never leaves the device).
//!
//! Key hierarchy (see ARCHITECTURE.md): value ← data key (one per subject, 256 bits) ← the
//! key-encryption key of the subject's *shred group* in its region. Erasing a subject deletes
//! its wrapped data key and rotates its shred group's key-encryption key, destroying the old
//! version, so a copy of the database taken before the erase cannot be opened any more.
//!
//! Key providers block (file IO, HSM calls): call them from a blocking pool. Unwrapped data
//! keys are cached in [`DataKeyCache`]; data keys never reach a provider's storage.

mod aead;
mod cache;
mod keyring;
mod pkcs11;
mod provider;
#[cfg(feature = "softhsm-testing")]
pub mod softhsm_testing;
mod wrapping;

pub use aead::{
    DATA_KEY_BYTES, DataKey, NONCE_BYTES, PLAINTEXT_BYTES_MAX, SEALED_BYTES_MAX, SEALED_FORMAT_VERSION,
    SEALED_OVERHEAD_BYTES, SealError, TAG_BYTES, VALUE_AAD_FORMAT_VERSION, VALUE_ID_BYTES, ValueAad, open, seal,
    value_digest,
};
pub use cache::{DATA_KEY_CACHE_AGE_MAX, DATA_KEY_CACHE_ENTRIES_MAX, DataKeyCache};
pub use keyring::{KEYRING_FILE_BYTES_MAX, KeyringFile};
pub use pkcs11::{PKCS11_SESSIONS_POOLED_MAX, Pkcs11Config, Pkcs11Provider};
pub use provider::{KeyError, KeyProvider, KekVersion, SHRED_GROUPS, ShredGroup, WrappedKey, shred_group_of};
