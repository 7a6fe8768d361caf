//! The queue: order, matching and why-not counts, batches, cancels, positions.

use super::*;

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
    let e = s
        .accept::<TextKind>(2, text_req(json!({"prompt": "p", "params": {"n": 2}})), T0)
        .err();
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
    assert_eq!(
        s.status::<TextKind>(&mine, T0 + 1_500, &no_links).expect("status").queue_position,
        2
    );
}
