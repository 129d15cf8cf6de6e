//! The use cases of custos over the pure crates and storage: ingest subjects and values,
//! reveal values through minimizing views, erase subjects, rotate keys — for the regions this
//! node serves, and no others.
//!
//! This crate is the API boundary: the HTTP server, the CLI and scenario replay all call it,
//! so each rule (residency, validation, all-or-nothing writes) is enforced in exactly one place.

mod clock;
mod deployment;
mod error;
mod ingest;
mod log;
mod log_keys;
mod vault;

#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use deployment::{
    CONFIG_FILE_NAME, Config, DeploymentError, GeoConfig, InitOptions, KeysConfig, ServiceToken, StorageConfig,
    init_data_dir, open_deployment, read_config,
    CHECKPOINT_INTERVAL_MS_DEFAULT, CHECKPOINT_INTERVAL_MS_MAX, LOG_ORIGIN_HOST_DEFAULT, log_verifier_key,
};
pub use error::{ServiceError, ValueRejection};
pub use log::{LogReceipt, RegionLog, log_origin};
pub use log_keys::{LOG_KEYS_FILE_NAME, LogKeyError, LogKeys};
pub use ingest::{
    INGEST_SUBJECTS_MAX, IngestOutcome, SubjectInput, VALUES_PER_SUBJECT_MAX, ValueInput, ValidatedSubject,
    validate_subject,
};
pub use vault::{open_value, FieldReveal, RegionSetup, RevealedValue, RotationReport, SubjectSummary, Vault, VaultOptions};
