//! Offline verification of a receipt: the promise a log made about one entry (its
//! origin, index and leaf hash), checked against the entry itself and a tlog-proof (an
//! inclusion proof with the signed checkpoint it leads to). Nothing is fetched.

use tlog::{
    Checkpoint, Hash, LeafIndex, NoteVerifyError, TlogProof, Verifier, VkeyError, leaf_hash,
    verify_inclusion,
};

/// What the log told the writer of an entry: where it is and what it hashes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub origin: String,
    pub index: LeafIndex,
    pub leaf_hash: Hash,
}

/// Why a receipt did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("log verifier key is not a valid Ed25519 vkey")]
    Vkey(#[source] VkeyError),
    #[error("entry hashes to {computed}, the receipt states leaf hash {stated}")]
    EntryMismatch { stated: Hash, computed: Hash },
    #[error("proof is for index {proof_index}, the receipt states index {receipt_index}")]
    IndexMismatch {
        receipt_index: u64,
        proof_index: u64,
    },
    #[error("checkpoint origin {found:?} differs from the receipt's origin {expected:?}")]
    OriginMismatch { expected: String, found: String },
    #[error("checkpoint carries no signature by the log key {key}")]
    Unsigned { key: String },
    #[error("checkpoint signature by the log key {key} does not verify")]
    BadSignature { key: String },
    #[error(
        "inclusion proof for index {index} does not verify against the checkpoint root at size {size}: {reason}"
    )]
    Inclusion {
        index: u64,
        size: u64,
        reason: String,
    },
}

/// Checks that `entry` is what `receipt` promised and that `proof` shows it at the
/// receipt's index in a checkpoint of the receipt's log, signed by the Ed25519 key
/// `verifier_key` (a vkey). Returns the checkpoint the proof leads to. Witness
/// cosignatures are left to the caller's policy (`proof.note().verify_known`).
pub fn verify_receipt(
    receipt: &Receipt,
    entry: &[u8],
    proof: &TlogProof,
    verifier_key: &str,
) -> Result<Checkpoint, ReceiptError> {
    let log_verifier = Verifier::from_vkey(verifier_key).map_err(ReceiptError::Vkey)?;
    let computed = leaf_hash(entry);
    if computed != receipt.leaf_hash {
        return Err(ReceiptError::EntryMismatch {
            stated: receipt.leaf_hash,
            computed,
        });
    }
    if proof.index() != receipt.index {
        return Err(ReceiptError::IndexMismatch {
            receipt_index: receipt.index.0,
            proof_index: proof.index().0,
        });
    }
    let key = log_verifier.to_vkey();
    proof
        .note()
        .verify(&[&log_verifier])
        .map_err(|error| match error {
            NoteVerifyError::NoKnownSignature => ReceiptError::Unsigned { key: key.clone() },
            NoteVerifyError::BadSignature { .. } => ReceiptError::BadSignature { key: key.clone() },
        })?;
    let checkpoint = proof.checkpoint();
    if checkpoint.origin() != receipt.origin {
        return Err(ReceiptError::OriginMismatch {
            expected: receipt.origin.clone(),
            found: checkpoint.origin().to_owned(),
        });
    }
    verify_inclusion(
        computed,
        receipt.index,
        checkpoint.size(),
        proof.proof(),
        checkpoint.root(),
    )
    .map_err(|error| ReceiptError::Inclusion {
        index: receipt.index.0,
        size: checkpoint.size().0,
        reason: error.to_string(),
    })?;
    Ok(checkpoint.clone())
}
