//! The horde's web pages. For now a server-rendered overview of the horde with links to the API;
//! the full writing and image studio is built on this crate.

/// What the overview page shows.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub version: &'static str,
    pub text_workers: i64,
    pub queued_text_requests: i64,
    pub queued_tokens: f64,
    pub past_minute_tokens: f64,
    /// (model, threads, eta seconds)
    pub models: Vec<(String, i64, i64)>,
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = include_str!("../../style/main.css");

/// The landing page.
pub fn landing_page(o: &Overview) -> String {
    let models = if o.models.is_empty() {
        "<p class=\"muted\">No worker is online right now. Requests wait up to 20 minutes for one.</p>".to_string()
    } else {
        let rows: String = o
            .models
            .iter()
            .map(|(name, threads, eta)| format!("<tr><td>{}</td><td>{threads}</td><td>{eta} s</td></tr>", escape(name)))
            .collect();
        format!("<table><thead><tr><th>Model</th><th>Threads</th><th>ETA</th></tr></thead><tbody>{rows}</tbody></table>")
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Horde</title><style>{STYLE}</style></head>
<body><main>
<h1>Horde <small>v{version}</small></h1>
<p>A crowdsourced cluster for AI text generation. Volunteers run workers; requesters spend kudos for priority.
Prompts and generations live in memory only and vanish 20 minutes after their last activity.</p>
<section class="cards">
<div class="card"><b id="workers">{workers}</b><span>text workers online</span></div>
<div class="card"><b id="queued">{queued}</b><span>requests queued</span></div>
<div class="card"><b>{tokens:.0}</b><span>tokens queued</span></div>
<div class="card"><b>{past:.0}</b><span>tokens in the last minute</span></div>
</section>
<h2>Models</h2>
{models}
<h2>Use it</h2>
<p>The API is AI Horde API v2 under <code>/api/v2</code>: point KoboldAI Lite, horde-sdk
(<code>AI_HORDE_URL=&lt;this address&gt;/api/</code>) or any Horde client here. The anonymous key is <code>0000000000</code>.</p>
<p><a href="/api/v2/status/models?type=text">Models</a> · <a href="/api/v2/workers?type=text">Workers</a> ·
<a href="/api/v2/status/performance">Performance</a> · <a href="/api/v2/status/heartbeat">Heartbeat</a></p>
</main></body></html>"#,
        version = escape(o.version),
        workers = o.text_workers,
        queued = o.queued_text_requests,
        tokens = o.queued_tokens,
        past = o.past_minute_tokens,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_model_names() {
        let page = landing_page(&Overview {
            models: vec![("<b>x</b>".into(), 2, 5)],
            ..Default::default()
        });
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(!page.contains("<b>x</b>"));
    }
}
