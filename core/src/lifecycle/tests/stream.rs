//! Streaming (the progress protocol), chat messages, telemetry, memory held, restarts.

use super::*;
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
