//! The account page: the API key (anonymous by default), registration of a pseudonymous account
//! (its key shown once), the kudos balance and its details, and kudos transfers.

use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::Session;

#[component]
pub fn AccountPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let key = session.api_key;
    let (account, reload) = super::load(move || api::account(key.get()));
    let key_input = RwSignal::new(String::new());
    let username = RwSignal::new(String::new());
    let new_key = RwSignal::new(None::<String>);
    let message = RwSignal::new(None::<String>);
    let to = RwSignal::new(String::new());
    let amount = RwSignal::new(String::new());

    let register = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = username.get_untracked();
        spawn_local(async move {
            match api::register(name).await {
                Ok(k) => {
                    key.set(k.api_key.clone());
                    new_key.set(Some(k.api_key));
                    username.set(String::new());
                    message.set(Some(format!("Welcome, {}.", k.username)));
                }
                Err(e) => message.set(Some(api::message(&e))),
            }
        });
    };
    let transfer = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(n) = crate::browser::number(&amount.get_untracked()) else {
            message.set(Some("The amount must be a number.".into()));
            return;
        };
        let (k, recipient) = (key.get_untracked(), to.get_untracked());
        spawn_local(async move {
            match api::transfer(k, recipient.clone(), n).await {
                Ok(moved) => {
                    message.set(Some(format!("Sent {} kudos to {recipient}.", super::kudos(moved))));
                    amount.set(String::new());
                    reload();
                }
                Err(e) => message.set(Some(api::message(&e))),
            }
        });
    };

    view! {
        <section class="account">
            <h1>"Account"</h1>
            <div class="card balance">
                {move || match account.get() {
                        None => EitherOf3::A(view! { <p class="muted">"Loading…"</p> }),
                        Some(Ok(a)) => EitherOf3::B(view! {
                            <p>
                                <span class="username">{a.username.clone()}</span>
                                {a.anonymous.then(|| view! { <span class="muted">" (anonymous: requests wait behind everyone with kudos)"</span> })}
                            </p>
                            <p class="kudos-line"><b class="kudos">{super::kudos(a.kudos)}</b>" kudos"</p>
                            <table class="details">
                                <tr><td>"Earned by workers"</td><td>{super::kudos(a.accumulated)}</td></tr>
                                <tr><td>"Given"</td><td>{super::kudos(a.gifted)}</td></tr>
                                <tr><td>"Received"</td><td>{super::kudos(a.received)}</td></tr>
                                <tr><td>"Awarded"</td><td>{super::kudos(a.awarded)}</td></tr>
                                <tr><td>"Text requests"</td><td>{a.text_requested}</td></tr>
                                <tr><td>"Image requests"</td><td>{a.image_requested}</td></tr>
                                <tr><td>"Workers"</td><td>{a.worker_count}</td></tr>
                            </table>
                        }),
                        Some(Err(e)) => EitherOf3::C(view! { <p class="error">{e}</p> }),
                    }}
            </div>
            {move || new_key.get().map(|k| view! {
                <div class="card notice">
                    <p>"Your API key. It is shown once: keep it somewhere safe. It is saved in this browser."</p>
                    <code class="new-key">{k}</code>
                </div>
            })}
            {move || message.get().map(|m| view! { <p class="message" role="status">{m}</p> })}
            <form class="card" on:submit=move |ev| { ev.prevent_default(); key.set(key_input.get_untracked().trim().to_string()); key_input.set(String::new()); }>
                <h2>"API key"</h2>
                <p class="muted">{move || if key.with(String::is_empty) { "Using the horde anonymously." } else { "A key is saved in this browser." }}</p>
                <input name="api_key" type="password" autocomplete="off" placeholder="Paste your API key" prop:value=move || key_input.get() on:input=move |ev| key_input.set(event_target_value(&ev))/>
                <button type="submit" class="primary">"Use this key"</button>
                <button type="button" class="ghost" on:click=move |_| { key.set(String::new()); new_key.set(None); }>"Sign out"</button>
            </form>
            <form class="card" on:submit=register>
                <h2>"Register"</h2>
                <p class="muted">"A pseudonymous account: no e-mail, no password. The key is the account."</p>
                <input name="username" placeholder="Username" required prop:value=move || username.get() on:input=move |ev| username.set(event_target_value(&ev))/>
                <button type="submit" class="primary">"Create account"</button>
            </form>
            <form class="card" on:submit=transfer>
                <h2>"Transfer kudos"</h2>
                <input name="recipient" placeholder="name#id" required prop:value=move || to.get() on:input=move |ev| to.set(event_target_value(&ev))/>
                <input name="amount" type="number" min="1" step="1" placeholder="Kudos" required prop:value=move || amount.get() on:input=move |ev| amount.set(event_target_value(&ev))/>
                <button type="submit" class="primary">"Send kudos"</button>
            </form>
        </section>
    }
}
