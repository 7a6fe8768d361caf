//! Image rules: pricing at submission, matching, batching, uploads, submit, ratings, expiry.

use super::*;
use crate::accounts::User;
use crate::config::HordeConfig;
use crate::kudos::image_model::KudosModel;
use crate::kudos::KudosLedger;
use crate::scheduler::JobState;
use crate::workers::{WorkerKind, WorkerPop};
use horde_protocol::image::RateRequest;
use horde_protocol::image::{GenerateImageRequest, ImagePopRequest, ImageRating};
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn user(id: i64, kudos: f64) -> User {
    crate::lifecycle::tests::user(id, kudos, false)
}

fn state_with(cfg: HordeConfig) -> State {
    let mut s = State::new(cfg, KudosLedger::default(), KudosModel::shipped().expect("kudos model"));
    for u in [user(0, 0.0), user(1, 1000.0), user(2, 100.0), user(4, 0.0)] {
        s.users.insert_loaded(u, None);
    }
    s
}

fn state() -> State {
    state_with(HordeConfig::default())
}

fn image_req(s: &State, v: serde_json::Value) -> ImageRequest {
    let wire: GenerateImageRequest = serde_json::from_value(v).expect("request json");
    ImageRequest::parse(wire, &s.cfg).expect("valid request")
}

fn submit(s: &mut State, user: i64, v: serde_json::Value) -> Uuid {
    let r = image_req(s, v);
    s.accept::<ImageKind>(user, r, T0).expect("accepted").id
}

fn worker(s: &mut State, owner: i64, pop: serde_json::Value) -> (Uuid, WorkerPop) {
    let wire: ImagePopRequest = serde_json::from_value(pop).expect("pop json");
    let p = WorkerPop::try_from(wire).expect("valid pop");
    let id = Uuid::new_v4();
    let mut w = Worker::new(id, p.name.clone(), owner, 0);
    w.kind = WorkerKind::Image;
    s.workers.insert(w);
    s.check_in(&id, &p, T0).expect("check in");
    (id, p)
}

fn link(job: &Uuid) -> String {
    format!("http://h/api/v2/images/{job}")
}

fn pop(s: &mut State, w: &(Uuid, WorkerPop), now: u64) -> ImagePopResponse {
    s.check_in(&w.0, &w.1, now).expect("check in");
    s.pop::<ImageKind>(&w.0, w.1.amount, now, &link).expect("pop")
}

fn webp_b64() -> String {
    let mut bytes = Vec::new();
    image::RgbImage::new(4, 4)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::WebP)
        .expect("webp");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn result(job: &str, generation: String) -> ImageJobResult {
    ImageJobResult {
        job_id: job.to_string(),
        generation,
        state: "ok".into(),
        seed: 5,
        censored: false,
        gen_metadata: vec![],
    }
}

#[test]
fn baseline_request_costs_ten_plus_taxes() {
    let s = state();
    let r = image_req(
        &s,
        json!({"prompt": "a", "params": {"steps": 50, "sampler_name": "k_euler", "cfg_scale": 7.5}}),
    );
    // 10 for the image, 1 job tax, 1 request tax.
    assert_eq!(s.price::<ImageKind>(&r), 1200);
    let two = image_req(
        &s,
        json!({"prompt": "a", "params": {"steps": 50, "sampler_name": "k_euler", "cfg_scale": 7.5, "n": 2}}),
    );
    assert_eq!(s.price::<ImageKind>(&two), 2300);
}

#[test]
fn full_round_trip_charges_what_dry_run_said() {
    let mut s = state();
    let body = json!({"prompt": "a lighthouse ### fog", "params": {"steps": 50, "sampler_name": "k_euler", "cfg_scale": 7.5}, "r2": false});
    let estimate = s.price::<ImageKind>(&image_req(&s, body.clone()));
    let before = s.users.get(1).map(|u| u.kudos).unwrap_or_default();
    let id = submit(&mut s, 1, body);
    let w = worker(
        &mut s,
        4,
        json!({"name": "img", "models": ["stable_diffusion"], "bridge_agent": "t:1:x"}),
    );
    let job = pop(&mut s, &w, T0 + 1000);
    assert_eq!(job.ids.len(), 1);
    assert_eq!(
        job.payload.as_ref().expect("payload").prompt.as_deref(),
        Some("a lighthouse ### fog")
    );
    assert_eq!(job.payload.as_ref().expect("payload").ddim_steps, 50);
    assert_eq!(job.payload.as_ref().expect("payload").n_iter, 1);
    assert_eq!(job.model.as_deref(), Some("stable_diffusion"));
    assert_eq!(job.r2_uploads.as_ref().map(Vec::len), Some(1));
    let reward = s
        .settle::<ImageKind>(4, result(&job.ids[0], webp_b64()), T0 + 5000)
        .expect("submitted");
    assert_eq!(reward, 10.0);
    let after = s.users.get(1).map(|u| u.kudos).unwrap_or_default();
    assert_eq!(before - after, estimate);
    let st = s.status::<ImageKind>(&id, T0 + 6000, &link).expect("status");
    assert!(st.check.done);
    assert_eq!(st.check.kudos, 12.0);
    assert_eq!(st.generations.len(), 1);
    assert_eq!(st.generations[0].img, webp_b64());
    assert_eq!(st.generations[0].seed, "5");
    // The worker's owner got the reward; a timing was recorded for the kudos model.
    assert_eq!(s.users.get(4).map(|u| u.kudos), Some(1000));
    assert_eq!(s.pending.timings.len(), 1);
    // Double submit is refused and pays nothing more.
    assert_eq!(
        s.settle::<ImageKind>(4, result(&job.ids[0], webp_b64()), T0 + 7000)
            .err()
            .map(|e| e.rc()),
        Some("DuplicateGen")
    );
}

#[test]
fn uploads_then_r2_submit_and_links_for_r2_requests() {
    let mut s = state();
    let id = submit(&mut s, 1, json!({"prompt": "a"}));
    let w = worker(&mut s, 4, json!({"name": "img", "models": ["stable_diffusion"]}));
    let job = pop(&mut s, &w, T0);
    let job_id = Uuid::parse_str(&job.ids[0]).expect("uuid");
    assert_eq!(
        s.settle::<ImageKind>(4, result(&job.ids[0], "R2".into()), T0).err().map(|e| e.rc()),
        Some("ImageNotUploaded")
    );
    assert_eq!(
        s.upload_image(&job_id, b"not an image".to_vec()).err().map(|e| e.rc()),
        Some("InvalidImage")
    );
    let bytes = base64::engine::general_purpose::STANDARD.decode(webp_b64()).expect("b64");
    s.upload_image(&job_id, bytes.clone()).expect("uploaded");
    s.settle::<ImageKind>(4, result(&job.ids[0], "R2".into()), T0).expect("submitted");
    let st = s.status::<ImageKind>(&id, T0, &link).expect("status");
    assert_eq!(st.generations[0].img, link(&job_id));
    assert_eq!(s.image_bytes(&job_id).map(|b| b.to_vec()), Some(bytes));
    // Too late to upload once done.
    assert!(s.upload_image(&job_id, vec![]).is_err());
}

#[test]
fn matching_respects_image_capabilities() {
    let mut s = state();
    let big = submit(&mut s, 1, json!({"prompt": "a", "params": {"width": 1024, "height": 1024}}));
    let w = worker(
        &mut s,
        4,
        json!({"name": "small", "models": ["stable_diffusion"], "max_pixels": 262144}),
    );
    let idle = pop(&mut s, &w, T0);
    assert!(idle.id.is_none());
    assert_eq!(idle.skipped.max_pixels, 1);
    let w2 = worker(
        &mut s,
        4,
        json!({"name": "big", "models": ["stable_diffusion"], "max_pixels": 1048576}),
    );
    assert_eq!(pop(&mut s, &w2, T0).ids.len(), 1);
    assert!(s.images.get(&big).is_some_and(|r| r.processing == 1));

    let mut s = state();
    submit(
        &mut s,
        1,
        json!({"prompt": "a", "nsfw": false, "params": {"loras": [{"name": "x"}]}}),
    );
    submit(
        &mut s,
        1,
        json!({"prompt": "a", "nsfw": false, "params": {"post_processing": ["GFPGAN"]}}),
    );
    submit(&mut s, 1, json!({"prompt": "a", "models": ["other"]}));
    submit(&mut s, 1, json!({"prompt": "a", "nsfw": true}));
    submit(&mut s, 1, json!({"prompt": "a", "nsfw": false, "params": {"steps": 40}}));
    let w = worker(
        &mut s,
        2,
        json!({"name": "picky", "models": ["stable_diffusion"], "nsfw": false, "allow_post_processing": false, "limit_max_steps": true}),
    );
    let idle = pop(&mut s, &w, T0);
    assert!(idle.id.is_none());
    assert_eq!(
        (
            idle.skipped.lora,
            idle.skipped.post_processing,
            idle.skipped.models,
            idle.skipped.nsfw,
            idle.skipped.step_count
        ),
        (1, 1, 1, 1, 1)
    );
    // A SFW request of at most 30 steps without extras is served.
    submit(&mut s, 1, json!({"prompt": "a", "nsfw": false}));
    assert_eq!(pop(&mut s, &w, T0).ids.len(), 1);
}

#[test]
fn batches_fill_max_pixels_and_seeds_follow_variation() {
    let mut s = state();
    submit(
        &mut s,
        1,
        json!({"prompt": "a", "params": {"n": 5, "seed": "100", "seed_variation": 2}}),
    );
    let w = worker(
        &mut s,
        4,
        json!({"name": "w", "models": ["stable_diffusion"], "max_pixels": 1048576, "amount": 8}),
    );
    let job = pop(&mut s, &w, T0);
    assert_eq!(job.ids.len(), 4);
    assert_eq!(job.payload.as_ref().expect("payload").n_iter, 4);
    assert_eq!(job.payload.as_ref().expect("payload").seed, "100");
    let seeds: Vec<i64> = job
        .ids
        .iter()
        .filter_map(|i| Uuid::parse_str(i).ok())
        .filter_map(|i| s.images.job(&i).map(|j| j.seed))
        .collect();
    assert_eq!(seeds, vec![100, 102, 104, 106]);
    let rest = pop(&mut s, &w, T0);
    assert_eq!(rest.ids.len(), 1);
    assert_eq!(rest.payload.as_ref().expect("payload").seed, "108");
}

#[test]
fn censorlist_words_turn_the_censor_on() {
    let mut s = state();
    submit(&mut s, 1, json!({"prompt": "A Bloody battle"}));
    let w = worker(
        &mut s,
        4,
        json!({"name": "w", "models": ["stable_diffusion"], "blacklist": ["blood"]}),
    );
    let job = pop(&mut s, &w, T0);
    assert!(job.payload.as_ref().expect("payload").use_nsfw_censor);
    submit(&mut s, 1, json!({"prompt": "a meadow"}));
    assert!(!pop(&mut s, &w, T0).payload.expect("payload").use_nsfw_censor);
    submit(&mut s, 1, json!({"prompt": "a meadow", "nsfw": false, "censor_nsfw": true}));
    assert!(pop(&mut s, &w, T0).payload.expect("payload").use_nsfw_censor);
}

#[test]
fn censored_jobs_are_not_charged() {
    let mut s = state();
    submit(&mut s, 1, json!({"prompt": "a"}));
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["stable_diffusion"]}));
    let job = pop(&mut s, &w, T0);
    let before = s.users.get(1).map(|u| u.kudos);
    let mut r = result(&job.ids[0], webp_b64());
    r.gen_metadata = vec![GenMetadata {
        kind: "censorship".into(),
        value: "nsfw".into(),
        reference: None,
    }];
    let reward = s.settle::<ImageKind>(4, r, T0).expect("submitted");
    assert!(reward > 0.0);
    assert_eq!(s.users.get(1).map(|u| u.kudos), before);
}

#[test]
fn memory_cap_refuses_cleanly() {
    let mut s = state_with(HordeConfig {
        image_memory_cap_bytes: 100,
        ..HordeConfig::default()
    });
    submit(&mut s, 1, json!({"prompt": "a"}));
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["stable_diffusion"]}));
    let job = pop(&mut s, &w, T0);
    let job_id = Uuid::parse_str(&job.ids[0]).expect("uuid");
    let big = {
        let mut bytes = Vec::new();
        image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]))
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .expect("png");
        bytes
    };
    assert!(big.len() > 100);
    assert_eq!(s.upload_image(&job_id, big).err().map(|e| e.rc()), Some("ImageStoreFull"));
    // The job is still in flight and can be finished once room is made.
    assert_eq!(s.images.job(&job_id).map(|j| j.state), Some(JobState::InFlight));
}

#[test]
fn stale_jobs_requeue_and_requests_expire_with_their_images() {
    let mut s = state();
    let id = submit(&mut s, 1, json!({"prompt": "a"}));
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["stable_diffusion"]}));
    let job = pop(&mut s, &w, T0);
    let ttl = job.ttl.unwrap_or_default() as u64;
    assert_eq!(ttl, 150);
    let report = s.reap(T0 + ttl * 1000 + 1);
    assert_eq!(report.jobs_aborted, 1);
    assert!(s.images.get(&id).is_some_and(|r| r.remaining == 1 && r.faults == 1));
    // A late submit after requeue is refused.
    assert_eq!(
        s.settle::<ImageKind>(4, result(&job.ids[0], webp_b64()), T0 + ttl * 1000 + 2)
            .err()
            .map(|e| e.rc()),
        Some("AbortedGen")
    );
    let again = pop(&mut s, &w, T0 + ttl * 1000 + 3);
    s.settle::<ImageKind>(4, result(&again.ids[0], webp_b64()), T0 + ttl * 1000 + 4)
        .expect("submitted");
    assert!(s.image_store.used() > 0);
    s.reap(T0 + ttl * 1000 + 4 + 20 * 60 * 1000 + 1);
    assert!(s.images.get(&id).is_none());
    assert_eq!(s.image_store.used(), 0);
    assert_eq!(s.check::<ImageKind>(&id, T0).err().map(|e| e.rc()), Some("RequestNotFound"));
}

#[test]
fn ratings_pay_once_for_shared_finished_requests() {
    let mut s = state();
    let id = submit(
        &mut s,
        1,
        json!({"prompt": "a", "shared": true, "params": {"n": 2, "steps": 150}, "r2": false}),
    );
    let private = submit(&mut s, 1, json!({"prompt": "a"}));
    let w = worker(
        &mut s,
        4,
        json!({"name": "w", "models": ["stable_diffusion"], "max_pixels": 1048576, "amount": 2}),
    );
    let job = pop(&mut s, &w, T0);
    let rating = |id: &str, rating: i64, artifacts: Option<i64>| ImageRating {
        id: id.to_string(),
        rating,
        artifacts,
    };
    assert_eq!(
        s.rate_images(
            &id,
            RateRequest {
                best: None,
                ratings: Some(vec![rating(&job.ids[0], 5, None)])
            },
            T0
        )
        .err()
        .map(|e| e.rc()),
        Some("AestheticsNotCompleted")
    );
    for j in &job.ids {
        s.settle::<ImageKind>(4, result(j, webp_b64()), T0).expect("submitted");
    }
    let before = s.users.get(1).map(|u| u.kudos).unwrap_or_default();
    let rate = RateRequest {
        best: Some(job.ids[1].clone()),
        ratings: Some(vec![rating(&job.ids[0], 5, Some(1)), rating(&job.ids[1], 8, None)]),
    };
    // 5 + 5 (artifacts) + 5 + 15 (best) = 30 kudos (under the cap of what the request consumed
    // minus 1), credited to the requester as awarded.
    assert!(s.images.get(&id).is_some_and(|r| r.consumed > 3100));
    assert_eq!(s.rate_images(&id, rate.clone(), T0).ok(), Some(30.0));
    assert_eq!(s.users.get(1).map(|u| u.kudos - before), Some(3000));
    assert_eq!(s.users.get(1).map(|u| u.buckets.awarded), Some(3000));
    assert_eq!(s.rate_images(&id, rate, T0).err().map(|e| e.rc()), Some("AestheticsAlreadyExist"));
    // Requests not shared cannot be rated.
    let j = pop(&mut s, &w, T0);
    s.settle::<ImageKind>(4, result(&j.ids[0], webp_b64()), T0).expect("submitted");
    let r = RateRequest {
        best: None,
        ratings: Some(vec![rating(&j.ids[0], 9, None)]),
    };
    assert_eq!(s.rate_images(&private, r, T0).err().map(|e| e.rc()), Some("AestheticsNotPublic"));
}

#[test]
fn a_worker_name_serves_one_kind() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["stable_diffusion"]}));
    // Image workers are not offered text jobs (text status counts no image workers).
    assert!(s.active_models::<crate::text::TextKind>(T0).is_empty());
    assert_eq!(s.active_models::<ImageKind>(T0).len(), 1);
    assert_eq!(s.performance(T0).worker_count, 1);
    assert_eq!(s.performance(T0).text_worker_count, 0);
    let _ = w;
}

/// The anonymous user is shared by everyone: its concurrency counts only its waiting requests for
/// overlapping models, for images as for text (`State::waiting_jobs`; images counted every
/// waiting request before the lifecycle was shared).
#[test]
fn anonymous_concurrency_counts_only_overlapping_models_for_every_kind() {
    let mut s = state();
    if let Some(u) = s.users.get_mut(0) {
        u.concurrency = 2;
    }
    submit(&mut s, 0, json!({"prompt": "a", "params": {"n": 2}, "models": ["m1"]}));
    submit(&mut s, 0, json!({"prompt": "a", "params": {"n": 2}, "models": ["m2"]}));
    let same = image_req(&s, json!({"prompt": "a", "models": ["m1", "m3"]}));
    let e = s.accept::<ImageKind>(0, same, T0).err();
    assert_eq!(e.map(|e| e.rc()), Some("TooManyPrompts"));
    let any = image_req(&s, json!({"prompt": "a", "models": []}));
    assert_eq!(s.accept::<ImageKind>(0, any, T0).err().map(|e| e.rc()), Some("TooManyPrompts"));
    // A named user's requests all count, whatever their models.
    if let Some(u) = s.users.get_mut(2) {
        u.concurrency = 2;
    }
    submit(&mut s, 2, json!({"prompt": "a", "params": {"n": 2}, "models": ["m1"]}));
    let other = image_req(&s, json!({"prompt": "a", "models": ["m2"]}));
    assert_eq!(s.accept::<ImageKind>(2, other, T0).err().map(|e| e.rc()), Some("TooManyPrompts"));
}

#[test]
fn large_or_long_images_need_kudos_up_front_or_a_downgrade() {
    let mut s = state();
    let accept = |s: &mut State, user: i64, v: serde_json::Value| {
        let r = image_req(s, v);
        s.accept::<ImageKind>(user, r, T0)
    };
    // dave (4) has no kudos.
    for v in [
        json!({"prompt": "a", "params": {"width": 1536, "height": 1024}}),
        json!({"prompt": "a", "params": {"steps": 50}}),
        json!({"prompt": "a", "params": {"steps": 25, "sampler_name": "k_heun"}}),
        json!({"prompt": "a", "slow_workers": false}),
    ] {
        assert_eq!(accept(&mut s, 4, v.clone()).err().map(|e| e.rc()), Some("KudosUpfront"), "{v}");
    }
    assert!(accept(
        &mut s,
        4,
        json!({"prompt": "a", "params": {"width": 1024, "height": 1024, "steps": 40}})
    )
    .is_ok());
    // Downgraded: the free area (1024², less the waiting job), sides multiples of 64, 30 steps' worth.
    let id = accept(
        &mut s,
        4,
        json!({"prompt": "a", "allow_downgrade": true, "params": {"width": 1536, "height": 1024, "steps": 25, "sampler_name": "k_heun"}}),
    )
    .expect("downgraded")
    .id;
    let r = s.images.get(&id).map(|r| r.request.clone()).expect("waiting");
    assert_eq!((r.width, r.height), (1216, 832));
    assert_eq!((r.payload.width, r.payload.height), (1216, 832));
    assert_eq!((r.steps, r.accurate_steps, r.payload.ddim_steps), (15, 30, 15));
    // alice (1) has 1000 kudos: hers runs as asked.
    let id = accept(
        &mut s,
        1,
        json!({"prompt": "a", "params": {"width": 1536, "height": 1024, "steps": 50}}),
    )
    .expect("accepted")
    .id;
    let r = s.images.get(&id).map(|r| r.request.clone()).expect("waiting");
    assert_eq!((r.width, r.height, r.steps), (1536, 1024, 50));
}

#[test]
fn shrinking_keeps_the_shape_and_a_512_floor() {
    let s = state();
    let mut r = image_req(
        &s,
        json!({"prompt": "a", "params": {"width": 3072, "height": 512, "steps": 60, "sampler_name": "k_dpm_adaptive"}}),
    );
    r.shrink(1024, 30);
    assert_eq!(
        (r.width, r.height),
        (2048, 512),
        "the short side stays 512, the long one fits the area"
    );
    assert_eq!(r.accurate_steps, 40, "k_dpm_adaptive's evaluations cannot shrink");
    let mut r = image_req(&s, json!({"prompt": "a", "params": {"width": 1024, "height": 2048, "steps": 50}}));
    r.shrink(1024, 30);
    assert_eq!((r.width, r.height, r.steps, r.accurate_steps), (704, 1408, 30, 30));
}
