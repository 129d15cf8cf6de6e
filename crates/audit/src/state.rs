//! The trusted state an auditor keeps between runs: the origin, size and root of the
//! last checkpoint it verified.
//!
//! File format: exactly the tlog-checkpoint note text of that checkpoint without its
//! signatures and without extension lines, i.e. three newline-terminated lines:
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeroes>
//! <root hash, standard base64 with padding>
//! ```
//!
//! Reusing the checkpoint body keeps the file readable and lets `tlog` parse it strictly.
//! Signatures are not kept: the state is trusted because this auditor verified it, and
//! anything else in the file would be one more thing to keep consistent.

use tlog::{Checkpoint, CheckpointError, Hash, TreeSize};

/// What the previous run verified and the next run must be consistent with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedState {
    pub origin: String,
    pub size: TreeSize,
    pub root: Hash,
}

/// Why a state file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedStateError {
    #[error("state file is not a checkpoint body")]
    Checkpoint(#[source] CheckpointError),
    #[error("state file has extension lines, expected exactly origin, size and root")]
    Extensions,
}

impl TrustedState {
    /// The state a verified checkpoint establishes.
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> TrustedState {
        TrustedState {
            origin: checkpoint.origin().to_owned(),
            size: checkpoint.size(),
            root: checkpoint.root(),
        }
    }

    /// Parses the file format described in the module documentation.
    pub fn parse(text: &str) -> Result<TrustedState, TrustedStateError> {
        let checkpoint = Checkpoint::parse(text).map_err(TrustedStateError::Checkpoint)?;
        if !checkpoint.extensions().is_empty() {
            return Err(TrustedStateError::Extensions);
        }
        Ok(TrustedState::from_checkpoint(&checkpoint))
    }

    /// The file contents: three newline-terminated lines.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )
    }
}
