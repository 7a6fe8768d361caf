//! The lifecycle's rules, driven without a runtime or storage through text requests (image
//! requests: `image::lifecycle` tests): the fixtures here, the rules by theme in the files below.

use super::*;
use crate::accounts::{KudosBuckets, User};
use crate::config::HordeConfig;
use crate::kudos::text_price;
use crate::kudos::Account;
use crate::kudos::KudosLedger;
use crate::text::{TextJobResult, TextKind, TextRequest};
use crate::workers::WorkerPop;
use horde_protocol::text::TextPopResponse;
use horde_protocol::text::{GenerateTextRequest, TextPopRequest};
use serde_json::json;
use std::collections::HashMap;

const T0: u64 = 1_700_000_000_000;

/// An account with `kudos` (given by an admin), trusted or not (also the image tests' accounts).
pub(crate) fn user(id: i64, kudos: f64, trusted: bool) -> User {
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

mod kudos;
mod queue;
mod stream;
mod upfront;
