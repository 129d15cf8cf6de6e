//! The `[identity]` configuration and the key set document: what is accepted, and what is a
//! configuration error before any token is seen.

mod common;

use auth::{
    ALGORITHMS_DEFAULT, IdentityConfig, IdentityError, JWKS_KEYS_MAX, JwksError, JwksSource,
    LEEWAY_SECONDS_DEFAULT, TokenVerifier,
};
use common::{AUDIENCE, ISSUER, TestKey, claims, jwks, now};
use serde_json::{Value, json};

fn parse(text: &str) -> Result<IdentityConfig, toml::de::Error> {
    #[derive(serde::Deserialize)]
    struct File {
        identity: IdentityConfig,
    }
    toml::from_str::<File>(text).map(|file| file.identity)
}

#[test]
fn reads_the_identity_section_with_defaults() {
    let config = parse(
        r#"
        [identity]
        issuer = "https://id.example.test"
        audience = "custos"
        jwks_url = "https://id.example.test/jwks.json"
        "#,
    )
    .expect("valid section");
    assert_eq!(
        config.jwks,
        JwksSource::Url("https://id.example.test/jwks.json".to_owned())
    );
    assert_eq!(config.leeway_seconds, LEEWAY_SECONDS_DEFAULT);
    assert_eq!(
        config.algorithms,
        ALGORITHMS_DEFAULT.map(str::to_owned).to_vec()
    );

    let file = parse(
        r#"
        [identity]
        issuer = "i"
        audience = "a"
        jwks_file = "keys/jwks.json"
        leeway_seconds = 5
        algorithms = ["EdDSA"]
        "#,
    )
    .expect("valid section");
    assert_eq!(file.jwks, JwksSource::File("keys/jwks.json".into()));
    assert_eq!(
        (file.leeway_seconds, file.algorithms.as_slice()),
        (5, ["EdDSA".to_owned()].as_slice())
    );

    // Written back, it reads the same.
    let written = toml::to_string(&file).expect("serialize");
    assert_eq!(
        toml::from_str::<IdentityConfig>(&written).expect("round trip"),
        file
    );
}

#[test]
fn refuses_dangerous_or_ambiguous_sections() {
    let base = "issuer = \"i\"\naudience = \"a\"\n";
    let cases = [
        ("jwks_file = \"f\"\nalgorithms = [\"HS256\"]", "HS256"),
        (
            "jwks_file = \"f\"\nalgorithms = [\"EdDSA\", \"none\"]",
            "none",
        ),
        ("jwks_file = \"f\"\nalgorithms = []", "empty"),
        ("jwks_file = \"f\"\nleeway_seconds = 301", "leeway"),
        ("jwks_file = \"f\"\njwks_url = \"https://x\"", "exactly one"),
        ("", "exactly one"),
        ("jwks_url = \"ftp://x\"", "http"),
        ("jwks_file = \"f\"\nunknown = 1", "unknown field"),
    ];
    for (rest, expected) in cases {
        let text = format!("[identity]\n{base}{rest}\n");
        let error = parse(&text).expect_err(rest).to_string();
        assert!(error.contains(expected), "{rest}: {error}");
    }
}

#[tokio::test]
async fn the_verifier_checks_a_config_built_in_code() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut config = IdentityConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::File(directory.path().join("absent.json")),
    );
    config.algorithms.push("HS256".to_owned());
    let error = TokenVerifier::new(config.clone())
        .await
        .expect_err("hmac allowed");
    assert!(
        matches!(error, IdentityError::AlgorithmNotAllowed { ref alg } if alg == "HS256"),
        "{error:?}"
    );

    config.algorithms.pop();
    let error = TokenVerifier::new(config).await.expect_err("missing file");
    assert!(
        matches!(error, IdentityError::Jwks(JwksError::Read { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_algorithm_allow_list_narrows_what_is_accepted() {
    let directory = tempfile::tempdir().expect("temp dir");
    let (ed25519, es256) = (TestKey::ed25519("ed"), TestKey::es256("ec"));
    let path = directory.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&ed25519, &es256]).to_string()).expect("write");
    let mut config = IdentityConfig::new(ISSUER, AUDIENCE, JwksSource::File(path));
    config.algorithms = vec!["EdDSA".to_owned()];
    let verifier = TokenVerifier::new(config).await.expect("verifier");
    verifier
        .verify(&ed25519.token(&claims()), now())
        .await
        .expect("EdDSA allowed");
    let error = verifier
        .verify(&es256.token(&claims()), now())
        .await
        .expect_err("ES256 not allowed");
    assert_eq!(error.code(), "token_algorithm_not_allowed");
}

async fn load(document: &Value) -> Result<TokenVerifier, IdentityError> {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("jwks.json");
    std::fs::write(&path, document.to_string()).expect("write");
    TokenVerifier::new(IdentityConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::File(path),
    ))
    .await
}

#[tokio::test]
async fn refuses_unsafe_key_sets() {
    let key = TestKey::ed25519("ed");
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    let hmac = json!({ "kty": "oct", "kid": "secret", "k": "c2VjcmV0" });
    let short_rsa = json!({ "kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB" });
    let encryption =
        json!({ "kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": key.jwk["x"] });
    let too_many: Vec<Value> = (0..=JWKS_KEYS_MAX)
        .map(|index| {
            let mut jwk = key.jwk.clone();
            jwk["kid"] = json!(format!("k{index}"));
            jwk
        })
        .collect();
    let cases = [
        (json!({ "keys": [private] }), "private key material"),
        (json!({ "keys": [hmac] }), "no usable"),
        (json!({ "keys": [short_rsa, encryption] }), "no usable"),
        (json!({ "keys": [key.jwk, key.jwk] }), "twice"),
        (json!({ "keys": too_many }), "more than"),
        (json!({ "not_keys": [] }), "not a jwks document"),
    ];
    for (document, expected) in cases {
        let error = load(&document).await.expect_err(expected);
        let IdentityError::Jwks(cause) = &error else {
            panic!("{error:?}")
        };
        assert!(cause.to_string().contains(expected), "{expected}: {cause}");
    }
}

#[tokio::test]
async fn unusable_keys_are_skipped_and_the_rest_kept() {
    let key = TestKey::ed25519("ed");
    let hmac = json!({ "kty": "oct", "kid": "secret", "k": "c2VjcmV0" });
    let verifier = load(&json!({ "keys": [hmac, key.jwk] }))
        .await
        .expect("one usable key");
    verifier
        .verify(&key.token(&claims()), now())
        .await
        .expect("ed key verifies");
}
