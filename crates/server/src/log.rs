//! Serving each region's access log: C2SP tlog-tiles under `/log/<region>/` (the signed
//! checkpoint, hash tiles, entry bundles) and, under `/v1/log/<region>/`, inclusion and
//! consistency proofs and signing on demand.
//!
//! Hash tiles and checkpoints are public: they carry hashes of salted entries only. Entry
//! bundles hold the entries themselves (who looked at whom) and need a service token or a
//! staff token carrying the `auditor` role. Clients check every tile against the signed root
//! and every proof against a checkpoint they verified; this module serves stored bytes.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tlog::{Hash, TileResource, parse_path};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ingest::{has_service_token, region_id, unauthenticated};
use crate::{ApiError, AppState, ErrorBody, ErrorCode};

/// Checkpoints change every signing interval; caches must revalidate.
pub const CHECKPOINT_CACHE_CONTROL: &str = "no-cache";
/// A full tile or bundle never changes (tlog-tiles): cache it for a year.
pub const FULL_TILE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// A partial tile is superseded by a wider one as the log grows.
pub const PARTIAL_TILE_CACHE_CONTROL: &str = "public, max-age=10";
/// Entry bundles are for authenticated callers: no shared cache may keep them.
pub const FULL_BUNDLE_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";
pub const PARTIAL_BUNDLE_CACHE_CONTROL: &str = "private, max-age=10";

/// The staff role that may read entry bundles.
pub const AUDITOR_ROLE: &str = "auditor";

/// Public routes: the tlog-tiles checkpoint and proofs. The tile route has a wildcard and
/// is added to the router in [`crate::app`] (see [`tile`]).
pub(crate) fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(routes!(receipt_proof))
        .routes(routes!(add_cosignatures))
        .routes(routes!(witnessing))
}

/// Largest cosignature submission accepted, in bytes: a checkpoint with a few signatures.
pub const COSIGNATURE_BODY_BYTES_MAX: usize = 16 * 1024;

/// Routes that need a service token.
pub(crate) fn authenticated_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_checkpoint))
}

/// The latest signed checkpoint (C2SP tlog-checkpoint, a signed note), verifiable with the
/// key `custos log key` prints.
#[utoipa::path(get, path = "/log/{region}/checkpoint", tag = "log",
    params(("region" = String, Path)),
    responses((status = 200, content_type = "text/plain; charset=utf-8", body = String),
              (status = 421, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn checkpoint(State(state): State<AppState>, Path(region): Path<String>) -> Result<Response, ApiError> {
    let region = region_id(&region)?;
    let note = state.vault.checkpoint(&region).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, CHECKPOINT_CACHE_CONTROL)],
        note,
    )
        .into_response())
}

/// A hash tile (`tile/<L>/<N>[.p/<W>]`, public) or an entry bundle
/// (`tile/entries/<N>[.p/<W>]`), per C2SP tlog-tiles. Entry bundles need a service token or
/// a staff token with the `auditor` role. Full tiles are immutable; partial ones are cached
/// briefly. 404 beyond the tree.
#[utoipa::path(get, path = "/log/{region}/tile/{path}", tag = "log",
    params(("region" = String, Path), ("path" = String, Path, description = "the tile path after `tile/`, with slashes, e.g. `0/x001/234.p/5` or `entries/000`")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 421, body = ErrorBody)),
    security((), ("service_token" = []), ("staff_token" = [])))]
pub(crate) async fn tile(
    State(state): State<AppState>,
    Path((region, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let region = region_id(&region)?;
    let log = state.vault.log(&region)?;
    let not_found = |message: String| ApiError::new(StatusCode::NOT_FOUND, ErrorCode::TileNotFound, message);
    let resource = parse_path(&format!("tile/{path}")).map_err(|error| not_found(format!("not a tile path: {error}")))?;
    let (bytes, cache_control) = match resource {
        TileResource::Hashes(tile) => {
            let bytes = log.tile(tile).await?;
            let cache = if tile.is_partial() { PARTIAL_TILE_CACHE_CONTROL } else { FULL_TILE_CACHE_CONTROL };
            (bytes, cache)
        }
        TileResource::Entries(bundle) => {
            if !has_service_token(&state, &headers) {
                match crate::access::verified_caller(&state, &headers).await {
                    Ok(caller) if caller.roles.iter().any(|role| role == AUDITOR_ROLE) => {}
                    Ok(_) => {
                        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "entry bundles need the auditor role"));
                    }
                    // No identity provider configured: the service token was the only way.
                    Err(_) if state.identity.is_none() => return Ok(unauthenticated()),
                    Err(response) => return Ok(response),
                }
            }
            let bytes = log.entry_bundle(bundle).await?;
            let cache = if bundle.is_partial() { PARTIAL_BUNDLE_CACHE_CONTROL } else { FULL_BUNDLE_CACHE_CONTROL };
            (bytes, cache)
        }
    };
    let bytes = bytes.ok_or_else(|| not_found(format!("tile/{path} is beyond the log's tree")))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache_control)], bytes).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for (at most the log's size).
    pub size: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    /// The audit path, leaf to root, each hash base64 (standard alphabet).
    pub hashes: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    pub old: u64,
    pub new: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub old: u64,
    pub new: u64,
    /// RFC 6962 consistency proof, each hash base64 (standard alphabet).
    pub hashes: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedCheckpoint {
    /// The signed note, as `/log/{region}/checkpoint` serves it.
    pub checkpoint: String,
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, rejection.body_text()))
}

fn encode_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|hash| base64::engine::general_purpose::STANDARD.encode(hash.0)).collect()
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962), to check
/// against the root of a verified checkpoint of that size.
#[utoipa::path(get, path = "/v1/log/{region}/proof/inclusion", tag = "log",
    params(("region" = String, Path), InclusionQuery),
    responses((status = 200, body = InclusionProof), (status = 400, body = ErrorBody), (status = 421, body = ErrorBody)))]
async fn inclusion_proof(
    State(state): State<AppState>,
    Path(region): Path<String>,
    parameters: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let region = region_id(&region)?;
    let InclusionQuery { index, size } = query(parameters)?;
    let hashes = state.vault.log(&region)?.inclusion_proof(index, size).await?;
    Ok(Json(InclusionProof { index, size, hashes: encode_hashes(&hashes) }))
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
#[utoipa::path(get, path = "/v1/log/{region}/proof/consistency", tag = "log",
    params(("region" = String, Path), ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = ErrorBody), (status = 421, body = ErrorBody)))]
async fn consistency_proof(
    State(state): State<AppState>,
    Path(region): Path<String>,
    parameters: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let region = region_id(&region)?;
    let ConsistencyQuery { old, new } = query(parameters)?;
    let hashes = state.vault.log(&region)?.consistency_proof(old, new).await?;
    Ok(Json(ConsistencyProof { old, new, hashes: encode_hashes(&hashes) }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// The leaf index of the entry (the `index` of a receipt).
    pub index: u64,
}

/// The proof that completes a receipt: a C2SP tlog-proof (`c2sp.org/tlog-proof@v1`) holding
/// the inclusion proof of the entry at `index` in the latest signed checkpoint, and that
/// checkpoint. With the entry from the receipt, `custos receipt verify` checks it offline.
/// 400 when no signed checkpoint covers the index yet (wait one signing interval).
#[utoipa::path(get, path = "/v1/log/{region}/proof/receipt", tag = "log",
    params(("region" = String, Path), ReceiptQuery),
    responses((status = 200, content_type = "text/plain; charset=utf-8", body = String),
              (status = 400, body = ErrorBody), (status = 421, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn receipt_proof(
    State(state): State<AppState>,
    Path(region): Path<String>,
    parameters: Result<Query<ReceiptQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let region = region_id(&region)?;
    let ReceiptQuery { index } = query(parameters)?;
    let proof = state.vault.log(&region)?.tlog_proof(index).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, CHECKPOINT_CACHE_CONTROL)], proof).into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CosignaturesAccepted {
    /// The configured witnesses whose cosignatures were stored.
    pub accepted: Vec<String>,
}

/// A witness hands back its cosignature (C2SP tlog-cosignature/v1): the body is the log's
/// checkpoint as a signed note with the witness's signature line added. The checkpoint must
/// be one this log signed; only configured witnesses count and each must verify. Public: the
/// signatures are the authentication.
#[utoipa::path(post, path = "/v1/log/{region}/cosignatures", tag = "log",
    params(("region" = String, Path)),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, body = CosignaturesAccepted), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 421, body = ErrorBody)))]
async fn add_cosignatures(
    State(state): State<AppState>,
    Path(region): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<CosignaturesAccepted>, ApiError> {
    let region = region_id(&region)?;
    if body.len() > COSIGNATURE_BODY_BYTES_MAX {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, format!("a cosigned checkpoint is at most {COSIGNATURE_BODY_BYTES_MAX} bytes")));
    }
    let accepted = state.vault.log(&region)?.add_cosignatures(&body).await?;
    Ok(Json(CosignaturesAccepted { accepted }))
}

/// The latest checkpoint's witnesses: who cosigned it, the quorum, and whether it is met.
#[utoipa::path(get, path = "/v1/log/{region}/witnesses", tag = "log",
    params(("region" = String, Path)),
    responses((status = 200, body = service::Witnessing), (status = 421, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn witnessing(State(state): State<AppState>, Path(region): Path<String>) -> Result<Json<service::Witnessing>, ApiError> {
    let region = region_id(&region)?;
    Ok(Json(state.vault.log(&region)?.witnessing().await?))
}

/// Sign the region's log now (it is also signed on a fixed interval).
#[utoipa::path(post, path = "/v1/log/{region}/checkpoint", tag = "log",
    params(("region" = String, Path)),
    responses((status = 200, body = SignedCheckpoint), (status = 401, body = ErrorBody), (status = 421, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("service_token" = [])))]
async fn sign_checkpoint(State(state): State<AppState>, Path(region): Path<String>) -> Result<Json<SignedCheckpoint>, ApiError> {
    let region = region_id(&region)?;
    let checkpoint = state.vault.sign_checkpoint_now(&region).await?;
    Ok(Json(SignedCheckpoint { checkpoint }))
}
