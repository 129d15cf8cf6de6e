//! Decisions remembered by what they depend on.
//!
//! Cedar decides from a request's entities and context alone: it reads no clock and no
//! randomness, and the only things it can do with an entity's id are to compare it with
//! another entity or with an entity named in a policy. So when no policy names a staff
//! member, machine, subject or case, two queries that differ only in their ids, renamed one
//! to one within each entity type, get the same decision, down to its policies and reasons.
//!
//! The memo keys each decision by its query with every id replaced by its order of first
//! appearance among the ids of its type ([`key`]): a support agent reading one customer on
//! their own ticket and another agent of the same team reading another customer on theirs
//! ask the same question. The shapes a deployment meets are bounded by roles × labels ×
//! regions × purposes × fields, so the memo can answer most requests without Cedar
//! (`custos_policy_decisions_total{by}` shows how many it does); each answer it gives is one
//! Cedar gave for a query of the same shape.
//!
//! What is not remembered: a decision ended by an error (Cedar's messages name entities, so
//! the decision is not the same under renaming), and queries naming more than [`KEY_IDS_MAX`]
//! ids (the service narrows a case to the actor and the subject at hand, so only a policy
//! test's hand-written lists get there).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::{AccessQuery, ActorKind, Decision};

/// Most decisions remembered; the memo starts over when it is full. Each holds a key of a
/// few hundred bytes and a decision of a few policy ids and sentences.
pub(crate) const MEMO_DECISIONS_MAX: usize = 4_096;
/// Most ids a remembered query may name.
pub(crate) const KEY_IDS_MAX: usize = 32;

/// The entity types ids are numbered within.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdType {
    Staff,
    Machine,
    Subject,
    Case,
}

#[derive(Default)]
pub(crate) struct Memo {
    decisions: Mutex<HashMap<Vec<u8>, Decision>>,
}

impl Memo {
    pub(crate) fn get(&self, key: &[u8]) -> Option<Decision> {
        self.decisions.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    pub(crate) fn put(&self, key: Vec<u8>, decision: &Decision) {
        let mut decisions = self.decisions.lock().unwrap_or_else(PoisonError::into_inner);
        if decisions.len() >= MEMO_DECISIONS_MAX {
            decisions.clear();
        }
        decisions.insert(key, decision.clone());
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.decisions.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The query's shape: every fact Cedar is given, with ids numbered by first appearance within
/// their type. `None` when the query names more than [`KEY_IDS_MAX`] ids.
pub(crate) fn key(query: &AccessQuery<'_>) -> Option<Vec<u8>> {
    let mut key = Key { bytes: Vec::with_capacity(256), ids: Vec::new() };
    let actor = query.actor;
    let actor_type = match actor.kind {
        ActorKind::Staff => IdType::Staff,
        ActorKind::Machine => IdType::Machine,
    };
    key.byte(actor_type as u8);
    key.id(actor_type, &actor.id)?;
    key.strings(&actor.roles);
    for text in [&actor.team, &actor.entity, &actor.country, &actor.region] {
        key.text(text);
    }
    key.byte(query.action as u8);
    key.text(query.purpose);
    key.id(IdType::Subject, &query.subject.id)?;
    key.text(&query.subject.region);
    key.strings(&query.subject.labels);
    match query.case {
        None => key.byte(0),
        Some(case) => {
            key.byte(1);
            key.id(IdType::Case, &case.id)?;
            key.text(&case.purpose);
            key.byte(u8::from(case.open));
            key.byte(u8::from(case.legal_process_validated));
            key.ids(IdType::Staff, &case.assignees)?;
            key.ids(IdType::Subject, &case.subjects)?;
            match &case.requested_by {
                None => key.byte(0),
                Some(subject) => {
                    key.byte(1);
                    key.id(IdType::Subject, subject)?;
                }
            }
            key.strings(&case.destinations);
        }
    }
    match query.field {
        None => key.byte(0),
        Some((kind, view)) => {
            key.byte(1);
            key.text(kind.as_str());
            // Debug names every part of a view (a prefix's bits, an area's precision).
            key.text(&format!("{view:?}"));
        }
    }
    match query.destination {
        None => key.byte(0),
        Some(destination) => {
            key.byte(1);
            key.text(destination);
        }
    }
    for flag in [query.break_glass, query.cross_border, query.approvals.independent, query.approvals.custodian] {
        key.byte(u8::from(flag));
    }
    Some(key.bytes)
}

/// A key being written: lengths before contents, so that no two queries share bytes.
struct Key<'q> {
    bytes: Vec<u8>,
    /// The ids met so far, in order; an id's number is its position among those of its type.
    ids: Vec<(IdType, &'q str)>,
}

impl<'q> Key<'q> {
    fn byte(&mut self, byte: u8) {
        self.bytes.push(byte);
    }

    fn length(&mut self, length: usize) {
        // INVARIANT: lengths here are of strings and lists a query holds in memory, far
        // below 2^64; u64 keeps the encoding the same on every platform.
        self.bytes.extend_from_slice(&(length as u64).to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        self.length(text.len());
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn strings(&mut self, texts: &[String]) {
        self.length(texts.len());
        for text in texts {
            self.text(text);
        }
    }

    fn id(&mut self, id_type: IdType, id: &'q str) -> Option<()> {
        let mut number = 0;
        for (seen_type, seen) in &self.ids {
            if *seen_type == id_type {
                if *seen == id {
                    self.length(number);
                    return Some(());
                }
                number += 1;
            }
        }
        if self.ids.len() >= KEY_IDS_MAX {
            return None;
        }
        self.ids.push((id_type, id));
        self.length(number);
        Some(())
    }

    fn ids(&mut self, id_type: IdType, ids: &'q [String]) -> Option<()> {
        self.length(ids.len());
        for id in ids {
            self.id(id_type, id)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    /// A full memo starts over: it never holds more than its bound, and what was put last is
    /// there.
    #[test]
    fn the_memo_is_bounded() {
        let memo = Memo::default();
        let decision = Decision { outcome: Outcome::Deny, policies: Vec::new(), reasons: Vec::new() };
        for n in 0..=MEMO_DECISIONS_MAX {
            memo.put(n.to_le_bytes().to_vec(), &decision);
            assert!(memo.len() <= MEMO_DECISIONS_MAX);
        }
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(&MEMO_DECISIONS_MAX.to_le_bytes()), Some(decision));
        assert_eq!(memo.get(&0usize.to_le_bytes()), None);
    }
}
