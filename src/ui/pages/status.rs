//! `/videos/:id`: server-rendered, then live over a websocket; one branch at a time.
use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};
use std::future::Future;

use crate::api::{AppError, VideoStatusWire, get_status};
use crate::domain::Entity;
use crate::ui::components::{
    artifacts::Artifacts,
    attempts::Attempts,
    badge::StatusBadge,
    checkpoint_tree::CheckpointTree,
    delete::DeleteVideo,
    editor::ScriptEditor,
    error_card::ErrorCard,
    timeline::{Controls, Timeline},
};
use crate::ui::pages::not_found::{NotFoundMessage, set_not_found_status};

/// What every component on the page shares: which video and branch, and how to refresh.
#[derive(Clone, Copy)]
pub struct StatusCtx {
    pub video_id: Memo<String>,
    pub branch: Memo<String>,
    pub refresh: RwSignal<u64>,
    pub action_error: RwSignal<Option<AppError>>,
    pub editing: RwSignal<bool>,
    pub branch_form: RwSignal<Option<String>>,
    pub live: RwSignal<bool>,
    /// What the person is typing in the budget field; kept across live re-renders.
    pub budget_draft: RwSignal<Option<String>>,
    /// The change counter of the snapshot on screen; the live channel compares against it.
    pub shown_changes: RwSignal<i64>,
    /// Which page of the tree and of the Attempts table the address asks for (0 = the newest).
    pub pages: Memo<(u32, u32)>,
}

impl StatusCtx {
    /// An action whose result refreshes the page, or shows its error as a sentence.
    pub fn action<I, Fut>(self, f: impl Fn(I) -> Fut + Send + Sync + 'static) -> Action<I, ()>
    where
        I: Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), AppError>> + Send + 'static,
    {
        Action::new(move |input: &I| {
            let fut = f(input.clone());
            async move {
                match fut.await {
                    Ok(()) => {
                        self.action_error.set(None);
                        self.refresh.update(|n| *n += 1);
                    }
                    Err(e) => {
                        self.action_error.set(Some(e));
                        self.refresh.update(|n| *n += 1);
                    }
                }
            }
        })
    }

    pub fn branch_param(self) -> Option<String> {
        Some(self.branch.get_untracked())
    }

    /// This page's address at other pages of the tree and the Attempts table.
    pub fn href(self, tree: u32, attempts: u32) -> String {
        let mut href = format!("/videos/{}?branch={}", self.video_id.get_untracked(), self.branch.get_untracked());
        if tree > 0 {
            href.push_str(&format!("&tree={tree}"));
        }
        if attempts > 0 {
            href.push_str(&format!("&attempts={attempts}"));
        }
        href
    }
}

/// The route: reads the address, then hands it to the island that is the page.
#[component]
pub fn StatusPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = params.with_untracked(|p| p.get("id").unwrap_or_default());
    let branch = query.with_untracked(|q| q.get("branch").filter(|b| !b.is_empty()).unwrap_or_else(|| "main".to_string()));
    let page_of = |name: &str| query.with_untracked(|q| q.get(name).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0));
    let (tree, attempts) = (page_of("tree"), page_of("attempts"));
    view! { <StatusIsland id branch tree attempts/> }
}

/// The whole status page is one island: it refetches its snapshot whenever the live channel
/// says the video changed, and every part of it reads that snapshot.
#[island]
fn StatusIsland(id: String, branch: String, tree: u32, attempts: u32) -> impl IntoView {
    let video_id = Memo::new(move |_| id.clone());
    let branch = Memo::new(move |_| branch.clone());
    let pages = Memo::new(move |_| (tree, attempts));
    let ctx = StatusCtx {
        video_id,
        branch,
        refresh: RwSignal::new(0),
        action_error: RwSignal::new(None),
        editing: RwSignal::new(false),
        branch_form: RwSignal::new(None),
        live: RwSignal::new(false),
        budget_draft: RwSignal::new(None),
        shown_changes: RwSignal::new(-1),
        pages,
    };
    provide_context(ctx);
    let status = Resource::new(
        move || (video_id.get(), branch.get(), pages.get(), ctx.refresh.get()),
        |(id, b, (tree, attempts), _)| get_status(id, Some(b), Some(tree), Some(attempts)),
    );

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(Ok(s)) = status.get() {
            ctx.shown_changes.set(s.changes);
        }
    });

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let id = video_id.get();
        let (task, handle) = futures::future::abortable(live::watch(id, ctx));
        leptos::task::spawn_local(async move {
            let _ = task.await;
        });
        on_cleanup(move || handle.abort());
    });

    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(s) => EitherOf3::A(view! { <StatusView s/> }),
                    Err(AppError::NotFound { what, .. }) => {
                        set_not_found_status();
                        let what = if what == Entity::Branch { Entity::Branch } else { Entity::Video };
                        EitherOf3::B(view! { <NotFoundMessage what=what.label()/> })
                    }
                    Err(AppError::InvalidInput { .. }) => {
                        set_not_found_status();
                        EitherOf3::B(view! { <NotFoundMessage what=Entity::Video.label()/> })
                    }
                    Err(e) => EitherOf3::C(view! {
                        <section class="card"><p class="error-text">{e.sentence()} " " {e.next_step()}</p></section>
                    }),
                }
            })}
        </Transition>
    }
}

#[component]
fn StatusView(s: VideoStatusWire) -> impl IntoView {
    let ctx = expect_context::<StatusCtx>();
    let video_id = s.video_id.clone();
    let branches = s
        .active_branches
        .iter()
        .map(|b| {
            let href = if b.branch_name == "main" {
                format!("/videos/{video_id}")
            } else {
                format!("/videos/{video_id}?branch={}", b.branch_name)
            };
            let current = b.branch_name == s.branch;
            view! {
                <a href=href class:current=current aria-current=if current { Some("page") } else { None }>
                    {b.branch_name.clone()}
                    <span class=format!("dot dot-{}", b.branch_status.wire()) aria-hidden="true"></span>
                </a>
            }
        })
        .collect_view();
    let s2 = s.clone();
    let editor_s = s.clone();
    view! {
        <article class="status-page">
            <header class="status-head card">
                <div class="title-row">
                    <h1>{s.title.clone()}</h1>
                    <StatusBadge status=s.status testid=true/>
                    <span class="live" title="Updates appear without reloading">
                        {move || if ctx.live.get() { "● live" } else { "○ connecting" }}
                    </span>
                </div>
                <p class="prompt">{s.prompt.clone()}</p>
                <nav class="branches" aria-label="Branches">
                    <span class="muted">"Branch:"</span>
                    {branches}
                </nav>
            </header>
            <div aria-live="assertive" class="action-error-region">
                {move || ctx.action_error.get().map(|e| view! {
                    <div class="action-error card">
                        <strong>{e.sentence()}</strong> " " {e.next_step()}
                        <button class="link" on:click=move |_| ctx.action_error.set(None)>"Dismiss"</button>
                    </div>
                })}
            </div>
            <Timeline s=s.clone()/>
            {s.error.clone().map(|e| view! { <ErrorCard s=s2.clone() e/> })}
            <Controls s=s.clone()/>
            {move || ctx.editing.get().then(|| view! { <ScriptEditor s=editor_s.clone()/> })}
            <Artifacts s=s.clone()/>
            <CheckpointTree s=s.clone()/>
            <Attempts s=s.clone()/>
            <DeleteVideo/>
        </article>
    }
}

#[cfg(feature = "hydrate")]
mod live {
    //! The websocket that tells the page something changed; reconnects with backoff.
    use futures::StreamExt;
    use leptos::prelude::*;

    use super::StatusCtx;
    use crate::api::{WatchRequest, watch_video};

    /// Refetches whenever the server's change counter is ahead of the snapshot on screen: the
    /// first message (sent on every connect, reconnects included) catches whatever changed
    /// before the channel opened, and later ones whatever changes after.
    pub async fn watch(video_id: String, ctx: StatusCtx) {
        let mut backoff_ms = 250;
        loop {
            let (mut tx, rx) = futures::channel::mpsc::channel(1);
            let _ = tx.try_send(Ok(WatchRequest { video_id: video_id.clone() }));
            if let Ok(mut events) = watch_video(rx.into()).await {
                while let Some(event) = events.next().await {
                    let Ok(event) = event else { break };
                    ctx.live.set(true);
                    backoff_ms = 250;
                    if event.changes > ctx.shown_changes.get_untracked() {
                        ctx.refresh.update(|n| *n += 1);
                    }
                }
            }
            drop(tx);
            ctx.live.set(false);
            gloo_timers::future::TimeoutFuture::new(backoff_ms).await;
            backoff_ms = (backoff_ms * 2).min(5000);
        }
    }
}
