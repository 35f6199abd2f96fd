//! Reelsmith: prompt → script → storyboard → clips → render, with a checkpoint after every phase.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod domain;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod bench;
#[cfg(feature = "ssr")]
pub mod media;
#[cfg(feature = "ssr")]
pub mod pipeline;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod storage;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Only the islands hydrate: the rest of each page is the server's HTML, and links between
    // pages load the next page from the server.
    leptos::mount::hydrate_islands();
    // Lets tests (and people debugging) know event handlers are attached. Leptos's loader calls
    // this first and then hydrates each island in a chain of promise callbacks (microtasks), so
    // the mark waits for a timer (a macrotask), which runs only once every island is hydrated.
    gloo_timers::callback::Timeout::new(0, || {
        if let Some(body) = leptos::prelude::document().body() {
            let _ = body.set_attribute("data-hydrated", "");
        }
    })
    .forget();
}
