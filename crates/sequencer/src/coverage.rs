//! Which acknowledged entries no signed checkpoint covers yet, and since when.
//!
//! The periodic signer promises that an acknowledged entry is covered by a signed
//! checkpoint within `checkpoint_interval_ms` of its `append` call. Signing blindly every
//! interval cannot keep that: an entry acknowledged just after a signing read the tree
//! waits a whole interval plus the next signing. So the [`crate::Sequencer`] records, for
//! each durable batch, the tree size after it and when its oldest entry was handed to
//! `append`; the [`crate::Checkpointer`] drops what each persisted checkpoint covers and
//! signs when the oldest remaining entry is about to be an interval old.
//!
//! Times are `tokio::time::Instant`, so tests can run the signer on a paused clock.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tlog::TreeSize;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Durable batches tracked individually. Beyond this (a signer stalled for long), new
/// batches are merged into the newest one, keeping its older time: the signer then signs
/// earlier than needed, never later.
pub const COVERAGE_BATCHES_MAX: usize = 4_096;

#[derive(Debug, Default)]
struct Unsigned {
    /// Largest size of a persisted checkpoint reported by [`Coverage::signed`].
    signed: u64,
    // INVARIANT: sizes increase front to back and all exceed `signed`.
    batches: VecDeque<(u64, Instant)>,
}

/// Shared by a log's sequencer (which reports durable batches) and its checkpointer (which
/// reports signed sizes and reads the oldest unsigned entry's age).
#[derive(Debug, Default)]
pub struct Coverage {
    unsigned: Mutex<Unsigned>,
    /// Woken when the first unsigned batch arrives, so an idle signer can move its
    /// deadline forward.
    arrived: Notify,
}

impl Coverage {
    pub fn new() -> Coverage {
        Coverage::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Unsigned> {
        self.unsigned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that the tree of `size` leaves is durable, its newest batch's oldest entry
    /// handed to `append` at `received`.
    pub fn durable(&self, size: TreeSize, received: Instant) {
        let mut unsigned = self.lock();
        if size.0 <= unsigned.signed {
            return;
        }
        let was_empty = unsigned.batches.is_empty();
        if unsigned.batches.len() >= COVERAGE_BATCHES_MAX
            && let Some(newest) = unsigned.batches.back_mut()
        {
            newest.0 = newest.0.max(size.0);
        } else if unsigned.batches.back().is_none_or(|&(newest, _)| newest < size.0) {
            unsigned.batches.push_back((size.0, received));
        }
        drop(unsigned);
        if was_empty {
            self.arrived.notify_one();
        }
    }

    /// Records that a checkpoint of `size` leaves is persisted: the batches it covers are
    /// no longer waiting.
    pub fn signed(&self, size: TreeSize) {
        let mut unsigned = self.lock();
        unsigned.signed = unsigned.signed.max(size.0);
        let signed = unsigned.signed;
        while unsigned.batches.front().is_some_and(|&(end, _)| end <= signed) {
            unsigned.batches.pop_front();
        }
    }

    /// When the oldest acknowledged entry that no signed checkpoint covers was handed to
    /// `append`, if there is one.
    pub fn oldest_unsigned(&self) -> Option<Instant> {
        self.lock().batches.iter().map(|&(_, received)| received).min()
    }

    /// Returns once a batch arrives while none was waiting (or at once if one arrived
    /// since the last call).
    pub async fn first_unsigned_arrived(&self) {
        self.arrived.notified().await;
    }
}
