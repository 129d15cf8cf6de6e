//! The public transparency page, `GET /transparency` (HTML; `?format=json` for machines):
//! per region and month, access decisions by purpose, refusals, decisions held for approval,
//! second persons' answers, break-glass uses and legal requests; per month, the detector's
//! alerts by severity — aggregates only — with each region's signed checkpoint and the
//! command that verifies it. No sign-in: anyone may read it.
//!
//! The page is built at most once every [`TRANSPARENCY_CACHE_SECONDS`]; a public page must
//! not let anyone make the server count its logs at will.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use maud::html;
use model::Severity;
use serde::{Deserialize, Serialize};
use service::{LEGAL_PURPOSES, TransparencyReport};
use store::AlertFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, AppState, ErrorBody, ErrorCode};

/// How long a built page is served before it is built again.
pub const TRANSPARENCY_CACHE_SECONDS: u64 = 60;

/// The cache of the last report built.
#[derive(Default)]
pub struct TransparencyCache {
    built: tokio::sync::Mutex<Option<(Instant, Arc<PublicTransparency>)>>,
}

/// The report with the detector's alerts per month (deployment-wide: an alert may rest on
/// several regions' entries).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicTransparency {
    #[serde(flatten)]
    pub report: TransparencyReport,
    /// Month (`YYYY-MM`) → severity → alerts the detector raised, for the months any region
    /// has entries in; absent on a node that runs no detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<BTreeMap<String, BTreeMap<String, u64>>>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(transparency))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TransparencyQuery {
    /// `html` (the default) or `json`.
    format: Option<String>,
}

/// The public transparency report: aggregates per region and month, each region's signed
/// checkpoint and verifier key. Rebuilt at most once a minute.
#[utoipa::path(get, path = "/transparency", tag = "transparency", params(TransparencyQuery),
    responses((status = 200, description = "the HTML page, or with format=json the report", body = PublicTransparency),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn transparency(State(state): State<AppState>, query: Result<Query<TransparencyQuery>, axum::extract::rejection::QueryRejection>) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))?;
    let json = match query.format.as_deref() {
        None | Some("html") => false,
        Some("json") => true,
        Some(other) => return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, format!("format must be html or json, not {other:?}"))),
    };
    let report = report(&state).await?;
    let cache = (header::CACHE_CONTROL, format!("public, max-age={TRANSPARENCY_CACHE_SECONDS}"));
    Ok(if json {
        ([cache], Json(report.as_ref())).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()), cache], render(&report)).into_response()
    })
}

async fn report(state: &AppState) -> Result<Arc<PublicTransparency>, ApiError> {
    let mut built = state.transparency.built.lock().await;
    if let Some((at, report)) = built.as_ref()
        && at.elapsed() < Duration::from_secs(TRANSPARENCY_CACHE_SECONDS)
    {
        return Ok(Arc::clone(report));
    }
    let gate = crate::access::gate(state)?;
    let report = gate.transparency().await?;
    let alerts = match &state.alerts {
        Some(desk) => {
            let months: BTreeSet<&String> = report.regions.iter().flat_map(|region| region.months.keys()).collect();
            let mut alerts = BTreeMap::new();
            for month in months {
                let Some((since, until)) = month_bounds(month) else { continue };
                let filter = AlertFilter { since_ms: Some(since), until_ms: Some(until), ..AlertFilter::default() };
                let counts = desk.store().alert_counts(&filter).await.map_err(service::ServiceError::from)?;
                alerts.insert(month.clone(), counts.into_iter().map(|(severity, count)| (severity.as_str().to_owned(), count)).collect());
            }
            Some(alerts)
        }
        None => None,
    };
    let report = Arc::new(PublicTransparency { report, alerts });
    *built = Some((Instant::now(), Arc::clone(&report)));
    Ok(report)
}

/// The first millisecond of a `YYYY-MM` month and of the next.
fn month_bounds(month: &str) -> Option<(i64, i64)> {
    let start = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = if start.month() == 12 { NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)? } else { NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)? };
    let ms = |date: NaiveDate| date.and_hms_opt(0, 0, 0).map(|time| time.and_utc().timestamp_millis());
    Some((ms(start)?, ms(next)?))
}

fn render(public: &PublicTransparency) -> String {
    let report = &public.report;
    let severities = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];
    let generated: DateTime<Utc> = report.generated_at;
    let body = html! {
        h1 { "Transparency report" }
        p {
            "How staff reached personal data on this platform, counted from the access logs. Aggregates only: "
            "no person, case or staff member is named. Every count below comes from a public, append-only log whose "
            "signed checkpoint is shown, so the counts can be checked against it. As of " (generated.format("%Y-%m-%d %H:%M UTC")) "."
        }
        @for region in &report.regions {
            section.region id={ "region-" (region.region) } {
                h2 { "Region " (region.region) }
                @if region.months.is_empty() {
                    p { "No access decision recorded yet." }
                } @else {
                    table {
                        thead { tr {
                            th { "Month" } th { "Access decisions" } th { "By purpose" } th { "Refused" } th { "Held for approval" }
                            th { "Second-person answers" } th { "Break-glass" } th { "Legal requests" }
                            @if public.alerts.is_some() { th { "Alerts (all regions)" } }
                        } }
                        tbody {
                            @for (month, tally) in region.months.iter().rev() {
                                tr {
                                    td { (month) }
                                    td.count { (tally.decisions_total()) }
                                    td { ul { @for (purpose, count) in &tally.purposes { li { (purpose) ": " (count) } } } }
                                    td.count { (tally.decisions.get("deny").copied().unwrap_or(0)) }
                                    td.count { (tally.decisions.get("pending").copied().unwrap_or(0)) }
                                    td { ul { @for (answer, count) in &tally.approvals { li { (answer) ": " (count) } } } }
                                    td.count { (tally.break_glass) }
                                    td.count { (tally.legal_requests()) }
                                    @if let Some(alerts) = &public.alerts {
                                        td { ul { @for severity in severities {
                                            @let count = alerts.get(month).and_then(|counts| counts.get(severity.as_str())).copied().unwrap_or(0);
                                            @if count > 0 { li { (severity.as_str()) ": " (count) } }
                                        } } }
                                    }
                                }
                            }
                        }
                    }
                }
                h3 { "Check it yourself" }
                @match &region.checkpoint {
                    Some(note) => {
                        p { "The log's latest signed checkpoint:" }
                        pre.checkpoint { (note) }
                    }
                    None => p { "No checkpoint has been signed yet." },
                }
                p { "Verify the whole log, every entry against this checkpoint, with:" }
                pre { "custos log verify --url <this server>/log/" (region.region) " --key '" (region.verifier_key) "' --entries --state audit-state" }
            }
        }
        p.small {
            "Counts are of logged decisions: a request about two people is two decisions, and one held for approval is "
            "counted again when it is decided. Legal requests are decisions for the purposes " (LEGAL_PURPOSES.join(" and ")) ". "
            "Machine-readable: " a href="/transparency?format=json" { "/transparency?format=json" } "."
        }
    };
    crate::console::document("Transparency report — custos", STYLE, body)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:90rem}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4rem;vertical-align:top;text-align:left}\
td.count{text-align:right}ul{margin:0;padding-left:1.1rem}pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}\
.small{font-size:.85em;color:#444}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_cover_the_month_and_roll_over_the_year() {
        let (start, end) = month_bounds("2026-12").unwrap();
        assert_eq!(service::month_of(service::time_from_ms(start)), "2026-12");
        assert_eq!(service::month_of(service::time_from_ms(end)), "2027-01");
        assert_eq!(service::month_of(service::time_from_ms(end - 1)), "2026-12");
        assert_eq!(month_bounds("2026-13"), None);
    }
}
