//! The use cases of custos over the pure crates and storage: ingest subjects and values,
//! decide and log access and reveal values through minimizing views, approvals, cases and
//! the staff directory, erase subjects, rotate keys — for the regions this node serves, and
//! no others.
//!
//! This crate is the API boundary: the HTTP server, the CLI and scenario replay all call it,
//! so each rule (residency, validation, all-or-nothing writes) is enforced in exactly one place.

mod access;
mod alert_desk;
mod clock;
mod console;
mod detection;
mod directory;
mod deployment;
mod error;
mod ingest;
mod log;
mod log_keys;
mod ocsf;
mod processing;
mod subject_access;
mod subject_index;
mod subject_report;
mod records;
mod subject_token;
mod transparency;
mod vault;
mod what_if;
mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

pub use access::{
    ACCESS_NAME_BYTES_MAX, ACCESS_SUBJECTS_MAX, APPROVAL_NOTE_BYTES_MAX, APPROVAL_TTL_DEFAULT, APPROVER_ROLES_DEFAULT,
    AccessAnswer, AccessInput, AccessSettings, ApprovalInput, ApprovalView, Caller, CallerKind, FieldAnswer, Gate,
    JUSTIFICATION_BYTES_MAX, PendingView, Receipt, SUBJECT_TOKEN_ROLES_DEFAULT, SubjectAnswer,
};
pub use subject_index::{SUBJECT_INDEX_INTERVAL, SUBJECT_INDEX_STEP_ENTRIES_MAX, spawn_subject_indexer, timeline_rows};
pub use subject_report::{
    ActorIds, ReportAccess, ReportActor, ReportField, ReportHeader, ReportLine, ReportReceipt, SUBJECT_REPORT_ACCESSES_MAX, SUBJECT_REPORT_FORMAT,
    SubjectReport, summarize as summarize_access,
};
pub use subject_access::{SubjectAuthError, SubjectTokenGrant, SubjectTokenInput};
pub use subject_token::{
    SUBJECT_TOKEN_AUDIENCE, SUBJECT_TOKEN_BYTES_MAX, SUBJECT_TOKEN_HEADER, SUBJECT_TOKEN_LIFETIME_DEFAULT, SUBJECT_TOKEN_LIFETIME_MAX,
    SubjectBearer, SubjectClaims, SubjectTokenError, SubjectTokenKeys,
};
pub use directory::{CaseInput, CaseUpdate, CaseView, HrInput, LEGAL_HOLD_DAYS_MAX, LegalProcessInput, ShiftInput, StaffInput};
pub use model::decision_entry::{
    AccessEntry, ActorSnapshot, ApprovalEntry, DECISION_ENTRY_VERSION, FieldDecisionEntry, QuerySnapshot, SubjectSnapshot, kind_of,
};
pub use detection::{Cursors, DETECTION_READ_ENTRIES_MAX, Detection, Step};
pub use alert_desk::{
    AlertDesk, AlertView, DeskOptions, CHECKPOINT_EVERY, CHECKPOINT_EVERY_ENTRIES, DETECTOR_NAME, EvidenceView, NoteView, POLL_INTERVAL, Progress,
    WebhookConfig, WebhookFormat, record as alert_record, time as time_from_ms,
};
pub use ocsf::{OCSF_ACTIVITY_CREATE, OCSF_CATEGORY_UID, OCSF_CLASS_UID, OCSF_SCHEMA_VERSION, detection_finding};
pub use webhook::{
    DeliveryReport, WEBHOOK_ATTEMPTS_MAX, WEBHOOK_BACKOFF_FIRST, WEBHOOK_BACKOFF_MAX, WEBHOOK_DELIVERIES_PER_ROUND_MAX, WEBHOOK_INTERVAL,
    WEBHOOK_TIMEOUT, WEBHOOK_URL_BYTES_MAX, backoff as webhook_backoff, deliver_due, spawn_webhook,
};
pub use detect::Entry as LogEntry;
pub use what_if::{DecisionChange, WHAT_IF_CHANGES_MAX, WHAT_IF_DAYS_MAX, WHAT_IF_ENTRIES_MAX, WhatIf};
pub use processing::{
    FieldReach, PROCESSING_FORMAT, ProcessingConfig, ProcessingRecord, PurposeRecord, PurposeStatement, RecipientStatement,
    PROCESSING_STATEMENT_BYTES_MAX, processing_record,
};
pub use records::{RECORDS_FORMAT, RECORDS_MAX, RecordLine, RecordScope, RecordsHeader, RecordsReport};
pub use transparency::{LEGAL_PURPOSES, MonthTally, RegionTransparency, TALLY_KEYS_MAX, TransparencyReport, month_of};
pub use console::{ACTIVITY_BUCKET_MS, TIMELINE_PAGE_DEFAULT, TIMELINE_PAGE_MAX, Timeline, TimelineCursor, TimelineItem};
pub use clock::{Clock, ManualClock, SystemClock};
pub use deployment::{
    AccessConfig, APPROVAL_TTL_SECONDS_MAX, REPORT_NOTICE_DELAY_SECONDS_MAX, CONFIG_FILE_NAME, DEV_AUDIENCE, DEV_ISSUER_DIR_NAME, DEV_ISSUER_NAME, Config, DIRECTORY_SCHEMA_DEFAULT, DeploymentError, GeoConfig, InitOptions, KeysConfig, ServiceToken, StorageConfig, WitnessConfig,
    init_data_dir, open_deployment, open_gate, read_config,
    CHECKPOINT_INTERVAL_MS_DEFAULT, CHECKPOINT_INTERVAL_MS_MAX, LOG_ORIGIN_HOST_DEFAULT, log_verifier_key,
};
pub use error::{ServiceError, ValueRejection};
pub use log::{LogReceipt, RegionLog, SignedCheckpoint, Witnessing, log_origin};
pub use log_keys::{LOG_KEYS_FILE_NAME, LogKeyError, LogKeys, SEARCH_KEYS_FILE_NAME, SUBJECT_TOKEN_KEYS_FILE_NAME};
pub use ingest::{
    INGEST_SUBJECTS_MAX, IngestOutcome, SubjectInput, VALUES_PER_SUBJECT_MAX, ValueInput, ValidatedSubject,
    validate_subject,
};
pub use vault::{SEARCH_MATCHES_MAX, SEARCHABLE_FIELDS, blind_digest, open_value, FieldReveal, RegionSetup, RevealedValue, RotationReport, SubjectSummary, Vault, VaultOptions};
