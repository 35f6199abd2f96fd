//! `/settings`: which provider makes each phase, whether its key is set (never the key), and
//! what it costs. Read-only: the providers file (`--providers`) is where they are chosen.
use leptos::prelude::*;

use crate::api::{ProviderSetting, provider_settings};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let settings = Resource::new(|| (), |_| provider_settings());
    view! {
        <section class="card settings">
            <h1>"Settings"</h1>
            <p class="muted">"Providers are chosen by the providers file the server was started with (--providers). Keys come from environment variables and are never shown."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match settings.await {
                        Ok(rows) => view! { <ProviderTable rows/> }.into_any(),
                        Err(e) => view! { <p class="error-text" role="alert">{e.sentence()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ProviderTable(rows: Vec<ProviderSetting>) -> impl IntoView {
    view! {
        <table class="providers">
            <caption>"Providers"</caption>
            <thead>
                <tr><th scope="col">"Phase"</th><th scope="col">"Provider"</th><th scope="col">"Model"</th><th scope="col">"API key"</th><th scope="col">"Prices"</th></tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|r| view! { <ProviderRow r/> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn ProviderRow(r: ProviderSetting) -> impl IntoView {
    let key = match (r.key_env.is_empty(), r.key_present) {
        (true, _) => "not needed".to_string(),
        (false, true) => format!("{} is set", r.key_env),
        (false, false) => format!("{} is missing", r.key_env),
    };
    let key_class = if !r.key_env.is_empty() && !r.key_present { "key missing" } else { "key" };
    let model = if r.base_url.is_empty() { r.model } else { format!("{} at {}", r.model, r.base_url) };
    view! {
        <tr>
            <th scope="row">{r.phase}</th>
            <td>{r.provider}</td>
            <td>{model}</td>
            <td class=key_class>{key}</td>
            <td>{r.prices}</td>
        </tr>
    }
}
