//! Rules of the scheduler and the kudos flows, driven without a runtime or storage.

use super::*;
use std::collections::HashMap;
use crate::config::HordeConfig;
use crate::kudos::text_price;
use crate::kudos::KudosLedger;
use crate::text::{TextJobResult, TextKind, TextRequest};
use crate::workers::WorkerPop;
use horde_protocol::text::TextPopResponse;
use crate::accounts::{KudosBuckets, User};
use crate::kudos::Account;
use horde_protocol::text::{GenerateTextRequest, TextPopRequest};
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn user(id: i64, kudos: f64, trusted: bool) -> User {
    let k = crate::kudos::to_centikudos(kudos);
    User {
        kudos: k,
        buckets: KudosBuckets {
            admin: k,
            ..Default::default()
        },
        trusted,
        ..User::new(id, format!("user{id}"), format!("oauth{id}"))
    }
}

/// A state with anonymous (0), alice (1, 1000 kudos), bob (2, 100), carol (3, 50, trusted),
/// and the worker owner dave (4, 0).
fn state() -> State {
    let mut s = State::new(
        HordeConfig::default(),
        KudosLedger::default(),
        crate::kudos::image_model::KudosModel::shipped().expect("kudos model"),
    );
    for u in [
        user(0, 0.0, false),
        user(1, 1000.0, false),
        user(2, 100.0, false),
        user(3, 50.0, true),
        user(4, 0.0, false),
    ] {
        s.users.insert_loaded(u, None);
    }
    s
}

fn text_req(v: serde_json::Value) -> TextRequest {
    let wire: GenerateTextRequest = serde_json::from_value(v).expect("request json");
    TextRequest::try_from(wire).expect("valid request")
}

fn submit(s: &mut State, user: i64, v: serde_json::Value, now: u64) -> Uuid {
    s.accept::<TextKind>(user, text_req(v), now).expect("accepted").id
}

fn pop_req(v: serde_json::Value) -> WorkerPop {
    let wire: TextPopRequest = serde_json::from_value(v).expect("pop json");
    WorkerPop::try_from(wire).expect("valid pop")
}

/// Adds a worker owned by `owner` and checks it in with `pop`.
fn worker(s: &mut State, owner: i64, pop: serde_json::Value, now: u64) -> (Uuid, WorkerPop) {
    let p = pop_req(pop);
    let id = Uuid::new_v4();
    s.workers.insert(Worker::new(id, p.name.clone(), owner, 0));
    s.check_in(&id, &p, now).expect("check in");
    (id, p)
}

fn pop(s: &mut State, w: &(Uuid, WorkerPop), now: u64) -> TextPopResponse {
    s.check_in(&w.0, &w.1, now).expect("check in");
    s.pop::<TextKind>(&w.0, w.1.amount, now, &no_links).expect("pop")
}

fn submit_ok(s: &mut State, owner: i64, job: &str, text: &str, now: u64) -> Result<f64> {
    s.settle::<TextKind>(
        owner,
        TextJobResult {
            job_id: job.to_string(),
            generation: text.to_string(),
            state: "ok".into(),
            seed: 7,
            gen_metadata: vec![],
        },
        now,
    )
}

fn total_kudos(s: &State) -> Centikudos {
    let (m, b) = s.ledger.system_balances();
    s.users.iter().map(|u| u.kudos).sum::<Centikudos>() + m + b
}

fn request_of(s: &State, resp: &TextPopResponse) -> Option<Uuid> {
    let job = Uuid::parse_str(resp.id.as_deref()?).ok()?;
    s.queue.job(&job).map(|j| j.request_id)
}

#[test]
fn queue_serves_higher_kudos_first_then_arrival() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["m"]}), T0);
    let bob1 = submit(&mut s, 2, json!({"prompt": "p"}), T0);
    let bob2 = submit(&mut s, 2, json!({"prompt": "p"}), T0 + 1);
    let alice = submit(&mut s, 1, json!({"prompt": "p"}), T0 + 2);
    let order: Vec<Option<Uuid>> = (0..3)
        .map(|i| {
            let r = pop(&mut s, &w, T0 + 10 + i);
            request_of(&s, &r)
        })
        .collect();
    assert_eq!(order, vec![Some(alice), Some(bob1), Some(bob2)]);
}

#[test]
fn aging_keeps_low_kudos_requests_from_starving() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    // bob (100 kudos) waits 200 s; alice (1000) arrives later: 5 points/s × 200 s = 1000 > 900.
    let bob = submit(&mut s, 2, json!({"prompt": "p"}), T0);
    let _alice = submit(&mut s, 1, json!({"prompt": "p"}), T0 + 200_000);
    let r = pop(&mut s, &w, T0 + 200_001);
    assert_eq!(request_of(&s, &r), Some(bob));
}

#[test]
fn own_requests_come_first_then_priority_users() {
    let mut s = state();
    let alice = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let bob = submit(&mut s, 2, json!({"prompt": "p"}), T0 + 1);
    let dave = submit(&mut s, 4, json!({"prompt": "p"}), T0 + 2);
    let w = worker(&mut s, 4, json!({"name": "w", "priority_usernames": ["bob#2"]}), T0 + 3);
    let got: Vec<Option<Uuid>> = (0..3)
        .map(|i| {
            let r = pop(&mut s, &w, T0 + 10 + i);
            request_of(&s, &r)
        })
        .collect();
    assert_eq!(got, vec![Some(dave), Some(bob), Some(alice)]);
}

#[test]
fn every_skip_reason_is_counted() {
    let mut s = state();
    let other = Uuid::new_v4().to_string();
    let w = worker(
        &mut s,
        4,
        json!({"name": "w", "models": ["a-7B"], "max_length": 100, "max_context_length": 2048}),
        T0,
    );
    let wid = w.0.to_string();
    submit(&mut s, 1, json!({"prompt": "p", "models": ["b"]}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "params": {"max_length": 200}}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "params": {"max_context_length": 4096}}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "trusted_workers": true}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "workers": [other]}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "workers": [wid], "worker_blacklist": true}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "slow_workers": false}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "validated_backends": true}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "softprompt": "sp"}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    assert_eq!(r.id, None);
    assert!(r.ids.is_empty());
    let k = r.skipped;
    assert_eq!(
        (
            k.models,
            k.max_length,
            k.max_context_length,
            k.untrusted,
            k.worker_id,
            k.performance,
            k.bridge_version,
            k.matching_softprompt
        ),
        (1, 1, 1, 1, 2, 1, 1, 1)
    );
    // An extra-slow worker skips requests that do not allow it.
    let slow = worker(&mut s, 3, json!({"name": "slow", "extra_slow_worker": true, "models": ["b"]}), T0);
    let r = pop(&mut s, &slow, T0 + 2);
    assert_eq!(r.id, None);
    assert!(r.skipped.performance >= 1);
}

#[test]
fn upfront_kudos_worker_skips_poor_requesters() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "require_upfront_kudos": true}), T0);
    // carol (trusted) passes anyway; anonymous (−50 floor, 0 kudos) would need kudos.
    submit(&mut s, 0, json!({"prompt": "p", "params": {"max_length": 512}}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    assert_eq!((r.id, r.skipped.kudos), (None, 1));
    let carol = submit(&mut s, 3, json!({"prompt": "p", "params": {"max_length": 512}}), T0 + 2);
    let r = pop(&mut s, &w, T0 + 3);
    assert_eq!(request_of(&s, &r), Some(carol));
}

#[test]
fn models_and_empty_model_lists_match() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["x", "y-13B"]}), T0);
    let any = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let y = submit(&mut s, 1, json!({"prompt": "p", "models": ["z", "y-13B"]}), T0 + 1);
    let r1 = pop(&mut s, &w, T0 + 2);
    assert_eq!((request_of(&s, &r1), r1.model.as_deref()), (Some(any), Some("x")));
    let r2 = pop(&mut s, &w, T0 + 3);
    assert_eq!((request_of(&s, &r2), r2.model.as_deref()), (Some(y), Some("y-13B")));
    assert_eq!(r2.payload.prompt.as_deref(), Some("p"));
    assert_eq!(r2.payload.params.max_length, Some(80));
    assert!(r2.ttl.is_some_and(|t| t >= 150));
}

#[test]
fn amount_batches_jobs_of_one_request() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "amount": 3}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p", "params": {"n": 5}}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    assert_eq!(r.ids.len(), 3);
    assert_eq!(r.id.as_deref(), r.ids.first().map(String::as_str));
    let st = s.status::<TextKind>(&id, T0 + 2, &no_links).expect("status");
    assert_eq!((st.waiting, st.processing), (2, 3));
    let r = pop(&mut s, &w, T0 + 3);
    assert_eq!(r.ids.len(), 2);
    // disable_batching hands one job per pop.
    let one = submit(
        &mut s,
        1,
        json!({"prompt": "p", "params": {"n": 4}, "disable_batching": true}),
        T0 + 4,
    );
    let r = pop(&mut s, &w, T0 + 5);
    assert_eq!((request_of(&s, &r), r.ids.len()), (Some(one), 1));
}

#[test]
fn full_cycle_pays_worker_charges_requester_and_conserves_kudos() {
    let mut s = state();
    let start = total_kudos(&s);
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["m-13B"]}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "hello", "models": ["m-13B"]}), T0);
    // 1 kudos request tax at acceptance.
    assert_eq!(s.users.get(1).map(|u| u.kudos), Some(100_000 - 100));
    let r = pop(&mut s, &w, T0 + 1_000);
    let job = r.id.clone().expect("job");
    let text = "x".repeat(320); // 80 tokens
    let reward = submit_ok(&mut s, 4, &job, &text, T0 + 3_000).expect("submitted");
    let expected_reward = text_price::job_reward(13.0, 80, 2);
    assert_eq!(crate::kudos::to_centikudos(reward), expected_reward);
    assert_eq!(s.users.get(4).map(|u| u.kudos), Some(expected_reward));
    let charge = text_price::job_charge(expected_reward, true, false);
    assert_eq!(s.users.get(1).map(|u| u.kudos), Some(100_000 - 100 - charge));
    let st = s.status::<TextKind>(&id, T0 + 4_000, &no_links).expect("status");
    assert!(st.done && !st.faulted);
    assert_eq!((st.finished, st.processing, st.waiting), (1, 0, 0));
    assert_eq!(st.generations[0].text, text);
    assert_eq!(st.generations[0].worker_name, "w");
    assert_eq!(st.generations[0].seed, 7);
    assert_eq!(crate::kudos::to_centikudos(st.kudos), 100 + charge);
    let wk = s.workers.get(&w.0).expect("worker");
    assert_eq!((wk.requests_fulfilled, wk.tokens_generated), (1, 80));
    assert!((wk.speed() - 40.0).abs() < 1e-6, "80 tokens in 2 s");
    assert_eq!(total_kudos(&s), start);
    // Records follow the work.
    assert_eq!(
        s.users.get(1).map(|u| (u.records.usage_tokens, u.records.requests_text)),
        Some((80, 1))
    );
    assert_eq!(
        s.users.get(4).map(|u| (u.records.contribution_tokens, u.records.fulfilled_text)),
        Some((80, 1))
    );
}

#[test]
fn taxes_for_fast_only_and_block_lists() {
    let mut s = state();
    let other = Uuid::new_v4().to_string();
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["m-13B"]}), T0);
    // Make the worker fast enough for slow_workers: false.
    if let Some(wk) = s.workers.get_mut(&w.0) {
        wk.record_performance(100.0);
    }
    let text = "y".repeat(400);
    let mut charges = vec![];
    for (i, body) in [
        json!({"prompt": "p", "models": ["m-13B"]}),
        json!({"prompt": "p", "models": ["m-13B"], "slow_workers": false}),
        json!({"prompt": "p", "models": ["m-13B"], "workers": [other], "worker_blacklist": true}),
    ]
    .into_iter()
    .enumerate()
    {
        let now = T0 + 1_000 * i as u64;
        submit(&mut s, 1, body, now);
        let before = s.users.get(1).map(|u| u.kudos).unwrap_or(0);
        let r = pop(&mut s, &w, now + 1);
        submit_ok(&mut s, 4, r.id.as_deref().unwrap_or(""), &text, now + 2).expect("ok");
        charges.push(before - s.users.get(1).map(|u| u.kudos).unwrap_or(0));
    }
    let base = charges[0] as f64;
    assert!((charges[1] as f64 - base * 1.2).abs() <= 1.0, "{charges:?}");
    assert!((charges[2] as f64 - base * 1.1).abs() <= 1.0, "{charges:?}");
}

#[test]
fn censored_jobs_are_not_charged_and_csam_is_marked() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p", "params": {"n": 2}}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    let before = s.users.get(1).map(|u| u.kudos);
    s.settle::<TextKind>(
        4,
        TextJobResult {
            job_id: r.id.clone().unwrap_or_default(),
            generation: String::new(),
            state: "csam".into(),
            seed: 0,
            gen_metadata: vec![],
        },
        T0 + 2,
    )
    .expect("ok");
    assert_eq!(s.users.get(1).map(|u| u.kudos), before);
    let st = s.status::<TextKind>(&id, T0 + 3, &no_links).expect("status");
    assert_eq!(st.generations[0].state, "csam");
    assert_eq!(st.generations[0].gen_metadata[0].value, "csam");
    // A censorship entry in gen_metadata marks an "ok" job censored.
    let r = pop(&mut s, &w, T0 + 4);
    let meta = vec![GenMetadata {
        kind: "censorship".into(),
        value: "nsfw".into(),
        reference: None,
    }];
    s.settle::<TextKind>(
        4,
        TextJobResult {
            job_id: r.id.clone().unwrap_or_default(),
            generation: "t".into(),
            state: "ok".into(),
            seed: 0,
            gen_metadata: meta,
        },
        T0 + 5,
    )
    .expect("ok");
    let st = s.status::<TextKind>(&id, T0 + 6, &no_links).expect("status");
    assert_eq!(st.generations[1].state, "censored");
}

#[test]
fn submit_errors() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    let job = r.id.clone().expect("job");
    let rc = |r: Result<f64>| r.err().map(|e| e.rc());
    assert_eq!(
        rc(submit_ok(&mut s, 4, &Uuid::new_v4().to_string(), "t", T0 + 2)),
        Some("InvalidJobID")
    );
    assert_eq!(rc(submit_ok(&mut s, 4, "not-a-uuid", "t", T0 + 2)), Some("InvalidJobID"));
    assert_eq!(rc(submit_ok(&mut s, 2, &job, "t", T0 + 2)), Some("WrongCredentials"));
    assert!(submit_ok(&mut s, 4, &job, "t", T0 + 2).is_ok());
    let dup = submit_ok(&mut s, 4, &job, "t", T0 + 3);
    assert!(dup.as_ref().err().is_some_and(|e| e.to_string().contains("already submitted")));
    assert_eq!(rc(dup), Some("DuplicateGen"));
}

#[test]
fn stale_jobs_are_requeued_and_late_submits_rejected() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let r = pop(&mut s, &w, T0);
    let ttl = r.ttl.unwrap_or(0) as u64;
    assert_eq!(s.reap(T0 + ttl * 1000 - 1).jobs_aborted, 0);
    let rep = s.reap(T0 + ttl * 1000 + 1);
    assert_eq!(rep.jobs_aborted, 1);
    let st = s.status::<TextKind>(&id, T0 + ttl * 1000 + 2, &no_links).expect("status");
    assert_eq!((st.waiting, st.processing, st.restarted, st.done), (1, 0, 1, false));
    let late = submit_ok(&mut s, 4, r.id.as_deref().unwrap_or(""), "t", T0 + ttl * 1000 + 3);
    assert_eq!(late.err().map(|e| e.rc()), Some("AbortedGen"));
    assert_eq!(s.workers.get(&w.0).map(|w| w.uncompleted_jobs), Some(1));
    // It is handed out again.
    let again = pop(&mut s, &w, T0 + ttl * 1000 + 4);
    assert_eq!(request_of(&s, &again), Some(id));
}

#[test]
fn request_faults_after_more_than_two_failed_jobs() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    for i in 0..3u64 {
        let r = pop(&mut s, &w, T0 + i);
        let job = r.id.clone().expect("a job each time");
        let reward = s.settle::<TextKind>(
            4,
            TextJobResult {
                job_id: job,
                generation: String::new(),
                state: "faulted".into(),
                seed: 0,
                gen_metadata: vec![],
            },
            T0 + i,
        );
        assert_eq!(reward.ok(), Some(0.0));
    }
    let st = s.status::<TextKind>(&id, T0 + 10, &no_links).expect("status");
    assert!(st.done && st.faulted, "{st:?}");
    assert_eq!(st.restarted, 3);
    let r = pop(&mut s, &w, T0 + 11);
    assert_eq!(r.id, None);
    // The request tax stays charged.
    assert_eq!(crate::kudos::to_centikudos(st.kudos), 100);
}

#[test]
fn requests_expire_twenty_minutes_after_last_activity() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p", "params": {"n": 2}}), T0);
    let r = pop(&mut s, &w, T0 + 600_000);
    submit_ok(&mut s, 4, r.id.as_deref().unwrap_or(""), "t", T0 + 700_000).expect("ok");
    // 20 minutes after creation it is still alive: the submit was activity.
    assert_eq!(s.reap(T0 + 1_200_001).requests_expired, 0);
    assert!(s.status::<TextKind>(&id, T0 + 1_200_002, &no_links).is_ok());
    assert_eq!(s.reap(T0 + 700_000 + 1_200_001).requests_expired, 1);
    assert_eq!(s.status::<TextKind>(&id, T0 + 1_900_002, &no_links).err().map(|e| e.rc()), Some("RequestNotFound"));
}

#[test]
fn maintenance_workers_serve_only_their_owner() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    if let Some(wk) = s.workers.get_mut(&w.0) {
        wk.maintenance = true;
    }
    submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let err = s.pop::<TextKind>(&w.0, 1, T0 + 1, &no_links).err();
    assert_eq!(err.as_ref().map(|e| e.rc()), Some("WorkerMaintenance"));
    assert!(err.is_some_and(|e| e.to_string().contains("maintenance mode")));
    let own = submit(&mut s, 4, json!({"prompt": "p"}), T0 + 2);
    let r = s.pop::<TextKind>(&w.0, 1, T0 + 3, &no_links).expect("owner's job");
    assert_eq!(request_of(&s, &r), Some(own));
}

#[test]
fn cancel_stops_waiting_jobs_but_in_flight_ones_finish() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p", "params": {"n": 3}}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    let snap = s.cancel::<TextKind>(&id, T0 + 2, &no_links).expect("cancel");
    assert_eq!(snap.waiting, 2);
    let st = s.status::<TextKind>(&id, T0 + 3, &no_links).expect("status");
    assert_eq!((st.waiting, st.processing, st.done), (0, 1, false));
    assert_eq!(pop(&mut s, &w, T0 + 4).id, None);
    submit_ok(&mut s, 4, r.id.as_deref().unwrap_or(""), "t", T0 + 5).expect("in-flight job still lands");
    let st = s.status::<TextKind>(&id, T0 + 6, &no_links).expect("status");
    assert_eq!((st.finished, st.done), (1, true));
}

#[test]
fn concurrency_limit() {
    let mut s = state();
    if let Some(u) = s.users.get_mut(2) {
        u.concurrency = 3;
    }
    submit(&mut s, 2, json!({"prompt": "p", "params": {"n": 2}}), T0);
    let e = s.accept::<TextKind>(2, text_req(json!({"prompt": "p", "params": {"n": 2}})), T0).err();
    assert_eq!(e.map(|e| e.rc()), Some("TooManyPrompts"));
    assert!(s.accept::<TextKind>(2, text_req(json!({"prompt": "p"})), T0).is_ok());
}

#[test]
fn queue_position_counts_only_what_could_be_served() {
    let mut s = state();
    let _w = worker(&mut s, 4, json!({"name": "w", "models": ["a"]}), T0);
    // Ahead: one request for a model nobody serves, one for "a".
    submit(&mut s, 1, json!({"prompt": "p", "models": ["nobody"]}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "models": ["a"]}), T0 + 1);
    let mine = submit(&mut s, 2, json!({"prompt": "p", "models": ["a"]}), T0 + 2);
    let st = s.status::<TextKind>(&mine, T0 + 3, &no_links).expect("status");
    assert_eq!(st.queue_position, 2);
    assert!(st.is_possible);
    assert!(st.wait_time > 0);
    let orphan = submit(&mut s, 2, json!({"prompt": "p", "models": ["nobody"]}), T0 + 4);
    let st = s.status::<TextKind>(&orphan, T0 + 5, &no_links).expect("status");
    assert!(!st.is_possible);
    // Workers go offline after 5 minutes without a check-in.
    let st = s.status::<TextKind>(&mine, T0 + 301_000, &no_links).expect("status");
    assert!(!st.is_possible);
}

#[test]
fn polling_does_not_keep_cached_figures_alive() {
    let mut s = state();
    let _w = worker(&mut s, 4, json!({"name": "w", "models": ["a"]}), T0);
    let mine = submit(&mut s, 2, json!({"prompt": "p", "models": ["a"]}), T0);
    assert_eq!(s.status::<TextKind>(&mine, T0 + 10, &no_links).expect("status").queue_position, 1);
    // A richer requester goes ahead; within a second the cached position stands.
    submit(&mut s, 1, json!({"prompt": "p", "models": ["a"]}), T0 + 500);
    assert_eq!(s.status::<TextKind>(&mine, T0 + 900, &no_links).expect("status").queue_position, 1);
    // A second after it was computed, it is computed again, however often it was polled.
    assert_eq!(s.status::<TextKind>(&mine, T0 + 1_500, &no_links).expect("status").queue_position, 2);
}

#[test]
fn uptime_kudos_every_ten_minutes_online() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["m-7B"], "max_context_length": 1024}), T0);
    let per = text_price::uptime_reward(Some("m-7B"), 1024);
    // Check in every 60 s for 20 minutes.
    for i in 1..=20u64 {
        s.check_in(&w.0, &w.1, T0 + i * 60_000).expect("check in");
    }
    assert_eq!(s.users.get(4).map(|u| u.kudos), Some(2 * per));
    assert_eq!(
        s.workers.get(&w.0).map(|w| (w.uptime_ms, w.kudos_uptime)),
        Some((1_200_000, 2 * per))
    );
    // A gap longer than 5 minutes resets the unpaid time.
    s.check_in(&w.0, &w.1, T0 + 1_200_000 + 540_000).expect("check in");
    s.check_in(&w.0, &w.1, T0 + 1_200_000 + 600_000).expect("check in");
    assert_eq!(s.users.get(4).map(|u| u.kudos), Some(2 * per));
    // Maintenance earns no uptime kudos.
    if let Some(wk) = s.workers.get_mut(&w.0) {
        wk.maintenance = true;
    }
    for i in 1..=11u64 {
        s.check_in(&w.0, &w.1, T0 + 1_800_000 + i * 60_000).expect("check in");
    }
    assert_eq!(s.users.get(4).map(|u| u.kudos), Some(2 * per));
}

#[test]
fn anonymous_requests_cost_and_floor_at_minus_fifty() {
    let mut s = state();
    let w = worker(
        &mut s,
        4,
        json!({"name": "w", "models": ["big-70B"], "max_length": 4096, "max_context_length": 8192}),
        T0,
    );
    for i in 0..5u64 {
        submit(
            &mut s,
            0,
            json!({"prompt": "p".repeat(20_000), "models": ["big-70B"], "params": {"max_length": 1024, "max_context_length": 8192}}),
            T0 + i,
        );
        let r = pop(&mut s, &w, T0 + 100 + i);
        submit_ok(&mut s, 4, r.id.as_deref().unwrap_or(""), &"z".repeat(4096), T0 + 200 + i).expect("ok");
    }
    assert_eq!(s.users.get(0).map(|u| u.kudos), Some(-5_000));
}

#[test]
fn dry_run_estimates_the_whole_request() {
    let r =
        text_req(json!({"prompt": "p", "params": {"n": 3, "max_length": 100, "max_context_length": 1024}, "models": ["a-7B", "b-70B"]}));
    let per_job = text_price::job_charge(text_price::job_reward(70.0, 100, 1024), true, false);
    assert_eq!(state().price::<TextKind>(&r), 3 * per_job + 100);
    let none = text_req(json!({"prompt": "p"}));
    assert_eq!(
        crate::text::lifecycle::estimate_job(&none),
        text_price::job_charge(text_price::job_reward(13.0, 80, 2048), true, false)
    );
}

#[test]
fn kudos_are_conserved_under_concurrent_operations() {
    use std::sync::Arc;
    let shared = Arc::new(parking_lot::Mutex::new(state()));
    let start = total_kudos(&shared.lock());
    let workers: Vec<(Uuid, WorkerPop)> = {
        let mut s = shared.lock();
        (0..4)
            .map(|i| worker(&mut s, 4, json!({"name": format!("w{i}"), "amount": 2}), T0))
            .collect()
    };
    let mut handles = vec![];
    for t in 0..8u64 {
        let shared = Arc::clone(&shared);
        let w = workers[(t % 4) as usize].clone();
        handles.push(std::thread::spawn(move || {
            for i in 0..200u64 {
                let now = T0 + t * 7 + i * 13;
                let mut s = shared.lock();
                let requester = [0, 1, 2, 3][(i % 4) as usize];
                let _ = s.accept::<TextKind>(requester, text_req(json!({"prompt": "p", "params": {"n": 2}})), now);
                drop(s);
                let mut s = shared.lock();
                let _ = s.check_in(&w.0, &w.1, now);
                if let Ok(r) = s.pop::<TextKind>(&w.0, 2, now, &no_links) {
                    for (k, job) in r.ids.iter().enumerate() {
                        let state = if (i + k as u64).is_multiple_of(5) { "faulted" } else { "ok" };
                        let _ = s.settle::<TextKind>(
                            4,
                            TextJobResult {
                                job_id: job.clone(),
                                generation: "g".repeat(100),
                                state: state.into(),
                                seed: 0,
                                gen_metadata: vec![],
                            },
                            now,
                        );
                    }
                }
                drop(s);
                let mut s = shared.lock();
                let st = &mut *s;
                let _ = st
                    .ledger
                    .transfer(&mut st.users, 1 + (i % 3) as i64, 1 + ((i + 1) % 3) as i64, 1.0, now + 120_000 * t);
                let _ = s.reap(now);
            }
        }));
    }
    for h in handles {
        h.join().expect("thread");
    }
    let s = shared.lock();
    assert_eq!(
        total_kudos(&s),
        start,
        "the sum over all accounts, mint and burn included, is unchanged"
    );
    for u in s.users.iter() {
        assert!(
            u.kudos >= u.kudos_floor().min(crate::kudos::to_centikudos(1000.0)) || u.kudos >= -5_000,
            "user {} at {}",
            u.id,
            u.kudos
        );
        assert_eq!(u.buckets.total(), u.kudos, "buckets of user {}", u.id);
    }
    // Replaying the pending postings from the start reproduces every balance.
    let mut replay: HashMap<Account, Centikudos> = HashMap::new();
    for u in [0, 1, 2, 3, 4] {
        replay.insert(
            Account::User(u),
            crate::kudos::to_centikudos([0.0, 1000.0, 100.0, 50.0, 0.0][u as usize]),
        );
    }
    let mut s = s;
    for p in s.ledger.take_pending() {
        *replay.entry(p.from).or_default() -= p.amount;
        *replay.entry(p.to).or_default() += p.amount;
    }
    for u in s.users.iter() {
        assert_eq!(
            replay.get(&Account::User(u.id)).copied(),
            Some(u.kudos),
            "ledger replay of user {}",
            u.id
        );
    }
}

#[test]
fn a_worker_abandoning_too_many_jobs_goes_into_maintenance() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "flaky", "models": ["m"]}), T0);
    let mut reported = 0;
    while reported <= crate::workers::MAX_ABORTS_PER_HOUR {
        submit(&mut s, 1, json!({"prompt": "p", "models": ["m"]}), T0);
        let job = pop(&mut s, &w, T0);
        let id = job.id.expect("a job");
        let r = TextJobResult {
            job_id: id,
            generation: String::new(),
            state: "faulted".into(),
            seed: 0,
            gen_metadata: vec![],
        };
        s.settle::<TextKind>(4, r, T0).expect("fault reported");
        reported += 1;
        // Cancel the request so the next pop takes a fresh one.
        let ids: Vec<Uuid> = s.queue.request_ids();
        for rid in ids {
            let _ = s.cancel::<TextKind>(&rid, T0, &no_links);
        }
    }
    let wk = s.workers.get(&w.0).expect("worker");
    assert!(wk.maintenance, "maintenance after {reported} abandoned jobs");
    assert!(wk.maintenance_msg.as_deref().is_some_and(|m| m.contains("abandoned")));
}

// ----- streaming (progress protocol) ---------------------------------------------------------

use crate::text::{StreamCursor, StreamEvent};

/// Concatenated deltas (resets replace) per job, and the generations' texts, from `events`.
fn replay(events: &[StreamEvent], texts: &mut HashMap<String, String>, finals: &mut HashMap<String, String>) {
    for e in events {
        match e {
            StreamEvent::Delta(d) => texts.entry(d.job.clone()).or_default().push_str(&d.text),
            StreamEvent::Reset(d) => {
                texts.insert(d.job.clone(), d.text.clone());
            }
            StreamEvent::Generation(g) => {
                finals.insert(g.job.clone(), g.generation.text.clone());
            }
            StreamEvent::Aborted(a) => {
                texts.remove(&a.job);
            }
            _ => {}
        }
    }
}

#[test]
fn stream_deltas_concatenate_to_the_final_text_for_early_and_late_clients() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let mut early = StreamCursor::default();
    let first = s.text_stream_events(&id, &mut early, T0 + 1).expect("events");
    assert!(matches!(first.as_slice(), [StreamEvent::Status(st)] if st.waiting == 1));
    let job = pop(&mut s, &w, T0 + 2).id.expect("job");
    let (mut texts, mut finals) = (HashMap::new(), HashMap::new());
    for (i, so_far) in ["Once", "Once upon", "Once upon a time"].iter().enumerate() {
        assert!(!s.text_progress(4, &job, so_far.to_string(), T0 + 3 + i as u64).expect("progress"));
        replay(
            &s.text_stream_events(&id, &mut early, T0 + 3).expect("events"),
            &mut texts,
            &mut finals,
        );
    }
    assert_eq!(texts.get(&job).map(String::as_str), Some("Once upon a time"));
    // Nothing new: no event at all.
    assert!(s.text_stream_events(&id, &mut early, T0 + 3).expect("events").is_empty());
    submit_ok(&mut s, 4, &job, "Once upon a time, there", T0 + 10).expect("submit");
    let rest = s.text_stream_events(&id, &mut early, T0 + 11).expect("events");
    replay(&rest, &mut texts, &mut finals);
    assert!(matches!(rest.last(), Some(StreamEvent::Done(st)) if st.done && st.generations.len() == 1));
    assert_eq!(texts.get(&job), finals.get(&job));
    assert_eq!(finals.get(&job).map(String::as_str), Some("Once upon a time, there"));
    assert!(early.is_done());
    assert!(s.text_stream_events(&id, &mut early, T0 + 12).expect("events").is_empty());

    // A client connecting after the end gets the whole text, then the generation and the end.
    let mut late = StreamCursor::default();
    let (mut t2, mut f2) = (HashMap::new(), HashMap::new());
    let all = s.text_stream_events(&id, &mut late, T0 + 13).expect("events");
    replay(&all, &mut t2, &mut f2);
    assert_eq!(t2.get(&job).map(String::as_str), Some("Once upon a time, there"));
    let names: Vec<&str> = all.iter().map(StreamEvent::name).collect();
    assert_eq!(names, ["delta", "generation", "status", "done"]);
}

#[test]
fn progress_must_extend_and_comes_only_from_the_jobs_worker() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let job = pop(&mut s, &w, T0 + 1).id.expect("job");
    s.text_progress(4, &job, "abc".into(), T0 + 2).expect("progress");
    assert!(matches!(
        s.text_progress(4, &job, "abX".into(), T0 + 3),
        Err(HordeError::Validation(_))
    ));
    assert!(matches!(
        s.text_progress(2, &job, "abcd".into(), T0 + 3),
        Err(HordeError::WrongCredentials)
    ));
    assert!(matches!(
        s.text_progress(4, &Uuid::new_v4().to_string(), "x".into(), T0 + 3),
        Err(HordeError::InvalidJobId(_))
    ));
    // The same text again is fine (a retried report).
    s.text_progress(4, &job, "abc".into(), T0 + 4).expect("same text");
    // A final text that drops streamed text (a worker trimming a stop sequence) resets the job.
    let mut c = StreamCursor::default();
    s.text_stream_events(&id, &mut c, T0 + 5).expect("events");
    submit_ok(&mut s, 4, &job, "ab", T0 + 6).expect("submit");
    let events = s.text_stream_events(&id, &mut c, T0 + 7).expect("events");
    assert!(matches!(&events[0], StreamEvent::Reset(d) if d.text == "ab"));
    // After the submit, progress for the job is refused like a second submit.
    assert!(matches!(
        s.text_progress(4, &job, "abc".into(), T0 + 8),
        Err(HordeError::DuplicateGen(_))
    ));
}

#[test]
fn cancelling_tells_the_worker_and_aborted_jobs_are_announced() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p", "params": {"n": 2}}), T0);
    let job1 = pop(&mut s, &w, T0 + 1).id.expect("job");
    let mut c = StreamCursor::default();
    s.text_progress(4, &job1, "half".into(), T0 + 2).expect("progress");
    s.text_stream_events(&id, &mut c, T0 + 3).expect("events");
    // The job is reported faulted: the client is told its text is void.
    s.settle::<TextKind>(
        4,
        TextJobResult {
            job_id: job1.clone(),
            generation: String::new(),
            state: "faulted".into(),
            seed: 0,
            gen_metadata: vec![],
        },
        T0 + 4,
    )
    .expect("fault");
    let events = s.text_stream_events(&id, &mut c, T0 + 5).expect("events");
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Aborted(a) if a.job == job1)));
    let job2 = pop(&mut s, &w, T0 + 6).id.expect("job");
    s.cancel::<TextKind>(&id, T0 + 7, &no_links).expect("cancel");
    assert!(s.text_progress(4, &job2, "part".into(), T0 + 8).expect("progress"), "told to stop");
    submit_ok(&mut s, 4, &job2, "part", T0 + 9).expect("submit");
    let events = s.text_stream_events(&id, &mut c, T0 + 10).expect("events");
    assert!(matches!(events.last(), Some(StreamEvent::Done(st)) if st.done && st.generations.len() == 1));
}

#[test]
fn subscribers_wake_on_changes_and_close_when_the_request_goes() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let id = submit(&mut s, 1, json!({"prompt": "p"}), T0);
    let mut rx = s.subscribe_text(&id).expect("subscribe");
    rx.mark_unchanged();
    let job = pop(&mut s, &w, T0 + 1).id.expect("job");
    assert!(rx.has_changed().expect("open"));
    rx.mark_unchanged();
    s.text_progress(4, &job, "x".into(), T0 + 2).expect("progress");
    assert!(rx.has_changed().expect("open"));
    s.queue.remove(&id);
    assert!(rx.has_changed().is_err(), "closed with the request");
}

#[test]
fn chat_messages_reach_only_workers_that_ask_for_them() {
    let mut s = state();
    let plain = worker(&mut s, 4, json!({"name": "plain"}), T0);
    let chat = worker(&mut s, 4, json!({"name": "chat", "extensions": ["messages-v1"]}), T0);
    let messages = vec![horde_protocol::text::ChatMessage {
        role: "user".into(),
        content: "hi".into(),
    }];
    for w in [&plain, &chat] {
        let mut req = text_req(json!({"prompt": "User: hi\nAssistant:"}));
        req.messages = Some(messages.clone());
        s.accept::<TextKind>(1, req, T0 + 1).expect("accepted");
        let got = pop(&mut s, w, T0 + 2);
        assert_eq!(got.payload.prompt.as_deref(), Some("User: hi\nAssistant:"));
        let expected = (w.1.name == "chat").then(|| messages.clone());
        assert_eq!(got.payload.messages, expected, "worker {}", w.1.name);
    }
}

#[test]
fn telemetry_counts_jobs_queue_depth_workers_and_burnt_kudos() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["m"]}), T0);
    submit(&mut s, 1, json!({"prompt": "p", "models": ["m"], "params": {"n": 3}}), T0);
    submit(&mut s, 2, json!({"prompt": "p"}), T0);
    let t = s.telemetry(T0 + 1);
    assert_eq!(t.queued_jobs.get(&("text", "m".to_string())), Some(&3));
    assert_eq!(t.queued_jobs.get(&("text", "any".to_string())), Some(&1));
    assert_eq!(t.workers_online.get("text"), Some(&1));
    assert_eq!(t.requests_in_memory.get("text"), Some(&2));
    let burnt_before = t.kudos_burnt;
    assert!(burnt_before >= 2.0, "two request taxes burnt: {burnt_before}");
    let job = pop(&mut s, &w, T0 + 2).id.expect("job");
    submit_ok(&mut s, 4, &job, "some text", T0 + 3).expect("submit");
    let job2 = pop(&mut s, &w, T0 + 4).id.expect("job");
    s.settle::<TextKind>(
        4,
        TextJobResult {
            job_id: job2,
            generation: String::new(),
            state: "faulted".into(),
            seed: 0,
            gen_metadata: vec![],
        },
        T0 + 5,
    )
    .expect("fault");
    let t = s.telemetry(T0 + 6);
    let c = t.jobs.get("text").copied().unwrap_or_default();
    assert_eq!((c.popped, c.submitted, c.faulted, c.aborted), (2, 1, 1, 0));
    assert_eq!(t.queued_jobs.get(&("text", "m".to_string())), Some(&2), "the faulted job went back");
    assert!(t.kudos_burnt > burnt_before);
}

#[test]
fn text_memory_is_held_until_expiry_and_long_results_count() {
    let mut s = state();
    s.cfg.account_text_memory_cap_bytes = 10_000;
    let id = submit(&mut s, 2, json!({"prompt": "x".repeat(5000), "params": {"max_length": 16}}), T0);
    let first = 5000 + 16 * crate::text::memory::RESULT_BYTES_PER_TOKEN;
    assert_eq!((s.queue.held().total, s.queue.held().of(2)), (first, first));
    // Past bob's share: refused, and neither held nor charged.
    let kudos = s.users.get(2).map(|u| u.kudos);
    let e = s.accept::<TextKind>(2, text_req(json!({"prompt": "y".repeat(5000)})), T0).err();
    assert_eq!(e.map(|e| e.rc()), Some("TooManyPromptBytes"));
    assert_eq!(s.queue.held().total, first);
    assert_eq!(s.users.get(2).map(|u| u.kudos), kudos);
    // A trusted account has no share of its own.
    submit(&mut s, 3, json!({"prompt": "z".repeat(20_000)}), T0);
    // A result longer than its room counts beyond it.
    let w = worker(&mut s, 4, json!({"name": "w", "models": ["m"], "max_length": 512}), T0);
    let resp = pop(&mut s, &w, T0);
    assert_eq!(request_of(&s, &resp), Some(id));
    let job = resp.id.clone().expect("job");
    submit_ok(&mut s, 4, &job, &"o".repeat(100), T0 + 1000).expect("submitted");
    assert_eq!(s.queue.held().of(2), first + 100 - 16 * crate::text::memory::RESULT_BYTES_PER_TOKEN);
    // Expired requests give everything back.
    s.reap(T0 + 1000 + s.cfg.request_expiry_secs * 1000 + 1);
    assert_eq!(s.queue.held(), &crate::scheduler::queue::HeldBytes::default());
}

#[test]
fn a_restart_drops_unstarted_requests_with_their_tax_and_waits_for_jobs_in_flight() {
    let mut s = state();
    let start = total_kudos(&s);
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    let served = submit(&mut s, 2, json!({"prompt": "p", "params": {"max_length": 20}}), T0);
    let waiting = submit(&mut s, 2, json!({"prompt": "p"}), T0 + 1);
    let in_flight = submit(&mut s, 1, json!({"prompt": "p", "params": {"max_length": 20}}), T0 + 2);
    // Alice's request goes first (more kudos), then bob's first.
    let lost = pop(&mut s, &w, T0 + 10);
    assert_eq!(request_of(&s, &lost), Some(in_flight));
    let job_served = pop(&mut s, &w, T0 + 11);
    assert_eq!(request_of(&s, &job_served), Some(served));
    let job_served = job_served.id.expect("a job");
    assert_eq!(s.queue.get(&waiting).map(|r| r.upfront), Some(100));
    let bob_before = s.users.get(2).map(|u| u.kudos);
    // Draining: the request no worker took is cancelled and its tax given back.
    assert_eq!(s.drop_for_restart(false, T0 + 20), 1);
    assert_eq!(s.users.get(2).map(|u| u.kudos), bob_before.map(|k| k + 100));
    assert!(s.queue.get(&waiting).is_some_and(|r| r.is_done() && r.consumed == 0));
    assert_eq!(
        s.outstanding(),
        crate::drain::Outstanding {
            jobs_in_flight: 2,
            uncollected: 0
        }
    );
    // A job comes back: its result is owed until its requester reads it.
    submit_ok(&mut s, 4, &job_served, "done", T0 + 30).expect("submit");
    assert_eq!(
        s.outstanding(),
        crate::drain::Outstanding {
            jobs_in_flight: 1,
            uncollected: 1
        }
    );
    s.status::<TextKind>(&served, T0 + 31, &no_links).expect("status");
    assert_eq!(s.outstanding().uncollected, 0);
    // The deadline: the request whose job never came back is refunded; nothing twice.
    let alice_before = s.users.get(1).map(|u| u.kudos);
    assert_eq!(s.drop_for_restart(true, T0 + 40), 1);
    assert_eq!(s.users.get(1).map(|u| u.kudos), alice_before.map(|k| k + 100));
    assert_eq!(s.drop_for_restart(true, T0 + 41), 0);
    assert!(s.queue.get(&in_flight).is_some_and(|r| r.upfront == 0));
    assert_eq!(total_kudos(&s), start);
}
