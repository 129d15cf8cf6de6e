//! The compliance console over HTTP with real tokens from a development issuer, a real
//! SQLite deployment, the default policies and the detector: only a signed-in compliance
//! officer gets in; an alert leads to the actor's timeline and is resolved; every page that
//! shows access records first logs a `record_view` entry naming what it showed; timelines
//! page through every entry, and show one actor's, case's or subject's entries only.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use model::decision_entry::RecordViewEntry;
use serde_json::{Value, json};
use service::testing::{TestVault, sqlite_vault};
use service::{AccessSettings, AlertDesk, Clock};
use tower::ServiceExt;

const SERVICE_TOKEN: &str = "cst_test-token-for-the-console-tests";
const OFFICER: &str = "s-officer";

struct Fixture {
    app: Router,
    issuer: auth::DevIssuer,
    desk: Arc<AlertDesk>,
    t: TestVault,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

async fn fixture() -> Fixture {
    let t = sqlite_vault(None).await;
    let gate = t.gate(AccessSettings::default());
    let (issuer, state) = common::issuer_and_state(&t, &gate, SERVICE_TOKEN).await;
    let desk = Arc::new(AlertDesk::open(Arc::clone(&gate), Default::default(), false).await.unwrap());
    let config: service::Config = serde_json::from_value(json!({
        "regions": ["us"], "storage": {"backend": "sqlite"}, "keys": {"provider": "keyring"},
        "access": {"region_countries": {"us": ["US"]}},
        "processing": {"controller": "Example Platform Ltd", "contact": "privacy@platform.example", "purposes": {"support": {"legal_basis": "Art. 6(1)(b) GDPR"}}}
    }))
    .unwrap();
    let f = Fixture { app: server::app(state.with_alerts(Arc::clone(&desk)).with_config(config)), issuer, desk, t };
    let subjects = json!({"subjects": [
        {"id": "u-journalist", "region": "us", "labels": ["journalist"], "values": {"email": ["ada.reporter@newsroom.example"]}},
        {"id": "u-plain", "region": "us", "values": {"email": ["bob@example.com"]}}
    ]});
    let request = Request::post("/v1/subjects")
        .header("authorization", format!("Bearer {SERVICE_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(subjects.to_string()))
        .unwrap();
    assert_eq!(f.app.clone().oneshot(request).await.unwrap().status(), StatusCode::OK);
    f
}

impl Fixture {
    fn token(&self, id: &str, roles: &[&str]) -> String {
        common::staff_token(&self.issuer, self.t.vault.clock().now(), id, roles)
    }

    /// Signs in with `token` and returns the cookie the console set.
    async fn sign_in(&self, token: &str) -> String {
        let page = self.form("/console/login", None, &[("token", token)], None).await;
        assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/alerts")), "{}", page.body);
        let cookie = page.cookie.expect("a cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        cookie.split(';').next().unwrap().to_owned()
    }

    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let header = |name| response.headers().get(name).map(|value: &header::HeaderValue| value.to_str().unwrap().to_owned());
        let (location, cookie) = (header(header::LOCATION), header(header::SET_COOKIE));
        let body = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Page { status, location, cookie, body }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn form(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)], origin: Option<&str>) -> Page {
        let body = fields.iter().map(|(name, value)| format!("{name}={}", urlencode(value))).collect::<Vec<_>>().join("&");
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").header(header::HOST, "console.test");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// `staff` reads `subject`'s email for support with no case: nothing explains it.
    async fn unexplained_read(&self, staff: &str, subject: &str) {
        let body = json!({"subjects": [subject], "fields": {"email": "masked"}, "purpose": "support", "justification": "curious"});
        let request = Request::post("/v1/access")
            .header("authorization", format!("Bearer {}", self.token(staff, &["support_agent"])))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        assert_eq!(self.app.clone().oneshot(request).await.unwrap().status(), StatusCode::OK);
    }

    /// Every `record_view` entry in the region's log, in log order.
    async fn record_views(&self) -> Vec<RecordViewEntry> {
        let log = self.t.vault.log(&self.t.region).unwrap();
        let entries = log.canonical_entries(0, log.size().await.unwrap()).await.unwrap();
        entries
            .iter()
            .filter(|entry| service::kind_of(entry).is_some_and(|(_, kind)| kind == "record_view"))
            .map(|entry| serde_json::from_slice(entry).unwrap())
            .collect()
    }

    /// The log indexes of `actor`'s access decisions.
    async fn accesses_of(&self, actor: &str) -> Vec<u64> {
        let log = self.t.vault.log(&self.t.region).unwrap();
        let entries = log.canonical_entries(0, log.size().await.unwrap()).await.unwrap();
        (0..entries.len() as u64)
            .filter(|&index| {
                let entry: Value = serde_json::from_slice(&entries[index as usize]).unwrap();
                entry["type"] == "access" && entry["actor"]["id"] == actor
            })
            .collect()
    }
}

fn urlencode(value: &str) -> String {
    value.bytes().map(|byte| if byte.is_ascii_alphanumeric() || b"-_.".contains(&byte) { (byte as char).to_string() } else { format!("%{byte:02X}") }).collect()
}

/// Access decision rows on a console page.
fn decision_rows(body: &str) -> usize {
    body.matches("<tr class=\"decision-").count()
}

fn indexes(shown: &[[u64; 2]]) -> Vec<u64> {
    shown.iter().flat_map(|range| range[0]..=range[1]).collect()
}

#[tokio::test]
async fn only_a_signed_in_compliance_officer_gets_in() {
    let f = fixture().await;
    // No cookie: every page sends the browser to sign in.
    for path in ["/console", "/console/alerts", "/console/actors/s-agent", "/console/log", "/console/policies"] {
        let page = f.get(path, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.as_deref(), Some("/console/login"), "{path}");
    }
    // The sign-in check guards the console's routes only: elsewhere an unknown path is a 404.
    for path in ["/log/us/checkpoints", "/no-such-page", "/console/no-such-page"] {
        let page = f.get(path, None).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {:?}", page.location);
    }
    let login = f.get("/console/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("name=\"token\""), "{}", login.body);

    // A staff token without the role, a forged token, junk, a cross-site post: refused, no cookie.
    let agent = f.token("s-agent", &["support_agent"]);
    let page = f.form("/console/login", None, &[("token", &agent)], None).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("compliance_officer") && page.cookie.is_none(), "{}", page.body);
    let officer = f.token(OFFICER, &["compliance_officer"]);
    let (head, _signature) = officer.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAA");
    let page = f.form("/console/login", None, &[("token", &forged)], None).await;
    assert_eq!((page.status, page.cookie.is_none()), (StatusCode::UNAUTHORIZED, true), "{}", page.body);
    let page = f.form("/console/login", None, &[("token", "not a token")], None).await;
    assert_eq!((page.status, page.cookie.is_none()), (StatusCode::BAD_REQUEST, true));
    let page = f.form("/console/login", None, &[("token", &officer)], Some("http://evil.example")).await;
    assert_eq!((page.status, page.cookie.is_none()), (StatusCode::FORBIDDEN, true));

    // The officer gets in; the same token as a forged cookie does not.
    let cookie = f.sign_in(&officer).await;
    let page = f.get("/console/alerts", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(OFFICER) && page.body.contains("Alerts"), "{}", page.body);
    let page = f.get("/console/alerts", Some(&format!("custos_console={forged}"))).await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/login?expired=1")));
    // A cookie whose token lost the role since (a new token without it) is refused.
    let demoted = f.token(OFFICER, &["support_agent"]);
    assert_eq!(f.get("/console/alerts", Some(&format!("custos_console={demoted}"))).await.status, StatusCode::FORBIDDEN);
    // Forms posted from another site are refused even with the cookie.
    let page = f.form("/console/logout", Some(&cookie), &[], Some("http://evil.example")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = f.form("/console/logout", Some(&cookie), &[], Some("http://console.test")).await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/login")));
    assert!(page.cookie.unwrap().contains("Max-Age=0"));
    // The token expires: the cookie with it no longer opens anything.
    let clock = f.t.clock();
    assert!(clock.advance_to(clock.now() + chrono::Duration::minutes(20)));
    assert_eq!(f.get("/console/alerts", Some(&cookie)).await.location.as_deref(), Some("/console/login?expired=1"));
}

#[tokio::test]
async fn an_alert_leads_to_the_actors_timeline_and_is_resolved_and_every_view_is_logged() {
    let f = fixture().await;
    f.unexplained_read("s-agent", "u-journalist").await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.unexplained_read("s-other", "u-plain").await;
    f.desk.catch_up().await.unwrap();
    let cookie = f.sign_in(&f.token(OFFICER, &["compliance_officer"])).await;

    // The queue, filtered to the high alert about the journalist.
    let queue = f.get("/console/alerts?status=open&severity=high&rule=&actor=&subject=", Some(&cookie)).await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    assert_eq!(queue.body.matches("class=\"alert-link\"").count(), 1, "{}", queue.body);
    assert!(queue.body.contains("protected_target"), "{}", queue.body);
    let id = queue.body.split("href=\"/console/alerts/").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert!(f.record_views().await.is_empty(), "the queue shows alerts, not access records");

    // The alert page shows its evidence, after logging that the officer saw it.
    let alert = f.get(&format!("/console/alerts/{id}"), Some(&cookie)).await;
    assert_eq!(alert.status, StatusCode::OK, "{}", alert.body);
    assert!(alert.body.contains("u-journalist") && alert.body.contains("href=\"/console/actors/s-agent\""), "{}", alert.body);
    let views = f.record_views().await;
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!((views[0].view.as_str(), views[0].target.as_str(), views[0].by.id.as_str()), ("alert", id.as_str(), OFFICER));
    let agent_accesses = f.accesses_of("s-agent").await;
    assert!(indexes(&views[0].shown).iter().all(|index| agent_accesses.contains(index)), "{views:?}");
    assert!(!views[0].shown.is_empty());

    // The actor's timeline: their two decisions, none of s-other's, with the chart.
    let timeline = f.get("/console/actors/s-agent", Some(&cookie)).await;
    assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
    assert_eq!(decision_rows(&timeline.body), 2, "{}", timeline.body);
    assert!(timeline.body.contains("<svg") && timeline.body.contains("u-journalist") && !timeline.body.contains("s-other"), "{}", timeline.body);
    let views = f.record_views().await;
    assert_eq!(views.len(), 2);
    assert_eq!((views[1].view.as_str(), views[1].target.as_str()), ("actor_timeline", "s-agent"));
    assert_eq!(indexes(&views[1].shown), agent_accesses, "the entry names exactly the records shown");

    // Resolve it with a note: the action is logged, the alert is resolved.
    let resolved = f.form(&format!("/console/alerts/{id}/resolve"), Some(&cookie), &[("note", "spoke to s-agent; training")], Some("http://console.test")).await;
    assert_eq!((resolved.status, resolved.location.clone()), (StatusCode::SEE_OTHER, Some(format!("/console/alerts/{id}"))), "{}", resolved.body);
    let alert = f.get(&format!("/console/alerts/{id}"), Some(&cookie)).await;
    assert!(alert.body.contains("id=\"alert-status\">resolved") && alert.body.contains("spoke to s-agent; training"), "{}", alert.body);
    assert!(!alert.body.contains("id=\"resolve\""), "no resolve form on a resolved alert");
    // Resolving twice is a clear error, not a silent success.
    let again = f.form(&format!("/console/alerts/{id}/resolve"), Some(&cookie), &[("note", "again")], None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // The officer's own timeline shows their views and their resolution: the auditors audited.
    let own = f.get(&format!("/console/actors/{OFFICER}"), Some(&cookie)).await;
    assert!(own.body.contains("viewed actor timeline") && own.body.contains("viewed alert") && own.body.contains("resolve alert"), "{}", own.body);

    // The subject's and the case-less timelines show only what names them.
    let subject = f.get("/console/subjects/u-plain", Some(&cookie)).await;
    assert_eq!(decision_rows(&subject.body), 2, "{}", subject.body);
    assert!(!subject.body.contains(">u-journalist<"), "{}", subject.body);
    let nobody = f.get("/console/cases/CASE-NONE", Some(&cookie)).await;
    assert_eq!((nobody.status, decision_rows(&nobody.body)), (StatusCode::OK, 0));
    let logged = f.record_views().await;
    let last = logged.last().unwrap();
    assert_eq!((last.view.as_str(), last.target.as_str(), last.shown.is_empty()), ("case_timeline", "CASE-NONE", true), "looking is logged even when nothing shows");

    // A bad cursor is named.
    let bad = f.get("/console/actors/s-agent?before=us:x", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("us:x"), "{}", bad.body);
}

#[tokio::test]
async fn a_timeline_pages_through_every_entry_newest_first() {
    let f = fixture().await;
    for _ in 0..130 {
        f.unexplained_read("s-busy", "u-plain").await;
        let clock = f.t.clock();
        assert!(clock.advance_to(clock.now() + chrono::Duration::hours(1)));
    }
    let cookie = f.sign_in(&f.token(OFFICER, &["compliance_officer"])).await;
    let first = f.get("/console/actors/s-busy", Some(&cookie)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(decision_rows(&first.body), 100);
    assert!(first.body.contains("130 log entries in all"), "{}", first.body);
    // The chart has a bar per day with activity (130 hours: 6 days).
    assert_eq!(first.body.matches("<rect ").count(), 6, "{}", first.body);
    let next = first.body.split("id=\"next-page\" href=\"").nth(1).unwrap_or_else(|| panic!("{}", &first.body[first.body.len() - 600..])).split('"').next().unwrap().replace("&amp;", "&");
    let second = f.get(&next, Some(&cookie)).await;
    assert_eq!(decision_rows(&second.body), 30, "{}", second.body);
    assert!(!second.body.contains("id=\"next-page\""));
    let views = f.record_views().await;
    let mut shown: Vec<u64> = views.iter().flat_map(|view| indexes(&view.shown)).collect();
    shown.sort_unstable();
    assert_eq!(shown, f.accesses_of("s-busy").await, "the two pages showed each entry once");
}

#[tokio::test]
async fn the_public_transparency_page_counts_without_naming_anyone() {
    let f = fixture().await;
    f.unexplained_read("s-agent", "u-journalist").await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.unexplained_read("s-other", "u-plain").await;
    f.desk.catch_up().await.unwrap();
    f.t.vault.log(&f.t.region).unwrap().sign_now().await.unwrap();
    let month = service::month_of(f.t.vault.clock().now());

    // No sign-in needed; JSON for machines.
    let page = f.get("/transparency?format=json", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let report: Value = serde_json::from_str(&page.body).unwrap();
    let region = &report["regions"][0];
    assert_eq!(region["region"], f.t.region.as_str());
    let tally = &region["months"][&month];
    assert_eq!(tally["purposes"], json!({"support": 3}), "{report}");
    assert_eq!(tally["decisions"], json!({"deny": 3}), "{report}");
    assert_eq!(tally["break_glass"], 0);
    let checkpoint = region["checkpoint"].as_str().unwrap();
    assert!(checkpoint.starts_with(&format!("{}\n", region["origin"].as_str().unwrap())), "a signed checkpoint of the region's log: {checkpoint}");
    let alerts = &report["alerts"][&month];
    assert_eq!(alerts["high"], 1, "the protected target alert: {report}");
    assert_eq!(alerts["low"].as_u64().unwrap() + alerts["high"].as_u64().unwrap(), f.desk.store().alerts(&store::AlertFilter { limit: 100, ..Default::default() }).await.unwrap().len() as u64);

    // The page: the counts, the checkpoint and the command to verify it; no one named.
    let page = f.get("/transparency", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Transparency report") && page.body.contains("custos log verify") && page.body.contains(&month), "{}", page.body);
    assert!(page.body.contains(region["verifier_key"].as_str().unwrap()), "the verifier key is shown");
    for name in ["u-journalist", "u-plain", "s-agent", "s-other", "curious"] {
        assert!(!page.body.contains(name) && !report.to_string().contains(name), "{name} must not appear on the public page");
    }
    assert_eq!(f.get("/transparency?format=xml", None).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_records_report_carries_proofs_a_lawyer_can_check_and_is_logged() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let f = fixture().await;
    let start = f.t.vault.clock().now();
    f.unexplained_read("s-agent", "u-journalist").await;
    f.unexplained_read("s-agent", "u-plain").await;
    f.unexplained_read("s-other", "u-plain").await;
    f.t.vault.log(&f.t.region).unwrap().sign_now().await.unwrap();
    f.unexplained_read("s-agent", "u-plain").await; // after the checkpoint: not provable yet, not in the report
    let officer = f.token(OFFICER, &["compliance_officer"]);
    let get = async |query: &str, token: &str| {
        let request = Request::get(format!("/v1/records?{query}")).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
        f.send(request).await
    };

    let page = get("actor=s-agent", &officer).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut lines = page.body.lines().map(|line| serde_json::from_str::<Value>(line).unwrap());
    let header = lines.next().unwrap();
    let lines: Vec<Value> = lines.collect();
    assert_eq!((header["format"].clone(), header["records"].clone(), header["truncated"].clone()), (json!("custos-records/1"), json!(2), json!(false)), "{header}");
    let checkpoint = header["checkpoints"][f.t.region.as_str()].as_str().unwrap();
    let note = tlog::Note::parse(checkpoint.as_bytes()).unwrap();
    for line in &lines {
        assert_eq!(line["record"]["actor"]["id"], "s-agent");
        let entry = STANDARD.decode(line["entry"].as_str().unwrap()).unwrap();
        let index = line["index"].as_u64().unwrap();
        let hashes = line["proof"].as_array().unwrap().iter().map(|hash| tlog::Hash::from_slice(&STANDARD.decode(hash.as_str().unwrap()).unwrap()).unwrap()).collect();
        let proof = tlog::TlogProof::new(None, tlog::LeafIndex(index), hashes, note.clone()).unwrap();
        let leaf_hash = tlog::Hash::from_slice(&STANDARD.decode(line["leaf_hash"].as_str().unwrap()).unwrap()).unwrap();
        let receipt = audit::Receipt { origin: line["origin"].as_str().unwrap().to_owned(), index: tlog::LeafIndex(index), leaf_hash };
        audit::verify_receipt(&receipt, &entry, &proof, &f.t.log_verifier_key()).unwrap();
        // An altered record fails: the entry no longer hashes to the receipt.
        let mut altered = entry.clone();
        let last = altered.len() - 2;
        altered[last] ^= 1;
        assert!(audit::verify_receipt(&receipt, &altered, &proof, &f.t.log_verifier_key()).is_err());
    }
    let views = f.record_views().await;
    let report_view = views.iter().find(|view| view.view == "report").expect("the report is logged");
    assert_eq!((report_view.target.as_str(), report_view.by.id.as_str()), ("actor s-agent", OFFICER));
    assert_eq!(indexes(&report_view.shown), lines.iter().map(|line| line["index"].as_u64().unwrap()).collect::<Vec<_>>());

    // CSV and HTML carry the same records.
    let csv = get("actor=s-agent&format=csv", &officer).await;
    assert_eq!(csv.body.lines().count(), 3, "{}", csv.body);
    assert!(csv.body.starts_with("at,region,index,type,actor,purpose,case,subject,fields,decision,approved_by,leaf_hash"), "{}", csv.body);
    assert!(csv.body.contains("u-journalist") && csv.body.contains("email: masked → deny"), "{}", csv.body);
    let html = get("actor=s-agent&format=html", &officer).await;
    assert_eq!(decision_rows(&html.body), 2, "{}", html.body);
    // A period: every entry from the start, the other actor's too.
    let since = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let until = (start + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let period = get(&format!("since={since}&until={until}"), &officer).await;
    let header: Value = serde_json::from_str(period.body.lines().next().unwrap()).unwrap();
    assert!(header["records"].as_u64().unwrap() >= 3, "{header}");
    assert!(period.body.contains("s-other"));

    // Refusals: no role, two scopes, half a period, a bad format.
    assert_eq!(get("actor=s-agent", &f.token("s-agent", &["support_agent"])).await.status, StatusCode::FORBIDDEN);
    for bad in ["actor=s-agent&case=T-1", "since=2026-01-01T00:00:00Z", "", "actor=s-agent&format=pdf", &format!("since={until}&until={since}")] {
        let page = get(bad, &officer).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}: {}", page.body);
    }
}

#[tokio::test]
async fn what_if_lists_the_decisions_a_proposed_set_would_change() {
    let f = fixture().await;
    let case = json!({"id": "T-1", "purpose": "support", "assignees": ["s-agent"], "subjects": ["u-plain"], "requested_by": "u-plain"});
    let request = Request::post("/v1/cases")
        .header("authorization", format!("Bearer {SERVICE_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(case.to_string()))
        .unwrap();
    assert_eq!(f.send(request).await.status, StatusCode::CREATED);
    let body = json!({"subjects": ["u-plain"], "fields": {"email": "masked"}, "purpose": "support", "case": "T-1"});
    let request = Request::post("/v1/access")
        .header("authorization", format!("Bearer {}", f.token("s-agent", &["support_agent"])))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let answer = f.send(request).await;
    assert!(answer.body.contains("\"masked\""), "{}", answer.body);
    f.unexplained_read("s-other", "u-journalist").await;
    let cookie = f.sign_in(&f.token(OFFICER, &["compliance_officer"])).await;

    // The page shows the set in force, ready to edit.
    let policies = f.get("/console/policies", Some(&cookie)).await;
    assert!(policies.body.contains("case-required") && policies.body.contains("id=\"proposed\""), "{}", policies.body);
    let in_force = policies.body.split("id=\"proposed\"").nth(1).unwrap().split_once('>').unwrap().1.split("</textarea>").next().unwrap();
    let in_force = in_force.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let run = async |text: &str, days: &str| f.form("/console/policies/what-if", Some(&cookie), &[("policies", text), ("days", days)], None).await;

    // The set in force changes nothing.
    let same = run(&in_force, "7").await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert!(same.body.contains("2 access decisions of the last 7 days decided again") && same.body.contains("0 would change"), "{}", same.body);
    // A set that forbids email turns the allowed read into a refusal; the refused one stays.
    let proposed = format!("{in_force}\n@id(\"no-email\")\n@reason(\"no email for anyone\")\nforbid (principal, action, resource) when {{ context.field == \"email\" }};\n");
    let changed = run(&proposed, "7").await;
    assert!(changed.body.contains("1 would change"), "{}", changed.body);
    assert!(changed.body.contains("allow (masked)") && changed.body.contains("<strong>deny</strong>"), "{}", changed.body);
    let views = f.record_views().await;
    let last = views.last().unwrap();
    assert_eq!((last.view.as_str(), last.shown.len()), ("what_if", 1), "the decisions shown are logged: {views:?}");
    assert_eq!(indexes(&last.shown), f.accesses_of("s-agent").await);
    assert!(changed.body.contains("<td>allow (masked)</td><td>allow (masked)</td><td><strong>deny</strong></td>"), "logged, in force, proposed: {}", changed.body);
    // The case closed since: the set in force no longer allows that read either. An unchanged
    // set still changes nothing (the closing is not the proposal's doing), and the drift is
    // counted apart.
    let close = Request::patch("/v1/cases/T-1")
        .header("authorization", format!("Bearer {SERVICE_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"status": "closed"}).to_string()))
        .unwrap();
    assert_eq!(f.send(close).await.status, StatusCode::OK);
    let drifted = run(&in_force, "7").await;
    assert!(drifted.body.contains("0 would change") && drifted.body.contains("1 fields are no longer decided as logged"), "{}", drifted.body);
    // A set that does not load is refused, naming the problem; a bad window is an error.
    let broken = run("permit (principal, action, resource) when { nonsense };", "7").await;
    assert!(broken.body.contains("id=\"what-if-error\""), "{}", broken.body);
    assert_eq!(run(&in_force, "0").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_record_of_processing_is_generated_for_officers_and_auditors() {
    let f = fixture().await;
    let get = async |query: &str, token: &str| {
        let request = Request::get(format!("/v1/processing{query}")).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
        f.send(request).await
    };
    let officer = f.token(OFFICER, &["compliance_officer"]);
    let views_before = f.record_views().await.len();

    let page = get("", &officer).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let record: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!((record["format"].clone(), record["controller"]["name"].clone()), (json!("custos-processing/1"), json!("Example Platform Ltd")));
    assert_eq!(record["purposes"].as_array().unwrap().len(), 11);
    let gaps: Vec<&str> = record["gaps"].as_array().unwrap().iter().map(|gap| gap.as_str().unwrap()).collect();
    assert!(gaps.iter().any(|gap| gap.starts_with("no legal basis for purpose fraud")), "{gaps:?}");
    assert!(!gaps.iter().any(|gap| gap.starts_with("no legal basis for purpose support") || gap.starts_with("no controller")), "{gaps:?}");

    // An auditor may read it too; CSV has a row per purpose and field, HTML reads as a page.
    let auditor = f.token("s-auditor", &["auditor"]);
    let csv = get("?format=csv", &auditor).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body.lines().count(), 1 + 11 * 8, "{}", csv.body);
    assert!(csv.body.contains("support,,Art. 6(1)(b) GDPR,staff,contractor_agent; support_agent; support_tier2,"), "{}", csv.body);
    let html = get("?format=html", &officer).await;
    assert!(html.body.contains("<h1>Record of processing activities</h1>") && html.body.contains("<h3>internal_investigation</h3>"), "{}", html.body);

    // The console shows the same record to a signed-in officer.
    let cookie = f.sign_in(&officer).await;
    let page = f.get("/console/processing", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Record of processing activities") && page.body.contains("href=\"/console/processing\""), "{}", page.body);

    // Refusals: no role, a bad format. Reading configuration is not reading access records:
    // nothing was logged as a record view.
    assert_eq!(get("", &f.token("s-agent", &["support_agent"])).await.status, StatusCode::FORBIDDEN);
    assert_eq!(get("?format=pdf", &officer).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(f.record_views().await.len(), views_before);
}
