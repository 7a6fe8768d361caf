//! The prompt filter's rules, for moderators (`/api/v2/filters`), and IP timeouts.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::safety::FilterRule;
use serde::{Deserialize, Serialize};

use super::user_of;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiKey, JsonBody, QueryParams};
use crate::api::AppState;
use horde_protocol::ErrorBody;

/// A rule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterDetails {
    pub id: i64,
    pub regex: String,
    pub filter_type: i64,
    pub description: String,
    pub replacement: String,
    pub user: String,
}

impl From<FilterRule> for FilterDetails {
    fn from(r: FilterRule) -> Self {
        Self {
            id: r.id,
            regex: r.regex,
            filter_type: r.filter_type,
            description: r.description,
            replacement: r.replacement,
            user: if r.user_id == 0 {
                "shipped".into()
            } else {
                format!("#{}", r.user_id)
            },
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    filter_type: Option<i64>,
    contains: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct NewFilter {
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    filter_type: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    replacement: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct PromptCheck {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    filter_type: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PromptSuspicion {
    pub suspicion: i64,
    pub matches: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterRegex {
    pub filter_type: i64,
    pub regex: String,
}

/// Answer of `DELETE /filters/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedFilter {
    pub deleted_id: i64,
}

/// Answer of `PUT /operations/ipaddr`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IpTimedOut {
    pub message: String,
    pub minutes: u64,
}

fn id_of(s: &str) -> ApiResult<i64> {
    s.trim()
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "FilterNotFound", "No filter with this id."))
}

#[utoipa::path(get, path = "/filters", tag = "filters", security(("apikey" = [])), params(ListQuery), responses((status = 200, description = "Filter rules (moderators)", body = Vec<FilterDetails>), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiKey(key): ApiKey, QueryParams(q): QueryParams<ListQuery>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let rules = state.horde.list_filters(viewer, q.filter_type, q.contains.as_deref()).await?;
    Ok(Json(rules.into_iter().map(FilterDetails::from).collect::<Vec<_>>()).into_response())
}

#[utoipa::path(put, path = "/filters", tag = "filters", security(("apikey" = [])), request_body = NewFilter, responses((status = 200, description = "The new rule", body = FilterDetails), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn add(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(f): JsonBody<NewFilter>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let rule = state
        .horde
        .add_filter(
            viewer,
            f.regex.unwrap_or_default(),
            f.filter_type.unwrap_or(0),
            f.description.unwrap_or_default(),
            f.replacement.unwrap_or_default(),
        )
        .await?;
    Ok(Json(FilterDetails::from(rule)).into_response())
}

#[utoipa::path(post, path = "/filters", tag = "filters", security(("apikey" = [])), request_body = PromptCheck, responses((status = 200, description = "How suspicious a prompt is", body = PromptSuspicion), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn check(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(c): JsonBody<PromptCheck>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let (suspicion, matches) = state
        .horde
        .check_prompt(viewer, c.prompt.as_deref().unwrap_or(""), c.filter_type)
        .await?;
    Ok(Json(PromptSuspicion { suspicion, matches }).into_response())
}

#[utoipa::path(get, path = "/filters/regex", tag = "filters", security(("apikey" = [])), params(ListQuery), responses((status = 200, description = "Each type's rules as one regex", body = Vec<FilterRegex>), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn regex(State(state): State<AppState>, ApiKey(key): ApiKey, QueryParams(q): QueryParams<ListQuery>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let list = state.horde.filter_regexes(viewer, q.filter_type).await?;
    Ok(Json(
        list.into_iter()
            .map(|(filter_type, regex)| FilterRegex { filter_type, regex })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[utoipa::path(get, path = "/filters/{id}", tag = "filters", security(("apikey" = [])), params(("id" = String, Path, description = "Filter id")), responses((status = 200, description = "The rule", body = FilterDetails), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(FilterDetails::from(state.horde.filter(viewer, id_of(&id)?).await?)).into_response())
}

#[utoipa::path(patch, path = "/filters/{id}", tag = "filters", security(("apikey" = [])), params(("id" = String, Path, description = "Filter id")), request_body = NewFilter, responses((status = 200, description = "The changed rule", body = FilterDetails), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(f): JsonBody<NewFilter>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let rule = state
        .horde
        .modify_filter(viewer, id_of(&id)?, f.regex, f.filter_type, f.description, f.replacement)
        .await?;
    Ok(Json(FilterDetails::from(rule)).into_response())
}

#[utoipa::path(delete, path = "/filters/{id}", tag = "filters", security(("apikey" = [])), params(("id" = String, Path, description = "Filter id")), responses((status = 200, description = "Deleted", body = DeletedFilter), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let id = id_of(&id)?;
    state.horde.delete_filter(viewer, id).await?;
    Ok(Json(DeletedFilter { deleted_id: id }).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct IpTimeout {
    #[serde(default)]
    ipaddr: Option<String>,
    /// Minutes; 0 lifts a timeout.
    #[serde(default)]
    minutes: Option<u64>,
}

/// `PUT /operations/ipaddr`: a moderator times an address out (or lifts it with 0 minutes).
#[utoipa::path(put, path = "/operations/ipaddr", tag = "filters", security(("apikey" = [])), request_body = IpTimeout, responses((status = 200, description = "The IP is timed out", body = IpTimedOut), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn timeout_ip(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(t): JsonBody<IpTimeout>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let ip: IpAddr = t.ipaddr.as_deref().unwrap_or("").trim().parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "ipaddr must be an IPv4 or IPv6 address.",
        )
    })?;
    let minutes = t.minutes.unwrap_or(180);
    state.horde.timeout_ip(viewer, ip, minutes).await?;
    Ok(Json(IpTimedOut {
        message: "OK".into(),
        minutes,
    })
    .into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct WorkerIpBlock {
    /// Days; at most 30.
    #[serde(default)]
    days: Option<u64>,
}

/// `PUT /operations/block_worker_ipaddr/{worker_id}`: a moderator times out the address a worker
/// last checked in from (a week unless `days` says otherwise).
#[utoipa::path(put, path = "/operations/block_worker_ipaddr/{worker_id}", tag = "filters", security(("apikey" = [])), params(("worker_id" = String, Path, description = "Worker id")), request_body = WorkerIpBlock, responses((status = 200, description = "The worker's IP is timed out", body = IpTimedOut), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "No such worker, or its address is unknown", body = ErrorBody)))]
pub async fn block_worker_ip(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(worker_id): Path<String>,
    JsonBody(b): JsonBody<WorkerIpBlock>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let minutes = state.horde.block_worker_ip(viewer, &worker_id, b.days.unwrap_or(7)).await?;
    Ok(Json(IpTimedOut {
        message: "OK".into(),
        minutes,
    })
    .into_response())
}

/// `DELETE /operations/block_worker_ipaddr/{worker_id}`: lifts it.
#[utoipa::path(delete, path = "/operations/block_worker_ipaddr/{worker_id}", tag = "filters", security(("apikey" = [])), params(("worker_id" = String, Path, description = "Worker id")), responses((status = 200, description = "The worker's IP timeout is lifted", body = IpTimedOut), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "No such worker, or its address is unknown", body = ErrorBody)))]
pub async fn unblock_worker_ip(State(state): State<AppState>, ApiKey(key): ApiKey, Path(worker_id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let minutes = state.horde.block_worker_ip(viewer, &worker_id, 0).await?;
    Ok(Json(IpTimedOut {
        message: "OK".into(),
        minutes,
    })
    .into_response())
}
