//! The keyring file: the default key provider, holding each region's key-encryption keys in
//! one JSON file per deployment (e.g. `<data>/keyring.json`), readable by its owner only.
//!
//! File format (pretty-printed JSON, keys in base64, never a data key):
//!
//! ```json
//! {
//!   "format": "custos-keyring",
//!   "version": 1,
//!   "regions": {
//!     "us": { "groups": { "17": { "current": 2, "keys": { "1": "…", "2": "…" } } } },
//!     "eu": { "groups": {} }
//!   }
//! }
//! ```
//!
//! Keys are created lazily: version 1 of a group on its first wrap, the next version on
//! rotate. Every change rewrites the file atomically (temporary file in the same directory,
//! mode 0600, fsync, rename, fsync of the directory), so a crash leaves the old or the new
//! file, never a mix. The in-memory state changes only after the new file is durable.
//!
//! Sharing: all handles on one file in a process share one in-memory state (a process-wide
//! registry keyed by the canonical path), so a rotation through one handle is seen by all.
//! Across processes the file is not shared: a process holds an exclusive lock on
//! `<file>.lock` while any handle is open, and a second process gets an error instead of
//! silently forking the key state (which would lose keys).
//!
//! Destroying a version rewrites the file without it. The old file's blocks are released by
//! the file system, not overwritten; copies of the keyring (backups) keep destroyed keys, so
//! never back the keyring up together with the database.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use model::{RegionId, SubjectId};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::aead::{DATA_KEY_BYTES, NONCE_BYTES};
use crate::provider::{KeyError, KeyProvider, KekVersion, ShredGroup, WrappedKey};
use crate::wrapping::{KEK_BYTES, join_wrapped, split_wrapped, wrap_aad};
use crate::DataKey;

/// Largest keyring file `open` reads. A full region (256 groups, a few versions each) takes
/// about 50 KiB.
pub const KEYRING_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

const KEYRING_FORMAT: &str = "custos-keyring";
const KEYRING_FORMAT_VERSION: u32 = 1;
/// Owner read and write only; any group or other bit makes `open` refuse the file.
const KEYRING_FILE_MODE: u32 = 0o600;
const KEYRING_FILE_MODE_FORBIDDEN_BITS: u32 = 0o077;

/// One region's view of a keyring file.
pub struct KeyringFile {
    region: RegionId,
    shared: Arc<SharedKeyring>,
}

impl KeyringFile {
    /// Writes a new keyring for `regions`, with no keys yet, readable by its owner only.
    /// Refuses to overwrite an existing file.
    pub fn create(path: impl AsRef<Path>, regions: &[RegionId]) -> Result<(), KeyError> {
        let path = path.as_ref();
        if regions.is_empty() {
            return Err(keyring_error(path, "a keyring needs at least one region"));
        }
        let state = KeyringState {
            regions: regions.iter().map(|region| (region.clone(), RegionKeks::default())).collect(),
        };
        let json = state.to_json();
        let directory = parent_directory(path);
        let temporary = write_temporary(path, &json).map_err(|error| keyring_error(path, format!("cannot write: {error}")))?;
        // A hard link, unlike a rename, fails when the target exists: the check and the
        // creation are one atomic step.
        let linked = fs::hard_link(&temporary, path);
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                return Err(keyring_error(path, "already exists; refusing to overwrite it"));
            }
            Err(error) => return Err(keyring_error(path, format!("cannot create: {error}"))),
        }
        sync_directory(&directory).map_err(|error| keyring_error(path, format!("cannot sync its directory: {error}")))
    }

    /// Opens the keyring at `path` for `region`. Refuses a file that its group or others may
    /// read or write, a file another process has open, and a file without `region`.
    pub fn open(path: impl AsRef<Path>, region: RegionId) -> Result<KeyringFile, KeyError> {
        let path = path.as_ref();
        let metadata = fs::metadata(path).map_err(|error| keyring_error(path, format!("cannot read: {error}")))?;
        if !metadata.is_file() {
            return Err(keyring_error(path, "is not a regular file"));
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & KEYRING_FILE_MODE_FORBIDDEN_BITS != 0 {
            return Err(keyring_error(
                path,
                format!(
                    "has mode {mode:04o}, which lets its group or others read or write the keys; run `chmod 600 {}`",
                    path.display()
                ),
            ));
        }
        let canonical = fs::canonicalize(path).map_err(|error| keyring_error(path, format!("cannot resolve: {error}")))?;
        // Built before the region check so that, on error, dropping it releases the lock.
        let keyring = KeyringFile { region, shared: SharedKeyring::open(&canonical)? };
        let regions: Vec<String> = keyring.shared.lock().regions.keys().map(|known| known.to_string()).collect();
        if !regions.contains(&keyring.region.to_string()) {
            return Err(keyring_error(
                &canonical,
                format!("holds no keys for region {} (it holds: {})", keyring.region, regions.join(", ")),
            ));
        }
        Ok(keyring)
    }

    /// The canonical path of the file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

impl KeyProvider for KeyringFile {
    fn region(&self) -> &RegionId {
        &self.region
    }

    fn describe(&self) -> String {
        format!("keyring {}", self.shared.path.display())
    }

    fn wrap(&self, group: ShredGroup, subject: &SubjectId, key: &DataKey) -> Result<WrappedKey, KeyError> {
        let (version, kek) = {
            let mut state = self.shared.lock();
            match state.group(&self.region, group).map(GroupKeks::current) {
                Some((version, kek)) => (version, kek.clone()),
                None => self.shared.add_version(&mut state, &self.region, group)?,
            }
        };
        let mut nonce = [0u8; NONCE_BYTES];
        SystemRandom::new().fill(&mut nonce).map_err(|_| keyring_error(&self.shared.path, "the random number generator failed"))?;
        let mut buffer = Zeroizing::new(key.as_bytes().to_vec());
        kek.aead_key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(wrap_aad(&self.region, subject)), &mut *buffer)
            .map_err(|_| keyring_error(&self.shared.path, "cannot wrap a data key"))?;
        Ok(WrappedKey { group, version, bytes: join_wrapped(&nonce, &buffer) })
    }

    fn unwrap(&self, subject: &SubjectId, wrapped: &WrappedKey) -> Result<DataKey, KeyError> {
        let parts = split_wrapped(&wrapped.bytes)?;
        let kek = self
            .shared
            .lock()
            .group(&self.region, wrapped.group)
            .and_then(|group| group.keys.get(&wrapped.version).cloned())
            .ok_or_else(|| KeyError::MissingKek {
                region: self.region.to_string(),
                group: wrapped.group.as_u16(),
                version: wrapped.version.0,
            })?;
        let mut buffer = Zeroizing::new(parts.ciphertext_and_tag.to_vec());
        let plaintext = kek
            .aead_key()
            .open_in_place(Nonce::assume_unique_for_key(parts.nonce), Aad::from(wrap_aad(&self.region, subject)), &mut buffer)
            .map_err(|_| KeyError::Integrity)?;
        let bytes: [u8; DATA_KEY_BYTES] = (&*plaintext).try_into().map_err(|_| KeyError::Integrity)?;
        Ok(DataKey::from_bytes(bytes))
    }

    fn current_version(&self, group: ShredGroup) -> Result<Option<KekVersion>, KeyError> {
        Ok(self.shared.lock().group(&self.region, group).map(|keks| keks.current))
    }

    fn rotate(&self, group: ShredGroup) -> Result<KekVersion, KeyError> {
        let mut state = self.shared.lock();
        let (version, _) = self.shared.add_version(&mut state, &self.region, group)?;
        Ok(version)
    }

    fn destroy_before(&self, group: ShredGroup, keep_from: KekVersion) -> Result<(), KeyError> {
        let mut state = self.shared.lock();
        let Some(keks) = state.group(&self.region, group) else {
            return Ok(());
        };
        if keep_from > keks.current {
            return Err(KeyError::DestroyCurrent {
                region: self.region.to_string(),
                group: group.as_u16(),
                current: keks.current.0,
                keep_from: keep_from.0,
            });
        }
        if keks.keys.keys().all(|version| *version >= keep_from) {
            return Ok(());
        }
        let mut next = state.clone();
        next.group_mut(&self.region, group).keys.retain(|version, _| *version >= keep_from);
        self.shared.commit(&mut state, next)
    }
}

impl Drop for KeyringFile {
    fn drop(&mut self) {
        // The last handle releases the cross-process lock. Deciding under the registry lock
        // keeps `open` from seeing a dying entry whose lock file is still held; handles are
        // only cloned in `open`, under the same lock, so the count is stable here.
        let mut registry = lock_registry();
        if Arc::strong_count(&self.shared) == 1 {
            registry.remove(&self.shared.path);
        }
    }
}

/// The state every handle on one file shares.
struct SharedKeyring {
    path: PathBuf,
    state: Mutex<KeyringState>,
}

struct RegistryEntry {
    /// Held (exclusively locked) while any handle on the file is open in this process.
    lock_file: File,
    shared: Weak<SharedKeyring>,
}

fn lock_registry() -> MutexGuard<'static, HashMap<PathBuf, RegistryEntry>> {
    static OPEN_KEYRINGS: OnceLock<Mutex<HashMap<PathBuf, RegistryEntry>>> = OnceLock::new();
    OPEN_KEYRINGS.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SharedKeyring {
    fn open(canonical: &Path) -> Result<Arc<SharedKeyring>, KeyError> {
        let mut registry = lock_registry();
        if let Some(shared) = registry.get(canonical).and_then(|entry| entry.shared.upgrade()) {
            return Ok(shared);
        }
        // No live handle. An entry may remain (a handle that never reached `KeyringFile`);
        // its lock file is reused, as a second lock on it would conflict with the first.
        let lock_file = match registry.remove(canonical) {
            Some(entry) => entry.lock_file,
            None => lock_exclusively(canonical)?,
        };
        let state = read_state(canonical)?;
        let shared = Arc::new(SharedKeyring { path: canonical.to_owned(), state: Mutex::new(state) });
        registry.insert(canonical.to_owned(), RegistryEntry { lock_file, shared: Arc::downgrade(&shared) });
        Ok(shared)
    }

    fn lock(&self) -> MutexGuard<'_, KeyringState> {
        // The state is replaced only whole, after the file is written, so a panic elsewhere
        // while holding the lock cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates the next version of `group`'s key (version 1 if none), makes it current and
    /// writes the file.
    fn add_version(
        &self,
        state: &mut KeyringState,
        region: &RegionId,
        group: ShredGroup,
    ) -> Result<(KekVersion, Kek), KeyError> {
        let version = match state.group(region, group) {
            None => KekVersion(1),
            Some(keks) => KekVersion(
                keks.current.0.checked_add(1).ok_or_else(|| keyring_error(&self.path, "key version overflow"))?,
            ),
        };
        let kek = Kek::generate().ok_or_else(|| keyring_error(&self.path, "the random number generator failed"))?;
        let mut next = state.clone();
        let keks = next
            .regions
            .get_mut(region)
            .expect("regions are never removed from an open keyring")
            .groups
            .entry(group)
            .or_insert_with(|| GroupKeks { current: version, keys: BTreeMap::new() });
        keks.current = version;
        keks.keys.insert(version, kek.clone());
        self.commit(state, next)?;
        Ok((version, kek))
    }

    /// Writes `next` durably, then makes it the state.
    fn commit(&self, state: &mut KeyringState, next: KeyringState) -> Result<(), KeyError> {
        match write_atomically(&self.path, &next.to_json()) {
            Ok(()) => {
                *state = next;
                Ok(())
            }
            Err(WriteFailure::BeforeRename(error)) => Err(keyring_error(&self.path, format!("cannot write: {error}"))),
            Err(WriteFailure::AfterRename(error)) => {
                // The file already holds `next`: keep memory in step with it, or a later write
                // from the stale state would bring destroyed keys back to disk.
                *state = next;
                Err(keyring_error(&self.path, format!("written, but the directory could not be synced: {error}")))
            }
        }
    }
}

#[derive(Clone)]
struct KeyringState {
    regions: BTreeMap<RegionId, RegionKeks>,
}

#[derive(Clone, Default)]
struct RegionKeks {
    groups: BTreeMap<ShredGroup, GroupKeks>,
}

#[derive(Clone)]
struct GroupKeks {
    // INVARIANT: `keys` holds `current` (only older versions are ever destroyed).
    current: KekVersion,
    keys: BTreeMap<KekVersion, Kek>,
}

impl GroupKeks {
    fn current(&self) -> (KekVersion, &Kek) {
        (self.current, self.keys.get(&self.current).expect("the current version is never destroyed"))
    }
}

#[derive(Clone)]
struct Kek(Zeroizing<[u8; KEK_BYTES]>);

impl Kek {
    fn generate() -> Option<Kek> {
        let mut bytes = Zeroizing::new([0u8; KEK_BYTES]);
        SystemRandom::new().fill(bytes.as_mut()).ok()?;
        Some(Kek(bytes))
    }

    fn aead_key(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("a key-encryption key has the AES-256 length"))
    }
}

impl KeyringState {
    fn group(&self, region: &RegionId, group: ShredGroup) -> Option<&GroupKeks> {
        self.regions.get(region)?.groups.get(&group)
    }

    fn group_mut(&mut self, region: &RegionId, group: ShredGroup) -> &mut GroupKeks {
        self.regions
            .get_mut(region)
            .and_then(|keks| keks.groups.get_mut(&group))
            .expect("callers checked that the group exists")
    }

    fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let document = KeyringDocument {
            format: KEYRING_FORMAT.to_owned(),
            version: KEYRING_FORMAT_VERSION,
            regions: self
                .regions
                .iter()
                .map(|(region, keks)| {
                    let groups = keks
                        .groups
                        .iter()
                        .map(|(group, keks)| {
                            let keys =
                                keks.keys.iter().map(|(version, kek)| (version.0, KekText(BASE64.encode(kek.0.as_ref())))).collect();
                            (group.as_u16(), GroupDocument { current: keks.current.0, keys })
                        })
                        .collect();
                    (region.to_string(), RegionDocument { groups })
                })
                .collect(),
        };
        let mut json = Zeroizing::new(serde_json::to_vec_pretty(&document).expect("a keyring document always serializes"));
        json.push(b'\n');
        json
    }

    fn from_document(document: KeyringDocument) -> Result<KeyringState, String> {
        if document.format != KEYRING_FORMAT {
            return Err(format!("is not a custos keyring (format {:?})", document.format));
        }
        if document.version != KEYRING_FORMAT_VERSION {
            return Err(format!("has keyring format version {}, this build reads version {KEYRING_FORMAT_VERSION}", document.version));
        }
        let mut regions = BTreeMap::new();
        for (name, region_document) in document.regions {
            let region = RegionId::new(&name).map_err(|error| error.to_string())?;
            let mut groups = BTreeMap::new();
            for (number, group_document) in region_document.groups {
                let group = ShredGroup::new(number).ok_or_else(|| format!("region {region}: shred group {number} out of range"))?;
                let mut keys = BTreeMap::new();
                for (version, text) in &group_document.keys {
                    let decoded = Zeroizing::new(
                        BASE64.decode(&text.0).map_err(|_| format!("key {region}/{number}/v{version} is not base64"))?,
                    );
                    let bytes: [u8; KEK_BYTES] = decoded
                        .as_slice()
                        .try_into()
                        .map_err(|_| format!("key {region}/{number}/v{version} is not {KEK_BYTES} bytes"))?;
                    keys.insert(KekVersion(*version), Kek(Zeroizing::new(bytes)));
                }
                let current = KekVersion(group_document.current);
                if !keys.contains_key(&current) {
                    return Err(format!("key {region}/{number}: the current version v{} is missing", current.0));
                }
                groups.insert(group, GroupKeks { current, keys });
            }
            regions.insert(region, RegionKeks { groups });
        }
        Ok(KeyringState { regions })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringDocument {
    format: String,
    version: u32,
    regions: BTreeMap<String, RegionDocument>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionDocument {
    groups: BTreeMap<u16, GroupDocument>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDocument {
    current: u32,
    keys: BTreeMap<u32, KekText>,
}

/// A key in base64, wiped from memory when dropped.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct KekText(String);

impl Drop for KekText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn keyring_error(path: &Path, message: impl Into<String>) -> KeyError {
    KeyError::Keyring { path: path.display().to_string(), message: message.into() }
}

fn read_state(path: &Path) -> Result<KeyringState, KeyError> {
    let file = File::open(path).map_err(|error| keyring_error(path, format!("cannot read: {error}")))?;
    let length = file.metadata().map_err(|error| keyring_error(path, format!("cannot read: {error}")))?.len();
    if length > KEYRING_FILE_BYTES_MAX {
        return Err(keyring_error(path, format!("is {length} bytes, larger than the {KEYRING_FILE_BYTES_MAX} bytes a keyring may be")));
    }
    // Room for the whole file up front, so that growing the buffer leaves no stray copies.
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(length).unwrap_or(0) + 1));
    file.take(KEYRING_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| keyring_error(path, format!("cannot read: {error}")))?;
    let document: KeyringDocument =
        serde_json::from_slice(&bytes).map_err(|error| keyring_error(path, format!("is not a valid keyring: {error}")))?;
    KeyringState::from_document(document).map_err(|message| keyring_error(path, message))
}

/// Takes the cross-process lock of the keyring at `canonical`.
fn lock_exclusively(canonical: &Path) -> Result<File, KeyError> {
    let mut lock_path = canonical.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(KEYRING_FILE_MODE)
        .open(&lock_path)
        .map_err(|error| keyring_error(canonical, format!("cannot open its lock file {}: {error}", lock_path.display())))?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(TryLockError::WouldBlock) => Err(keyring_error(
            canonical,
            format!("is in use by another process (it holds {}); stop it first", lock_path.display()),
        )),
        Err(TryLockError::Error(error)) => {
            Err(keyring_error(canonical, format!("cannot lock {}: {error}", lock_path.display())))
        }
    }
}

fn parent_directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Writes `contents` to a new temporary file (mode 0600) next to `path` and syncs it.
fn write_temporary(path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
    static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let temporary = parent_directory(path).join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEYRING_FILE_MODE)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        });
    match written {
        Ok(()) => Ok(temporary),
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Replaces `path` with `contents`: temporary file, fsync, rename, fsync of the directory.
/// Where an atomic write failed: before the rename the old file is intact; after it the new
/// contents are in place but may not survive a crash.
enum WriteFailure {
    BeforeRename(io::Error),
    AfterRename(io::Error),
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), WriteFailure> {
    let temporary = write_temporary(path, contents).map_err(WriteFailure::BeforeRename)?;
    if let Err(error) = fs::rename(&temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(WriteFailure::BeforeRename(error));
    }
    sync_directory(&parent_directory(path)).map_err(WriteFailure::AfterRename)
}

fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}
