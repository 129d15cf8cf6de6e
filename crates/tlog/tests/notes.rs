//! Signed notes, verifier keys, checkpoints, cosignatures and tlog-proofs: round trips to
//! the byte, the signed-note verification rules, and malformed input rejected with the
//! error that names what is wrong.

use proptest::prelude::*;
use tlog::{
    COSIGNATURE_TIMESTAMP_SECONDS_MAX, Checkpoint, CheckpointError, CosignError, CosignatureVerifier, Cosigner, Hash,
    HashParseError, KeyId, KeyName, KeyNameError, LeafIndex, NOTE_SIGNATURES_MAX, Note, NoteError, NoteSignature,
    NoteVerifier, NoteVerifyError, ProofError, SignatureError, Signer, TlogProof, TlogProofError, TlogProofVerifyError,
    TreeSize, Verifier, Vkey, VkeyError, cosignature_message, inclusion_proof, leaf_hash, root_from_leaves,
    verifier_from_vkey,
};

/// A valid 5-byte signature (key ID 0, one signature byte) in base64.
const SHORT_SIGNATURE: &str = "AAAAAAA=";
const SPEC_CHECKPOINT: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn signer(name: &str, seed: u8) -> Signer {
    Signer::new(name, &[seed; 32]).expect("valid name")
}

fn cosigner(name: &str, seed: u8) -> Cosigner {
    Cosigner::new(name, &[seed; 32]).expect("valid name")
}

fn check_note(bytes: &str, expected: Result<&str, NoteError>) {
    let parsed = Note::parse(bytes.as_bytes());
    match expected {
        Ok(text) => {
            let note = parsed.expect("note parses");
            assert_eq!(note.text(), text, "{bytes:?}");
            assert_eq!(note.to_bytes(), bytes.as_bytes(), "{bytes:?}");
        }
        Err(error) => assert_eq!(parsed, Err(error), "{bytes:?}"),
    }
}

#[test]
fn malformed_notes_are_rejected_precisely() {
    let sig = SHORT_SIGNATURE;
    check_note(&format!("text\n\n— a {sig}\n"), Ok("text\n"));
    check_note(&format!("a\n\nb\n\n— a {sig}\n"), Ok("a\n\nb\n"));
    check_note(&format!("text\n\n\n— a {sig}\n"), Ok("text\n\n"));
    check_note(&format!("\n\n— a {sig}\n"), Ok("\n"));
    check_note(&format!("é—\n\n— é/ü {sig}\n"), Ok("é—\n"));
    check_note(&format!("te\tx\n\n— a {sig}\n"), Err(NoteError::ControlCharacter { byte: 0x09, offset: 2 }));
    check_note(&format!("text\r\n\n— a {sig}\n"), Err(NoteError::ControlCharacter { byte: 0x0d, offset: 4 }));
    check_note(&format!("text\n— a {sig}\n"), Err(NoteError::MissingSeparator));
    check_note("text\n\n", Err(NoteError::NoSignatures));
    check_note(&format!("text\n\n— a {sig}"), Err(NoteError::SignatureLineNotTerminated));
    check_note(&format!("text\n\n- a {sig}\n"), Err(NoteError::SignatureLinePrefix { line: 1 }));
    check_note(&format!("text\n\n—a {sig}\n"), Err(NoteError::SignatureLinePrefix { line: 1 }));
    check_note(&format!("text\n\n— a{sig}\n"), Err(NoteError::SignatureLineFormat { line: 1 }));
    check_note(
        &format!("text\n\n— a+b {sig}\n"),
        Err(NoteError::KeyName { line: 1, source: KeyNameError::ForbiddenCharacter }),
    );
    check_note(
        &format!("text\n\n— a\u{00a0}b {sig}\n"),
        Err(NoteError::KeyName { line: 1, source: KeyNameError::ForbiddenCharacter }),
    );
    check_note(&format!("text\n\n—  {sig}\n"), Err(NoteError::KeyName { line: 1, source: KeyNameError::Empty }));
    check_note("text\n\n— a AAAAAAA\n", Err(NoteError::SignatureBase64 { line: 1 }));
    check_note("text\n\n— a AAAAAAB=\n", Err(NoteError::SignatureBase64 { line: 1 }));
    check_note(&format!("text\n\n— a {sig} \n"), Err(NoteError::SignatureBase64 { line: 1 }));
    check_note(&format!("text\n\n— a {sig}\n— b !!!!\n"), Err(NoteError::SignatureBase64 { line: 2 }));
    check_note("text\n\n— a AAAA\n", Err(NoteError::SignatureTooShort { line: 1, bytes: 3 }));
    check_note("text\n\n— a AAAAAA==\n", Err(NoteError::SignatureTooShort { line: 1, bytes: 4 }));
    assert_eq!(Note::parse(b"text\xff\n\n"), Err(NoteError::NotUtf8));
    let huge = format!("{}\n\n— a {sig}\n", "x".repeat(tlog::NOTE_BYTES_MAX));
    assert_eq!(Note::parse(huge.as_bytes()), Err(NoteError::TooLarge { bytes: huge.len() }));
}

#[test]
fn signature_count_limits() {
    let lines = |count: usize| format!("text\n\n{}", format!("— a {SHORT_SIGNATURE}\n").repeat(count));
    assert_eq!(Note::parse(lines(16).as_bytes()).map(|note| note.signatures().len()), Ok(16));
    assert_eq!(
        Note::parse(lines(NOTE_SIGNATURES_MAX).as_bytes()).map(|note| note.signatures().len()),
        Ok(NOTE_SIGNATURES_MAX)
    );
    assert_eq!(
        Note::parse(lines(NOTE_SIGNATURES_MAX + 1).as_bytes()),
        Err(NoteError::TooManySignatures { count: NOTE_SIGNATURES_MAX + 1 })
    );
    let mut note = Note::parse(lines(NOTE_SIGNATURES_MAX).as_bytes()).expect("at the limit");
    let extra = signer("a", 1).sign(note.text());
    assert_eq!(note.add_signature(extra), Err(NoteError::TooManySignatures { count: NOTE_SIGNATURES_MAX + 1 }));
}

#[test]
fn notes_are_built_only_from_valid_parts() {
    let signature = signer("a", 1).sign("text\n");
    assert_eq!(Note::new("text", vec![signature.clone()]), Err(NoteError::TextNotTerminated));
    assert_eq!(Note::new("", vec![signature.clone()]), Err(NoteError::TextNotTerminated));
    assert_eq!(Note::new("te\u{7}xt\n", vec![signature.clone()]), Err(NoteError::ControlCharacter { byte: 7, offset: 2 }));
    assert_eq!(Note::new("text\n", vec![]), Err(NoteError::NoSignatures));
    assert_eq!(
        NoteSignature::new(KeyName::new("a").expect("valid"), KeyId(1), vec![]),
        Err(NoteError::EmptySignature)
    );
    assert_eq!(KeyName::new(""), Err(KeyNameError::Empty));
    assert_eq!(KeyName::new("a b"), Err(KeyNameError::ForbiddenCharacter));
    assert_eq!(KeyName::new("a+b"), Err(KeyNameError::ForbiddenCharacter));
    assert_eq!(KeyName::new("a\u{2003}b"), Err(KeyNameError::ForbiddenCharacter));
    assert!(Signer::new("a b", &[1; 32]).is_err());
}

fn note_text() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-zA-Z0-9 ./+=é—]{0,20}", 1..6).prop_map(|lines| {
        let mut text = lines.join("\n");
        text.push('\n');
        text
    })
}

fn note_signature() -> impl Strategy<Value = NoteSignature> {
    ("[a-z0-9./é—]{1,12}", any::<u32>(), proptest::collection::vec(any::<u8>(), 1..80)).prop_map(
        |(name, key_id, signature)| {
            NoteSignature::new(KeyName::new(&name).expect("generated names are valid"), KeyId(key_id), signature)
                .expect("non-empty")
        },
    )
}

proptest! {
    #[test]
    fn notes_round_trip_to_the_byte(
        text in note_text(),
        signatures in proptest::collection::vec(note_signature(), 1..20),
    ) {
        let note = Note::new(&text, signatures).expect("generated notes are valid");
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).expect("serialized notes parse");
        prop_assert_eq!(parsed.to_bytes(), bytes);
        prop_assert_eq!(parsed, note);
    }

    #[test]
    fn cosignatures_round_trip(timestamp in 0..=COSIGNATURE_TIMESTAMP_SECONDS_MAX, size in any::<u64>()) {
        let checkpoint = Checkpoint::new("example.com/log", TreeSize(size), leaf_hash(b"root"), vec![])
            .expect("valid checkpoint");
        let witness = cosigner("witness.example/w1", 9);
        let cosignature = witness.cosign(&checkpoint, timestamp).expect("timestamp in range");
        prop_assert_eq!(
            witness.verifier().verify_cosignature(&checkpoint.to_text(), cosignature.signature()),
            Ok(timestamp)
        );
    }
}

#[test]
fn note_verification_follows_the_signed_note_rules() {
    let log = signer("example.com/log", 1);
    let other = signer("example.com/other", 2);
    let same_name_other_key = signer("example.com/log", 3);
    let text = "hello\n";
    let good = log.sign(text);
    let verifier = log.verifier();
    let known: [&dyn NoteVerifier; 1] = [&verifier];

    let note = Note::new(text, vec![other.sign(text), good.clone()]).expect("valid note");
    assert_eq!(note.verify(&known), Ok(vec![&good]));

    // Unknown keys, even sharing the name (but not the ID), are ignored.
    let note = Note::new(text, vec![other.sign(text), same_name_other_key.sign(text)]).expect("valid note");
    assert_eq!(note.verify(&known), Err(NoteVerifyError::NoKnownSignature));
    assert_eq!(note.verify_known(&known), Ok(vec![]));
    // Sharing the ID but not the name is ignored too.
    let mut renamed_bytes = good.signature().to_vec();
    renamed_bytes[0] ^= 1;
    let renamed = NoteSignature::new(KeyName::new("example.com/x").expect("valid"), good.key_id(), renamed_bytes)
        .expect("non-empty");
    let note = Note::new(text, vec![renamed, good.clone()]).expect("valid note");
    assert_eq!(note.verify(&known), Ok(vec![&good]));

    // A known key's failing signature rejects the note, even next to a good one.
    let mut tampered_bytes = good.signature().to_vec();
    tampered_bytes[10] ^= 0x40;
    let tampered = NoteSignature::new(good.name().clone(), good.key_id(), tampered_bytes).expect("non-empty");
    let note = Note::new(text, vec![good.clone(), tampered]).expect("valid note");
    assert_eq!(
        note.verify(&known),
        Err(NoteVerifyError::BadSignature {
            name: good.name().clone(),
            key_id: good.key_id(),
            source: SignatureError::Invalid
        })
    );
    let truncated = NoteSignature::new(good.name().clone(), good.key_id(), good.signature()[..63].to_vec())
        .expect("non-empty");
    let note = Note::new(text, vec![truncated]).expect("valid note");
    assert_eq!(
        note.verify(&known),
        Err(NoteVerifyError::BadSignature {
            name: good.name().clone(),
            key_id: good.key_id(),
            source: SignatureError::Length { expected: 64, actual: 63 }
        })
    );
    // A signature over other text fails.
    let note = Note::new("other\n", vec![good.clone()]).expect("valid note");
    assert!(matches!(note.verify(&known), Err(NoteVerifyError::BadSignature { .. })));
}

fn check_vkey(text: &str, expected: VkeyError) {
    assert_eq!(Verifier::from_vkey(text).map(|_| ()), Err(expected), "{text}");
}

#[test]
fn verifier_keys_parse_and_format() {
    let verifier = signer("example.com/log", 1).verifier();
    let vkey = verifier.to_vkey();
    assert_eq!(Verifier::from_vkey(&vkey), Ok(verifier.clone()));
    let parsed = Vkey::parse(&vkey).expect("valid vkey");
    assert_eq!(parsed.signature_type, 0x01);
    assert_eq!(parsed.to_string(), vkey);

    // Key material whose base64 holds a '+' still splits right.
    let with_plus = (0u8..=255)
        .map(|seed| signer("n", seed).verifier().to_vkey())
        .find(|vkey| vkey.matches('+').count() > 2)
        .expect("some seed encodes a plus");
    assert_eq!(Verifier::from_vkey(&with_plus).map(|verifier| verifier.to_vkey()), Ok(with_plus));

    let example = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    check_vkey("example.com/foo+530d903a", VkeyError::Format);
    check_vkey("example.com/foo", VkeyError::Format);
    check_vkey("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", VkeyError::Name(KeyNameError::Empty));
    check_vkey(&example.replace("530d903a", "530D903A"), VkeyError::KeyIdHex { text: "530D903A".into() });
    check_vkey(&example.replace("530d903a", "530d903"), VkeyError::KeyIdHex { text: "530d903".into() });
    check_vkey(
        &example.replace("530d903a", "530d903b"),
        VkeyError::KeyIdMismatch { stated: KeyId(0x530d_903b), computed: KeyId(0x530d_903a) },
    );
    check_vkey(
        &example.replace("example.com/foo", "example.com/bar"),
        VkeyError::KeyIdMismatch { stated: KeyId(0x530d_903a), computed: tlog::key_id(&KeyName::new("example.com/bar").expect("valid"), 1, &Verifier::from_vkey(example).expect("valid").public_key()) },
    );
    check_vkey("example.com/foo+530d903a+Aekye!", VkeyError::Base64);
    check_vkey("example.com/foo+530d903a+", VkeyError::Empty);
    check_vkey("example.com/foo+530d903a+AQID", VkeyError::PublicKeyLength { actual: 2 });

    let cosigner_vkey = cosigner("witness.example/w1", 4).verifier().to_vkey();
    check_vkey(&cosigner_vkey, VkeyError::SignatureType { expected: 0x01, found: 0x04 });
    assert_eq!(
        CosignatureVerifier::from_vkey(&cosigner_vkey).map(|verifier| verifier.to_vkey()),
        Ok(cosigner_vkey.clone())
    );
    let boxed = verifier_from_vkey(&cosigner_vkey).expect("type 0x04 is supported");
    assert_eq!(boxed.name().as_str(), "witness.example/w1");
    let ecdsa = Vkey { signature_type: 0x02, ..Vkey::parse(&cosigner_vkey).expect("valid") }.to_string();
    assert_eq!(verifier_from_vkey(&ecdsa).map(|_| ()).err(), Some(VkeyError::UnsupportedType { found: 0x02 }));
}

fn check_checkpoint(text: &str, expected: Result<(), CheckpointError>) {
    let parsed = Checkpoint::parse(text);
    match expected {
        Ok(()) => assert_eq!(parsed.expect("checkpoint parses").to_text(), text, "{text:?}"),
        Err(error) => assert_eq!(parsed, Err(error), "{text:?}"),
    }
}

#[test]
fn checkpoints_parse_strictly() {
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let checkpoint = Checkpoint::parse(SPEC_CHECKPOINT).expect("spec example parses");
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size(), TreeSize(20_852_163));
    assert_eq!(checkpoint.root().to_base64(), root);
    assert!(checkpoint.extensions().is_empty());

    check_checkpoint(SPEC_CHECKPOINT, Ok(()));
    check_checkpoint(&format!("o\n0\n{root}\n"), Ok(()));
    check_checkpoint(&format!("o\n18446744073709551615\n{root}\n"), Ok(()));
    check_checkpoint(&format!("origin with spaces+plus\n1\n{root}\nextension one\nextension two\n"), Ok(()));
    check_checkpoint("", Err(CheckpointError::NotTerminated));
    check_checkpoint(&format!("o\n1\n{root}"), Err(CheckpointError::NotTerminated));
    check_checkpoint("o\n1\n", Err(CheckpointError::TooFewLines { count: 2 }));
    check_checkpoint(&format!("\n1\n{root}\n"), Err(CheckpointError::EmptyOrigin));
    check_checkpoint(&format!("o\n01\n{root}\n"), Err(CheckpointError::Size { text: "01".into() }));
    check_checkpoint(&format!("o\n00\n{root}\n"), Err(CheckpointError::Size { text: "00".into() }));
    check_checkpoint(&format!("o\n+1\n{root}\n"), Err(CheckpointError::Size { text: "+1".into() }));
    check_checkpoint(&format!("o\n-1\n{root}\n"), Err(CheckpointError::Size { text: "-1".into() }));
    check_checkpoint(&format!("o\n1 \n{root}\n"), Err(CheckpointError::Size { text: "1 ".into() }));
    check_checkpoint(&format!("o\n\n{root}\n"), Err(CheckpointError::Size { text: "".into() }));
    check_checkpoint(
        &format!("o\n18446744073709551616\n{root}\n"),
        Err(CheckpointError::Size { text: "18446744073709551616".into() }),
    );
    check_checkpoint("o\n1\nAAAA\n", Err(CheckpointError::Root(HashParseError::Length { actual: 3 })));
    check_checkpoint("o\n1\nnot base64!\n", Err(CheckpointError::Root(HashParseError::Base64)));
    check_checkpoint("o\n1\n\n", Err(CheckpointError::Root(HashParseError::Length { actual: 0 })));
    check_checkpoint(&format!("o\n1\n{root}\n\n"), Err(CheckpointError::EmptyExtension { line: 4 }));
    check_checkpoint(&format!("o\n1\n{root}\next\n\n"), Err(CheckpointError::EmptyExtension { line: 5 }));
    check_checkpoint(&format!("o\tx\n1\n{root}\n"), Err(CheckpointError::ControlCharacter { line: 1 }));

    let root_hash = Hash::from_base64(root).expect("valid");
    assert_eq!(Checkpoint::new("", TreeSize(1), root_hash, vec![]), Err(CheckpointError::EmptyOrigin));
    assert_eq!(
        Checkpoint::new("o\nx", TreeSize(1), root_hash, vec![]),
        Err(CheckpointError::ControlCharacter { line: 1 })
    );
    assert_eq!(
        Checkpoint::new("o", TreeSize(1), root_hash, vec!["a".into(), "b\nc".into()]),
        Err(CheckpointError::ControlCharacter { line: 5 })
    );
}

#[test]
fn cosignatures_sign_the_spec_message_and_bind_the_timestamp() {
    assert_eq!(
        cosignature_message(SPEC_CHECKPOINT, 1_679_315_147),
        format!("cosignature/v1\ntime 1679315147\n{SPEC_CHECKPOINT}")
    );
    let checkpoint = Checkpoint::parse(SPEC_CHECKPOINT).expect("spec example parses");
    let log = signer("example.com/behind-the-sofa", 1);
    let witness = cosigner("witness.example.com/w1", 2);
    let timestamp = 1_679_315_147;
    let cosignature = witness.cosign(&checkpoint, timestamp).expect("timestamp in range");
    assert_eq!(cosignature.signature().len(), 72);
    assert_eq!(cosignature.signature()[..8], timestamp.to_be_bytes());
    // The key ID hashes type 0x04, so the same key as a plain signer has another ID.
    let plain = Signer::new("witness.example.com/w1", &[2; 32]).expect("valid name");
    assert_ne!(plain.key_id(), witness.key_id());
    assert_eq!(
        witness.key_id(),
        tlog::key_id(witness.name(), 0x04, &witness.public_key())
    );
    // The Ed25519 part is a plain signature over the cosignature message.
    let message = cosignature_message(SPEC_CHECKPOINT, timestamp);
    assert_eq!(plain.verifier().verify(&message, &cosignature.signature()[8..]), Ok(()));

    let mut note = checkpoint.sign(&log);
    note.add_signature(cosignature.clone()).expect("room for it");
    let note = Note::parse(&note.to_bytes()).expect("round trip");
    let log_verifier = log.verifier();
    let witness_verifier = witness.verifier();
    assert_eq!(note.verify(&[&log_verifier]).map(|signatures| signatures.len()), Ok(1));
    assert_eq!(note.verify(&[&witness_verifier]), Ok(vec![&note.signatures()[1]]));
    assert_eq!(note.verify(&[&log_verifier, &witness_verifier]).map(|signatures| signatures.len()), Ok(2));
    assert_eq!(witness_verifier.verify_cosignature(note.text(), note.signatures()[1].signature()), Ok(timestamp));

    // Every flipped timestamp bit is rejected.
    for bit in 0..64 {
        let mut bytes = cosignature.signature().to_vec();
        bytes[7 - bit / 8] ^= 1 << (bit % 8);
        let expected = if bit == 63 {
            SignatureError::TimestampTooLarge { timestamp: timestamp | 1 << 63 }
        } else {
            SignatureError::Invalid
        };
        assert_eq!(witness_verifier.verify_cosignature(note.text(), &bytes), Err(expected), "bit {bit}");
        let flipped = NoteSignature::new(cosignature.name().clone(), cosignature.key_id(), bytes).expect("non-empty");
        let forged = Note::new(note.text(), vec![flipped]).expect("valid note");
        assert!(forged.verify(&[&witness_verifier]).is_err(), "bit {bit}");
    }
    assert_eq!(
        witness_verifier.verify_cosignature(note.text(), &cosignature.signature()[..71]),
        Err(SignatureError::Length { expected: 72, actual: 71 })
    );
    // A plain signature by the witness key is not a cosignature.
    let plain_note = Note::new(note.text(), vec![plain.sign(note.text())]).expect("valid note");
    assert_eq!(plain_note.verify(&[&witness_verifier]), Err(NoteVerifyError::NoKnownSignature));

    assert_eq!(witness.cosign(&checkpoint, COSIGNATURE_TIMESTAMP_SECONDS_MAX).map(|_| ()), Ok(()));
    assert_eq!(
        witness.cosign(&checkpoint, COSIGNATURE_TIMESTAMP_SECONDS_MAX + 1),
        Err(CosignError::TimestampTooLarge { timestamp_seconds: 1 << 63 })
    );
}

struct ProofFixture {
    log: Signer,
    leaves: Vec<Hash>,
    proof: TlogProof,
}

fn proof_fixture(extra: Option<Vec<u8>>) -> ProofFixture {
    let log = signer("example.com/log", 1);
    let leaves: Vec<Hash> = (0u8..10).map(|entry| leaf_hash(&[entry])).collect();
    let size = TreeSize(leaves.len() as u64);
    let checkpoint = Checkpoint::new("example.com/log", size, root_from_leaves(&leaves), vec![]).expect("valid");
    let mut note = checkpoint.sign(&log);
    note.add_signature(cosigner("witness.example/w1", 7).cosign(&checkpoint, 1_700_000_000).expect("in range"))
        .expect("room");
    let path = inclusion_proof(leaves.as_slice(), LeafIndex(6), size).expect("in range");
    let proof = TlogProof::new(extra, LeafIndex(6), path, note).expect("valid proof");
    ProofFixture { log, leaves, proof }
}

#[test]
fn tlog_proofs_round_trip_and_verify() {
    for extra in [None, Some(b"app context".to_vec()), Some(vec![])] {
        let fixture = proof_fixture(extra.clone());
        let bytes = fixture.proof.to_bytes();
        let text = String::from_utf8(bytes.clone()).expect("text format");
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\n"));
        assert_eq!(text.contains("\nextra "), extra.is_some());
        assert!(text.contains("\nindex 6\n"));
        let parsed = TlogProof::parse(&bytes).expect("round trip");
        assert_eq!(parsed.to_bytes(), bytes);
        assert_eq!(parsed, fixture.proof);
        assert_eq!(parsed.extra(), extra.as_deref());

        let log_verifier = fixture.log.verifier();
        let checkpoint = parsed.verify(fixture.leaves[6], &[&log_verifier]).expect("valid proof");
        assert_eq!(checkpoint.size(), TreeSize(10));
        assert_eq!(
            parsed.verify(fixture.leaves[5], &[&log_verifier]),
            Err(TlogProofVerifyError::Inclusion(ProofError::RootMismatch))
        );
        let stranger = signer("example.com/log", 2).verifier();
        assert_eq!(
            parsed.verify(fixture.leaves[6], &[&stranger]),
            Err(TlogProofVerifyError::Signature(NoteVerifyError::NoKnownSignature))
        );
        let witness = cosigner("witness.example/w1", 7).verifier();
        assert_eq!(parsed.note().verify_known(&[&witness]).map(|signatures| signatures.len()), Ok(1));
    }
}

fn check_proof_rejected(text: &str, expected: TlogProofError) {
    assert_eq!(TlogProof::parse(text.as_bytes()), Err(expected), "{text:?}");
}

#[test]
fn malformed_tlog_proofs_are_rejected_precisely() {
    let good = String::from_utf8(proof_fixture(None).proof.to_bytes()).expect("text");
    let (head, note) = good.split_once("\n\n").expect("blank line before the note");
    let first_hash = head.lines().nth(2).expect("a hash line").to_owned();

    check_proof_rejected(&good.replacen("tlog-proof@v1", "tlog-proof@v2", 1), TlogProofError::Header);
    check_proof_rejected(&good.replacen("index 6", "index 06", 1), TlogProofError::Index);
    check_proof_rejected(&good.replacen("index 6", "index -6", 1), TlogProofError::Index);
    check_proof_rejected(&good.replacen("index 6\n", "", 1), TlogProofError::Index);
    check_proof_rejected(&good.replacen("index 6", "extra !!\nindex 6", 1), TlogProofError::Extra);
    check_proof_rejected(&good.replacen(&first_hash, "AAAA", 1), TlogProofError::Hash { line: 3 });
    check_proof_rejected(&good.replacen("\n\n", "\n", 1), TlogProofError::Hash { line: 7 });
    check_proof_rejected(head, TlogProofError::MissingSeparator);
    check_proof_rejected(&format!("{head}\n\n{}", note.replacen("\u{2014}", "-", 1)), TlogProofError::Note(NoteError::SignatureLinePrefix { line: 1 }));
    let many = format!("c2sp.org/tlog-proof@v1\nindex 0\n{}\n{note}", format!("{first_hash}\n").repeat(65));
    check_proof_rejected(&many, TlogProofError::TooManyHashes);
    let not_checkpoint = signer("a", 1).sign("just text\n").to_line();
    check_proof_rejected(
        &format!("c2sp.org/tlog-proof@v1\nindex 0\n\njust text\n\n{not_checkpoint}"),
        TlogProofError::Checkpoint(CheckpointError::TooFewLines { count: 1 }),
    );
}
