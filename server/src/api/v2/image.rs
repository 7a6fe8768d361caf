//! Image generation endpoints, and the upload/download links of images held in memory.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::Submission;
use horde_protocol::image::{GenerateImageRequest, ImagePopRequest, ImageSubmitRequest, RateRequest, RateResponse};
use horde_protocol::text::{AsyncAccepted, DryRun, SubmitResponse};

use super::text::NO_WORKER_MESSAGE;
use super::user_of;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;
use horde_protocol::ErrorBody;

/// The address clients and workers reach this horde at: `--public-url`, else the request's
/// `Host` (with `X-Forwarded-Proto` when a proxy sets it).
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.options.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("127.0.0.1");
    let proto = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{proto}://{host}")
}

#[utoipa::path(post, path = "/generate/async", tag = "image", security((), ("apikey" = [])), request_body = GenerateImageRequest, responses((status = 202, description = "Queued", body = AsyncAccepted), (status = 200, description = "Dry run: the price", body = DryRun), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn generate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<GenerateImageRequest>,
) -> ApiResult<Response> {
    state.horde.check_not_in_maintenance().await?;
    let style_key = state.horde.style_shared_key_for(req.style.as_deref()).await?;
    let submitted = match (style_key, super::shared_key_of(&state, &key).await?) {
        (Some(styles), _) => state.horde.generate_image_shared(styles, req, Some(peer.ip()), true).await?,
        (None, Some(shared)) => state.horde.generate_image_shared(shared, req, Some(peer.ip()), false).await?,
        (None, None) => {
            let user = user_of(&state, &key, true).await?;
            state.horde.generate_image(user, req, Some(peer.ip())).await?
        }
    };
    Ok(match submitted {
        Submission::DryRun(kudos) => (StatusCode::OK, Json(DryRun { kudos })).into_response(),
        Submission::Queued(a) => {
            let body = AsyncAccepted {
                id: a.id.to_string(),
                kudos: horde_core::kudos::to_kudos(a.kudos),
                message: (!a.possible).then(|| NO_WORKER_MESSAGE.to_string()),
                warnings: None,
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

#[utoipa::path(get, path = "/generate/check/{id}", tag = "image", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Progress without images", body = horde_protocol::image::ImageCheck), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn check(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.image_check(&id).await?).into_response())
}

#[utoipa::path(get, path = "/generate/status/{id}", tag = "image", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Progress and images", body = horde_protocol::image::ImageStatus), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let base = base_url(&state, &headers);
    Ok(Json(state.horde.image_status(&id, &base).await?).into_response())
}

#[utoipa::path(delete, path = "/generate/status/{id}", tag = "image", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Cancelled; images done so far", body = horde_protocol::image::ImageStatus), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn cancel(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let base = base_url(&state, &headers);
    Ok(Json(state.horde.cancel_image(&id, &base).await?).into_response())
}

#[utoipa::path(post, path = "/generate/pop", tag = "image", security(("apikey" = [])), request_body = ImagePopRequest, responses((status = 200, description = "A job, or none with the reasons", body = horde_protocol::image::ImagePopResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn pop(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<ImagePopRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    let base = base_url(&state, &headers);
    let started = std::time::Instant::now();
    let name = req.name.clone();
    state.horde.check_new_worker(user, name.as_deref().unwrap_or("")).await?;
    let popped = state.horde.pop_image(user, req, &base, Some(peer.ip())).await;
    state.metrics.observe_pop("image", started);
    super::worker_messages::with_messages(&state, name.as_deref(), popped?).await
}

#[utoipa::path(post, path = "/generate/submit", tag = "image", security(("apikey" = [])), request_body = ImageSubmitRequest, responses((status = 200, description = "Kudos earned", body = SubmitResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "Image memory full; submit again later", body = ErrorBody)))]
pub async fn submit(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<ImageSubmitRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    let reward = state.horde.submit_image(user, req).await?;
    Ok(Json(SubmitResponse { reward }).into_response())
}

#[utoipa::path(post, path = "/generate/rate/{id}", tag = "image", params(("id" = String, Path, description = "Request id")), request_body = RateRequest, responses((status = 200, description = "Kudos returned for rating", body = RateResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn rate(State(state): State<AppState>, Path(id): Path<String>, JsonBody(req): JsonBody<RateRequest>) -> ApiResult<Response> {
    let reward = state.horde.rate_images(&id, req).await?;
    Ok(Json(RateResponse {
        reward,
        message: "Thank you for rating.".into(),
    })
    .into_response())
}

/// `PUT /api/v2/images/{token}`: a worker uploads a job's WebP to the link it got in the pop.
#[utoipa::path(put, path = "/images/{token}", tag = "image", params(("token" = String, Path, description = "Upload token from the pop")), request_body(content = Vec<u8>, content_type = "image/webp"), responses((status = 200, description = "Stored"), (status = 400, description = "Invalid input", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "Image memory full", body = ErrorBody)))]
pub async fn upload(State(state): State<AppState>, Path(token): Path<String>, body: axum::body::Body) -> ApiResult<Response> {
    // Read under the upload cap, not the JSON bodies' smaller default limit.
    let body = axum::body::to_bytes(body, crate::api::MAX_UPLOAD_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("An upload may be at most {} bytes.", crate::api::MAX_UPLOAD_BYTES),
        )
    })?;
    state.horde.upload_image(&token, body.to_vec()).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /api/v2/images/{token}`: a result image, while its request lives and the link is valid.
#[utoipa::path(get, path = "/images/{token}", tag = "image", params(("token" = String, Path, description = "Download token from the status")), responses((status = 200, description = "The image", content_type = "image/webp"), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn download(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let bytes = state.horde.download_image(&token).await?;
    let mime = match bytes.get(..4) {
        Some(b"\x89PNG") => "image/png",
        Some([0xff, 0xd8, ..]) => "image/jpeg",
        _ => "image/webp",
    };
    Ok((
        [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "private, max-age=600")],
        bytes.as_slice().to_vec(),
    )
        .into_response())
}
