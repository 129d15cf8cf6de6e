//! Sealing of personal data: per-subject data keys, AEAD sealing bound to where a value lives,
//! and the key providers that hold each region's key-encryption keys (a keyring file, or a
//! PKCS#11 token where the key never leaves the device).
//!
//! Key hierarchy (see ARCHITECTURE.md): value ← data key (one per subject, 256 bits) ← the
//! key-encryption key of the subject's *shred group* in its region. Erasing a subject deletes
//! its wrapped data key and rotates its shred group's key-encryption key, destroying the old
//! version, so a copy of the database taken before the erase cannot be opened any more.

mod aead;
mod cache;
mod keyring;
mod pkcs11;
mod provider;

pub use aead::{DataKey, SealError, ValueAad, open, seal, value_digest};
pub use cache::{DATA_KEY_CACHE_AGE_MAX, DATA_KEY_CACHE_ENTRIES_MAX, DataKeyCache};
pub use keyring::KeyringFile;
pub use pkcs11::{Pkcs11Config, Pkcs11Provider};
pub use provider::{KeyError, KeyProvider, KekVersion, SHRED_GROUPS, ShredGroup, WrappedKey, shred_group_of};
