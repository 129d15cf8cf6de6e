//! Test support: throwaway keys of each allowed algorithm (generated per test run, never
//! committed), tokens built and signed by hand with aws-lc-rs (so the tests do not trust the
//! code under test to build them), key set documents, and a tiny HTTP server for JWKS URLs.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use auth::{IdentityConfig, JwksSource, TokenVerifier};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const ISSUER: &str = "https://id.example.test";
pub const AUDIENCE: &str = "custos";

/// A fixed "now" for tests: the verifier never reads the system clock.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid date")
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    EcP256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A key pair with its `kid`, `alg` and public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    pub jwk: Value,
    signer: Signer,
}

impl TestKey {
    pub fn ed25519(kid: &str) -> TestKey {
        let pair = Ed25519KeyPair::generate().expect("ed25519 key");
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        TestKey {
            kid: kid.to_owned(),
            alg: "EdDSA",
            jwk: json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA" }),
            signer: Signer::Ed25519(pair),
        }
    }

    pub fn es256(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("p-256 key");
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        TestKey {
            kid: kid.to_owned(),
            alg: "ES256",
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
            signer: Signer::EcP256(pair),
        }
    }

    pub fn rs256(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key");
        let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        TestKey {
            kid: kid.to_owned(),
            alg: "RS256",
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig",
                "n": URL_SAFE_NO_PAD.encode(&components.n),
                "e": URL_SAFE_NO_PAD.encode(&components.e),
            }),
            signer: Signer::Rsa(pair),
        }
    }

    /// The RSA public key as a PEM SubjectPublicKeyInfo: what an attacker would use as an
    /// HMAC secret.
    pub fn rsa_public_pem(&self) -> String {
        let Signer::Rsa(pair) = &self.signer else {
            panic!("not an rsa key")
        };
        let der = pair.public_key().as_der().expect("spki der");
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::EcP256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .expect("ecdsa sign")
                .as_ref()
                .to_vec(),
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .expect("rsa sign");
                signature
            }
        }
    }

    /// The usual header for this key.
    pub fn header(&self) -> Value {
        json!({ "alg": self.alg, "typ": "JWT", "kid": self.kid })
    }

    /// A token with `claims`, signed by this key under its usual header.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&self.header(), claims)
    }

    /// A token with any header, signed by this key.
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let signed = signing_input(header, claims);
        let signature = self.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// `base64url(header) . base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// One RSA key per test binary: generating 2048-bit keys is slow.
pub fn rsa_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::rs256("rsa-1"))
}

/// Valid claims as of [`now`]: five minutes left, valid since a minute ago.
pub fn claims() -> Value {
    let now = now().timestamp();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 300,
        "jti": "token-1",
        "roles": ["support", "analyst"],
        "team": "payments",
        "entity": "example-gmbh",
        "country": "DE",
        "region": "eu",
    })
}

/// A key set document for `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() })
}

/// A verifier trusting `keys` through a key set file in `directory`.
pub async fn file_verifier(directory: &std::path::Path, keys: &[&TestKey]) -> TokenVerifier {
    let path = directory.join("jwks.json");
    std::fs::write(&path, jwks(keys).to_string()).expect("write jwks");
    TokenVerifier::new(IdentityConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::File(path),
    ))
    .await
    .expect("verifier")
}

/// A loopback HTTP server answering every request with the current body (and status),
/// counting requests.
pub struct JwksServer {
    pub url: String,
    body: Arc<Mutex<(u16, String)>>,
    requests: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(body: &Value) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("address")
        );
        let state = Arc::new(Mutex::new((200, body.to_string())));
        let requests = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&state), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let (status, body) = served.lock().expect("server state").clone();
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        JwksServer {
            url,
            body: state,
            requests,
        }
    }

    pub fn serve(&self, status: u16, body: &Value) {
        *self.body.lock().expect("server state") = (status, body.to_string());
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
