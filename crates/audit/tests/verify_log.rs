//! End-to-end checks of `verify_log` against logs built in memory: honest logs at sizes
//! that exercise partial tiles at every level pass; each tampering fails with a message
//! naming the tile, entry or state at fault.

mod support;

use std::cell::RefCell;

use audit::{TrustedState, VerifyError, VerifyOptions, VerifyReport, verify_log};
use proptest::prelude::*;
use support::{Files, History, ORIGIN, OTHER_SEED, flip_byte, log_signer, log_vkey};
use tlog::{Cosigner, Note, NoteSignature, Signer, TreeSize, tiles_for_size};

const WITH_ENTRIES: VerifyOptions<'static> = VerifyOptions {
    entries: true,
    witnesses: &[],
    progress: None,
};
const TILES_ONLY: VerifyOptions<'static> = VerifyOptions {
    entries: false,
    witnesses: &[],
    progress: None,
};

fn run(
    files: &Files,
    previous: Option<&TrustedState>,
    options: VerifyOptions<'_>,
) -> Result<VerifyReport, VerifyError> {
    verify_log(files, &log_vkey(), previous, options)
}

/// Runs the verifier and expects it to fail with exactly `expected`.
fn check_rejected(
    files: &Files,
    previous: Option<&TrustedState>,
    options: VerifyOptions<'_>,
    expected: &str,
) {
    match run(files, previous, options) {
        Ok(report) => panic!(
            "expected {expected:?}, log at size {} passed",
            report.checkpoint.size()
        ),
        Err(error) => assert_eq!(error.to_string(), expected),
    }
}

fn state(history: &History, size: u64) -> TrustedState {
    TrustedState::from_checkpoint(&history.checkpoint(size))
}

#[test]
fn honest_logs_pass_at_edge_sizes() {
    let history = History::honest(70_000);
    let signer = log_signer();
    for size in [0, 1, 2, 255, 256, 257, 511, 65_536, 65_537, 70_000] {
        let files = history.files(size, &signer);
        for options in [TILES_ONLY, WITH_ENTRIES] {
            let report =
                run(&files, None, options).unwrap_or_else(|error| panic!("size {size}: {error}"));
            assert_eq!(report.state, state(&history, size), "size {size}");
            assert_eq!(
                report.tiles_verified,
                tiles_for_size(TreeSize(size)).len() as u64
            );
            assert_eq!(report.partial_tile_fallbacks, 0);
            assert_eq!(report.entries_verified, options.entries.then_some(size));
        }
    }
}

#[test]
fn tiles_of_70000_are_the_spec_example() {
    // tlog-tiles: 273 full level-0 tiles, a partial of width 112, one full level-1 tile,
    // a partial of width 17 and a partial level-2 tile of width 1.
    let paths: Vec<String> = tiles_for_size(TreeSize(70_000))
        .iter()
        .map(|tile| tile.path())
        .collect();
    assert_eq!(paths.len(), 273 + 1 + 1 + 1 + 1);
    for path in [
        "tile/0/272",
        "tile/0/273.p/112",
        "tile/1/000",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
    ] {
        assert!(paths.contains(&path.to_owned()), "{path}");
    }
}

#[test]
fn consistent_growth_passes_from_every_stored_size() {
    let history = History::honest(70_000);
    let files = history.files(70_000, &log_signer());
    for stored_size in [0, 1, 255, 256, 257, 65_536, 69_999, 70_000] {
        let previous = state(&history, stored_size);
        let report = run(&files, Some(&previous), TILES_ONLY)
            .unwrap_or_else(|error| panic!("stored size {stored_size}: {error}"));
        assert_eq!(report.state.size, TreeSize(70_000));
    }
}

#[test]
fn gone_partial_tiles_fall_back_to_full_tiles() {
    // The log has grown to 131,072 and deleted the partial tiles of its checkpoint at
    // 70,000; an auditor holding that checkpoint reads the full tiles' first hashes.
    let history = History::honest(131_072);
    let signer = log_signer();
    let mut files = history.files(131_072, &signer);
    files.insert(
        "checkpoint".to_owned(),
        history.note(70_000, &signer).to_bytes(),
    );
    history.add_tiles(70_000, &mut files);
    for path in [
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/entries/273.p/112",
    ] {
        files.remove(path).expect("partial file present");
    }
    let report = run(&files, None, WITH_ENTRIES).expect("fallback verifies");
    assert_eq!(report.partial_tile_fallbacks, 2);
    assert_eq!(report.entries_verified, Some(70_000));
    // A full tile that is not 256 hashes wide is named when it stands in for a partial.
    let mut short_full = files.clone();
    short_full
        .get_mut("tile/0/273")
        .expect("present")
        .truncate(8000);
    check_rejected(
        &short_full,
        None,
        TILES_ONLY,
        "tile tile/0/273 has 8000 bytes, expected 8192",
    );
    // The level-2 partial tile has no full tile to fall back on.
    files.remove("tile/2/000.p/1");
    check_rejected(&files, None, TILES_ONLY, "tile tile/2/000.p/1 is missing");
}

#[test]
fn tampered_entry_is_named_by_index() {
    let history = History::honest(70_000);
    let mut files = history.files(70_000, &log_signer());
    // The last byte of a full bundle belongs to its last entry, index 3 * 256 + 255.
    let length = files["tile/entries/003"].len();
    flip_byte(&mut files, "tile/entries/003", length - 1);
    check_rejected(
        &files,
        None,
        WITH_ENTRIES,
        "entry 1023 in tile/entries/003 does not hash to its leaf in tile/0/003",
    );
    // Without entries the tampered bundle is not read.
    run(&files, None, TILES_ONLY).expect("tiles are intact");
}

#[test]
fn tampered_entry_in_partial_bundle_is_named_by_index() {
    let history = History::honest(70_000);
    let mut files = history.files(70_000, &log_signer());
    // Byte 2 is the first byte of the first entry, after its length prefix.
    flip_byte(&mut files, "tile/entries/273.p/112", 2);
    check_rejected(
        &files,
        None,
        WITH_ENTRIES,
        "entry 69888 in tile/entries/273.p/112 does not hash to its leaf in tile/0/273.p/112",
    );
}

#[test]
fn tampered_tiles_are_named() {
    let history = History::honest(70_000);
    let honest = history.files(70_000, &log_signer());
    let right_edge = "tile/0/273.p/112, tile/1/001.p/17, tile/2/000.p/1";
    let cases = [
        (
            "tile/0/005",
            0,
            "tile/0/005 does not hash to its entry in tile/1/000".to_owned(),
        ),
        (
            "tile/0/272",
            8191,
            "tile/0/272 does not hash to its entry in tile/1/001.p/17".to_owned(),
        ),
        (
            "tile/1/000",
            40,
            "tile/1/000 does not hash to its entry in tile/2/000.p/1".to_owned(),
        ),
        (
            "tile/0/273.p/112",
            0,
            format!("right-edge tiles {right_edge} do not hash to the signed root of size 70000"),
        ),
        (
            "tile/1/001.p/17",
            100,
            format!("right-edge tiles {right_edge} do not hash to the signed root of size 70000"),
        ),
        (
            "tile/2/000.p/1",
            31,
            format!("right-edge tiles {right_edge} do not hash to the signed root of size 70000"),
        ),
    ];
    for (path, offset, expected) in cases {
        let mut files = honest.clone();
        flip_byte(&mut files, path, offset);
        check_rejected(&files, None, TILES_ONLY, &expected);
    }
}

#[test]
fn missing_and_misshapen_resources_are_named() {
    let history = History::honest(70_000);
    let honest = history.files(70_000, &log_signer());
    let check_edit = |edit: &dyn Fn(&mut Files), options: VerifyOptions<'_>, expected: &str| {
        let mut files = honest.clone();
        edit(&mut files);
        check_rejected(&files, None, options, expected);
    };
    check_edit(
        &|files| drop(files.remove("tile/0/007")),
        TILES_ONLY,
        "tile tile/0/007 is missing",
    );
    check_edit(
        &|files| drop(files.remove("tile/1/000")),
        TILES_ONLY,
        "tile tile/1/000 is missing",
    );
    check_edit(
        &|files| drop(files.remove("tile/0/273.p/112")),
        TILES_ONLY,
        "tile tile/0/273.p/112 is missing",
    );
    check_edit(
        &|files| drop(files.remove("checkpoint")),
        TILES_ONLY,
        "checkpoint is missing",
    );
    check_edit(
        &|files| drop(files.remove("tile/entries/100")),
        WITH_ENTRIES,
        "entry bundle tile/entries/100 is missing",
    );
    // A partial tile of the wrong width: 111 hashes where the tree has 112.
    check_edit(
        &|files| {
            files
                .get_mut("tile/0/273.p/112")
                .expect("present")
                .truncate(111 * 32);
        },
        TILES_ONLY,
        "tile tile/0/273.p/112 has 3552 bytes, expected 3584",
    );
    check_edit(
        &|files| files.get_mut("tile/1/000").expect("present").push(0),
        TILES_ONLY,
        "tile tile/1/000 has 8193 bytes, expected 8192",
    );
    // A bundle cut after its first entry.
    check_edit(
        &|files| {
            let bundle = files.get_mut("tile/entries/002").expect("present");
            let first_length = usize::from(u16::from_be_bytes([bundle[0], bundle[1]]));
            bundle.truncate(2 + first_length);
        },
        WITH_ENTRIES,
        "entry bundle tile/entries/002 has 1 entries, expected 256",
    );
    check_edit(
        &|files| files.get_mut("tile/entries/002").expect("present").push(0),
        WITH_ENTRIES,
        "entry bundle tile/entries/002 is malformed: bundle has more than 256 entries",
    );
    check_edit(
        &|files| {
            drop(files.insert(
                "checkpoint".to_owned(),
                vec![b'a'; audit::CHECKPOINT_BYTES_MAX + 1],
            ))
        },
        TILES_ONLY,
        "checkpoint has 65537 bytes, more than 65536",
    );
}

#[test]
fn forks_and_rollbacks_against_the_stored_state_are_named() {
    let history = History::honest(70_000);
    // Same key, different history from entry 5 on.
    let forked = History::new(70_000, 1, 5);
    let signer = log_signer();
    let cases: [(&History, u64, u64, &str); 5] = [
        (
            &history,
            60_000,
            70_000,
            "checkpoint size 60000 is smaller than the stored size 70000 (rollback)",
        ),
        (
            &history,
            10,
            12,
            "checkpoint size 10 is smaller than the stored size 12 (rollback)",
        ),
        (
            &forked,
            12,
            12,
            "root at size 12 differs from the stored root (fork)",
        ),
        (
            &forked,
            70_000,
            60_000,
            "checkpoint at size 70000 is not consistent with the stored checkpoint at size 60000 (fork): \
             proof does not reproduce the old root",
        ),
        (
            &forked,
            257,
            6,
            "checkpoint at size 257 is not consistent with the stored checkpoint at size 6 (fork): \
             proof does not reproduce the old root",
        ),
    ];
    for (served, size, stored_size, expected) in cases {
        let files = served.files(size, &signer);
        check_rejected(
            &files,
            Some(&state(&history, stored_size)),
            TILES_ONLY,
            expected,
        );
    }
    // The fork shares the first five entries, so it is consistent with a state at 5.
    run(
        &forked.files(257, &signer),
        Some(&state(&history, 5)),
        TILES_ONLY,
    )
    .expect("shared prefix");
}

#[test]
fn empty_tree_must_have_the_empty_root() {
    let history = History::honest(1);
    let signer = log_signer();
    let bogus = tlog::Checkpoint::new(ORIGIN, TreeSize(0), history.root(1), Vec::new())
        .expect("valid checkpoint");
    let mut files = Files::new();
    files.insert("checkpoint".to_owned(), bogus.sign(&signer).to_bytes());
    check_rejected(
        &files,
        None,
        WITH_ENTRIES,
        "checkpoint at size 0 has a root other than the empty-tree hash",
    );
}

#[test]
fn trees_beyond_the_size_limit_are_refused_before_fetching_tiles() {
    let history = History::honest(1);
    let size = audit::TREE_SIZE_MAX + 1;
    let huge = tlog::Checkpoint::new(ORIGIN, TreeSize(size), history.root(1), Vec::new())
        .expect("valid checkpoint");
    let mut files = Files::new();
    files.insert("checkpoint".to_owned(), huge.sign(&log_signer()).to_bytes());
    check_rejected(
        &files,
        None,
        TILES_ONLY,
        "checkpoint size 16777217 exceeds the 16777216 entries this verifier holds in memory",
    );
}

#[test]
fn origin_change_is_rejected() {
    let history = History::honest(10);
    let files = history.files(10, &log_signer());
    let previous = TrustedState {
        origin: "custos.example/log/us".to_owned(),
        ..state(&history, 5)
    };
    check_rejected(
        &files,
        Some(&previous),
        TILES_ONLY,
        "checkpoint origin \"custos.example/log/eu\" differs from the stored origin \"custos.example/log/us\"",
    );
}

#[test]
fn signatures_are_checked_against_the_log_key() {
    let history = History::honest(300);
    let signer = log_signer();
    let honest = history.files(300, &signer);
    let vkey = log_vkey();
    let with_note = |note: &[u8]| {
        let mut files = honest.clone();
        files.insert("checkpoint".to_owned(), note.to_vec());
        files
    };

    // Another key under the same name: its key ID differs, so the note carries no
    // signature by the log key.
    let impostor = Signer::new(ORIGIN, &OTHER_SEED).expect("valid signer");
    let unsigned = format!("checkpoint carries no signature by the log key {vkey}");
    check_rejected(
        &with_note(&history.note(300, &impostor).to_bytes()),
        None,
        TILES_ONLY,
        &unsigned,
    );

    // The log's key ID with a corrupted signature.
    let good = history.note(300, &signer);
    let mut bytes = good.signatures()[0].signature().to_vec();
    bytes[0] ^= 0x01;
    let forged =
        NoteSignature::new(signer.name().clone(), signer.key_id(), bytes).expect("non-empty");
    let badly_signed = Note::new(good.text(), vec![forged]).expect("valid note");
    check_rejected(
        &with_note(&badly_signed.to_bytes()),
        None,
        TILES_ONLY,
        &format!("checkpoint signature by the log key {vkey} does not verify"),
    );

    // A different checkpoint text under the log's signature of the honest one.
    let other_text = history.checkpoint(299).to_text();
    let moved = Note::new(&other_text, good.signatures().to_vec()).expect("valid note");
    check_rejected(
        &with_note(&moved.to_bytes()),
        None,
        TILES_ONLY,
        &format!("checkpoint signature by the log key {vkey} does not verify"),
    );

    // Bare checkpoint text with no signature block at all.
    check_rejected(
        &with_note(history.checkpoint(300).to_text().as_bytes()),
        None,
        TILES_ONLY,
        "checkpoint is not a well-formed signed note: note has no blank line before its signatures",
    );

    // The honest log checked with the wrong vkey.
    let wrong_vkey = impostor.verifier().to_vkey();
    match verify_log(&honest, &wrong_vkey, None, TILES_ONLY) {
        Err(error) => assert_eq!(
            error.to_string(),
            format!("checkpoint carries no signature by the log key {wrong_vkey}")
        ),
        Ok(_) => panic!("wrong vkey accepted"),
    }
    match verify_log(&honest, "not a vkey", None, TILES_ONLY) {
        Err(error) => assert_eq!(
            error.to_string(),
            "log verifier key is not a valid Ed25519 vkey"
        ),
        Ok(_) => panic!("malformed vkey accepted"),
    }
}

#[test]
fn witness_cosignatures_are_counted_and_unknown_ones_ignored() {
    let history = History::honest(300);
    let signer = log_signer();
    let mut files = history.files(300, &signer);
    let checkpoint = history.checkpoint(300);
    let known = Cosigner::new("witness.example/one", &[1; 32]).expect("valid cosigner");
    let unknown = Cosigner::new("witness.example/two", &[2; 32]).expect("valid cosigner");
    let mut note = history.note(300, &signer);
    note.add_signature(known.cosign(&checkpoint, 1_700_000_000).expect("cosign"))
        .expect("room");
    note.add_signature(unknown.cosign(&checkpoint, 1_700_000_000).expect("cosign"))
        .expect("room");
    files.insert("checkpoint".to_owned(), note.to_bytes());

    let witness_vkey = known.verifier().to_vkey();
    let witnesses = [witness_vkey.as_str()];
    let options = VerifyOptions {
        witnesses: &witnesses,
        ..TILES_ONLY
    };
    let report = run(&files, None, options).expect("cosigned checkpoint verifies");
    assert_eq!(report.cosigners, vec!["witness.example/one".to_owned()]);
    assert_eq!(
        run(&files, None, TILES_ONLY).expect("verifies").cosigners,
        Vec::<String>::new()
    );

    // A cosignature by the known witness over another checkpoint text fails.
    let mut bad = history.note(300, &signer);
    bad.add_signature(
        known
            .cosign(&history.checkpoint(299), 1_700_000_000)
            .expect("cosign"),
    )
    .expect("room");
    files.insert("checkpoint".to_owned(), bad.to_bytes());
    check_rejected(
        &files,
        None,
        options,
        "cosignature by witness witness.example/one does not verify",
    );
}

#[test]
fn progress_counts_every_tile_and_bundle() {
    let history = History::honest(70_000);
    let files = history.files(70_000, &log_signer());
    let calls = RefCell::new(Vec::new());
    let record = |done: u64, total: u64| calls.borrow_mut().push((done, total));
    let options = VerifyOptions {
        progress: Some(&record),
        ..WITH_ENTRIES
    };
    run(&files, None, options).expect("honest log");
    let calls = calls.into_inner();
    let total = 277 + 274;
    assert_eq!(calls.len(), total);
    assert_eq!(calls.last(), Some(&(total as u64, total as u64)));
    assert!(
        calls
            .iter()
            .enumerate()
            .all(|(position, &(done, _))| done == position as u64 + 1)
    );
}

#[test]
fn trusted_state_round_trips_through_its_file_format() {
    let history = History::honest(3);
    let stored = state(&history, 3);
    let text = stored.to_text();
    assert_eq!(
        text,
        format!("{ORIGIN}\n3\n{}\n", history.root(3).to_base64())
    );
    assert_eq!(TrustedState::parse(&text), Ok(stored));
    let check_invalid = |text: &str, expected: &str| match TrustedState::parse(text) {
        Err(error) => assert_eq!(error.to_string(), expected, "{text:?}"),
        Ok(state) => panic!("{text:?} parsed as {state:?}"),
    };
    check_invalid(
        &format!("{text}extension\n"),
        "state file has extension lines, expected exactly origin, size and root",
    );
    check_invalid("origin\n03\nroot\n", "state file is not a checkpoint body");
    check_invalid("", "state file is not a checkpoint body");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any honest growth verifies; flipping any bit of any tile is caught.
    #[test]
    fn growth_verifies_and_any_tile_flip_is_caught(
        size in 1u64..1_500,
        stored_fraction in 0.0f64..=1.0,
        tile_choice in any::<prop::sample::Index>(),
        byte_choice in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let history = History::honest(size);
        let mut files = history.files(size, &log_signer());
        let stored_size = (size as f64 * stored_fraction) as u64;
        let previous = state(&history, stored_size);
        prop_assert!(run(&files, Some(&previous), WITH_ENTRIES).is_ok());

        let tiles = tiles_for_size(TreeSize(size));
        let tile = tiles[tile_choice.index(tiles.len())];
        let path = tile.path();
        let bytes = files.get_mut(&path).expect("tile present");
        let offset = byte_choice.index(bytes.len());
        bytes[offset] ^= 1 << bit;
        let error = run(&files, Some(&previous), TILES_ONLY).expect_err("flipped tile accepted");
        // The message names the tampered tile itself, or the right edge it belongs to.
        prop_assert!(error.to_string().contains(&path), "{error} does not name {path}");
    }
}
