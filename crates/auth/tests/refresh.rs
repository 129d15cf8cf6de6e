//! The key set served over HTTP: refreshed when a token names an unknown `kid`, at most once
//! per refresh interval, and when the cached set grows old. Time is tokio's paused clock, so
//! the interval passes without sleeping.

mod common;

use std::time::Duration;

use auth::{
    IdentityConfig, IdentityError, JWKS_CACHE_AGE_MAX, JWKS_REFRESH_INTERVAL_MIN, JwksError,
    JwksSource, TokenError, TokenVerifier,
};
use common::{AUDIENCE, ISSUER, JwksServer, TestKey, claims, jwks, now};

async fn url_verifier(server: &JwksServer) -> TokenVerifier {
    TokenVerifier::new(IdentityConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::Url(server.url.clone()),
    ))
    .await
    .expect("verifier")
}

#[tokio::test(start_paused = true)]
async fn a_new_kid_is_fetched_once_and_unknown_kids_do_not_hammer_the_issuer() {
    let (first, second, unknown) = (
        TestKey::ed25519("k1"),
        TestKey::es256("k2"),
        TestKey::ed25519("k3"),
    );
    let server = JwksServer::start(&jwks(&[&first])).await;
    let verifier = url_verifier(&server).await;
    assert_eq!(server.requests(), 1, "the key set is loaded once at start");

    verifier
        .verify(&first.token(&claims()), now())
        .await
        .expect("known kid");
    assert_eq!(server.requests(), 1, "a known kid needs no fetch");

    // The issuer rotates in a second key: the first token naming it triggers a refresh.
    server.serve(200, &jwks(&[&first, &second]));
    let identity = verifier
        .verify(&second.token(&claims()), now())
        .await
        .expect("new kid after refresh");
    assert_eq!(identity.id, "alice");
    assert_eq!(server.requests(), 2);

    // Still-unknown kids within the interval are refused without another fetch.
    for _ in 0..5 {
        let error = verifier
            .verify(&unknown.token(&claims()), now())
            .await
            .expect_err("unknown kid");
        assert!(matches!(error, TokenError::UnknownKey { .. }), "{error:?}");
    }
    assert_eq!(
        server.requests(),
        2,
        "no second fetch within the refresh interval"
    );

    // Once the interval has passed, one more fetch is allowed.
    tokio::time::advance(JWKS_REFRESH_INTERVAL_MIN + Duration::from_secs(1)).await;
    let error = verifier
        .verify(&unknown.token(&claims()), now())
        .await
        .expect_err("still unknown");
    assert!(matches!(error, TokenError::UnknownKey { .. }), "{error:?}");
    assert_eq!(server.requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_is_reported_and_known_keys_keep_working() {
    let (first, rotated) = (TestKey::ed25519("k1"), TestKey::ed25519("k2"));
    let server = JwksServer::start(&jwks(&[&first])).await;
    let verifier = url_verifier(&server).await;
    server.serve(503, &serde_json::json!({ "error": "down" }));

    let error = verifier
        .verify(&rotated.token(&claims()), now())
        .await
        .expect_err("issuer down");
    assert!(matches!(error, TokenError::Jwks(_)), "{error:?}");
    assert_eq!(error.code(), "identity_provider_unavailable");
    verifier
        .verify(&first.token(&claims()), now())
        .await
        .expect("cached key still verifies");
    assert_eq!(server.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_old_key_set_is_refreshed_and_withdrawn_keys_stop_verifying() {
    let (first, second) = (TestKey::ed25519("k1"), TestKey::ed25519("k2"));
    let server = JwksServer::start(&jwks(&[&first, &second])).await;
    let verifier = url_verifier(&server).await;
    verifier
        .verify(&first.token(&claims()), now())
        .await
        .expect("k1 before withdrawal");

    server.serve(200, &jwks(&[&second]));
    tokio::time::advance(JWKS_CACHE_AGE_MAX).await;
    let error = verifier
        .verify(&first.token(&claims()), now())
        .await
        .expect_err("k1 withdrawn");
    assert!(matches!(error, TokenError::UnknownKey { .. }), "{error:?}");
    verifier
        .verify(&second.token(&claims()), now())
        .await
        .expect("k2 still trusted");
    assert_eq!(server.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_remembered_token_counts_only_inside_its_window_and_while_its_key_set_is_current() {
    let (first, second) = (TestKey::ed25519("k1"), TestKey::ed25519("k2"));
    let server = JwksServer::start(&jwks(&[&first])).await;
    let verifier = url_verifier(&server).await;
    let token = first.token(&claims());
    verifier.verify(&token, now()).await.expect("first verification");
    verifier.verify(&token, now()).await.expect("remembered");

    // Remembered, the token's own window still decides: before `nbf` and from `exp` on
    // (each with the 30 s leeway) it is refused as it would be afresh.
    let error = verifier.verify(&token, now() - chrono::Duration::seconds(60 + 31)).await.expect_err("not yet valid");
    assert!(matches!(error, TokenError::NotYetValid), "{error:?}");
    verifier.verify(&token, now() + chrono::Duration::seconds(300 + 29)).await.expect("inside the leeway");
    let error = verifier.verify(&token, now() + chrono::Duration::seconds(300 + 60)).await.expect_err("expired");
    assert!(matches!(error, TokenError::Expired), "{error:?}");
    let error = verifier.verify(&token, now() + chrono::Duration::seconds(300 + 60)).await.expect_err("still expired, checked afresh");
    assert!(matches!(error, TokenError::Expired), "{error:?}");

    // The issuer withdraws k1; another token's new kid brings the new key set in. The
    // remembered token verified against the old set, so it is checked again, and refused.
    verifier.verify(&token, now()).await.expect("k1 before withdrawal");
    server.serve(200, &jwks(&[&second]));
    verifier.verify(&second.token(&claims()), now()).await.expect("k2 after refresh");
    let error = verifier.verify(&token, now()).await.expect_err("k1 withdrawn");
    assert!(matches!(error, TokenError::UnknownKey { .. }), "{error:?}");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_key_set_url_that_fails_at_start_is_a_configuration_error() {
    let server = JwksServer::start(&serde_json::json!({ "keys": [] })).await;
    let error = TokenVerifier::new(IdentityConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::Url(server.url.clone()),
    ))
    .await
    .expect_err("no usable key");
    assert!(
        matches!(error, IdentityError::Jwks(JwksError::NoUsableKey)),
        "{error:?}"
    );
}
