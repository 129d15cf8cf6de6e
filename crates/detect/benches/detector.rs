//! Offline replay speed of the detector: canonical log entries of ordinary case work (the
//! bytes as the log stores them, salt removed) decoded and observed by every default rule.
//!
//! `cargo bench -p detect --bench detector -- [ENTRIES]` (default 1,000,000). Prints entries/s
//! for decode + observe, and for observe alone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use detect::{CaseFacts, DetectionConfig, Detector, FactTable, ShiftFacts, StaffFacts};
use model::decision_entry::{AccessEntry, ActorSnapshot, FieldDecisionEntry, SubjectSnapshot, encode};

const STAFF: u64 = 2_000;
const SUBJECTS: u64 = 200_000;
const START_MS: i64 = 1_772_442_000_000; // 2026-03-02T09:00:00Z

/// A small deterministic generator (SplitMix64) so runs compare.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        value ^ (value >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn main() {
    let entries: u64 = std::env::args().skip(1).find(|arg| !arg.starts_with('-')).and_then(|arg| arg.parse().ok()).unwrap_or(1_000_000);
    let mut mix = Mix(7);
    let mut facts = FactTable::default();
    for staff in 0..STAFF {
        let shift = ShiftFacts::parse("UTC", "00:00", "23:59");
        facts.staff.insert(format!("s-{staff}"), Arc::new(StaffFacts { id: format!("s-{staff}"), shift, hr: Vec::new(), on_call: Vec::new() }));
    }
    // Each access: an agent on a ticket the subject opened; tickets are created as we go.
    let mut canonical = Vec::with_capacity(entries as usize);
    let (mut staff, mut subject) = (0, 0);
    for index in 0..entries {
        // Three looks per ticket: the first and two follow-ups.
        let case = format!("T-{}", index / 3);
        if index % 3 == 0 {
            staff = mix.below(STAFF);
            subject = mix.below(SUBJECTS);
            facts.cases.insert(
                case.clone(),
                Arc::new(CaseFacts {
                    id: case.clone(),
                    purpose: "support".to_owned(),
                    open: true,
                    assignees: BTreeSet::from([format!("s-{staff}")]),
                    subjects: BTreeSet::from([format!("u-{subject}")]),
                    requested_by: Some(format!("u-{subject}")),
                    legal_process_validated: false,
                    destinations: Vec::new(),
                    created_at_ms: START_MS,
                    updated_at_ms: START_MS,
                }),
            );
        }
        let entry = AccessEntry {
            v: 1,
            kind: "access".to_owned(),
            request: format!("r-{index}"),
            at_ms: START_MS + i64::try_from(index).unwrap_or(0) * 20,
            actor: ActorSnapshot {
                id: format!("s-{staff}"),
                kind: "staff".to_owned(),
                roles: vec!["support_agent".to_owned()],
                team: "support".to_owned(),
                entity: "platform-us".to_owned(),
                country: "US".to_owned(),
                region: "us".to_owned(),
                from_country: "US".to_owned(),
            },
            action: "read".to_owned(),
            purpose: "support".to_owned(),
            case: Some(case),
            justification: "customer asked about a login".to_owned(),
            break_glass: false,
            destination: None,
            control: None,
            subject: SubjectSnapshot { id: format!("u-{subject}"), region: "us".to_owned(), labels: Vec::new() },
            cross_border: false,
            approved_by: Vec::new(),
            decision: "allow".to_owned(),
            fields: vec![
                FieldDecisionEntry { field: "email".to_owned(), requested: "masked".to_owned(), decision: "allow".to_owned(), view: Some("masked".to_owned()), needs: Vec::new() },
                FieldDecisionEntry { field: "ip_address".to_owned(), requested: "country".to_owned(), decision: "allow".to_owned(), view: Some("country".to_owned()), needs: Vec::new() },
            ],
            policies: vec!["support-own-ticket".to_owned(), "views-support".to_owned()],
            reasons: Vec::new(),
            query: None,
        };
        canonical.push(encode(&entry));
    }
    let bytes: usize = canonical.iter().map(Vec::len).sum();
    println!("{entries} entries, {} bytes on average", bytes / canonical.len().max(1));

    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut detector = Detector::new(&DetectionConfig::default());
    let started = Instant::now();
    let mut alerts = std::collections::BTreeMap::<String, usize>::new();
    let mut decoded = Vec::with_capacity(canonical.len());
    for (number, chunk) in canonical.chunks(4_096).enumerate() {
        let first = (number * 4_096) as u64;
        for (offset, entry) in detect::decode_batch("us", first, chunk, threads).into_iter().enumerate() {
            let entry = entry.expect("decodes");
            for alert in detector.observe("us", first + offset as u64, &entry, &facts) {
                *alerts.entry(format!("{} {}", alert.rule, alert.severity)).or_default() += 1;
            }
            decoded.push(entry);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "decode ({threads} threads) + observe: {:.0} entries/s ({:.2} s); alerts: {alerts:?}",
        entries as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    let mut detector = Detector::new(&DetectionConfig::default());
    let started = Instant::now();
    for (index, entry) in decoded.iter().enumerate() {
        detector.observe("us", index as u64, entry, &facts);
    }
    let elapsed = started.elapsed();
    println!("observe alone: {:.0} entries/s", entries as f64 / elapsed.as_secs_f64());
    let started = Instant::now();
    let saved = detector.save();
    println!("state saved: {} bytes in {:.2} s", saved.len(), started.elapsed().as_secs_f64());
}
