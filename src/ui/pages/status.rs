//! `/videos/:id`: rendered by the server; its islands act, and the live channel swaps the
//! server's newer HTML in (`ui::live`). One branch at a time.
use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

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
use crate::ui::live::{ActionError, Live, REGION};
use crate::ui::pages::not_found::{NotFoundMessage, set_error_status, set_not_found_status};

/// The status page's address at other pages of the tree and the Attempts table.
pub fn page_href(video_id: &str, branch: &str, tree: u32, attempts: u32) -> String {
    let mut href = format!("/videos/{video_id}?branch={branch}");
    if tree > 0 {
        href.push_str(&format!("&tree={tree}"));
    }
    if attempts > 0 {
        href.push_str(&format!("&attempts={attempts}"));
    }
    href
}

/// The route: reads the address, asks for the snapshot and renders it (the route waits for it,
/// so an unknown video gets a real 404).
#[component]
pub fn StatusPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = params.with_untracked(|p| p.get("id").unwrap_or_default());
    let branch = query.with_untracked(|q| q.get("branch").filter(|b| !b.is_empty()).unwrap_or_else(|| "main".to_string()));
    let page_of = |name: &str| query.with_untracked(|q| q.get(name).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0));
    let (tree, attempts) = (page_of("tree"), page_of("attempts"));
    let status = move || {
        let (id, branch) = (id.clone(), branch.clone());
        Suspend::new(async move {
            match get_status(id, Some(branch), Some(tree), Some(attempts)).await {
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
                Err(e) => EitherOf3::C({
                    set_error_status(&e);
                    view! {
                        <section class="card"><p class="error-text">{e.sentence()} " " {e.next_step()}</p></section>
                    }
                }),
            }
        })
    };
    view! { <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>{status}</Suspense> }
}

#[component]
fn StatusView(s: VideoStatusWire) -> impl IntoView {
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
    let editor = match (s.artifacts.script.clone(), s.artifacts.script_checkpoint.clone()) {
        (Some(script), Some(checkpoint)) => Some(view! {
            <ScriptEditor video_id=video_id.clone() branch=s.branch.clone() checkpoint=checkpoint.id version=checkpoint.version
                saves=s.artifacts.script_next_version script/>
        }),
        _ => None,
    };
    view! {
        <article class="status-page" id=REGION data-changes=s.changes.to_string()>
            <header class="status-head card">
                <div class="title-row">
                    <h1>{s.title.clone()}</h1>
                    <StatusBadge status=s.status testid=true/>
                    <Live video_id=video_id.clone()/>
                </div>
                <p class="prompt">{s.prompt.clone()}</p>
                <nav class="branches" aria-label="Branches">
                    <span class="muted">"Branch:"</span>
                    {branches}
                </nav>
            </header>
            <ActionError/>
            <Timeline s=s.clone()/>
            {s.error.clone().map(|e| view! { <ErrorCard s=s.clone() e/> })}
            <Controls s=s.clone()/>
            {editor}
            <Artifacts s=s.clone()/>
            <CheckpointTree s=s.clone()/>
            <Attempts s=s.clone()/>
            <DeleteVideo video_id=video_id.clone()/>
        </article>
    }
}
