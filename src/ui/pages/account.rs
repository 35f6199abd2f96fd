//! `/signup` and `/signin`, and the sign-out button in the top bar.
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{AppError, SignIn, SignOut, SignUp, whoami};

/// After signing in or out the whole page loads again, so every part of it shows the new account.
fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    let _ = window().location().set_href(path);
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

fn error_line(error: Option<AppError>) -> Option<impl IntoView> {
    error.map(|e| view! { <p class="error-text" role="alert">{e.sentence()} " " {e.next_step()}</p> })
}

/// Email and password fields, and where to go after (`next`, from the query).
#[component]
fn Credentials(new_password: bool) -> impl IntoView {
    let next = move || use_query_map().with(|q| q.get("next").unwrap_or_default());
    let autocomplete = if new_password { "new-password" } else { "current-password" };
    view! {
        <label for="email">"Email"</label>
        <input id="email" name="email" type="email" autocomplete="email" required maxlength="254"/>
        <label for="password">"Password"</label>
        <input id="password" name="password" type="password" autocomplete=autocomplete required maxlength="128"/>
        {new_password.then(|| view! { <p class="hint">"At least 8 characters."</p> })}
        <input type="hidden" name="next" value=next/>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    Effect::new(move |_| {
        if let Some(Ok(next)) = action.value().get() {
            go_to(&next);
        }
    });
    view! {
        <section class="card account-page">
            <h1>"Create an account"</h1>
            <ActionForm action attr:class="form">
                <Credentials new_password=true/>
                {move || error_line(action.value().get().and_then(Result::err))}
                <button type="submit" class="primary" disabled=move || action.pending().get()>"Create account"</button>
            </ActionForm>
            <p>"Already have an account? " <a href="/signin">"Sign in"</a></p>
        </section>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    Effect::new(move |_| {
        if let Some(Ok(next)) = action.value().get() {
            go_to(&next);
        }
    });
    view! {
        <section class="card account-page">
            <h1>"Sign in"</h1>
            <ActionForm action attr:class="form">
                <Credentials new_password=false/>
                {move || error_line(action.value().get().and_then(Result::err))}
                <button type="submit" class="primary" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
            <p>"New here? " <a href="/signup">"Create an account"</a></p>
        </section>
    }
}

/// The signed-in email and a `Sign out` button; nothing when signed out or with `--auth none`.
#[component]
pub fn AccountBar() -> impl IntoView {
    let who = Resource::new(|| (), |_| whoami());
    let action = ServerAction::<SignOut>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = action.value().get() {
            go_to("/signin");
        }
    });
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                who.await.ok().and_then(|w| w.email).map(|email| view! {
                    <div class="account-bar">
                        <span class="muted">{email}</span>
                        <ActionForm action>
                            <button type="submit">"Sign out"</button>
                        </ActionForm>
                    </div>
                })
            })}
        </Transition>
    }
}
