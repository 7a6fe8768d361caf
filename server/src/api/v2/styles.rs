//! Styles (`/styles/image`, `/styles/text`) and collections of styles (`/collections`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::styles::StyleKind;
use horde_protocol::styles::{CollectionInput, SimpleResponse, StyleExampleInput, StyleInput};
use serde::Deserialize;

use super::user_of;
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody, QueryParams};
use crate::api::AppState;
use horde_protocol::styles::{CollectionDetails, StyleDetails, StyleModified};
use horde_protocol::ErrorBody;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StyleListQuery {
    /// `popular` (most used first, the default) or `age` (oldest first).
    sort: Option<String>,
    /// Page of 25, from 1.
    page: Option<i64>,
    /// Only styles with this tag.
    tag: Option<String>,
    /// Only styles using this model.
    model: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CollectionListQuery {
    sort: Option<String>,
    page: Option<i64>,
    /// `image`, `text` or `all` (the default).
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn ok() -> Response {
    Json(SimpleResponse { message: "OK".into() }).into_response()
}

async fn list(state: AppState, kind: StyleKind, q: StyleListQuery) -> ApiResult<Response> {
    let list = state
        .horde
        .list_styles(kind, q.sort.as_deref(), q.page, q.tag.as_deref(), q.model.as_deref())
        .await?;
    Ok(Json(list).into_response())
}

async fn create(state: AppState, key: Option<String>, kind: StyleKind, input: StyleInput) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.create_style(viewer, kind, input).await?).into_response())
}

async fn modify(state: AppState, key: Option<String>, kind: StyleKind, id: String, input: StyleInput) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.modify_style(viewer, kind, &id, input).await?).into_response())
}

async fn delete(state: AppState, key: Option<String>, kind: StyleKind, id: String) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    state.horde.delete_style(viewer, kind, &id).await?;
    Ok(ok())
}

// ----- image styles -----------------------------------------------------------------------

#[utoipa::path(get, path = "/styles/image", tag = "styles", params(StyleListQuery), responses((status = 200, description = "Public image styles", body = Vec<StyleDetails>), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn image_list(State(state): State<AppState>, QueryParams(q): QueryParams<StyleListQuery>) -> ApiResult<Response> {
    list(state, StyleKind::Image, q).await
}

#[utoipa::path(post, path = "/styles/image", tag = "styles", security(("apikey" = [])), request_body = StyleInput, responses((status = 200, description = "Style added", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn image_create(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    JsonBody(input): JsonBody<StyleInput>,
) -> ApiResult<Response> {
    create(state, key, StyleKind::Image, input).await
}

#[utoipa::path(get, path = "/styles/image/{style_id}", tag = "styles", params(("style_id" = String, Path, description = "Style id")), responses((status = 200, description = "The style", body = StyleDetails), (status = 400, description = "A text style", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn image_get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.style_details(StyleKind::Image, &id).await?).into_response())
}

#[utoipa::path(patch, path = "/styles/image/{style_id}", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id")), request_body = StyleInput, responses((status = 200, description = "Style changed", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not the author", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn image_modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<StyleInput>,
) -> ApiResult<Response> {
    modify(state, key, StyleKind::Image, id, input).await
}

#[utoipa::path(delete, path = "/styles/image/{style_id}", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id")), responses((status = 200, description = "Deleted", body = SimpleResponse), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Neither the author nor a moderator", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn image_delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    delete(state, key, StyleKind::Image, id).await
}

#[utoipa::path(get, path = "/styles/image_by_name/{style_name}", tag = "styles", params(("style_name" = String, Path, description = "`name`, or `author#id::style::name`")), responses((status = 200, description = "The style", body = StyleDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn image_by_name(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.style_details_by_name(StyleKind::Image, &name).await?).into_response())
}

#[utoipa::path(post, path = "/styles/image/{style_id}/example", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id")), request_body = StyleExampleInput, responses((status = 200, description = "Example added", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed, or four examples already", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn example_add(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<StyleExampleInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.add_style_example(viewer, &id, input).await?).into_response())
}

#[utoipa::path(patch, path = "/styles/image/{style_id}/example/{example_id}", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id"), ("example_id" = String, Path, description = "Example id")), request_body = StyleExampleInput, responses((status = 200, description = "Example changed", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn example_modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path((id, example)): Path<(String, String)>,
    JsonBody(input): JsonBody<StyleExampleInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.change_style_example(viewer, &id, &example, Some(input)).await?).into_response())
}

#[utoipa::path(delete, path = "/styles/image/{style_id}/example/{example_id}", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id"), ("example_id" = String, Path, description = "Example id")), responses((status = 200, description = "Example deleted", body = SimpleResponse), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn example_delete(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path((id, example)): Path<(String, String)>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    state.horde.change_style_example(viewer, &id, &example, None).await?;
    Ok(ok())
}

// ----- text styles ------------------------------------------------------------------------

#[utoipa::path(get, path = "/styles/text", tag = "styles", params(StyleListQuery), responses((status = 200, description = "Public text styles", body = Vec<StyleDetails>), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn text_list(State(state): State<AppState>, QueryParams(q): QueryParams<StyleListQuery>) -> ApiResult<Response> {
    list(state, StyleKind::Text, q).await
}

#[utoipa::path(post, path = "/styles/text", tag = "styles", security(("apikey" = [])), request_body = StyleInput, responses((status = 200, description = "Style added", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn text_create(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(input): JsonBody<StyleInput>) -> ApiResult<Response> {
    create(state, key, StyleKind::Text, input).await
}

#[utoipa::path(get, path = "/styles/text/{style_id}", tag = "styles", params(("style_id" = String, Path, description = "Style id")), responses((status = 200, description = "The style", body = StyleDetails), (status = 400, description = "An image style", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn text_get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.style_details(StyleKind::Text, &id).await?).into_response())
}

#[utoipa::path(patch, path = "/styles/text/{style_id}", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id")), request_body = StyleInput, responses((status = 200, description = "Style changed", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not the author", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn text_modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<StyleInput>,
) -> ApiResult<Response> {
    modify(state, key, StyleKind::Text, id, input).await
}

#[utoipa::path(delete, path = "/styles/text/{style_id}", tag = "styles", security(("apikey" = [])), params(("style_id" = String, Path, description = "Style id")), responses((status = 200, description = "Deleted", body = SimpleResponse), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Neither the author nor a moderator", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn text_delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    delete(state, key, StyleKind::Text, id).await
}

#[utoipa::path(get, path = "/styles/text_by_name/{style_name}", tag = "styles", params(("style_name" = String, Path, description = "`name`, or `author#id::style::name`")), responses((status = 200, description = "The style", body = StyleDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn text_by_name(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.style_details_by_name(StyleKind::Text, &name).await?).into_response())
}

// ----- collections ------------------------------------------------------------------------

#[utoipa::path(get, path = "/collections", tag = "styles", params(CollectionListQuery), responses((status = 200, description = "Public collections", body = Vec<CollectionDetails>), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn collection_list(State(state): State<AppState>, QueryParams(q): QueryParams<CollectionListQuery>) -> ApiResult<Response> {
    let list = state.horde.list_collections(q.sort.as_deref(), q.page, q.kind.as_deref()).await?;
    Ok(Json(list).into_response())
}

#[utoipa::path(post, path = "/collections", tag = "styles", security(("apikey" = [])), request_body = CollectionInput, responses((status = 200, description = "Collection added", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn collection_create(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    JsonBody(input): JsonBody<CollectionInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.create_collection(viewer, input).await?).into_response())
}

#[utoipa::path(get, path = "/collections/{collection_id}", tag = "styles", params(("collection_id" = String, Path, description = "Collection id")), responses((status = 200, description = "The collection", body = CollectionDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn collection_get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.collection_details(&id).await?).into_response())
}

#[utoipa::path(patch, path = "/collections/{collection_id}", tag = "styles", security(("apikey" = [])), params(("collection_id" = String, Path, description = "Collection id")), request_body = CollectionInput, responses((status = 200, description = "Collection changed", body = StyleModified), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not the author", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn collection_modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<CollectionInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.modify_collection(viewer, &id, input).await?).into_response())
}

#[utoipa::path(delete, path = "/collections/{collection_id}", tag = "styles", security(("apikey" = [])), params(("collection_id" = String, Path, description = "Collection id")), responses((status = 200, description = "Deleted", body = SimpleResponse), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Neither the author nor a moderator", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn collection_delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    state.horde.delete_collection(viewer, &id).await?;
    Ok(ok())
}

#[utoipa::path(get, path = "/collection_by_name/{collection_name}", tag = "styles", params(("collection_name" = String, Path, description = "`name`, or `author#id::collection::name`")), responses((status = 200, description = "The collection", body = CollectionDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn collection_by_name(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.collection_details_by_name(&name).await?).into_response())
}
