//! Alchemy from the studios: an image captioned or upscaled through the horde (its
//! `/interrogate` requests, served by alchemists). The server functions here are what the image
//! studio calls, and what the writing studio's pictures module (`app/js/studio-pictures.js`)
//! calls with `fetch`. The image travels as base64 or a `data:` URI and is kept in memory only.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

use crate::api::Submitted;

/// An alchemy request's progress, as the studios show it: the request's state and its (first)
/// form's state and result. It is over (`done`) when every form is settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlchemyProgress {
    pub state: String,
    pub done: bool,
    /// The form's state: `waiting`, `processing`, `done`, `faulted` or `cancelled`.
    pub form_state: String,
    /// A caption's text (empty for other forms).
    pub caption: String,
    /// An image form's result: a short-lived link on this horde (empty for other forms).
    pub image: String,
}

impl AlchemyProgress {
    /// The progress as the studios show it, from the horde's status (its first form).
    pub fn of(status: horde_protocol::alchemy::AlchemyStatusResponse) -> Self {
        let done = matches!(status.state.as_str(), "done" | "faulted" | "cancelled");
        let mut progress = AlchemyProgress {
            state: status.state,
            done,
            ..AlchemyProgress::default()
        };
        if let Some(f) = status.forms.into_iter().next() {
            let text = |field: &str| {
                f.result
                    .as_ref()
                    .and_then(|r| r.get(field))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            if f.form == CAPTION {
                progress.caption = text(CAPTION);
            } else {
                progress.image = text(&f.form);
            }
            progress.form_state = f.state;
        }
        progress
    }

    /// Whether the request is over with its form done.
    pub fn succeeded(&self) -> bool {
        self.done && self.form_state == "done"
    }
}

/// The forms the studios ask for.
pub const CAPTION: &str = "caption";
pub const UPSCALE: &str = "RealESRGAN_x4plus";

/// Queues an alchemy request on `source_image` (base64 or a `data:` URI) for the key's account
/// (anonymous when empty): the one `form` (`caption`, `RealESRGAN_x4plus`, …).
#[server(prefix = "/ui/api", endpoint = "submit_alchemy", input = Json)]
pub async fn submit_alchemy(api_key: String, source_image: String, form: String) -> Result<Submitted, ServerFnError> {
    use crate::api::server;
    use horde_core::Submission;
    use horde_protocol::alchemy::{AlchemyAsyncRequest, AlchemyForm};
    let horde = server::horde()?;
    let user = server::user(&horde, &api_key).await?;
    let request = AlchemyAsyncRequest {
        forms: vec![AlchemyForm { name: form, payload: None }],
        source_image: Some(source_image),
        ..AlchemyAsyncRequest::default()
    };
    match horde
        .interrogate(user, request, server::client_ip().await)
        .await
        .map_err(server::failed)?
    {
        Submission::Queued(a) => Ok(server::submitted(a)),
        Submission::DryRun(_) => Err(ServerFnError::new("The request was a dry run.")),
    }
}

/// Where an alchemy request stands; image results are links on this horde.
#[server(prefix = "/ui/api", endpoint = "alchemy_progress", input = Json)]
pub async fn alchemy_status(id: String) -> Result<AlchemyProgress, ServerFnError> {
    crate::api::server::horde()?
        .alchemy_status(&id, "")
        .await
        .map(AlchemyProgress::of)
        .map_err(crate::api::server::failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use horde_protocol::alchemy::AlchemyStatusResponse;

    #[test]
    fn a_status_reads_as_its_forms_caption_or_image_link() {
        let status = |v: serde_json::Value| serde_json::from_value::<AlchemyStatusResponse>(v).expect("status");
        let p = AlchemyProgress::of(status(serde_json::json!({
            "state": "done", "forms": [{"form": "caption", "state": "done", "result": {"caption": "a red fox"}}],
        })));
        assert!(p.succeeded());
        assert_eq!((p.caption.as_str(), p.image.as_str()), ("a red fox", ""));
        let p = AlchemyProgress::of(status(serde_json::json!({
            "state": "done", "forms": [{"form": "RealESRGAN_x4plus", "state": "done", "result": {"RealESRGAN_x4plus": "/api/v2/images/t"}}],
        })));
        assert_eq!((p.caption.as_str(), p.image.as_str()), ("", "/api/v2/images/t"));
        let p = AlchemyProgress::of(status(
            serde_json::json!({"state": "processing", "forms": [{"form": "caption", "state": "processing"}]}),
        ));
        assert!(!p.done && !p.succeeded());
        let p = AlchemyProgress::of(status(
            serde_json::json!({"state": "faulted", "forms": [{"form": "caption", "state": "faulted"}]}),
        ));
        assert!(p.done && !p.succeeded());
    }
}
