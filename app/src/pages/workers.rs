//! Workers & status: the horde's queues and models, the volunteers, and the signed-in user's own
//! workers with their maintenance switch.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ModelRow, WorkerRow};
use crate::Session;

#[component]
pub fn WorkersPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let (overview, reload_overview) = super::load(api::overview);
    let (mine, reload_mine) = super::load(move || api::my_workers(session.api_key.get()));
    let message = RwSignal::new(None::<String>);
    let toggle = move |id: String, on: bool| {
        let key = session.api_key.get_untracked();
        spawn_local(async move {
            match api::set_maintenance(key, id, on).await {
                Ok(_) => {
                    reload_mine();
                    reload_overview();
                }
                Err(e) => message.set(Some(api::message(&e))),
            }
        });
    };
    view! {
        <section class="workers">
            <h1>"Workers & status"</h1>
            {move || match overview.get() {
                    None => EitherOf3::A(view! { <p class="muted">"Loading…"</p> }),
                    Some(Ok(o)) => EitherOf3::B(view! {
                        <div class="cards">
                            <div class="card"><b>{o.text_models.iter().map(|m| m.workers).sum::<i64>()}</b>"text workers"</div>
                            <div class="card"><b>{o.queued_text_requests}</b>"text requests queued"</div>
                            <div class="card"><b>{o.queued_tokens.round()}</b>"tokens queued"</div>
                            <div class="card"><b>{o.past_minute_tokens.round()}</b>"tokens in the past minute"</div>
                        </div>
                        <h2>"Text models"</h2>
                        {model_table(o.text_models)}
                        <h2>"Image models"</h2>
                        {model_table(o.image_models)}
                        <h2>"Volunteers"</h2>
                        {worker_table(o.workers)}
                        <p class="muted">"Horde " {o.version}</p>
                    }),
                    Some(Err(e)) => EitherOf3::C(view! { <p class="error">{e}</p> }),
                }}
            <h2>"My workers"</h2>
            {move || message.get().map(|m| view! { <p class="message" role="status">{m}</p> })}
            {move || mine.get().map(|m| match m {
                    Ok(ws) if ws.is_empty() => EitherOf3::A(view! { <p class="muted">"No workers on this account. Run horde-worker with your API key to add one."</p> }),
                    Ok(ws) => EitherOf3::B(ws
                        .into_iter()
                        .map(|w| {
                            let id = w.id.clone();
                            let on = !w.maintenance;
                            let info = RwSignal::new(w.info.clone());
                            let confirming = RwSignal::new(false);
                            let (save_id, delete_id) = (w.id.clone(), w.id.clone());
                            let save = move |_| {
                                let (key, id, text) = (session.api_key.get_untracked(), save_id.clone(), info.get_untracked());
                                spawn_local(async move {
                                    match api::set_worker_info(key, id, text).await {
                                        Ok(_) => message.set(Some("Worker info saved.".into())),
                                        Err(e) => message.set(Some(api::message(&e))),
                                    }
                                });
                            };
                            let delete = move |_| {
                                if !confirming.get_untracked() {
                                    confirming.set(true);
                                    return;
                                }
                                let (key, id) = (session.api_key.get_untracked(), delete_id.clone());
                                spawn_local(async move {
                                    match api::delete_worker(key, id).await {
                                        Ok(name) => {
                                            message.set(Some(format!("Worker {name} deleted.")));
                                            reload_mine();
                                            reload_overview();
                                        }
                                        Err(e) => message.set(Some(api::message(&e))),
                                    }
                                });
                            };
                            view! {
                                <div class="card my-worker" data-worker=w.name.clone()>
                                    <b>{w.name.clone()}</b>
                                    <span class="muted">{w.models.join(", ")}</span>
                                    <span class="state">{if w.maintenance { "In maintenance" } else { "Serving" }}</span>
                                    <button class="ghost" on:click=move |_| toggle(id.clone(), on)>
                                        {if w.maintenance { "Resume" } else { "Maintenance" }}
                                    </button>
                                    <input name="worker_info" placeholder="Describe this worker" prop:value=move || info.get() on:input=move |ev| info.set(event_target_value(&ev))/>
                                    <button class="ghost" on:click=save>"Save info"</button>
                                    <button class="danger" on:click=delete>{move || if confirming.get() { "Confirm delete" } else { "Delete" }}</button>
                                </div>
                            }
                        })
                        .collect_view()),
                    Err(e) => EitherOf3::C(view! { <p class="error">{e}</p> }),
                })}
        </section>
    }
}

fn model_table(models: Vec<ModelRow>) -> impl IntoView {
    if models.is_empty() {
        return Either::Left(view! { <p class="muted">"None online. Requests wait up to 20 minutes for a worker."</p> });
    }
    Either::Right(view! {
        <table>
            <thead><tr><th>"Model"</th><th>"Workers"</th><th>"Queued"</th><th>"Wait"</th></tr></thead>
            <tbody>
                {models
                    .into_iter()
                    .map(|m| view! { <tr><td>{m.name}</td><td>{m.workers}</td><td>{m.queued.round()}</td><td>{super::duration(m.eta)}</td></tr> })
                    .collect_view()}
            </tbody>
        </table>
    })
}

fn worker_table(workers: Vec<WorkerRow>) -> impl IntoView {
    if workers.is_empty() {
        return Either::Left(view! { <p class="muted">"No worker is online."</p> });
    }
    Either::Right(view! {
        <table class="worker-list">
            <thead><tr><th>"Name"</th><th>"Models"</th><th>"Speed"</th><th>"Uptime"</th><th>"Kudos"</th><th>"State"</th></tr></thead>
            <tbody>
                {workers
                    .into_iter()
                    .map(|w| view! {
                        <tr>
                            <td>{w.name}</td>
                            <td>{w.models.join(", ")}</td>
                            <td>{w.performance}</td>
                            <td>{super::duration(w.uptime)}</td>
                            <td>{super::kudos(w.kudos_rewards)}</td>
                            <td>{if w.maintenance { "maintenance" } else { "serving" }}</td>
                        </tr>
                    })
                    .collect_view()}
            </tbody>
        </table>
    })
}
