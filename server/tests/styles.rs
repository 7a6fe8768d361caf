//! Styles and collections over HTTP on every backend: their endpoints, who may change them, and
//! a style applied to a request changing what the worker pops.

mod common;

use common::{Db, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn image_pop(name: &str, model: &str) -> Value {
    json!({"name": name, "models": [model], "max_pixels": 4194304, "amount": 1, "allow_lora": true,
           "bridge_agent": "AI Horde Worker reGen:10.0.0:https://example.invalid"})
}

fn rc(v: &Value) -> &str {
    v["rc"].as_str().unwrap_or("")
}

async fn kudos_of(s: &Server, key: &str) -> f64 {
    let (_, me) = s.get("/find_user", Some(key)).await;
    me["kudos"].as_f64().unwrap_or(f64::NAN)
}

async fn new_style(s: &Server, key: &str, path: &str, body: Value) -> String {
    let (st, v) = s.post(path, Some(key), body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["message"], "OK");
    v["id"].as_str().expect("style id").to_string()
}

async fn image_styles(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (author, author_id) = s.user("stylist", 100.0, false, true).await;
    let (plain, _) = s.user("plain", 100.0, false, false).await;
    let (moder, _) = s.user("moder", 0.0, true, false).await;
    let (requester, _) = s.user("styled_requester", 500.0, false, false).await;
    let (painter, _) = s.user("style_painter", 0.0, false, false).await;

    let id = new_style(
        &s,
        &author,
        "/styles/image",
        json!({"name": "impasto", "info": "thick paint", "prompt": "{p}, impasto impressionism###no blur, {np}",
               "params": {"width": 1024, "height": 512, "steps": 8, "sampler_name": "k_euler_a",
                          "loras": [{"name": "247778", "is_version": true}]},
               "models": ["styled_model"], "tags": ["paint"], "public": true}),
    )
    .await;

    // Read back by id, by name, in the list (by tag and model).
    let (st, d) = s.get(&format!("/styles/image/{id}"), None).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["name"], "impasto");
    assert_eq!(d["creator"], format!("stylist#{author_id}"));
    assert_eq!(d["models"], json!(["styled_model"]));
    assert_eq!(d["tags"], json!(["paint"]));
    assert_eq!(d["params"]["steps"], 8);
    assert_eq!(d["examples"], json!([]));
    assert_eq!(d["use_count"], 0);
    let (st, by_name) = s
        .get(&format!("/styles/image_by_name/stylist%23{author_id}::style::impasto"), None)
        .await;
    assert_eq!((st, by_name["id"].as_str()), (200, Some(id.as_str())));
    let (_, list) = s.get("/styles/image?tag=paint&model=styled_model", None).await;
    assert_eq!(list.as_array().map(|l| l.len()), Some(1), "{list}");
    let (_, list) = s.get("/styles/image?tag=other", None).await;
    assert_eq!(list, json!([]));
    let (st, v) = s.get("/styles/image?sort=best", None).await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"));
    let (st, v) = s.get(&format!("/styles/text/{id}"), None).await;
    assert_eq!((st, rc(&v)), (400, "StyleGetMistmatch"));

    // Validation: the template needs {p} and {np}; a style names 1 to 5 models; names are unique per author.
    let (st, v) = s
        .post(
            "/styles/image",
            Some(&author),
            json!({"name": "flat", "prompt": "{p} flat", "models": ["m"]}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "StylePromptMissingVars"));
    let (st, v) = s.post("/styles/image", Some(&author), json!({"name": "nomodel"})).await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"));
    let (st, v) = s
        .post("/styles/image", Some(&author), json!({"name": "impasto", "models": ["m"]}))
        .await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"));
    let (st, v) = s
        .post(
            "/styles/image",
            Some(&author),
            json!({"name": "huge", "models": ["m"], "params": {"steps": 9000}}),
        )
        .await;
    assert_eq!(st, 400, "{v}");

    // The style changes what the worker pops: template, params (the request keeps its n), models, LoRAs.
    let author_kudos = kudos_of(&s, &author).await;
    let (st, acc) = s
        .post(
            "/generate/async",
            Some(&requester),
            json!({"prompt": "robots###organic", "params": {"width": 512, "height": 512, "steps": 30, "sampler_name": "k_euler"},
                   "models": ["stable_diffusion"], "style": id}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let (st, job) = s
        .post("/generate/pop", Some(&painter), image_pop("style-painter", "styled_model"))
        .await;
    assert_eq!(st, 200, "{job}");
    let p = &job["payload"];
    assert_eq!(p["prompt"], "robots, impasto impressionism###no blur, organic", "{job}");
    assert_eq!((p["width"].as_i64(), p["height"].as_i64()), (Some(1024), Some(512)));
    assert_eq!((p["ddim_steps"].as_i64(), p["sampler_name"].as_str()), (Some(8), Some("k_euler_a")));
    assert_eq!(p["loras"][0]["name"], "247778", "{job}");
    assert_eq!(job["model"], "styled_model");
    let (_, d) = s.get(&format!("/styles/image/{id}"), None).await;
    assert_eq!(d["use_count"], 1);
    // Its author earns 2 kudos for another's request, nothing for a dry run or their own.
    assert_eq!(kudos_of(&s, &author).await, author_kudos + 2.0);
    let (st, _) = s
        .post(
            "/generate/async",
            Some(&requester),
            json!({"prompt": "x", "style": id, "dry_run": true}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, own) = s.post("/generate/async", Some(&author), json!({"prompt": "x", "style": id})).await;
    assert_eq!(st, 202);
    assert_eq!(
        kudos_of(&s, &author).await,
        author_kudos + 2.0 - 1.0,
        "only the author's own request tax"
    );
    let own = own["id"].as_str().unwrap_or_default().to_string();
    let (st, _) = s.send(Method::DELETE, &format!("/generate/status/{own}"), None, json!({})).await;
    assert_eq!(st, 200);

    // Unknown styles, and a text style on an image request.
    let (st, v) = s
        .post(
            "/generate/async",
            Some(&requester),
            json!({"prompt": "x", "style": "no such style"}),
        )
        .await;
    assert_eq!((st, rc(&v)), (404, "StyleNotFound"));
    let text_id = new_style(
        &s,
        &author,
        "/styles/text",
        json!({"name": "instruct", "prompt": "### Instruction:\n{p}\n### Response:", "params": {"max_length": 64}, "models": ["styled-7B"]}),
    )
    .await;
    let (st, v) = s
        .post("/generate/async", Some(&requester), json!({"prompt": "x", "style": text_id}))
        .await;
    assert_eq!((st, rc(&v)), (400, "StyleMismatch"));

    // Changes: the author only; deletion: the author or a moderator.
    let path = format!("/styles/image/{id}");
    let (st, v) = s.send(Method::PATCH, &path, Some(&plain), json!({"info": "mine now"})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, v) = s
        .send(
            Method::PATCH,
            &path,
            Some(&author),
            json!({"info": "thicker paint", "tags": ["paint", "oil"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, d) = s.get(&path, None).await;
    assert_eq!(
        (d["info"].as_str(), d["tags"].clone()),
        (Some("thicker paint"), json!(["paint", "oil"]))
    );
    let (st, v) = s.send(Method::PATCH, &path, Some(&author), json!({"prompt": "{p} only"})).await;
    assert_eq!((st, rc(&v)), (400, "StylePromptMissingVars"));

    // Examples: https only, the first is primary, at most four.
    let ex = format!("{path}/example");
    let (st, v) = s.post(&ex, Some(&author), json!({"url": "http://x.invalid/a.webp"})).await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"));
    let (st, e1) = s
        .post(&ex, Some(&author), json!({"url": "https://x.invalid/1.webp", "primary": false}))
        .await;
    assert_eq!(st, 200, "{e1}");
    let (st, v) = s
        .post(&ex, Some(&author), json!({"url": "https://x.invalid/1.webp", "primary": false}))
        .await;
    assert_eq!((st, rc(&v)), (400, "ExampleURLAlreadyInUse"));
    let (st, v) = s
        .post(&ex, Some(&plain), json!({"url": "https://x.invalid/2.webp", "primary": false}))
        .await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    for n in 2..=4 {
        let (st, _) = s
            .post(
                &ex,
                Some(&author),
                json!({"url": format!("https://x.invalid/{n}.webp"), "primary": n == 3}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (st, v) = s
        .post(&ex, Some(&author), json!({"url": "https://x.invalid/5.webp", "primary": false}))
        .await;
    assert_eq!((st, rc(&v)), (403, "TooManyStyleExamples"));
    let (_, d) = s.get(&path, None).await;
    let primaries: Vec<&str> = d["examples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["primary"] == true)
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert_eq!(primaries, vec!["https://x.invalid/3.webp"], "{d}");
    let e1_path = format!("{ex}/{}", e1["id"].as_str().unwrap_or_default());
    let (st, _) = s.send(Method::DELETE, &e1_path, Some(&author), json!({})).await;
    assert_eq!(st, 200);
    let (st, v) = s.send(Method::DELETE, &e1_path, Some(&author), json!({})).await;
    assert_eq!((st, rc(&v)), (404, "StyleExampleNotFound"));

    // The author's shared key pays for requests using the style, past its per-job limits; the key
    // then serves no other request.
    let (st, key) = s
        .send(
            Method::PUT,
            "/sharedkeys",
            Some(&author),
            json!({"kudos": 500, "max_image_steps": 5}),
        )
        .await;
    assert_eq!(st, 200, "{key}");
    let key_id = key["id"].as_str().unwrap_or_default().to_string();
    let (st, v) = s
        .send(
            Method::PATCH,
            &path,
            Some(&author),
            json!({"sharedkey": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "SharedKeyInvalid"));
    let (st, v) = s.send(Method::PATCH, &path, Some(&author), json!({"sharedkey": key_id})).await;
    assert_eq!(st, 200, "{v}");
    let (st, acc) = s
        .post("/generate/async", Some("0000000000"), json!({"prompt": "boats", "style": id}))
        .await;
    assert_eq!(st, 202, "{acc}");
    let (_, job) = s
        .post("/generate/pop", Some(&painter), image_pop("style-painter", "styled_model"))
        .await;
    assert_eq!(job["payload"]["prompt"], "boats, impasto impressionism###no blur, ", "{job}");
    let (_, k) = s.get(&format!("/sharedkeys/{key_id}"), None).await;
    assert!(k["utilized"].as_i64().is_some_and(|u| u > 0), "{k}");
    let (st, v) = s.post("/generate/async", Some(&key_id), json!({"prompt": "x"})).await;
    assert_eq!((st, rc(&v)), (403, "SharedKeyAssignedStyles"));

    // Collections: a random member styles the request; the collection counts its uses.
    let (st, c) = s
        .post(
            "/collections",
            Some(&plain),
            json!({"name": "painterly", "styles": [id.clone()], "info": "paint"}),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let cid = c["id"].as_str().unwrap_or_default().to_string();
    let (st, cd) = s.get(&format!("/collections/{cid}"), None).await;
    assert_eq!(st, 200, "{cd}");
    assert_eq!(cd["type"], "image");
    assert_eq!(
        cd["styles"],
        json!([{"name": format!("stylist#{author_id}::style::impasto"), "id": id}])
    );
    let (st, by_name) = s.get("/collection_by_name/painterly", None).await;
    assert_eq!((st, by_name["id"].as_str()), (200, Some(cid.as_str())));
    let (_, list) = s.get("/collections?type=image", None).await;
    assert_eq!(list.as_array().map(|l| l.len()), Some(1));
    let (_, list) = s.get("/collections?type=text", None).await;
    assert_eq!(list, json!([]));
    let (st, v) = s
        .post(
            "/collections",
            Some(&plain),
            json!({"name": "mixed", "styles": [id.clone(), text_id.clone()]}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"));
    let (st, acc) = s
        .post(
            "/generate/async",
            Some(&requester),
            json!({"prompt": "ships", "style": "painterly"}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let (_, job) = s
        .post("/generate/pop", Some(&painter), image_pop("style-painter", "styled_model"))
        .await;
    assert_eq!(job["payload"]["prompt"], "ships, impasto impressionism###no blur, ", "{job}");
    let (_, cd) = s.get(&format!("/collections/{cid}"), None).await;
    assert_eq!(cd["use_count"], 1);
    let cpath = format!("/collections/{cid}");
    let (st, v) = s.send(Method::PATCH, &cpath, Some(&author), json!({"name": "taken"})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, _) = s.send(Method::PATCH, &cpath, Some(&plain), json!({"name": "painterly2"})).await;
    assert_eq!(st, 200);
    let (st, v) = s.send(Method::DELETE, &cpath, Some(&author), json!({})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, _) = s.send(Method::DELETE, &cpath, Some(&moder), json!({})).await;
    assert_eq!(st, 200);
    let (st, v) = s.get(&cpath, None).await;
    assert_eq!((st, rc(&v)), (404, "CollectionNotFound"));

    // A moderator may delete someone's style; then it is gone.
    let (st, v) = s.send(Method::DELETE, &path, Some(&plain), json!({})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, v) = s.send(Method::DELETE, &path, Some(&moder), json!({})).await;
    assert_eq!((st, v["message"].as_str()), (200, Some("OK")));
    let (st, v) = s.get(&path, None).await;
    assert_eq!((st, rc(&v)), (404, "StyleNotFound"));
}
on_both_databases!(image_style_round_trip, image_styles);

async fn text_styles(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (author, author_id) = s.user("wordsmith", 100.0, false, true).await;
    let (requester, _) = s.user("text_requester", 500.0, false, false).await;
    let (volunteer, _) = s.user("text_volunteer", 0.0, false, false).await;
    let id = new_style(
        &s,
        &author,
        "/styles/text",
        json!({"name": "instruct", "info": "instruction format", "prompt": "### Instruction:\n{p}\n### Response:",
               "params": {"max_length": 64, "temperature": 0.5}, "models": ["styled-7B"]}),
    )
    .await;
    let (st, d) = s.get("/styles/text_by_name/instruct", None).await;
    assert_eq!((st, d["id"].as_str()), (200, Some(id.as_str())), "{d}");
    assert!(d.get("examples").is_none(), "{d}");
    let (_, list) = s.get("/styles/text", None).await;
    assert_eq!(list.as_array().map(|l| l.len()), Some(1));

    // Named as `author#id::style::name`, the style shapes the popped job.
    let (st, acc) = s
        .post(
            "/generate/text/async",
            Some(&requester),
            json!({"prompt": "hello", "params": {"max_length": 300, "n": 1},
                   "style": format!("wordsmith#{author_id}::style::instruct")}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let (st, pop) = s
        .post(
            "/generate/text/pop",
            Some(&volunteer),
            json!({"name": "styled-vol", "models": ["styled-7B"], "max_length": 512, "max_context_length": 4096}),
        )
        .await;
    assert_eq!(st, 200, "{pop}");
    assert_eq!(pop["payload"]["prompt"], "### Instruction:\nhello\n### Response:", "{pop}");
    assert_eq!(pop["payload"]["max_length"], 64);
    assert_eq!(pop["model"], "styled-7B");

    let (st, v) = s
        .post(
            "/generate/text/async",
            Some(&requester),
            json!({"prompt": "x", "style": "wordsmith#999::style::instruct"}),
        )
        .await;
    assert_eq!((st, rc(&v)), (404, "StyleNotFound"));
    let (st, v) = s
        .post(
            "/styles/text",
            Some(&author),
            json!({"name": "noplace", "prompt": "no placeholder", "models": ["m"]}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "StylePromptMissingVars"));
    let (st, v) = s
        .send(Method::DELETE, &format!("/styles/text/{id}"), Some(&author), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.get(&format!("/styles/text/{id}"), None).await;
    assert_eq!((st, rc(&v)), (404, "StyleNotFound"));
}
on_both_databases!(text_style_round_trip, text_styles);
