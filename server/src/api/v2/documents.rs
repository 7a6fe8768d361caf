//! Operator documents (`/documents/terms|privacy|sponsors`) and news (`/status/news`), read once
//! at start from the files `--terms-file`, `--privacy-file`, `--sponsors-file` (Markdown) and
//! `--news-file` (a JSON array). Without a file: no terms, no sponsors, no news, and a privacy
//! text that says what this horde keeps.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::QueryParams;
use crate::api::AppState;
use horde_protocol::ErrorBody;

/// What this horde keeps, for operators who supply no privacy text of their own.
pub const DEFAULT_PRIVACY: &str = "# Privacy

This horde keeps, in its database:

- your account: its name, an HMAC of your API key (never the key), your kudos balance and its
  history (a ledger of every change), counts of what you requested and generated, and your roles;
- your workers: their names, info, models, settings and counts of the work they did;
- what you create on purpose: styles, collections, teams, shared keys and messages to workers.

Prompts, images and generated text live only in the horde's memory, for at most about twenty
minutes after a request's last activity, and are never written to disk or to the logs. Workers see
a job's prompt but not who asked for it. The addresses requests come from are held in memory only,
to rate-limit and to time out abuse. Logs record each request's method, path and status, nothing
from its body.
";

/// The operator's documents and news.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    pub terms: Option<String>,
    pub privacy: Option<String>,
    pub sponsors: Option<String>,
    /// A JSON array of news pieces.
    pub news: Option<serde_json::Value>,
}

impl Documents {
    /// Reads the given files; a missing or unreadable file, or news that is not a JSON array, is
    /// an error (at start, before serving).
    pub fn load(
        terms: Option<&FsPath>,
        privacy: Option<&FsPath>,
        sponsors: Option<&FsPath>,
        news: Option<&FsPath>,
    ) -> anyhow::Result<Arc<Self>> {
        let read = |p: Option<&FsPath>| -> anyhow::Result<Option<String>> {
            p.map(|p| std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display())))
                .transpose()
        };
        let news = match read(news)? {
            Some(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the news file is not JSON: {e}"))?;
                anyhow::ensure!(v.is_array(), "the news file must hold a JSON array");
                Some(v)
            }
            None => None,
        };
        Ok(Arc::new(Self {
            terms: read(terms)?,
            privacy: read(privacy)?,
            sponsors: read(sponsors)?,
            news,
        }))
    }
}

/// HTML of the Markdown we expect in documents: `#` headings, `-` lists and paragraphs (text is
/// escaped; other Markdown shows as written).
pub fn markdown_to_html(md: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::new();
    for block in md.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let level = block.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && block[level..].starts_with(' ') && !block.contains('\n') {
            out.push_str(&format!("<h{level}>{}</h{level}>\n", esc(block[level..].trim())));
        } else if block.starts_with("- ") {
            out.push_str("<ul>\n");
            let mut item = String::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("- ") {
                    if !item.is_empty() {
                        out.push_str(&format!("<li>{}</li>\n", esc(item.trim())));
                    }
                    item = rest.to_string();
                } else {
                    item.push(' ');
                    item.push_str(line.trim());
                }
            }
            if !item.is_empty() {
                out.push_str(&format!("<li>{}</li>\n", esc(item.trim())));
            }
            out.push_str("</ul>\n");
        } else {
            let text: Vec<&str> = block.lines().map(str::trim).collect();
            out.push_str(&format!("<p>{}</p>\n", esc(&text.join(" "))));
        }
    }
    out
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// `html` (the default) or `markdown`.
    format: Option<String>,
}

/// A document as HTML or as Markdown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
}

#[utoipa::path(get, path = "/documents/{document}", tag = "status", params(("document" = String, Path, description = "`terms`, `privacy` or `sponsors`"), DocumentQuery), responses((status = 200, description = "The document", body = DocumentBody), (status = 400, description = "Unknown format", body = ErrorBody), (status = 404, description = "Unknown document", body = ErrorBody)))]
pub async fn document(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryParams(q): QueryParams<DocumentQuery>,
) -> ApiResult<Response> {
    let docs = &state.options.documents;
    let md = match name.as_str() {
        "terms" => docs.terms.clone().unwrap_or_default(),
        "privacy" => docs.privacy.clone().unwrap_or_else(|| DEFAULT_PRIVACY.to_string()),
        "sponsors" => docs.sponsors.clone().unwrap_or_default(),
        _ => return Err(ApiError::not_found_route()),
    };
    let body = match q.format.as_deref().unwrap_or("html") {
        "html" => DocumentBody {
            html: Some(markdown_to_html(&md)),
            markdown: None,
        },
        "markdown" => DocumentBody {
            html: None,
            markdown: Some(md.trim_matches('\n').to_string()),
        },
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "BadRequest",
                "'format' needs to be one of ['html', 'markdown']",
            ))
        }
    };
    Ok(Json(body).into_response())
}

/// A news piece, as the operator's file gives it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewsPiece {
    pub date_published: String,
    pub newspiece: String,
    pub importance: String,
    pub tags: Vec<String>,
    pub title: String,
    pub more_info_urls: Vec<String>,
}

#[utoipa::path(get, path = "/status/news", tag = "status", responses((status = 200, description = "The operator's news pieces (`--news-file`), newest as the operator orders them", body = Vec<NewsPiece>)))]
pub async fn news(State(state): State<AppState>) -> Response {
    Json(state.options.documents.news.clone().unwrap_or_else(|| serde_json::json!([]))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_escaped_html() {
        let html = markdown_to_html("# Title\n\nA <b> para\nwrapped.\n\n- one\n  more\n- two");
        assert_eq!(
            html,
            "<h1>Title</h1>\n<p>A &lt;b&gt; para wrapped.</p>\n<ul>\n<li>one more</li>\n<li>two</li>\n</ul>\n"
        );
    }
}
