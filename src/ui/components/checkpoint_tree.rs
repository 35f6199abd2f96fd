//! The checkpoint tree: versions and branches, which checkpoint heads which branch, and branching.
use leptos::prelude::*;

use crate::api::{TreeNode, VideoStatusWire, create_branch};
use crate::domain::video::TREE_PAGE;
use crate::domain::{BranchStatus, Origin};
use crate::ui::components::pager::Pager;
use crate::ui::go_to;
use crate::ui::live::shared;
use crate::ui::pages::status::page_href;

#[component]
pub fn CheckpointTree(s: VideoStatusWire) -> impl IntoView {
    let nodes = s.checkpoint_tree.clone().into_iter().map(|n| node(&s.video_id, n)).collect_view();
    let (video_id, branch, attempts_page) = (s.video_id.clone(), s.branch.clone(), s.attempts_page);
    view! {
        <section class="card tree" aria-labelledby="tree-heading">
            <h2 id="tree-heading">"Checkpoints"</h2>
            {s.checkpoint_tree.is_empty().then(|| {
                let why = match s.status {
                    BranchStatus::Processing => "No checkpoint yet: the script is being written.",
                    BranchStatus::Failed => "No checkpoint yet: writing the script failed (see above).",
                    _ => "No checkpoint yet.",
                };
                view! { <p class="muted">{why}</p> }
            })}
            <ul class="tree-root">{nodes}</ul>
            <Pager what="checkpoints" page=s.tree_page size=TREE_PAGE total=s.tree_total
                href=move |n| page_href(&video_id, &branch, n, attempts_page)/>
        </section>
    }
}

fn node(video_id: &str, n: TreeNode) -> AnyView {
    let c = n.checkpoint;
    let label = format!("{} v{}", c.phase.label(), c.version);
    let heads = c.head_of.iter().map(|b| view! { <span class="chip head">{format!("head of {b}")}</span> }).collect_view();
    let children = n.children.into_iter().map(|child| node(video_id, child)).collect_view();
    view! {
        <li>
            <div class=format!("tree-node status-{}", c.status)>
                <span class="tree-label">{label.clone()}</span>
                <span class=format!("chip {}", c.status)>{c.status.wire()}</span>
                {(c.origin == Origin::Edited).then(|| view! { <span class="chip">"edited"</span> })}
                <span class="chip muted">{format!("on {}", c.branch)}</span>
                {heads}
                <BranchButton checkpoint=c.id.clone() label/>
            </div>
            <BranchForm video_id=video_id.to_string() checkpoint=c.id/>
            <ul>{children}</ul>
        </li>
    }
    .into_any()
}

/// Opens the "Create branch" form under its checkpoint (one form open at a time).
#[island]
fn BranchButton(checkpoint: String, label: String) -> impl IntoView {
    let sh = shared();
    let open = {
        let checkpoint = checkpoint.clone();
        move || sh.branch_form.with(|f| f.as_deref() == Some(checkpoint.as_str()))
    };
    view! {
        <button class="small" aria-expanded=move || open().to_string()
            on:click=move |_| sh.branch_form.set(Some(checkpoint.clone()))>
            {format!("Create branch from {label}")}
        </button>
    }
}

/// Names a new branch from a checkpoint; on success, loads the new branch's page.
#[island]
fn BranchForm(video_id: String, checkpoint: String) -> impl IntoView {
    let sh = shared();
    let make = {
        let (video_id, checkpoint) = (video_id.clone(), checkpoint.clone());
        Action::new(move |name: &String| create_branch(video_id.clone(), checkpoint.clone(), name.clone()))
    };
    Effect::new({
        let video_id = video_id.clone();
        move |_| match make.value().get() {
            Some(Ok(name)) => {
                sh.branch_form.set(None);
                sh.error.set(None);
                go_to(&format!("/videos/{video_id}?branch={name}"));
            }
            Some(Err(e)) => sh.error.set(Some(e)),
            None => {}
        }
    });
    let name = RwSignal::new(String::new());
    let form_id = format!("branch-name-{checkpoint}");
    move || {
        let form_id = form_id.clone();
        sh.branch_form.with(|f| f.as_deref() == Some(checkpoint.as_str())).then(move || {
            view! {
                <form class="branch-form" on:submit=move |ev| {
                    ev.prevent_default();
                    make.dispatch(name.get_untracked());
                }>
                    <label for=form_id.clone()>"Branch name"</label>
                    <input id=form_id required maxlength="40" pattern="[a-z0-9][a-z0-9_\\-]{0,39}"
                        placeholder="e.g. calmer-music"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                    <button type="submit" class="primary" disabled=move || make.pending().get()>"Create branch"</button>
                    <button type="button" on:click=move |_| sh.branch_form.set(None)>"Close"</button>
                </form>
            }
        })
    }
}
