//! `/signup` and `/signin`, and the sign-out button in the top bar.
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

use crate::api::{AppError, SignIn, SignOut, SignUp, whoami};
// After signing in or out the whole page loads again, so every part of it shows the new account.
use crate::ui::components::posted::answer_shown;
use crate::ui::{Submitted, go_to};

fn error_line(error: Option<AppError>) -> Option<impl IntoView> {
    error.map(|e| view! { <p class="error-text" role="alert">{e.sentence()} " " {e.next_step()}</p> })
}

/// Email and password fields, and where to go after (`next`, from the page's query).
#[component]
fn Credentials(new_password: bool, next: String) -> impl IntoView {
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

/// After a successful sign-up or sign-in, go where the server said (the page asked for, or `/`).
fn follow(answer: Signal<Option<Result<String, AppError>>>) {
    Effect::new(move |_| {
        if let Some(Ok(next)) = answer.get() {
            go_to(&next);
        }
    });
}

/// The card around a form: its heading, then the form, then a link to the other page.
#[component]
fn AccountCard(heading: &'static str, other: (&'static str, &'static str, &'static str), children: Children) -> impl IntoView {
    let (ask, href, link) = other;
    view! {
        <section class="card account-page">
            <h1>{heading}</h1>
            {children()}
            <p>{ask} " " <a href=href>{link}</a></p>
        </section>
    }
}

/// The form's fields, its error and its submit button.
#[component]
fn FormBody(
    new_password: bool,
    next: String,
    answer: Signal<Option<Result<String, AppError>>>,
    pending: Memo<bool>,
    button: &'static str,
) -> impl IntoView {
    view! {
        <Credentials new_password next/>
        {move || error_line(answer.get().and_then(Result::err))}
        <button type="submit" class="primary" disabled=move || pending.get()>{button}</button>
    }
}

/// Where the page was asked to go after signing in (the query's `next`).
fn next_of_query() -> String {
    use_query_map().with_untracked(|q| q.get("next").unwrap_or_default())
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    view! {
        <AccountCard heading="Create an account" other=("Already have an account?", "/signin", "Sign in")>
            <SignUpForm next=next_of_query()/>
        </AccountCard>
    }
}

#[island]
fn SignUpForm(next: String) -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let answer = Signal::derive(move || answer_shown(action.value().get(), action.version().get()));
    follow(answer);
    let pending = Memo::new(move |_| action.pending().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        let form = Submitted::take(&ev);
        action.dispatch(SignUp { email: form.text("email"), password: form.text("password"), next: form.field("next") });
    };
    view! {
        <form class="form" method="post" action=SignUp::url() on:submit=submit>
            <FormBody new_password=true next answer pending button="Create account"/>
        </form>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    view! {
        <AccountCard heading="Sign in" other=("New here?", "/signup", "Create an account")>
            <SignInForm next=next_of_query()/>
        </AccountCard>
    }
}

#[island]
fn SignInForm(next: String) -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let answer = Signal::derive(move || answer_shown(action.value().get(), action.version().get()));
    follow(answer);
    let pending = Memo::new(move |_| action.pending().get());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        let form = Submitted::take(&ev);
        action.dispatch(SignIn { email: form.text("email"), password: form.text("password"), next: form.field("next") });
    };
    view! {
        <form class="form" method="post" action=SignIn::url() on:submit=submit>
            <FormBody new_password=false next answer pending button="Sign in"/>
        </form>
    }
}

/// The signed-in email and a `Sign out` button; nothing when signed out or with `--auth none`.
#[component]
pub fn AccountBar() -> impl IntoView {
    let who = Resource::new(|| (), |_| whoami());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                who.await.ok().and_then(|w| w.email).map(|email| view! {
                    <div class="account-bar">
                        <span class="muted">{email}</span>
                        <SignOutButton/>
                    </div>
                })
            })}
        </Transition>
    }
}

#[island]
fn SignOutButton() -> impl IntoView {
    let action = ServerAction::<SignOut>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = action.value().get() {
            go_to("/signin");
        }
    });
    view! {
        <form method="post" action=SignOut::url() on:submit=move |ev| {
            Submitted::take(&ev);
            action.dispatch(SignOut {});
        }>
            <button type="submit">"Sign out"</button>
        </form>
    }
}
