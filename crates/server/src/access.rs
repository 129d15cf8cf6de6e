//! Staff-facing routes: ask for access, open an approved request, see and answer a
//! colleague's pending request. Callers present `Authorization: Bearer <JWT>` from the
//! company's identity provider; the token is verified (issuer, audience, expiry, algorithm
//! allow-list, JWKS) before the handler runs and the directory completes the caller's
//! attributes. Every answer that carries a value carries the receipt of its log entry.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use service::{AccessAnswer, AccessInput, ApprovalInput, Caller, CallerKind, Gate, PendingView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, ApiJson, AppState, ErrorBody, ErrorCode};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(access))
        .routes(routes!(open_request))
        .routes(routes!(pending, approve))
}

/// Verifies the staff or machine bearer token and puts the completed [`Caller`] into the
/// request's extensions.
pub(crate) async fn require_identity(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match verified_caller(&state, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(response) => response,
    }
}

/// The caller a request's bearer JWT speaks for, completed by the directory; or the response
/// refusing it (401 with the reason code, 503 when identity is not configured or the
/// identity provider's keys cannot be had).
pub(crate) async fn verified_caller(state: &AppState, headers: &header::HeaderMap) -> Result<Caller, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = presented else {
        if state.gate.is_none() || state.identity.is_none() {
            return Err(not_configured().into_response());
        }
        return Err(challenge(ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, "a bearer token from the identity provider is required")));
    };
    token_caller(state, token).await.map(|(caller, _expires_at)| caller).map_err(|error| {
        if error.status == StatusCode::UNAUTHORIZED { challenge(error) } else { error.into_response() }
    })
}

/// The caller a staff or machine JWT speaks for, completed by the directory, with the
/// token's expiry; or the error refusing it (401 with the reason code, 503 when identity is
/// not configured or the identity provider's keys cannot be had).
pub(crate) async fn token_caller(state: &AppState, token: &str) -> Result<(Caller, chrono::DateTime<chrono::Utc>), ApiError> {
    let (Some(gate), Some(identity)) = (&state.gate, &state.identity) else {
        return Err(not_configured());
    };
    let verified = match identity.verify(token, gate.vault().clock().now()).await {
        Ok(verified) => verified,
        Err(auth::TokenError::Jwks(error)) => {
            tracing::error!(%error, "identity provider key set unavailable");
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::IdentityUnavailable, "the identity provider's keys are unavailable"));
        }
        Err(error) => {
            metrics::counter!("custos_tokens_refused_total", "reason" => error.code()).increment(1);
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, format!("{error} ({})", error.code())));
        }
    };
    let expires_at = verified.expires_at;
    let caller = Caller {
        id: verified.id,
        kind: match verified.kind {
            auth::IdentityKind::Staff => CallerKind::Staff,
            auth::IdentityKind::Machine => CallerKind::Machine,
        },
        roles: verified.roles,
        team: verified.team,
        entity: verified.entity,
        country: verified.country,
        region: verified.region,
    };
    Ok((gate.caller(caller).await?, expires_at))
}

fn not_configured() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::IdentityNotConfigured, "staff identity is not configured on this node")
}

fn challenge(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

pub(crate) fn gate(state: &AppState) -> Result<&Gate, ApiError> {
    state.gate.as_deref().ok_or_else(no_gate)
}

/// [`gate`], shared, for work handed to another task.
pub(crate) fn shared_gate(state: &AppState) -> Result<std::sync::Arc<Gate>, ApiError> {
    state.gate.clone().ok_or_else(no_gate)
}

fn no_gate() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::IdentityNotConfigured, "access control is not configured on this node")
}

/// Ask for fields of subjects for a purpose on a case. The decision for each subject is
/// logged in its region and durable before any value is decrypted; the answer carries each
/// field's granted view (possibly coarser than asked), a denial with reasons, or `pending`
/// with the approvals needed, and each subject's log receipt.
#[utoipa::path(post, path = "/v1/access", tag = "access", request_body = AccessInput,
    responses((status = 200, body = AccessAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn access(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(input): ApiJson<AccessInput>,
) -> Result<Json<AccessAnswer>, ApiError> {
    Ok(Json(gate(&state)?.access(&caller, &input).await?))
}

/// Open an approved request: the policy decides again with the approvals it received, the
/// decision is logged, and what it grants is revealed. Only the requester may open it, and
/// only before it expires.
#[utoipa::path(post, path = "/v1/access/{id}", tag = "access", params(("id" = String, Path, description = "access request id")),
    responses((status = 200, body = AccessAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 410, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn open_request(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<AccessAnswer>, ApiError> {
    Ok(Json(gate(&state)?.open_request(&caller, &id).await?))
}

/// What an approver sees of a request: what was asked, by whom, why it waits — no values.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "access", params(("id" = String, Path, description = "access request id")),
    responses((status = 200, body = PendingView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn pending(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<PendingView>, ApiError> {
    Ok(Json(gate(&state)?.pending(&caller, &id).await?))
}

/// Approve or reject a colleague's pending request. The approver must hold an approver role
/// and must not be the requester; the request must still be pending and not expired. The
/// answer is logged before it takes effect (refusals too).
#[utoipa::path(post, path = "/v1/approvals/{id}", tag = "access", params(("id" = String, Path, description = "access request id")),
    request_body = ApprovalInput,
    responses((status = 200, body = PendingView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn approve(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ApprovalInput>,
) -> Result<Json<PendingView>, ApiError> {
    Ok(Json(gate(&state)?.approve(&caller, &id, &input).await?))
}
