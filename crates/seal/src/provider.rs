//! The key-provider interface: wrap and unwrap data keys under a region's key-encryption keys,
//! one key per shred group, versioned so that rotation and erasure can destroy old versions.

use model::{RegionId, SubjectId};

use crate::DataKey;

/// Number of shred groups per region. Erasing one subject re-wraps the data keys of the other
/// subjects in its group (about subjects / SHRED_GROUPS of them), then destroys the group's
/// old key-encryption key.
pub const SHRED_GROUPS: u16 = 256;

/// A shred group, `0..SHRED_GROUPS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShredGroup(u16);

impl ShredGroup {
    pub fn new(value: u16) -> Option<Self> {
        (value < SHRED_GROUPS).then_some(Self(value))
    }
    pub fn as_u16(self) -> u16 {
        self.0
    }
    pub fn all() -> impl Iterator<Item = ShredGroup> {
        (0..SHRED_GROUPS).map(ShredGroup)
    }
}

/// The shred group a subject belongs to: a stable hash of its id.
pub fn shred_group_of(subject: &SubjectId) -> ShredGroup {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject.as_str().as_bytes());
    let bytes = digest.as_ref();
    ShredGroup(u16::from_be_bytes([bytes[0], bytes[1]]) % SHRED_GROUPS)
}

/// Version of a shred group's key-encryption key; starts at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekVersion(pub u32);

/// A data key wrapped by a key-encryption key: which one, and the opaque wrapped bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub group: ShredGroup,
    pub version: KekVersion,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key-encryption key {region}/{group}/v{version} does not exist (destroyed or never created)")]
    MissingKek { region: String, group: u16, version: u32 },
    #[error("wrapped data key failed its integrity check (wrong key, wrong subject or tampered)")]
    Integrity,
    #[error("keyring {path}: {message}")]
    Keyring { path: String, message: String },
    #[error("pkcs#11: {0}")]
    Pkcs11(String),
    /// `destroy_before` was asked to destroy the current version: that would leave the group
    /// without a key while data keys may still be wrapped under it. Rotate first.
    #[error(
        "refusing to destroy key-encryption key {region}/{group}/v{current}: it is the current version (asked to keep versions from v{keep_from}); rotate first"
    )]
    DestroyCurrent { region: String, group: u16, current: u32, keep_from: u32 },
}

/// Holds one region's key-encryption keys. Implementations block (file IO, HSM calls): call
/// them from a blocking pool, not from an async task.
pub trait KeyProvider: Send + Sync {
    fn region(&self) -> &RegionId;

    /// A short human description (`keyring /path`, `pkcs11 token custos`), never secret.
    fn describe(&self) -> String;

    /// Wraps `key` under the current version of `group`'s key-encryption key, creating
    /// version 1 on first use. The associated data binds the wrapped key to its subject.
    fn wrap(&self, group: ShredGroup, subject: &SubjectId, key: &DataKey) -> Result<WrappedKey, KeyError>;

    /// Unwraps a data key; fails with `Integrity` when it was wrapped for another subject or
    /// region, or tampered with, and `MissingKek` when that version was destroyed.
    fn unwrap(&self, subject: &SubjectId, wrapped: &WrappedKey) -> Result<DataKey, KeyError>;

    /// The version `wrap` uses now for `group`, if any was created.
    fn current_version(&self, group: ShredGroup) -> Result<Option<KekVersion>, KeyError>;

    /// Creates a new version of `group`'s key and makes it current. Older versions still
    /// unwrap until destroyed.
    fn rotate(&self, group: ShredGroup) -> Result<KekVersion, KeyError>;

    /// Destroys every version of `group`'s key older than `keep_from`. Irreversible. Fails
    /// with `DestroyCurrent`, destroying nothing, when `keep_from` is newer than the current
    /// version; does nothing for a group that has no key yet.
    fn destroy_before(&self, group: ShredGroup, keep_from: KekVersion) -> Result<(), KeyError>;
}
