//! `GET /v1/records`: the evidence report of an actor, a case, a subject or a period for
//! compliance officers and auditors — JSON Lines with each entry's proof (the form to check),
//! CSV (for a spreadsheet) or HTML (for reading). `custos report` downloads it. Reading it is
//! logged (`record_view`, view `report`) before it is answered.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use maud::html;
use serde::Deserialize;
use service::{Caller, RecordScope, RecordsReport, TimelineItem};
use store::TimelineKind;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::alerts::COMPLIANCE_OFFICER_ROLE;
use crate::{ApiError, AppState, ErrorBody, ErrorCode};

/// The staff roles that may read records reports.
pub const RECORDS_ROLES: [&str; 2] = [COMPLIANCE_OFFICER_ROLE, "auditor"];
/// The media type of the CSV form.
pub const RECORDS_CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(records))
}

/// Exactly one of `actor`, `case`, `subject`, or both `since` and `until`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    pub actor: Option<String>,
    pub case: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339: the period's start (inclusive).
    pub since: Option<String>,
    /// RFC 3339: the period's end (exclusive).
    pub until: Option<String>,
    /// `json` (JSON Lines, the default), `csv` or `html`.
    pub format: Option<String>,
}

/// Every log entry of an actor, a case, a subject or a period below each region's latest
/// signed checkpoint, oldest first (at most 10,000: a timeline keeps its most recent, a period
/// its first), each with its entry, leaf hash and inclusion proof; the first line carries the
/// checkpoints (docs/api.md). Needs a staff token with `compliance_officer` or `auditor`.
#[utoipa::path(get, path = "/v1/records", tag = "alerts", params(RecordsQuery),
    responses((status = 200, description = "JSON Lines (default), CSV or HTML", content_type = "application/jsonl", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn records(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))?;
    let format = ReportFormat::of(&caller, "records reports", query.format.as_deref())?;
    let scope = scope(&query)?;
    let report = crate::access::gate(&state)?.records(&caller, &scope).await?;
    Ok(match format {
        ReportFormat::Csv => format.response(to_csv(&report)?),
        ReportFormat::Html => format.response(to_html(&report)),
        ReportFormat::Json => format.response_as(crate::SUBJECT_REPORT_CONTENT_TYPE, report.to_json_lines()),
    })
}

/// The form a report for compliance officers and auditors is asked in (`format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportFormat {
    Json,
    Csv,
    Html,
}

impl ReportFormat {
    /// Checks that `caller` holds one of [`RECORDS_ROLES`] (naming `what` otherwise) and
    /// reads `format` (`json` when absent).
    pub(crate) fn of(caller: &Caller, what: &str, format: Option<&str>) -> Result<ReportFormat, ApiError> {
        if !caller.roles.iter().any(|role| RECORDS_ROLES.contains(&role.as_str())) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!("{what} need the {} role; {} holds neither", RECORDS_ROLES.join(" or "), caller.id),
            ));
        }
        match format.unwrap_or("json") {
            "json" => Ok(ReportFormat::Json),
            "csv" => Ok(ReportFormat::Csv),
            "html" => Ok(ReportFormat::Html),
            other => Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, format!("query parameter `format`: json, csv or html, not {other:?}"))),
        }
    }

    /// `body` answered with this form's media type, never cached.
    pub(crate) fn response(self, body: String) -> Response {
        let content_type = match self {
            ReportFormat::Json => "application/json",
            ReportFormat::Csv => RECORDS_CSV_CONTENT_TYPE,
            ReportFormat::Html => "text/html; charset=utf-8",
        };
        self.response_as(content_type, body)
    }

    pub(crate) fn response_as(self, content_type: &'static str, body: String) -> Response {
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, no-store")], body).into_response()
    }
}

fn scope(query: &RecordsQuery) -> Result<RecordScope, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message);
    let time = |name: &str, value: &str| {
        DateTime::parse_from_rfc3339(value).map(|time| time.to_utc()).map_err(|error| invalid(format!("query parameter `{name}`: {value:?} is not an RFC 3339 time ({error})")))
    };
    let keyed = [(TimelineKind::Actor, &query.actor), (TimelineKind::Case, &query.case), (TimelineKind::Subject, &query.subject)];
    let mut given = keyed.iter().filter_map(|(kind, value)| value.as_ref().map(|value| (*kind, value.clone())));
    let first = given.next();
    let period = query.since.is_some() || query.until.is_some();
    match (first, given.next(), period) {
        (Some((kind, key)), None, false) => Ok(RecordScope::Timeline(kind, key)),
        (None, None, true) => match (&query.since, &query.until) {
            (Some(since), Some(until)) => Ok(RecordScope::Period { since: time("since", since)?, until: time("until", until)? }),
            _ => Err(invalid("a period needs both `since` and `until`".to_owned())),
        },
        _ => Err(invalid("name exactly one of `actor`, `case`, `subject`, or a period (`since` and `until`)".to_owned())),
    }
}

/// One row per record: when, where in the log, who, why, about whom, what was decided.
fn to_csv(report: &RecordsReport) -> Result<String, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let internal = |error: csv::Error| ApiError::from(service::ServiceError::Internal(format!("csv: {error}")));
    writer
        .write_record(["at", "region", "index", "type", "actor", "purpose", "case", "subject", "fields", "decision", "approved_by", "leaf_hash"])
        .map_err(internal)?;
    for line in &report.lines {
        let text = |name: &str| line.record.get(name).and_then(|value| value.as_str()).unwrap_or("").to_owned();
        let actor = ["actor", "approver", "by"].iter().find_map(|name| line.record.get(*name)?.get("id")?.as_str()).unwrap_or("").to_owned();
        let fields = line.record.get("fields").and_then(|fields| fields.as_array()).map_or_else(String::new, |fields| {
            fields
                .iter()
                .map(|field| {
                    let view = field.get("view").and_then(|view| view.as_str()).map(|view| format!(" ({view})")).unwrap_or_default();
                    format!("{}: {} → {}{view}", field["field"].as_str().unwrap_or(""), field["requested"].as_str().unwrap_or(""), field["decision"].as_str().unwrap_or(""))
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
        let subject = line.record.get("subject").and_then(|subject| subject.get("id")).and_then(|id| id.as_str()).unwrap_or("").to_owned();
        let approved_by = line.record.get("approved_by").and_then(|list| list.as_array()).map_or_else(String::new, |list| {
            list.iter().filter_map(|id| id.as_str()).collect::<Vec<_>>().join(" ")
        });
        writer
            .write_record([
                line.at.to_rfc3339(),
                line.region.clone(),
                line.index.to_string(),
                text("type"),
                actor,
                text("purpose"),
                text("case"),
                subject,
                fields,
                text("decision"),
                approved_by,
                line.leaf_hash.clone(),
            ])
            .map_err(internal)?;
    }
    let bytes = writer.into_inner().map_err(|error| internal(error.into_error().into()))?;
    String::from_utf8(bytes).map_err(|_| ApiError::from(service::ServiceError::Internal("csv is not UTF-8".to_owned())))
}

fn to_html(report: &RecordsReport) -> String {
    let header = &report.header;
    let items: Vec<TimelineItem> = report
        .lines
        .iter()
        .filter_map(|line| {
            Some(TimelineItem { region: model::RegionId::new(&line.region).ok()?, index: line.index, at_ms: line.at.timestamp_millis(), entry: line.decoded.clone()? })
        })
        .collect();
    let body = html! {
        h1 { "Records: " (header.scope) }
        p {
            (header.records) " log entries, oldest first, as of " (header.generated_at.to_rfc3339()) "."
            @if header.truncated { strong { " The report stops at " (service::RECORDS_MAX) " entries." } }
            " Each entry is proved in its region's log by the JSON form of this report (" code { "format=json" } "): its "
            "entry, leaf hash and inclusion proof against the checkpoint below."
        }
        (crate::console::entries_table(&items))
        h2 { "Checkpoints" }
        @for (region, note) in &header.checkpoints { h3 { "Region " (region) } pre { (note) } }
    };
    crate::console::document(&format!("Records: {} — custos", header.scope), crate::console::STYLE, body)
}
