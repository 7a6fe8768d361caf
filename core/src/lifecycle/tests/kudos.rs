//! Kudos and the job's ends: settling, censorship, faults, stale jobs, expiry, uptime, dry runs,
//! conservation.

use super::*;

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
    assert_eq!(
        s.status::<TextKind>(&id, T0 + 1_900_002, &no_links).err().map(|e| e.rc()),
        Some("RequestNotFound")
    );
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
    // At most the 512 tokens served without upfront kudos (anonymous has none).
    for i in 0..10u64 {
        submit(
            &mut s,
            0,
            json!({"prompt": "p".repeat(20_000), "models": ["big-70B"], "params": {"max_length": 512, "max_context_length": 8192}}),
            T0 + i,
        );
        let r = pop(&mut s, &w, T0 + 100 + i);
        submit_ok(&mut s, 4, r.id.as_deref().unwrap_or(""), &"z".repeat(2048), T0 + 200 + i).expect("ok");
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

/// The shared checks of a worker's report (`check_report`) hold for every kind: text results too
/// are refused with more than 50 metadata entries (images always were), and an unknown state is
/// quoted at most 20 characters long (as images always did).
#[test]
fn report_checks_bound_metadata_and_quote_unknown_states_briefly_for_every_kind() {
    let mut s = state();
    let w = worker(&mut s, 4, json!({"name": "w"}), T0);
    submit(&mut s, 2, json!({"prompt": "p"}), T0);
    let r = pop(&mut s, &w, T0 + 1);
    let job = r.id.unwrap_or_default();
    let report = |state: &str, entries: usize| TextJobResult {
        job_id: job.clone(),
        generation: "t".into(),
        state: state.into(),
        seed: 0,
        gen_metadata: vec![
            GenMetadata {
                kind: "info".into(),
                value: "x".into(),
                reference: None,
            };
            entries
        ],
    };
    let e = s.settle::<TextKind>(4, report("ok", MAX_GEN_METADATA + 1), T0 + 2).err();
    assert_eq!(e.map(|e| e.to_string().contains("At most 50 gen_metadata")), Some(true));
    let e = s.settle::<TextKind>(4, report(&"x".repeat(100), 0), T0 + 2).err();
    assert_eq!(e.map(|e| e.to_string().contains(&format!("'{}'", "x".repeat(20)))), Some(true));
    assert!(s.settle::<TextKind>(4, report("ok", MAX_GEN_METADATA), T0 + 3).is_ok());
}

/// One censorship rule for every kind (`censorship`): a result is censored by its state, the
/// worker's flag or censorship metadata; `csam` stays `csam` and is noted in the metadata.
#[test]
fn censorship_rule_is_the_same_for_every_kind() {
    struct Report(&'static str, bool, Vec<GenMetadata>);
    impl JobReport for Report {
        fn job_id(&self) -> &str {
            ""
        }
        fn state(&self) -> &str {
            self.0
        }
        fn censored(&self) -> bool {
            self.1
        }
        fn seed(&self) -> i64 {
            0
        }
        fn gen_metadata(&self) -> &[GenMetadata] {
            &self.2
        }
    }
    let meta = || {
        vec![GenMetadata {
            kind: "censorship".into(),
            value: "nsfw".into(),
            reference: None,
        }]
    };
    let outcome = |r: Report| {
        let (state, censored, m) = censorship(&r);
        (state, censored, m.len())
    };
    assert_eq!(outcome(Report("ok", false, vec![])), ("ok".into(), false, 0));
    assert_eq!(outcome(Report("", false, vec![])), ("ok".into(), false, 0));
    assert_eq!(outcome(Report("censored", false, vec![])), ("censored".into(), true, 0));
    assert_eq!(outcome(Report("ok", true, vec![])), ("censored".into(), true, 0));
    assert_eq!(outcome(Report("ok", false, meta())), ("censored".into(), true, 1));
    assert_eq!(outcome(Report("csam", false, vec![])), ("csam".into(), true, 1));
}
