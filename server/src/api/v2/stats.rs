//! The horde's generation figures: `/stats/img/*` and `/stats/text/*` (counts only: no prompt,
//! user or worker).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::generation_stats::GenerationKind;
use horde_protocol::stats::{ImageTotals, ModelStats, TextTotals};
use horde_protocol::ErrorBody;
use serde::Deserialize;

use crate::api::error::ApiResult;
use crate::api::extract::QueryParams;
use crate::api::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelStatsQuery {
    /// `known` (the default), `custom` or `all`. This horde keeps no reference of known models:
    /// every model counted is known, none custom.
    model_state: Option<String>,
}

#[utoipa::path(get, path = "/stats/img/totals", tag = "stats", responses((status = 200, description = "Images finished and their pixelsteps over the last minute, hour, day, month and in all", body = ImageTotals)))]
pub async fn image_totals(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.horde.image_totals().await?).into_response())
}

#[utoipa::path(get, path = "/stats/img/models", tag = "stats", params(ModelStatsQuery), responses((status = 200, description = "Images finished per model over the last day, month and in all", body = ModelStats), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn image_models(State(state): State<AppState>, QueryParams(q): QueryParams<ModelStatsQuery>) -> ApiResult<Response> {
    Ok(Json(state.horde.model_stats(GenerationKind::Image, q.model_state.as_deref()).await?).into_response())
}

#[utoipa::path(get, path = "/stats/text/totals", tag = "stats", responses((status = 200, description = "Text generations finished and their tokens over the last minute, hour, day, month and in all", body = TextTotals)))]
pub async fn text_totals(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.horde.text_totals().await?).into_response())
}

#[utoipa::path(get, path = "/stats/text/models", tag = "stats", params(ModelStatsQuery), responses((status = 200, description = "Text generations finished per model over the last day, month and in all", body = ModelStats), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn text_models(State(state): State<AppState>, QueryParams(q): QueryParams<ModelStatsQuery>) -> ApiResult<Response> {
    Ok(Json(state.horde.model_stats(GenerationKind::Text, q.model_state.as_deref()).await?).into_response())
}
