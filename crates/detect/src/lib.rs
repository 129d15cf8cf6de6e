//! Abuse detection over the access log: every decision entry, in log order, goes through a
//! set of rules that ask what explains the access and who its target is (explanation-based
//! auditing), and raise alerts with the log entries as evidence.
//!
//! Pure: no IO, no clock (time is the entries' own), no randomness. The caller reads the log,
//! loads the facts the rules need (cases, staff) and stores the alerts and the saved state;
//! given the same entries, facts and configuration, the alerts are the same, byte for byte.

mod config;
mod engine;
mod event;
mod facts;
pub mod rules;

pub use config::{COOLDOWN_SECONDS_DEFAULT, DetectionConfig};
pub use engine::{ALERT_EVIDENCE_MAX, ALERT_SUBJECTS_MAX, Alert, Detector, Finding, StateError};
pub use event::{Access, Approval, DecodeError, Entry, Evidence, Explanation, DECODE_THREADS_MAX, PROTECTED_LABELS, decode, decode_batch};
pub use facts::{CaseFacts, FactTable, Facts, HrEventKind, HrFactFacts, ShiftFacts, StaffFacts};
pub use model::Severity;
