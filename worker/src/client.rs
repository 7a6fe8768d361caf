//! The few horde endpoints a worker uses.

use horde_protocol::alchemy::{AlchemyPopRequest, AlchemyPopResponse, AlchemySubmitRequest};
use horde_protocol::image::{ImagePopRequest, ImagePopResponse, ImageSubmitRequest};
use horde_protocol::stream::{TextProgressRequest, TextProgressResponse};
use horde_protocol::text::{SubmitResponse, TextPopRequest, TextPopResponse, TextSubmitRequest};
use horde_protocol::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a call to the horde failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not reach the horde: {0}")]
    Network(#[from] reqwest::Error),
    #[error("the horde answered {status}: {message} ({rc})")]
    Horde { status: u16, rc: String, message: String },
}

impl ClientError {
    /// The horde's return code, if it answered with one.
    pub fn rc(&self) -> Option<&str> {
        match self {
            ClientError::Horde { rc, .. } => Some(rc),
            ClientError::Network(_) => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Horde { status, .. } => Some(*status),
            ClientError::Network(_) => None,
        }
    }
}

/// The error of a non-2xx answer: its `{message, rc}` body, or the bare status.
async fn horde_error(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let err: ErrorBody = resp.json().await.unwrap_or(ErrorBody {
        message: format!("HTTP {status}"),
        rc: "Unknown".into(),
    });
    ClientError::Horde {
        status,
        rc: err.rc,
        message: err.message,
    }
}

/// A horde's API v2, with this worker's key.
#[derive(Debug, Clone)]
pub struct HordeClient {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

impl HordeClient {
    /// `url`: the horde's origin (`https://aihorde.net`) or its API base (`…/api/` or `…/api/v2`).
    pub fn new(url: &str, api_key: &str) -> Result<Self, ClientError> {
        let trimmed = url.trim_end_matches('/');
        let base = if trimmed.ends_with("/api/v2") {
            trimmed.to_string()
        } else if trimmed.ends_with("/api") {
            format!("{trimmed}/v2")
        } else {
            format!("{trimmed}/api/v2")
        };
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
        Ok(Self {
            base,
            api_key: api_key.to_string(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("apikey", &self.api_key)
            .header("Client-Agent", crate::bridge_agent());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        if resp.status().is_success() {
            return Ok(resp.json().await?);
        }
        Err(horde_error(resp).await)
    }

    pub async fn pop(&self, pop: &TextPopRequest) -> Result<TextPopResponse, ClientError> {
        self.send(reqwest::Method::POST, "/generate/text/pop", Some(pop)).await
    }

    pub async fn submit(&self, submit: &TextSubmitRequest) -> Result<SubmitResponse, ClientError> {
        self.send(reqwest::Method::POST, "/generate/text/submit", Some(submit)).await
    }

    /// Reports a job's text so far (progress protocol 1; hordes without it answer 404).
    pub async fn progress(&self, progress: &TextProgressRequest) -> Result<TextProgressResponse, ClientError> {
        self.send(reqwest::Method::POST, "/generate/text/progress", Some(progress)).await
    }

    pub async fn pop_image(&self, pop: &ImagePopRequest) -> Result<ImagePopResponse, ClientError> {
        self.send(reqwest::Method::POST, "/generate/pop", Some(pop)).await
    }

    pub async fn submit_image(&self, submit: &ImageSubmitRequest) -> Result<SubmitResponse, ClientError> {
        self.send(reqwest::Method::POST, "/generate/submit", Some(submit)).await
    }

    pub async fn pop_alchemy(&self, pop: &AlchemyPopRequest) -> Result<AlchemyPopResponse, ClientError> {
        self.send(reqwest::Method::POST, "/interrogate/pop", Some(pop)).await
    }

    pub async fn submit_alchemy(&self, submit: &AlchemySubmitRequest) -> Result<SubmitResponse, ClientError> {
        self.send(reqwest::Method::POST, "/interrogate/submit", Some(submit)).await
    }

    /// GETs a job's source image from its link (no API key: links are presigned), refusing
    /// bodies over `limit` bytes.
    pub async fn download(&self, url: &str, limit: usize) -> Result<Vec<u8>, ClientError> {
        let mut resp = self.http.get(url).send().await?;
        if !resp.status().is_success() {
            return Err(horde_error(resp).await);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Err(ClientError::Horde {
                    status: 413,
                    rc: "SourceImageTooLarge".into(),
                    message: format!("the source image is over {limit} bytes"),
                });
            }
        }
        Ok(body)
    }

    /// PUTs a job's WebP to the upload link of its pop.
    pub async fn upload(&self, url: &str, webp: Vec<u8>) -> Result<(), ClientError> {
        let resp = self.http.put(url).header("Content-Type", "image/webp").body(webp).send().await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(horde_error(resp).await)
    }

    /// The worker's id by its name, if the horde knows it.
    pub async fn worker_id(&self, name: &str) -> Result<Option<String>, ClientError> {
        let path = format!("/workers/name/{}", horde_protocol::percent_encode(name));
        match self.send::<(), serde_json::Value>(reqwest::Method::GET, &path, None).await {
            Ok(v) => Ok(v["id"].as_str().map(str::to_string)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts the worker in or out of maintenance.
    pub async fn set_maintenance(&self, worker_id: &str, on: bool) -> Result<(), ClientError> {
        let body = serde_json::json!({"maintenance": on});
        self.send::<_, serde_json::Value>(reqwest::Method::PUT, &format!("/workers/{worker_id}"), Some(&body))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for (url, want) in [
            ("https://aihorde.net", "https://aihorde.net/api/v2"),
            ("https://aihorde.net/", "https://aihorde.net/api/v2"),
            ("http://127.0.0.1:7001/api/", "http://127.0.0.1:7001/api/v2"),
            ("http://127.0.0.1:7001/api/v2", "http://127.0.0.1:7001/api/v2"),
        ] {
            assert_eq!(HordeClient::new(url, "k").map(|c| c.base().to_string()).ok().as_deref(), Some(want));
        }
    }
}
