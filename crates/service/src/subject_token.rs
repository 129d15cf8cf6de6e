//! Subject tokens: short-lived, signed statements "the bearer is data subject S of region R",
//! which a data subject's own routes (`GET /v1/subjects/{id}/accesses`) accept and nothing
//! else does. The platform obtains one for a signed-in user by exchanging its session with a
//! machine identity (`POST /v1/subject-tokens`); custos never sees the user's session.
//!
//! The form is a compact JWS, `base64url(header) . base64url(claims) . base64url(signature)`,
//! but it is not a JWT any JWT library should accept: the header must be exactly
//! [`SUBJECT_TOKEN_HEADER`], byte for byte, so there is no `alg` to negotiate (no `none`, no
//! HMAC with a public key, no key named in the header) and a staff JWT is refused before its
//! claims are read. The signature is Ed25519 under the subject token key of the region the
//! claims name, one per region in `<data>/subject-token-keys.json` (the log key file's
//! format and protections). Verification is a pure function of the token, the keys and the
//! time passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use model::{RegionId, SubjectId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The only header a subject token may carry, byte for byte.
pub const SUBJECT_TOKEN_HEADER: &str = r#"{"alg":"EdDSA","typ":"custos-subject+jws"}"#;
/// The audience every subject token names: the subject's own routes.
pub const SUBJECT_TOKEN_AUDIENCE: &str = "custos/subject";
/// Longest token accepted, in bytes: more is refused before any decoding.
pub const SUBJECT_TOKEN_BYTES_MAX: usize = 2_048;
/// Lifetime of a minted token when the configuration does not say.
pub const SUBJECT_TOKEN_LIFETIME_DEFAULT: Duration = Duration::from_secs(300);
/// Longest lifetime the configuration may choose: a subject token is a session exchange,
/// not a credential to keep.
pub const SUBJECT_TOKEN_LIFETIME_MAX: Duration = Duration::from_secs(3_600);
/// Tolerated clock difference for `iat`, in seconds.
const SUBJECT_TOKEN_LEEWAY_SECONDS: i64 = 30;
/// Bytes of an Ed25519 seed.
const SEED_BYTES: usize = 32;

/// The claims of a subject token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectClaims {
    /// The deployment that issued it (the log origin host).
    pub iss: String,
    /// Always [`SUBJECT_TOKEN_AUDIENCE`].
    pub aud: String,
    /// The one subject it speaks for.
    pub sub: String,
    /// The subject's home region, whose key signed the token.
    pub region: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch (exclusive).
    pub exp: i64,
    /// Random token id (hex), so two tokens minted in one second differ.
    pub jti: String,
}

/// Why a subject token was refused; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectTokenError {
    #[error("subject token is over {SUBJECT_TOKEN_BYTES_MAX} bytes")]
    TooLarge,
    #[error("subject token is not three base64url parts with JSON claims")]
    Malformed,
    #[error("token header is not the subject token header (another algorithm, a key reference or a staff JWT)")]
    WrongHeader,
    #[error("subject token names region {0}, which this node does not serve")]
    UnknownRegion(String),
    #[error("subject token signature does not verify")]
    BadSignature,
    #[error("subject token was issued by {0}, not this deployment")]
    WrongIssuer(String),
    #[error("subject token is for another audience")]
    WrongAudience,
    #[error("subject token has expired")]
    Expired,
    #[error("subject token is issued in the future")]
    NotYetValid,
    #[error("system random failed")]
    Random,
}

impl SubjectTokenError {
    /// The stable code clients and metrics see.
    pub fn code(&self) -> &'static str {
        match self {
            SubjectTokenError::TooLarge => "subject_token_too_large",
            SubjectTokenError::Malformed => "subject_token_malformed",
            SubjectTokenError::WrongHeader => "subject_token_wrong_header",
            SubjectTokenError::UnknownRegion(_) => "subject_token_unknown_region",
            SubjectTokenError::BadSignature => "subject_token_bad_signature",
            SubjectTokenError::WrongIssuer(_) => "subject_token_wrong_issuer",
            SubjectTokenError::WrongAudience => "subject_token_wrong_audience",
            SubjectTokenError::Expired => "subject_token_expired",
            SubjectTokenError::NotYetValid => "subject_token_not_yet_valid",
            SubjectTokenError::Random => "internal",
        }
    }
}

/// A verified token: the subject it speaks for, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectBearer {
    pub subject: SubjectId,
    pub region: RegionId,
    pub expires_at: DateTime<Utc>,
}

/// The subject token keys of the regions a node serves, and the issuer name.
pub struct SubjectTokenKeys {
    issuer: String,
    keys: BTreeMap<RegionId, Ed25519KeyPair>,
}

impl std::fmt::Debug for SubjectTokenKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SubjectTokenKeys").field("issuer", &self.issuer).field("regions", &self.keys.keys()).finish()
    }
}

impl SubjectTokenKeys {
    /// Keys from one Ed25519 seed per region; `issuer` is the deployment's log origin host.
    pub fn from_seeds(issuer: &str, seeds: Vec<(RegionId, Zeroizing<[u8; SEED_BYTES]>)>) -> SubjectTokenKeys {
        let keys = seeds
            .into_iter()
            .map(|(region, seed)| {
                // INVARIANT: a 32-byte seed is always a valid Ed25519 private key.
                let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).expect("a 32-byte seed is an Ed25519 key");
                (region, pair)
            })
            .collect();
        SubjectTokenKeys { issuer: issuer.to_owned(), keys }
    }

    /// When a token minted at `now` with `lifetime` expires: its `exp` claim, whole seconds.
    pub fn expires_at(now: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
        let exp = now.timestamp().saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2));
        DateTime::from_timestamp(exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// A token for `subject` of `region`, valid from `now` for `lifetime` (until
    /// [`SubjectTokenKeys::expires_at`]).
    pub fn mint(&self, subject: &SubjectId, region: &RegionId, now: DateTime<Utc>, lifetime: Duration) -> Result<String, SubjectTokenError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| SubjectTokenError::Random)?;
        let claims = SubjectClaims {
            iss: self.issuer.clone(),
            aud: SUBJECT_TOKEN_AUDIENCE.to_owned(),
            sub: subject.to_string(),
            region: region.to_string(),
            iat: now.timestamp(),
            exp: SubjectTokenKeys::expires_at(now, lifetime).timestamp(),
            jti: hex::encode(jti),
        };
        self.sign(region, &claims)
    }

    fn sign(&self, region: &RegionId, claims: &SubjectClaims) -> Result<String, SubjectTokenError> {
        let key = self.keys.get(region).ok_or_else(|| SubjectTokenError::UnknownRegion(region.to_string()))?;
        // INVARIANT: the claims are plain strings and integers; serializing cannot fail.
        let claims = serde_json::to_vec(claims).expect("claims serialize");
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(SUBJECT_TOKEN_HEADER), URL_SAFE_NO_PAD.encode(claims));
        let signature = key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }

    /// The subject `token` speaks for, if it is a subject token this deployment signed, for
    /// the subject audience, and unexpired at `now`. Which subject the caller may see is the
    /// caller's check (compare [`SubjectBearer::subject`] with the path).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<SubjectBearer, SubjectTokenError> {
        if token.len() > SUBJECT_TOKEN_BYTES_MAX {
            return Err(SubjectTokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(SubjectTokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| SubjectTokenError::Malformed)?;
        // Checked before anything else is decoded: no other algorithm, no key reference.
        if header_bytes != SUBJECT_TOKEN_HEADER.as_bytes() {
            return Err(SubjectTokenError::WrongHeader);
        }
        let claims_bytes = URL_SAFE_NO_PAD.decode(claims).map_err(|_| SubjectTokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SubjectTokenError::Malformed)?;
        let parsed: SubjectClaims = serde_json::from_slice(&claims_bytes).map_err(|_| SubjectTokenError::Malformed)?;
        let region = RegionId::new(&parsed.region).map_err(|_| SubjectTokenError::Malformed)?;
        let key = self.keys.get(&region).ok_or_else(|| SubjectTokenError::UnknownRegion(region.to_string()))?;
        let signing_input_length = header.len() + 1 + claims.len();
        UnparsedPublicKey::new(&ED25519, key.public_key().as_ref())
            .verify(&token.as_bytes()[..signing_input_length], &signature)
            .map_err(|_| SubjectTokenError::BadSignature)?;
        if parsed.iss != self.issuer {
            return Err(SubjectTokenError::WrongIssuer(parsed.iss.chars().take(64).collect()));
        }
        if parsed.aud != SUBJECT_TOKEN_AUDIENCE {
            return Err(SubjectTokenError::WrongAudience);
        }
        let now_seconds = now.timestamp();
        if now_seconds >= parsed.exp {
            return Err(SubjectTokenError::Expired);
        }
        if parsed.iat > now_seconds + SUBJECT_TOKEN_LEEWAY_SECONDS {
            return Err(SubjectTokenError::NotYetValid);
        }
        let subject = SubjectId::new(&parsed.sub).map_err(|_| SubjectTokenError::Malformed)?;
        let expires_at = DateTime::from_timestamp(parsed.exp, 0).ok_or(SubjectTokenError::Malformed)?;
        Ok(SubjectBearer { subject, region, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn keys(seed: u8) -> SubjectTokenKeys {
        SubjectTokenKeys::from_seeds("custos.test", vec![(RegionId::new("us").unwrap(), Zeroizing::new([seed; SEED_BYTES]))])
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    fn mint(keys: &SubjectTokenKeys) -> String {
        keys.mint(&SubjectId::new("u-1").unwrap(), &RegionId::new("us").unwrap(), now(), Duration::from_secs(300)).unwrap()
    }

    /// The token with its claims replaced by `edit(claims)`, signature kept.
    fn with_claims(token: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        edit(&mut claims);
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()), parts[2])
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let keys = keys(1);
        let token = mint(&keys);
        let bearer = keys.verify(&token, now()).unwrap();
        assert_eq!(bearer.subject.as_str(), "u-1");
        assert_eq!(bearer.region.as_str(), "us");
        assert_eq!(keys.verify(&token, now() + chrono::Duration::seconds(299)).unwrap(), bearer);
        assert_eq!(keys.verify(&token, now() + chrono::Duration::seconds(300)), Err(SubjectTokenError::Expired));
        assert_eq!(keys.verify(&token, now() - chrono::Duration::seconds(60)), Err(SubjectTokenError::NotYetValid));
    }

    #[test]
    fn forged_and_tampered_tokens_are_refused() {
        let keys = keys(1);
        let token = mint(&keys);
        assert_eq!(keys.verify(&mint(&self::keys(2)), now()), Err(SubjectTokenError::BadSignature), "another key");
        let swapped = with_claims(&token, |claims| claims["sub"] = "u-2".into());
        assert_eq!(keys.verify(&swapped, now()), Err(SubjectTokenError::BadSignature), "claims changed");
        let longer = with_claims(&token, |claims| claims["exp"] = (now().timestamp() + 86_400).into());
        assert_eq!(keys.verify(&longer, now()), Err(SubjectTokenError::BadSignature), "expiry extended");
        let elsewhere = with_claims(&token, |claims| claims["region"] = "eu".into());
        assert_eq!(keys.verify(&elsewhere, now()), Err(SubjectTokenError::UnknownRegion("eu".to_owned())));
        assert_eq!(keys.verify("a.b", now()), Err(SubjectTokenError::Malformed));
        assert_eq!(keys.verify(&"a".repeat(SUBJECT_TOKEN_BYTES_MAX + 1), now()), Err(SubjectTokenError::TooLarge));
        let mut signature_flipped = token.clone().into_bytes();
        let last = signature_flipped.len() - 2;
        signature_flipped[last] = if signature_flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(keys.verify(std::str::from_utf8(&signature_flipped).unwrap(), now()), Err(SubjectTokenError::BadSignature));
    }

    #[test]
    fn algorithm_tricks_and_other_headers_are_refused_before_the_claims() {
        let keys = keys(1);
        let token = mint(&keys);
        let rest = token.split_once('.').unwrap().1;
        for header in [
            r#"{"alg":"none","typ":"custos-subject+jws"}"#,
            r#"{"alg":"HS256","typ":"custos-subject+jws"}"#,
            r#"{"alg":"EdDSA","typ":"JWT","kid":"k"}"#,
            r#"{"alg":"EdDSA","typ":"custos-subject+jws","jwk":{}}"#,
            r#"{"typ":"custos-subject+jws","alg":"EdDSA"}"#,
        ] {
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(keys.verify(&forged, now()), Err(SubjectTokenError::WrongHeader), "{header}");
        }
        // `none` with an empty signature, as the classic attack sends it.
        let claims = token.split('.').nth(1).unwrap();
        let unsigned = format!("{}.{claims}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert_eq!(keys.verify(&unsigned, now()), Err(SubjectTokenError::WrongHeader));
    }

    #[test]
    fn another_deployment_or_audience_is_refused() {
        let other = SubjectTokenKeys::from_seeds("elsewhere.example", vec![(RegionId::new("us").unwrap(), Zeroizing::new([1; SEED_BYTES]))]);
        let keys = keys(1);
        assert_eq!(keys.verify(&mint(&other), now()), Err(SubjectTokenError::WrongIssuer("elsewhere.example".to_owned())));
        let token = mint(&keys);
        let mut claims: SubjectClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        claims.aud = "custos".to_owned();
        let staff_audience = keys.sign(&RegionId::new("us").unwrap(), &claims).unwrap();
        assert_eq!(keys.verify(&staff_audience, now()), Err(SubjectTokenError::WrongAudience));
    }
}
