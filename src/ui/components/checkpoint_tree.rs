//! The checkpoint tree: versions and branches, which checkpoint heads which branch, and branching.
use leptos::prelude::*;

use crate::api::{TreeNode, VideoStatusWire, create_branch};
use crate::domain::Origin;
use crate::domain::video::TREE_PAGE;
use crate::ui::components::pager::Pager;
use crate::ui::go_to;
use crate::ui::pages::status::StatusCtx;

#[component]
pub fn CheckpointTree(s: VideoStatusWire) -> impl IntoView {
    let ctx = expect_context::<StatusCtx>();
    let make = Action::new(move |(checkpoint, name): &(String, String)| {
        let (checkpoint, name) = (checkpoint.clone(), name.clone());
        async move { create_branch(ctx.video_id.get_untracked(), checkpoint, name).await }
    });
    Effect::new(move |_| match make.value().get() {
        Some(Ok(name)) => {
            ctx.branch_form.set(None);
            ctx.action_error.set(None);
            go_to(&format!("/videos/{}?branch={name}", ctx.video_id.get_untracked()));
        }
        Some(Err(e)) => ctx.action_error.set(Some(e)),
        None => {}
    });
    let nodes = s.checkpoint_tree.clone().into_iter().map(|n| node(n, make)).collect_view();
    let attempts_page = s.attempts_page;
    view! {
        <section class="card tree" aria-labelledby="tree-heading">
            <h2 id="tree-heading">"Checkpoints"</h2>
            {if s.checkpoint_tree.is_empty() { Some(view! { <p class="muted">"No checkpoint yet: the script is being written."</p> }) } else { None }}
            <ul class="tree-root">{nodes}</ul>
            <Pager what="checkpoints" page=s.tree_page size=TREE_PAGE total=s.tree_total href=move |n| ctx.href(n, attempts_page)/>
        </section>
    }
}

fn node(n: TreeNode, make: Action<(String, String), Result<String, crate::api::AppError>>) -> AnyView {
    let ctx = expect_context::<StatusCtx>();
    let c = n.checkpoint.clone();
    let label = format!("{} v{}", c.phase.label(), c.version);
    let id = c.id.clone();
    let open = {
        let id = id.clone();
        Signal::derive(move || ctx.branch_form.get().as_deref() == Some(id.as_str()))
    };
    let name = RwSignal::new(String::new());
    let heads = c.head_of.iter().map(|b| view! { <span class="chip head">{format!("head of {b}")}</span> }).collect_view();
    let children = n.children.into_iter().map(|child| node(child, make)).collect_view();
    let form_id = format!("branch-name-{}", c.id);
    view! {
        <li>
            <div class=format!("tree-node status-{}", c.status)>
                <span class="tree-label">{label.clone()}</span>
                <span class=format!("chip {}", c.status)>{c.status.wire()}</span>
                {(c.origin == Origin::Edited).then(|| view! { <span class="chip">"edited"</span> })}
                <span class="chip muted">{format!("on {}", c.branch)}</span>
                {heads}
                <button class="small" aria-expanded=move || open.get().to_string()
                    on:click={ let id = id.clone(); move |_| ctx.branch_form.set(Some(id.clone())) }>
                    {format!("Create branch from {label}")}
                </button>
            </div>
            {move || open.get().then(|| view! {
                <form class="branch-form" on:submit={
                    let id = id.clone();
                    move |ev| {
                        ev.prevent_default();
                        make.dispatch((id.clone(), name.get_untracked()));
                    }
                }>
                    <label for=form_id.clone()>"Branch name"</label>
                    <input id=form_id.clone() required maxlength="40" pattern="[a-z0-9][a-z0-9_\\-]{0,39}"
                        placeholder="e.g. calmer-music"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                    <button type="submit" class="primary" disabled=move || make.pending().get()>"Create branch"</button>
                    <button type="button" on:click=move |_| ctx.branch_form.set(None)>"Close"</button>
                </form>
            })}
            <ul>{children}</ul>
        </li>
    }
    .into_any()
}
