//! Staff and machine identity from bearer JWTs.
//!
//! A [`TokenVerifier`] checks a token from the company's identity provider against a
//! configured key set (JWKS, from a file or a URL, cached and refreshed on an unknown `kid`)
//! and turns its claims into an [`Identity`]. Only the algorithms on the allow-list (EdDSA,
//! ES256, RS256) are accepted; `none` and HMAC never are. Time is passed in: the service
//! checks `exp` and `nbf` against its own (possibly simulated) clock.
//!
//! [`DevIssuer`] is a local development issuer for demos and tests: it exists only when
//! created on purpose, and the verifier treats it like any other issuer (through the key set
//! file it writes).

mod config;
mod dev_issuer;
mod jwks;
mod verifier;

pub use config::{
    ALGORITHMS_DEFAULT, ALGORITHMS_SUPPORTED, IdentityConfig, IdentityError, JwksSource,
    LEEWAY_SECONDS_DEFAULT, LEEWAY_SECONDS_MAX,
};
pub use dev_issuer::{
    DEV_ISSUER_KEY_FILE, DEV_JWKS_FILE, DEV_TOKEN_TTL_MAX, DevIssuer, DevIssuerError,
    IdentityClaims,
};
pub use jwks::{
    JWKS_BODY_BYTES_MAX, JWKS_CACHE_AGE_MAX, JWKS_FETCH_DURATION_MAX, JWKS_KEYS_MAX,
    JWKS_REFRESH_INTERVAL_MIN, JwksError,
};
pub use verifier::{
    CLAIM_BYTES_MAX, Identity, IdentityKind, ROLES_MAX, TOKEN_BYTES_MAX, TokenError, TokenVerifier,
};
