//! A data subject's own routes. The platform exchanges a signed-in user's session for a
//! short-lived subject token (`POST /v1/subject-tokens`, a machine identity's JWT with an
//! exchange role); the user's browser or app then reads `GET /v1/subjects/{id}/accesses`
//! with that token: every access decision about them, with receipts and inclusion proofs
//! against a signed checkpoint, as JSON Lines or as an HTML page.
//!
//! A subject token opens only the route of the subject it names: another subject's id in
//! the path is 403, and staff JWTs, forged or expired tokens are 401 before anything is read.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use service::{Caller, SubjectAuthError, SubjectTokenGrant, SubjectTokenInput};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::gate;
use crate::{ApiError, ApiJson, AppState, ErrorBody, ErrorCode};

/// The media type of the JSON Lines report.
pub const SUBJECT_REPORT_CONTENT_TYPE: &str = "application/jsonl; charset=utf-8";

/// Routes for the platform's machine identity (behind the JWT check).
pub(crate) fn exchange_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(exchange))
}

/// Routes for subjects (they check the subject token themselves).
pub(crate) fn subject_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(accesses))
}

/// Exchange a signed-in user's session for a subject token. The caller is the platform: a
/// machine identity holding a configured exchange role (`[access] subject_token_roles`,
/// default `subject_token_exchange`). The token names exactly one subject and expires soon
/// (`subject_token_lifetime_seconds`, default 300).
#[utoipa::path(post, path = "/v1/subject-tokens", tag = "subjects", request_body = SubjectTokenInput,
    responses((status = 200, body = SubjectTokenGrant), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn exchange(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(input): ApiJson<SubjectTokenInput>,
) -> Result<Json<SubjectTokenGrant>, ApiError> {
    Ok(Json(gate(&state)?.exchange_subject_token(&caller, &input).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// `json` (JSON Lines, the default) or `html`; without it, `Accept: text/html` asks for HTML.
    format: Option<String>,
    /// The first log index to report from: the `next` of the previous page's first line
    /// (a report lists at most 1,000 accesses).
    from: Option<u64>,
    /// The subject token, for a link the platform hands its user's browser (which cannot set
    /// a header); `Authorization: Bearer` is preferred and wins when both are given. The page
    /// is sent with `Referrer-Policy: no-referrer` so the token does not travel on.
    token: Option<String>,
}

/// The subject's own access report: every access decision about them in their region's log
/// as of the latest signed checkpoint, each with its entry, receipt and inclusion proof.
/// Needs the subject token of that subject (`Authorization: Bearer`).
#[utoipa::path(get, path = "/v1/subjects/{id}/accesses", tag = "subjects",
    params(("id" = String, Path, description = "the subject's id"), ReportQuery),
    responses((status = 200, description = "JSON Lines: a report line, then one line per access (docs/api.md)", content_type = "application/jsonl", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("subject_token" = [])))]
async fn accesses(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gate = gate(&state)?;
    let Query(query) = query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))?;
    let header_token = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = header_token.or(query.token.as_deref()) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, "a subject token is required"));
    };
    let bearer = gate.subject_bearer(token, &id).map_err(|error| match error {
        SubjectAuthError::NotConfigured => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::IdentityNotConfigured, error.to_string()),
        SubjectAuthError::OtherSubject => ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, error.to_string()),
        SubjectAuthError::Token(error) => {
            metrics::counter!("custos_subject_tokens_refused_total", "reason" => error.code()).increment(1);
            ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, format!("{error} ({})", error.code()))
        }
    })?;
    let html = match query.format.as_deref() {
        Some("html") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, format!("format must be json or html, not {other:?}")));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.split(',').any(|part| part.trim().starts_with("text/html"))),
    };
    let report = gate.subject_report(&bearer, query.from.unwrap_or(0)).await?;
    let (content_type, body) = if html {
        ("text/html; charset=utf-8", crate::subject_page::render(&report))
    } else {
        (SUBJECT_REPORT_CONTENT_TYPE, report.to_json_lines())
    };
    Ok(personal(content_type, body))
}

/// A response no shared cache may keep: it is about one person.
fn personal(content_type: &'static str, body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, no-store"), (header::REFERRER_POLICY, "no-referrer")],
        body,
    )
        .into_response()
}
