//! `GET /v1/processing`: the record of processing activities (GDPR Art. 30) generated from
//! this node's configuration and the policy set in force (`service::processing_record`), for
//! compliance officers and auditors — JSON (the whole record), CSV (one row per purpose and
//! field, for a spreadsheet) or HTML (for reading and printing). `custos report --processing`
//! downloads it. Both inputs are fixed for the life of the process, so the record is built
//! once, on a blocking thread, at the first request.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use service::{Caller, ProcessingRecord};
use tokio::sync::OnceCell;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::records::ReportFormat;
use crate::{ApiError, AppState, ErrorBody, ErrorCode};

/// What the record is generated from, and the record once generated.
#[derive(Debug)]
pub struct ProcessingSource {
    config: service::Config,
    record: OnceCell<Arc<ProcessingRecord>>,
}

impl ProcessingSource {
    pub fn new(config: service::Config) -> ProcessingSource {
        ProcessingSource { config, record: OnceCell::new() }
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(processing))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProcessingQuery {
    /// `json` (the default), `csv` or `html`.
    pub format: Option<String>,
}

/// The record of processing activities: the controller's statements from `[processing]` in
/// custos.toml, and what custos enforces read off the deployment — each purpose's roles,
/// reachable subjects, fields at their highest view, exports and what may leave a region,
/// probed from the policy set in force — with the regions, recipients, retention, security
/// measures and every statement still missing (`gaps`). docs/processing.md describes it.
/// Needs a staff token with `compliance_officer` or `auditor`.
#[utoipa::path(get, path = "/v1/processing", tag = "alerts", params(ProcessingQuery),
    responses((status = 200, description = "JSON (default), CSV or HTML", content_type = "application/json", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("staff_token" = [])))]
async fn processing(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Result<Query<ProcessingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))?;
    let format = ReportFormat::of(&caller, "records of processing", query.format.as_deref())?;
    let record = record(&state).await?;
    Ok(match format {
        ReportFormat::Csv => format.response(to_csv(&record)?),
        ReportFormat::Html => format.response(to_html(&record)),
        ReportFormat::Json => format.response(serde_json::to_string_pretty(&*record).map_err(|error| ApiError::from(service::ServiceError::Internal(error.to_string())))?),
    })
}

/// The record, built at the first call.
pub(crate) async fn record(state: &AppState) -> Result<Arc<ProcessingRecord>, ApiError> {
    let gate = crate::access::shared_gate(state)?;
    let Some(source) = state.processing.clone() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ProcessingUnavailable, "this node was started without its configuration"));
    };
    let built = source
        .record
        .get_or_try_init(|| async {
            let source = Arc::clone(&source);
            let gate = Arc::clone(&gate);
            tokio::task::spawn_blocking(move || Arc::new(service::processing_record(&source.config, gate.engine(), gate.vault().clock().now())))
                .await
                .map_err(|error| ApiError::from(service::ServiceError::Internal(format!("building the record of processing: {error}"))))
        })
        .await?;
    Ok(Arc::clone(built))
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("—")
}

/// One row per purpose and field: who, for whom, how much, where to, how long.
fn to_csv(record: &ProcessingRecord) -> Result<String, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let internal = |error: csv::Error| ApiError::from(service::ServiceError::Internal(format!("csv: {error}")));
    writer
        .write_record([
            "purpose", "description", "legal_basis", "actors", "roles", "subjects", "field", "view", "with_approval", "approvals", "search", "export",
            "leaves_region", "retention", "recipients",
        ])
        .map_err(internal)?;
    for purpose in &record.purposes {
        let subjects = purpose
            .subjects
            .iter()
            .map(|subject| if subject.approvals.is_empty() { subject.category.clone() } else { format!("{} ({})", subject.category, subject.approvals.join(" + ")) })
            .collect::<Vec<_>>()
            .join("; ");
        for field in &purpose.fields {
            let retention = record.personal_data.iter().find(|category| category.field == field.field).and_then(|category| category.retention.clone());
            writer
                .write_record([
                    purpose.purpose.clone(),
                    purpose.description.clone().unwrap_or_default(),
                    purpose.legal_basis.clone().unwrap_or_default(),
                    purpose.actors.join("; "),
                    purpose.roles.join("; "),
                    subjects.clone(),
                    field.field.clone(),
                    field.view.clone().unwrap_or_default(),
                    field.with_approval.clone().unwrap_or_default(),
                    field.approvals.join(" + "),
                    field.search.to_string(),
                    field.export.clone().unwrap_or_default(),
                    field.leaves_region.clone().unwrap_or_default(),
                    retention.unwrap_or_default(),
                    purpose.recipients.join("; "),
                ])
                .map_err(internal)?;
        }
    }
    let bytes = writer.into_inner().map_err(|error| internal(error.into_error().into()))?;
    String::from_utf8(bytes).map_err(|_| ApiError::from(service::ServiceError::Internal("csv is not UTF-8".to_owned())))
}

fn to_html(record: &ProcessingRecord) -> String {
    crate::console::document("Record of processing activities", crate::console::STYLE, record_markup(record))
}

/// The record for reading: the downloadable page and the console's.
pub(crate) fn record_markup(record: &ProcessingRecord) -> Markup {
    let controller = &record.controller;
    html! {
        h1 { "Record of processing activities" }
        p.small {
            "GDPR Art. 30(1), generated by custos on " (record.generated_at.to_rfc3339())
            " from this deployment's configuration and the policy set in force (" (record.policy_set.policies) " policies, SHA-256 "
            code { (record.policy_set.sha256) } "). What each purpose reveals is what the access engine decides, read off the policies."
        }
        @if !record.gaps.is_empty() {
            h2.warn { "Not yet stated (" (record.gaps.len()) ")" }
            ul { @for gap in &record.gaps { li { (gap) } } }
        }
        h2 { "Controller" }
        table.facts {
            tr { th { "Controller" } td { (or_dash(controller.name.as_deref())) } }
            tr { th { "Contact" } td { (or_dash(controller.contact.as_deref())) } }
            tr { th { "Data protection officer" } td { (or_dash(controller.dpo.as_deref())) } }
            tr { th { "Representative (Art. 27)" } td { (or_dash(controller.representative.as_deref())) } }
        }
        h2 { "Data subjects" }
        p {
            @if record.data_subjects.categories.is_empty() { "—" } @else { (record.data_subjects.categories.join("; ")) }
            ". Protected, needing a second person before staff see anything: " (record.data_subjects.protected_labels.join(", ")) "."
        }
        h2 { "Purposes" }
        @for purpose in &record.purposes {
            h3 { (purpose.purpose) }
            table.facts {
                tr { th { "Description" } td { (or_dash(purpose.description.as_deref())) } }
                tr { th { "Legal basis" } td { (or_dash(purpose.legal_basis.as_deref())) } }
                tr { th { "Who" } td { (purpose.actors.join(", ")) ": " (purpose.roles.join(", ")) } }
                tr { th { "Subjects reached" } td {
                    @for (at, subject) in purpose.subjects.iter().enumerate() {
                        @if at > 0 { ", " }
                        (subject.category)
                        @if !subject.approvals.is_empty() { " (" (subject.approvals.join(" + ")) " approval)" }
                    }
                } }
                tr { th { "Account control" } td { @if purpose.account_control { "yes, on a case the subject opened" } @else { "no" } } }
                tr { th { "Break-glass" } td { @if purpose.break_glass.is_empty() { "no" } @else { "by " (purpose.break_glass.join(", ")) } } }
                tr { th { "Recipients outside the platform" } td { @if purpose.recipients.is_empty() { "none named" } @else { (purpose.recipients.join(", ")) } } }
                tr { th { "Policies" } td { (purpose.policies.join(", ")) } }
            }
            table {
                tr { th { "Field" } th { "Highest view" } th { "With approval" } th { "Search" } th { "Export" } th { "Leaves the region (custodian)" } }
                @for field in &purpose.fields {
                    tr {
                        td { (field.field) }
                        td { (or_dash(field.view.as_deref())) }
                        td { @if let Some(view) = &field.with_approval { (view) " (" (field.approvals.join(" + ")) ")" } @else { "—" } }
                        td { @if field.search { "yes" } @else { "—" } }
                        td { (or_dash(field.export.as_deref())) }
                        td { (or_dash(field.leaves_region.as_deref())) }
                    }
                }
            }
        }
        h2 { "Categories of personal data and retention" }
        table {
            tr { th { "Field" } th { "Views, coarse to exact" } th { "Kept" } }
            @for category in &record.personal_data {
                tr { td { (category.field) } td { (category.views.join(", ")) } td { (or_dash(category.retention.as_deref())) } }
            }
        }
        h2 { "Recipients and transfers" }
        @if record.recipients.is_empty() {
            p { "No recipients outside the platform's own staff and services are stated." }
        } @else {
            table {
                tr { th { "Recipient" } th { "Kind" } th { "Country" } th { "Purposes" } th { "Third-country transfer" } th { "Safeguards" } }
                @for recipient in &record.recipients {
                    tr {
                        td { (recipient.name) } td { (recipient.kind) } td { (recipient.country) } td { (recipient.purposes.join(", ")) }
                        td { @if recipient.transfer { "yes" } @else { "no" } }
                        td { (or_dash(recipient.safeguards.as_deref())) }
                    }
                }
            }
        }
        h2 { "Regions" }
        table {
            tr { th { "Region" } th { "Countries" } th { "Storage" } th { "Key custody" } th { "Access log" } }
            @for region in &record.regions {
                tr { td { (region.region) } td { (region.countries.join(", ")) } td { (region.storage) } td { (region.key_custody) } td { code { (region.log_origin) } } }
            }
        }
        h2 { "Technical and organisational measures" }
        ul { @for measure in &record.security_measures { li { (measure) } } }
    }
}
