//! Server functions: how the pages reach the horde. On the server each one calls the core
//! scheduler directly (the `Horde` in the Leptos context); in the browser each is an HTTP call to
//! `/ui/api/<name>`. Errors carry the core's message, never a prompt.

use crate::context::StudioTextRequest;
use horde_protocol::users::NewApiKey;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// What to show the user for a failed server function: the horde's message alone.
pub fn message(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Calls the server function `F` (its arguments) from the browser with `fetch`, its answer
/// decoded from text: the same HTTP call as calling the function itself, without the
/// server-function client. The writing studio calls the horde this way: the client's request
/// machinery and its second JSON decoder (from bytes) would cost its bundle about 5 KB
/// compressed (BENCHMARKS.md). Errors are the horde's message.
pub async fn call<F>(args: F) -> Result<F::Output, String>
where
    F: leptos::server_fn::ServerFn + Serialize,
    F::Output: serde::de::DeserializeOwned,
{
    let body = serde_json::to_string(&args).map_err(|e| e.to_string())?;
    crate::browser::post_json(F::PATH, body).await
}

/// A model on offer, with what waiting for it looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    pub name: String,
    pub workers: i64,
    pub queued: f64,
    pub eta: i64,
}

/// A volunteer worker as the status page and the worker picker show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub models: Vec<String>,
    pub performance: String,
    pub uptime: i64,
    pub kudos_rewards: f64,
    pub requests_fulfilled: i64,
    pub maintenance: bool,
    pub info: String,
}

/// The part of a text request's status (`TextStatus`, also the stream's `done` event) that the
/// studio shows; the same field names, so it reads either. Fewer fields than the wire type means
/// less code in the browser bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextProgress {
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub faulted: bool,
    #[serde(default)]
    pub processing: i64,
    #[serde(default)]
    pub queue_position: i64,
    #[serde(default)]
    pub wait_time: i64,
    #[serde(default)]
    pub kudos: f64,
    #[serde(default)]
    pub generations: Vec<TextReply>,
}

/// A finished generation: the text and who wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextReply {
    pub text: String,
    #[serde(default)]
    pub worker_id: String,
    #[serde(default)]
    pub worker_name: String,
    #[serde(default)]
    pub model: String,
}

impl From<horde_protocol::text::TextStatus> for TextProgress {
    fn from(s: horde_protocol::text::TextStatus) -> Self {
        TextProgress {
            done: s.done,
            faulted: s.faulted,
            processing: s.processing,
            queue_position: s.queue_position,
            wait_time: s.wait_time,
            kudos: s.kudos,
            generations: s
                .generations
                .into_iter()
                .map(|g| TextReply {
                    text: g.text,
                    worker_id: g.worker_id,
                    worker_name: g.worker_name,
                    model: g.model,
                })
                .collect(),
        }
    }
}

/// What the writing studio's model and worker pickers offer, labelled on the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextOffer {
    pub models: Vec<Choice>,
    pub workers: Vec<Choice>,
}

/// An option of a picker: the value sent and what the user reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// The horde at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HordeOverview {
    pub version: String,
    pub text_models: Vec<ModelRow>,
    pub image_models: Vec<ModelRow>,
    pub workers: Vec<WorkerRow>,
    pub queued_text_requests: i64,
    pub queued_image_requests: i64,
    pub queued_tokens: f64,
    pub past_minute_tokens: f64,
}

/// An accepted request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: String,
    /// Estimated cost.
    pub kudos: f64,
    /// Whether a worker online now can serve it.
    pub possible: bool,
}

/// The signed-in account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary {
    pub id: i64,
    pub username: String,
    pub kudos: f64,
    pub accumulated: f64,
    pub gifted: f64,
    pub received: f64,
    pub awarded: f64,
    pub text_requested: i64,
    pub image_requested: i64,
    pub worker_count: i64,
    pub anonymous: bool,
}

#[cfg(feature = "ssr")]
pub(crate) mod server {
    use std::net::IpAddr;
    use std::sync::Arc;

    use horde_core::{Horde, HordeError};
    use leptos::prelude::*;

    pub fn horde() -> Result<Arc<Horde>, ServerFnError> {
        use_context::<Arc<Horde>>().ok_or_else(|| ServerFnError::new("The horde is not running."))
    }

    /// The core's error as the answer: the status and message the REST API would give (internal
    /// details go to the log only).
    pub fn failed(e: HordeError) -> ServerFnError {
        let class = e.class();
        if class == horde_core::ErrorClass::Internal {
            tracing::error!(error = %e, "internal error in a server function");
        }
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::from_u16(class.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR));
        }
        ServerFnError::new(e.public_message())
    }

    pub async fn user(horde: &Horde, api_key: &str) -> Result<i64, ServerFnError> {
        let key = if api_key.trim().is_empty() {
            horde_protocol::ANONYMOUS_API_KEY
        } else {
            api_key
        };
        horde.authenticate(key).await.map_err(failed)
    }

    pub async fn client_ip() -> Option<IpAddr> {
        use axum::extract::ConnectInfo;
        leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>()
            .await
            .ok()
            .map(|c| c.0.ip())
    }

    /// A file the user chose could not be read: 400 with why.
    pub fn bad_file(message: String) -> ServerFnError {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::BAD_REQUEST);
        }
        ServerFnError::new(message)
    }

    /// The bytes of a file sent to a server function, base64 or as it is.
    pub fn file_bytes(data: String, base64: bool) -> Result<Vec<u8>, ServerFnError> {
        use base64::Engine;
        if !base64 {
            return Ok(data.into_bytes());
        }
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| bad_file("The file could not be read (bad base64).".into()))
    }

    pub fn submitted(a: horde_core::state::Accepted) -> super::Submitted {
        super::Submitted {
            id: a.id.to_string(),
            kudos: horde_core::kudos::to_kudos(a.kudos),
            possible: a.possible,
        }
    }

    pub fn worker_row(w: horde_protocol::workers::WorkerDetails) -> super::WorkerRow {
        super::WorkerRow {
            id: w.id,
            name: w.name,
            kind: w.kind,
            models: w.models,
            performance: w.performance,
            uptime: w.uptime,
            kudos_rewards: w.kudos_rewards,
            requests_fulfilled: w.requests_fulfilled,
            maintenance: w.maintenance_mode,
            info: w.info,
        }
    }

    pub fn model_rows(models: Vec<horde_protocol::status::ActiveModel>) -> Vec<super::ModelRow> {
        models
            .into_iter()
            .map(|m| super::ModelRow {
                name: m.name,
                workers: m.count,
                queued: m.queued,
                eta: m.eta,
            })
            .collect()
    }
}

/// Models, workers and queues.
#[server(prefix = "/ui/api", endpoint = "overview", input = Json)]
pub async fn overview() -> Result<HordeOverview, ServerFnError> {
    let horde = server::horde()?;
    let perf = horde.performance().await.map_err(server::failed)?;
    Ok(HordeOverview {
        version: horde_core::VERSION.to_string(),
        text_models: server::model_rows(horde.text_models().await.map_err(server::failed)?),
        image_models: server::model_rows(horde.image_models().await.map_err(server::failed)?),
        workers: horde
            .list_workers(None, None, None)
            .await
            .map_err(server::failed)?
            .into_iter()
            .map(server::worker_row)
            .collect(),
        queued_text_requests: perf.queued_text_requests,
        queued_image_requests: perf.queued_requests,
        queued_tokens: perf.queued_tokens,
        past_minute_tokens: perf.past_minute_tokens,
    })
}

/// Text models and text workers to choose from (the writing studio's pickers).
#[server(prefix = "/ui/api", endpoint = "text_choices", input = Json)]
pub async fn text_choices() -> Result<TextOffer, ServerFnError> {
    let horde = server::horde()?;
    Ok(TextOffer {
        models: server::model_rows(horde.text_models().await.map_err(server::failed)?)
            .into_iter()
            .map(|m| Choice {
                label: format!(
                    "{} · {} worker{} · {} queued · ~{}",
                    m.name,
                    m.workers,
                    if m.workers == 1 { "" } else { "s" },
                    m.queued.round(),
                    crate::pages::duration(m.eta)
                ),
                value: m.name,
            })
            .collect(),
        workers: horde
            .list_workers(None, None, None)
            .await
            .map_err(server::failed)?
            .into_iter()
            .filter(|w| w.kind == "text")
            .map(|w| Choice {
                value: w.id,
                label: w.name,
            })
            .collect(),
    })
}

/// Image models to choose from (the image studio's picker).
#[server(prefix = "/ui/api", endpoint = "image_choices", input = Json)]
pub async fn image_choices() -> Result<Vec<Choice>, ServerFnError> {
    Ok(server::model_rows(server::horde()?.image_models().await.map_err(server::failed)?)
        .into_iter()
        .map(|m| Choice {
            label: format!("{} · {} worker{}", m.name, m.workers, if m.workers == 1 { "" } else { "s" }),
            value: m.name,
        })
        .collect())
}

/// Queues a text request for the key's account (anonymous when empty).
#[server(prefix = "/ui/api", endpoint = "submit_text", input = Json)]
pub async fn submit_text(api_key: String, request: StudioTextRequest) -> Result<Submitted, ServerFnError> {
    use horde_core::Submission;
    let horde = server::horde()?;
    let user = server::user(&horde, &api_key).await?;
    match horde
        .generate_text(user, request.to_horde(), server::client_ip().await)
        .await
        .map_err(server::failed)?
    {
        Submission::Queued(a) => Ok(server::submitted(a)),
        Submission::DryRun(_) => Err(ServerFnError::new("The studio does not send dry runs.")),
    }
}

/// Where a text request stands, with its generations when done.
#[server(prefix = "/ui/api", endpoint = "text_status", input = Json)]
pub async fn text_status(id: String) -> Result<TextProgress, ServerFnError> {
    server::horde()?
        .text_status(&id)
        .await
        .map(TextProgress::from)
        .map_err(server::failed)
}

/// Cancels a text request; what was generated so far comes back.
#[server(prefix = "/ui/api", endpoint = "cancel_text", input = Json)]
pub async fn cancel_text(id: String) -> Result<TextProgress, ServerFnError> {
    server::horde()?
        .cancel_text(&id)
        .await
        .map(TextProgress::from)
        .map_err(server::failed)
}

/// The account a key belongs to.
#[server(prefix = "/ui/api", endpoint = "account", input = Json)]
pub async fn account(api_key: String) -> Result<AccountSummary, ServerFnError> {
    let horde = server::horde()?;
    let id = server::user(&horde, &api_key).await?;
    let d = horde.user_details(id, Some(id)).await.map_err(server::failed)?;
    Ok(AccountSummary {
        id: d.id,
        username: d.username,
        kudos: d.kudos,
        accumulated: d.kudos_details.accumulated,
        gifted: d.kudos_details.gifted,
        received: d.kudos_details.received,
        awarded: d.kudos_details.awarded,
        text_requested: d.records.request.text,
        image_requested: d.records.request.image,
        worker_count: d.worker_count,
        anonymous: api_key.trim().is_empty() || api_key.trim() == horde_protocol::ANONYMOUS_API_KEY,
    })
}

/// A new pseudonymous account; its key is shown once.
#[server(prefix = "/ui/api", endpoint = "register", input = Json)]
pub async fn register(username: String) -> Result<NewApiKey, ServerFnError> {
    server::horde()?.register(&username).await.map_err(server::failed)
}

/// Gives kudos to another user (`name#id`); answers the amount moved.
#[server(prefix = "/ui/api", endpoint = "transfer", input = Json)]
pub async fn transfer(api_key: String, to: String, amount: f64) -> Result<f64, ServerFnError> {
    let horde = server::horde()?;
    let from = server::user(&horde, &api_key).await?;
    horde.transfer(from, &to, Some(amount), None).await.map_err(server::failed)
}

/// The workers the key's account owns.
#[server(prefix = "/ui/api", endpoint = "my_workers", input = Json)]
pub async fn my_workers(api_key: String) -> Result<Vec<WorkerRow>, ServerFnError> {
    let horde = server::horde()?;
    let id = server::user(&horde, &api_key).await?;
    let ids = horde
        .user_details(id, Some(id))
        .await
        .map_err(server::failed)?
        .worker_ids
        .unwrap_or_default();
    let mut rows = Vec::with_capacity(ids.len());
    for w in ids {
        rows.push(server::worker_row(
            horde.worker_details(&w, Some(id)).await.map_err(server::failed)?,
        ));
    }
    Ok(rows)
}

/// Puts one of the account's workers in or out of maintenance.
#[server(prefix = "/ui/api", endpoint = "set_maintenance", input = Json)]
pub async fn set_maintenance(api_key: String, worker_id: String, maintenance: bool) -> Result<bool, ServerFnError> {
    let horde = server::horde()?;
    let id = server::user(&horde, &api_key).await?;
    let change = horde_protocol::workers::ModifyWorker {
        maintenance: Some(maintenance),
        ..Default::default()
    };
    horde.modify_worker(id, &worker_id, change).await.map_err(server::failed)?;
    Ok(maintenance)
}

/// One finished image, as the gallery shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryImage {
    /// The generation's id (for ratings).
    pub id: String,
    /// Where the image is: a short-lived link on this horde.
    pub url: String,
    pub seed: String,
    pub worker_name: String,
    pub model: String,
    pub censored: bool,
}

/// An image request's progress, with its images once done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageProgress {
    pub done: bool,
    pub faulted: bool,
    pub waiting: i64,
    pub processing: i64,
    pub finished: i64,
    pub queue_position: i64,
    pub wait_time: i64,
    pub kudos: f64,
    pub images: Vec<GalleryImage>,
}

#[cfg(feature = "ssr")]
fn image_progress(s: horde_protocol::image::ImageStatus) -> ImageProgress {
    ImageProgress {
        done: s.check.done,
        faulted: s.check.faulted,
        waiting: s.check.waiting,
        processing: s.check.processing,
        finished: s.check.finished,
        queue_position: s.check.queue_position,
        wait_time: s.check.wait_time,
        kudos: s.check.kudos,
        images: s
            .generations
            .into_iter()
            .map(|g| GalleryImage {
                id: g.id,
                url: g.img,
                seed: g.seed,
                worker_name: g.worker_name,
                model: g.model,
                censored: g.censored,
            })
            .collect(),
    }
}

/// What an image request would cost (a dry run; nothing is queued or charged).
#[server(prefix = "/ui/api", endpoint = "image_price", input = Json)]
pub async fn image_price(api_key: String, request: horde_protocol::image::GenerateImageRequest) -> Result<f64, ServerFnError> {
    use horde_core::Submission;
    let horde = server::horde()?;
    let user = server::user(&horde, &api_key).await?;
    let request = horde_protocol::image::GenerateImageRequest {
        dry_run: Some(true),
        ..request
    };
    match horde
        .generate_image(user, request, server::client_ip().await)
        .await
        .map_err(server::failed)?
    {
        Submission::DryRun(kudos) => Ok(kudos),
        Submission::Queued(_) => Err(ServerFnError::new("The dry run was queued.")),
    }
}

/// Queues an image request; its images come back as links on this horde.
#[server(prefix = "/ui/api", endpoint = "submit_image", input = Json)]
pub async fn submit_image(api_key: String, request: horde_protocol::image::GenerateImageRequest) -> Result<Submitted, ServerFnError> {
    use horde_core::Submission;
    let horde = server::horde()?;
    let user = server::user(&horde, &api_key).await?;
    let request = horde_protocol::image::GenerateImageRequest {
        dry_run: Some(false),
        r2: Some(true),
        ..request
    };
    match horde
        .generate_image(user, request, server::client_ip().await)
        .await
        .map_err(server::failed)?
    {
        Submission::Queued(a) => Ok(server::submitted(a)),
        Submission::DryRun(_) => Err(ServerFnError::new("The request was a dry run.")),
    }
}

/// An image request's progress; images (relative links) once done.
#[server(prefix = "/ui/api", endpoint = "image_progress", input = Json)]
pub async fn image_status(id: String) -> Result<ImageProgress, ServerFnError> {
    let horde = server::horde()?;
    let check = horde.image_check(&id).await.map_err(server::failed)?;
    if !check.done && !check.faulted {
        return Ok(image_progress(horde_protocol::image::ImageStatus {
            check,
            generations: Vec::new(),
            shared: false,
        }));
    }
    horde.image_status(&id, "").await.map(image_progress).map_err(server::failed)
}

/// Cancels an image request; finished images come back.
#[server(prefix = "/ui/api", endpoint = "cancel_image", input = Json)]
pub async fn cancel_image(id: String) -> Result<ImageProgress, ServerFnError> {
    server::horde()?
        .cancel_image(&id, "")
        .await
        .map(image_progress)
        .map_err(server::failed)
}

/// Rates one image of a shared request (1–10); answers the kudos awarded.
#[server(prefix = "/ui/api", endpoint = "rate_image", input = Json)]
pub async fn rate_image(request_id: String, image_id: String, rating: i64) -> Result<f64, ServerFnError> {
    let rate = horde_protocol::image::RateRequest {
        best: None,
        ratings: Some(vec![horde_protocol::image::ImageRating {
            id: image_id,
            rating,
            artifacts: None,
        }]),
    };
    server::horde()?.rate_images(&request_id, rate).await.map_err(server::failed)
}

/// Changes the description of one of the account's workers.
#[server(prefix = "/ui/api", endpoint = "set_worker_info", input = Json)]
pub async fn set_worker_info(api_key: String, worker_id: String, info: String) -> Result<String, ServerFnError> {
    let horde = server::horde()?;
    let id = server::user(&horde, &api_key).await?;
    let change = horde_protocol::workers::ModifyWorker {
        info: Some(info.clone()),
        ..Default::default()
    };
    horde.modify_worker(id, &worker_id, change).await.map_err(server::failed)?;
    Ok(info)
}

/// Deletes one of the account's workers; answers its name.
#[server(prefix = "/ui/api", endpoint = "delete_worker", input = Json)]
pub async fn delete_worker(api_key: String, worker_id: String) -> Result<String, ServerFnError> {
    let horde = server::horde()?;
    let id = server::user(&horde, &api_key).await?;
    Ok(horde.delete_worker(id, &worker_id).await.map_err(server::failed)?.deleted_name)
}

/// Reads a story file the user chose (a Lite or KoboldAI save, a character card, a lorebook, a
/// text file, a studio story): `data` is the file, in base64 when `base64` is set. The file is
/// read in memory and neither kept nor logged. Answers the [`crate::import::Imported`] as JSON
/// text, which the page reads with [`crate::import::Imported::from_json`]: decoding the story
/// types from the answer's bytes would put a second copy of their JSON code (26 KB) in the
/// browser bundle.
#[server(prefix = "/ui/api", endpoint = "import_file", input = Json)]
pub async fn import_file(name: String, data: String, base64: bool) -> Result<String, ServerFnError> {
    let bytes = server::file_bytes(data, base64)?;
    let imported = crate::import::import_file(&name, &bytes).map_err(|e| server::bad_file(e.to_string()))?;
    serde_json::to_string(&imported).map_err(|e| ServerFnError::new(e.to_string()))
}

/// Reads world info to add to the current story (any lorebook format, or a save's or card's
/// world info): the entries come back as the world info of `stories[0]` (JSON text, as
/// [`import_file`]).
#[server(prefix = "/ui/api", endpoint = "import_world_info", input = Json)]
pub async fn import_world_info(data: String, base64: bool) -> Result<String, ServerFnError> {
    let bytes = server::file_bytes(data, base64)?;
    let (entries, mut imported) = crate::import::import_world_info(&bytes).map_err(|e| server::bad_file(e.to_string()))?;
    imported.stories = vec![crate::story::Story {
        world_info: entries,
        ..crate::story::Story::default()
    }];
    serde_json::to_string(&imported).map_err(|e| ServerFnError::new(e.to_string()))
}

/// The story as a KoboldAI Lite save file (JSON), with the settings.
#[server(prefix = "/ui/api", endpoint = "export_lite", input = Json)]
pub async fn export_lite(story: crate::story::Story, settings: crate::story::GenSettings) -> Result<String, ServerFnError> {
    Ok(crate::import::lite::export_save(&story, &settings))
}
