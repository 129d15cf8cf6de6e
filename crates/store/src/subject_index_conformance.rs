//! The conformance suite of the per-subject access index ([`SubjectIndexStore`]): every
//! backend must pass it. Each run makes its own subject ids and works from the cursor it
//! finds, so the suite can run any number of times against one store. Checks panic with a
//! message naming the backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use model::SubjectId;

use crate::subject_index::{
    SUBJECT_ENTRIES_MAX, SUBJECT_INDEX_BATCH_ROWS_MAX, SubjectIndexBatch, SubjectIndexStore, TIMELINE_BATCH_ROWS_MAX, TIMELINE_KEY_BYTES_MAX,
    TimelineKind, TimelinePoint, TimelineRow,
};
use crate::StoreError;

/// Runs every check, in order.
pub async fn run_all(store: &dyn SubjectIndexStore, backend: &str) {
    check_index_and_read(store, backend).await;
    check_cursor_must_match(store, backend).await;
    check_rows_are_idempotent(store, backend).await;
    check_batch_validation(store, backend).await;
    check_concurrent_followers(store, backend).await;
    check_timelines(store, backend).await;
}

/// Rows written move the cursor; a subject's entries read back in order, bounded by `below`
/// and `limit`, and never include another subject's.
pub async fn check_index_and_read(store: &dyn SubjectIndexStore, backend: &str) {
    let (ada, bob) = (unique("ada"), unique("bob"));
    let from = store.subject_index_cursor().await.expect("cursor");
    let rows = vec![(ada.clone(), from), (bob.clone(), from + 1), (ada.clone(), from + 3), (ada.clone(), from + 4)];
    store.index_subjects(&SubjectIndexBatch { from, to: from + 5, rows, timeline: Vec::new() }).await.expect("index");
    assert_eq!(store.subject_index_cursor().await.expect("cursor"), from + 5, "{backend}: the cursor moved");
    let entries = |subject: SubjectId, below: u64, limit: usize| async move { store.subject_entries(&subject, 0, below, limit).await.expect("entries") };
    assert_eq!(entries(ada.clone(), from + 5, 100).await, vec![from, from + 3, from + 4], "{backend}: ada's entries");
    assert_eq!(entries(bob.clone(), from + 5, 100).await, vec![from + 1], "{backend}: bob's entries");
    assert_eq!(entries(ada.clone(), from + 4, 100).await, vec![from, from + 3], "{backend}: below is exclusive");
    assert_eq!(entries(ada.clone(), from + 5, 2).await, vec![from, from + 3], "{backend}: limit");
    assert_eq!(entries(unique("nobody"), from + 5, 100).await, Vec::<u64>::new(), "{backend}: an unknown subject");
    assert_eq!(store.subject_entries(&ada, from + 1, from + 5, 100).await.expect("entries"), vec![from + 3, from + 4], "{backend}: from is inclusive");
    assert_eq!(store.subject_entries(&ada, from + 3, from + 5, 1).await.expect("entries"), vec![from + 3], "{backend}: from and limit");
    match store.subject_entries(&ada, 0, from + 5, SUBJECT_ENTRIES_MAX + 1).await {
        Err(StoreError::BatchTooLarge { .. }) => {}
        other => panic!("{backend}: expected BatchTooLarge for a long read, got {other:?}"),
    }
    // An empty batch (a stretch of the log naming nobody) moves the cursor too.
    store.index_subjects(&SubjectIndexBatch { from: from + 5, to: from + 9, rows: Vec::new(), timeline: Vec::new() }).await.expect("empty batch");
    assert_eq!(store.subject_index_cursor().await.expect("cursor"), from + 9, "{backend}: an empty batch moved the cursor");
}

/// A batch that does not start at the stored cursor writes nothing, rows included.
pub async fn check_cursor_must_match(store: &dyn SubjectIndexStore, backend: &str) {
    let ada = unique("ada");
    let stored = store.subject_index_cursor().await.expect("cursor");
    for from in [stored + 1, stored.saturating_sub(1)] {
        if from == stored {
            continue;
        }
        let batch = SubjectIndexBatch { from, to: from + 2, rows: vec![(ada.clone(), from)], timeline: Vec::new() };
        match store.index_subjects(&batch).await {
            Err(StoreError::SubjectIndexCursorMismatch { from: refused, stored: found }) => {
                assert_eq!((refused, found), (from, stored), "{backend}: the error names both cursors");
            }
            other => panic!("{backend}: expected SubjectIndexCursorMismatch from {from}, got {other:?}"),
        }
    }
    assert_eq!(store.subject_index_cursor().await.expect("cursor"), stored, "{backend}: the cursor did not move");
    assert!(store.subject_entries(&ada, 0, u64::MAX >> 2, 100).await.expect("entries").is_empty(), "{backend}: no row was written");
}

/// A follower that crashed after its commit and re-reads the same entries writes the same
/// rows again from the new cursor without doubling any: rows are keyed by (subject, index).
pub async fn check_rows_are_idempotent(store: &dyn SubjectIndexStore, backend: &str) {
    let ada = unique("ada");
    let from = store.subject_index_cursor().await.expect("cursor");
    store.index_subjects(&SubjectIndexBatch { from, to: from + 1, rows: vec![(ada.clone(), from)], timeline: Vec::new() }).await.expect("index");
    let repeated = SubjectIndexBatch { from: from + 1, to: from + 2, rows: vec![(ada.clone(), from + 1)], timeline: Vec::new() };
    store.index_subjects(&repeated).await.expect("index");
    assert_eq!(store.subject_entries(&ada, 0, from + 2, 100).await.expect("entries"), vec![from, from + 1], "{backend}: entries");
}

/// Rows outside the batch's range, a cursor moving back and oversized batches are refused.
pub async fn check_batch_validation(store: &dyn SubjectIndexStore, backend: &str) {
    let ada = unique("ada");
    let from = store.subject_index_cursor().await.expect("cursor");
    let invalid = [
        SubjectIndexBatch { from, to: from + 2, rows: vec![(ada.clone(), from + 2)], timeline: Vec::new() },
        SubjectIndexBatch { from, to: from + 2, rows: vec![(ada.clone(), from.wrapping_sub(1))], timeline: Vec::new() },
        SubjectIndexBatch { from: from + 1, to: from, rows: Vec::new(), timeline: Vec::new() },
    ];
    for batch in invalid {
        match store.index_subjects(&batch).await {
            Err(StoreError::SubjectIndexInvalid(_)) => {}
            other => panic!("{backend}: expected SubjectIndexInvalid for {batch:?}, got {other:?}"),
        }
    }
    let rows = (0..=SUBJECT_INDEX_BATCH_ROWS_MAX as u64).map(|offset| (ada.clone(), from + offset)).collect();
    let too_many = SubjectIndexBatch { from, to: from + SUBJECT_INDEX_BATCH_ROWS_MAX as u64 + 1, rows, timeline: Vec::new() };
    match store.index_subjects(&too_many).await {
        Err(StoreError::BatchTooLarge { .. }) => {}
        other => panic!("{backend}: expected BatchTooLarge, got {other:?}"),
    }
    assert_eq!(store.subject_index_cursor().await.expect("cursor"), from, "{backend}: nothing moved");
}

/// Two followers racing with the same batch: exactly one succeeds.
pub async fn check_concurrent_followers(store: &dyn SubjectIndexStore, backend: &str) {
    let ada = unique("ada");
    let from = store.subject_index_cursor().await.expect("cursor");
    let batch = SubjectIndexBatch { from, to: from + 1, rows: vec![(ada.clone(), from)], timeline: Vec::new() };
    let (first, second) = tokio::join!(store.index_subjects(&batch), store.index_subjects(&batch));
    let succeeded = [&first, &second].iter().filter(|result| result.is_ok()).count();
    assert_eq!(succeeded, 1, "{backend}: exactly one follower wins: {first:?} {second:?}");
    for result in [first, second] {
        if let Err(error) = result {
            assert!(matches!(error, StoreError::SubjectIndexCursorMismatch { .. }), "{backend}: the loser is told why: {error:?}");
        }
    }
    assert_eq!(store.subject_index_cursor().await.expect("cursor"), from + 1, "{backend}: cursor");
}

/// Timeline rows commit with the cursor and read back newest first, bounded by `below` and
/// `limit`, one timeline never showing another's rows (an actor and a case may share an id);
/// activity counts per bucket, negative times included; bad rows write nothing.
pub async fn check_timelines(store: &dyn SubjectIndexStore, backend: &str) {
    let key = unique("tl").to_string();
    let from = store.subject_index_cursor().await.expect("cursor");
    let day = 86_400_000_i64;
    let row = |kind, offset: u64, at_ms| TimelineRow { kind, key: key.clone(), index: from + offset, at_ms };
    let timeline = vec![
        row(TimelineKind::Actor, 0, 3 * day + 5),
        row(TimelineKind::Actor, 1, 3 * day + 9),
        row(TimelineKind::Case, 1, 3 * day + 9),
        row(TimelineKind::Actor, 2, 5 * day),
        row(TimelineKind::Actor, 3, -1),
        row(TimelineKind::Subject, 3, -1),
        TimelineRow { kind: TimelineKind::Tally, key: format!("{key}:b"), index: from + 3, at_ms: -1 },
        TimelineRow { kind: TimelineKind::Tally, key: format!("{key}:a"), index: from + 2, at_ms: 5 * day },
        TimelineRow { kind: TimelineKind::Tally, key: format!("{key}:a"), index: from + 3, at_ms: 5 * day },
    ];
    store.index_subjects(&SubjectIndexBatch { from, to: from + 4, rows: Vec::new(), timeline: timeline.clone() }).await.expect("index");
    // A follower re-reading the same entries after a crash adds nothing.
    store.index_subjects(&SubjectIndexBatch { from: from + 4, to: from + 5, rows: Vec::new(), timeline: vec![row(TimelineKind::Actor, 4, 6 * day)] })
        .await
        .expect("index");
    let read = |kind, below: u64, limit: usize| {
        let key = key.clone();
        async move { store.timeline(kind, &key, below, limit).await.expect("timeline") }
    };
    let point = |offset: u64, at_ms| TimelinePoint { index: from + offset, at_ms };
    assert_eq!(
        read(TimelineKind::Actor, from + 5, 100).await,
        vec![point(4, 6 * day), point(3, -1), point(2, 5 * day), point(1, 3 * day + 9), point(0, 3 * day + 5)],
        "{backend}: the actor's timeline, newest first"
    );
    assert_eq!(read(TimelineKind::Actor, from + 3, 1).await, vec![point(2, 5 * day)], "{backend}: below and limit");
    assert_eq!(read(TimelineKind::Case, from + 5, 100).await, vec![point(1, 3 * day + 9)], "{backend}: the case's timeline alone");
    assert_eq!(read(TimelineKind::Subject, from + 5, 100).await, vec![point(3, -1)], "{backend}: the subject's timeline alone");
    assert_eq!(
        store.timeline_activity(TimelineKind::Actor, &key, day).await.expect("activity"),
        vec![(-day, 1), (3 * day, 2), (5 * day, 1), (6 * day, 1)],
        "{backend}: activity per day"
    );
    assert!(store.timeline_activity(TimelineKind::Case, &unique("none").to_string(), day).await.expect("activity").is_empty(), "{backend}: no activity");
    // A kind's keys, one seek at a time.
    let next = |after: String| async move { store.timeline_next_key(TimelineKind::Tally, &after).await.expect("next key") };
    let first = next(format!("{key}:")).await;
    assert_eq!(first.as_deref(), Some(format!("{key}:a").as_str()), "{backend}: the first tally key after a prefix");
    assert_eq!(next(format!("{key}:a")).await.as_deref(), Some(format!("{key}:b").as_str()), "{backend}: the next tally key");
    assert!(next(format!("{key}:b")).await.is_none_or(|after| !after.starts_with(&key)), "{backend}: no key after the last of this run");
    assert_eq!(
        store.timeline_activity(TimelineKind::Tally, &format!("{key}:a"), day).await.expect("tally"),
        vec![(5 * day, 2)],
        "{backend}: a tally counts its entries"
    );
    assert!(
        matches!(store.timeline_activity(TimelineKind::Actor, &key, 0).await, Err(StoreError::SubjectIndexInvalid(_))),
        "{backend}: a zero bucket is refused"
    );
    // Bad rows: outside the range, an empty or overlong key, too many.
    let from = store.subject_index_cursor().await.expect("cursor");
    let bad_row = |key: String, index| TimelineRow { kind: TimelineKind::Actor, key, index, at_ms: 0 };
    for rows in [vec![bad_row(key.clone(), from + 1)], vec![bad_row(String::new(), from)], vec![bad_row("k".repeat(TIMELINE_KEY_BYTES_MAX + 1), from)]] {
        match store.index_subjects(&SubjectIndexBatch { from, to: from + 1, rows: Vec::new(), timeline: rows }).await {
            Err(StoreError::SubjectIndexInvalid(_)) => {}
            other => panic!("{backend}: expected SubjectIndexInvalid for a bad timeline row, got {other:?}"),
        }
    }
    let too_many = (0..=TIMELINE_BATCH_ROWS_MAX).map(|_| bad_row(key.clone(), from)).collect();
    match store.index_subjects(&SubjectIndexBatch { from, to: from + 1, rows: Vec::new(), timeline: too_many }).await {
        Err(StoreError::BatchTooLarge { .. }) => {}
        other => panic!("{backend}: expected BatchTooLarge for too many timeline rows, got {other:?}"),
    }
    assert_eq!(store.subject_index_cursor().await.expect("cursor"), from, "{backend}: nothing moved");
    assert_eq!(read(TimelineKind::Actor, u64::MAX >> 2, 100).await.len(), 5, "{backend}: nothing was written");
}

fn unique(name: &str) -> SubjectId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    SubjectId::new(&format!("si-{name}-{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))).expect("subject id")
}
