//! The compliance console at `/console`: server-rendered HTML (maud, every interpolation
//! escaped; plain forms, no script, no external resources) for staff holding the
//! [`COMPLIANCE_OFFICER_ROLE`].
//!
//! - sign-in: the officer's staff JWT from the identity provider, verified exactly as the API
//!   verifies it, kept in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/console` that
//!   expires with the token; every request verifies it again;
//! - the alert queue with filters; one alert with its evidence, notes and the forms that
//!   acknowledge or resolve it (each action logged before it takes effect);
//! - timelines per actor, case and subject across the served regions, with a chart of
//!   activity per day;
//! - log health: each region's latest signed checkpoint, its witness cosignatures, the
//!   detector's and the subject index's lag;
//! - the policies in force.
//!
//! Audit the auditors: every page that shows access records (an alert's evidence, a
//! timeline) first appends a `record_view` entry to the log of each region whose records it
//! shows ([`service::Gate::timeline`], [`service::Gate::log_record_view`]); a view that cannot
//! be logged shows nothing.
//!
//! Forms are protected from cross-site posting by the `SameSite=Strict` cookie and, when the
//! browser sends one, an `Origin` header that must name this host.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use service::{ACTIVITY_BUCKET_MS, AlertView, Caller, LogEntry, NoteView, TIMELINE_PAGE_DEFAULT, Timeline, TimelineCursor, TimelineItem};
use store::{AlertAction, TimelineKind};

use crate::access::token_caller;
use crate::alerts::{AlertQuery, COMPLIANCE_OFFICER_ROLE, cursor, desk, filter, stored_alert};
use service::time_from_ms as time;
use crate::{ApiError, AppState, ErrorCode};

/// The cookie holding the signed-in officer's staff token.
pub const CONSOLE_COOKIE: &str = "custos_console";
/// Longest staff token the sign-in form takes, in bytes.
pub const CONSOLE_TOKEN_BYTES_MAX: usize = 16 * 1024;
/// The activity chart spans at least this many days, so a burst on one day is a bar, not a
/// block.
pub const CHART_DAYS_MIN: i64 = 30;
/// Alerts per page of the console's queue.
pub const CONSOLE_ALERTS_PAGE: usize = 50;

/// The console's routes (outside the OpenAPI document: they answer HTML).
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/alerts") }))
        .route("/console/alerts", get(alert_queue))
        .route("/console/alerts/{id}", get(alert_page))
        .route("/console/alerts/{id}/acknowledge", post(acknowledge))
        .route("/console/alerts/{id}/resolve", post(resolve))
        .route("/console/actors/{id}", get(actor_timeline))
        .route("/console/cases/{id}", get(case_timeline))
        .route("/console/subjects/{id}", get(subject_timeline))
        .route("/console/log", get(log_health))
        .route("/console/policies", get(policies))
        .route("/console/policies/what-if", post(what_if))
        .route("/console/processing", get(processing_record))
        .route("/console/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(state, require_officer));
    Router::new().route("/console/login", get(login_page).post(login)).merge(signed_in)
}

/// A console page's failure: an HTML page with the status and the message.
struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError(error)
    }
}

impl From<service::ServiceError> for PageError {
    fn from(error: service::ServiceError) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let error = self.0;
        let body = bare_page(
            "Error",
            html! {
                h1 { "Error " (error.status.as_u16()) }
                p.error { (error.message) }
                p { a href="/console/alerts" { "Back to the alert queue" } }
            },
        );
        (error.status, html_headers(), body).into_response()
    }
}

type PageResult = Result<Response, PageError>;

/// Checks the console cookie on every signed-in route: a valid staff token with the
/// compliance officer role puts its [`Caller`] into the request; otherwise a page request is
/// sent to sign in, and a form post is refused.
async fn require_officer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return PageError(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "a console form must be posted from the console itself"))
            .into_response();
    }
    let Some(token) = console_cookie(request.headers()) else {
        return Redirect::to("/console/login").into_response();
    };
    match token_caller(&state, &token).await {
        Ok((caller, _)) if is_officer(&caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok((caller, _)) => PageError(not_officer(&caller)).into_response(),
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            let mut response = Redirect::to("/console/login?expired=1").into_response();
            response.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            response
        }
        Err(error) => PageError(error).into_response(),
    }
}

fn is_officer(caller: &Caller) -> bool {
    caller.roles.iter().any(|role| role == COMPLIANCE_OFFICER_ROLE)
}

fn not_officer(caller: &Caller) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        format!("the console is for staff with the {COMPLIANCE_OFFICER_ROLE} role; {} does not hold it", caller.id),
    )
}

/// The console cookie's value, if the request carries one.
fn console_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CONSOLE_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// A post without `Origin` (older browsers, scripts with the cookie) passes; one naming
/// another host does not.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else { return false };
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("custos_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    expired: Option<String>,
}

async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    (StatusCode::OK, html_headers(), login_form(query.expired.is_some().then_some("Your session ended; sign in again."))).into_response()
}

fn login_form(message: Option<&str>) -> String {
    bare_page(
        "Sign in",
        html! {
            h1 { "custos compliance console" }
            @if let Some(message) = message { p.error #login-error { (message) } }
            p { "Sign in with your staff token from the identity provider (it needs the " code { (COMPLIANCE_OFFICER_ROLE) } " role)." }
            form method="post" action="/console/login" {
                label for="token" { "Staff token" }
                textarea #token name="token" rows="6" cols="80" required autocomplete="off" {}
                p { button #sign-in type="submit" { "Sign in" } }
            }
            p.small { "Every record you open here is itself written to the access log." }
        },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let refuse = |status: StatusCode, message: &str| (status, html_headers(), login_form(Some(message))).into_response();
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "the sign-in form must be posted from the console itself");
    }
    let token = form.token.trim();
    if token.is_empty() || token.len() > CONSOLE_TOKEN_BYTES_MAX || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return refuse(StatusCode::BAD_REQUEST, "that is not a staff token");
    }
    match token_caller(&state, token).await {
        Ok((caller, _)) if !is_officer(&caller) => refuse(StatusCode::FORBIDDEN, &not_officer(&caller).message),
        Ok((caller, expires_at)) => {
            let now = state.vault.clock().now();
            let max_age = (expires_at - now).num_seconds().max(0);
            tracing::info!(officer = %caller.id, "console sign-in");
            let cookie = format!("{CONSOLE_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}");
            let mut response = Redirect::to("/console/alerts").into_response();
            match HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                Err(_) => refuse(StatusCode::BAD_REQUEST, "that is not a staff token"),
            }
        }
        Err(error) => refuse(error.status, &error.message),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    response
}

/// The alert queue's filters, as the form sends them (empty fields mean "any").
#[derive(Debug, Default, Deserialize)]
struct QueueQuery {
    status: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    actor: Option<String>,
    subject: Option<String>,
    before: Option<String>,
}

async fn alert_queue(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> PageResult {
    let Query(query) = query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))?;
    let desk = desk(&state, &caller)?;
    let given = |value: &Option<String>| value.clone().filter(|value| !value.trim().is_empty());
    let api_query = AlertQuery {
        status: given(&query.status),
        severity: given(&query.severity),
        rule: given(&query.rule),
        actor: given(&query.actor),
        subject: given(&query.subject),
        before: given(&query.before),
        limit: Some(CONSOLE_ALERTS_PAGE.to_string()),
        ..AlertQuery::default()
    };
    let (mut store_filter, limit) = filter(&api_query)?;
    store_filter.limit = limit + 1;
    let mut alerts = desk.store().alerts(&store_filter).await.map_err(service::ServiceError::from)?;
    let next = (alerts.len() > limit).then(|| {
        alerts.truncate(limit);
        alerts.last().map(|last| cursor(last.at_ms, &last.id))
    });
    let alerts: Vec<AlertView> = alerts.iter().map(AlertView::new).collect();
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let next_link = next.flatten().map(|next| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("status", &query.status), ("severity", &query.severity), ("rule", &query.rule), ("actor", &query.actor), ("subject", &query.subject)] {
            if let Some(value) = given(value) {
                link.append_pair(name, &value);
            }
        }
        link.append_pair("before", &next);
        format!("/console/alerts?{}", link.finish())
    });
    Ok(page(
        &caller,
        "Alerts",
        html! {
            h1 { "Alerts" }
            form #alert-filters method="get" action="/console/alerts" {
                label { "Status " select name="status" {
                    option value="" { "any" }
                    @for status in ["open", "acknowledged", "resolved"] { option value=(status) selected[selected(&query.status, status)] { (status) } }
                } }
                label { " Severity at least " select name="severity" {
                    option value="" { "any" }
                    @for severity in ["info", "low", "medium", "high", "critical"] { option value=(severity) selected[selected(&query.severity, severity)] { (severity) } }
                } }
                label { " Rule " input name="rule" size="18" value=(query.rule.clone().unwrap_or_default()); }
                label { " Actor " input name="actor" size="12" value=(query.actor.clone().unwrap_or_default()); }
                label { " Subject " input name="subject" size="12" value=(query.subject.clone().unwrap_or_default()); }
                " " button type="submit" { "Filter" }
            }
            @if alerts.is_empty() {
                p #no-alerts { "No alert matches." }
            } @else {
                table #alerts {
                    thead { tr { th { "Triggered (UTC)" } th { "Severity" } th { "Rule" } th { "Actor" } th { "Subjects" } th { "Summary" } th { "Status" } } }
                    tbody {
                        @for alert in &alerts {
                            tr class={ "severity-" (alert.severity.as_str()) } {
                                td { a.alert-link href={ "/console/alerts/" (alert.id) } { (when(alert.at)) } }
                                td { (alert.severity.as_str()) }
                                td { (alert.rule) }
                                td { a href={ "/console/actors/" (alert.actor) } { (alert.actor) } }
                                td { @for subject in &alert.subjects { a href={ "/console/subjects/" (subject) } { (subject) } " " } }
                                td { (alert.summary) }
                                td { (alert.status.as_str()) }
                            }
                        }
                    }
                }
            }
            @if let Some(link) = next_link { p { a #next-page href=(link) { "Older alerts →" } } }
        },
    ))
}

async fn alert_page(State(state): State<AppState>, axum::Extension(caller): axum::Extension<Caller>, Path(id): Path<String>) -> PageResult {
    let gate = crate::access::gate(&state)?;
    let desk = desk(&state, &caller)?;
    let (alert, notes) = stored_alert(desk, &id).await?;
    // The evidence entries this page shows, read before the view is logged and shown after.
    let shown: Vec<(model::RegionId, u64)> = alert
        .evidence
        .iter()
        .filter_map(|reference| model::RegionId::new(&reference.region).ok().map(|region| (region, reference.index)))
        .filter(|(region, _)| state.vault.log(region).is_ok())
        .collect();
    let entries = gate.records_at(&shown).await?;
    let evidence: Vec<TimelineItem> = shown
        .iter()
        .filter_map(|(region, index)| {
            let entry = entries.get(&(region.clone(), *index))?.clone();
            Some(TimelineItem { at_ms: entry.at_ms().unwrap_or(alert.at_ms), region: region.clone(), index: *index, entry })
        })
        .collect();
    gate.log_record_view(&caller, "alert", &alert.id, &shown).await?;
    let view = AlertView::new(&alert);
    let notes: Vec<NoteView> = notes.iter().map(NoteView::new).collect();
    let open = view.status == store::AlertStatus::Open;
    let resolved = view.status == store::AlertStatus::Resolved;
    Ok(page(
        &caller,
        "Alert",
        html! {
            h1 { "Alert: " (view.rule) }
            table.facts {
                tr { th { "Severity" } td #alert-severity { (view.severity.as_str()) } }
                tr { th { "Status" } td #alert-status { (view.status.as_str()) } }
                tr { th { "Actor" } td { a #actor-link href={ "/console/actors/" (view.actor) } { (view.actor) } " (timeline)" } }
                tr { th { "Subjects" } td { @for subject in &view.subjects { a href={ "/console/subjects/" (subject) } { (subject) } " " } } }
                tr { th { "Triggered" } td { (when(view.at)) } }
                tr { th { "Raised" } td { (when(view.raised_at)) } }
                tr { th { "Summary" } td #alert-summary { (view.summary) } }
                tr { th { "Alert id" } td { code { (view.id) } } }
            }
            h2 { "Evidence" }
            p.small { "The log entries the alert rests on. Their proofs: " code { "GET /v1/alerts/" (view.id) } "." }
            (entries_table(&evidence))
            h2 { "Notes" }
            @if notes.is_empty() { p { "None yet." } }
            ul #notes { @for note in &notes { li { (when(note.at)) " — " (note.by) " " strong { (note.action.as_str()) } ": " (note.note) } } }
            @if !resolved {
                @if open {
                    form #acknowledge method="post" action={ "/console/alerts/" (view.id) "/acknowledge" } {
                        label { "Note " input name="note" size="60"; }
                        " " button type="submit" { "Acknowledge" }
                    }
                }
                form #resolve method="post" action={ "/console/alerts/" (view.id) "/resolve" } {
                    label { "Resolution " input #resolve-note name="note" size="60" required; }
                    " " button #resolve-button type="submit" { "Resolve" }
                }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
struct NoteForm {
    #[serde(default)]
    note: String,
}

async fn acknowledge(state: State<AppState>, caller: axum::Extension<Caller>, id: Path<String>, Form(form): Form<NoteForm>) -> PageResult {
    act(state, caller, id, AlertAction::Acknowledge, form.note).await
}

async fn resolve(state: State<AppState>, caller: axum::Extension<Caller>, id: Path<String>, Form(form): Form<NoteForm>) -> PageResult {
    act(state, caller, id, AlertAction::Resolve, form.note).await
}

async fn act(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    action: AlertAction,
    note: String,
) -> PageResult {
    let desk = desk(&state, &caller)?;
    desk.act(&caller, &id, action, note.trim()).await?;
    Ok(Redirect::to(&format!("/console/alerts/{}", form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>())).into_response())
}

#[derive(Debug, Deserialize)]
struct TimelineQuery {
    before: Option<String>,
}

async fn actor_timeline(state: State<AppState>, caller: axum::Extension<Caller>, id: Path<String>, query: Query<TimelineQuery>) -> PageResult {
    timeline_page(state, caller, TimelineKind::Actor, id, query).await
}

async fn case_timeline(state: State<AppState>, caller: axum::Extension<Caller>, id: Path<String>, query: Query<TimelineQuery>) -> PageResult {
    timeline_page(state, caller, TimelineKind::Case, id, query).await
}

async fn subject_timeline(state: State<AppState>, caller: axum::Extension<Caller>, id: Path<String>, query: Query<TimelineQuery>) -> PageResult {
    timeline_page(state, caller, TimelineKind::Subject, id, query).await
}

async fn timeline_page(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    kind: TimelineKind,
    Path(key): Path<String>,
    Query(query): Query<TimelineQuery>,
) -> PageResult {
    let gate = crate::access::gate(&state)?;
    let cursor = TimelineCursor::parse(query.before.as_deref().unwrap_or(""))?;
    let timeline = gate.timeline(&caller, kind, &key, &cursor, TIMELINE_PAGE_DEFAULT).await?;
    Ok(page(&caller, &format!("Timeline of {} {key}", kind.as_str()), render_timeline(&timeline)))
}

/// A timeline page: the chart of the whole timeline, then one page of entries.
pub(crate) fn render_timeline(timeline: &Timeline) -> Markup {
    let path = match timeline.kind {
        TimelineKind::Actor => "actors",
        TimelineKind::Case => "cases",
        TimelineKind::Subject => "subjects",
        TimelineKind::Tally => "tallies",
    };
    let next = timeline.next.as_ref().map(|next| {
        format!("/console/{path}/{}?before={}", form_urlencoded::byte_serialize(timeline.key.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(next.to_string().as_bytes()).collect::<String>())
    });
    html! {
        h1 #timeline-title { "Timeline of " (timeline.kind.as_str()) " " code { (timeline.key) } }
        p { (timeline.total) " log entries in all; newest first. What the actor asked for, why, what was granted or refused, and who approved." }
        (activity_chart(&timeline.activity))
        (entries_table(&timeline.items))
        @if let Some(next) = next { p { a #next-page href=(next) { "Older entries →" } } }
    }
}

/// Log entries as table rows: time, where in the log, who, why, about whom, what was asked
/// and decided.
pub(crate) fn entries_table(items: &[TimelineItem]) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { "No log entries." }
        } @else {
            table.entries {
                thead { tr { th { "When (UTC)" } th { "Log entry" } th { "Who" } th { "Why" } th { "About" } th { "Asked → decided" } th { "Decision" } } }
                tbody { @for item in items { (entry_row(item)) } }
            }
        }
    }
}

fn entry_row(item: &TimelineItem) -> Markup {
    let at = time(item.at_ms);
    let actor_link = |id: &str| html! { a href={ "/console/actors/" (id) } { (id) } };
    html! {
        @match &item.entry {
            LogEntry::Access(access) => {
                tr class={ "decision-" (access.decision) } {
                    td { (when(at)) }
                    td { code { (item.region) "/" (item.index) } }
                    td {
                        (actor_link(&access.actor.id))
                        br; small { (access.actor.roles.join(", ")) }
                        @if !access.actor.entity.is_empty() { br; small { (access.actor.entity) } }
                        @if !access.actor.from_country.is_empty() { br; small { "from " (access.actor.from_country) } }
                    }
                    td {
                        (access.action) " for " (access.purpose)
                        @if let Some(case) = &access.case { br; "case " a href={ "/console/cases/" (case) } { (case) } }
                        @if !access.justification.is_empty() { br; em { (access.justification) } }
                        @if access.break_glass { br; strong { "break-glass" } }
                    }
                    td {
                        @if access.subject.id.is_empty() { "(a search that matched nobody)" } @else {
                            a href={ "/console/subjects/" (access.subject.id) } { (access.subject.id) }
                        }
                        " " small { (access.subject.region) }
                        @if !access.subject.labels.is_empty() { br; small.labels { (access.subject.labels.join(", ")) } }
                        @if access.cross_border { br; small.cross-border { "cross-border" } }
                    }
                    td {
                        ul {
                            @for field in &access.fields {
                                li { (field.field) ": " (field.requested) " → " (field.decision)
                                    @if let Some(view) = &field.view { " (" (view) ")" }
                                    @if !field.needs.is_empty() { " needs " (field.needs.join(" + ")) } }
                            }
                        }
                    }
                    td {
                        strong { (access.decision) }
                        @if !access.approved_by.is_empty() { br; "approved by " (access.approved_by.join(", ")) }
                        @if !access.reasons.is_empty() { br; small { (access.reasons.join("; ")) } }
                        br; small.policies { (access.policies.join(", ")) }
                    }
                }
            }
            LogEntry::Approval(approval) => {
                tr.approval {
                    td { (when(at)) } td { code { (item.region) "/" (item.index) } }
                    td { (actor_link(&approval.approver.id)) br; small { (approval.approver.roles.join(", ")) } }
                    td { "approval of request " code { (approval.request) } " by " (actor_link(&approval.requester)) }
                    td { (approval.subjects.join(", ")) }
                    td { @if !approval.satisfies.is_empty() { "satisfies " (approval.satisfies.join(", ")) } @if !approval.note.is_empty() { br; em { (approval.note) } } }
                    td { strong { (approval.decision) } @if !approval.reasons.is_empty() { br; small { (approval.reasons.join("; ")) } } }
                }
            }
            LogEntry::AlertAction(action) => {
                tr.alert-action {
                    td { (when(at)) } td { code { (item.region) "/" (item.index) } }
                    td { (actor_link(&action.by.id)) }
                    td { (action.action) " alert " a href={ "/console/alerts/" (action.alert) } { (action.rule) } }
                    td { (actor_link(&action.alert_actor)) }
                    td { em { (action.note) } }
                    td { (action.action) }
                }
            }
            LogEntry::RecordView(view) => {
                tr.record-view {
                    td { (when(at)) } td { code { (item.region) "/" (item.index) } }
                    td { (actor_link(&view.by.id)) }
                    td { "viewed " (view.view.replace('_', " ")) }
                    td { code { (view.target) } }
                    td { (view.shown.iter().map(|range| range[1] - range[0] + 1).sum::<u64>()) " records of this region" }
                    td { "view" }
                }
            }
            LogEntry::Other { kind } => {
                tr { td { (when(at)) } td { code { (item.region) "/" (item.index) } } td colspan="5" { "an entry of kind " (kind) } }
            }
        }
    }
}

/// Activity per day as an inline SVG bar chart (no script): one bar per day over at least
/// [`CHART_DAYS_MIN`] days ending on the last day with activity, each with its date and count
/// as a tooltip.
fn activity_chart(activity: &[(i64, u64)]) -> Markup {
    const WIDTH: f64 = 900.0;
    const HEIGHT: f64 = 120.0;
    let (Some(&(first, _)), Some(&(last, _))) = (activity.first(), activity.last()) else {
        return html! { p.chart-empty { "No activity." } };
    };
    let first = first.min(last - (CHART_DAYS_MIN - 1) * ACTIVITY_BUCKET_MS);
    let days = ((last - first) / ACTIVITY_BUCKET_MS + 1) as f64;
    let most = activity.iter().map(|(_, count)| *count).max().unwrap_or(1).max(1) as f64;
    let bar = (WIDTH / days).max(1.0);
    let day = |ms: i64| time(ms).format("%Y-%m-%d").to_string();
    html! {
        figure #activity {
            svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT + 20.0) role="img" aria-label="activity per day" {
                @for (bucket, count) in activity {
                    @let x = ((bucket - first) / ACTIVITY_BUCKET_MS) as f64 * WIDTH / days;
                    @let height = (*count as f64 / most * HEIGHT).max(1.0);
                    rect x=(format!("{x:.1}")) y=(format!("{:.1}", HEIGHT - height)) width=(format!("{:.1}", (bar * 0.8).max(0.5))) height=(format!("{height:.1}")) fill="#4a6fa5" {
                        title { (day(*bucket)) ": " (count) }
                    }
                }
                text x="0" y=(HEIGHT + 15.0) font-size="11" { (day(first)) }
                text x=(WIDTH) y=(HEIGHT + 15.0) font-size="11" text-anchor="end" { (day(last)) }
                text x="0" y="11" font-size="11" { "max " (most) " per day" }
            }
            figcaption { "Log entries per day (UTC)." }
        }
    }
}

async fn log_health(State(state): State<AppState>, axum::Extension(caller): axum::Extension<Caller>) -> PageResult {
    struct Region {
        region: String,
        origin: String,
        size: u64,
        checkpoint: Result<String, String>,
        witnessing: Option<service::Witnessing>,
        indexed: Option<u64>,
    }
    let mut regions = Vec::new();
    for region in state.vault.regions() {
        let log = state.vault.log(region)?;
        let size = log.size().await?;
        let checkpoint = log.checkpoint().await.map_err(|error| error.to_string());
        let witnessing = log.witnessing().await.ok();
        let indexed = match log.subject_index() {
            Ok(index) => Some(index.subject_index_cursor().await.map_err(service::ServiceError::from)?),
            Err(_) => None,
        };
        regions.push(Region { region: region.to_string(), origin: log.origin().to_owned(), size, checkpoint, witnessing, indexed });
    }
    let detector = match &state.alerts {
        Some(desk) => Some((desk.lag().await?, desk.checkpoint_saved_at_ms().await)),
        None => None,
    };
    Ok(page(
        &caller,
        "Log health",
        html! {
            h1 { "Log health" }
            @for region in &regions {
                section.region id={ "region-" (region.region) } {
                    h2 { "Region " (region.region) }
                    table.facts {
                        tr { th { "Origin" } td { code { (region.origin) } } }
                        tr { th { "Entries (durable)" } td { (region.size) } }
                        @if let Some(witnessing) = &region.witnessing {
                            tr { th { "Signed checkpoint" } td { "size " (witnessing.size) ", " (region.size.saturating_sub(witnessing.size)) " entries not yet covered" } }
                            tr { th { "Witnesses" } td {
                                (witnessing.cosigners.len()) " of quorum " (witnessing.quorum)
                                @if !witnessing.cosigners.is_empty() { ": " (witnessing.cosigners.join(", ")) }
                                " — " @if witnessing.witnessed { strong { "witnessed" } } @else { strong.warn { "not witnessed" } }
                            } }
                        }
                        @if let Some(indexed) = region.indexed { tr { th { "Subject and timeline index" } td { (region.size.saturating_sub(indexed)) " entries behind" } } }
                    }
                    @match &region.checkpoint {
                        Ok(note) => pre.checkpoint { (note) },
                        Err(error) => p.warn { "No checkpoint: " (error) },
                    }
                }
            }
            h2 { "Detector" }
            @match &detector {
                None => p.warn { "No detector runs on this node." },
                Some((lag, saved)) => {
                    ul #detector-lag { @for (region, entries) in lag { li { "region " (region) ": " (entries) " entries not yet read" } } }
                    p { "Checkpoint saved " @match saved.and_then(DateTime::from_timestamp_millis) { Some(at) => (when(at)), None => "never" } "." }
                }
            }
            p.small { "Check a checkpoint yourself: " code { "custos log verify --url <this server> --region <region> --key <verifier key>" } }
        },
    ))
}

async fn policies(State(state): State<AppState>, axum::Extension(caller): axum::Extension<Caller>) -> PageResult {
    let gate = crate::access::gate(&state)?;
    let text = gate.engine().sources().iter().map(|(file, text)| format!("// file: {file}\n{text}")).collect::<Vec<_>>().join("\n");
    Ok(page(&caller, "Policies", policies_page(&gate.engine().policy_ids(), &text, 7, None)))
}

/// The policies in force, the "what if" form (prefilled with `proposed`) and, after a run,
/// its outcome or the reason the proposed set was refused.
fn policies_page(ids: &[String], proposed: &str, days: u32, outcome: Option<Result<&service::WhatIf, String>>) -> Markup {
    html! {
        h1 { "Policies in force" }
        p { (ids.len()) " Cedar policies decide every access (docs/policy.md). Decisions name the policies that decided." }
        details { summary { "Policy ids" } ul #policy-ids { @for id in ids { li { code { (id) } } } } }
        h2 { "What if" }
        p {
            "Edit the set and decide the last days' access decisions again under it: every field whose outcome would "
            "change is listed. Nothing is put in force; the decisions shown are logged as a view."
        }
        form #what-if method="post" action="/console/policies/what-if" {
            textarea #proposed name="policies" rows="24" cols="120" spellcheck="false" { (proposed) }
            p {
                label { "Days " input #days name="days" type="number" min="1" max=(service::WHAT_IF_DAYS_MAX) value=(days); }
                " " button #what-if-button type="submit" { "Decide again" }
            }
        }
        @match outcome {
            None => {}
            Some(Err(message)) => p.error #what-if-error { "The proposed set was refused: " (message) },
            Some(Ok(what_if)) => {
                p #what-if-summary {
                    (what_if.entries) " access decisions of the last " (what_if.days) " days decided again ("
                    (what_if.fields) " fields) under the set in force and under the proposed one: " strong { (what_if.changed) " would change" } "."
                    @if what_if.truncated { " Only the first " (service::WHAT_IF_ENTRIES_MAX) " decisions were read." }
                    @if what_if.unreproduced > 0 {
                        " " (what_if.unreproduced) " fields are no longer decided as logged even by the set in force (a case or the set changed since); they are compared on today's facts."
                    }
                }
                @if !what_if.changes.is_empty() {
                    table #what-if-changes {
                        thead { tr { th { "When (UTC)" } th { "Log entry" } th { "Actor" } th { "Purpose, case" } th { "Subject" } th { "Field asked" } th { "Logged" } th { "Set in force" } th { "Would be" } } }
                        tbody {
                            @for change in &what_if.changes {
                                tr {
                                    td { (when(time(change.at_ms))) }
                                    td { code { (change.region) "/" (change.index) } }
                                    td { a href={ "/console/actors/" (change.actor) } { (change.actor) } }
                                    td { (change.purpose) @if let Some(case) = &change.case { br; a href={ "/console/cases/" (case) } { (case) } } }
                                    td { a href={ "/console/subjects/" (change.subject) } { (change.subject) } }
                                    td { (change.field) ": " (change.requested) }
                                    td { (change.logged) }
                                    td { (change.before) }
                                    td { strong { (change.after) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct WhatIfForm {
    policies: String,
    days: u32,
}

async fn what_if(State(state): State<AppState>, axum::Extension(caller): axum::Extension<Caller>, Form(form): Form<WhatIfForm>) -> PageResult {
    let gate = crate::access::gate(&state)?;
    let ids = gate.engine().policy_ids();
    let outcome = match gate.what_if_text(&caller, &form.policies, form.days).await {
        Ok(what_if) => Ok(what_if),
        Err(service::ServiceError::InvalidRequest { field, message }) if field == "policies" => Err(message),
        Err(error) => return Err(error.into()),
    };
    let body = policies_page(&ids, &form.policies, form.days, Some(outcome.as_ref().map_err(Clone::clone)));
    Ok(page(&caller, "Policies — what if", body))
}

/// The record of processing (GDPR Art. 30), as `GET /v1/processing?format=html` gives it.
/// It shows no access records, so it is not a `record_view`.
async fn processing_record(State(state): State<AppState>, axum::Extension(caller): axum::Extension<Caller>) -> PageResult {
    let record = crate::processing::record(&state).await?;
    Ok(page(&caller, "Record of processing", crate::processing::record_markup(&record)))
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn html_headers() -> [(header::HeaderName, &'static str); 3] {
    [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "private, no-store"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    ]
}

/// A signed-in page: navigation, the officer's id, the sign-out form.
fn page(caller: &Caller, title: &str, body: Markup) -> Response {
    let markup = html! {
        nav {
            a href="/console/alerts" { "Alerts" } " · "
            a href="/console/log" { "Log health" } " · "
            a href="/console/policies" { "Policies" } " · "
            a href="/console/processing" { "Record of processing" } " · "
            form.inline method="post" action="/console/logout" { button type="submit" { "Sign out" } }
            span.who { "signed in as " strong #officer { (caller.id) } }
        }
        main { (body) }
    };
    (StatusCode::OK, html_headers(), bare_page(title, markup)).into_response()
}

fn bare_page(title: &str, body: Markup) -> String {
    document(&format!("{title} — custos console"), STYLE, body)
}

/// A whole HTML page: the skeleton every server-rendered page of custos shares (no script, no
/// external resource; the style inline).
pub(crate) fn document(title: &str, style: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(style)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:95rem}\
nav{border-bottom:1px solid #ccc;padding-bottom:.5rem;margin-bottom:1rem}nav .who{float:right}\
form.inline{display:inline}table{border-collapse:collapse;width:100%;margin-bottom:1rem}\
td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}table.facts{width:auto}\
ul{margin:0;padding-left:1.1rem}.small,small{font-size:.85em;color:#444}.error,.warn{color:#a00}\
.severity-critical td:nth-child(2),.severity-high td:nth-child(2){color:#a00;font-weight:bold}\
.decision-deny{background:#fbecec}.decision-pending{background:#fff6d5}.record-view{background:#eef3fb}\
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}figure{margin:0 0 1rem 0}";
