//! The HTTP face of custos: the axum [`app`], service-token authentication, JSON errors with
//! stable codes, Prometheus metrics and the OpenAPI document generated from the handlers.

mod access;
mod alerts;
mod console;
mod directory;
mod error;
mod ingest;
mod log;
mod metrics_layer;
mod processing;
mod records;
mod subject_page;
mod subjects;
mod transparency;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use service::{Gate, ServiceToken, Vault};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use alerts::{ALERT_FILTER_BYTES_MAX, ALERTS_LIMIT_DEFAULT, ALERTS_LIMIT_MAX, COMPLIANCE_OFFICER_ROLE, EVIDENCE_PROOFS_MAX};
pub use console::{CONSOLE_ALERTS_PAGE, CONSOLE_COOKIE, CONSOLE_TOKEN_BYTES_MAX};
pub use error::{ApiError, ApiJson, ErrorBody, ErrorCode};
pub use log::{
    CHECKPOINT_CACHE_CONTROL, FULL_BUNDLE_CACHE_CONTROL, FULL_TILE_CACHE_CONTROL, PARTIAL_BUNDLE_CACHE_CONTROL,
    PARTIAL_TILE_CACHE_CONTROL,
};
pub use metrics_layer::prometheus_handle;
pub use records::{RECORDS_CSV_CONTENT_TYPE, RECORDS_ROLES};
pub use subjects::SUBJECT_REPORT_CONTENT_TYPE;
pub use transparency::{PublicTransparency, TRANSPARENCY_CACHE_SECONDS, TransparencyCache};

/// Largest request body accepted, in bytes.
pub const REQUEST_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Everything a request handler may use.
#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub service_tokens: Arc<Vec<ServiceToken>>,
    /// Access control (cases, staff directory, decisions); absent on a node that only
    /// ingests and serves its logs.
    pub gate: Option<Arc<Gate>>,
    /// Verifies staff and machine bearer tokens (JWTs); absent when no identity provider is
    /// configured, and then the staff routes answer 503.
    pub identity: Option<auth::TokenVerifier>,
    /// The detector's alert desk; absent on a node that runs no detector, and then the alert
    /// routes answer 503 `detector_unavailable`.
    pub alerts: Option<Arc<service::AlertDesk>>,
    /// The last public transparency report built (`/transparency`).
    pub transparency: Arc<transparency::TransparencyCache>,
    /// The configuration the record of processing is generated from (`/v1/processing`);
    /// absent when the node was built without one (embedded use, some tests), and then the
    /// route answers 503 `processing_unavailable`.
    pub processing: Option<Arc<processing::ProcessingSource>>,
}

impl AppState {
    /// The state for a node with access control: the gate's vault, the service tokens and
    /// the identity provider's verifier.
    pub fn with_gate(gate: Arc<Gate>, service_tokens: Vec<ServiceToken>, identity: Option<auth::TokenVerifier>) -> AppState {
        AppState {
            vault: Arc::clone(gate.vault()),
            service_tokens: Arc::new(service_tokens),
            gate: Some(gate),
            identity,
            alerts: None,
            transparency: Arc::default(),
            processing: None,
        }
    }

    /// This state with the record of processing generated from `config`.
    pub fn with_config(mut self, config: service::Config) -> AppState {
        self.processing = Some(Arc::new(processing::ProcessingSource::new(config)));
        self
    }

    /// This state with the alert routes served by `desk`.
    pub fn with_alerts(mut self, desk: Arc<service::AlertDesk>) -> AppState {
        self.alerts = Some(desk);
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "custos", description = "Purpose-bound, logged, minimized access to personal data."),
    modifiers(&SecuritySchemes),
    // The tile route has a wildcard path, so it is routed outside `routes!` (see `app`).
    paths(log::tile),
    tags((name = "ingest", description = "Platform services write subjects and values."),
         (name = "access", description = "Staff ask for data for a purpose on a case; colleagues approve. Every decision is logged before any value is decrypted; answers carry log receipts."),
         (name = "directory", description = "Platform integrations register cases and keep the staff directory."),
         (name = "alerts", description = "Compliance officers (staff token with the compliance_officer role) review the detector's alerts: list and filter them, see one with its notes and a tlog-proof of each log entry it rests on, acknowledge and resolve them (each action logged first), export one as an OCSF Detection Finding, and watch the detector's lag."),
         (name = "log", description = "Each region's access log: C2SP tlog-tiles under /log/{region}/ (checkpoint and hash tiles public; entry bundles need a service token or a staff token with the auditor role), proofs (inclusion, consistency, tlog-proof for a receipt) and signing under /v1/log/{region}/."),
         (name = "subjects", description = "A data subject's own view: the platform exchanges its user's session for a short-lived subject token (machine identity with an exchange role); with it the subject reads every access to their data, with receipts and inclusion proofs against a signed checkpoint, as JSON Lines or HTML."),
         (name = "transparency", description = "The public transparency report: per region and month, access decisions by purpose, refusals, approvals, break-glass uses, legal requests and alerts by severity — aggregates only — with each region's signed checkpoint and verifier key."),
         (name = "operations", description = "Health, metrics and this document."))
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("service_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        let mut staff = Http::new(HttpAuthScheme::Bearer);
        staff.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("staff_token", SecurityScheme::Http(staff));
        let mut subject = Http::new(HttpAuthScheme::Bearer);
        subject.bearer_format = Some("custos subject token".to_owned());
        components.add_security_scheme("subject_token", SecurityScheme::Http(subject));
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api_router(state.clone()).split_for_parts();
    let openapi = Arc::new(openapi);
    Router::new()
        .merge(api)
        .merge(console::routes(state.clone()))
        .route("/log/{region}/tile/{*path}", get(log::tile))
        .route("/openapi.json", get(move || openapi_json(Arc::clone(&openapi))))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .route_layer(middleware::from_fn(metrics_layer::record))
        .with_state(state)
}

/// The OpenAPI document, as `/openapi.json` serves it.
pub fn openapi(state: AppState) -> utoipa::openapi::OpenApi {
    api_router(state).split_for_parts().1
}

fn api_router(state: AppState) -> OpenApiRouter<AppState> {
    let authenticated = ingest::routes()
        .merge(directory::routes())
        .merge(log::authenticated_routes())
        .layer(middleware::from_fn_with_state(state.clone(), ingest::require_service_token));
    let staff = access::routes()
        .merge(alerts::routes())
        .merge(records::routes())
        .merge(processing::routes())
        .merge(subjects::exchange_routes())
        .layer(middleware::from_fn_with_state(state, access::require_identity));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(authenticated)
        .merge(staff)
        .merge(log::public_routes())
        .merge(subjects::subject_routes())
        .merge(transparency::routes())
}

async fn openapi_json(openapi: Arc<utoipa::openapi::OpenApi>) -> impl IntoResponse {
    axum::Json(openapi.as_ref().clone())
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let regions: Vec<String> = state.vault.regions().map(ToString::to_string).collect();
    axum::Json(serde_json::json!({ "status": "ok", "regions": regions }))
}

async fn metrics() -> impl IntoResponse {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus_handle().render())
}
