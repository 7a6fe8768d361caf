//! IP timeouts in the public horde's shapes: `GET|POST|DELETE /operations/ipaddr` and
//! `GET /operations/ipaddr/{ipaddr}` (moderators). Single addresses only (an IPv6 address counts
//! for its /64); CIDR blocks are refused.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::styles::SimpleResponse;
use serde::{Deserialize, Serialize};

use super::user_of;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;
use horde_protocol::ErrorBody;

/// A running timeout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IpTimeoutEntry {
    /// The address (an IPv6 address's /64).
    pub ipaddr: String,
    /// Seconds left.
    pub seconds: u64,
}

/// `POST /operations/ipaddr`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AddIpTimeout {
    #[serde(default)]
    ipaddr: Option<String>,
    /// Hours (default 1, at most 720).
    #[serde(default)]
    hours: Option<u64>,
}

/// `DELETE /operations/ipaddr`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RemoveIpTimeout {
    #[serde(default)]
    ipaddr: Option<String>,
}

fn parse_ip(s: Option<&str>) -> ApiResult<IpAddr> {
    s.unwrap_or("").trim().parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "ipaddr must be an IPv4 or IPv6 address (CIDR blocks are not supported).",
        )
    })
}

fn entries(list: Vec<(String, u64)>) -> Response {
    let list: Vec<IpTimeoutEntry> = list
        .into_iter()
        .map(|(ipaddr, seconds)| IpTimeoutEntry { ipaddr, seconds })
        .collect();
    Json(list).into_response()
}

#[utoipa::path(get, path = "/operations/ipaddr", tag = "filters", security(("apikey" = [])), responses((status = 200, description = "Running timeouts", body = Vec<IpTimeoutEntry>), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not a moderator", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiKey(key): ApiKey) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(entries(state.horde.ip_timeouts(viewer).await?))
}

#[utoipa::path(post, path = "/operations/ipaddr", tag = "filters", security(("apikey" = [])), request_body = AddIpTimeout, responses((status = 200, description = "Timed out", body = SimpleResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not a moderator", body = ErrorBody)))]
pub async fn add(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(t): JsonBody<AddIpTimeout>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let ip = parse_ip(t.ipaddr.as_deref())?;
    let hours = t.hours.unwrap_or(1).clamp(1, 720);
    state.horde.timeout_ip(viewer, ip, hours * 60).await?;
    Ok(Json(SimpleResponse { message: "OK".into() }).into_response())
}

#[utoipa::path(delete, path = "/operations/ipaddr", tag = "filters", security(("apikey" = [])), request_body = RemoveIpTimeout, responses((status = 200, description = "Lifted", body = SimpleResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not a moderator", body = ErrorBody)))]
pub async fn remove(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(t): JsonBody<RemoveIpTimeout>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let ip = parse_ip(t.ipaddr.as_deref())?;
    state.horde.timeout_ip(viewer, ip, 0).await?;
    Ok(Json(SimpleResponse { message: "OK".into() }).into_response())
}

#[utoipa::path(get, path = "/operations/ipaddr/{ipaddr}", tag = "filters", security(("apikey" = [])), params(("ipaddr" = String, Path, description = "An IPv4 or IPv6 address")), responses((status = 200, description = "Its timeout, if any", body = Vec<IpTimeoutEntry>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not a moderator", body = ErrorBody)))]
pub async fn one(State(state): State<AppState>, ApiKey(key): ApiKey, Path(ip): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let ip = parse_ip(Some(&ip))?;
    Ok(entries(state.horde.ip_timeout(viewer, ip).await?.into_iter().collect()))
}
