//! A data subject's own access report over HTTP, on SQLite and PostgreSQL: the platform's
//! session exchange, the report's content and proofs, the notice delay, the HTML page, and
//! every way to present a token that does not belong to the subject asked about (forged,
//! swapped, expired, another subject's, a staff JWT, algorithm tricks).

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use service::testing::{TestVault, postgres_vault, sqlite_vault};
use service::AccessSettings;
use tower::ServiceExt;

const SERVICE_TOKEN: &str = "cst_test-token-for-the-subject-tests";

struct Fixture {
    app: Router,
    issuer: auth::DevIssuer,
    t: TestVault,
}

/// Two subjects, a support case on both, and a support agent who read each of them once.
async fn fixture(t: TestVault, settings: AccessSettings) -> Fixture {
    let gate = t.gate(settings);
    let (issuer, state) = common::issuer_and_state(&t, &gate, SERVICE_TOKEN).await;
    let app = server::app(state);
    // PostgreSQL test vaults serve a region of their own name; staff are of the same region.
    let region = t.region.to_string();
    let f = Fixture { app, issuer, t };
    let (status, body) = f
        .call("POST", "/v1/subjects", Some(SERVICE_TOKEN), Some(json!({"subjects": [
            {"id": "u-ada", "region": region, "labels": ["journalist"], "values": {"email": ["ada@newsroom.example"]}},
            {"id": "u-bob", "region": region, "values": {"ip_address": ["203.0.113.9"]}}
        ]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let case = json!({"id": "T-1", "purpose": "support", "assignees": ["s-agent"], "subjects": ["u-ada", "u-bob"], "requested_by": "u-ada"});
    let (status, body) = f.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(case)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    f.read("a-ada", "u-ada", "email", &f.staff("s-agent", &["support_agent"], "entity-us")).await;
    f.read("a-bob", "u-bob", "ip_address", &f.staff("s-agent", &["support_agent"], "entity-us")).await;
    f
}

impl Fixture {
    fn mint(&self, id: &str, kind: auth::IdentityKind, roles: &[&str], entity: &str) -> String {
        let claims = auth::IdentityClaims {
            id: id.to_owned(),
            kind,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            team: None,
            entity: Some(entity.to_owned()),
            country: Some("US".to_owned()),
            region: Some(self.t.region.to_string()),
        };
        self.issuer.mint(&claims, self.t.vault.clock().now(), std::time::Duration::from_secs(600)).unwrap()
    }

    fn staff(&self, id: &str, roles: &[&str], entity: &str) -> String {
        self.mint(id, auth::IdentityKind::Staff, roles, entity)
    }

    /// The platform's machine identity, allowed to exchange sessions.
    fn platform(&self) -> String {
        self.mint("svc-platform", auth::IdentityKind::Machine, &["subject_token_exchange"], "platform")
    }

    async fn read(&self, id: &str, subject: &str, field: &str, token: &str) {
        let access = json!({"id": id, "subjects": [subject], "fields": {field: "exact"}, "purpose": "support", "case": "T-1", "justification": "ticket"});
        let (status, body) = self.call("POST", "/v1/access", Some(token), Some(access)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn subject_token(&self, subject: &str) -> String {
        let (status, body) = self.call("POST", "/v1/subject-tokens", Some(&self.platform()), Some(json!({"subject": subject}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!((body["subject"].as_str(), body["region"].as_str()), (Some(subject), Some(self.t.region.as_str())), "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, bytes) = self.raw(method, path, token, body, None).await;
        (status, serde_json::from_str(&bytes).unwrap_or(Value::String(bytes)))
    }

    /// Status, content type and body text.
    async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |body| Body::from(serde_json::to_vec(&body).unwrap()));
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// The JSON Lines report of `subject` read with `token`: the first line and the access lines.
    async fn report(&self, subject: &str, token: &str) -> (Value, Vec<Value>) {
        let (status, content_type, text) = self.raw("GET", &format!("/v1/subjects/{subject}/accesses"), Some(token), None, None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(content_type, server::SUBJECT_REPORT_CONTENT_TYPE);
        let mut lines = text.lines().map(|line| serde_json::from_str::<Value>(line).unwrap());
        let header = lines.next().unwrap();
        (header, lines.collect())
    }

    async fn refused(&self, path: &str, token: &str) -> (StatusCode, String, String) {
        let (status, body) = self.call("GET", path, Some(token), None).await;
        let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
        (status, code, body["error"]["message"].as_str().unwrap_or_default().to_owned())
    }
}

async fn sign(f: &Fixture) {
    f.t.vault.log(&f.t.region).unwrap().sign_now().await.unwrap();
}

/// Every line of a report verifies with the audit crate against the report's checkpoint.
fn verify_lines(header: &Value, lines: &[Value], vkey: &str) {
    let note = tlog::Note::parse(header["checkpoint"].as_str().unwrap().as_bytes()).unwrap();
    for line in lines {
        let entry = STANDARD.decode(line["entry"].as_str().unwrap()).unwrap();
        let index = line["receipt"]["index"].as_u64().unwrap();
        let hashes = line["proof"].as_array().unwrap().iter().map(|hash| tlog::Hash::from_slice(&STANDARD.decode(hash.as_str().unwrap()).unwrap()).unwrap()).collect();
        let proof = tlog::TlogProof::new(None, tlog::LeafIndex(index), hashes, note.clone()).unwrap();
        let leaf_hash = tlog::Hash::from_slice(&STANDARD.decode(line["receipt"]["leaf_hash"].as_str().unwrap()).unwrap()).unwrap();
        let receipt = audit::Receipt { origin: line["receipt"]["origin"].as_str().unwrap().to_owned(), index: tlog::LeafIndex(index), leaf_hash };
        audit::verify_receipt(&receipt, &entry, &proof, vkey).unwrap();
    }
}

async fn a_subject_reads_their_own_accesses_with_proofs(t: TestVault) {
    let f = fixture(t, AccessSettings::default()).await;
    sign(&f).await;
    let token = f.subject_token("u-ada").await;
    let (header, lines) = f.report("u-ada", &token).await;
    assert_eq!(header["format"], service::SUBJECT_REPORT_FORMAT);
    assert_eq!((header["subject"].clone(), header["accesses"].clone(), header["withheld"].clone()), (json!("u-ada"), json!(1), json!(0)), "{header}");
    assert_eq!(lines.len(), 1);
    let access = &lines[0]["access"];
    assert_eq!((access["purpose"].clone(), access["case"].clone(), access["decision"].clone()), (json!("support"), json!("T-1"), json!("allow")));
    assert_eq!(access["fields"][0]["field"], "email");
    assert_eq!(access["fields"][0]["requested"], "exact");
    assert_eq!(access["actor"], json!({"kind": "staff", "roles": ["support_agent"], "entity": "entity-us", "country": "US"}), "no staff id by default");
    let text = lines[0].to_string();
    assert!(!text.contains("u-bob") && !text.contains("a-bob"), "another subject's access leaked: {text}");
    verify_lines(&header, &lines, &f.t.log_verifier_key());

    // Bob's report holds Bob's read only, and a later access shows once a checkpoint covers it.
    let (_, bob) = f.report("u-bob", &f.subject_token("u-bob").await).await;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["access"]["request"], "a-bob");
    f.read("a-ada-2", "u-ada", "email", &f.staff("s-agent", &["support_agent"], "entity-us")).await;
    assert_eq!(f.report("u-ada", &token).await.1.len(), 1, "not covered by a signed checkpoint yet");
    sign(&f).await;
    let (header, lines) = f.report("u-ada", &token).await;
    assert_eq!(lines.iter().map(|line| line["access"]["request"].as_str().unwrap()).collect::<Vec<_>>(), ["a-ada", "a-ada-2"]);
    verify_lines(&header, &lines, &f.t.log_verifier_key());
}

#[tokio::test]
async fn a_subject_reads_their_own_accesses_with_proofs_on_sqlite() {
    a_subject_reads_their_own_accesses_with_proofs(sqlite_vault(None).await).await;
}

#[tokio::test]
async fn a_subject_reads_their_own_accesses_with_proofs_on_postgres() {
    let Some(t) = postgres_vault(None, None).await else { return };
    a_subject_reads_their_own_accesses_with_proofs(t).await;
}

#[tokio::test]
async fn only_the_platform_with_an_exchange_role_mints_subject_tokens() {
    let f = fixture(sqlite_vault(None).await, AccessSettings::default()).await;
    let body = Some(json!({"subject": "u-ada"}));
    let staff_with_role = f.staff("s-agent", &["subject_token_exchange"], "entity-us");
    let machine_without_role = f.mint("svc-other", auth::IdentityKind::Machine, &["ingest"], "platform");
    for token in [staff_with_role, machine_without_role] {
        let (status, answer) = f.call("POST", "/v1/subject-tokens", Some(&token), body.clone()).await;
        assert_eq!((status, answer["error"]["code"].clone()), (StatusCode::FORBIDDEN, json!("forbidden")), "{answer}");
    }
    let (status, answer) = f.call("POST", "/v1/subject-tokens", None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, answer) = f.call("POST", "/v1/subject-tokens", Some(&f.platform()), Some(json!({"subject": "u-nobody"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

#[tokio::test]
async fn a_subject_never_sees_another_subjects_accesses() {
    let f = fixture(sqlite_vault(None).await, AccessSettings::default()).await;
    sign(&f).await;
    let ada = "/v1/subjects/u-ada/accesses";
    let bob_token = f.subject_token("u-bob").await;
    let ada_token = f.subject_token("u-ada").await;

    // Bob's valid token on Ada's report.
    assert_eq!(f.refused(ada, &bob_token).await.0, StatusCode::FORBIDDEN);
    // Bob's token with its claims swapped to Ada (signature kept).
    let parts: Vec<&str> = bob_token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("u-ada");
    let swapped = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    assert_eq!(f.refused(ada, &swapped).await.1, "unauthenticated");
    assert!(f.refused(ada, &swapped).await.2.contains("subject_token_bad_signature"));
    // Ada's claims signed by a key that is not the deployment's.
    let forger = service::SubjectTokenKeys::from_seeds(service::testing::TEST_LOG_ORIGIN_HOST, vec![(f.t.region.clone(), zeroize::Zeroizing::new([42; 32]))]);
    let forged = forger.mint(&service::testing::subject("u-ada"), &f.t.region, f.t.vault.clock().now(), std::time::Duration::from_secs(60)).unwrap();
    assert!(f.refused(ada, &forged).await.2.contains("subject_token_bad_signature"));
    // `alg: none` with Ada's claims and no signature; an HMAC header.
    let ada_claims = ada_token.split('.').nth(1).unwrap();
    for header in [r#"{"alg":"none"}"#, r#"{"alg":"HS256","typ":"custos-subject+jws"}"#] {
        let trick = format!("{}.{ada_claims}.", URL_SAFE_NO_PAD.encode(header));
        assert!(f.refused(ada, &trick).await.2.contains("subject_token_wrong_header"), "{header}");
    }
    // A staff JWT, even a compliance officer's, is not a subject token.
    let officer = f.staff("s-officer", &["compliance_officer", "auditor"], "entity-us");
    let (status, code, message) = f.refused(ada, &officer).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert!(message.contains("subject_token_wrong_header"), "{message}");
    // And a subject token opens no staff route.
    let (status, _) = f.call("POST", "/v1/access", Some(&ada_token), Some(json!({"subjects": ["u-bob"], "fields": {"ip_address": "exact"}, "purpose": "support", "case": "T-1"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No token at all.
    let (status, _) = f.call("GET", ada, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The token in the link's query (for a browser): the same checks, the same refusals.
    let (status, content_type, page) = f.raw("GET", &format!("{ada}?format=html&token={ada_token}"), None, None, None).await;
    assert_eq!((status, content_type.starts_with("text/html")), (StatusCode::OK, true), "{page}");
    assert!(page.contains("u-ada") && !page.contains("u-bob"), "{page}");
    let (status, _, _) = f.raw("GET", &format!("{ada}?format=html&token={bob_token}"), None, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "Bob's token in the query opens only Bob's report");
    let (status, _, _) = f.raw("GET", &format!("{ada}?format=html&token={swapped}"), None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A header and a query token: the header is the one checked.
    let (status, _, _) = f.raw("GET", &format!("{ada}?token={ada_token}"), Some(&bob_token), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Expired: the token lives 300 s by default.
    assert_eq!(f.report("u-ada", &ada_token).await.1.len(), 1, "the genuine token works");
    f.t.clock().advance_to(f.t.vault.clock().now() + chrono::Duration::seconds(300));
    assert!(f.refused(ada, &ada_token).await.2.contains("subject_token_expired"));
}

#[tokio::test]
async fn the_notice_delay_withholds_recent_accesses_and_counts_them() {
    let settings = AccessSettings { report_notice_delay: std::time::Duration::from_secs(3_600), ..AccessSettings::default() };
    let f = fixture(sqlite_vault(None).await, settings).await;
    sign(&f).await;
    let (header, lines) = f.report("u-ada", &f.subject_token("u-ada").await).await;
    assert_eq!((header["withheld"].clone(), header["notice_delay_seconds"].clone(), lines.len()), (json!(1), json!(3_600), 0), "{header}");
    f.t.clock().advance_to(f.t.vault.clock().now() + chrono::Duration::seconds(3_601));
    let (header, lines) = f.report("u-ada", &f.subject_token("u-ada").await).await;
    assert_eq!((header["withheld"].clone(), lines.len()), (json!(0), 1), "{header}");
}

#[tokio::test]
async fn the_html_page_escapes_what_staff_and_tokens_put_in_entries() {
    let settings = AccessSettings { report_actor_ids: true, ..AccessSettings::default() };
    let f = fixture(sqlite_vault(None).await, settings).await;
    let hostile = f.staff("s-agent", &["support_agent"], "<script>alert(1)</script>");
    f.read("a-ada-hostile", "u-ada", "email", &hostile).await;
    sign(&f).await;
    let token = f.subject_token("u-ada").await;
    let path = "/v1/subjects/u-ada/accesses";
    let (status, content_type, page) = f.raw("GET", path, Some(&token), None, Some("text/html,application/xhtml+xml")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the entity is shown, escaped");
    assert!(!page.contains("<script>"), "nothing from an entry is markup");
    assert!(page.contains("s-agent"), "report_actor_ids shows the staff id");
    let (_, _, by_query) = f.raw("GET", &format!("{path}?format=html"), Some(&token), None, None).await;
    assert_eq!(by_query, page);
    let (status, _, _) = f.raw("GET", &format!("{path}?format=xml"), Some(&token), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_legal_hold_defers_disclosure_is_logged_and_ends() {
    let f = fixture(sqlite_vault(None).await, AccessSettings::default()).await;
    let now = f.t.vault.clock().now();
    let until = |days: i64| (now + chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let process = |days: i64| json!({"kind": "court_order", "issuer": "District Court", "document_sha256": "ab".repeat(32),
        "validated": true, "validated_by": "s-counsel", "nondisclosure_until": until(days)});
    let case = json!({"id": "LEGAL-1", "purpose": "legal_request", "assignees": ["s-legal"], "subjects": ["u-ada"], "legal_process": process(30)});
    // A hold longer than the limit is refused, naming the field; nothing is logged for it.
    let size = f.t.vault.log(&f.t.region).unwrap().size().await.unwrap();
    let too_long = json!({"id": "LEGAL-X", "purpose": "legal_request", "subjects": ["u-ada"], "legal_process": process(service::LEGAL_HOLD_DAYS_MAX + 1)});
    let (status, body) = f.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(too_long)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nondisclosure_until"), "{body}");
    assert_eq!(f.t.vault.log(&f.t.region).unwrap().size().await.unwrap(), size, "nothing logged for a refused hold");

    let (status, body) = f.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(case)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["legal_process"]["nondisclosure_until"], json!(until(30)), "{body}");
    let legal = f.staff("s-legal", &["legal_officer"], "entity-us");
    let access = json!({"id": "a-legal", "subjects": ["u-ada"], "fields": {"email": "exact"}, "purpose": "legal_request", "case": "LEGAL-1", "justification": "court order"});
    let (status, body) = f.call("POST", "/v1/access", Some(&legal), Some(access)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sign(&f).await;

    // Ada's report leaves the held access out, and says nothing of the hold.
    let requests = |lines: &[Value]| lines.iter().map(|line| line["access"]["request"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (header, lines) = f.report("u-ada", &f.subject_token("u-ada").await).await;
    assert_eq!(requests(&lines), ["a-ada"], "{header}");
    assert!(!header.to_string().contains("LEGAL") && !header.to_string().contains("hold"), "{header}");
    // The hold is in the log, where auditors see it.
    let deferrals = || async {
        let log = f.t.vault.log(&f.t.region).unwrap();
        let entries = log.canonical_entries(0, log.size().await.unwrap()).await.unwrap();
        entries
            .iter()
            .filter(|entry| service::kind_of(entry).is_some_and(|(_, kind)| kind == "disclosure_deferral"))
            .map(|entry| serde_json::from_slice::<Value>(entry).unwrap())
            .collect::<Vec<_>>()
    };
    let logged = deferrals().await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!((logged[0]["case"].clone(), logged[0]["subjects"].clone()), (json!("LEGAL-1"), json!(["u-ada"])));
    assert_eq!(logged[0]["until_ms"], json!((now + chrono::Duration::days(30)).timestamp() * 1000));
    // Extending it is logged again; an update that leaves it as it is is not.
    let (status, body) = f.call("PATCH", "/v1/cases/LEGAL-1", Some(SERVICE_TOKEN), Some(json!({"legal_process": process(40)}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = f.call("PATCH", "/v1/cases/LEGAL-1", Some(SERVICE_TOKEN), Some(json!({"add_assignees": ["s-legal-2"]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(deferrals().await.len(), 2);

    // The hold ends at its date: the access appears, with its proof.
    f.t.clock().advance_to(now + chrono::Duration::days(40) + chrono::Duration::seconds(1));
    sign(&f).await;
    let (header, lines) = f.report("u-ada", &f.subject_token("u-ada").await).await;
    assert_eq!(requests(&lines), ["a-ada", "a-legal"]);
    verify_lines(&header, &lines, &f.t.log_verifier_key());
}

#[tokio::test]
async fn a_legal_hold_ends_when_its_case_closes() {
    let f = fixture(sqlite_vault(None).await, AccessSettings::default()).await;
    let until = (f.t.vault.clock().now() + chrono::Duration::days(30)).to_rfc3339();
    let case = json!({"id": "LEGAL-2", "purpose": "legal_request", "assignees": ["s-legal"], "subjects": ["u-ada"],
        "legal_process": {"kind": "subpoena", "issuer": "Grand jury", "document_sha256": "cd".repeat(32), "nondisclosure_until": until}});
    assert_eq!(f.call("POST", "/v1/cases", Some(SERVICE_TOKEN), Some(case)).await.0, StatusCode::CREATED);
    let access = json!({"id": "a-held", "subjects": ["u-ada"], "fields": {"email": "exact"}, "purpose": "legal_request", "case": "LEGAL-2"});
    assert_eq!(f.call("POST", "/v1/access", Some(&f.staff("s-legal", &["legal_officer"], "entity-us")), Some(access)).await.0, StatusCode::OK);
    sign(&f).await;
    let token = f.subject_token("u-ada").await;
    assert_eq!(f.report("u-ada", &token).await.1.len(), 1, "held");
    assert_eq!(f.call("PATCH", "/v1/cases/LEGAL-2", Some(SERVICE_TOKEN), Some(json!({"status": "closed"}))).await.0, StatusCode::OK);
    let (_, lines) = f.report("u-ada", &token).await;
    assert_eq!(lines.iter().map(|line| line["access"]["request"].as_str().unwrap()).collect::<Vec<_>>(), ["a-ada", "a-held"], "the hold ended with the case");
}

#[tokio::test]
async fn a_long_report_comes_in_pages_that_together_list_every_access() {
    let f = fixture(sqlite_vault(None).await, AccessSettings::default()).await;
    let agent = f.staff("s-agent", &["support_agent"], "entity-us");
    let extra = service::SUBJECT_REPORT_ACCESSES_MAX + 2;
    for number in 0..extra {
        f.read(&format!("a-bob-{number}"), "u-bob", "ip_address", &agent).await;
    }
    sign(&f).await;
    let token = f.subject_token("u-bob").await;
    let (first, lines) = f.report("u-bob", &token).await;
    assert_eq!((first["truncated"].clone(), lines.len()), (json!(true), service::SUBJECT_REPORT_ACCESSES_MAX), "{first}");
    let next = first["next"].as_u64().expect("a next page");
    assert!(lines.iter().all(|line| line["receipt"]["index"].as_u64().unwrap() < next));
    let (status, _, text) = f.raw("GET", &format!("/v1/subjects/u-bob/accesses?from={next}"), Some(&token), None, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let mut page = text.lines().map(|line| serde_json::from_str::<Value>(line).unwrap());
    let second = page.next().unwrap();
    let rest: Vec<Value> = page.collect();
    assert_eq!((second["from"].clone(), second["truncated"].clone(), second.get("next")), (json!(next), json!(false), None), "{second}");
    verify_lines(&second, &rest, &f.t.log_verifier_key());
    let mut requests: Vec<String> = lines.iter().chain(&rest).map(|line| line["access"]["request"].as_str().unwrap().to_owned()).collect();
    assert_eq!(requests.len(), extra + 1, "every access once: a-bob and the extra reads");
    requests.sort();
    requests.dedup();
    assert_eq!(requests.len(), extra + 1, "no access on two pages");
}
