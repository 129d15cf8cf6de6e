//! Token verification against a key set file: the happy path for each allowed algorithm,
//! and every attack the issue lists rejected with its own error.

mod common;

use auth::{Identity, IdentityKind, TOKEN_BYTES_MAX, TokenError, TokenVerifier};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use common::{AUDIENCE, TestKey, claims, file_verifier, now, rsa_key, signing_input};
use serde_json::{Value, json};

struct Fixture {
    _directory: tempfile::TempDir,
    verifier: TokenVerifier,
    ed25519: TestKey,
    es256: TestKey,
}

async fn fixture() -> Fixture {
    let directory = tempfile::tempdir().expect("temp dir");
    let ed25519 = TestKey::ed25519("ed-1");
    let es256 = TestKey::es256("ec-1");
    let verifier = file_verifier(directory.path(), &[&ed25519, &es256, rsa_key()]).await;
    Fixture {
        _directory: directory,
        verifier,
        ed25519,
        es256,
    }
}

fn expected_identity() -> Identity {
    Identity {
        id: "alice".to_owned(),
        kind: IdentityKind::Staff,
        roles: vec!["support".to_owned(), "analyst".to_owned()],
        team: Some("payments".to_owned()),
        entity: Some("example-gmbh".to_owned()),
        country: Some("DE".to_owned()),
        region: Some("eu".to_owned()),
        expires_at: now() + TimeDelta::seconds(300),
        token_id: Some("token-1".to_owned()),
    }
}

/// `claims()` with `changes` applied; a `null` change removes the claim.
fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().expect("object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

async fn refused(fixture: &Fixture, token: &str) -> TokenError {
    let error = fixture
        .verifier
        .verify(token, now())
        .await
        .expect_err("token must be refused");
    // Messages never repeat the token or any of its parts.
    let message = error.to_string();
    for part in token.split('.').filter(|part| part.len() > 8) {
        assert!(
            !message.contains(part),
            "error message {message:?} repeats the token"
        );
    }
    error
}

#[tokio::test]
async fn accepts_eddsa_es256_and_rs256() {
    let fixture = fixture().await;
    for key in [&fixture.ed25519, &fixture.es256, rsa_key()] {
        let identity = fixture.verifier.verify(&key.token(&claims()), now()).await;
        assert_eq!(identity.expect(key.alg), expected_identity(), "{}", key.alg);
    }
}

#[tokio::test]
async fn maps_machine_kind_and_audience_lists() {
    let fixture = fixture().await;
    let token = fixture.ed25519.token(&claims_with(json!({
        "custos_kind": "machine",
        "aud": ["other-service", AUDIENCE],
        "roles": null, "team": null, "entity": null, "country": null, "region": null, "jti": null,
    })));
    let identity = fixture
        .verifier
        .verify(&token, now())
        .await
        .expect("machine token");
    assert_eq!(identity.kind, IdentityKind::Machine);
    assert!(identity.roles.is_empty());
    assert_eq!(
        (identity.team, identity.region, identity.token_id),
        (None, None, None)
    );
}

#[tokio::test]
async fn refuses_alg_none() {
    let fixture = fixture().await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": fixture.ed25519.kid });
        // An unsecured JWS has an empty signature (RFC 7519 §6.1).
        let token = format!("{}.", signing_input(&header, &claims()));
        match refused(&fixture, &token).await {
            TokenError::AlgorithmNotAllowed { alg: refused_alg } => assert_eq!(refused_alg, alg),
            other => panic!("alg {alg}: expected AlgorithmNotAllowed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn refuses_hmac_signed_with_the_rsa_public_key() {
    let fixture = fixture().await;
    let rsa = rsa_key();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": rsa.kid });
    let signed = signing_input(&header, &claims());
    let secret = hmac::Key::new(hmac::HMAC_SHA256, rsa.rsa_public_pem().as_bytes());
    let signature = hmac::sign(&secret, signed.as_bytes());
    let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    match refused(&fixture, &token).await {
        TokenError::AlgorithmNotAllowed { alg } => assert_eq!(alg, "HS256"),
        other => panic!("expected AlgorithmNotAllowed, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_a_token_signed_by_another_key_under_a_trusted_kid() {
    let fixture = fixture().await;
    let attacker = TestKey::ed25519(&fixture.ed25519.kid);
    let error = refused(&fixture, &attacker.token(&claims())).await;
    assert!(matches!(error, TokenError::BadSignature), "{error:?}");
}

#[tokio::test]
async fn refuses_a_key_used_with_another_algorithm() {
    let fixture = fixture().await;
    // An ES256 signature presented under the RSA key's kid.
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": rsa_key().kid });
    let error = refused(
        &fixture,
        &fixture.es256.token_with_header(&header, &claims()),
    )
    .await;
    assert!(matches!(error, TokenError::KeyMismatch { .. }), "{error:?}");
}

#[tokio::test]
async fn refuses_expired_and_not_yet_valid_tokens() {
    let fixture = fixture().await;
    let now = now().timestamp();
    let expired = fixture.ed25519.token(&claims_with(
        json!({ "exp": now - 3600, "nbf": now - 7200 }),
    ));
    assert!(matches!(
        refused(&fixture, &expired).await,
        TokenError::Expired
    ));
    let early = fixture
        .ed25519
        .token(&claims_with(json!({ "nbf": now + 120 })));
    assert!(matches!(
        refused(&fixture, &early).await,
        TokenError::NotYetValid
    ));
}

#[tokio::test]
async fn forgives_clock_skew_up_to_the_leeway() {
    let fixture = fixture().await;
    let now = now().timestamp();
    let cases = [
        (json!({ "exp": now - 10 }), None),
        (json!({ "exp": now - 31 }), Some("expired")),
        (json!({ "nbf": now + 10 }), None),
        (json!({ "nbf": now + 31 }), Some("not yet valid")),
    ];
    for (changes, expected) in cases {
        let token = fixture.ed25519.token(&claims_with(changes.clone()));
        let result = fixture.verifier.verify(&token, common::now()).await;
        match (result, expected) {
            (Ok(_), None) => {}
            (Err(TokenError::Expired), Some("expired")) => {}
            (Err(TokenError::NotYetValid), Some("not yet valid")) => {}
            (result, expected) => panic!("{changes}: expected {expected:?}, got {result:?}"),
        }
    }
}

#[tokio::test]
async fn refuses_wrong_audience_and_issuer() {
    let fixture = fixture().await;
    let cases = [
        (json!({ "aud": "another-service" }), "token_wrong_audience"),
        (json!({ "aud": ["a", "b"] }), "token_wrong_audience"),
        (
            json!({ "iss": "https://evil.example.test" }),
            "token_wrong_issuer",
        ),
        (json!({ "iss": null }), "token_missing_claim"),
        (json!({ "aud": null }), "token_missing_claim"),
        (json!({ "exp": null }), "token_missing_claim"),
        (json!({ "sub": null }), "token_missing_claim"),
        (json!({ "exp": "tomorrow" }), "token_invalid_claim"),
        (json!({ "roles": "admin" }), "token_invalid_claim"),
        (json!({ "custos_kind": "robot" }), "token_invalid_claim"),
        (json!({ "sub": "" }), "token_invalid_claim"),
    ];
    for (changes, code) in cases {
        let token = fixture.es256.token(&claims_with(changes.clone()));
        assert_eq!(refused(&fixture, &token).await.code(), code, "{changes}");
    }
}

#[tokio::test]
async fn refuses_tampered_claims() {
    let fixture = fixture().await;
    for key in [&fixture.ed25519, &fixture.es256, rsa_key()] {
        let token = key.token(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = claims_with(json!({ "roles": ["admin"], "sub": "mallory" }));
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged.to_string()),
            parts[2]
        );
        let error = refused(&fixture, &tampered).await;
        assert!(
            matches!(error, TokenError::BadSignature),
            "{}: {error:?}",
            key.alg
        );
    }
}

#[tokio::test]
async fn refuses_an_unknown_kid() {
    let fixture = fixture().await;
    let stranger = TestKey::ed25519("not-in-the-set");
    match refused(&fixture, &stranger.token(&claims())).await {
        TokenError::UnknownKey { kid } => assert_eq!(kid, "not-in-the-set"),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_malformed_tokens() {
    let fixture = fixture().await;
    let good = fixture.ed25519.token(&claims());
    let no_kid = fixture
        .ed25519
        .token_with_header(&json!({ "alg": "EdDSA" }), &claims());
    let critical = fixture.ed25519.token_with_header(
        &json!({ "alg": "EdDSA", "kid": "ed-1", "crit": ["exp"] }),
        &claims(),
    );
    let cases = [
        ("".to_owned(), "token_malformed"),
        ("a.b".to_owned(), "token_malformed"),
        (format!("{good}.extra"), "token_malformed"),
        ("!!!.e30.sig".to_owned(), "token_malformed"),
        (
            format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("[1]")),
            "token_malformed",
        ),
        (no_kid, "token_missing_claim"),
        (critical, "token_malformed"),
        ("a".repeat(TOKEN_BYTES_MAX + 1), "token_too_large"),
    ];
    for (token, code) in cases {
        let error = fixture
            .verifier
            .verify(&token, now())
            .await
            .expect_err("malformed");
        assert_eq!(error.code(), code, "{error}");
    }
}

#[test]
fn every_refusal_has_its_own_code() {
    let codes = [
        TokenError::Malformed { reason: "x" }.code(),
        TokenError::AlgorithmNotAllowed {
            alg: "none".to_owned(),
        }
        .code(),
        TokenError::UnknownKey {
            kid: "k".to_owned(),
        }
        .code(),
        TokenError::KeyMismatch {
            kid: "k".to_owned(),
            alg: "ES256".to_owned(),
        }
        .code(),
        TokenError::BadSignature.code(),
        TokenError::Expired.code(),
        TokenError::NotYetValid.code(),
        TokenError::WrongIssuer.code(),
        TokenError::WrongAudience.code(),
        TokenError::MissingClaim { name: "exp" }.code(),
        TokenError::InvalidClaim { name: "exp" }.code(),
        TokenError::TooLarge.code(),
    ];
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
}

/// The server shares one verifier across request tasks on a multi-threaded runtime.
#[test]
fn the_verifier_is_shareable_across_tasks() {
    fn shareable<T: Clone + Send + Sync + 'static>(_: &T) {}
    fn sendable<F: std::future::Future + Send>(_: F) {}
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let fixture = runtime.block_on(fixture());
    shareable(&fixture.verifier);
    sendable(fixture.verifier.verify("token", now()));
}
