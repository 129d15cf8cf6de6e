//! The one conformance suite every [`RegionStore`] backend must pass: each trait method and
//! each error case of the contract. Compiled always (it is small) so that the crates above
//! can run it against the store they build.
//!
//! Every check makes its own subject ids (a per-process counter and the time in the prefix),
//! so the suite can run any number of times against the same store. The checks panic with a
//! message naming the backend. [`check_stats`] compares counts before and after its own
//! writes, so it needs no concurrent writer to the same store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use model::{FieldKind, Label, StaffId, SubjectId};

use tlog::{
    CompactRange, ENTRY_BYTES_MAX, Hash, TileId, TreeSize, encode_tile, leaf_hash, tiles_added,
};

use crate::log::{LOG_BATCH_ENTRIES_MAX, LogBatch, LogState, LogStore, StoredCheckpoint};
use crate::{
    ErasureRecord, RegionStore, Rewrap, SealedValue, StoreError, StoreStats, StoredKey,
    SubjectRecord, SubjectUpsert, WRITE_BATCH_ROWS_MAX, WriteBatch, WriteOutcome,
};

/// Runs every check, in order.
pub async fn run_all(store: &dyn RegionStore) {
    check_identity(store).await;
    check_ensure_data_keys(store).await;
    check_subject_upserts(store).await;
    check_values_merge(store).await;
    check_values_order_and_filter(store).await;
    check_unknown_subject(store).await;
    check_missing_data_key(store).await;
    check_erase(store).await;
    check_erased_batch_is_all_or_nothing(store).await;
    check_keys_wrapped_before(store).await;
    check_rewrap_keys(store).await;
    check_batch_limits(store).await;
    check_stats(store).await;
    check_blind_index(store).await;
}

/// `region` and `backend`.
pub async fn check_identity(store: &dyn RegionStore) {
    assert!(
        ["sqlite", "postgres"].contains(&store.backend()),
        "unexpected backend name {}",
        store.backend()
    );
    assert!(!store.region().as_str().is_empty());
}

/// New keys are stored; an existing key wins over a new one; within a call the first key of
/// a subject wins; concurrent first writes agree; `data_keys` leaves missing subjects out.
pub async fn check_ensure_data_keys(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (a, b, c, d, e) = (
        ids.subject("a"),
        ids.subject("b"),
        ids.subject("c"),
        ids.subject("d"),
        ids.subject("e"),
    );
    let missing = ids.subject("missing");

    assert_eq!(
        store.ensure_data_keys(&[]).await.expect("ensure nothing"),
        vec![],
        "{}",
        ids.backend
    );

    let first = [key(&a, 1, 1, 0xa1), key(&b, 1, 2, 0xb1)];
    let stored = store
        .ensure_data_keys(&first)
        .await
        .expect("ensure new keys");
    assert_eq!(
        stored,
        first.to_vec(),
        "{}: new keys are stored as given",
        ids.backend
    );

    let second = [key(&a, 2, 9, 0xa2), key(&c, 1, 1, 0xc1)];
    let stored = store.ensure_data_keys(&second).await.expect("ensure again");
    assert_eq!(
        stored,
        vec![first[0].clone(), second[1].clone()],
        "{}: the existing key wins",
        ids.backend
    );

    let duplicated = [key(&d, 1, 1, 0xd1), key(&d, 1, 1, 0xd2)];
    let stored = store
        .ensure_data_keys(&duplicated)
        .await
        .expect("ensure duplicates");
    assert_eq!(
        stored,
        vec![duplicated[0].clone(), duplicated[0].clone()],
        "{}: the first of a call wins",
        ids.backend
    );

    let left = [key(&e, 1, 1, 0xe1)];
    let right = [key(&e, 1, 1, 0xe2)];
    let (left, right) = tokio::join!(
        store.ensure_data_keys(&left),
        store.ensure_data_keys(&right)
    );
    let (left, right) = (left.expect("ensure left"), right.expect("ensure right"));
    assert_eq!(
        left, right,
        "{}: concurrent first writes agree",
        ids.backend
    );

    let found = store
        .data_keys(&[c.clone(), missing.clone(), a.clone()])
        .await
        .expect("data keys");
    assert_eq!(
        found,
        vec![second[1].clone(), first[0].clone()],
        "{}: input order, missing left out",
        ids.backend
    );
    assert_eq!(
        store.data_keys(&[missing]).await.expect("data keys"),
        vec![],
        "{}",
        ids.backend
    );
}

/// Upserts create, then replace labels and staff link; `created_at_ms` stays and
/// `updated_at_ms` only moves forward; duplicates in one batch count once as created.
pub async fn check_subject_upserts(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (a, b) = (ids.subject("a"), ids.subject("b"));
    let staff = StaffId::new("staff-7").expect("valid staff id");
    assert_eq!(
        store.subject(&a).await.expect("subject"),
        None,
        "{}: unknown subject",
        ids.backend
    );

    let outcome = store
        .write(&subjects_only(vec![upsert(
            &a,
            &[Label::Journalist],
            None,
            1_000,
        )]))
        .await
        .expect("create");
    assert_eq!(outcome, counts(1, 0, 0, 0), "{}", ids.backend);
    let expected = SubjectRecord {
        id: a.clone(),
        labels: labels(&[Label::Journalist]),
        staff: None,
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        erased_at_ms: None,
    };
    assert_eq!(
        store.subject(&a).await.expect("subject"),
        Some(expected.clone()),
        "{}",
        ids.backend
    );

    let update = upsert(&a, &[Label::Staff, Label::Vip], Some(&staff), 2_000);
    assert_eq!(
        store
            .write(&subjects_only(vec![update]))
            .await
            .expect("update"),
        counts(0, 1, 0, 0),
        "{}",
        ids.backend
    );
    let updated = SubjectRecord {
        labels: labels(&[Label::Staff, Label::Vip]),
        staff: Some(staff.clone()),
        updated_at_ms: 2_000,
        ..expected
    };
    assert_eq!(
        store.subject(&a).await.expect("subject"),
        Some(updated.clone()),
        "{}",
        ids.backend
    );

    // An older upsert still replaces labels and staff, but time does not go back.
    let older = upsert(&a, &[], None, 1_500);
    store
        .write(&subjects_only(vec![older]))
        .await
        .expect("older update");
    let replaced = SubjectRecord {
        labels: BTreeSet::new(),
        staff: None,
        ..updated
    };
    assert_eq!(
        store.subject(&a).await.expect("subject"),
        Some(replaced),
        "{}",
        ids.backend
    );

    let twice = vec![
        upsert(&b, &[Label::Minor], None, 3_000),
        upsert(&b, &[Label::Activist], Some(&staff), 2_500),
    ];
    assert_eq!(
        store.write(&subjects_only(twice)).await.expect("twice"),
        counts(1, 1, 0, 0),
        "{}",
        ids.backend
    );
    let record = store.subject(&b).await.expect("subject").expect("b exists");
    assert_eq!(
        (
            record.labels,
            record.staff,
            record.created_at_ms,
            record.updated_at_ms
        ),
        (labels(&[Label::Activist]), Some(staff), 3_000, 3_000),
        "{}: the last upsert of a batch wins",
        ids.backend
    );
}

/// Values are added; the same value written again is merged (first seen the minimum, last
/// seen the maximum, sealed bytes unchanged); duplicates within a batch merge too.
pub async fn check_values_merge(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let a = ids.subject("a");
    store
        .ensure_data_keys(&[key(&a, 1, 1, 1)])
        .await
        .expect("key");
    let email = value(&a, FieldKind::Email, 1, b"sealed-1", 100, 200);
    let phone = value(&a, FieldKind::Phone, 2, b"sealed-2", 150, 150);
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![upsert(&a, &[], None, 100)],
        values: vec![email.clone(), phone.clone()],
    };
    assert_eq!(
        store.write(&batch).await.expect("write"),
        counts(1, 0, 2, 0),
        "{}",
        ids.backend
    );
    assert_eq!(
        store.values(&a, &[]).await.expect("values"),
        vec![email.clone(), phone.clone()],
        "{}",
        ids.backend
    );

    // Idempotent re-import with wider times and other sealed bytes (a fresh nonce).
    let wider = SealedValue {
        sealed: b"other".to_vec(),
        first_seen_ms: 50,
        last_seen_ms: 300,
        ..email.clone()
    };
    let narrower = SealedValue {
        sealed: b"other".to_vec(),
        first_seen_ms: 160,
        last_seen_ms: 140,
        ..phone.clone()
    };
    let outcome = store
        .write(&values_only(vec![wider, narrower]))
        .await
        .expect("rewrite");
    assert_eq!(outcome, counts(0, 0, 0, 2), "{}", ids.backend);
    let merged = SealedValue {
        first_seen_ms: 50,
        last_seen_ms: 300,
        ..email.clone()
    };
    assert_eq!(
        store.values(&a, &[]).await.expect("values"),
        vec![merged.clone(), phone.clone()],
        "{}",
        ids.backend
    );

    let new = value(&a, FieldKind::Email, 3, b"sealed-3", 400, 400);
    let again = SealedValue {
        first_seen_ms: 500,
        last_seen_ms: 600,
        sealed: b"later".to_vec(),
        ..new.clone()
    };
    let outcome = store
        .write(&values_only(vec![new.clone(), again]))
        .await
        .expect("duplicates");
    assert_eq!(outcome, counts(0, 0, 1, 1), "{}", ids.backend);
    let folded = SealedValue {
        last_seen_ms: 600,
        ..new
    };
    assert_eq!(
        store.values(&a, &[]).await.expect("values"),
        vec![merged, folded, phone],
        "{}",
        ids.backend
    );
}

/// `values` orders by field (in `FieldKind` order), first seen, value id, and filters by field.
pub async fn check_values_order_and_filter(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let a = ids.subject("a");
    store
        .ensure_data_keys(&[key(&a, 1, 1, 1)])
        .await
        .expect("key");
    let phone = value(&a, FieldKind::Phone, 1, b"p", 5, 5);
    let email = value(&a, FieldKind::Email, 2, b"e", 30, 30);
    let ip_late_2 = value(&a, FieldKind::IpAddress, 2, b"i2", 20, 25);
    let ip_early = value(&a, FieldKind::IpAddress, 9, b"i9", 10, 40);
    let ip_late_1 = value(&a, FieldKind::IpAddress, 1, b"i1", 20, 20);
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![upsert(&a, &[], None, 1)],
        values: vec![
            phone.clone(),
            email.clone(),
            ip_late_2.clone(),
            ip_early.clone(),
            ip_late_1.clone(),
        ],
    };
    store.write(&batch).await.expect("write");

    let check = async |fields: &[FieldKind], expected: Vec<&SealedValue>| {
        let found = store.values(&a, fields).await.expect("values");
        let expected: Vec<SealedValue> = expected.into_iter().cloned().collect();
        assert_eq!(found, expected, "{}: values of {fields:?}", ids.backend);
    };
    check(&[], vec![&ip_early, &ip_late_1, &ip_late_2, &email, &phone]).await;
    check(
        &[FieldKind::Phone, FieldKind::IpAddress],
        vec![&ip_early, &ip_late_1, &ip_late_2, &phone],
    )
    .await;
    check(&[FieldKind::Email, FieldKind::Email], vec![&email]).await;
    check(&[FieldKind::Name], vec![]).await;
    assert_eq!(
        store
            .values(&ids.subject("nobody"), &[])
            .await
            .expect("values"),
        vec![],
        "{}",
        ids.backend
    );
}

/// A value whose subject neither exists nor is in the batch fails the batch.
pub async fn check_unknown_subject(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (ghost, bystander) = (ids.subject("ghost"), ids.subject("bystander"));
    store
        .ensure_data_keys(&[key(&ghost, 1, 1, 1), key(&bystander, 1, 1, 2)])
        .await
        .expect("keys");
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![upsert(&bystander, &[], None, 1)],
        values: vec![
            value(&bystander, FieldKind::Name, 1, b"n", 1, 1),
            value(&ghost, FieldKind::Name, 2, b"g", 1, 1),
        ],
    };
    let error = store.write(&batch).await.expect_err("unknown subject");
    assert!(
        matches!(&error, StoreError::UnknownSubject(id) if *id == ghost),
        "{}: {error:?}",
        ids.backend
    );
    assert_nothing_written(store, &ids, &[&bystander, &ghost]).await;
}

/// A value whose subject has no data key fails the batch.
pub async fn check_missing_data_key(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (keyless, keyed) = (ids.subject("keyless"), ids.subject("keyed"));
    store
        .ensure_data_keys(&[key(&keyed, 1, 1, 1)])
        .await
        .expect("key");
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![upsert(&keyed, &[], None, 1), upsert(&keyless, &[], None, 1)],
        values: vec![
            value(&keyed, FieldKind::Email, 1, b"k", 1, 1),
            value(&keyless, FieldKind::Email, 2, b"x", 1, 1),
        ],
    };
    let error = store.write(&batch).await.expect_err("missing data key");
    assert!(
        matches!(&error, StoreError::MissingDataKey(id) if *id == keyless),
        "{}: {error:?}",
        ids.backend
    );
    assert_nothing_written(store, &ids, &[&keyed, &keyless]).await;

    // A subject without values needs no key.
    let outcome = store
        .write(&subjects_only(vec![upsert(&keyless, &[], None, 1)]))
        .await
        .expect("no values");
    assert_eq!(outcome, counts(1, 0, 0, 0), "{}", ids.backend);
}

/// Erasure deletes values and key, marks the subject, records the erasure, and is final:
/// erasing again returns the first record; writes and new keys are refused.
pub async fn check_erase(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (a, other) = (ids.subject("a"), ids.subject("other"));
    store
        .ensure_data_keys(&[key(&a, 1, 1, 1), key(&other, 1, 1, 2)])
        .await
        .expect("keys");
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![
            upsert(&a, &[Label::Journalist], None, 10),
            upsert(&other, &[], None, 10),
        ],
        values: vec![
            value(&a, FieldKind::IpAddress, 1, b"1", 10, 10),
            value(&a, FieldKind::IpAddress, 2, b"2", 10, 10),
            value(&a, FieldKind::Email, 3, b"3", 10, 10),
            value(&other, FieldKind::Email, 4, b"4", 10, 10),
        ],
    };
    store.write(&batch).await.expect("write");
    assert_eq!(
        store.erasure(&a).await.expect("erasure"),
        None,
        "{}: not erased yet",
        ids.backend
    );

    let record = store
        .erase(&a, 5_000, "privacy-officer-1", "data subject request")
        .await
        .expect("erase");
    let expected = ErasureRecord {
        subject: a.clone(),
        erased_at_ms: 5_000,
        requested_by: "privacy-officer-1".to_owned(),
        reason: "data subject request".to_owned(),
        values_destroyed: 3,
    };
    assert_eq!(record, expected, "{}", ids.backend);
    assert_eq!(
        store.erasure(&a).await.expect("erasure"),
        Some(expected.clone()),
        "{}",
        ids.backend
    );
    assert_eq!(
        store.values(&a, &[]).await.expect("values"),
        vec![],
        "{}: values destroyed",
        ids.backend
    );
    assert_eq!(
        store
            .data_keys(std::slice::from_ref(&a))
            .await
            .expect("keys"),
        vec![],
        "{}: key destroyed",
        ids.backend
    );
    let subject = store
        .subject(&a)
        .await
        .expect("subject")
        .expect("the subject row stays");
    assert_eq!(subject.erased_at_ms, Some(5_000), "{}", ids.backend);
    assert_eq!(
        store.values(&other, &[]).await.expect("values").len(),
        1,
        "{}: others untouched",
        ids.backend
    );

    let again = store
        .erase(&a, 9_000, "someone-else", "again")
        .await
        .expect("erase again");
    assert_eq!(
        again, expected,
        "{}: erasing again returns the first record",
        ids.backend
    );

    let error = store
        .erase(&ids.subject("nobody"), 1, "x", "y")
        .await
        .expect_err("unknown");
    assert!(
        matches!(&error, StoreError::UnknownSubject(_)),
        "{}: {error:?}",
        ids.backend
    );

    let error = store
        .write(&subjects_only(vec![upsert(&a, &[], None, 6_000)]))
        .await
        .expect_err("upsert erased");
    assert!(
        matches!(&error, StoreError::Erased(id) if *id == a),
        "{}: {error:?}",
        ids.backend
    );
    let error = store
        .ensure_data_keys(&[key(&a, 1, 1, 9)])
        .await
        .expect_err("key for erased");
    assert!(
        matches!(&error, StoreError::Erased(id) if *id == a),
        "{}: {error:?}",
        ids.backend
    );
    let error = store
        .write(&values_only(vec![value(
            &a,
            FieldKind::Email,
            5,
            b"5",
            1,
            1,
        )]))
        .await
        .expect_err("value");
    assert!(
        matches!(&error, StoreError::Erased(id) if *id == a),
        "{}: {error:?}",
        ids.backend
    );
    assert_eq!(
        store
            .data_keys(std::slice::from_ref(&a))
            .await
            .expect("keys"),
        vec![],
        "{}",
        ids.backend
    );
}

/// One value for an erased subject in a batch leaves every other row of the batch unwritten.
pub async fn check_erased_batch_is_all_or_nothing(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (erased, fresh, existing) = (
        ids.subject("erased"),
        ids.subject("fresh"),
        ids.subject("existing"),
    );
    store
        .ensure_data_keys(&[
            key(&erased, 1, 1, 1),
            key(&fresh, 1, 1, 2),
            key(&existing, 1, 1, 3),
        ])
        .await
        .expect("keys");
    let setup = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![
            upsert(&erased, &[], None, 1),
            upsert(&existing, &[Label::Vip], None, 1),
        ],
        values: vec![value(&existing, FieldKind::Phone, 1, b"p", 1, 1)],
    };
    store.write(&setup).await.expect("setup");
    store
        .erase(&erased, 2, "officer", "request")
        .await
        .expect("erase");
    let before = store.subject(&existing).await.expect("subject");
    let existing_values = store.values(&existing, &[]).await.expect("values");

    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![
            upsert(&fresh, &[], None, 3),
            upsert(&existing, &[Label::Minor], None, 3),
        ],
        values: vec![
            value(&fresh, FieldKind::Email, 2, b"f", 3, 3),
            value(&existing, FieldKind::Phone, 1, b"p", 0, 9),
            value(&existing, FieldKind::Email, 3, b"e", 3, 3),
            value(&erased, FieldKind::Email, 4, b"x", 3, 3),
        ],
    };
    let error = store.write(&batch).await.expect_err("erased in batch");
    assert!(
        matches!(&error, StoreError::Erased(id) if *id == erased),
        "{}: {error:?}",
        ids.backend
    );
    assert_eq!(
        store.subject(&fresh).await.expect("subject"),
        None,
        "{}: fresh subject not created",
        ids.backend
    );
    assert_eq!(
        store.values(&fresh, &[]).await.expect("values"),
        vec![],
        "{}",
        ids.backend
    );
    assert_eq!(
        store.subject(&existing).await.expect("subject"),
        before,
        "{}: upsert not applied",
        ids.backend
    );
    assert_eq!(
        store.values(&existing, &[]).await.expect("values"),
        existing_values,
        "{}: no merge",
        ids.backend
    );
    assert_eq!(
        store.values(&erased, &[]).await.expect("values"),
        vec![],
        "{}",
        ids.backend
    );
}

/// `keys_wrapped_before` selects by group and older version, ordered by subject id.
pub async fn check_keys_wrapped_before(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let group = 7;
    let keys = [
        key(&ids.subject("k1"), group, 1, 1),
        key(&ids.subject("k3"), group, 3, 3),
        key(&ids.subject("k2"), group, 2, 2),
        key(&ids.subject("k4"), 8, 1, 4),
    ];
    store.ensure_data_keys(&keys).await.expect("keys");
    let check = async |group: u16, version: u32, expected: Vec<&StoredKey>| {
        let found: Vec<StoredKey> = store
            .keys_wrapped_before(group, version)
            .await
            .expect("keys wrapped before")
            .into_iter()
            .filter(|key| ids.owns(&key.subject))
            .collect();
        let expected: Vec<StoredKey> = expected.into_iter().cloned().collect();
        assert_eq!(
            found, expected,
            "{}: group {group} before version {version}",
            ids.backend
        );
    };
    check(group, 1, vec![]).await;
    check(group, 3, vec![&keys[0], &keys[2]]).await;
    check(group, u32::MAX, vec![&keys[0], &keys[2], &keys[1]]).await;
    check(8, 2, vec![&keys[3]]).await;
    check(9, u32::MAX, vec![]).await;
}

/// `rewrap_keys` changes a key only where the stored group and version still match.
pub async fn check_rewrap_keys(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (a, b, c) = (ids.subject("a"), ids.subject("b"), ids.subject("c"));
    let original = [
        key(&a, 3, 1, 0xa1),
        key(&b, 3, 2, 0xb2),
        key(&c, 3, 1, 0xc1),
    ];
    store.ensure_data_keys(&original).await.expect("keys");
    assert_eq!(
        store.rewrap_keys(&[]).await.expect("nothing"),
        0,
        "{}",
        ids.backend
    );

    let rewraps = [
        Rewrap {
            key: key(&a, 3, 3, 0xa3),
            previous_version: 1,
        },
        Rewrap {
            key: key(&b, 3, 3, 0xb3),
            previous_version: 1,
        },
        Rewrap {
            key: key(&c, 4, 3, 0xc3),
            previous_version: 1,
        },
        Rewrap {
            key: key(&ids.subject("nobody"), 3, 3, 0),
            previous_version: 1,
        },
    ];
    assert_eq!(
        store.rewrap_keys(&rewraps).await.expect("rewrap"),
        1,
        "{}: only a matches",
        ids.backend
    );
    let found = store
        .data_keys(&[a.clone(), b.clone(), c.clone()])
        .await
        .expect("keys");
    assert_eq!(
        found,
        vec![
            rewraps[0].key.clone(),
            original[1].clone(),
            original[2].clone()
        ],
        "{}",
        ids.backend
    );

    // Applied in order: a chain of re-wraps of one key in one call goes through.
    let chain = [
        Rewrap {
            key: key(&a, 3, 4, 0xa4),
            previous_version: 3,
        },
        Rewrap {
            key: key(&a, 3, 5, 0xa5),
            previous_version: 4,
        },
        Rewrap {
            key: key(&a, 3, 6, 0xa6),
            previous_version: 4,
        },
    ];
    assert_eq!(
        store.rewrap_keys(&chain).await.expect("chain"),
        2,
        "{}",
        ids.backend
    );
    let found = store
        .data_keys(std::slice::from_ref(&a))
        .await
        .expect("keys");
    assert_eq!(found, vec![chain[1].key.clone()], "{}", ids.backend);
}

/// Over-long batches are refused whole, before anything is written.
pub async fn check_batch_limits(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let a = ids.subject("a");
    let template = upsert(&a, &[], None, 1);
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![template; WRITE_BATCH_ROWS_MAX],
        values: vec![value(&a, FieldKind::Text, 1, b"t", 1, 1)],
    };
    let error = store.write(&batch).await.expect_err("too large");
    assert!(
        matches!(error, StoreError::BatchTooLarge { rows, max } if rows == WRITE_BATCH_ROWS_MAX + 1 && max == WRITE_BATCH_ROWS_MAX),
        "{}: {error:?}",
        ids.backend
    );
    assert_eq!(
        store.subject(&a).await.expect("subject"),
        None,
        "{}",
        ids.backend
    );

    let keys = vec![key(&a, 1, 1, 1); WRITE_BATCH_ROWS_MAX + 1];
    let error = store
        .ensure_data_keys(&keys)
        .await
        .expect_err("too many keys");
    assert!(
        matches!(error, StoreError::BatchTooLarge { .. }),
        "{}: {error:?}",
        ids.backend
    );
    assert_eq!(
        store
            .data_keys(std::slice::from_ref(&a))
            .await
            .expect("keys"),
        vec![],
        "{}",
        ids.backend
    );
    let error = store
        .data_keys(&vec![a.clone(); WRITE_BATCH_ROWS_MAX + 1])
        .await
        .expect_err("too many ids");
    assert!(
        matches!(error, StoreError::BatchTooLarge { .. }),
        "{}: {error:?}",
        ids.backend
    );
    let rewraps = vec![
        Rewrap {
            key: key(&a, 1, 2, 2),
            previous_version: 1
        };
        WRITE_BATCH_ROWS_MAX + 1
    ];
    let error = store
        .rewrap_keys(&rewraps)
        .await
        .expect_err("too many rewraps");
    assert!(
        matches!(error, StoreError::BatchTooLarge { .. }),
        "{}: {error:?}",
        ids.backend
    );
}

/// `stats` counts subjects (erased included), erased subjects and values.
pub async fn check_stats(store: &dyn RegionStore) {
    let ids = Ids::new(store);
    let (a, b) = (ids.subject("a"), ids.subject("b"));
    let before = store.stats().await.expect("stats");
    store
        .ensure_data_keys(&[key(&a, 1, 1, 1), key(&b, 1, 1, 2)])
        .await
        .expect("keys");
    let batch = WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![upsert(&a, &[], None, 1), upsert(&b, &[], None, 1)],
        values: vec![
            value(&a, FieldKind::Email, 1, b"1", 1, 1),
            value(&b, FieldKind::Email, 2, b"2", 1, 1),
            value(&b, FieldKind::Phone, 3, b"3", 1, 1),
        ],
    };
    store.write(&batch).await.expect("write");
    store
        .erase(&a, 2, "officer", "request")
        .await
        .expect("erase");
    let after = store.stats().await.expect("stats");
    let expected = StoreStats {
        subjects: before.subjects + 2,
        subjects_erased: before.subjects_erased + 1,
        values: before.values + 2,
    };
    assert_eq!(after, expected, "{}", ids.backend);
}

async fn assert_nothing_written(store: &dyn RegionStore, ids: &Ids, subjects: &[&SubjectId]) {
    for subject in subjects {
        assert_eq!(
            store.subject(subject).await.expect("subject"),
            None,
            "{}: {subject} not created",
            ids.backend
        );
        assert_eq!(
            store.values(subject, &[]).await.expect("values"),
            vec![],
            "{}: {subject} has no values",
            ids.backend
        );
    }
}

/// Subject ids private to one check of one run.
struct Ids {
    prefix: String,
    backend: &'static str,
}

impl Ids {
    fn new(store: &dyn RegionStore) -> Ids {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        Ids {
            prefix: format!("conformance-{}-{nanos}-{run}-", std::process::id()),
            backend: store.backend(),
        }
    }

    fn subject(&self, name: &str) -> SubjectId {
        SubjectId::new(&format!("{}{name}", self.prefix)).expect("valid subject id")
    }

    fn owns(&self, subject: &SubjectId) -> bool {
        subject.as_str().starts_with(&self.prefix)
    }
}

fn key(subject: &SubjectId, group: u16, version: u32, fill: u8) -> StoredKey {
    StoredKey {
        subject: subject.clone(),
        group,
        version,
        wrapped: vec![fill; 40],
    }
}

fn value(
    subject: &SubjectId,
    field: FieldKind,
    id: u8,
    sealed: &[u8],
    first_seen_ms: i64,
    last_seen_ms: i64,
) -> SealedValue {
    SealedValue {
        subject: subject.clone(),
        field,
        value_id: [id; 16],
        sealed: sealed.to_vec(),
        first_seen_ms,
        last_seen_ms,
    }
}

fn upsert(
    id: &SubjectId,
    labels_given: &[Label],
    staff: Option<&StaffId>,
    at_ms: i64,
) -> SubjectUpsert {
    SubjectUpsert {
        id: id.clone(),
        labels: labels(labels_given),
        staff: staff.cloned(),
        at_ms,
    }
}

fn labels(given: &[Label]) -> BTreeSet<Label> {
    given.iter().copied().collect()
}

fn subjects_only(subjects: Vec<SubjectUpsert>) -> WriteBatch {
    WriteBatch { blind_indexes: Vec::new(),
        subjects,
        values: Vec::new(),
    }
}

fn values_only(values: Vec<SealedValue>) -> WriteBatch {
    WriteBatch { blind_indexes: Vec::new(),
        subjects: Vec::new(),
        values,
    }
}

fn counts(
    subjects_created: u64,
    subjects_updated: u64,
    values_added: u64,
    values_merged: u64,
) -> WriteOutcome {
    WriteOutcome {
        subjects_created,
        subjects_updated,
        values_added,
        values_merged,
    }
}

/// Blind-index entries are written with their values, found by field and digest, refused
/// for a subject without a value in the batch, and gone when the subject is erased.
pub async fn check_blind_index(store: &dyn RegionStore) {
    let subject = SubjectId::new(&format!("blind-{}", store.stats().await.expect("stats").subjects)).expect("id");
    let key = StoredKey { subject: subject.clone(), group: 3, version: 1, wrapped: vec![1; 40] };
    store.ensure_data_keys(std::slice::from_ref(&key)).await.expect("key");
    let digest = |byte: u8| [byte; 32];
    let entry = |field: FieldKind, byte: u8| crate::BlindIndexEntry { subject: subject.clone(), field, digest: digest(byte) };
    let value = SealedValue { subject: subject.clone(), field: FieldKind::Email, value_id: [5; 16], sealed: vec![9; 30], first_seen_ms: 1, last_seen_ms: 1 };
    let orphan = WriteBatch {
        subjects: vec![SubjectUpsert { id: subject.clone(), labels: BTreeSet::new(), staff: None, at_ms: 1 }],
        values: Vec::new(),
        blind_indexes: vec![entry(FieldKind::Email, 7)],
    };
    assert!(matches!(store.write(&orphan).await, Err(StoreError::InvalidRecord { .. })), "an entry needs a value of its subject in the batch");
    assert_eq!(store.find_blind_index(FieldKind::Email, &digest(7), 10).await.expect("find"), Vec::<SubjectId>::new(), "nothing was written");
    let batch = WriteBatch {
        subjects: vec![SubjectUpsert { id: subject.clone(), labels: BTreeSet::new(), staff: None, at_ms: 1 }],
        values: vec![value],
        blind_indexes: vec![entry(FieldKind::Email, 7), entry(FieldKind::Email, 7), entry(FieldKind::Phone, 8)],
    };
    store.write(&batch).await.expect("write");
    store.write(&batch).await.expect("write again: entries already present are kept once");
    assert_eq!(store.find_blind_index(FieldKind::Email, &digest(7), 10).await.expect("find"), vec![subject.clone()]);
    assert_eq!(store.find_blind_index(FieldKind::Phone, &digest(8), 10).await.expect("find"), vec![subject.clone()]);
    assert!(store.find_blind_index(FieldKind::Phone, &digest(7), 10).await.expect("find").is_empty(), "the field is part of the key");
    store.erase(&subject, 2, "test", "blind index").await.expect("erase");
    assert!(store.find_blind_index(FieldKind::Email, &digest(7), 10).await.expect("find").is_empty(), "erased subjects are not found");
}

/// Runs every check of the [`crate::LogStore`] contract, in order. Like the region checks,
/// they start from whatever the log already holds, so they can run again on one store;
/// `backend` names the store in failure messages. No other writer may append to the log
/// meanwhile.
pub async fn run_log_all(store: &dyn LogStore, backend: &str) {
    check_log_append(store, backend).await;
    check_log_append_refuses_wrong_start(store, backend).await;
    check_log_batch_validation(store, backend).await;
    check_log_concurrent_appenders(store, backend).await;
    check_log_tiles(store, backend).await;
    check_checkpoints(store, backend).await;
    check_cosignatures(store, backend).await;
}

/// A batch at the stored size is written: state, entries (clamped reads) and tiles.
pub async fn check_log_append(store: &dyn LogStore, backend: &str) {
    let before = store.log_state().await.expect("log state");
    let entries = log_entries_for(before.size.0, 3);
    let batch = log_batch(store, &before, entries.clone()).await;
    store.append_batch(&batch).await.expect("append batch");
    let after = store.log_state().await.expect("log state");
    assert_eq!(after, batch.state, "{backend}: state is the batch's");
    let start = before.size.0;
    assert_eq!(
        store.log_entries(start, start + 3).await.expect("entries"),
        entries,
        "{backend}: entries read back"
    );
    assert_eq!(
        store
            .log_entries(start + 1, start + 100)
            .await
            .expect("entries"),
        entries[1..].to_vec(),
        "{backend}: reads stop at the stored size"
    );
    assert_eq!(
        store
            .log_entries(start + 3, start + 2)
            .await
            .expect("entries"),
        Vec::<Vec<u8>>::new(),
        "{backend}: an empty range reads nothing"
    );
    match store.log_entries(0, LOG_BATCH_ENTRIES_MAX as u64 + 1).await {
        Err(StoreError::BatchTooLarge { .. }) => {}
        other => panic!("{backend}: expected BatchTooLarge for a long read, got {other:?}"),
    }
}

/// A batch that does not start at the stored size writes nothing.
pub async fn check_log_append_refuses_wrong_start(store: &dyn LogStore, backend: &str) {
    let before = store.log_state().await.expect("log state");
    assert!(before.size.0 > 0, "{backend}: run check_log_append first");
    let stale_index = before.size.0 - 1;
    let batch = LogBatch {
        first_index: stale_index,
        entries: vec![b"moved".to_vec()],
        tiles: Vec::new(),
        state: LogState {
            size: before.size,
            frontier: leaf_frontier(before.size.0),
        },
    };
    match store.append_batch(&batch).await {
        Err(StoreError::LogSizeMismatch {
            first_index,
            stored_size,
        }) => {
            assert_eq!(
                (first_index, stored_size),
                (stale_index, before.size.0),
                "{backend}"
            );
        }
        other => panic!("{backend}: expected LogSizeMismatch, got {other:?}"),
    }
    let ahead = LogBatch {
        first_index: before.size.0 + 1,
        entries: vec![b"gap".to_vec()],
        tiles: Vec::new(),
        state: LogState {
            size: TreeSize(before.size.0 + 2),
            frontier: leaf_frontier(before.size.0 + 2),
        },
    };
    assert!(
        matches!(
            store.append_batch(&ahead).await,
            Err(StoreError::LogSizeMismatch { .. })
        ),
        "{backend}: a gap is refused"
    );
    assert_eq!(
        store.log_state().await.expect("state"),
        before,
        "{backend}: nothing written"
    );
    let last = store
        .log_entries(before.size.0 - 1, before.size.0)
        .await
        .expect("entries");
    assert_ne!(
        last,
        vec![b"moved".to_vec()],
        "{backend}: an entry never moves"
    );
}

/// Batches that contradict themselves are refused before the database is touched.
pub async fn check_log_batch_validation(store: &dyn LogStore, backend: &str) {
    let before = store.log_state().await.expect("log state");
    let size = before.size.0;
    let valid = |entries: Vec<Vec<u8>>| {
        let end = size + entries.len() as u64;
        LogBatch {
            first_index: size,
            entries,
            tiles: Vec::new(),
            state: LogState {
                size: TreeSize(end),
                frontier: leaf_frontier(end),
            },
        }
    };
    let mut wrong_size = valid(vec![b"a".to_vec()]);
    wrong_size.state = LogState {
        size: TreeSize(size + 2),
        frontier: leaf_frontier(size + 2),
    };
    let mut wrong_frontier = valid(vec![b"a".to_vec()]);
    wrong_frontier.state.frontier.push(Hash::default());
    let mut wrong_tile = valid(vec![b"a".to_vec()]);
    let tile = TileId::new(0, size / 256, 1).expect("tile id");
    wrong_tile.tiles.push((tile, vec![0; 31]));
    let mut outside_tile = valid(vec![b"a".to_vec()]);
    let far = TileId::new(0, size / 256 + 1, 1).expect("tile id");
    outside_tile.tiles.push((far, vec![0; 32]));
    let cases = [
        ("empty", valid(Vec::new())),
        ("too large entry", valid(vec![vec![0; ENTRY_BYTES_MAX + 1]])),
        ("state size", wrong_size),
        ("frontier length", wrong_frontier),
        ("tile length", wrong_tile),
        ("tile outside the tree", outside_tile),
    ];
    for (name, batch) in cases {
        match store.append_batch(&batch).await {
            Err(StoreError::LogBatchInvalid(_)) => {}
            other => panic!("{backend}: {name}: expected LogBatchInvalid, got {other:?}"),
        }
    }
    let too_many = valid(vec![Vec::new(); LOG_BATCH_ENTRIES_MAX + 1]);
    assert!(
        matches!(
            store.append_batch(&too_many).await,
            Err(StoreError::BatchTooLarge { .. })
        ),
        "{backend}: too many entries"
    );
    let largest = valid(vec![vec![7; ENTRY_BYTES_MAX]]);
    store
        .append_batch(&largest)
        .await
        .expect("an entry of ENTRY_BYTES_MAX bytes is stored");
    assert_eq!(
        store.log_entries(size, size + 1).await.expect("entries"),
        vec![vec![7; ENTRY_BYTES_MAX]],
        "{backend}"
    );
}

/// Two batches racing for the same start: exactly one is written.
pub async fn check_log_concurrent_appenders(store: &dyn LogStore, backend: &str) {
    let before = store.log_state().await.expect("log state");
    let left = log_batch(store, &before, vec![b"left".to_vec()]).await;
    let right = log_batch(store, &before, vec![b"right".to_vec(), b"right 2".to_vec()]).await;
    let (left_result, right_result) =
        tokio::join!(store.append_batch(&left), store.append_batch(&right));
    let after = store.log_state().await.expect("log state");
    match (left_result, right_result) {
        (Ok(()), Err(StoreError::LogSizeMismatch { .. })) => {
            assert_eq!(after, left.state, "{backend}")
        }
        (Err(StoreError::LogSizeMismatch { .. }), Ok(())) => {
            assert_eq!(after, right.state, "{backend}")
        }
        other => panic!("{backend}: expected exactly one batch to win, got {other:?}"),
    }
}

/// Level-0 tiles: written partial, grown, served at any width up to the stored one.
pub async fn check_log_tiles(store: &dyn LogStore, backend: &str) {
    let before = store.log_state().await.expect("log state");
    // Enough entries to complete the current level-0 tile and start the next.
    let count = 256 - (before.size.0 % 256) + 5;
    let batch = log_batch(store, &before, log_entries_for(before.size.0, count)).await;
    store.append_batch(&batch).await.expect("append");
    let size = batch.state.size;
    let all = store
        .log_entries(size.0 - (size.0 % 256) - 256, size.0)
        .await
        .expect("entries");
    let full_index = size.0 / 256 - 1;
    let full = TileId::new(0, full_index, 256).expect("tile id");
    let expected_full: Vec<u8> = all[..256]
        .iter()
        .flat_map(|entry| leaf_hash(entry).0)
        .collect();
    assert_eq!(
        store.log_tile(full).await.expect("tile"),
        Some(expected_full.clone()),
        "{backend}: full tile"
    );
    let narrower = TileId::new(0, full_index, 10).expect("tile id");
    assert_eq!(
        store.log_tile(narrower).await.expect("tile"),
        Some(expected_full[..320].to_vec()),
        "{backend}: an older partial tile is a prefix"
    );
    let partial = TileId::new(0, full_index + 1, 5).expect("tile id");
    let expected_partial: Vec<u8> = all[256..]
        .iter()
        .flat_map(|entry| leaf_hash(entry).0)
        .collect();
    assert_eq!(
        store.log_tile(partial).await.expect("tile"),
        Some(expected_partial),
        "{backend}"
    );
    let wider = TileId::new(0, full_index + 1, 6).expect("tile id");
    assert_eq!(
        store.log_tile(wider).await.expect("tile"),
        None,
        "{backend}: not yet stored"
    );
    let missing = TileId::new(5, 0, 1).expect("tile id");
    assert_eq!(
        store.log_tile(missing).await.expect("tile"),
        None,
        "{backend}: absent tile"
    );
}

/// Checkpoints: the latest is the anchor; smaller sizes and forks are refused; saving the
/// latest again is a no-op.
pub async fn check_checkpoints(store: &dyn LogStore, backend: &str) {
    let latest = store.latest_checkpoint().await.expect("latest");
    let base = latest.as_ref().map_or(0, |checkpoint| checkpoint.size.0);
    let checkpoint = |size: u64, fill: u8| StoredCheckpoint {
        size: TreeSize(size),
        root: Hash([fill; 32]),
        note: format!("example.com/log\n{size}\nnote {fill}\n"),
    };
    let first = checkpoint(base + 2, 1);
    store.save_checkpoint(&first).await.expect("save");
    assert_eq!(
        store.latest_checkpoint().await.expect("latest"),
        Some(first.clone()),
        "{backend}"
    );
    store
        .save_checkpoint(&first)
        .await
        .expect("saving the latest again is allowed");
    match store.save_checkpoint(&checkpoint(base + 2, 2)).await {
        Err(StoreError::CheckpointFork { size }) => assert_eq!(size, base + 2, "{backend}"),
        other => panic!("{backend}: expected CheckpointFork, got {other:?}"),
    }
    match store.save_checkpoint(&checkpoint(base + 1, 1)).await {
        Err(StoreError::CheckpointRollback { saved, new }) => {
            assert_eq!((saved, new), (base + 2, base + 1), "{backend}");
        }
        other => panic!("{backend}: expected CheckpointRollback, got {other:?}"),
    }
    assert_eq!(
        store.latest_checkpoint().await.expect("latest"),
        Some(first),
        "{backend}"
    );
    let second = checkpoint(base + 7, 3);
    store.save_checkpoint(&second).await.expect("save larger");
    assert_eq!(
        store.latest_checkpoint().await.expect("latest"),
        Some(second),
        "{backend}"
    );
}

/// Cosignatures attach to a saved checkpoint only, one per witness (the newer replaces the
/// older), bounded in size and count.
pub async fn check_cosignatures(store: &dyn LogStore, backend: &str) {
    let latest = store.latest_checkpoint().await.expect("latest");
    let base = latest.as_ref().map_or(0, |checkpoint| checkpoint.size.0);
    let size = TreeSize(base + 3);
    let cosignature = |witness: &str, line: &str| crate::StoredCosignature { size, witness: witness.to_owned(), line: line.to_owned() };
    match store.save_cosignature(&cosignature("w1", "— w1 AAAA\n")).await {
        Err(StoreError::NoCheckpoint { size: missing }) => assert_eq!(missing, size.0, "{backend}"),
        other => panic!("{backend}: expected NoCheckpoint, got {other:?}"),
    }
    let saved = StoredCheckpoint { size, root: Hash([9; 32]), note: format!("example.com/log\n{size}\nnote\n") };
    store.save_checkpoint(&saved).await.expect("save");
    assert_eq!(store.checkpoint_at(size).await.expect("checkpoint_at"), Some(saved), "{backend}");
    assert_eq!(store.checkpoint_at(TreeSize(base + 4)).await.expect("checkpoint_at"), None, "{backend}");
    store.save_cosignature(&cosignature("w2", "— w2 BBBB\n")).await.expect("save w2");
    store.save_cosignature(&cosignature("w1", "— w1 AAAA\n")).await.expect("save w1");
    store.save_cosignature(&cosignature("w1", "— w1 CCCC\n")).await.expect("replace w1");
    assert_eq!(
        store.cosignatures(size).await.expect("cosignatures"),
        vec![cosignature("w1", "— w1 CCCC\n"), cosignature("w2", "— w2 BBBB\n")],
        "{backend}"
    );
    assert!(store.cosignatures(TreeSize(base + 4)).await.expect("none").is_empty(), "{backend}");
    let long = "x".repeat(crate::COSIGNATURE_LINE_BYTES_MAX + 1);
    assert!(matches!(store.save_cosignature(&cosignature("w3", &long)).await, Err(StoreError::LogBatchInvalid(_))), "{backend}");
    for index in 2..crate::COSIGNATURES_PER_CHECKPOINT_MAX {
        store.save_cosignature(&cosignature(&format!("w-{index:03}"), "— w x\n")).await.expect("within the limit");
    }
    match store.save_cosignature(&cosignature("w-one-too-many", "— w x\n")).await {
        Err(StoreError::TooManyCosignatures { max, .. }) => assert_eq!(max, crate::COSIGNATURES_PER_CHECKPOINT_MAX, "{backend}"),
        other => panic!("{backend}: expected TooManyCosignatures, got {other:?}"),
    }
    store.save_cosignature(&cosignature("w1", "— w1 DDDD\n")).await.expect("a known witness may still replace its own");
}

/// Distinct entries for positions `first..first + count`.
fn log_entries_for(first: u64, count: u64) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|index| format!("entry {index}").into_bytes())
        .collect()
}

/// Some frontier of the right length for `size`: the store does not check its hashes.
fn leaf_frontier(size: u64) -> Vec<Hash> {
    vec![Hash([0x5a; 32]); size.count_ones() as usize]
}

/// A consistent batch appending `entries` to `before`: the real frontier and the level-0
/// tiles it changes (hashes of earlier entries of a partial tile are read back).
async fn log_batch(store: &dyn LogStore, before: &LogState, entries: Vec<Vec<u8>>) -> LogBatch {
    let mut range =
        CompactRange::from_parts(before.size, before.frontier.clone()).expect("stored frontier");
    let leaves: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
    range.extend(&leaves);
    let first_index = before.size.0;
    let mut tiles = Vec::new();
    for tile in tiles_added(before.size, range.size()) {
        if tile.level() != 0 {
            continue;
        }
        let start = tile.index() * 256;
        let end = start + u64::from(tile.width());
        let mut hashes = Vec::new();
        if start < first_index {
            for entry in store
                .log_entries(start, first_index)
                .await
                .expect("entries")
            {
                hashes.push(leaf_hash(&entry));
            }
        }
        for index in start.max(first_index)..end {
            hashes.push(leaves[(index - first_index) as usize]);
        }
        tiles.push((tile, encode_tile(&hashes)));
    }
    LogBatch {
        first_index,
        entries,
        tiles,
        state: LogState {
            size: range.size(),
            frontier: range.hashes().to_vec(),
        },
    }
}
