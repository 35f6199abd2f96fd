//! The 404 page, with a real HTTP 404 status during server rendering.
use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    set_not_found_status();
    view! { <NotFoundMessage what="Page"/> }
}

#[component]
pub fn NotFoundMessage(what: &'static str) -> impl IntoView {
    view! {
        <section class="card not-found">
            <h1>{format!("{what} not found")}</h1>
            <p>"The address may be mistyped, or the video was never made here."</p>
            <p><a href="/">"Back to your videos"</a></p>
        </section>
    }
}

pub fn set_not_found_status() {
    #[cfg(feature = "ssr")]
    set_status(axum::http::StatusCode::NOT_FOUND);
}

/// A page that shows an error answers with that error's status while it is rendered on the
/// server (500 for a failure of ours, 401 signed out…), never 200.
pub fn set_error_status(error: &crate::api::AppError) {
    #[cfg(feature = "ssr")]
    set_status(error.status());
    #[cfg(not(feature = "ssr"))]
    let _ = error;
}

#[cfg(feature = "ssr")]
fn set_status(status: axum::http::StatusCode) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
}
