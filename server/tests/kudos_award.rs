//! `POST /kudos/award` on every backend: moderators award kudos from the mint; the ledger still
//! balances (every stored balance is the sum of its postings, and all accounts sum to zero).

mod common;

use common::Db;
use serde_json::{json, Value};

fn rc(v: &Value) -> &str {
    v["rc"].as_str().unwrap_or("")
}

async fn awards(db: Db) {
    let mut s = server!(db, &["--dev-test-users"]);
    let (user, user_id) = s.user("awardee", 10.0, false, false).await;
    let (moder, _) = s.user("awarder", 0.0, true, false).await;
    let target = format!("awardee#{user_id}");

    let (st, v) = s.post("/kudos/award", Some(&user), json!({"username": target, "amount": 50})).await;
    assert_eq!((st, rc(&v)), (403, "NotAllowedAwards"));
    let (st, v) = s
        .post("/kudos/award", Some(&moder), json!({"username": "Anonymous#0", "amount": 5}))
        .await;
    assert_eq!((st, rc(&v)), (400, "KudosAwardToAnon"));
    let (st, v) = s
        .post("/kudos/award", Some(&moder), json!({"username": "nobody", "amount": 5}))
        .await;
    assert_eq!((st, rc(&v)), (400, "InvalidAwardUsername"));
    let (st, v) = s
        .post("/kudos/award", Some(&moder), json!({"username": target, "amount": -5}))
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .post("/kudos/award", Some(&moder), json!({"username": target, "amount": 50}))
        .await;
    assert_eq!((st, v), (200, json!({"awarded": 50.0})));
    let (_, me) = s.get("/find_user", Some(&user)).await;
    assert_eq!(
        (me["kudos"].as_f64(), me["kudos_details"]["awarded"].as_f64()),
        (Some(60.0), Some(50.0)),
        "{me}"
    );

    assert!(s.stop());
    let store = horde_core::Store::connect(&s.db_url).await.expect("open store");
    let ledger = store.ledger_balances().await.expect("ledger");
    let stored = store.stored_balances().await.expect("balances");
    for (id, bal) in &stored {
        assert_eq!(ledger.get(&format!("user:{id}")).copied().unwrap_or(0), *bal, "user {id}");
    }
    let (mint, burn) = store.system_balances().await.expect("system");
    assert_eq!(stored.values().sum::<i64>() + mint + burn, 0);
    assert_eq!(stored.get(&user_id).copied(), Some(6000));
    store.close().await;
}
on_both_databases!(kudos_award, awards);
