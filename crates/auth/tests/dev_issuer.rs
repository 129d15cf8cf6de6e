//! The development issuer: files it writes, refusal to overwrite or to open a readable key,
//! and tokens it mints verifying through the ordinary verifier.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use auth::{
    DEV_ISSUER_KEY_FILE, DEV_JWKS_FILE, DEV_TOKEN_TTL_MAX, DevIssuer, DevIssuerError,
    IdentityClaims, IdentityKind, TokenError, TokenVerifier,
};
use chrono::TimeDelta;
use common::now;

fn alice() -> IdentityClaims {
    IdentityClaims {
        id: "alice".to_owned(),
        kind: IdentityKind::Staff,
        roles: vec!["support".to_owned()],
        team: Some("payments".to_owned()),
        entity: None,
        country: Some("FR".to_owned()),
        region: Some("eu".to_owned()),
    }
}

#[tokio::test]
async fn minted_tokens_verify_as_the_claimed_identity() {
    let directory = tempfile::tempdir().expect("temp dir");
    let issuer =
        DevIssuer::create(directory.path(), "http://localhost/dev", "custos").expect("create");
    let verifier = TokenVerifier::new(issuer.identity_config())
        .await
        .expect("verifier");

    let token = issuer
        .mint(&alice(), now(), Duration::from_secs(600))
        .expect("mint");
    let identity = verifier.verify(&token, now()).await.expect("verify");
    assert_eq!(identity.id, "alice");
    assert_eq!(identity.kind, IdentityKind::Staff);
    assert_eq!(identity.roles, ["support"]);
    assert_eq!(
        (identity.team.as_deref(), identity.entity),
        (Some("payments"), None)
    );
    assert_eq!(
        (identity.country.as_deref(), identity.region.as_deref()),
        (Some("FR"), Some("eu"))
    );
    assert_eq!(identity.expires_at, now() + TimeDelta::seconds(600));
    assert_eq!(identity.token_id.as_ref().map(String::len), Some(32));

    let machine = IdentityClaims {
        id: "billing-service".to_owned(),
        kind: IdentityKind::Machine,
        ..IdentityClaims::default()
    };
    let token = issuer
        .mint(&machine, now(), Duration::from_secs(60))
        .expect("mint");
    assert_eq!(
        verifier.verify(&token, now()).await.expect("verify").kind,
        IdentityKind::Machine
    );

    // The token's lifetime is the ttl (plus the leeway), not the system clock's idea of it.
    let later = now() + TimeDelta::seconds(60 + 30);
    assert!(matches!(
        verifier.verify(&token, later).await,
        Err(TokenError::Expired)
    ));
}

#[tokio::test]
async fn reopened_issuer_mints_with_the_same_key() {
    let directory = tempfile::tempdir().expect("temp dir");
    let created = DevIssuer::create(directory.path(), "dev", "custos").expect("create");
    let mode = std::fs::metadata(directory.path().join(DEV_ISSUER_KEY_FILE))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let opened = DevIssuer::open(directory.path()).expect("open");
    assert_eq!(
        (opened.kid(), opened.issuer(), opened.audience()),
        (created.kid(), "dev", "custos")
    );
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(directory.path().join(DEV_JWKS_FILE)).expect("jwks"))
            .expect("json");
    assert_eq!(jwks["keys"][0]["kid"], created.kid());
    assert_eq!(
        jwks["keys"][0].get("d"),
        None,
        "the key set holds only the public key"
    );

    let verifier = TokenVerifier::new(created.identity_config())
        .await
        .expect("verifier");
    let token = opened
        .mint(&alice(), now(), Duration::from_secs(60))
        .expect("mint");
    verifier
        .verify(&token, now())
        .await
        .expect("token from the reopened issuer verifies");
}

#[test]
fn refuses_to_overwrite_or_to_open_a_readable_key() {
    let directory = tempfile::tempdir().expect("temp dir");
    DevIssuer::create(directory.path(), "dev", "custos").expect("create");
    let error = DevIssuer::create(directory.path(), "dev", "custos").expect_err("second create");
    assert!(matches!(error, DevIssuerError::Exists { .. }), "{error:?}");

    let key_path = directory.path().join(DEV_ISSUER_KEY_FILE);
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = DevIssuer::open(directory.path()).expect_err("readable key");
    assert!(
        matches!(error, DevIssuerError::LoosePermissions { mode: 0o644, .. }),
        "{error:?}"
    );
}

#[test]
fn refuses_tokens_the_verifier_would_refuse() {
    let directory = tempfile::tempdir().expect("temp dir");
    let issuer = DevIssuer::create(directory.path(), "dev", "custos").expect("create");
    for ttl in [Duration::ZERO, DEV_TOKEN_TTL_MAX + Duration::from_secs(1)] {
        let error = issuer
            .mint(&alice(), now(), ttl)
            .expect_err("ttl out of range");
        assert!(matches!(error, DevIssuerError::TtlInvalid), "{error:?}");
    }
    let nobody = IdentityClaims {
        id: String::new(),
        ..alice()
    };
    let error = issuer
        .mint(&nobody, now(), Duration::from_secs(60))
        .expect_err("empty id");
    assert!(
        matches!(error, DevIssuerError::InvalidClaims { .. }),
        "{error:?}"
    );
    let error = DevIssuer::create(tempfile::tempdir().expect("temp dir").path(), "", "custos")
        .expect_err("empty issuer");
    assert!(
        matches!(error, DevIssuerError::EmptyIssuerOrAudience),
        "{error:?}"
    );
}
