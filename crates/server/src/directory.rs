//! Routes for the platform's integrations (service token): the ticketing system registers
//! and updates cases, the HR/identity integration keeps the staff directory.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use service::{CaseInput, CaseUpdate, CaseView, HrInput, StaffInput};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::gate;
use crate::{ApiError, ApiJson, AppState, ErrorBody, ErrorCode};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_case))
        .routes(routes!(case, update_case))
        .routes(routes!(put_staff))
        .routes(routes!(add_hr_fact))
        .routes(routes!(add_on_call))
}

/// Register a case: the explanation for access (ticket, queue item, legal request, incident).
#[utoipa::path(post, path = "/v1/cases", tag = "directory", request_body = CaseInput,
    responses((status = 201, body = CaseView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("service_token" = [])))]
async fn register_case(State(state): State<AppState>, ApiJson(input): ApiJson<CaseInput>) -> Result<(StatusCode, Json<CaseView>), ApiError> {
    Ok((StatusCode::CREATED, Json(gate(&state)?.register_case(&input).await?)))
}

#[utoipa::path(get, path = "/v1/cases/{id}", tag = "directory", params(("id" = String, Path, description = "case id")),
    responses((status = 200, body = CaseView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("service_token" = [])))]
async fn case(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<CaseView>, ApiError> {
    Ok(Json(gate(&state)?.case(&id).await?))
}

/// Change a case: close or reopen it, add assignees, subjects or destinations, attach a legal
/// process.
#[utoipa::path(patch, path = "/v1/cases/{id}", tag = "directory", params(("id" = String, Path, description = "case id")),
    request_body = CaseUpdate,
    responses((status = 200, body = CaseView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("service_token" = [])))]
async fn update_case(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<CaseUpdate>,
) -> Result<Json<CaseView>, ApiError> {
    Ok(Json(gate(&state)?.update_case(&id, &update).await?))
}

/// Create or replace a staff member's directory record.
#[utoipa::path(put, path = "/v1/staff/{id}", tag = "directory", params(("id" = String, Path, description = "staff id")),
    request_body = StaffInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("service_token" = [])))]
async fn put_staff(State(state): State<AppState>, Path(id): Path<String>, ApiJson(input): ApiJson<StaffInput>) -> Result<StatusCode, ApiError> {
    if input.id != id {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, format!("body id {:?} differs from the path's {id:?}", input.id)));
    }
    gate(&state)?.put_staff(&input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Record an HR fact: dismissal notice, leaving, travel (with country and until), new hire.
#[utoipa::path(post, path = "/v1/staff/{id}/hr", tag = "directory", params(("id" = String, Path, description = "staff id")),
    request_body = HrInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("service_token" = [])))]
async fn add_hr_fact(State(state): State<AppState>, Path(id): Path<String>, ApiJson(input): ApiJson<HrInput>) -> Result<StatusCode, ApiError> {
    gate(&state)?.add_hr_fact(&id, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnCallInput {
    /// End of the on-call period, which starts now.
    pub until: DateTime<Utc>,
}

/// Record an on-call period from now until `until`.
#[utoipa::path(post, path = "/v1/staff/{id}/on-call", tag = "directory", params(("id" = String, Path, description = "staff id")),
    request_body = OnCallInput,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("service_token" = [])))]
async fn add_on_call(State(state): State<AppState>, Path(id): Path<String>, ApiJson(input): ApiJson<OnCallInput>) -> Result<StatusCode, ApiError> {
    gate(&state)?.add_on_call(&id, input.until).await?;
    Ok(StatusCode::NO_CONTENT)
}
