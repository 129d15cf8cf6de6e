//! The alert desk over HTTP, for compliance officers: the alerts the detector raised (filtered,
//! newest first, in pages), one alert with its notes and a C2SP tlog-proof for each log entry
//! it rests on, acknowledging and resolving (each action logged before it takes effect), the
//! alert as an OCSF Detection Finding, and the detector's progress.
//!
//! Every route needs a staff token (verified by [`crate::access::require_identity`]) carrying
//! the [`COMPLIANCE_OFFICER_ROLE`]; a node without a running detector answers 503
//! `detector_unavailable`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service::{AlertDesk, AlertView, Caller, NoteView, ServiceError};
use store::{AlertAction, AlertFilter, AlertStatus, Severity};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, ApiJson, AppState, ErrorBody, ErrorCode};

/// The staff role the alert routes need.
pub const COMPLIANCE_OFFICER_ROLE: &str = "compliance_officer";
/// Alerts per page when `limit` is not given.
pub const ALERTS_LIMIT_DEFAULT: usize = 100;
/// Most alerts one page holds (`limit`).
pub const ALERTS_LIMIT_MAX: usize = 500;
/// Longest `rule`, `actor` or `subject` filter, in bytes.
pub const ALERT_FILTER_BYTES_MAX: usize = 256;
/// Most evidence entries of one alert answered with a proof; later ones are listed with
/// `proof: null` and the reason (their proofs are at `/v1/log/{region}/proof/receipt`).
pub const EVIDENCE_PROOFS_MAX: usize = 100;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(alert))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
        .routes(routes!(ocsf))
        .routes(routes!(detector))
}

/// The query of `GET /v1/alerts`; every parameter is optional and each one given narrows the
/// list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    /// The least severity: `info`, `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    /// A rule name (`unexplained_access`, …).
    pub rule: Option<String>,
    /// The staff or machine id whose access raised the alert.
    pub actor: Option<String>,
    /// Alerts naming this subject.
    pub subject: Option<String>,
    /// RFC 3339: alerts triggered at or after this time.
    pub since: Option<String>,
    /// RFC 3339: alerts triggered before this time.
    pub until: Option<String>,
    /// 1 to 500 alerts per page (default 100).
    pub limit: Option<String>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
}

/// One page of alerts, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    pub alerts: Vec<AlertView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// An alert with its notes and the proofs of its evidence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    pub alert: AlertView,
    /// The acknowledgements and resolutions, oldest first.
    pub notes: Vec<NoteView>,
    /// One per evidence entry, in the alert's order.
    pub evidence_proofs: Vec<EvidenceProof>,
}

/// The proof that a log entry an alert rests on is in its region's log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvidenceProof {
    pub region: String,
    pub index: u64,
    /// A C2SP tlog-proof (`c2sp.org/tlog-proof@v1`) of the entry in the latest signed
    /// checkpoint, as `/v1/log/{region}/proof/receipt` serves it; `null` when there is none
    /// (see `reason`).
    pub proof: Option<String>,
    /// The entry as the log holds it (its 32-byte salt, then the canonical decision), base64:
    /// with `leaf_hash` and the region's origin it is the receipt `custos receipt verify`
    /// checks against `proof`. Present whenever `proof` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The RFC 6962 leaf hash of `entry`, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<String>,
    /// Why `proof` is `null`: no signed checkpoint covers the entry yet, the region is not
    /// served here, or the alert has more than 100 evidence entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a compliance officer says when acting on an alert.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertActionInput {
    /// At most 4,096 bytes; optional to acknowledge, required to resolve.
    #[serde(default)]
    pub note: String,
}

/// The detector's progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DetectorView {
    /// Per region served: entries logged but not yet read by the detector.
    pub lag: Vec<RegionLag>,
    /// The rules that run, in the detector's order.
    pub rules: Vec<String>,
    /// When the detector last saved its checkpoint (absent before the first save).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_saved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegionLag {
    pub region: String,
    pub entries: u64,
}

/// The alerts matching the filters, newest first (by trigger time, then id), one page at a
/// time: pass the answer's `next` as `before` for the next page.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn list(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    let desk = desk(&state, &caller)?;
    let query = query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))?;
    let (mut filter, limit) = filter(&query)?;
    // One more than the page tells whether there is a next page.
    filter.limit = limit + 1;
    let mut alerts = desk.store().alerts(&filter).await.map_err(ServiceError::from)?;
    let next = if alerts.len() > limit {
        alerts.truncate(limit);
        alerts.last().map(|last| cursor(last.at_ms, &last.id))
    } else {
        None
    };
    Ok(Json(AlertPage { alerts: alerts.iter().map(AlertView::new).collect(), next }))
}

/// One alert, its notes, and for each log entry it rests on a C2SP tlog-proof of that entry
/// in the region's latest signed checkpoint (`null`, with the reason, for an entry no signed
/// checkpoint covers yet).
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "alerts", params(("id" = String, Path, description = "alert id")),
    responses((status = 200, body = AlertDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn alert(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    let desk = desk(&state, &caller)?;
    let (alert, notes) = stored_alert(desk, &id).await?;
    let mut evidence_proofs = Vec::with_capacity(alert.evidence.len());
    for (position, evidence) in alert.evidence.iter().enumerate() {
        let (proved, reason) = if position >= EVIDENCE_PROOFS_MAX {
            (None, Some(format!("only the first {EVIDENCE_PROOFS_MAX} evidence entries are proved here; ask /v1/log/{}/proof/receipt?index={}", evidence.region, evidence.index)))
        } else {
            match evidence_proof(&state, &evidence.region, evidence.index).await? {
                Ok(proved) => (Some(proved), None),
                Err(reason) => (None, Some(reason)),
            }
        };
        let (proof, entry, leaf_hash) = match proved {
            Some((proof, entry)) => {
                let leaf_hash = tlog::leaf_hash(&entry);
                (Some(proof), Some(STANDARD.encode(&entry)), Some(STANDARD.encode(leaf_hash.as_bytes())))
            }
            None => (None, None, None),
        };
        evidence_proofs.push(EvidenceProof { region: evidence.region.clone(), index: evidence.index, proof, entry, leaf_hash, reason });
    }
    Ok(Json(AlertDetail { alert: AlertView::new(&alert), notes: notes.iter().map(NoteView::new).collect(), evidence_proofs }))
}

/// Acknowledge an open alert (someone is looking at it). The action is appended to the log
/// before the alert changes; 409 `invalid_transition` unless the alert is open.
#[utoipa::path(post, path = "/v1/alerts/{id}/acknowledge", tag = "alerts", params(("id" = String, Path, description = "alert id")),
    request_body = AlertActionInput,
    responses((status = 200, body = AlertView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn acknowledge(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AlertActionInput>,
) -> Result<Json<AlertView>, ApiError> {
    act(&state, &caller, &id, AlertAction::Acknowledge, &input.note).await
}

/// Resolve an open or acknowledged alert, with a note saying why. The action is appended to
/// the log before the alert changes; 409 `invalid_transition` when it is already resolved.
#[utoipa::path(post, path = "/v1/alerts/{id}/resolve", tag = "alerts", params(("id" = String, Path, description = "alert id")),
    request_body = AlertActionInput,
    responses((status = 200, body = AlertView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn resolve(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AlertActionInput>,
) -> Result<Json<AlertView>, ApiError> {
    act(&state, &caller, &id, AlertAction::Resolve, &input.note).await
}

/// The alert as an OCSF 1.8.0 Detection Finding (class 2004), as the webhook posts it with
/// `format = "ocsf"`.
#[utoipa::path(get, path = "/v1/alerts/{id}/ocsf", tag = "alerts", params(("id" = String, Path, description = "alert id")),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn ocsf(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let desk = desk(&state, &caller)?;
    let (alert, _notes) = stored_alert(desk, &id).await?;
    Ok(Json(service::detection_finding(&alert, env!("CARGO_PKG_VERSION"))))
}

/// The detector's progress: how far behind each region's log it is, the rules it runs, and
/// when it last saved its checkpoint.
#[utoipa::path(get, path = "/v1/detector", tag = "alerts",
    responses((status = 200, body = DetectorView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn detector(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<DetectorView>, ApiError> {
    let desk = desk(&state, &caller)?;
    let lag = desk.lag().await?.into_iter().map(|(region, entries)| RegionLag { region, entries }).collect();
    let rules = desk.rules_enabled().into_iter().map(str::to_owned).collect();
    let checkpoint_saved_at = desk.checkpoint_saved_at_ms().await.and_then(DateTime::from_timestamp_millis);
    Ok(Json(DetectorView { lag, rules, checkpoint_saved_at }))
}

/// The desk, for a caller holding the compliance officer role: 403 `forbidden` without it,
/// 503 `detector_unavailable` on a node that runs no detector.
pub(crate) fn desk<'a>(state: &'a AppState, caller: &Caller) -> Result<&'a AlertDesk, ApiError> {
    if !caller.roles.iter().any(|role| role == COMPLIANCE_OFFICER_ROLE) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("the alert routes need the {COMPLIANCE_OFFICER_ROLE} role; {} does not hold it", caller.id),
        ));
    }
    state.alerts.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::DetectorUnavailable, "no detector runs on this node")
    })
}

pub(crate) async fn stored_alert(desk: &AlertDesk, id: &str) -> Result<(store::AlertRecord, Vec<store::AlertNote>), ApiError> {
    desk.store()
        .alert(id)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("alert {id} not found")))
}

async fn act(state: &AppState, caller: &Caller, id: &str, action: AlertAction, note: &str) -> Result<Json<AlertView>, ApiError> {
    let desk = desk(state, caller)?;
    let alert = desk.act(caller, id, action, note).await?;
    Ok(Json(AlertView::new(&alert)))
}

/// The tlog-proof text of an evidence entry, `Err` with the reason when there is none to
/// give; a failing log or store is the outer error.
async fn evidence_proof(state: &AppState, region: &str, index: u64) -> Result<Result<(String, Vec<u8>), String>, ApiError> {
    let region = match model::RegionId::new(region) {
        Ok(region) => region,
        Err(error) => return Ok(Err(format!("the evidence names no valid region: {error}"))),
    };
    let log = match state.vault.log(&region) {
        Ok(log) => log,
        Err(error @ ServiceError::RegionNotServed(_)) => return Ok(Err(error.to_string())),
        Err(error) => return Err(error.into()),
    };
    let proof = match log.tlog_proof(index).await {
        Ok(proof) => String::from_utf8(proof).map_err(|_| ApiError::from(ServiceError::Internal("a tlog-proof is not UTF-8".to_owned())))?,
        Err(ServiceError::InvalidProofRequest(reason)) => return Ok(Err(reason)),
        Err(error) => return Err(error.into()),
    };
    // INVARIANT: a signed checkpoint covers `index` (the proof exists), so the entry is stored.
    let entry = log.stored_entry(index).await?.ok_or_else(|| ServiceError::Internal(format!("entry {index} is proved but not stored")))?;
    Ok(Ok((proof, entry)))
}

/// The store filter and the page size a query asks for; 400 naming the parameter otherwise.
pub(crate) fn filter(query: &AlertQuery) -> Result<(AlertFilter, usize), ApiError> {
    let invalid = |parameter: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, format!("query parameter `{parameter}`: {message}"))
    };
    let text = |parameter: &str, value: &Option<String>| -> Result<Option<String>, ApiError> {
        match value {
            Some(value) if value.is_empty() || value.len() > ALERT_FILTER_BYTES_MAX => {
                Err(invalid(parameter, format!("must be 1 to {ALERT_FILTER_BYTES_MAX} bytes")))
            }
            other => Ok(other.clone()),
        }
    };
    let time = |parameter: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|value| {
                DateTime::parse_from_rfc3339(value)
                    .map(|time| time.timestamp_millis())
                    .map_err(|error| invalid(parameter, format!("{value:?} is not an RFC 3339 time ({error})")))
            })
            .transpose()
    };
    let status = query
        .status
        .as_deref()
        .map(|value| value.parse::<AlertStatus>().map_err(|_| invalid("status", format!("{value:?} is not open, acknowledged or resolved"))))
        .transpose()?;
    let severity_min = query
        .severity
        .as_deref()
        .map(|value| value.parse::<Severity>().map_err(|error| invalid("severity", error.to_string())))
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => ALERTS_LIMIT_DEFAULT,
        Some(value) => match value.parse::<usize>() {
            Ok(limit) if (1..=ALERTS_LIMIT_MAX).contains(&limit) => limit,
            _ => return Err(invalid("limit", format!("{value:?} is not a number from 1 to {ALERTS_LIMIT_MAX}"))),
        },
    };
    let before = query
        .before
        .as_deref()
        .map(|value| parse_cursor(value).ok_or_else(|| invalid("before", format!("{value:?} is not a cursor this API gave"))))
        .transpose()?;
    let filter = AlertFilter {
        status,
        severity_min,
        rule: text("rule", &query.rule)?,
        actor: text("actor", &query.actor)?,
        subject: text("subject", &query.subject)?,
        since_ms: time("since", &query.since)?,
        until_ms: time("until", &query.until)?,
        before,
        limit,
    };
    Ok((filter, limit))
}

/// The opaque page cursor of `(at_ms, id)`: base64url of `<at_ms>:<id>`.
pub(crate) fn cursor(at_ms: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at_ms}:{id}"))
}

fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at_ms, id) = text.split_once(':')?;
    let valid_id = id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    valid_id.then_some(())?;
    Some((at_ms.parse().ok()?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_this_api_did_not_give() {
        let id = "0123456789abcdef0123456789abcdef";
        for at_ms in [0, 1_772_442_000_000, -5, i64::MAX] {
            assert_eq!(parse_cursor(&cursor(at_ms, id)), Some((at_ms, id.to_owned())));
        }
        for bad in ["", "not base64!", &URL_SAFE_NO_PAD.encode("12"), &URL_SAFE_NO_PAD.encode(format!("x:{id}")),
            &URL_SAFE_NO_PAD.encode("12:XYZ"), &URL_SAFE_NO_PAD.encode(format!("12:{}", id.to_uppercase()))]
        {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }
}
