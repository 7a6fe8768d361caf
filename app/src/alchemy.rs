//! Alchemy from the studios: an image captioned or upscaled through the horde (its
//! `/interrogate` requests, served by alchemists). The server functions here are what the image
//! studio calls, and what the writing studio's pictures module (`app/js/studio-pictures.js`)
//! calls with `fetch`. The image travels as base64 or a `data:` URI and is kept in memory only.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

use crate::api::Submitted;

/// What one form of an alchemy request came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormOutcome {
    /// The form's name (`caption`, `RealESRGAN_x4plus`, …).
    pub form: String,
    /// `waiting`, `processing`, `done`, `faulted` or `cancelled`.
    pub state: String,
    /// A caption's text (empty for other forms).
    pub caption: String,
    /// An image form's result: a short-lived link on this horde (empty for other forms).
    pub image: String,
}

/// An alchemy request's progress: over (`done`) when every form is settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlchemyProgress {
    pub state: String,
    pub done: bool,
    pub forms: Vec<FormOutcome>,
}

impl AlchemyProgress {
    /// The progress as the studios show it, from the horde's status.
    pub fn of(status: horde_protocol::alchemy::AlchemyStatusResponse) -> Self {
        let done = matches!(status.state.as_str(), "done" | "faulted" | "cancelled");
        let forms = status
            .forms
            .into_iter()
            .map(|f| {
                let text = |field: &str| {
                    f.result
                        .as_ref()
                        .and_then(|r| r.get(field))
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                let (caption, image) = if f.form == "caption" {
                    (text("caption"), String::new())
                } else {
                    (String::new(), text(&f.form))
                };
                FormOutcome {
                    state: f.state,
                    caption,
                    image,
                    form: f.form,
                }
            })
            .collect();
        AlchemyProgress {
            state: status.state,
            done,
            forms,
        }
    }

    /// The first form's outcome, once the request is over.
    pub fn outcome(&self) -> Option<&FormOutcome> {
        self.done.then(|| self.forms.first()).flatten()
    }
}

/// The forms the studios ask for.
pub const CAPTION: &str = "caption";
pub const UPSCALE: &str = "RealESRGAN_x4plus";

/// Queues an alchemy request on `source_image` (base64 or a `data:` URI) for the key's account
/// (anonymous when empty): one form each of `forms`.
#[server(prefix = "/ui/api", endpoint = "submit_alchemy", input = Json)]
pub async fn submit_alchemy(api_key: String, source_image: String, forms: Vec<String>) -> Result<Submitted, ServerFnError> {
    use crate::api::server;
    use horde_core::Submission;
    use horde_protocol::alchemy::{AlchemyAsyncRequest, AlchemyForm};
    let horde = server::horde()?;
    let user = server::user(&horde, &api_key).await?;
    let request = AlchemyAsyncRequest {
        forms: forms.into_iter().map(|name| AlchemyForm { name, payload: None }).collect(),
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
    fn a_status_reads_as_captions_and_image_links() {
        let status: AlchemyStatusResponse = serde_json::from_value(serde_json::json!({
            "state": "done",
            "forms": [
                {"form": "caption", "state": "done", "result": {"caption": "a red fox"}},
                {"form": "RealESRGAN_x4plus", "state": "done", "result": {"RealESRGAN_x4plus": "/api/v2/images/t"}},
            ],
        }))
        .expect("status");
        let p = AlchemyProgress::of(status);
        assert!(p.done);
        assert_eq!(p.outcome().map(|f| f.caption.as_str()), Some("a red fox"));
        assert_eq!(p.forms[1].image, "/api/v2/images/t");
        assert_eq!(p.forms[1].caption, "");
        let waiting: AlchemyStatusResponse =
            serde_json::from_value(serde_json::json!({"state": "processing", "forms": [{"form": "caption", "state": "processing"}]}))
                .expect("status");
        assert_eq!(AlchemyProgress::of(waiting).outcome(), None);
    }
}
