//! The error space of the use cases. The HTTP edge maps each variant to a stable code.

use model::{RegionId, SubjectId};
use serde::Serialize;

/// Why one value (or one subject) of an ingest was refused: which subject, which field, which
/// value (0-based index in that field's list), and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ValueRejection {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ValueRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "subject {:?}", self.subject)?;
        if let Some(field) = &self.field {
            write!(f, ", field {field}")?;
        }
        if let Some(index) = self.index {
            write!(f, ", value {index}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ValueRejection>),
    #[error("region {0} is not served by this node")]
    RegionNotServed(RegionId),
    #[error("subject {subject} not found in region {region}")]
    SubjectNotFound { region: RegionId, subject: SubjectId },
    #[error("subject {0} was erased")]
    SubjectErased(SubjectId),
    #[error("sealed data failed its integrity check for subject {subject}: {detail}")]
    Integrity { subject: SubjectId, detail: String },
    #[error("key provider: {0}")]
    Keys(#[from] seal::KeyError),
    #[error("sealing: {0}")]
    Seal(#[from] seal::SealError),
    #[error("storage: {0}")]
    Store(store::StoreError),
    #[error("access log: {0}")]
    Log(String),
    #[error("log entry rejected: {0}")]
    LogEntryRejected(String),
    #[error("invalid proof request: {0}")]
    InvalidProofRequest(String),
    #[error("invalid request: {field}: {message}")]
    InvalidRequest { field: String, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("approval of {request} refused: {reason}")]
    ApprovalRefused { request: String, reason: String },
    #[error("access request {request} is already {status}")]
    AlreadyDecided { request: String, status: String },
    #[error("access request {request} expired at {expired_at}")]
    ApprovalExpired { request: String, expired_at: chrono::DateTime<chrono::Utc> },
    /// The alert's status does not allow the action (acknowledging a resolved alert).
    #[error("cannot {action} alert {alert}: it is {status}")]
    InvalidAlertTransition { alert: String, status: String, action: String },
    #[error("{0}")]
    Internal(String),
}

impl From<store::StoreError> for ServiceError {
    fn from(error: store::StoreError) -> Self {
        match error {
            store::StoreError::Erased(subject) => ServiceError::SubjectErased(subject),
            // The directory's refusals are about the request, not the storage.
            store::StoreError::AlreadyExists { what, id } => ServiceError::AlreadyExists(format!("{what} {id}")),
            store::StoreError::NotFound { what, id } => ServiceError::NotFound(format!("{what} {id}")),
            store::StoreError::AlreadyDecided { id, status } => {
                ServiceError::AlreadyDecided { request: id, status: status.as_str().to_owned() }
            }
            store::StoreError::InvalidAlertTransition { id, status, action } => ServiceError::InvalidAlertTransition {
                alert: id,
                status: status.as_str().to_owned(),
                action: action.as_str().to_owned(),
            },
            error @ (store::StoreError::InvalidRecord { what, .. } | store::StoreError::LimitExceeded { what, .. }) => {
                ServiceError::InvalidRequest { field: what.to_owned(), message: error.to_string() }
            }
            other => ServiceError::Store(other),
        }
    }
}
