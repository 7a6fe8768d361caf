//! Upfront kudos (`lifecycle::upfront`) for text requests; images' rules are in
//! `image::lifecycle_tests`.

use super::*;

fn accept(s: &mut State, user: i64, v: serde_json::Value) -> Result<Accepted> {
    s.accept::<TextKind>(user, text_req(v), T0)
}

fn waiting(s: &State, id: &Uuid) -> TextRequest {
    s.queue.get(id).map(|r| r.request.clone()).expect("waiting")
}

#[test]
fn fast_or_long_text_needs_kudos_up_front_or_a_downgrade() {
    let mut s = state();
    // dave (4) has no kudos: neither `slow_workers: false` nor more than 512 tokens.
    for v in [
        json!({"prompt": "p", "slow_workers": false}),
        json!({"prompt": "p", "params": {"max_length": 600, "max_context_length": 4096}}),
    ] {
        let e = accept(&mut s, 4, v.clone()).err();
        assert_eq!(e.as_ref().map(|e| e.rc()), Some("KudosUpfront"), "{v}");
        assert_eq!(e.map(|e| e.class()), Some(crate::ErrorClass::Forbidden));
    }
    // Within the free allowance, no kudos needed.
    assert!(accept(
        &mut s,
        4,
        json!({"prompt": "p", "params": {"max_length": 512, "max_context_length": 4096}})
    )
    .is_ok());
    // allow_downgrade: any workers, and the free allowance of tokens.
    let id = accept(
        &mut s,
        4,
        json!({"prompt": "p", "slow_workers": false, "allow_downgrade": true, "params": {"max_length": 600, "max_context_length": 4096}}),
    )
    .expect("downgraded")
    .id;
    // The one waiting job takes a token off the 512 served freely.
    let r = waiting(&s, &id);
    assert_eq!((r.slow_workers, r.max_length, r.params.max_length), (true, 511, Some(511)));
    // bob (2) has 100 kudos: his fast request is accepted as asked.
    let id = accept(&mut s, 2, json!({"prompt": "p", "slow_workers": false}))
        .expect("accepted")
        .id;
    assert!(!waiting(&s, &id).slow_workers);
}

#[test]
fn the_free_allowance_shrinks_with_the_queue_and_grows_with_threads() {
    let mut s = state();
    if let Some(u) = s.users.get_mut(1) {
        u.concurrency = 500;
    }
    assert_eq!(s.free_max_tokens(T0), 512);
    // 100 waiting jobs take 90 tokens off the allowance …
    for _ in 0..5 {
        accept(&mut s, 1, json!({"prompt": "p", "params": {"n": 20}})).expect("accepted");
    }
    assert_eq!(s.free_max_tokens(T0), 422);
    assert_eq!(
        accept(
            &mut s,
            4,
            json!({"prompt": "p", "params": {"max_length": 450, "max_context_length": 4096}})
        )
        .err()
        .map(|e| e.rc()),
        Some("KudosUpfront")
    );
    // … and 10 online threads give 50 back.
    worker(&mut s, 4, json!({"name": "w", "threads": 10}), T0);
    assert_eq!(s.free_max_tokens(T0), 472);
    assert!(accept(
        &mut s,
        4,
        json!({"prompt": "p", "params": {"max_length": 450, "max_context_length": 4096}})
    )
    .is_ok());
}

#[test]
fn waiting_requests_count_against_the_kudos_up_front() {
    let mut s = state();
    if let Some(u) = s.users.get_mut(1) {
        u.concurrency = 500;
    }
    let ask = json!({"prompt": "p", "slow_workers": false, "params": {"max_length": 200, "max_context_length": 1024}});
    let price = s.price::<TextKind>(&text_req(ask.clone()));
    let balance = s.users.get(1).map_or(0, |u| u.kudos);
    assert!(price > 0 && price * 2 < balance, "price {price}, balance {balance}");
    let mut accepted: Centikudos = 0;
    loop {
        match accept(&mut s, 1, ask.clone()) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.rc(), "KudosUpfront");
                break;
            }
        }
        assert!(
            accepted * price <= balance,
            "accepted {accepted} requests of {price} with {balance}"
        );
    }
    assert!(
        accepted >= 1 && (accepted + 1) * price > balance - accepted * 100,
        "accepted {accepted}"
    );
}
