//! The one error type at the HTTP edge: a stable machine code, a message for people, optional
//! details. Server-side failures are logged in full and answered with a generic message.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use service::{ServiceError, ValueRejection};

/// Stable error codes. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthenticated,
    InvalidRequest,
    InvalidInput,
    PayloadTooLarge,
    RegionNotServed,
    SubjectNotFound,
    SubjectErased,
    IntegrityError,
    StorageUnavailable,
    KeysUnavailable,
    /// No such tile or entry bundle in this log (beyond the tree, or not a tile path).
    TileNotFound,
    LogUnavailable,
    /// The node has no identity provider (or no access control) configured.
    IdentityNotConfigured,
    /// The identity provider's key set could not be fetched.
    IdentityUnavailable,
    Forbidden,
    NotFound,
    AlreadyExists,
    /// The access request was already approved or rejected.
    AlreadyDecided,
    /// The access request's approval window has passed.
    ApprovalExpired,
    /// The approver may not approve this request (self-approval, no approver role).
    ApprovalRefused,
    /// The alert's status does not allow the action (acknowledging a resolved alert).
    InvalidTransition,
    /// The node runs no detector, so it has no alerts to show.
    DetectorUnavailable,
    /// The node was built without its configuration, so it has no record of processing.
    ProcessingUnavailable,
    Internal,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// For `invalid_input`: every rejected subject, field and value index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ValueRejection>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<ValueRejection>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Vec::new() }
    }

    pub fn invalid_input(details: Vec<ValueRejection>) -> Self {
        let message = match details.len() {
            1 => "1 problem in the request; nothing was written".to_owned(),
            count => format!("{count} problems in the request; nothing was written"),
        };
        Self { status: StatusCode::BAD_REQUEST, code: ErrorCode::InvalidInput, message, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, details: self.details } };
        (self.status, Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(details) => ApiError::invalid_input(details),
            ServiceError::RegionNotServed(_) => {
                ApiError::new(StatusCode::MISDIRECTED_REQUEST, ErrorCode::RegionNotServed, error.to_string())
            }
            ServiceError::SubjectNotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::SubjectNotFound, error.to_string()),
            ServiceError::SubjectErased(_) => ApiError::new(StatusCode::GONE, ErrorCode::SubjectErased, error.to_string()),
            ServiceError::Integrity { .. } => {
                tracing::error!(%error, "integrity failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::IntegrityError,
                    "stored data failed its integrity check; the operator has been alerted",
                )
            }
            ServiceError::Store(store::StoreError::BatchTooLarge { rows, max }) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("the request holds {rows} subjects and values together; the limit is {max}"),
            ),
            ServiceError::Store(_) => {
                tracing::error!(%error, "storage failure");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StorageUnavailable, "storage is unavailable")
            }
            ServiceError::Keys(_) | ServiceError::Seal(_) => {
                tracing::error!(%error, "key provider failure");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::KeysUnavailable, "the key provider is unavailable")
            }
            ServiceError::InvalidProofRequest(_) | ServiceError::LogEntryRejected(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, error.to_string())
            }
            ServiceError::Log(_) => {
                tracing::error!(%error, "access log failure");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::LogUnavailable, "the access log is unavailable")
            }
            ServiceError::InvalidRequest { .. } => ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, error.to_string()),
            ServiceError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, error.to_string()),
            ServiceError::AlreadyExists(_) => ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyExists, error.to_string()),
            ServiceError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, error.to_string()),
            ServiceError::ApprovalRefused { .. } => ApiError::new(StatusCode::FORBIDDEN, ErrorCode::ApprovalRefused, error.to_string()),
            ServiceError::AlreadyDecided { .. } => ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyDecided, error.to_string()),
            ServiceError::ApprovalExpired { .. } => ApiError::new(StatusCode::GONE, ErrorCode::ApprovalExpired, error.to_string()),
            ServiceError::InvalidAlertTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::InvalidTransition, error.to_string())
            }
            ServiceError::Internal(_) => {
                tracing::error!(%error, "internal failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error")
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request body exceeds {} bytes", crate::REQUEST_BODY_BYTES_MAX),
            ),
            other => ApiError::new(other.status(), ErrorCode::InvalidRequest, other.body_text()),
        }
    }
}

/// `Json` whose rejection is our JSON error, not axum's plain text.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}
