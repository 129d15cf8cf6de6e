//! Time as a dependency: the service reads the clock only through [`Clock`], so scenario
//! replay and tests can run on simulated time.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (scenario replay, tests). It never goes backwards.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// Moves the clock to `to`; returns false (and does not move) if `to` is in the past.
    pub fn advance_to(&self, to: DateTime<Utc>) -> bool {
        let mut now = self.now.lock().expect("clock lock poisoned");
        if to < *now {
            return false;
        }
        *now = to;
        true
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock poisoned")
    }
}
