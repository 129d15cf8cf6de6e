//! Verifying a bearer JWT and mapping its claims to an [`Identity`].
//!
//! The order of checks is part of the contract: size, shape, header (`alg` on the
//! allow-list before anything else, so `none` and HMAC are refused without touching a key),
//! key by `kid` (the key's type and `alg` must match the header), signature, and only then
//! the claims — issuer, audience, `exp`/`nbf` against the `now` passed in, subject and
//! attributes. Keys named or embedded in the header (`jku`, `jwk`, `x5u`, `x5c`) are never
//! used: keys come from the configured key set only.
//!
//! A token that verified is remembered (by its SHA-256, with the key set it verified
//! against) until it expires: presented again, only its time window is checked. The memory
//! is bypassed as soon as the key set is replaced or due for a refresh, so a key the issuer
//! withdrew stops counting no later than it would without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{IdentityConfig, IdentityError};
use crate::jwks::{JwksError, KEY_ID_BYTES_MAX, KeyCache, KeySet};

/// The largest token accepted, in bytes of its compact serialization.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;
/// The longest string claim (`sub`, `team`, a role, …) accepted, in bytes.
pub const CLAIM_BYTES_MAX: usize = 256;
/// The most roles one token may carry.
pub const ROLES_MAX: usize = 64;
/// How much of an attacker-chosen `alg` or `kid` an error message repeats.
const ECHO_CHARS_MAX: usize = 64;
/// Verified tokens remembered at most; when full, the expired are dropped, and if none
/// were, all (one verification each to fill it again).
pub const VERIFIED_TOKENS_MAX: usize = 16_384;

/// Whether a token speaks for a person or for a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// A member of staff (claim `custos_kind` absent or `"staff"`).
    #[default]
    Staff,
    /// A service acting on its own behalf (claim `custos_kind: "machine"`).
    Machine,
}

/// What a verified token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `sub`.
    pub id: String,
    /// `custos_kind`.
    pub kind: IdentityKind,
    /// `roles`; empty when absent.
    pub roles: Vec<String>,
    /// `team`.
    pub team: Option<String>,
    /// `entity`: the legal entity employing the bearer.
    pub entity: Option<String>,
    /// `country`: where the bearer works.
    pub country: Option<String>,
    /// `region`: the data region the bearer belongs to.
    pub region: Option<String>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
    /// `jti`.
    pub token_id: Option<String>,
}

/// Why a token was refused. Messages never repeat the token; an attacker-chosen `alg` or
/// `kid` is repeated shortened and with non-printable characters replaced.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than {TOKEN_BYTES_MAX} bytes")]
    TooLarge,
    #[error("token is malformed: {reason}")]
    Malformed { reason: &'static str },
    #[error("token algorithm {alg:?} is not allowed")]
    AlgorithmNotAllowed { alg: String },
    #[error("token key {kid:?} is not in the issuer's key set")]
    UnknownKey { kid: String },
    #[error("token key {kid:?} is not a key for algorithm {alg:?}")]
    KeyMismatch { kid: String, alg: String },
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not the configured issuer")]
    WrongIssuer,
    #[error("token audience does not include this service")]
    WrongAudience,
    #[error("token lacks {name}")]
    MissingClaim { name: &'static str },
    #[error("token claim {name} is invalid")]
    InvalidClaim { name: &'static str },
    #[error("the issuer's key set is unavailable")]
    Jwks(#[source] JwksError),
}

impl TokenError {
    /// A stable code for HTTP answers and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge => "token_too_large",
            TokenError::Malformed { .. } => "token_malformed",
            TokenError::AlgorithmNotAllowed { .. } => "token_algorithm_not_allowed",
            TokenError::UnknownKey { .. } => "token_unknown_key",
            TokenError::KeyMismatch { .. } => "token_key_mismatch",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongIssuer => "token_wrong_issuer",
            TokenError::WrongAudience => "token_wrong_audience",
            TokenError::MissingClaim { .. } => "token_missing_claim",
            TokenError::InvalidClaim { .. } => "token_invalid_claim",
            TokenError::Jwks(_) => "identity_provider_unavailable",
        }
    }
}

/// Verifies bearer tokens against one issuer's key set. Cheap to clone; clones share the
/// key cache.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    audience: String,
    leeway: TimeDelta,
    algorithms: Vec<String>,
    keys: KeyCache,
    /// Tokens that verified, by the SHA-256 of the token.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// A token that verified, and what it verified against.
#[derive(Debug)]
struct Verified {
    identity: Identity,
    not_before: Option<DateTime<Utc>>,
    /// The key set it verified against: it counts only while that set is the current one.
    keys: Arc<KeySet>,
}

impl TokenVerifier {
    /// Checks `config` and loads the key set once.
    pub async fn new(config: IdentityConfig) -> Result<TokenVerifier, IdentityError> {
        config.validate()?;
        let keys = KeyCache::open(config.jwks).await?;
        // INVARIANT: validate() bounded the leeway by LEEWAY_SECONDS_MAX, far inside i64.
        let leeway = TimeDelta::seconds(config.leeway_seconds as i64);
        Ok(TokenVerifier {
            inner: Arc::new(Inner {
                issuer: config.issuer,
                audience: config.audience,
                leeway,
                algorithms: config.algorithms,
                keys,
                verified: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience tokens must include.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Verifies `token` (the compact JWS, without `Bearer `) as of `now`.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Identity, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::TooLarge);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref());
        if let Some(known) = self.remembered(&digest, now) {
            return known;
        }
        let (identity, not_before) = self.verify_signed(token, now).await?;
        let keys = self.inner.keys.current();
        let mut verified = self.inner.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_TOKENS_MAX {
            verified.retain(|_, known| now < known.identity.expires_at + self.inner.leeway);
            if verified.len() >= VERIFIED_TOKENS_MAX {
                verified.clear();
            }
        }
        verified.insert(digest, Verified { identity: identity.clone(), not_before, keys });
        Ok(identity)
    }

    /// What a token verified before says now: its identity while inside its time window,
    /// its expiry error once past it; `None` when it is not remembered or the key set it
    /// verified against is no longer current (then it is verified again in full).
    fn remembered(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Option<Result<Identity, TokenError>> {
        let inner = &self.inner;
        let current = inner.keys.current();
        let mut verified = inner.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let known = verified.get(digest)?;
        if !Arc::ptr_eq(&known.keys, &current) || current.is_stale() {
            verified.remove(digest);
            return None;
        }
        if now >= known.identity.expires_at + inner.leeway {
            verified.remove(digest);
            return Some(Err(TokenError::Expired));
        }
        if known.not_before.is_some_and(|not_before| now + inner.leeway < not_before) {
            return Some(Err(TokenError::NotYetValid));
        }
        Some(Ok(known.identity.clone()))
    }

    /// The whole check of a token not remembered: the identity and its `nbf`.
    async fn verify_signed(&self, token: &str, now: DateTime<Utc>) -> Result<(Identity, Option<DateTime<Utc>>), TokenError> {
        let inner = &self.inner;
        let mut parts = token.split('.');
        let (Some(header_part), Some(payload_part), Some(signature_part), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed {
                reason: "not three dot-separated parts",
            });
        };
        let header = json_object(header_part).ok_or(TokenError::Malformed {
            reason: "header is not base64url json",
        })?;
        let Some(alg) = header.get("alg").and_then(Value::as_str) else {
            return Err(TokenError::Malformed {
                reason: "header has no alg",
            });
        };
        // INVARIANT: the allow-list never holds `none` or an HMAC algorithm (validate()), so
        // neither gets past this line whatever key the header names.
        if !inner.algorithms.iter().any(|allowed| allowed == alg) {
            return Err(TokenError::AlgorithmNotAllowed { alg: echo(alg) });
        }
        if header.contains_key("crit") {
            return Err(TokenError::Malformed {
                reason: "critical header extensions are not supported",
            });
        }
        let kid = match header.get("kid") {
            None => return Err(TokenError::MissingClaim { name: "kid" }),
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= KEY_ID_BYTES_MAX => kid,
            Some(_) => {
                return Err(TokenError::Malformed {
                    reason: "header kid is not a key id",
                });
            }
        };
        let keys = inner.keys.keys_for(kid).await.map_err(TokenError::Jwks)?;
        let key = keys
            .find(kid)
            .ok_or_else(|| TokenError::UnknownKey { kid: echo(kid) })?;
        if key.key_type.algorithm() != alg || key.algorithm.as_deref().is_some_and(|own| own != alg)
        {
            return Err(TokenError::KeyMismatch {
                kid: echo(kid),
                alg: echo(alg),
            });
        }
        let algorithm: jsonwebtoken::Algorithm = alg
            .parse()
            .map_err(|_| TokenError::AlgorithmNotAllowed { alg: echo(alg) })?;
        let signed = &token[..header_part.len() + 1 + payload_part.len()];
        match jsonwebtoken::crypto::verify(
            signature_part,
            signed.as_bytes(),
            &key.decoding_key,
            algorithm,
        ) {
            Ok(true) => {}
            Ok(false) => return Err(TokenError::BadSignature),
            Err(error) => {
                return Err(match error.kind() {
                    jsonwebtoken::errors::ErrorKind::Base64(_) => TokenError::Malformed {
                        reason: "signature is not base64url",
                    },
                    _ => TokenError::BadSignature,
                });
            }
        }
        let claims = json_object(payload_part).ok_or(TokenError::Malformed {
            reason: "payload is not base64url json",
        })?;
        let identity = self.identity(&claims, now)?;
        Ok((identity, time_claim(&claims, "nbf")?))
    }

    /// Checks the signed claims and maps them to an identity.
    fn identity(
        &self,
        claims: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Identity, TokenError> {
        let inner = &self.inner;
        let issuer =
            string_claim(claims, "iss")?.ok_or(TokenError::MissingClaim { name: "iss" })?;
        if issuer != inner.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let audience_matches = match claims.get("aud") {
            None => return Err(TokenError::MissingClaim { name: "aud" }),
            Some(Value::String(audience)) => *audience == inner.audience,
            Some(Value::Array(audiences)) if audiences.iter().all(Value::is_string) => audiences
                .iter()
                .any(|audience| audience.as_str() == Some(&inner.audience)),
            Some(_) => return Err(TokenError::InvalidClaim { name: "aud" }),
        };
        if !audience_matches {
            return Err(TokenError::WrongAudience);
        }
        let expires_at =
            time_claim(claims, "exp")?.ok_or(TokenError::MissingClaim { name: "exp" })?;
        // RFC 7519 §4.1.4: not accepted on or after `exp`; the leeway absorbs clock skew.
        if now >= expires_at + inner.leeway {
            return Err(TokenError::Expired);
        }
        if let Some(not_before) = time_claim(claims, "nbf")?
            && now + inner.leeway < not_before
        {
            return Err(TokenError::NotYetValid);
        }
        let id = string_claim(claims, "sub")?.ok_or(TokenError::MissingClaim { name: "sub" })?;
        let kind = match string_claim(claims, "custos_kind")?.as_deref() {
            None | Some("staff") => IdentityKind::Staff,
            Some("machine") => IdentityKind::Machine,
            Some(_) => {
                return Err(TokenError::InvalidClaim {
                    name: "custos_kind",
                });
            }
        };
        let roles = match claims.get("roles") {
            None => Vec::new(),
            Some(Value::Array(roles)) if roles.len() <= ROLES_MAX => roles
                .iter()
                .map(|role| match role {
                    Value::String(role) if valid_string(role) => Ok(role.clone()),
                    _ => Err(TokenError::InvalidClaim { name: "roles" }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(TokenError::InvalidClaim { name: "roles" }),
        };
        Ok(Identity {
            id,
            kind,
            roles,
            team: string_claim(claims, "team")?,
            entity: string_claim(claims, "entity")?,
            country: string_claim(claims, "country")?,
            region: string_claim(claims, "region")?,
            expires_at,
            token_id: string_claim(claims, "jti")?,
        })
    }
}

/// A base64url (unpadded, canonical) JSON object.
fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(object) => Some(object),
        _ => None,
    }
}

fn valid_string(value: &str) -> bool {
    !value.is_empty() && value.len() <= CLAIM_BYTES_MAX && !value.chars().any(char::is_control)
}

/// A string claim: absent is `None`; present, it must be a non-empty string of at most
/// [`CLAIM_BYTES_MAX`] bytes without control characters.
fn string_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(value)) if valid_string(value) => Ok(Some(value.clone())),
        Some(_) => Err(TokenError::InvalidClaim { name }),
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional; RFC 7519 §2).
fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, TokenError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = match value.as_number() {
        Some(number) => match number.as_i64() {
            Some(seconds) => Some(seconds),
            None => number
                .as_f64()
                .filter(|seconds| seconds.is_finite() && seconds.abs() < 1e15)
                .map(|seconds| seconds.floor() as i64),
        },
        None => None,
    };
    seconds
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .map(Some)
        .ok_or(TokenError::InvalidClaim { name })
}

/// An attacker-chosen header value, safe to put in a message or a log line.
fn echo(value: &str) -> String {
    value
        .chars()
        .take(ECHO_CHARS_MAX)
        .map(|character| {
            if character.is_ascii_graphic() {
                character
            } else {
                '?'
            }
        })
        .collect()
}
