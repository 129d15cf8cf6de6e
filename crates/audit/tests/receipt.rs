//! Offline receipt checks: a valid receipt passes, and a wrong entry, index, tree,
//! origin or signing key is each rejected with its own message.

mod support;

use audit::{Receipt, verify_receipt};
use support::{History, ORIGIN, OTHER_SEED, log_signer, log_vkey};
use tlog::{LeafIndex, Signer, TlogProof, TreeSize, inclusion_proof, leaf_hash};

const SIZE: u64 = 1_000;
const INDEX: u64 = 517;

fn proof_for(history: &History, index: u64, size: u64, signer: &Signer) -> TlogProof {
    let leaves = &history.leaves[..size as usize];
    let path =
        inclusion_proof(leaves, LeafIndex(index), TreeSize(size)).expect("index within tree");
    TlogProof::new(None, LeafIndex(index), path, history.note(size, signer)).expect("valid proof")
}

fn receipt_for(history: &History, index: u64) -> Receipt {
    Receipt {
        origin: ORIGIN.to_owned(),
        index: LeafIndex(index),
        leaf_hash: leaf_hash(&history.entries[index as usize]),
    }
}

/// Verifies and expects `expected`: `None` for success, or the exact error message.
fn check(receipt: &Receipt, entry: &[u8], proof: &TlogProof, vkey: &str, expected: Option<&str>) {
    let outcome = verify_receipt(receipt, entry, proof, vkey);
    match (outcome, expected) {
        (Ok(checkpoint), None) => assert_eq!(checkpoint.origin(), receipt.origin),
        (Err(error), Some(expected)) => assert_eq!(error.to_string(), expected),
        (Ok(_), Some(expected)) => panic!("expected {expected:?}, receipt verified"),
        (Err(error), None) => panic!("expected success, got {error}"),
    }
}

#[test]
fn valid_receipts_verify_at_every_position() {
    let history = History::honest(SIZE);
    let signer = log_signer();
    for (index, size) in [
        (0, 1),
        (0, SIZE),
        (INDEX, SIZE),
        (SIZE - 1, SIZE),
        (255, 256),
        (256, 257),
    ] {
        let entry = &history.entries[index as usize];
        check(
            &receipt_for(&history, index),
            entry,
            &proof_for(&history, index, size, &signer),
            &log_vkey(),
            None,
        );
    }
}

#[test]
fn receipt_round_trips_through_tlog_proof_bytes() {
    let history = History::honest(SIZE);
    let proof = proof_for(&history, INDEX, SIZE, &log_signer());
    let parsed = TlogProof::parse(&proof.to_bytes()).expect("round trip");
    check(
        &receipt_for(&history, INDEX),
        &history.entries[INDEX as usize],
        &parsed,
        &log_vkey(),
        None,
    );
}

#[test]
fn wrong_receipts_are_named() {
    let history = History::honest(SIZE);
    let signer = log_signer();
    let vkey = log_vkey();
    let receipt = receipt_for(&history, INDEX);
    let entry = history.entries[INDEX as usize].clone();
    let proof = proof_for(&history, INDEX, SIZE, &signer);

    // Wrong entry: the bytes handed over are not what the log hashed.
    let other_entry = history.entries[INDEX as usize + 1].clone();
    check(
        &receipt,
        &other_entry,
        &proof,
        &vkey,
        Some(&format!(
            "entry hashes to {}, the receipt states leaf hash {}",
            leaf_hash(&other_entry),
            receipt.leaf_hash
        )),
    );

    // Wrong index in the receipt.
    let moved = Receipt {
        index: LeafIndex(INDEX + 1),
        ..receipt.clone()
    };
    check(
        &moved,
        &entry,
        &proof,
        &vkey,
        Some("proof is for index 517, the receipt states index 518"),
    );

    // Receipt and proof both claim another index for this entry.
    let relabelled = TlogProof::new(
        None,
        LeafIndex(INDEX + 1),
        proof.proof().to_vec(),
        proof.note().clone(),
    )
    .expect("valid proof");
    check(
        &moved,
        &entry,
        &relabelled,
        &vkey,
        Some(
            "inclusion proof for index 518 does not verify against the checkpoint root at size 1000: proof does not lead from the leaf to the root",
        ),
    );

    // The audit path of another tree (a fork that diverged before the entry) with the
    // real checkpoint.
    let forked = History::new(SIZE, 1, 3);
    let foreign_path = proof_for(&forked, INDEX, SIZE, &signer);
    let mixed = TlogProof::new(
        None,
        LeafIndex(INDEX),
        foreign_path.proof().to_vec(),
        proof.note().clone(),
    )
    .expect("valid proof");
    check(
        &receipt,
        &entry,
        &mixed,
        &vkey,
        Some(
            "inclusion proof for index 517 does not verify against the checkpoint root at size 1000: proof does not lead from the leaf to the root",
        ),
    );

    // The audit path of a smaller tree with the checkpoint of the larger one.
    let smaller = proof_for(&history, INDEX, 600, &signer);
    let stale = TlogProof::new(
        None,
        LeafIndex(INDEX),
        smaller.proof().to_vec(),
        proof.note().clone(),
    )
    .expect("valid proof");
    check(
        &receipt,
        &entry,
        &stale,
        &vkey,
        Some(
            "inclusion proof for index 517 does not verify against the checkpoint root at size 1000: proof has 8 hashes, a proof for these sizes has 10",
        ),
    );

    // A smaller tree whose audit path has the same length: only the hashes differ.
    let same_length = proof_for(&history, INDEX, 999, &signer);
    assert_eq!(same_length.proof().len(), proof.proof().len());
    let stale = TlogProof::new(
        None,
        LeafIndex(INDEX),
        same_length.proof().to_vec(),
        proof.note().clone(),
    )
    .expect("valid proof");
    check(
        &receipt,
        &entry,
        &stale,
        &vkey,
        Some(
            "inclusion proof for index 517 does not verify against the checkpoint root at size 1000: proof does not lead from the leaf to the root",
        ),
    );

    // A checkpoint signed by another key under the log's name.
    let impostor = Signer::new(ORIGIN, &OTHER_SEED).expect("valid signer");
    check(
        &receipt,
        &entry,
        &proof_for(&history, INDEX, SIZE, &impostor),
        &vkey,
        Some(&format!(
            "checkpoint carries no signature by the log key {vkey}"
        )),
    );

    // A receipt from another region's log.
    let elsewhere = Receipt {
        origin: "custos.example/log/us".to_owned(),
        ..receipt.clone()
    };
    check(
        &elsewhere,
        &entry,
        &proof,
        &vkey,
        Some(
            "checkpoint origin \"custos.example/log/eu\" differs from the receipt's origin \"custos.example/log/us\"",
        ),
    );
}
