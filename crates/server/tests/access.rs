//! The access API over HTTP with real tokens from a development issuer (Ed25519 JWTs
//! verified against its JWKS file), real storage and the default policy set: token attacks,
//! the approval flow and its abuse, and the OpenAPI walk that keeps every value-bearing answer
//! tied to a log receipt.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use service::testing::{TestVault, sqlite_vault};
use service::AccessSettings;
use tower::ServiceExt;

const SERVICE_TOKEN: &str = "cst_test-token-for-the-access-tests";

struct Fixture {
    app: Router,
    issuer: auth::DevIssuer,
    t: TestVault,
}

async fn fixture() -> Fixture {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    let (issuer, state) = common::issuer_and_state(&t, &gate, SERVICE_TOKEN).await;
    let app = server::app(state);
    let f = Fixture { app, issuer, t };
    f.call("POST", "/v1/subjects", Some(SERVICE_TOKEN), Some(json!({"subjects": [
        {"id": "u-journalist", "region": "us", "labels": ["journalist"],
         "values": {"email": ["ada.reporter@newsroom.example"], "ip_address": ["198.51.100.23"]}},
        {"id": "u-staff", "region": "us", "labels": ["staff"], "values": {"ip_address": ["203.0.113.9"]}}
    ]}))).await;
    f
}

impl Fixture {
    fn token(&self, id: &str, roles: &[&str], region: &str, country: &str) -> String {
        let claims = auth::IdentityClaims {
            id: id.to_owned(),
            kind: auth::IdentityKind::Staff,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            team: None,
            entity: Some(format!("entity-{region}")),
            country: Some(country.to_owned()),
            region: Some(region.to_owned()),
        };
        self.issuer.mint(&claims, self.t.vault.clock().now(), std::time::Duration::from_secs(600)).unwrap()
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

    async fn case(&self, case: Value) {
        let (status, body) = self.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(case)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

fn access(id: &str, subject: &str, field: &str, view: &str, purpose: &str, case: &str) -> Value {
    json!({"id": id, "subjects": [subject], "fields": {field: view}, "purpose": purpose, "case": case, "justification": "test"})
}

#[tokio::test]
async fn a_support_agent_reads_a_masked_email_with_a_receipt() {
    let f = fixture().await;
    f.case(json!({"id": "T-1", "purpose": "support", "assignees": ["s-agent"], "subjects": ["u-journalist"], "requested_by": "u-journalist"})).await;
    let token = f.token("s-agent", &["support_agent"], "us", "US");
    let (status, body) = f.call("POST", "/v1/access", Some(&token), Some(access("a-1", "u-journalist", "email", "exact", "support", "T-1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let field = &body["subjects"][0]["fields"][0];
    assert_eq!(field["view"], "masked");
    assert_eq!(field["values"][0]["value"], "a***@newsroom.example");
    let receipt = &body["subjects"][0]["receipt"];
    assert_eq!(receipt["origin"], "custos.test/custos/us");
    assert!(receipt["index"].is_u64());
    let entry = base64::engine::general_purpose::STANDARD.decode(receipt["entry"].as_str().unwrap()).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(tlog::leaf_hash(&entry).as_bytes()),
        receipt["leaf_hash"].as_str().unwrap()
    );

    // The receipt completes into a tlog-proof once a checkpoint covers it, and verifies
    // offline; entry bundles need the auditor role.
    let index = receipt["index"].as_u64().unwrap();
    let path = format!("/v1/log/us/proof/receipt?index={index}");
    let (status, _) = f.call("GET", &path, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not covered by a signed checkpoint yet");
    f.t.vault.log(&f.t.region).unwrap().sign_now().await.unwrap();
    let response = f.app.clone().oneshot(Request::builder().uri(&path).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let proof = response.into_body().collect().await.unwrap().to_bytes();
    let proof = tlog::TlogProof::parse(&proof).unwrap();
    let receipt = audit::Receipt { origin: "custos.test/custos/us".to_owned(), index: tlog::LeafIndex(index), leaf_hash: tlog::leaf_hash(&entry) };
    audit::verify_receipt(&receipt, &entry, &proof, &f.t.log_verifier_key()).unwrap();
    let mut altered = entry.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert!(audit::verify_receipt(&receipt, &altered, &proof, &f.t.log_verifier_key()).is_err());

    let bundle = "/log/us/tile/entries/000.p/1";
    let (status, _) = f.call("GET", bundle, Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a support agent may not read entry bundles");
    let auditor = f.token("s-auditor", &["auditor"], "us", "US");
    let response = f.app.clone().oneshot(Request::builder().uri(bundle).header("authorization", format!("Bearer {auditor}")).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn directory_refusals_are_client_errors_that_name_the_record() {
    let f = fixture().await;
    let case = json!({"id": "T-1", "purpose": "support", "assignees": ["s-agent"], "subjects": ["u-journalist"]});
    f.case(case.clone()).await;
    let (status, body) = f.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(case)).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::CONFLICT, json!("already_exists")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("T-1"), "{body}");
    let (status, body) = f.call("PATCH", "/v1/cases/T-404", Some(SERVICE_TOKEN), Some(json!({"status": "closed"}))).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")), "{body}");
    let too_many: Vec<String> = (0..1_001).map(|index| format!("s-{index}")).collect();
    let big = json!({"id": "T-2", "purpose": "support", "assignees": too_many});
    let (status, body) = f.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(big)).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")), "{body}");
    let (status, _) = f.call("GET", "/v1/cases/T-2", Some(SERVICE_TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing of a refused case is stored");
}

#[tokio::test]
async fn token_attacks_are_refused_before_anything_is_decided() {
    let f = fixture().await;
    f.case(json!({"id": "T-1", "purpose": "support", "assignees": ["s-agent"], "subjects": ["u-journalist"], "requested_by": "u-journalist"})).await;
    let good = f.token("s-agent", &["support_agent"], "us", "US");
    let request = access("a-1", "u-journalist", "email", "masked", "support", "T-1");
    let [header, payload, signature]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    let jwks = std::fs::read(f.issuer.jwks_path()).unwrap();
    let hmac_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &jwks);
    let hmac_signature = aws_lc_rs::hmac::sign(&hmac_key, format!("{hmac_header}.{payload}").as_bytes());
    let hmac_with_public_key = format!("{hmac_header}.{payload}.{}", URL_SAFE_NO_PAD.encode(hmac_signature.as_ref()));
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["roles"] = json!(["support_agent", "privacy_officer"]);
    let tampered = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let other_dir = f.t.root.path().join("other-issuer");
    std::fs::create_dir(&other_dir).unwrap();
    let other = auth::DevIssuer::create(&other_dir, "https://id.test", "custos").unwrap();
    let claims = auth::IdentityClaims { id: "s-agent".to_owned(), roles: vec!["support_agent".to_owned()], ..Default::default() };
    let wrong_key = other.mint(&claims, f.t.vault.clock().now(), std::time::Duration::from_secs(600)).unwrap();
    let expired = f.issuer.mint(&claims, f.t.vault.clock().now() - chrono::Duration::hours(2), std::time::Duration::from_secs(600)).unwrap();
    let not_yet = f.issuer.mint(&claims, f.t.vault.clock().now() + chrono::Duration::hours(2), std::time::Duration::from_secs(600)).unwrap();

    for (name, token, code) in [
        ("alg none", alg_none.as_str(), "token_algorithm_not_allowed"),
        ("HMAC with the public key", hmac_with_public_key.as_str(), "token_algorithm_not_allowed"),
        ("tampered claims", tampered.as_str(), "token_bad_signature"),
        ("another issuer's key", wrong_key.as_str(), "token_unknown_key"),
        ("expired", expired.as_str(), "token_expired"),
        ("not yet valid", not_yet.as_str(), "token_not_yet_valid"),
        ("garbage", "not-a-jwt", "token_malformed"),
    ] {
        let (status, body) = f.call("POST", "/v1/access", Some(token), Some(request.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{name}");
        assert!(body["error"]["message"].as_str().unwrap().contains(code), "{name}: {body}");
    }
    let (status, _) = f.call("POST", "/v1/access", None, Some(request.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = f.call("POST", "/v1/access", Some(SERVICE_TOKEN), Some(request)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a service token is not a staff identity");
    let size = f.t.vault.log(&f.t.region).unwrap().sign_now().await.unwrap();
    let note = tlog::Note::parse(size.as_bytes()).unwrap();
    let checkpoint = tlog::Checkpoint::parse(note.text()).unwrap();
    assert_eq!(checkpoint.size().0, 0, "refused tokens decide nothing and log nothing");
}

#[tokio::test]
async fn approvals_over_http_refuse_abuse_and_release_a_coarsened_value() {
    let f = fixture().await;
    f.case(json!({"id": "LEAK-1", "purpose": "internal_investigation", "assignees": ["s-cn-1"], "subjects": ["u-staff", "u-journalist"]})).await;
    let auditor = f.token("s-cn-1", &["internal_audit"], "cn", "CN");
    let (status, body) = f.call("POST", "/v1/access", Some(&auditor), Some(access("a-9", "u-staff", "ip_address", "exact", "internal_investigation", "LEAK-1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], "pending", "{body}");
    assert_eq!(body["needs"], json!(["custodian"]));

    let (status, body) = f.call("POST", "/v1/access", Some(&auditor), Some(access("a-10", "u-journalist", "ip_address", "exact", "internal_investigation", "LEAK-1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "deny", "the leak hunt never reaches a journalist: {body}");
    assert!(!body.to_string().contains("198.51.100"));

    let yes = json!({"decision": "approve", "note": "checked"});
    let self_approval = f.token("s-cn-1", &["internal_audit", "privacy_officer"], "cn", "CN");
    let (status, body) = f.call("POST", "/v1/approvals/a-9", Some(&self_approval), Some(yes.clone())).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::FORBIDDEN, json!("approval_refused")), "{body}");
    let not_approver = f.token("s-cn-2", &["internal_audit"], "cn", "CN");
    let (status, _) = f.call("POST", "/v1/approvals/a-9", Some(&not_approver), Some(yes.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = f.call("GET", "/v1/approvals/a-9", Some(&not_approver), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only approvers see pending requests");

    let custodian = f.token("s-us-po", &["privacy_officer"], "us", "US");
    let (status, pending) = f.call("GET", "/v1/approvals/a-9", Some(&custodian), None).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["requester"], "s-cn-1");
    assert!(!pending.to_string().contains("203.0.113"), "the approver sees no value: {pending}");
    let (status, body) = f.call("POST", "/v1/approvals/a-9", Some(&custodian), Some(yes.clone())).await;
    assert_eq!((status, body["status"].clone()), (StatusCode::OK, json!("approved")), "{body}");
    let (status, body) = f.call("POST", "/v1/approvals/a-9", Some(&custodian), Some(yes.clone())).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::CONFLICT, json!("already_decided")));

    let (status, body) = f.call("POST", "/v1/access/a-9", Some(&not_approver), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the requester opens a request: {body}");
    let (status, body) = f.call("POST", "/v1/access/a-9", Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let field = &body["subjects"][0]["fields"][0];
    assert_eq!((field["decision"].clone(), field["view"].clone()), (json!("allow"), json!("prefix")), "{body}");
    assert_eq!(field["values"][0]["value"], "203.0.113.0/24");
}

/// Walks the OpenAPI document: every response schema that can carry revealed values must
/// also carry a log receipt, so no endpoint can hand out a value without its log index.
#[tokio::test]
async fn no_endpoint_returns_a_value_without_a_log_receipt() {
    let f = fixture().await;
    let (status, document) = f.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &document["components"]["schemas"];
    let mut value_bearing = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (code, response) in operation["responses"].as_object().into_iter().flatten() {
                let Some(schema) = response.pointer("/content/application~1json/schema") else { continue };
                let mut seen = std::collections::BTreeSet::new();
                let reachable = reachable_schemas(schema, schemas, &mut seen);
                if reachable.contains("RevealedValue") {
                    value_bearing += 1;
                    assert!(reachable.contains("Receipt"), "{method} {path} ({code}) can return values without a receipt");
                }
            }
        }
    }
    assert!(value_bearing >= 2, "the walk found the value-bearing endpoints ({value_bearing})");
}

fn reachable_schemas(schema: &Value, schemas: &Value, seen: &mut std::collections::BTreeSet<String>) -> std::collections::BTreeSet<String> {
    match schema {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                let name = reference.rsplit('/').next().unwrap().to_owned();
                if seen.insert(name.clone()) {
                    reachable_schemas(&schemas[&name], schemas, seen);
                }
            }
            for value in object.values() {
                reachable_schemas(value, schemas, seen);
            }
        }
        Value::Array(values) => {
            for value in values {
                reachable_schemas(value, schemas, seen);
            }
        }
        _ => {}
    }
    seen.clone()
}
