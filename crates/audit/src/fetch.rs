//! How the verifier reads a log: one call per resource, by path relative to the log
//! prefix (`checkpoint`, `tile/0/x001/234.p/5`, `tile/entries/000`). The shell supplies
//! the transport; a map of paths to bytes serves logs from memory.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::PathBuf;

/// Reads resources of one log.
pub trait Fetcher {
    /// The bytes at `path` under the log prefix, or `None` when the log does not have it
    /// (HTTP 404). Implementations should stop reading at the limits the verifier
    /// applies ([`crate::CHECKPOINT_BYTES_MAX`], [`crate::BUNDLE_BYTES_MAX`]), which it
    /// checks again on what they return.
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError>;
}

/// Reads a log mirrored to a directory (for example with `wget --mirror` of the log
/// prefix): `path` is joined to `root`, and a missing file is a 404.
#[derive(Clone, Debug)]
pub struct DirectoryFetcher {
    root: PathBuf,
}

/// The largest file [`DirectoryFetcher`] reads: the largest resource the verifier takes.
pub const DIRECTORY_FILE_BYTES_MAX: usize = crate::verify::BUNDLE_BYTES_MAX;

/// Why a resource could not be read (other than it not existing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("path {path:?} is not a relative path inside the log")]
    InvalidPath { path: String },
    #[error("transport failed: {reason}")]
    Transport { reason: String },
    #[error("server answered with status {status}")]
    Status { status: u16 },
    #[error("response exceeds {bytes_max} bytes")]
    TooLarge { bytes_max: usize },
}

impl DirectoryFetcher {
    pub fn new(root: impl Into<PathBuf>) -> DirectoryFetcher {
        DirectoryFetcher { root: root.into() }
    }
}

impl Fetcher for DirectoryFetcher {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        // The verifier only asks for `checkpoint` and tile paths, but a fetcher is a
        // boundary: refuse anything that could leave the directory.
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|part| part.is_empty() || part == "..")
        {
            return Err(FetchError::InvalidPath {
                path: path.to_owned(),
            });
        }
        let file = match std::fs::File::open(self.root.join(path)) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(FetchError::Transport {
                    reason: error.to_string(),
                });
            }
        };
        // Read one byte past the limit to tell a file at the limit from a larger one.
        let mut bytes = Vec::new();
        file.take(DIRECTORY_FILE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| FetchError::Transport {
                reason: error.to_string(),
            })?;
        if bytes.len() > DIRECTORY_FILE_BYTES_MAX {
            return Err(FetchError::TooLarge {
                bytes_max: DIRECTORY_FILE_BYTES_MAX,
            });
        }
        Ok(Some(bytes))
    }
}

impl Fetcher for BTreeMap<String, Vec<u8>> {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        Ok(self.get(path).cloned())
    }
}

impl Fetcher for HashMap<String, Vec<u8>> {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        Ok(self.get(path).cloned())
    }
}

impl<F: Fetcher + ?Sized> Fetcher for &F {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        (**self).fetch(path)
    }
}
