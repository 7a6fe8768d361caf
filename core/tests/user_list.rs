//! `GET /users?sort=kudos` through `Horde` on SQLite, with no periodic batch running: balances
//! committed to the journal but not yet folded into the accounts still decide the order and
//! which accounts make the first page.

use std::sync::Arc;

use horde_core::clock::ManualClock;
use horde_core::config::HordeConfig;
use horde_core::store::Store;
use horde_core::AccountSpec;
use horde_core::Horde;

#[tokio::test]
async fn the_list_by_kudos_sees_committed_balances() {
    let store = Store::connect("sqlite::memory:").await.expect("store");
    let horde = Horde::open(store, HordeConfig::default(), Arc::new(ManualClock::new(1_700_000_000_000)), None)
        .await
        .expect("horde");
    // 30 accounts, richer as they are newer: the richest five are beyond a first page by id.
    for i in 0..30 {
        let spec = AccountSpec {
            username: format!("user{i}"),
            oauth_id: None,
            kudos: 10.0 * (i + 1) as f64,
            moderator: false,
            trusted: false,
            pseudonymous: false,
        };
        horde.create_account(spec).await.expect("account");
    }
    let page = horde.list_users(1, false).await.expect("page 1");
    let kudos: Vec<f64> = page.iter().map(|u| u.kudos).collect();
    let expected: Vec<f64> = (6..=30).rev().map(|k| 10.0 * k as f64).collect();
    assert_eq!(kudos, expected);
    assert_eq!(page.first().map(|u| u.username.as_str()), Some("user29#30"));
    let page2 = horde.list_users(2, false).await.expect("page 2");
    assert_eq!(
        page2.iter().map(|u| u.kudos).collect::<Vec<_>>(),
        vec![50.0, 40.0, 30.0, 20.0, 10.0]
    );
}
