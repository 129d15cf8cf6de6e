//! The one conformance suite every [`AlertStore`] backend must pass: round trips, insert
//! idempotence, every filter against a model of it, pagination without gaps or duplicates,
//! the status transitions (also under concurrent calls) and their notes, the detector
//! checkpoint, the delivery queue, and limits rejected with nothing written. Compiled always
//! so that the crates above can run it.
//!
//! Every check makes its own ids, rules, actors and subjects (a per-process counter and the
//! time), and filters by them, so the suite can run any number of times against the same
//! directory. Delivery times are far in the past (negative), so the suite's deliveries are
//! due before anyone else's; the suite leaves none of its own pending. The checks panic with
//! a message naming the backend.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StoreError;
use crate::alerts::{
    ALERT_EVIDENCE_MAX, ALERT_NOTE_BY_BYTES_MAX, ALERT_NOTE_BYTES_MAX, ALERT_RULE_BYTES_MAX,
    ALERT_SUBJECTS_MAX, ALERT_SUMMARY_BYTES_MAX, ALERTS_PAGE_MAX, ALERTS_PER_INSERT_MAX,
    AlertAction, AlertFilter, AlertNote, AlertRecord, AlertStatus, AlertStore, DELIVERIES_DUE_MAX,
    DELIVERY_ERROR_BYTES_MAX, DETECTOR_CURSORS_MAX, DETECTOR_NAME_BYTES_MAX,
    DETECTOR_STATE_BYTES_MAX, Delivery, DetectorCheckpoint, EvidenceRef, Severity,
};
use crate::directory::DIRECTORY_TEXT_BYTES_MAX;

/// How many alerts the pagination check pages through.
pub const PAGINATION_ALERTS: u32 = 2_500;

/// Runs every check, in order.
pub async fn run_all(store: &dyn AlertStore, backend: &str) {
    check_round_trip(store, backend).await;
    check_insert_idempotence(store, backend).await;
    check_filters(store, backend).await;
    check_pagination(store, backend).await;
    check_transitions(store, backend).await;
    check_concurrent_transitions(store, backend).await;
    check_checkpoints(store, backend).await;
    check_deliveries(store, backend).await;
    check_limits(store, backend).await;
}

/// An alert with every list filled (a subject named twice, evidence in two regions, a
/// non-ASCII summary) and one with every list empty come back as they were stored.
pub async fn check_round_trip(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("round_trip");
    let full = AlertRecord {
        severity: Severity::Critical,
        subjects: vec![ids.subject("a"), ids.subject("b"), ids.subject("a")],
        evidence: vec![
            evidence("eu", 0, "req-1"),
            evidence("us-east", u64::MAX >> 1, ""),
        ],
        summary: "staff-7 read a journalist's email 3 times — «outside any case»".to_owned(),
        ..alert(&ids, 1, &rule, -5)
    };
    let bare = AlertRecord {
        severity: Severity::Info,
        subjects: Vec::new(),
        evidence: Vec::new(),
        summary: String::new(),
        ..alert(&ids, 2, &rule, i64::MAX)
    };
    assert_eq!(
        store.alert(&full.id).await.expect("alert"),
        None,
        "{backend}"
    );
    let inserted = store
        .insert_alerts(&[full.clone(), bare.clone()], false, 0)
        .await
        .expect("insert");
    assert_eq!(inserted, [full.id.clone(), bare.id.clone()], "{backend}");
    for record in [&full, &bare] {
        assert_eq!(
            store.alert(&record.id).await.expect("alert"),
            Some((record.clone(), Vec::new())),
            "{backend}: round trip"
        );
    }
    assert_eq!(
        store.alerts(&by_rule(&rule)).await.expect("alerts"),
        [bare, full.clone()],
        "{backend}: newest first"
    );
    // A subject named twice is found once.
    let by_subject = AlertFilter {
        subject: Some(ids.subject("a")),
        ..page(ALERTS_PAGE_MAX)
    };
    assert_eq!(
        store.alerts(&by_subject).await.expect("alerts"),
        [full],
        "{backend}"
    );
    assert_eq!(
        store.alert(&ids.alert(3)).await.expect("alert"),
        None,
        "{backend}"
    );
}

/// An id already stored is left as it is and not reported; within one call the first alert
/// of an id wins; the ids returned are the new ones, in input order.
pub async fn check_insert_idempotence(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("idempotence");
    let (a, b, c) = (
        alert(&ids, 1, &rule, 100),
        alert(&ids, 2, &rule, 200),
        alert(&ids, 3, &rule, 300),
    );
    let changed = AlertRecord {
        summary: "raised again with other words".to_owned(),
        severity: Severity::High,
        ..a.clone()
    };
    let inserted = store
        .insert_alerts(&[a.clone(), b.clone(), changed.clone()], false, 0)
        .await
        .expect("insert");
    assert_eq!(inserted, [a.id.clone(), b.id.clone()], "{backend}");
    let inserted = store
        .insert_alerts(&[c.clone(), changed.clone(), b.clone()], false, 0)
        .await
        .expect("insert again");
    assert_eq!(
        inserted,
        std::slice::from_ref(&c.id),
        "{backend}: only the new one"
    );
    assert_eq!(
        store
            .insert_alerts(&[], false, 0)
            .await
            .expect("insert none"),
        Vec::<String>::new(),
        "{backend}"
    );
    assert_eq!(
        store.alerts(&by_rule(&rule)).await.expect("alerts"),
        [c, b, a],
        "{backend}: each stored once, the first version kept"
    );
}

/// Every filter field, alone and combined, against a model of the filter over 60 alerts of
/// varied rule, actor, subjects, severity, time and status; counts by severity too.
pub async fn check_filters(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rules = [ids.rule("filter_one"), ids.rule("filter_two")];
    let actors = [ids.actor("one"), ids.actor("two")];
    let subjects = [ids.subject("one"), ids.subject("two"), ids.subject("three")];
    let mut records: Vec<AlertRecord> = (0..60)
        .map(|index| {
            let position = index as usize;
            let mut named = Vec::new();
            if index % 2 == 0 {
                named.push(subjects[0].clone());
            }
            if index % 5 == 0 {
                named.push(subjects[1].clone());
            }
            if index % 7 == 0 {
                named.insert(0, subjects[2].clone());
            }
            AlertRecord {
                rule: rules[usize::from(index % 4 == 3)].clone(),
                severity: Severity::ALL[position % 5],
                actor: actors[usize::from(index % 3 != 0)].clone(),
                subjects: named,
                ..alert(&ids, index, &rules[0], 1_000 + i64::from(index / 2))
            }
        })
        .collect();
    store
        .insert_alerts(&records, false, 0)
        .await
        .expect("insert");
    for (index, record) in records.iter_mut().enumerate() {
        let actions: &[AlertAction] = match index % 6 {
            1 => &[AlertAction::Acknowledge],
            2 => &[AlertAction::Resolve],
            3 => &[AlertAction::Acknowledge, AlertAction::Resolve],
            _ => &[],
        };
        for action in actions {
            *record = store
                .update_alert(&record.id, &note(2_000, "officer", *action))
                .await
                .expect("transition");
        }
    }

    let mut filters = vec![
        by_rule(&rules[0]),
        by_rule(&rules[1]),
        AlertFilter {
            actor: Some(actors[0].clone()),
            ..page(ALERTS_PAGE_MAX)
        },
        AlertFilter {
            subject: Some(ids.subject("nobody")),
            ..page(ALERTS_PAGE_MAX)
        },
        AlertFilter {
            since_ms: Some(1_005),
            ..by_rule(&rules[0])
        },
        AlertFilter {
            until_ms: Some(1_010),
            ..by_rule(&rules[0])
        },
        AlertFilter {
            since_ms: Some(1_003),
            until_ms: Some(1_012),
            ..by_rule(&rules[0])
        },
        AlertFilter {
            since_ms: Some(1_012),
            until_ms: Some(1_003),
            ..by_rule(&rules[0])
        },
        AlertFilter {
            actor: Some(actors[1].clone()),
            subject: Some(subjects[0].clone()),
            severity_min: Some(Severity::High),
            status: Some(AlertStatus::Open),
            ..page(ALERTS_PAGE_MAX)
        },
        AlertFilter {
            actor: Some(actors[0].clone()),
            status: Some(AlertStatus::Resolved),
            rule: Some(rules[1].clone()),
            ..page(ALERTS_PAGE_MAX)
        },
        AlertFilter {
            before: Some((1_010, ids.alert(21))),
            ..by_rule(&rules[0])
        },
        AlertFilter {
            limit: 5,
            ..by_rule(&rules[0])
        },
        AlertFilter {
            limit: 1,
            subject: Some(subjects[1].clone()),
            ..page(ALERTS_PAGE_MAX)
        },
    ];
    for subject in &subjects {
        filters.push(AlertFilter {
            subject: Some(subject.clone()),
            ..page(ALERTS_PAGE_MAX)
        });
    }
    for status in AlertStatus::ALL {
        filters.push(AlertFilter {
            status: Some(status),
            ..by_rule(&rules[0])
        });
    }
    for severity in Severity::ALL {
        filters.push(AlertFilter {
            severity_min: Some(severity),
            ..by_rule(&rules[0])
        });
    }
    for filter in &filters {
        let expected = model_page(&records, filter);
        assert!(
            !expected.is_empty()
                || filter.subject.as_deref() == Some(&ids.subject("nobody"))
                || filter.since_ms > filter.until_ms,
            "{backend}: the data set exercises {filter:?}"
        );
        assert_eq!(
            store.alerts(filter).await.expect("alerts"),
            expected,
            "{backend}: {filter:?}"
        );
        assert_eq!(
            store.alert_counts(filter).await.expect("counts"),
            model_counts(&records, filter),
            "{backend}: counts of {filter:?}"
        );
    }
}

/// 2,500 alerts (three to a millisecond) paged through with the largest page, an odd page
/// size, and a subject filter: every alert exactly once, in order.
pub async fn check_pagination(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("pagination");
    let subject = ids.subject("paged");
    let records: Vec<AlertRecord> = (0..PAGINATION_ALERTS)
        .map(|index| AlertRecord {
            subjects: if index % 10 == 0 {
                vec![subject.clone()]
            } else {
                Vec::new()
            },
            ..alert(&ids, index, &rule, 10_000 + i64::from(index / 3))
        })
        .collect();
    for batch in records.chunks(ALERTS_PER_INSERT_MAX) {
        let inserted = store.insert_alerts(batch, false, 0).await.expect("insert");
        assert_eq!(inserted.len(), batch.len(), "{backend}");
    }
    let mut expected: Vec<&AlertRecord> = records.iter().collect();
    expected.sort_by(|left, right| (right.at_ms, &right.id).cmp(&(left.at_ms, &left.id)));
    let expected: Vec<String> = expected.iter().map(|record| record.id.clone()).collect();
    for limit in [ALERTS_PAGE_MAX, 333] {
        let (found, pages) = every_page(store, by_rule(&rule), limit, backend).await;
        assert_eq!(found.len(), expected.len(), "{backend}: page size {limit}");
        assert!(
            found == expected,
            "{backend}: page size {limit}: every alert once, in order"
        );
        assert_eq!(
            pages,
            expected.len().div_ceil(limit) + usize::from(expected.len().is_multiple_of(limit)),
            "{backend}: page size {limit}"
        );
    }
    let filter = AlertFilter {
        subject: Some(subject.clone()),
        ..page(7)
    };
    let (found, _) = every_page(store, filter, 7, backend).await;
    let named: HashSet<&str> = records
        .iter()
        .filter(|record| !record.subjects.is_empty())
        .map(|record| record.id.as_str())
        .collect();
    let with_subject: Vec<String> = expected
        .iter()
        .filter(|id| named.contains(id.as_str()))
        .cloned()
        .collect();
    assert_eq!(with_subject.len(), 250, "{backend}");
    assert!(found == with_subject, "{backend}: subject pages");
    let counts = store.alert_counts(&by_rule(&rule)).await.expect("counts");
    assert_eq!(
        counts.get(&Severity::Medium),
        Some(&u64::from(PAGINATION_ALERTS)),
        "{backend}"
    );
}

/// open → acknowledged → resolved, and open → resolved, with the notes in order; every other
/// transition is refused naming the alert, its status and the action, and changes nothing.
pub async fn check_transitions(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("transitions");
    let (a, b) = (alert(&ids, 1, &rule, 10), alert(&ids, 2, &rule, 20));
    store
        .insert_alerts(&[a.clone(), b.clone()], false, 0)
        .await
        .expect("insert");

    let acknowledged = note(2_000, "officer-1", AlertAction::Acknowledge);
    let after = store
        .update_alert(&a.id, &acknowledged)
        .await
        .expect("acknowledge");
    let expected = AlertRecord {
        status: AlertStatus::Acknowledged,
        updated_at_ms: 2_000,
        ..a.clone()
    };
    assert_eq!(after, expected, "{backend}: returned record");
    assert_eq!(
        store.alert(&a.id).await.expect("alert"),
        Some((expected.clone(), vec![acknowledged.clone()])),
        "{backend}: stored record and note"
    );
    expect_refused(store, &expected, AlertAction::Acknowledge, backend).await;

    let resolved = AlertNote {
        note: String::new(),
        ..note(3_000, "officer-2", AlertAction::Resolve)
    };
    let after = store.update_alert(&a.id, &resolved).await.expect("resolve");
    let expected = AlertRecord {
        status: AlertStatus::Resolved,
        updated_at_ms: 3_000,
        ..a.clone()
    };
    assert_eq!(after, expected, "{backend}");
    assert_eq!(
        store.alert(&a.id).await.expect("alert"),
        Some((expected.clone(), vec![acknowledged, resolved])),
        "{backend}: notes in the order added"
    );
    expect_refused(store, &expected, AlertAction::Acknowledge, backend).await;
    expect_refused(store, &expected, AlertAction::Resolve, backend).await;

    let straight = note(4_000, "officer-1", AlertAction::Resolve);
    let after = store.update_alert(&b.id, &straight).await.expect("resolve");
    assert_eq!(
        (after.status, after.updated_at_ms),
        (AlertStatus::Resolved, 4_000),
        "{backend}: open → resolved"
    );
    assert_eq!(
        store.alert(&b.id).await.expect("alert"),
        Some((after, vec![straight.clone()])),
        "{backend}"
    );

    let missing = ids.alert(3);
    match store.update_alert(&missing, &straight).await {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!((what, id), ("alert", missing.clone()), "{backend}");
        }
        other => panic!("{backend}: expected NotFound, got {other:?}"),
    }
    assert_eq!(
        store.alert(&missing).await.expect("alert"),
        None,
        "{backend}"
    );
}

/// Two updates at once: the second sees the first's result. Of two acknowledgements (or two
/// resolutions) exactly one wins and only its note is kept; an acknowledgement racing a
/// resolution either lands first or is refused.
pub async fn check_concurrent_transitions(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("races");
    let alerts: Vec<AlertRecord> = (0..3).map(|index| alert(&ids, index, &rule, 10)).collect();
    store
        .insert_alerts(&alerts, false, 0)
        .await
        .expect("insert");

    for (alert, action) in [
        (&alerts[0], AlertAction::Acknowledge),
        (&alerts[1], AlertAction::Resolve),
    ] {
        let (left, right) = (note(1, "left", action), note(2, "right", action));
        let (left_result, right_result) = tokio::join!(
            store.update_alert(&alert.id, &left),
            store.update_alert(&alert.id, &right),
        );
        let winner = match (left_result, right_result) {
            (Ok(_), Err(StoreError::InvalidAlertTransition { .. })) => left,
            (Err(StoreError::InvalidAlertTransition { .. }), Ok(_)) => right,
            other => panic!("{backend}: expected exactly one {action} to win, got {other:?}"),
        };
        let (_, notes) = store
            .alert(&alert.id)
            .await
            .expect("alert")
            .expect("the alert exists");
        assert_eq!(notes, [winner], "{backend}: only the winner's note");
    }

    let target = &alerts[2];
    let (acknowledge, resolve) = (
        note(1, "acknowledger", AlertAction::Acknowledge),
        note(2, "resolver", AlertAction::Resolve),
    );
    let (acknowledged, resolved) = tokio::join!(
        store.update_alert(&target.id, &acknowledge),
        store.update_alert(&target.id, &resolve),
    );
    resolved.expect("a resolution applies to an open or acknowledged alert");
    let (stored, notes) = store
        .alert(&target.id)
        .await
        .expect("alert")
        .expect("the alert exists");
    assert_eq!(stored.status, AlertStatus::Resolved, "{backend}");
    match acknowledged {
        Ok(_) => assert_eq!(
            notes,
            [acknowledge, resolve],
            "{backend}: acknowledged first"
        ),
        Err(StoreError::InvalidAlertTransition { status, .. }) => {
            assert_eq!(status, AlertStatus::Resolved, "{backend}");
            assert_eq!(notes, [resolve], "{backend}: resolved first");
        }
        Err(other) => panic!("{backend}: unexpected error {other}"),
    }
}

/// A checkpoint round trips, an overwrite replaces every field, names stay apart.
pub async fn check_checkpoints(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let name = ids.checkpoint("detector");
    assert_eq!(
        store.detector_checkpoint(&name).await.expect("checkpoint"),
        None,
        "{backend}"
    );
    let first = DetectorCheckpoint {
        name: name.clone(),
        cursors: BTreeMap::from([("eu".to_owned(), 10), ("us-east".to_owned(), u64::MAX)]),
        state: (0..1_048_576_u32)
            .map(|index| (index % 251) as u8)
            .collect(),
        saved_at_ms: 5,
    };
    store.save_detector_checkpoint(&first).await.expect("save");
    assert_eq!(
        store.detector_checkpoint(&name).await.expect("checkpoint"),
        Some(first.clone()),
        "{backend}: round trip"
    );
    let second = DetectorCheckpoint {
        name: name.clone(),
        cursors: BTreeMap::from([("eu".to_owned(), 20)]),
        state: b"small".to_vec(),
        saved_at_ms: 6,
    };
    store
        .save_detector_checkpoint(&second)
        .await
        .expect("overwrite");
    assert_eq!(
        store.detector_checkpoint(&name).await.expect("checkpoint"),
        Some(second),
        "{backend}: overwritten, the dropped cursor gone"
    );
    let other = ids.checkpoint("other");
    assert_eq!(
        store.detector_checkpoint(&other).await.expect("checkpoint"),
        None,
        "{backend}"
    );
    let empty = DetectorCheckpoint {
        name: other.clone(),
        cursors: BTreeMap::new(),
        state: Vec::new(),
        saved_at_ms: -1,
    };
    store.save_detector_checkpoint(&empty).await.expect("save");
    assert_eq!(
        store.detector_checkpoint(&other).await.expect("checkpoint"),
        Some(empty),
        "{backend}: empty cursors and state"
    );
}

/// The delivery queue: due oldest first, a failure counted and retried later (its error cut
/// to the limit), a success or giving up removes the delivery for good, an alert inserted
/// without delivery or again is not queued.
pub async fn check_deliveries(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("deliveries");
    // Far in the past, so that nothing outside this check is due before these.
    let t = -1_000_000_000_000 - i64::try_from(ids.run % 1_000_000).unwrap_or(0) * 1_000;
    let (a, b, c, d) = (
        alert(&ids, 1, &rule, 1),
        alert(&ids, 2, &rule, 2),
        alert(&ids, 3, &rule, 3),
        alert(&ids, 4, &rule, 4),
    );
    for (record, now_ms) in [(&a, t), (&b, t + 10), (&c, t + 20)] {
        let inserted = store
            .insert_alerts(std::slice::from_ref(record), true, now_ms)
            .await
            .expect("insert with delivery");
        assert_eq!(inserted, std::slice::from_ref(&record.id), "{backend}");
    }
    store
        .insert_alerts(std::slice::from_ref(&d), false, t)
        .await
        .expect("insert without delivery");
    assert_eq!(
        store
            .insert_alerts(std::slice::from_ref(&a), true, t + 5)
            .await
            .expect("insert again"),
        Vec::<String>::new(),
        "{backend}"
    );
    let pending = |record: &AlertRecord, next_at_ms| {
        (
            Delivery {
                alert_id: record.id.clone(),
                attempts: 0,
                next_at_ms,
                last_error: None,
            },
            record.clone(),
        )
    };
    assert_eq!(
        ours(store, &rule, t - 1, backend).await,
        [],
        "{backend}: none due yet"
    );
    assert_eq!(
        ours(store, &rule, t + 20, backend).await,
        [pending(&a, t), pending(&b, t + 10), pending(&c, t + 20)],
        "{backend}: due oldest first, with their alerts; the second insert queued nothing"
    );
    let first_two: Vec<String> = store
        .due_deliveries(t + 20, 2)
        .await
        .expect("due")
        .into_iter()
        .map(|(delivery, _)| delivery.alert_id)
        .collect();
    assert_eq!(
        first_two,
        [a.id.clone(), b.id.clone()],
        "{backend}: the limit"
    );

    store
        .delivery_failed(&a.id, "connection refused", t + 100, false)
        .await
        .expect("failed");
    assert_eq!(
        ours(store, &rule, t + 99, backend).await,
        [pending(&b, t + 10), pending(&c, t + 20)],
        "{backend}: a failed delivery waits for its retry"
    );
    let long = format!("x{}", "é".repeat(1_000));
    store
        .delivery_failed(&a.id, &long, t + 200, false)
        .await
        .expect("failed again");
    let cut = format!("x{}", "é".repeat((DELIVERY_ERROR_BYTES_MAX - 1) / 2));
    assert_eq!(cut.len(), DELIVERY_ERROR_BYTES_MAX - 1, "{backend}");
    let retried = (
        Delivery {
            attempts: 2,
            last_error: Some(cut),
            ..pending(&a, t + 200).0
        },
        a.clone(),
    );
    assert_eq!(
        ours(store, &rule, t + 200, backend).await,
        [pending(&b, t + 10), pending(&c, t + 20), retried.clone()],
        "{backend}: attempts counted, the error cut at a character boundary"
    );

    store
        .delivery_succeeded(&b.id, t + 30)
        .await
        .expect("succeeded");
    expect_no_delivery(
        store.delivery_succeeded(&b.id, t + 31).await,
        &b.id,
        backend,
    );
    expect_no_delivery(
        store.delivery_failed(&b.id, "late", t + 40, false).await,
        &b.id,
        backend,
    );
    store
        .delivery_failed(&c.id, "410 gone", t + 300, true)
        .await
        .expect("give up");
    expect_no_delivery(
        store.delivery_succeeded(&c.id, t + 31).await,
        &c.id,
        backend,
    );
    expect_no_delivery(store.delivery_succeeded(&d.id, t).await, &d.id, backend);
    expect_no_delivery(
        store
            .delivery_failed(&ids.alert(9), "unknown", t, false)
            .await,
        &ids.alert(9),
        backend,
    );
    assert_eq!(
        ours(store, &rule, i64::MAX, backend).await,
        [retried],
        "{backend}: delivered and given up are never due again"
    );

    store
        .delivery_succeeded(&a.id, t + 400)
        .await
        .expect("succeeded");
    assert_eq!(ours(store, &rule, i64::MAX, backend).await, [], "{backend}");

    for (limit, found) in [
        (0, None),
        (DELIVERIES_DUE_MAX + 1, Some("DELIVERIES_DUE_MAX")),
    ] {
        let result = store.due_deliveries(t, limit).await.map(|_| ());
        match found {
            Some(name) => expect_limit(result, name, "limit", backend),
            None => expect_invalid(result, backend),
        }
    }
}

/// Each limit is refused naming the limit and the record, and nothing is written (not even
/// the valid alerts of the same batch); records exactly at a limit are accepted.
pub async fn check_limits(store: &dyn AlertStore, backend: &str) {
    let ids = Ids::new();
    let rule = ids.rule("limits");
    let good = alert(&ids, 1, &rule, 1);
    let bad = alert(&ids, 2, &rule, 2);
    let over = [
        (
            "ALERT_SUMMARY_BYTES_MAX",
            AlertRecord {
                summary: "s".repeat(ALERT_SUMMARY_BYTES_MAX + 1),
                ..bad.clone()
            },
        ),
        (
            "ALERT_SUBJECTS_MAX",
            AlertRecord {
                subjects: vec![ids.subject("s"); ALERT_SUBJECTS_MAX + 1],
                ..bad.clone()
            },
        ),
        (
            "ALERT_EVIDENCE_MAX",
            AlertRecord {
                evidence: vec![evidence("eu", 1, "r"); ALERT_EVIDENCE_MAX + 1],
                ..bad.clone()
            },
        ),
        (
            "ALERT_RULE_BYTES_MAX",
            AlertRecord {
                rule: "r".repeat(ALERT_RULE_BYTES_MAX + 1),
                ..bad.clone()
            },
        ),
        (
            "DIRECTORY_TEXT_BYTES_MAX",
            AlertRecord {
                actor: "a".repeat(DIRECTORY_TEXT_BYTES_MAX + 1),
                ..bad.clone()
            },
        ),
        (
            "DIRECTORY_TEXT_BYTES_MAX",
            AlertRecord {
                evidence: vec![evidence("eu", 1, &"q".repeat(DIRECTORY_TEXT_BYTES_MAX + 1))],
                ..bad.clone()
            },
        ),
    ];
    for (limit, record) in &over {
        expect_limit(
            store
                .insert_alerts(&[good.clone(), record.clone()], true, 0)
                .await
                .map(|_| ()),
            limit,
            &bad.id,
            backend,
        );
    }
    let invalid = [
        AlertRecord {
            id: format!("A{}", &ids.alert(2)[1..]),
            ..bad.clone()
        },
        AlertRecord {
            id: ids.alert(2)[1..].to_owned(),
            ..bad.clone()
        },
        AlertRecord {
            rule: "Not-A-Rule".to_owned(),
            ..bad.clone()
        },
        AlertRecord {
            rule: String::new(),
            ..bad.clone()
        },
        AlertRecord {
            actor: String::new(),
            ..bad.clone()
        },
        AlertRecord {
            subjects: vec![String::new()],
            ..bad.clone()
        },
        AlertRecord {
            evidence: vec![evidence("Not A Region", 1, "r")],
            ..bad.clone()
        },
    ];
    for record in &invalid {
        expect_invalid(
            store
                .insert_alerts(&[good.clone(), record.clone()], true, 0)
                .await
                .map(|_| ()),
            backend,
        );
    }
    match store
        .insert_alerts(&vec![good.clone(); ALERTS_PER_INSERT_MAX + 1], false, 0)
        .await
    {
        Err(StoreError::BatchTooLarge { rows, max }) => {
            assert_eq!(
                (rows, max),
                (ALERTS_PER_INSERT_MAX + 1, ALERTS_PER_INSERT_MAX),
                "{backend}"
            );
        }
        other => panic!("{backend}: expected BatchTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.alerts(&by_rule(&rule)).await.expect("alerts"),
        [],
        "{backend}: a refused batch writes nothing"
    );
    assert_eq!(
        store.alert(&good.id).await.expect("alert"),
        None,
        "{backend}"
    );

    let at_max = AlertRecord {
        summary: "s".repeat(ALERT_SUMMARY_BYTES_MAX),
        subjects: (0..ALERT_SUBJECTS_MAX)
            .map(|index| ids.subject(&index.to_string()))
            .collect(),
        evidence: (0..ALERT_EVIDENCE_MAX as u64)
            .map(|index| evidence("eu", index, "request"))
            .collect(),
        rule: "r".repeat(ALERT_RULE_BYTES_MAX),
        ..alert(&ids, 3, &rule, 3)
    };
    store
        .insert_alerts(std::slice::from_ref(&at_max), false, 0)
        .await
        .expect("an alert at every limit");
    assert_eq!(
        store.alert(&at_max.id).await.expect("alert"),
        Some((at_max.clone(), Vec::new())),
        "{backend}"
    );

    let notes = [
        (
            Some("ALERT_NOTE_BY_BYTES_MAX"),
            AlertNote {
                by: "b".repeat(ALERT_NOTE_BY_BYTES_MAX + 1),
                ..note(5, "x", AlertAction::Acknowledge)
            },
        ),
        (
            Some("ALERT_NOTE_BYTES_MAX"),
            AlertNote {
                note: "n".repeat(ALERT_NOTE_BYTES_MAX + 1),
                ..note(5, "officer", AlertAction::Resolve)
            },
        ),
        (None, note(5, "", AlertAction::Acknowledge)),
    ];
    for (limit, refused) in &notes {
        let result = store.update_alert(&at_max.id, refused).await.map(|_| ());
        match limit {
            Some(limit) => expect_limit(result, limit, &at_max.id, backend),
            None => expect_invalid(result, backend),
        }
    }
    assert_eq!(
        store.alert(&at_max.id).await.expect("alert"),
        Some((at_max.clone(), Vec::new())),
        "{backend}: a refused note changes nothing"
    );
    let full_note = AlertNote {
        by: "b".repeat(ALERT_NOTE_BY_BYTES_MAX),
        note: "n".repeat(ALERT_NOTE_BYTES_MAX),
        ..note(6, "x", AlertAction::Acknowledge)
    };
    store
        .update_alert(&at_max.id, &full_note)
        .await
        .expect("a note at its limits");

    let name = ids.checkpoint("limits");
    let saved = DetectorCheckpoint {
        name: name.clone(),
        cursors: BTreeMap::from([("eu".to_owned(), 1)]),
        state: vec![1, 2, 3],
        saved_at_ms: 1,
    };
    store.save_detector_checkpoint(&saved).await.expect("save");
    let checkpoints = [
        (
            Some("DETECTOR_STATE_BYTES_MAX"),
            DetectorCheckpoint {
                // Zeroed pages are not touched: this costs no memory until written.
                state: vec![0; DETECTOR_STATE_BYTES_MAX + 1],
                ..saved.clone()
            },
        ),
        (
            Some("DETECTOR_CURSORS_MAX"),
            DetectorCheckpoint {
                cursors: (0..=DETECTOR_CURSORS_MAX)
                    .map(|index| (format!("r{index}"), 0))
                    .collect(),
                ..saved.clone()
            },
        ),
        (
            None,
            DetectorCheckpoint {
                cursors: BTreeMap::from([("Not A Region".to_owned(), 0)]),
                ..saved.clone()
            },
        ),
    ];
    for (limit, checkpoint) in &checkpoints {
        let result = store.save_detector_checkpoint(checkpoint).await;
        match limit {
            Some(limit) => expect_limit(result, limit, &name, backend),
            None => expect_invalid(result, backend),
        }
    }
    assert_eq!(
        store.detector_checkpoint(&name).await.expect("checkpoint"),
        Some(saved.clone()),
        "{backend}: a refused checkpoint changes nothing"
    );
    let long_name = "d".repeat(DETECTOR_NAME_BYTES_MAX + 1);
    expect_limit(
        store
            .save_detector_checkpoint(&DetectorCheckpoint {
                name: long_name.clone(),
                ..saved.clone()
            })
            .await,
        "DETECTOR_NAME_BYTES_MAX",
        &long_name,
        backend,
    );
    expect_invalid(
        store
            .save_detector_checkpoint(&DetectorCheckpoint {
                name: "Bad Name".to_owned(),
                ..saved
            })
            .await,
        backend,
    );

    expect_invalid(
        store.alerts(&by_rule_limit(&rule, 0)).await.map(|_| ()),
        backend,
    );
    expect_limit(
        store
            .alerts(&by_rule_limit(&rule, ALERTS_PAGE_MAX + 1))
            .await
            .map(|_| ()),
        "ALERTS_PAGE_MAX",
        "limit",
        backend,
    );
    store
        .alert_counts(&by_rule_limit(&rule, 0))
        .await
        .expect("counts ignore the limit");
}

/// The check's deliveries due at `now_ms`.
async fn ours(
    store: &dyn AlertStore,
    rule: &str,
    now_ms: i64,
    backend: &str,
) -> Vec<(Delivery, AlertRecord)> {
    let due = store
        .due_deliveries(now_ms, DELIVERIES_DUE_MAX)
        .await
        .unwrap_or_else(|error| panic!("{backend}: due deliveries: {error}"));
    due.into_iter()
        .filter(|(_, alert)| alert.rule == rule)
        .collect()
}

/// Pages through `filter` with `limit` alerts a page; returns the ids found and how many
/// calls it took (the last one short or empty).
async fn every_page(
    store: &dyn AlertStore,
    filter: AlertFilter,
    limit: usize,
    backend: &str,
) -> (Vec<String>, usize) {
    let mut filter = AlertFilter { limit, ..filter };
    let (mut found, mut pages) = (Vec::new(), 0);
    loop {
        let page = store.alerts(&filter).await.expect("alerts");
        pages += 1;
        assert!(
            page.len() <= limit,
            "{backend}: a page holds at most its limit"
        );
        found.extend(page.iter().map(|record| record.id.clone()));
        match page.last() {
            Some(last) if page.len() == limit => {
                filter.before = Some((last.at_ms, last.id.clone()));
            }
            _ => return (found, pages),
        }
    }
}

/// Tries `action` on `stored` and expects the refusal naming it; the alert is unchanged.
async fn expect_refused(
    store: &dyn AlertStore,
    stored: &AlertRecord,
    action: AlertAction,
    backend: &str,
) {
    let (_, notes) = store
        .alert(&stored.id)
        .await
        .expect("alert")
        .expect("the alert exists");
    let result = store
        .update_alert(&stored.id, &note(9_000, "late", action))
        .await;
    let message = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    match result {
        Err(StoreError::InvalidAlertTransition {
            id,
            status,
            action: refused,
        }) => {
            assert_eq!(
                (&id, status, refused),
                (&stored.id, stored.status, action),
                "{backend}"
            );
            for part in [stored.id.as_str(), stored.status.as_str(), action.as_str()] {
                assert!(
                    message.contains(part),
                    "{backend}: {message:?} names {part}"
                );
            }
        }
        other => panic!("{backend}: expected InvalidAlertTransition, got {other:?}"),
    }
    assert_eq!(
        store.alert(&stored.id).await.expect("alert"),
        Some((stored.clone(), notes)),
        "{backend}: a refused transition changes nothing"
    );
}

fn model_page(records: &[AlertRecord], filter: &AlertFilter) -> Vec<AlertRecord> {
    let mut matching: Vec<AlertRecord> = records
        .iter()
        .filter(|record| model_matches(record, filter))
        .filter(|record| {
            filter
                .before
                .as_ref()
                .is_none_or(|(at_ms, id)| (record.at_ms, &record.id) < (*at_ms, id))
        })
        .cloned()
        .collect();
    matching.sort_by(|left, right| (right.at_ms, &right.id).cmp(&(left.at_ms, &left.id)));
    matching.truncate(filter.limit);
    matching
}

fn model_counts(records: &[AlertRecord], filter: &AlertFilter) -> BTreeMap<Severity, u64> {
    let mut counts: BTreeMap<Severity, u64> = Severity::ALL
        .into_iter()
        .map(|severity| (severity, 0))
        .collect();
    for record in records
        .iter()
        .filter(|record| model_matches(record, filter))
    {
        *counts.entry(record.severity).or_default() += 1;
    }
    counts
}

fn model_matches(record: &AlertRecord, filter: &AlertFilter) -> bool {
    filter.status.is_none_or(|status| record.status == status)
        && filter
            .severity_min
            .is_none_or(|minimum| record.severity >= minimum)
        && filter.rule.as_ref().is_none_or(|rule| &record.rule == rule)
        && filter
            .actor
            .as_ref()
            .is_none_or(|actor| &record.actor == actor)
        && filter
            .subject
            .as_ref()
            .is_none_or(|subject| record.subjects.contains(subject))
        && filter
            .since_ms
            .is_none_or(|since_ms| record.at_ms >= since_ms)
        && filter
            .until_ms
            .is_none_or(|until_ms| record.at_ms < until_ms)
}

fn expect_limit(result: Result<(), StoreError>, limit: &str, id: &str, backend: &str) {
    match result {
        Err(StoreError::LimitExceeded {
            limit: found_limit,
            id: found_id,
            count,
            max,
            ..
        }) => {
            assert_eq!((found_limit, found_id.as_str()), (limit, id), "{backend}");
            assert!(count > max, "{backend}: {limit}: {count} > {max}");
        }
        other => panic!("{backend}: expected {limit} exceeded for {id}, got {other:?}"),
    }
}

fn expect_invalid(result: Result<(), StoreError>, backend: &str) {
    assert!(
        matches!(result, Err(StoreError::InvalidRecord { .. })),
        "{backend}: expected InvalidRecord, got {result:?}"
    );
}

fn expect_no_delivery(result: Result<(), StoreError>, alert_id: &str, backend: &str) {
    match result {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!(
                (what, id.as_str()),
                ("pending alert delivery", alert_id),
                "{backend}"
            );
        }
        other => panic!("{backend}: expected no pending delivery for {alert_id}, got {other:?}"),
    }
}

/// Unique ids, rules, actors, subjects and checkpoint names for one check.
struct Ids {
    base: u128,
    run: u64,
    tag: String,
}

impl Ids {
    fn new() -> Ids {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        let process = u128::from(std::process::id() & 0xff_ffff);
        Ids {
            // time (64 bits) ‖ process (24) ‖ run (16) ‖ alert number (24)
            base: ((nanos & u128::from(u64::MAX)) << 64)
                | (process << 40)
                | (u128::from(run & 0xffff) << 24),
            run,
            tag: format!("{nanos}_{process}_{run}"),
        }
    }

    /// The 32-hex id of alert `number` of this check.
    fn alert(&self, number: u32) -> String {
        assert!(number < 1 << 24, "at most 2^24 alerts per check");
        format!("{:032x}", self.base | u128::from(number))
    }

    fn rule(&self, name: &str) -> String {
        let rule = format!("c{}_{name}", self.tag);
        assert!(rule.len() <= ALERT_RULE_BYTES_MAX, "rule {rule} too long");
        rule
    }

    fn actor(&self, name: &str) -> String {
        format!("staff-{}-{name}", self.tag)
    }

    fn subject(&self, name: &str) -> String {
        format!("subject-{}-{name}", self.tag)
    }

    fn checkpoint(&self, name: &str) -> String {
        format!("c{}_{name}", self.tag)
    }
}

fn alert(ids: &Ids, number: u32, rule: &str, at_ms: i64) -> AlertRecord {
    AlertRecord {
        id: ids.alert(number),
        rule: rule.to_owned(),
        severity: Severity::Medium,
        actor: ids.actor("actor"),
        subjects: vec![ids.subject("subject")],
        evidence: vec![evidence("eu", u64::from(number), "request")],
        summary: format!("alert {number}"),
        at_ms,
        raised_at_ms: at_ms.saturating_add(5),
        status: AlertStatus::Open,
        updated_at_ms: at_ms.saturating_add(5),
    }
}

fn evidence(region: &str, index: u64, request: &str) -> EvidenceRef {
    EvidenceRef {
        region: region.to_owned(),
        index,
        request: request.to_owned(),
    }
}

fn note(at_ms: i64, by: &str, action: AlertAction) -> AlertNote {
    AlertNote {
        at_ms,
        by: by.to_owned(),
        action,
        note: format!("{by}: {action} after looking at the evidence"),
    }
}

fn page(limit: usize) -> AlertFilter {
    AlertFilter {
        limit,
        ..AlertFilter::default()
    }
}

fn by_rule(rule: &str) -> AlertFilter {
    by_rule_limit(rule, ALERTS_PAGE_MAX)
}

fn by_rule_limit(rule: &str, limit: usize) -> AlertFilter {
    AlertFilter {
        rule: Some(rule.to_owned()),
        ..page(limit)
    }
}
