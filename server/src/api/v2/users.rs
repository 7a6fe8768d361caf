//! Accounts and kudos endpoints.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::users::{KudosTransferRequest, KudosTransferred, ModifyUser, RegisterRequest, TestUserRequest};
use serde::Deserialize;

use super::{user_of, viewer_of};
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiKey, JsonBody, QueryParams};
use crate::api::AppState;
use horde_protocol::ErrorBody;

#[utoipa::path(get, path = "/find_user", tag = "users", security(("apikey" = [])), responses((status = 200, description = "The key's user", body = horde_protocol::users::UserDetails), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn find_user(State(state): State<AppState>, ApiKey(key): ApiKey) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.user_details(user, Some(user)).await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    page: Option<i64>,
    sort: Option<String>,
}

#[utoipa::path(get, path = "/users", tag = "users", params(ListQuery), responses((status = 200, description = "A page of users", body = Vec<horde_protocol::users::UserDetails>), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, QueryParams(q): QueryParams<ListQuery>) -> ApiResult<Response> {
    let by_age = q.sort.as_deref() == Some("age");
    Ok(Json(state.horde.list_users(q.page.unwrap_or(1), by_age).await?).into_response())
}

fn parse_user_id(id: &str) -> ApiResult<i64> {
    id.trim()
        .parse::<i64>()
        .ok()
        .filter(|i| *i >= 0)
        .ok_or_else(|| horde_core::HordeError::UserNotFound(id.chars().take(40).collect()).into())
}

#[utoipa::path(get, path = "/users/{id}", tag = "users", security((), ("apikey" = [])), params(("id" = String, Path, description = "User id")), responses((status = 200, description = "The user", body = horde_protocol::users::UserDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn details(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_user_id(&id)?;
    let viewer = viewer_of(&state, &key).await;
    Ok(Json(state.horde.user_details(id, viewer).await?).into_response())
}

#[utoipa::path(put, path = "/users/{id}", tag = "users", security(("apikey" = [])), params(("id" = String, Path, description = "User id")), request_body = ModifyUser, responses((status = 200, description = "What changed", body = horde_protocol::users::ModifyUserResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(m): JsonBody<ModifyUser>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let id = parse_user_id(&id)?;
    Ok(Json(state.horde.modify_user(viewer, id, m).await?).into_response())
}

#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("apikey" = [])), params(("id" = String, Path, description = "User id")), responses((status = 200, description = "Marked deleted, or wiped when it had been deleted for 30 days", body = horde_protocol::styles::SimpleResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed (another's account, a moderator's)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    use horde_core::accounts::deletion::Deletion;
    let viewer = user_of(&state, &key, false).await?;
    let id = parse_user_id(&id)?;
    let message = match state.horde.delete_user(viewer, id).await? {
        Deletion::Marked | Deletion::Wiped => "OK".to_string(),
        Deletion::Pending { wipe_in_secs } => format!(
            "OK: already deleted; asked again in {} days, the account is wiped.",
            (wipe_in_secs + 86_399) / 86_400
        ),
    };
    Ok(Json(horde_protocol::styles::SimpleResponse { message }).into_response())
}

#[utoipa::path(post, path = "/kudos/transfer", tag = "users", security(("apikey" = [])), params(("Idempotency-Key" = Option<String>, Header, description = "Repeating a transfer with the key of one made in the last day answers that transfer's answer, without a second transfer")), request_body = KudosTransferRequest, responses((status = 200, description = "Kudos transferred", body = KudosTransferred), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn transfer(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    headers: HeaderMap,
    JsonBody(t): JsonBody<KudosTransferRequest>,
) -> ApiResult<Response> {
    let from = user_of(&state, &key, false).await?;
    let to = t.username.unwrap_or_default();
    // A key that is not text is refused by the core like any malformed key.
    let idempotency = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{0}"));
    let transferred = state.horde.transfer(from, &to, t.amount, idempotency).await?;
    Ok(Json(KudosTransferred { transferred }).into_response())
}

#[utoipa::path(post, path = "/register", tag = "users", request_body = RegisterRequest, responses((status = 201, description = "The new account and its key, shown once", body = horde_protocol::users::NewApiKey), (status = 400, description = "Invalid input", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn register(State(state): State<AppState>, JsonBody(r): JsonBody<RegisterRequest>) -> ApiResult<Response> {
    state.horde.check_registration_open().await?;
    let created = state.horde.register(r.username.as_deref().unwrap_or("")).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(post, path = "/dev/test-user", tag = "users", request_body = TestUserRequest, responses((status = 200, description = "The test user (loopback callers, with --dev-test-users)", body = horde_protocol::users::TestUserResponse), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn test_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(r): JsonBody<TestUserRequest>,
) -> ApiResult<Response> {
    if !test_users_allowed(state.options.dev_test_users, peer.ip()) {
        return Err(ApiError::not_found_route());
    }
    Ok(Json(state.horde.upsert_test_user(r).await?).into_response())
}

/// The test-user route answers only when enabled, and only to loopback callers.
pub fn test_users_allowed(enabled: bool, peer: std::net::IpAddr) -> bool {
    enabled && peer.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_users_need_the_flag_and_loopback() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let lo6: std::net::IpAddr = "::1".parse().expect("ip");
        let remote: std::net::IpAddr = "192.0.2.7".parse().expect("ip");
        assert!(test_users_allowed(true, lo) && test_users_allowed(true, lo6));
        assert!(!test_users_allowed(false, lo));
        assert!(!test_users_allowed(true, remote));
    }
}
