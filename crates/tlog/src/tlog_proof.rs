//! Offline inclusion proofs in the c2sp.org/tlog-proof@v1 text format: a header line,
//! optional `extra` data, `index <n>`, the audit path one base64 hash per line, a blank
//! line, and the checkpoint note verbatim with its signatures and cosignatures. This is
//! the receipt a data subject or auditor can check without talking to the log.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{Hash, LeafIndex, parse_canonical_decimal};
use crate::merkle::PROOF_HASHES_MAX;
use crate::note::{NOTE_BYTES_MAX, Note, NoteError, NoteVerifier, NoteVerifyError};
use crate::verify::{ProofError, verify_inclusion};

/// The first line of every tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The largest proof accepted: a note plus a full audit path and some extra data.
pub const TLOG_PROOF_BYTES_MAX: usize = NOTE_BYTES_MAX + 64 * 1024;

/// A self-contained proof that an entry is in a log as of a signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: LeafIndex,
    // INVARIANT: at most PROOF_HASHES_MAX hashes.
    proof: Vec<Hash>,
    note: Note,
    // INVARIANT: parsed from note.text().
    checkpoint: Checkpoint,
}

/// Why a tlog-proof could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    #[error("proof has {bytes} bytes, more than {TLOG_PROOF_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("proof is not valid UTF-8")]
    NotUtf8,
    #[error("proof does not start with the line {TLOG_PROOF_HEADER}")]
    Header,
    #[error("extra line is not valid standard base64")]
    Extra,
    #[error("index line is not `index` and a decimal without leading zeroes")]
    Index,
    #[error("proof line {line} is not base64 of a 32-byte hash")]
    Hash { line: usize },
    #[error("proof has more than {PROOF_HASHES_MAX} hashes")]
    TooManyHashes,
    #[error("proof has no blank line before the checkpoint")]
    MissingSeparator,
    #[error("checkpoint note is malformed")]
    Note(#[source] NoteError),
    #[error("checkpoint text is malformed")]
    Checkpoint(#[source] CheckpointError),
}

/// Why a tlog-proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofVerifyError {
    #[error("checkpoint is not validly signed by a log key")]
    Signature(#[source] NoteVerifyError),
    #[error("inclusion proof does not verify against the checkpoint")]
    Inclusion(#[source] ProofError),
}

impl TlogProof {
    pub fn new(
        extra: Option<Vec<u8>>,
        index: LeafIndex,
        proof: Vec<Hash>,
        note: Note,
    ) -> Result<TlogProof, TlogProofError> {
        if proof.len() > PROOF_HASHES_MAX {
            return Err(TlogProofError::TooManyHashes);
        }
        let checkpoint = Checkpoint::parse(note.text()).map_err(TlogProofError::Checkpoint)?;
        Ok(TlogProof { extra, index, proof, note, checkpoint })
    }

    pub fn parse(bytes: &[u8]) -> Result<TlogProof, TlogProofError> {
        if bytes.len() > TLOG_PROOF_BYTES_MAX {
            return Err(TlogProofError::TooLarge { bytes: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| TlogProofError::NotUtf8)?;
        let mut rest = text;
        let mut next_line = || -> Option<&str> {
            let (line, after) = rest.split_once('\n')?;
            rest = after;
            Some(line)
        };
        if next_line() != Some(TLOG_PROOF_HEADER) {
            return Err(TlogProofError::Header);
        }
        let mut line = next_line().ok_or(TlogProofError::Index)?;
        let mut extra = None;
        if let Some(encoded) = line.strip_prefix("extra ") {
            extra = Some(BASE64.decode(encoded).map_err(|_| TlogProofError::Extra)?);
            line = next_line().ok_or(TlogProofError::Index)?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_canonical_decimal)
            .ok_or(TlogProofError::Index)?;
        let mut proof = Vec::new();
        let mut line_number = if extra.is_some() { 3 } else { 2 };
        loop {
            line_number += 1;
            let line = next_line().ok_or(TlogProofError::MissingSeparator)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == PROOF_HASHES_MAX {
                return Err(TlogProofError::TooManyHashes);
            }
            proof.push(Hash::from_base64(line).map_err(|_| TlogProofError::Hash { line: line_number })?);
        }
        let note = Note::parse(rest.as_bytes()).map_err(TlogProofError::Note)?;
        TlogProof::new(extra, LeafIndex(index), proof, note)
    }

    /// The proof's exact bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            text.push_str(&hash.to_base64());
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.note.to_string());
        text.into_bytes()
    }

    /// Unauthenticated application data; never trust it without checking.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    pub fn index(&self) -> LeafIndex {
        self.index
    }

    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    pub fn note(&self) -> &Note {
        &self.note
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Checks the log's signature on the checkpoint and the inclusion of `leaf` (whose
    /// hash the application computes). Cosignatures are left to the caller's witness
    /// policy: count them with `note().verify_known(witnesses)`. The caller must also
    /// check that the checkpoint's origin is the log it expects.
    pub fn verify(&self, leaf: Hash, log_verifiers: &[&dyn NoteVerifier]) -> Result<&Checkpoint, TlogProofVerifyError> {
        self.note.verify(log_verifiers).map_err(TlogProofVerifyError::Signature)?;
        verify_inclusion(leaf, self.index, self.checkpoint.size(), &self.proof, self.checkpoint.root())
            .map_err(TlogProofVerifyError::Inclusion)?;
        Ok(&self.checkpoint)
    }
}
