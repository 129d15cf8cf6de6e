//! The alert desk over HTTP with real tokens from a development issuer, a real SQLite
//! deployment and the default policies and detector: staff reads no case explains raise
//! alerts that compliance officers list, filter, prove, export and act on — each action
//! logged — and the webhook delivers each new alert once, retrying a failing receiver.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use base64::Engine as _;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use model::decision_entry::AlertActionEntry;
use serde_json::{Value, json};
use service::testing::{TestVault, sqlite_vault};
use service::{AccessSettings, AlertDesk, Clock, WebhookConfig, WebhookFormat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SERVICE_TOKEN: &str = "cst_test-token-for-the-alert-tests";
const OFFICER: &str = "s-officer";

struct Fixture {
    app: Router,
    issuer: auth::DevIssuer,
    desk: Arc<AlertDesk>,
    t: TestVault,
}

/// A deployment with two subjects and an alert desk (`deliver`: queue alerts for the webhook).
async fn fixture(deliver: bool) -> Fixture {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    let (issuer, state) = common::issuer_and_state(&t, &gate, SERVICE_TOKEN).await;
    let desk = Arc::new(AlertDesk::open(Arc::clone(&gate), Default::default(), deliver).await.unwrap());
    let state = state.with_alerts(Arc::clone(&desk));
    let f = Fixture { app: server::app(state), issuer, desk, t };
    f.call("POST", "/v1/subjects", Some(SERVICE_TOKEN), Some(json!({"subjects": [
        {"id": "u-journalist", "region": "us", "labels": ["journalist"],
         "values": {"email": ["ada.reporter@newsroom.example"]}},
        {"id": "u-plain", "region": "us", "values": {"email": ["bob@example.com"]}}
    ]})))
    .await;
    f
}

impl Fixture {
    fn token(&self, id: &str, roles: &[&str]) -> String {
        common::staff_token(&self.issuer, self.t.vault.clock().now(), id, roles)
    }

    fn officer(&self) -> String {
        self.token(OFFICER, &["compliance_officer"])
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |body| Body::from(serde_json::to_vec(&body).unwrap()));
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }

    /// `staff` reads a subject's email for support with no case: nothing explains it.
    async fn unexplained_read(&self, staff: &str, subject: &str) {
        let token = self.token(staff, &["support_agent"]);
        let request = json!({"subjects": [subject], "fields": {"email": "masked"}, "purpose": "support", "justification": "curious"});
        let (status, body) = self.call("POST", "/v1/access", Some(&token), Some(request)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Moves the test clock on by `seconds`.
    fn wait(&self, seconds: i64) {
        let clock = self.t.clock();
        assert!(clock.advance_to(clock.now() + chrono::Duration::seconds(seconds)));
    }

    async fn alerts(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.call("GET", &format!("/v1/alerts{query}"), Some(&self.officer()), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        body["alerts"].as_array().unwrap().clone()
    }

    /// The alert actions in the region's log, in log order.
    async fn logged_actions(&self) -> Vec<AlertActionEntry> {
        let log = self.t.vault.log(&self.t.region).unwrap();
        let entries = log.canonical_entries(0, log.size().await.unwrap()).await.unwrap();
        entries
            .iter()
            .filter(|entry| service::kind_of(entry).is_some_and(|(_, kind)| kind == "alert_action"))
            .map(|entry| serde_json::from_slice(entry).unwrap())
            .collect()
    }
}

fn ids(alerts: &[Value]) -> Vec<String> {
    alerts.iter().map(|alert| alert["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn unexplained_reads_raise_alerts_that_officers_list_and_filter() {
    let f = fixture(false).await;
    let start = f.t.vault.clock().now();
    f.unexplained_read("s-agent", "u-plain").await;
    f.wait(60);
    f.unexplained_read("s-agent", "u-journalist").await;
    f.wait(60);
    f.unexplained_read("s-other", "u-plain").await;
    let stored = f.desk.catch_up().await.unwrap();
    assert!(!stored.is_empty(), "unexplained reads raise alerts");

    let all = f.alerts("").await;
    assert_eq!(ids(&all).len(), stored.len(), "{all:?}");
    let times: Vec<&str> = all.iter().map(|alert| alert["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "newest first: {times:?}");
    let unexplained: Vec<&Value> = all.iter().filter(|alert| alert["rule"] == "unexplained_access").collect();
    let actors: std::collections::BTreeSet<&str> = unexplained.iter().map(|alert| alert["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["s-agent", "s-other"].into(), "each actor's unexplained reads: {all:?}");
    for alert in &all {
        assert_eq!(alert["status"], "open");
        assert!(!alert["evidence"].as_array().unwrap().is_empty(), "{alert}");
    }

    // Three unexplained reads, one of them at a journalist (a protected target, high).
    let mut rules: Vec<(&str, &str)> = all.iter().map(|alert| (alert["rule"].as_str().unwrap(), alert["severity"].as_str().unwrap())).collect();
    rules.sort();
    assert_eq!(rules, [("protected_target", "high"), ("unexplained_access", "low"), ("unexplained_access", "low"), ("unexplained_access", "low")]);

    // Filters: each narrows to the alerts that match it.
    assert_eq!(f.alerts("?severity=high").await.len(), 1);
    assert_eq!(f.alerts("?actor=s-other").await.len(), 1);
    assert_eq!(f.alerts(&format!("?since={}", (start + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).await.len(), 3);
    let check = async |query: &str, expected: Vec<&Value>| {
        let got = f.alerts(query).await;
        let expected: Vec<Value> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&got), ids(&expected), "{query}");
    };
    let by = |predicate: &dyn Fn(&Value) -> bool| all.iter().filter(|alert| predicate(alert)).collect::<Vec<&Value>>();
    check("?actor=s-other", by(&|alert| alert["actor"] == "s-other")).await;
    check("?rule=unexplained_access", by(&|alert| alert["rule"] == "unexplained_access")).await;
    check("?subject=u-journalist", by(&|alert| alert["subjects"].as_array().unwrap().contains(&json!("u-journalist")))).await;
    let rank = |severity: &Value| ["info", "low", "medium", "high", "critical"].iter().position(|name| severity == name).unwrap();
    for severity in ["info", "low", "medium", "high", "critical"] {
        let least = rank(&json!(severity));
        check(&format!("?severity={severity}"), by(&|alert| rank(&alert["severity"]) >= least)).await;
    }
    let minute = |minutes: i64| (start + chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let at = |alert: &Value| chrono::DateTime::parse_from_rfc3339(alert["at"].as_str().unwrap()).unwrap();
    check(&format!("?since={}", minute(1)), by(&|alert| at(alert) >= start + chrono::Duration::minutes(1))).await;
    check(&format!("?until={}", minute(1)), by(&|alert| at(alert) < start + chrono::Duration::minutes(1))).await;
    check("?status=acknowledged", vec![]).await;
    check("?status=open&actor=s-agent&rule=unexplained_access", by(&|alert| alert["actor"] == "s-agent" && alert["rule"] == "unexplained_access")).await;

    // Pages of one follow the cursor through every alert, newest first, then stop.
    let mut paged = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let (status, page) = f.call("GET", &format!("/v1/alerts{query}"), Some(&f.officer()), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(ids(page["alerts"].as_array().unwrap()));
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=1&before={next}"),
            None => break,
        }
        assert!(paged.len() <= all.len(), "the cursor ends");
    }
    assert_eq!(paged, ids(&all));

    for (query, parameter) in [
        ("?severity=severe", "severity"),
        ("?status=closed", "status"),
        ("?since=yesterday", "since"),
        ("?until=2026-13-01T00:00:00Z", "until"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?before=bm90LWEtY3Vyc29y", "before"),
        ("?rule=", "rule"),
    ] {
        let (status, body) = f.call("GET", &format!("/v1/alerts{query}"), Some(&f.officer()), None).await;
        assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")), "{query}");
        assert!(body["error"]["message"].as_str().unwrap().contains(&format!("`{parameter}`")), "{query}: {body}");
    }
    let (status, body) = f.call("GET", "/v1/alerts?colour=red", Some(&f.officer()), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("colour"), "{body}");
}

#[tokio::test]
async fn only_compliance_officers_see_alerts() {
    let f = fixture(false).await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.desk.catch_up().await.unwrap();
    let id = f.alerts("").await[0]["id"].as_str().unwrap().to_owned();
    let agent = f.token("s-agent", &["support_agent"]);
    let auditor = f.token("s-auditor", &["auditor", "privacy_officer"]);
    for (method, path, body) in [
        ("GET", "/v1/alerts".to_owned(), None),
        ("GET", format!("/v1/alerts/{id}"), None),
        ("GET", format!("/v1/alerts/{id}/ocsf"), None),
        ("POST", format!("/v1/alerts/{id}/acknowledge"), Some(json!({"note": "mine now"}))),
        ("POST", format!("/v1/alerts/{id}/resolve"), Some(json!({"note": "nothing to see"}))),
        ("GET", "/v1/detector".to_owned(), None),
    ] {
        for token in [&agent, &auditor] {
            let (status, answer) = f.call(method, &path, Some(token), body.clone()).await;
            assert_eq!((status, answer["error"]["code"].clone()), (StatusCode::FORBIDDEN, json!("forbidden")), "{method} {path}");
            assert!(answer["error"]["message"].as_str().unwrap().contains("compliance_officer"), "{answer}");
        }
        let (status, _) = f.call(method, &path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a token");
        let (status, _) = f.call(method, &path, Some(SERVICE_TOKEN), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: a service token is not a staff identity");
    }
    assert!(f.logged_actions().await.is_empty(), "refused actions log nothing");
    assert_eq!(f.alerts("").await[0]["status"], "open");

    // A node that runs no detector says so.
    let gate = f.t.gate(AccessSettings::default());
    let verifier = auth::TokenVerifier::new(f.issuer.identity_config()).await.unwrap();
    let bare = Fixture { app: server::app(server::AppState::with_gate(gate, vec![], Some(verifier))), ..f };
    let (status, body) = bare.call("GET", "/v1/alerts", Some(&bare.officer()), None).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("detector_unavailable")), "{body}");
}

#[tokio::test]
async fn acknowledging_and_resolving_are_logged_first_and_resolved_is_final() {
    let f = fixture(false).await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.desk.catch_up().await.unwrap();
    let alert = f.alerts("?rule=unexplained_access").await[0].clone();
    let id = alert["id"].as_str().unwrap();
    let officer = f.officer();
    let path = |action: &str| format!("/v1/alerts/{id}/{action}");

    let (status, body) = f.call("POST", &path("acknowledge"), Some(&officer), Some(json!({"note": "looking into it"}))).await;
    assert_eq!((status, body["status"].clone()), (StatusCode::OK, json!("acknowledged")), "{body}");
    let (status, body) = f.call("POST", &path("acknowledge"), Some(&officer), Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::CONFLICT, json!("invalid_transition")), "{body}");
    for note in [json!({}), json!({"note": "  "}), json!({"note": "x".repeat(4_097)})] {
        let (status, body) = f.call("POST", &path("resolve"), Some(&officer), Some(note.clone())).await;
        assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")), "{note}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("note"), "{body}");
    }
    let (status, body) = f.call("POST", &path("resolve"), Some(&officer), Some(json!({"note": "x".repeat(4_096)}))).await;
    assert_eq!((status, body["status"].clone()), (StatusCode::OK, json!("resolved")), "a note of 4,096 bytes is allowed: {body}");
    let (status, body) = f.call("POST", &path("resolve"), Some(&officer), Some(json!({"note": "again"}))).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::CONFLICT, json!("invalid_transition")), "{body}");
    let (status, body) = f.call("POST", "/v1/alerts/00000000000000000000000000000000/resolve", Some(&officer), Some(json!({"note": "n"}))).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")), "{body}");

    let actions = f.logged_actions().await;
    let summary: Vec<(&str, &str, &str, usize)> =
        actions.iter().map(|entry| (entry.alert.as_str(), entry.action.as_str(), entry.by.id.as_str(), entry.note.len())).collect();
    assert_eq!(summary, [(id, "acknowledge", OFFICER, "looking into it".len()), (id, "resolve", OFFICER, 4_096)], "refusals log nothing");
    assert_eq!(actions[0].rule, "unexplained_access");
    assert_eq!(actions[0].alert_actor, "s-agent");

    let (status, detail) = f.call("GET", &format!("/v1/alerts/{id}"), Some(&officer), None).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["alert"]["status"], "resolved");
    let notes: Vec<(&str, &str)> = detail["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|note| (note["action"].as_str().unwrap(), note["by"].as_str().unwrap()))
        .collect();
    assert_eq!(notes, [("acknowledge", OFFICER), ("resolve", OFFICER)]);
    assert_eq!(f.alerts("?status=resolved").await.len(), 1);
}

#[tokio::test]
async fn evidence_comes_with_a_tlog_proof_that_verifies() {
    let f = fixture(false).await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.desk.catch_up().await.unwrap();
    let id = f.alerts("?rule=unexplained_access").await[0]["id"].as_str().unwrap().to_owned();
    let officer = f.officer();

    let (status, detail) = f.call("GET", &format!("/v1/alerts/{id}"), Some(&officer), None).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let evidence = detail["alert"]["evidence"].as_array().unwrap().clone();
    let proofs = detail["evidence_proofs"].as_array().unwrap();
    assert_eq!(proofs.len(), evidence.len());
    for proof in proofs {
        assert_eq!(proof["proof"], Value::Null, "no signed checkpoint covers the entry yet: {proof}");
        assert!(proof.get("entry").is_none() && proof.get("leaf_hash").is_none(), "{proof}");
        assert!(proof["reason"].as_str().unwrap().contains("not covered"), "{proof}");
    }

    f.t.vault.log(&f.t.region).unwrap().sign_now().await.unwrap();
    let (status, detail) = f.call("GET", &format!("/v1/alerts/{id}"), Some(&officer), None).await;
    assert_eq!(status, StatusCode::OK);
    for (proof, evidence) in detail["evidence_proofs"].as_array().unwrap().iter().zip(&evidence) {
        assert_eq!((&proof["region"], &proof["index"]), (&evidence["region"], &evidence["index"]));
        assert!(proof.get("reason").is_none(), "{proof}");
        let index = proof["index"].as_u64().unwrap();
        let text = proof["proof"].as_str().unwrap();
        let parsed = tlog::TlogProof::parse(text.as_bytes()).unwrap();
        let entry = f.t.log_store.log_entries(index, index + 1).await.unwrap().remove(0);
        let served = base64::engine::general_purpose::STANDARD.decode(proof["entry"].as_str().unwrap()).unwrap();
        assert_eq!(served, entry, "the evidence carries the entry as the log holds it");
        let leaf_hash = base64::engine::general_purpose::STANDARD.decode(proof["leaf_hash"].as_str().unwrap()).unwrap();
        assert_eq!(leaf_hash, tlog::leaf_hash(&entry).as_bytes(), "and its leaf hash");
        let receipt = audit::Receipt { origin: "custos.test/custos/us".to_owned(), index: tlog::LeafIndex(index), leaf_hash: tlog::leaf_hash(&entry) };
        audit::verify_receipt(&receipt, &entry, &parsed, &f.t.log_verifier_key()).unwrap();
        // The proof is for that entry and no other.
        let other = f.t.log_store.log_entries(0, 1).await.unwrap().remove(0);
        if index != 0 {
            let receipt = audit::Receipt { leaf_hash: tlog::leaf_hash(&other), ..receipt };
            assert!(audit::verify_receipt(&receipt, &other, &parsed, &f.t.log_verifier_key()).is_err());
        }
    }
    let (status, body) = f.call("GET", "/v1/alerts/00000000000000000000000000000000", Some(&officer), None).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
}

#[tokio::test]
async fn an_alert_exports_as_an_ocsf_detection_finding_and_the_detector_reports_progress() {
    let f = fixture(false).await;
    let officer = f.officer();
    let (status, detector) = f.call("GET", "/v1/detector", Some(&officer), None).await;
    assert_eq!(status, StatusCode::OK, "{detector}");
    assert!(detector.get("checkpoint_saved_at").is_none(), "never saved: {detector}");
    let rules = detector["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 14, "every rule runs by default: {detector}");
    assert!(rules.contains(&json!("unexplained_access")));
    let lag_before = detector["lag"][0]["entries"].as_u64().unwrap();
    assert_eq!(detector["lag"][0]["region"], "us");

    f.unexplained_read("s-agent", "u-plain").await;
    let (_, detector) = f.call("GET", "/v1/detector", Some(&officer), None).await;
    assert_eq!(detector["lag"][0]["entries"].as_u64().unwrap(), lag_before + 1, "the read is not observed yet: {detector}");
    f.desk.catch_up().await.unwrap();
    f.desk.save().await.unwrap();
    let (_, detector) = f.call("GET", "/v1/detector", Some(&officer), None).await;
    assert_eq!(detector["lag"], json!([{"region": "us", "entries": 0}]));
    let saved_at = chrono::DateTime::parse_from_rfc3339(detector["checkpoint_saved_at"].as_str().unwrap()).unwrap();
    assert_eq!(saved_at, f.t.vault.clock().now());

    let alert = f.alerts("?rule=unexplained_access").await[0].clone();
    let id = alert["id"].as_str().unwrap();
    let (status, finding) = f.call("GET", &format!("/v1/alerts/{id}/ocsf"), Some(&officer), None).await;
    assert_eq!(status, StatusCode::OK, "{finding}");
    assert_eq!((finding["class_uid"].clone(), finding["category_uid"].clone()), (json!(2004), json!(2)));
    assert_eq!((finding["activity_id"].clone(), finding["type_uid"].clone()), (json!(1), json!(200401)));
    let severity_id = ["info", "low", "medium", "high", "critical"].iter().position(|name| alert["severity"] == *name).unwrap() + 1;
    assert_eq!(finding["severity_id"], json!(severity_id));
    assert_eq!((finding["status_id"].clone(), finding["status"].clone()), (json!(1), json!("New")));
    assert_eq!(finding["finding_info"]["uid"], alert["id"]);
    assert_eq!(finding["finding_info"]["title"], "unexplained_access");
    assert_eq!(finding["finding_info"]["desc"], alert["summary"]);
    assert_eq!(finding["metadata"]["version"], "1.8.0");
    assert_eq!(finding["metadata"]["product"]["name"], "custos");
    assert_eq!(finding["actor"]["user"]["uid"], "s-agent");
    assert_eq!(finding["resources"], json!([{"uid": "u-plain", "type": "data_subject"}]));
    let positions: Vec<(Value, Value)> =
        finding["evidences"].as_array().unwrap().iter().map(|evidence| (evidence["data"]["region"].clone(), evidence["data"]["index"].clone())).collect();
    let expected: Vec<(Value, Value)> =
        alert["evidence"].as_array().unwrap().iter().map(|evidence| (evidence["region"].clone(), evidence["index"].clone())).collect();
    assert_eq!(positions, expected);
    let raised = chrono::DateTime::parse_from_rfc3339(alert["raised_at"].as_str().unwrap()).unwrap();
    assert_eq!(finding["time"], json!(raised.timestamp_millis()));
}

/// What the test receiver saw of one post.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    body: Value,
    status: u16,
}

/// A tiny HTTP/1.1 receiver on loopback: each alert's first two posts get a 503, later ones a
/// 204. Returns its URL and what it received.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/custos", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::<Received>::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut bytes = Vec::new();
            let mut buffer = [0u8; 4096];
            let head_end = loop {
                let read = stream.read(&mut buffer).await.unwrap();
                assert!(read > 0, "the client closed before the end of the headers");
                bytes.extend_from_slice(&buffer[..read]);
                if let Some(position) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
                    break position + 4;
                }
            };
            let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            assert!(lines.next().unwrap().starts_with("POST /hooks/custos HTTP/1.1"), "{head}");
            let headers: BTreeMap<String, String> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            let length: usize = headers["content-length"].parse().unwrap();
            while bytes.len() < head_end + length {
                let read = stream.read(&mut buffer).await.unwrap();
                assert!(read > 0, "the client closed before the end of the body");
                bytes.extend_from_slice(&buffer[..read]);
            }
            let body: Value = serde_json::from_slice(&bytes[head_end..head_end + length]).unwrap();
            let key = headers["idempotency-key"].clone();
            let status = {
                let mut log = log.lock().unwrap();
                let earlier = log.iter().filter(|post| post.headers["idempotency-key"] == key).count();
                let status = if earlier < 2 { 503 } else { 204 };
                log.push(Received { headers, body, status });
                status
            };
            let reason = if status == 503 { "Service Unavailable" } else { "No Content" };
            let answer = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    (url, received)
}

#[tokio::test]
async fn the_webhook_retries_a_failing_receiver_and_delivers_each_alert_once() {
    let f = fixture(true).await;
    f.unexplained_read("s-agent", "u-plain").await;
    let raised = f.desk.catch_up().await.unwrap();
    assert!(!raised.is_empty());
    let (url, received) = receiver().await;
    let config = WebhookConfig { url, format: WebhookFormat::Custos, bearer_token: Some("hook-secret".to_owned()) };
    let store = Arc::clone(f.desk.store());
    let now_ms = f.t.vault.clock().now().timestamp_millis();

    let report = service::deliver_due(store.as_ref(), &config, now_ms).await.unwrap();
    assert_eq!((report.retrying.len(), report.delivered.len()), (raised.len(), 0), "{report:?}");
    let report = service::deliver_due(store.as_ref(), &config, now_ms + 999).await.unwrap();
    assert_eq!(report.attempted(), 0, "nothing is due before the first backoff (1 s) ends");
    let report = service::deliver_due(store.as_ref(), &config, now_ms + 1_000).await.unwrap();
    assert_eq!(report.retrying.len(), raised.len(), "second attempt: {report:?}");
    let report = service::deliver_due(store.as_ref(), &config, now_ms + 2_999).await.unwrap();
    assert_eq!(report.attempted(), 0, "the second backoff is 2 s");
    let report = service::deliver_due(store.as_ref(), &config, now_ms + 3_000).await.unwrap();
    let mut delivered = report.delivered.clone();
    delivered.sort();
    let mut expected = raised.clone();
    expected.sort();
    assert_eq!(delivered, expected, "third attempt: {report:?}");
    let report = service::deliver_due(store.as_ref(), &config, now_ms + 86_400_000).await.unwrap();
    assert_eq!(report.attempted(), 0, "a delivered alert is never posted again");

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 3 * raised.len(), "{received:?}");
    for id in &raised {
        let posts: Vec<&Received> = received.iter().filter(|post| post.headers["idempotency-key"] == *id).collect();
        let statuses: Vec<u16> = posts.iter().map(|post| post.status).collect();
        assert_eq!(statuses, [503, 503, 204], "alert {id}: three attempts, one delivery");
        for post in posts {
            assert_eq!(post.headers["authorization"], "Bearer hook-secret");
            assert_eq!(post.headers["content-type"], "application/json");
            assert_eq!(post.body["id"], json!(id), "the API's alert view");
            assert_eq!(post.body["status"], "open");
        }
    }
}

#[tokio::test]
async fn deliveries_are_given_up_after_twelve_attempts() {
    let f = fixture(true).await;
    f.unexplained_read("s-agent", "u-plain").await;
    let raised = f.desk.catch_up().await.unwrap();
    // Nothing listens on this port: every attempt fails fast.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let config = WebhookConfig { url, format: WebhookFormat::Ocsf, bearer_token: None };
    let store = Arc::clone(f.desk.store());
    let mut now_ms = f.t.vault.clock().now().timestamp_millis();
    for attempt in 1..=service::WEBHOOK_ATTEMPTS_MAX {
        let report = service::deliver_due(store.as_ref(), &config, now_ms).await.unwrap();
        if attempt < service::WEBHOOK_ATTEMPTS_MAX {
            assert_eq!(report.retrying.len(), raised.len(), "attempt {attempt}: {report:?}");
        } else {
            assert_eq!(report.given_up.len(), raised.len(), "attempt {attempt}: {report:?}");
        }
        now_ms += i64::try_from(service::webhook_backoff(attempt).as_millis()).unwrap();
    }
    let report = service::deliver_due(store.as_ref(), &config, i64::MAX).await.unwrap();
    assert_eq!(report.attempted(), 0, "given up for good");
}

#[tokio::test]
async fn the_alert_routes_are_in_the_openapi_document_behind_staff_tokens() {
    let f = fixture(false).await;
    let (status, document) = f.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/v1/alerts", "get"),
        ("/v1/alerts/{id}", "get"),
        ("/v1/alerts/{id}/acknowledge", "post"),
        ("/v1/alerts/{id}/resolve", "post"),
        ("/v1/alerts/{id}/ocsf", "get"),
        ("/v1/detector", "get"),
    ] {
        let operation = &document["paths"][path][method];
        assert_eq!(operation["tags"], json!(["alerts"]), "{method} {path}");
        assert_eq!(operation["security"], json!([{"staff_token": []}]), "{method} {path}");
        assert!(operation["responses"]["403"].is_object(), "{method} {path} documents the role refusal");
    }
    let codes = &document["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(codes.as_array().unwrap().contains(&json!("detector_unavailable")), "{codes}");
}

#[tokio::test]
async fn concurrent_resolves_log_one_action_and_refuse_the_other() {
    let f = fixture(false).await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.desk.catch_up().await.unwrap();
    let id = f.alerts("?rule=unexplained_access").await[0]["id"].as_str().unwrap().to_owned();
    let officer = f.officer();
    let path = format!("/v1/alerts/{id}/resolve");
    let resolve = |note: &'static str| f.call("POST", &path, Some(&officer), Some(json!({ "note": note })));
    let (first, second) = tokio::join!(resolve("benign: first"), resolve("benign: second"));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{first:?} {second:?}");
    let actions = f.logged_actions().await;
    assert_eq!(actions.len(), 1, "only the resolve that took effect is logged: {actions:?}");
}
