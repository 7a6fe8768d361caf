//! Deleting an account through `Horde` on SQLite with a clock the test moves: marked deleted
//! (refused generations, pops and transfers; undone by `undelete`), then wiped 30 days later
//! (no key signs in, workers and shared keys deleted, the balance kept).

use std::sync::Arc;

use horde_core::accounts::deletion::{Deletion, WIPED_NAME};
use horde_core::clock::ManualClock;
use horde_core::config::HordeConfig;
use horde_core::store::Store;
use horde_core::AccountSpec;
use horde_core::Horde;
use horde_protocol::shared_keys::SharedKeyInput;
use horde_protocol::text::{GenerateTextRequest, TextPopRequest};
use horde_protocol::users::ModifyUser;
use serde_json::json;

fn text_req() -> GenerateTextRequest {
    serde_json::from_value(json!({"prompt": "hello"})).expect("request")
}

fn pop() -> TextPopRequest {
    serde_json::from_value(json!({"name": "doomed-worker", "models": ["m"]})).expect("pop")
}

#[tokio::test]
async fn an_account_is_marked_deleted_then_wiped() {
    let store = Store::connect("sqlite::memory:").await.expect("store");
    let clock = ManualClock::new(1_700_000_000_000);
    let horde = Horde::open(store, HordeConfig::default(), Arc::new(clock.clone()), Some("secret".into()))
        .await
        .expect("horde");
    let spec = |name: &str, kudos: f64, moderator: bool| AccountSpec {
        username: name.into(),
        oauth_id: None,
        kudos,
        moderator,
        trusted: false,
        pseudonymous: false,
    };
    let (alice, alice_key) = horde.create_account(spec("alice", 50.0, false)).await.expect("alice");
    let (bob, _) = horde.create_account(spec("bob", 10.0, false)).await.expect("bob");
    let (moderator, _) = horde.create_account(spec("mod", 0.0, true)).await.expect("mod");
    horde.pop_text(alice.id, pop(), None).await.expect("alice's worker pops");
    let key = horde
        .create_shared_key(
            alice.id,
            serde_json::from_value::<SharedKeyInput>(json!({"name": "alice key"})).expect("input"),
        )
        .await
        .expect("shared key");

    // Only the account itself or a moderator; never a moderator's account.
    assert_eq!(
        horde.delete_user(bob.id, alice.id).await.err().map(|e| e.rc()),
        Some("NotModerator")
    );
    assert_eq!(
        horde.delete_user(alice.id, moderator.id).await.err().map(|e| e.rc()),
        Some("NotModerator")
    );
    assert_eq!(
        horde.delete_user(moderator.id, moderator.id).await.err().map(|e| e.rc()),
        Some("DeleteModerator")
    );

    assert_eq!(horde.delete_user(alice.id, alice.id).await.expect("marked"), Deletion::Marked);
    let refused = |r: Option<horde_core::HordeError>| r.map(|e| e.rc());
    assert_eq!(
        refused(horde.generate_text(alice.id, text_req(), None).await.err()),
        Some("DeletedUser")
    );
    assert_eq!(refused(horde.pop_text(alice.id, pop(), None).await.err()), Some("DeletedUser"));
    assert_eq!(
        refused(horde.transfer(bob.id, "alice#1", Some(1.0), None).await.err()),
        Some("DeletedUser")
    );
    let details = horde.user_details(alice.id, Some(alice.id)).await.expect("details");
    assert!(details.deleted);

    // Taken back, and deleted again.
    let undo: ModifyUser = serde_json::from_value(json!({"undelete": true})).expect("undelete");
    assert_eq!(
        horde.modify_user(alice.id, alice.id, undo).await.expect("undeleted").undelete,
        Some(true)
    );
    assert!(horde.generate_text(alice.id, text_req(), None).await.is_ok());
    assert_eq!(horde.delete_user(moderator.id, alice.id).await.expect("marked"), Deletion::Marked);
    assert!(matches!(horde.delete_user(alice.id, alice.id).await, Ok(Deletion::Pending { .. })));

    // 30 days later: wiped.
    clock.advance_secs(30 * 86_400);
    let kudos_before = horde.user_details(alice.id, Some(moderator.id)).await.expect("details").kudos;
    assert_eq!(horde.delete_user(alice.id, alice.id).await.expect("wiped"), Deletion::Wiped);
    assert_eq!(horde.authenticate(&alice_key).await.err().map(|e| e.rc()), Some("InvalidAPIKey"));
    let wiped = horde.user_details(alice.id, Some(moderator.id)).await.expect("details");
    assert_eq!(wiped.username, format!("{WIPED_NAME}#{}", alice.id));
    assert_eq!(wiped.kudos, kudos_before, "the balance stays");
    assert_eq!(
        horde.worker_details_by_name("doomed-worker", None).await.err().map(|e| e.rc()),
        Some("WorkerNotFound")
    );
    assert_eq!(horde.shared_key_details(&key.id).await.err().map(|e| e.rc()), Some("InvalidAPIKey"));
    let _ = bob;
}
