//! The ingest API for platform services: create and update subjects with their values, add
//! values, read a subject's metadata (never a value), erase a subject.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use model::{RegionId, SubjectId};
use serde::{Deserialize, Serialize};
use service::{INGEST_SUBJECTS_MAX, IngestOutcome, ServiceError, SubjectInput, SubjectSummary, ValueInput, validate_subject};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, ApiJson, AppState, ErrorBody, ErrorCode};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest_subjects))
        .routes(routes!(subject_summary))
        .routes(routes!(add_values))
        .routes(routes!(erase_subject))
}

/// Machine clients present `Authorization: Bearer <service token>`.
pub(crate) async fn require_service_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !has_service_token(&state, request.headers()) {
        return unauthenticated();
    }
    next.run(request).await
}

/// Does the request carry a known service token?
pub(crate) fn has_service_token(state: &AppState, headers: &header::HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    presented.is_some_and(|token| state.service_tokens.iter().any(|known| known.matches(token)))
}

/// 401 with the JSON error and a `WWW-Authenticate` challenge.
pub(crate) fn unauthenticated() -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, "a valid service bearer token is required")
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// At most 1,000 subjects. All are validated before anything is written.
    pub subjects: Vec<SubjectInput>,
}

/// Create or update subjects with their values. Validation is all-or-nothing: one bad value
/// and nothing of the request is written.
#[utoipa::path(post, path = "/v1/subjects", tag = "ingest", request_body = IngestRequest,
    responses((status = 200, body = IngestOutcome), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 410, body = ErrorBody), (status = 421, body = ErrorBody)),
    security(("service_token" = [])))]
async fn ingest_subjects(State(state): State<AppState>, ApiJson(request): ApiJson<IngestRequest>) -> Result<Json<IngestOutcome>, ApiError> {
    if request.subjects.len() > INGEST_SUBJECTS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("{} subjects exceed the limit of {INGEST_SUBJECTS_MAX} per request", request.subjects.len()),
        ));
    }
    let rows: usize = request.subjects.iter().map(|subject| 1 + subject.values.values().map(Vec::len).sum::<usize>()).sum();
    if rows > store::WRITE_BATCH_ROWS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the request holds {rows} subjects and values together; the limit is {}", store::WRITE_BATCH_ROWS_MAX),
        ));
    }
    let mut validated = Vec::with_capacity(request.subjects.len());
    let mut rejections = Vec::new();
    for subject in &request.subjects {
        match validate_subject(subject) {
            Ok(subject) => validated.push(subject),
            Err(problems) => rejections.extend(problems),
        }
    }
    if !rejections.is_empty() {
        return Err(ApiError::invalid_input(rejections));
    }
    Ok(Json(state.vault.ingest(validated).await?))
}

pub(crate) fn region_id(region: &str) -> Result<RegionId, ApiError> {
    RegionId::new(region).map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, error.to_string()))
}

fn ids(region: &str, subject: &str) -> Result<(RegionId, SubjectId), ApiError> {
    let region = RegionId::new(region).map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, error.to_string()))?;
    let subject = SubjectId::new(subject).map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, error.to_string()))?;
    Ok((region, subject))
}

/// A subject's metadata and how many values it has per field. Never a value: values leave
/// only through the access API, after their log entry is durable.
#[utoipa::path(get, path = "/v1/regions/{region}/subjects/{subject}", tag = "ingest",
    params(("region" = String, Path), ("subject" = String, Path)),
    responses((status = 200, body = SubjectSummary), (status = 404, body = ErrorBody), (status = 421, body = ErrorBody)),
    security(("service_token" = [])))]
async fn subject_summary(State(state): State<AppState>, Path((region, subject)): Path<(String, String)>) -> Result<Json<SubjectSummary>, ApiError> {
    let (region, subject) = ids(&region, &subject)?;
    Ok(Json(state.vault.subject(&region, &subject).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddValuesRequest {
    pub values: BTreeMap<String, Vec<ValueInput>>,
}

/// Add values to an existing subject; its labels are kept.
#[utoipa::path(post, path = "/v1/regions/{region}/subjects/{subject}/values", tag = "ingest",
    params(("region" = String, Path), ("subject" = String, Path)), request_body = AddValuesRequest,
    responses((status = 200, body = IngestOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 410, body = ErrorBody), (status = 421, body = ErrorBody)),
    security(("service_token" = [])))]
async fn add_values(
    State(state): State<AppState>,
    Path((region, subject)): Path<(String, String)>,
    ApiJson(request): ApiJson<AddValuesRequest>,
) -> Result<Json<IngestOutcome>, ApiError> {
    let (region_id, subject_id) = ids(&region, &subject)?;
    let summary = state.vault.subject(&region_id, &subject_id).await?;
    if summary.erased_at.is_some() {
        return Err(ServiceError::SubjectErased(subject_id).into());
    }
    let input = SubjectInput { id: subject, region, labels: summary.labels, staff: summary.staff, values: request.values };
    let validated = validate_subject(&input).map_err(ApiError::invalid_input)?;
    Ok(Json(state.vault.ingest(vec![validated]).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Who asked (a ticket, a data-subject request id).
    pub requested_by: String,
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureResponse {
    pub subject: String,
    pub erased_at_ms: i64,
    pub requested_by: String,
    pub reason: String,
    pub values_destroyed: u64,
}

/// Erase a subject by destroying its data key (crypto-shredding). The record that the subject
/// existed and was erased is kept; erasing again returns the first record.
#[utoipa::path(post, path = "/v1/regions/{region}/subjects/{subject}/erase", tag = "ingest",
    params(("region" = String, Path), ("subject" = String, Path)), request_body = EraseRequest,
    responses((status = 200, body = ErasureResponse), (status = 404, body = ErrorBody), (status = 421, body = ErrorBody)),
    security(("service_token" = [])))]
async fn erase_subject(
    State(state): State<AppState>,
    Path((region, subject)): Path<(String, String)>,
    ApiJson(request): ApiJson<EraseRequest>,
) -> Result<Json<ErasureResponse>, ApiError> {
    let (region, subject) = ids(&region, &subject)?;
    if request.requested_by.trim().is_empty() || request.reason.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, "requested_by and reason must not be empty"));
    }
    let record = state.vault.erase(&region, &subject, &request.requested_by, &request.reason).await?;
    Ok(Json(ErasureResponse {
        subject: record.subject.to_string(),
        erased_at_ms: record.erased_at_ms,
        requested_by: record.requested_by,
        reason: record.reason,
        values_destroyed: record.values_destroyed,
    }))
}
