//! The HTML shell, the root component and the routes — nothing else.
use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::ui::components::posted::PostedRefusal;
use crate::ui::pages::{
    account::{AccountBar, SignInPage, SignUpPage},
    not_found::NotFound,
    settings::SettingsPage,
    status::StatusPage,
    videos::VideosPage,
};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The site. Every page is rendered whole before it is sent (`SsrMode::Async`), so each one
/// works without JavaScript too: out-of-order streaming, Leptos's default, sends a page's parts
/// that wait for data later and puts them in place with scripts.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/reelsmith.css"/>
        <Title text="Reelsmith"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"Reelsmith"</a>
                <span class="tagline">"prompt → script → storyboard → clips → video"</span>
                <nav class="topnav"><a href="/settings">"Settings"</a></nav>
                <AccountBar/>
            </header>
            <main class="page">
                <PostedRefusal/>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=VideosPage ssr=SsrMode::Async/>
                    <Route path=path!("/signin") view=SignInPage ssr=SsrMode::Async/>
                    <Route path=path!("/signup") view=SignUpPage ssr=SsrMode::Async/>
                    <Route path=path!("/videos/:id") view=StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/settings") view=SettingsPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
