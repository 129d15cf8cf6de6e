//! The ingest API over HTTP, through `app()` with real storage: authentication, validation
//! that writes nothing on error, residency, limits, erasure, and the operations endpoints.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use service::ServiceToken;
use service::testing::{KNOWN_VALUES, TestVault, postgres_vault, sqlite_vault};
use tower::ServiceExt;

const TOKEN: &str = "cst_test-token-for-the-http-tests";

fn app(t: &TestVault) -> Router {
    let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, TOKEN.as_bytes()));
    server::app(server::AppState {
        vault: t.vault.clone(),
        service_tokens: std::sync::Arc::new(vec![ServiceToken { name: "tests".to_owned(), sha256: digest }]),
        gate: None,
        identity: None,
        alerts: None,
        transparency: Default::default(),
        processing: None,
    })
}

async fn send(app: &Router, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn post(app: &Router, path: &str, body: Value) -> (StatusCode, Value) {
    send(app, "POST", path, Some(TOKEN), Some(serde_json::to_vec(&body).unwrap())).await
}

fn known_subject(id: &str, region: &str) -> Value {
    let values: serde_json::Map<String, Value> = KNOWN_VALUES.iter().map(|(field, value)| ((*field).to_owned(), json!([value]))).collect();
    json!({ "id": id, "region": region, "labels": ["journalist"], "values": values })
}

async fn http_ingest_never_stores_plaintext(t: TestVault) {
    let app = app(&t);
    let region = t.region.to_string();
    let (status, body) = post(&app, "/v1/subjects", json!({ "subjects": [known_subject("u-1", &region)] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["values_added"], 6);
    let stored = t.stored_bytes().await;
    assert!(stored.windows(3).any(|window| window == b"u-1"), "the scan does not see the stored rows");
    for (field, value) in KNOWN_VALUES {
        assert!(!stored.windows(value.len()).any(|window| window == value.as_bytes()), "{field} value {value} found in storage");
    }
}

#[tokio::test]
async fn http_ingest_never_stores_plaintext_in_sqlite() {
    http_ingest_never_stores_plaintext(sqlite_vault(None).await).await;
}

#[tokio::test]
async fn http_ingest_never_stores_plaintext_in_postgres() {
    if let Some(t) = postgres_vault(None, None).await {
        http_ingest_never_stores_plaintext(t).await;
    }
}

#[tokio::test]
async fn requests_without_a_valid_service_token_are_refused() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let body = Some(serde_json::to_vec(&json!({ "subjects": [] })).unwrap());
    for token in [None, Some("cst_wrong"), Some("")] {
        let (status, answer) = send(&app, "POST", "/v1/subjects", token, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(answer["error"]["code"], "unauthenticated");
    }
    let (status, _) = send(&app, "GET", "/v1/regions/us/subjects/u-1", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn one_bad_value_writes_nothing_and_is_named() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let mut bad = known_subject("u-2", "us");
    bad["values"]["ip_address"] = json!(["198.51.100.1", "300.1.1.1"]);
    let request = json!({ "subjects": [known_subject("u-1", "us"), bad] });
    let (status, body) = post(&app, "/v1/subjects", request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{body}");
    assert_eq!((details[0]["subject"].as_str(), details[0]["field"].as_str(), details[0]["index"].as_u64()), (Some("u-2"), Some("ip_address"), Some(1)));
    // The good subject of the same request was not written either.
    let (status, body) = send(&app, "GET", "/v1/regions/us/subjects/u-1", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "subject_not_found");
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_json_errors() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let (status, body) = send(&app, "POST", "/v1/subjects", Some(TOKEN), Some(b"{not json".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, body) = post(&app, "/v1/subjects", json!({ "subjects": [], "extra": 1 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")), "{body}");
    let huge = vec![b' '; server::REQUEST_BODY_BYTES_MAX + 1];
    let (status, body) = send(&app, "POST", "/v1/subjects", Some(TOKEN), Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    let many: Vec<Value> = (0..=service::INGEST_SUBJECTS_MAX).map(|index| json!({ "id": format!("u-{index}"), "region": "us" })).collect();
    let (status, body) = post(&app, "/v1/subjects", json!({ "subjects": many })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn too_many_rows_in_one_request_is_payload_too_large() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let devices: Vec<String> = (0..1_000).map(|index| format!("d{index}")).collect();
    let subjects: Vec<Value> =
        (0..101).map(|index| json!({ "id": format!("u-{index}"), "region": "us", "values": { "device_id": devices } })).collect();
    let (status, body) = post(&app, "/v1/subjects", json!({ "subjects": subjects })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")), "{body}");
}

#[tokio::test]
async fn other_regions_are_refused() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let (status, body) = post(&app, "/v1/subjects", json!({ "subjects": [known_subject("u-1", "eu")] })).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(body["error"]["code"], "region_not_served");
    assert_eq!(body["error"]["message"], "region eu is not served by this node");
    let (status, body) = send(&app, "GET", "/v1/regions/eu/subjects/u-1", Some(TOKEN), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::MISDIRECTED_REQUEST, Some("region_not_served")));
}

#[tokio::test]
async fn subject_lifecycle_add_values_summary_erase() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let (status, _) = post(&app, "/v1/subjects", json!({ "subjects": [known_subject("u-1", "us")] })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&app, "/v1/regions/us/subjects/u-1/values", json!({ "values": {
        "ip_address": [{ "value": "203.0.113.9", "observed_at": "2026-03-01T10:00:00Z" }, "198.51.100.23"] } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["values_added"].as_u64(), body["values_merged"].as_u64()), (Some(1), Some(1)));
    let (status, summary) = send(&app, "GET", "/v1/regions/us/subjects/u-1", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["labels"], json!(["journalist"]), "adding values keeps the labels");
    assert_eq!(summary["value_counts"]["ip_address"], 2);
    assert!(!summary.to_string().contains("203.0.113.9"), "the summary never carries a value");

    let (status, body) = post(&app, "/v1/regions/us/subjects/u-1/erase", json!({ "requested_by": "dsr-1", "reason": "" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let (status, body) = post(&app, "/v1/regions/us/subjects/u-1/erase", json!({ "requested_by": "dsr-1", "reason": "user request" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["values_destroyed"], 7);
    let (_, summary) = send(&app, "GET", "/v1/regions/us/subjects/u-1", Some(TOKEN), None).await;
    assert!(summary["erased_at"].is_string(), "{summary}");
    assert_eq!(summary["value_counts"], json!({}));
    let (status, body) = post(&app, "/v1/regions/us/subjects/u-1/values", json!({ "values": { "email": ["x@example.com"] } })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::GONE, Some("subject_erased")));
    let (status, body) = post(&app, "/v1/subjects", json!({ "subjects": [known_subject("u-1", "us")] })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::GONE, Some("subject_erased")));
}

#[tokio::test]
async fn operations_endpoints() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let (status, body) = send(&app, "GET", "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, openapi) = send(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/v1/subjects", "/v1/regions/{region}/subjects/{subject}", "/v1/regions/{region}/subjects/{subject}/values", "/v1/regions/{region}/subjects/{subject}/erase"] {
        assert!(openapi["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(openapi["components"]["securitySchemes"]["service_token"].is_object());
    let _ = post(&app, "/v1/subjects", json!({ "subjects": [known_subject("u-1", "us")] })).await;
    let (status, metrics) = send(&app, "GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("custos_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/subjects\""), "{metrics}");
    assert!(!metrics.contains("u-1"), "metrics must not carry subject ids");
    let _ = send(&app, "FROB", "/healthz", None, None).await;
    let (_, metrics) = send(&app, "GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(!metrics.contains("FROB") && metrics.contains("method=\"other\""), "unknown methods must not mint series: {metrics}");
}
