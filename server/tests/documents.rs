//! Documents and news over HTTP: the operator's files when given, else no terms, no sponsors,
//! no news and a privacy text saying what the horde keeps.

mod common;

use common::{Db, Server};
use serde_json::json;

async fn documents(db: Db) {
    let s = server!(db);
    let (st, news) = s.get("/status/news", None).await;
    assert_eq!((st, news), (200, json!([])));
    let (st, p) = s.get("/documents/privacy", None).await;
    assert_eq!(st, 200);
    let html = p["html"].as_str().unwrap_or_default();
    assert!(html.contains("<h1>Privacy</h1>") && html.contains("never written to disk"), "{p}");
    let (_, p) = s.get("/documents/privacy?format=markdown", None).await;
    assert!(p["markdown"].as_str().is_some_and(|m| m.starts_with("# Privacy")), "{p}");
    assert!(p.get("html").is_none());
    let (_, t) = s.get("/documents/terms", None).await;
    assert_eq!(t, json!({"html": ""}));
    let (st, v) = s.get("/documents/terms?format=pdf", None).await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("BadRequest")));
    let (st, _) = s.get("/documents/recipes", None).await;
    assert_eq!(st, 404);
}
on_both_databases!(default_documents, documents);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_files_are_served() {
    let dir = std::env::temp_dir().join(format!("horde-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let news = json!([{"date_published": "2026-12-07", "newspiece": "Styles are here.", "importance": "Information",
                       "tags": ["styles"], "title": "Styles", "more_info_urls": []}]);
    std::fs::write(dir.join("news.json"), news.to_string()).expect("news");
    std::fs::write(dir.join("terms.md"), "# Terms\n\nBe kind.").expect("terms");
    let news_arg = dir.join("news.json").display().to_string();
    let terms_arg = dir.join("terms.md").display().to_string();
    let s = Server::start(Db::Sqlite, &["--news-file", &news_arg, "--terms-file", &terms_arg])
        .await
        .expect("server");
    let (_, got) = s.get("/status/news", None).await;
    assert_eq!(got, news);
    let (_, t) = s.get("/documents/terms", None).await;
    assert_eq!(t, json!({"html": "<h1>Terms</h1>\n<p>Be kind.</p>\n"}));
    let (_, t) = s.get("/documents/terms?format=markdown", None).await;
    assert_eq!(t, json!({"markdown": "# Terms\n\nBe kind."}));
    let _ = std::fs::remove_dir_all(&dir);
}
