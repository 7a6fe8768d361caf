//! A minimal Server-Sent Events reader for tests (the events as sent: name and data).

use std::time::Duration;

pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// Opens `url` (GET, or POST with `body`) and checks for a 200 event stream.
    pub async fn open(client: &reqwest::Client, url: &str, key: Option<&str>, body: Option<serde_json::Value>) -> SseReader {
        let mut r = match &body {
            Some(b) => client.post(url).json(b),
            None => client.get(url),
        };
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        let resp = r.send().await.expect("open stream");
        assert_eq!(resp.status(), 200, "stream {url}");
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "content type {ct}");
        SseReader { resp, buf: String::new() }
    }

    /// The next event as (name, data); `None` when the stream ends. Comments are skipped.
    pub async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut name, mut data) = (String::from("message"), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some((name, data.join("\n")));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.resp.chunk())
                .await
                .expect("stream stalled for 60 s")
                .expect("read stream")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every remaining event.
    pub async fn collect(mut self) -> Vec<(String, String)> {
        let mut out = vec![];
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}
