//! Shared by the HTTP tests: a node with access control over a test vault, whose staff and
//! machine tokens come from a development issuer (Ed25519 JWTs verified against its JWKS
//! file) and whose integrations hold one service token.

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use service::testing::TestVault;
use service::{Gate, ServiceToken};

/// The development issuer in the test's directory, and the state of a node with `gate`,
/// that issuer's verifier and `service_token` as its one service token.
pub async fn issuer_and_state(t: &TestVault, gate: &Arc<Gate>, service_token: &str) -> (auth::DevIssuer, server::AppState) {
    let issuer_dir = t.root.path().join("issuer");
    std::fs::create_dir(&issuer_dir).unwrap();
    let issuer = auth::DevIssuer::create(&issuer_dir, "https://id.test", "custos").unwrap();
    let verifier = auth::TokenVerifier::new(issuer.identity_config()).await.unwrap();
    let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, service_token.as_bytes()));
    let tokens = vec![ServiceToken { name: "tests".to_owned(), sha256: digest }];
    (issuer, server::AppState::with_gate(Arc::clone(gate), tokens, Some(verifier)))
}

/// A staff token from `issuer` for `id` with `roles`, of entity `entity-us` in the US and the
/// `us` region, valid for ten minutes from `now`.
pub fn staff_token(issuer: &auth::DevIssuer, now: chrono::DateTime<chrono::Utc>, id: &str, roles: &[&str]) -> String {
    let claims = auth::IdentityClaims {
        id: id.to_owned(),
        kind: auth::IdentityKind::Staff,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        team: None,
        entity: Some("entity-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    };
    issuer.mint(&claims, now, std::time::Duration::from_secs(600)).unwrap()
}
