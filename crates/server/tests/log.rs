//! The access log over HTTP, through `app()` with real SQLite and PostgreSQL stores: entries
//! appended through the vault, the checkpoint, every tile and entry bundle fetched over
//! HTTP and audited with the `audit` crate, cache headers, entry bundles refused without a
//! token, proofs checked with tlog's verifiers, and JSON errors for bad requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::Value;
use service::ServiceToken;
use service::testing::{TestVault, postgres_vault, sqlite_vault};
use tlog::{Checkpoint, Hash, LeafIndex, Note, TreeSize, bundles_for_size, tiles_for_size, verify_consistency, verify_inclusion};
use tower::ServiceExt;

const TOKEN: &str = "cst_test-token-for-the-log-tests";

fn app(t: &TestVault) -> Router {
    let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, TOKEN.as_bytes()));
    server::app(server::AppState {
        vault: t.vault.clone(),
        service_tokens: Arc::new(vec![ServiceToken { name: "tests".to_owned(), sha256: digest }]),
        gate: None,
        identity: None,
        alerts: None,
        transparency: Default::default(),
        processing: None,
    })
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |value| value.to_str().unwrap())
    }
}

async fn send(app: &Router, method: &str, path: &str, token: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, headers, body }
}

async fn get(app: &Router, path: &str) -> Answer {
    send(app, "GET", path, None).await
}

/// Appends `count` entries concurrently (so the sequencer batches them); returns the leaf
/// hashes by index.
async fn append(t: &TestVault, first: usize, count: usize) -> BTreeMap<u64, Hash> {
    let mut tasks = tokio::task::JoinSet::new();
    for number in first..first + count {
        let vault = Arc::clone(&t.vault);
        let region = t.region.clone();
        tasks.spawn(async move { vault.append_log(&region, format!("decision {number}").into_bytes()).await.unwrap() });
    }
    let mut leaves = BTreeMap::new();
    while let Some(receipt) = tasks.join_next().await {
        let receipt = receipt.unwrap();
        assert_eq!(receipt.origin, format!("custos.test/custos/{}", t.region));
        leaves.insert(receipt.index.0, receipt.leaf_hash);
    }
    leaves
}

/// Signs over HTTP and returns the parsed checkpoint.
async fn sign(app: &Router, region: &str) -> Checkpoint {
    let answer = send(app, "POST", &format!("/v1/log/{region}/checkpoint"), Some(TOKEN)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let note = Note::parse(answer.json()["checkpoint"].as_str().unwrap().as_bytes()).unwrap();
    Checkpoint::parse(note.text()).unwrap()
}

fn decode_hashes(proof: &Value) -> Vec<Hash> {
    proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hash| Hash::from_slice(&base64::engine::general_purpose::STANDARD.decode(hash.as_str().unwrap()).unwrap()).unwrap())
        .collect()
}

async fn log_is_served_and_verifies(t: TestVault) {
    let app = app(&t);
    let region = t.region.to_string();
    let prefix = format!("/log/{region}");

    // A first tree, signed: the anchor for consistency and inclusion in an older tree.
    let mut leaves = append(&t, 0, 100).await;
    let first = sign(&app, &region).await;
    assert_eq!(first.size(), TreeSize(100));
    // Past one full level-0 tile, so full and partial tiles and bundles are all served.
    leaves.extend(append(&t, 100, 200).await);
    let second = sign(&app, &region).await;
    assert_eq!(second.size(), TreeSize(300));
    assert_eq!(leaves.keys().copied().collect::<Vec<_>>(), (0..300).collect::<Vec<_>>());

    let checkpoint = get(&app, &format!("{prefix}/checkpoint")).await;
    assert_eq!(checkpoint.status, StatusCode::OK);
    assert_eq!(checkpoint.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(checkpoint.header("cache-control"), server::CHECKPOINT_CACHE_CONTROL);

    let mut fetched = BTreeMap::new();
    fetched.insert("checkpoint".to_owned(), checkpoint.body);
    for tile in tiles_for_size(second.size()) {
        let answer = get(&app, &format!("{prefix}/{}", tile.path())).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", tile.path());
        assert_eq!(answer.header("content-type"), "application/octet-stream");
        let expected = if tile.is_partial() { server::PARTIAL_TILE_CACHE_CONTROL } else { server::FULL_TILE_CACHE_CONTROL };
        assert_eq!(answer.header("cache-control"), expected, "{}", tile.path());
        fetched.insert(tile.path(), answer.body);
    }
    let bundles = bundles_for_size(second.size());
    assert_eq!(bundles.len(), 2);
    for bundle in bundles {
        let refused = get(&app, &format!("{prefix}/{}", bundle.path())).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", bundle.path());
        assert_eq!(refused.json()["error"]["code"], "unauthenticated");
        let answer = send(&app, "GET", &format!("{prefix}/{}", bundle.path()), Some(TOKEN)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", bundle.path());
        let expected = if bundle.is_partial() { server::PARTIAL_BUNDLE_CACHE_CONTROL } else { server::FULL_BUNDLE_CACHE_CONTROL };
        assert_eq!(answer.header("cache-control"), expected);
        fetched.insert(bundle.path(), answer.body);
    }
    let options = audit::verify::VerifyOptions { entries: true, ..Default::default() };
    let report = audit::verify::verify_log(&fetched, &t.log_verifier_key(), None, options).unwrap();
    assert_eq!(report.checkpoint.size(), TreeSize(300));
    assert_eq!(report.entries_verified, Some(300));
    assert_eq!(report.partial_tile_fallbacks, 0);
    // The entries carry the appended decisions behind their salts.
    let entries = tlog::decode_bundle(&fetched["tile/entries/001.p/44"]).unwrap();
    assert_eq!(entries.len(), 44);
    for entry in entries {
        let text = String::from_utf8_lossy(&entry);
        let number: u64 = text.rsplit_once("decision ").unwrap().1.parse().unwrap();
        assert!((100..300).contains(&number), "entry {number} was appended after the first checkpoint");
    }

    // The audited state extends the first checkpoint: the auditor's own consistency check.
    let previous = audit::TrustedState::from_checkpoint(&first);
    let mut first_tiles = BTreeMap::new();
    first_tiles.insert("checkpoint".to_owned(), fetched["checkpoint"].clone());
    for tile in tiles_for_size(second.size()) {
        first_tiles.insert(tile.path(), fetched[&tile.path()].clone());
    }
    audit::verify::verify_log(&first_tiles, &t.log_verifier_key(), Some(&previous), Default::default()).unwrap();

    // Beyond the tree, and paths that are not tiles.
    for path in ["tile/0/002", "tile/0/001", "tile/1/000", "tile/0/001.p/45", "tile/0/x", "tile/0/0001", "checkpoints"] {
        let answer = send(&app, "GET", &format!("{prefix}/{path}"), Some(TOKEN)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        if path.starts_with("tile/") {
            assert_eq!(answer.json()["error"]["code"], "tile_not_found", "{path}");
        }
    }
    let beyond = send(&app, "GET", &format!("{prefix}/tile/entries/002"), Some(TOKEN)).await;
    assert_eq!(beyond.status, StatusCode::NOT_FOUND);

    // Inclusion proofs, in the newest and in the older signed tree.
    for (index, checkpoint) in [(0, &second), (99, &second), (255, &second), (256, &second), (299, &second), (0, &first), (42, &first), (99, &first)] {
        let size = checkpoint.size().0;
        let answer = get(&app, &format!("/v1/log/{region}/proof/inclusion?index={index}&size={size}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{index} in {size}");
        let proof = decode_hashes(&answer.json());
        verify_inclusion(leaves[&index], LeafIndex(index), checkpoint.size(), &proof, checkpoint.root()).unwrap();
        // The proof is bound to its leaf.
        let other = leaves[&((index + 1) % size)];
        assert!(verify_inclusion(other, LeafIndex(index), checkpoint.size(), &proof, checkpoint.root()).is_err());
    }
    let answer = get(&app, &format!("/v1/log/{region}/proof/consistency?old=100&new=300")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let proof = decode_hashes(&answer.json());
    verify_consistency(first.size(), second.size(), first.root(), second.root(), &proof).unwrap();
    for (old, new) in [(0, 300), (300, 300), (1, 300), (256, 300), (100, 100)] {
        let answer = get(&app, &format!("/v1/log/{region}/proof/consistency?old={old}&new={new}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{old}..{new}");
        assert_eq!(answer.json()["old"], old);
        if (old, new) == (300, 300) || old == 0 {
            assert!(decode_hashes(&answer.json()).is_empty());
        }
    }

    // Bad parameters give JSON errors.
    for query in [
        "inclusion?index=300&size=300",
        "inclusion?index=0&size=301",
        "inclusion?index=0",
        "inclusion?index=a&size=3",
        "inclusion?index=-1&size=3",
        "inclusion?index=0&size=3&extra=1",
        "consistency?old=200&new=100",
        "consistency?old=0&new=301",
        "consistency?new=3",
    ] {
        let answer = get(&app, &format!("/v1/log/{region}/proof/{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json()["error"]["code"], "invalid_request", "{query}");
    }
}

#[tokio::test]
async fn log_is_served_and_verifies_on_sqlite() {
    log_is_served_and_verifies(sqlite_vault(None).await).await;
}

#[tokio::test]
async fn log_is_served_and_verifies_on_postgres() {
    if let Some(t) = postgres_vault(None, None).await {
        log_is_served_and_verifies(t).await;
    }
}

#[tokio::test]
async fn signing_needs_a_token_and_other_regions_are_refused() {
    let t = sqlite_vault(None).await;
    let app = app(&t);
    let refused = send(&app, "POST", "/v1/log/us/checkpoint", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["code"], "unauthenticated");
    let refused = send(&app, "POST", "/v1/log/us/checkpoint", Some("cst_wrong")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // A new log publishes its empty tree.
    let empty = get(&app, "/log/us/checkpoint").await;
    assert_eq!(empty.status, StatusCode::OK);
    let note = Note::parse(&empty.body).unwrap();
    assert_eq!(Checkpoint::parse(note.text()).unwrap().size(), TreeSize(0));

    for path in [
        "/log/eu/checkpoint",
        "/log/eu/tile/0/000",
        "/v1/log/eu/proof/inclusion?index=0&size=1",
        "/v1/log/eu/proof/consistency?old=0&new=1",
    ] {
        let answer = send(&app, "GET", path, Some(TOKEN)).await;
        assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST, "{path}");
        assert_eq!(answer.json()["error"]["code"], "region_not_served", "{path}");
    }
    let answer = send(&app, "POST", "/v1/log/eu/checkpoint", Some(TOKEN)).await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    let answer = get(&app, "/log/NOT%20A%20REGION/checkpoint").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn the_openapi_document_lists_the_log_endpoints() {
    let t = sqlite_vault(None).await;
    let answer = get(&app(&t), "/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.json();
    for path in [
        "/log/{region}/checkpoint",
        "/log/{region}/tile/{path}",
        "/v1/log/{region}/proof/inclusion",
        "/v1/log/{region}/proof/consistency",
        "/v1/log/{region}/checkpoint",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(document["paths"]["/v1/log/{region}/checkpoint"]["post"]["security"].is_array());
}
