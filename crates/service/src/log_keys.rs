//! The access logs' Ed25519 signing keys: one 32-byte seed per region in
//! `<data>/log-keys.json`, mode 0600, refused when its group or others may read or write it.
//! The same format holds the search (blind-index) keys in `<data>/search-keys.json` and the
//! subject token signing keys in `<data>/subject-token-keys.json`.
//!
//! A separate file, not the keyring: a deployment whose key-encryption keys live in a
//! PKCS#11 token has no keyring file, and its logs still need keys. Writes are atomic
//! (temporary file of mode 0600, fsync, rename, fsync of the directory), so a crash leaves
//! the old or the new file. Only the process holding the deployment lock adds keys, so two
//! processes never draw two keys for one region.
//!
//! ```json
//! { "version": 1, "regions": { "us": "<base64 seed>" } }
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use model::RegionId;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

pub const LOG_KEYS_FILE_NAME: &str = "log-keys.json";
/// One 32-byte blind-index key per region (search), in the same format.
pub const SEARCH_KEYS_FILE_NAME: &str = "search-keys.json";
/// One Ed25519 seed per region signing subject tokens, in the same format.
pub const SUBJECT_TOKEN_KEYS_FILE_NAME: &str = "subject-token-keys.json";
const LOG_KEYS_FILE_MODE: u32 = 0o600;
/// Permission bits that would let anyone but the owner read or change the keys.
const LOG_KEYS_FILE_MODE_FORBIDDEN_BITS: u32 = 0o077;
const LOG_KEYS_FORMAT_VERSION: u32 = 1;
/// Bytes of an Ed25519 seed.
pub const LOG_SEED_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LogKeyError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} has mode {mode:04o}, which lets its group or others read or write the log keys; run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} is not a log key file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} holds no key for region {region}")]
    Missing { path: PathBuf, region: RegionId },
    #[error("system random failed")]
    Random,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogKeysDocument {
    version: u32,
    regions: BTreeMap<String, String>,
}

impl Drop for LogKeysDocument {
    fn drop(&mut self) {
        for seed in self.regions.values_mut() {
            seed.zeroize();
        }
    }
}

/// The log key file of a data directory.
#[derive(Debug, Clone)]
pub struct LogKeys {
    path: PathBuf,
}

impl LogKeys {
    pub fn in_data_dir(dir: &Path) -> LogKeys {
        LogKeys { path: dir.join(LOG_KEYS_FILE_NAME) }
    }

    /// The file of the search (blind-index) keys: the same format and protections, a
    /// separate file so that a key serves one purpose only.
    pub fn search_in_data_dir(dir: &Path) -> LogKeys {
        LogKeys { path: dir.join(SEARCH_KEYS_FILE_NAME) }
    }

    /// The file of the subject token signing keys: the same format and protections, a
    /// separate file so that a log key never signs a token.
    pub fn subject_tokens_in_data_dir(dir: &Path) -> LogKeys {
        LogKeys { path: dir.join(SUBJECT_TOKEN_KEYS_FILE_NAME) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The seed of `region`'s log key.
    pub fn seed(&self, region: &RegionId) -> Result<Zeroizing<[u8; LOG_SEED_BYTES]>, LogKeyError> {
        let document = self.read()?;
        let Some(document) = document else {
            return Err(LogKeyError::Missing { path: self.path.clone(), region: region.clone() });
        };
        match document.regions.get(region.as_str()) {
            Some(text) => self.decode(text),
            None => Err(LogKeyError::Missing { path: self.path.clone(), region: region.clone() }),
        }
    }

    /// The seeds of `regions`, drawing and storing (atomically) those that are missing.
    /// The caller must hold the deployment lock.
    pub fn seeds_creating(&self, regions: &[RegionId]) -> Result<Vec<Zeroizing<[u8; LOG_SEED_BYTES]>>, LogKeyError> {
        let mut document = self.read()?.unwrap_or(LogKeysDocument { version: LOG_KEYS_FORMAT_VERSION, regions: BTreeMap::new() });
        let mut added = false;
        for region in regions {
            if !document.regions.contains_key(region.as_str()) {
                let mut seed = Zeroizing::new([0u8; LOG_SEED_BYTES]);
                aws_lc_rs::rand::fill(seed.as_mut()).map_err(|_| LogKeyError::Random)?;
                document.regions.insert(region.to_string(), base64::engine::general_purpose::STANDARD.encode(seed.as_ref()));
                added = true;
            }
        }
        if added {
            self.write(&document)?;
        }
        regions.iter().map(|region| self.decode(&document.regions[region.as_str()])).collect()
    }

    fn decode(&self, text: &str) -> Result<Zeroizing<[u8; LOG_SEED_BYTES]>, LogKeyError> {
        let format = |message: &str| LogKeyError::Format { path: self.path.clone(), message: message.to_owned() };
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| format("a seed is not base64"))?,
        );
        let mut seed = Zeroizing::new([0u8; LOG_SEED_BYTES]);
        if bytes.len() != LOG_SEED_BYTES {
            return Err(format("a seed is not 32 bytes"));
        }
        seed.copy_from_slice(&bytes);
        Ok(seed)
    }

    fn read(&self) -> Result<Option<LogKeysDocument>, LogKeyError> {
        let io = |error: std::io::Error| LogKeyError::Io { path: self.path.clone(), message: error.to_string() };
        let metadata = match fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(error)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & LOG_KEYS_FILE_MODE_FORBIDDEN_BITS != 0 {
            return Err(LogKeyError::Permissions { path: self.path.clone(), mode });
        }
        let text = Zeroizing::new(fs::read(&self.path).map_err(io)?);
        let document: LogKeysDocument = serde_json::from_slice(&text)
            .map_err(|error| LogKeyError::Format { path: self.path.clone(), message: error.to_string() })?;
        if document.version != LOG_KEYS_FORMAT_VERSION {
            return Err(LogKeyError::Format { path: self.path.clone(), message: format!("unknown version {}", document.version) });
        }
        Ok(Some(document))
    }

    fn write(&self, document: &LogKeysDocument) -> Result<(), LogKeyError> {
        let temporary = self.path.with_extension("json.tmp");
        let io = |path: &Path, error: std::io::Error| LogKeyError::Io { path: path.to_owned(), message: error.to_string() };
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(document)
                .map_err(|error| LogKeyError::Format { path: self.path.clone(), message: error.to_string() })?,
        );
        // A leftover from a crash holds no key anyone relies on: the rename never happened.
        let _ = fs::remove_file(&temporary);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(LOG_KEYS_FILE_MODE)
            .open(&temporary)
            .map_err(|error| io(&temporary, error))?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|error| io(&temporary, error))?;
        fs::rename(&temporary, &self.path).map_err(|error| io(&self.path, error))?;
        let directory = self.path.parent().unwrap_or(Path::new("."));
        fs::File::open(directory).and_then(|directory| directory.sync_all()).map_err(|error| io(directory, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> RegionId {
        RegionId::new(name).unwrap()
    }

    #[test]
    fn seeds_are_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LogKeys::in_data_dir(dir.path());
        assert!(matches!(keys.seed(&region("us")), Err(LogKeyError::Missing { .. })));
        let first = keys.seeds_creating(&[region("us")]).unwrap();
        let mode = fs::metadata(keys.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let both = keys.seeds_creating(&[region("eu"), region("us")]).unwrap();
        assert_eq!(*both[1], *first[0], "an existing seed was replaced");
        assert_ne!(*both[0], *both[1], "two regions share a seed");
        assert_eq!(*keys.seed(&region("eu")).unwrap(), *both[0]);
    }

    #[test]
    fn loose_permissions_and_bad_contents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LogKeys::in_data_dir(dir.path());
        keys.seeds_creating(&[region("us")]).unwrap();
        fs::set_permissions(keys.path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(keys.seed(&region("us")), Err(LogKeyError::Permissions { mode: 0o644, .. })));
        fs::set_permissions(keys.path(), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(keys.path(), br#"{"version":1,"regions":{"us":"AAAA"}}"#).unwrap();
        assert!(matches!(keys.seed(&region("us")), Err(LogKeyError::Format { .. })));
    }
}
