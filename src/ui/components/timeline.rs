//! The phase timeline with per-unit progress bars, and the controls for the branch's next step.
use futures::FutureExt;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::{
    CancelRun, ContinueVideo, SetBudget, UnitState, VideoStatusWire, cancel_run, continue_video, dollars, set_auto_continue, set_budget,
};
use crate::domain::{BranchStatus, Phase};
use crate::ui::live::shared;

fn phase_state(s: &VideoStatusWire, phase: Phase) -> &'static str {
    let made = match phase {
        Phase::Script => s.artifacts.script_checkpoint.is_some(),
        Phase::Storyboard => s.artifacts.storyboard_checkpoint.is_some(),
        Phase::Clips => s.artifacts.clips_checkpoint.is_some(),
        Phase::Render => s.artifacts.video_url.is_some(),
    };
    let running = s.status == BranchStatus::Processing && s.current_phase == Some(phase);
    let failed = s.status == BranchStatus::Failed && s.current_phase == Some(phase);
    if running {
        "running"
    } else if failed {
        "failed"
    } else if made {
        "done"
    } else {
        "waiting"
    }
}

#[component]
pub fn Timeline(s: VideoStatusWire) -> impl IntoView {
    let steps = Phase::ALL
        .into_iter()
        .map(|phase| {
            let state = phase_state(&s, phase);
            let progress = s.progress.clone().filter(|p| p.phase == phase && state != "done");
            let bars = progress.map(|p| {
                let done = p.units.iter().filter(|u| matches!(u, UnitState::Done | UnitState::Reused)).count();
                let total = p.units.len();
                view! {
                    <div class="units" role="progressbar" aria-label=format!("{} units", phase.label())
                        aria-valuemin="0" aria-valuemax=total.to_string() aria-valuenow=done.to_string()>
                        {p.units.iter().enumerate().map(|(i, u)| {
                            let word = format!("{:?}", u).to_lowercase();
                            view! { <span class=format!("unit unit-{word}") title=format!("unit {}: {word}", i + 1)></span> }
                        }).collect_view()}
                    </div>
                    <span class="muted small">{format!("{done} / {total}")}</span>
                }
            });
            view! {
                <li class=format!("step step-{state}")>
                    <span class="step-num">{phase.number()}</span>
                    <span class="step-name">{phase.label()}</span>
                    <span class="step-state muted small">{state}</span>
                    {bars}
                </li>
            }
        })
        .collect_view();
    view! { <ol class="timeline card" aria-label="Phases">{steps}</ol> }
}

/// The branch's next step, in words, with its buttons (islands).
#[component]
pub fn Controls(s: VideoStatusWire) -> impl IntoView {
    let (video_id, branch) = (s.video_id.clone(), s.branch.clone());
    let saved_budget = s.budget_micros.map(crate::domain::words::exact_dollars).unwrap_or_default();
    let spent = match s.budget_micros {
        Some(b) => format!("Spent {} of a {} budget.", dollars(s.total_cost_micros), dollars(b)),
        None => format!("Spent {}; no budget set.", dollars(s.total_cost_micros)),
    };
    let refused = s.allowed.continue_refused.clone();
    let estimate = format!("Estimated cost: {} (units already made are reused for free).", dollars(s.estimate_micros));
    let head = s.active_branches.iter().find(|b| b.branch_name == s.branch).cloned();
    let pending = s.current_checkpoint.clone();
    let fresh = s.allowed.can_continue && pending.is_none();
    let next_label =
        head.as_ref().and_then(|h| h.phase_number).and_then(|n| Phase::from_number(i64::from(n))).and_then(Phase::next).map(|p| p.label());
    let head_id = head.and_then(|h| h.latest_checkpoint_id);
    let can_continue = s.allowed.can_continue;
    view! {
        <section class="card controls" id=crate::ui::live::FALLBACK_FOCUS tabindex="-1" aria-label="Next step">
            {pending.map(|c| {
                let label = if c.phase == Phase::Render { "Approve & Continue (finish the video)".to_string() } else {
                    format!("Approve & Continue to {}", c.phase.next().map(|p| p.label()).unwrap_or(""))
                };
                view! {
                    <p>{format!("{} v{} is ready for review.", c.phase.label(), c.version)}</p>
                    {(c.phase != Phase::Render).then(|| view! { <p class="muted estimate">{estimate.clone()}</p> })}
                    <ContinueButton video_id=video_id.clone() branch=branch.clone() checkpoint=Some(c.id) force_retry=false
                        label busy="Starting…".into() enabled=can_continue/>
                }
            })}
            {fresh.then(|| view! {
                <p>"This branch is ready to go on from its newest checkpoint."</p>
                <ContinueButton video_id=video_id.clone() branch=branch.clone() checkpoint=head_id force_retry=false
                    label=format!("Continue to {}", next_label.unwrap_or("the next phase")) busy="Starting…".into() enabled=true/>
            })}
            {s.allowed.can_cancel.then(|| view! {
                <p class="muted">{format!("{} is running.", s.current_phase.map(|p| p.label()).unwrap_or("A phase"))}</p>
                <CancelButton video_id=video_id.clone() branch=branch.clone()/>
            })}
            {(s.status == BranchStatus::Completed).then(|| view! { <p>"The video is complete."</p> })}
            {refused.map(|r| view! { <p class="refusal"><strong>{format!("{r}.")}</strong> " " {r.next_step()}</p> })}
            <BudgetForm video_id=video_id.clone() saved=saved_budget spent/>
            <AutoContinue video_id on=s.auto_continue/>
        </section>
    }
}

/// Continue from a checkpoint (Approve & Continue, Continue to, and the error card's Retry).
#[island]
pub fn ContinueButton(
    video_id: String,
    branch: String,
    checkpoint: Option<String>,
    force_retry: bool,
    label: String,
    busy: String,
    enabled: bool,
) -> impl IntoView {
    // A form, so the button works without JavaScript too (the server answers the post with
    // this page again); with it, the page's code sends the same call.
    let fields = (video_id.clone(), branch.clone(), checkpoint.clone());
    let go = shared().action(move |_: ()| {
        continue_video(video_id.clone(), checkpoint.clone(), Some(branch.clone()), force_retry).map(|r| r.map(|_| ()))
    });
    view! {
        <form class="action" method="post" action=ContinueVideo::url() on:submit=move |ev| {
            ev.prevent_default();
            go.dispatch(());
        }>
            <input type="hidden" name="video_id" value=fields.0/>
            <input type="hidden" name="branch" value=fields.1/>
            {fields.2.map(|c| view! { <input type="hidden" name="checkpoint_id" value=c/> })}
            <input type="hidden" name="force_retry" value=force_retry.to_string()/>
            <button type="submit" class="primary" data-focus=if force_retry { "retry" } else { "continue" } disabled=move || !enabled || go.pending().get()
                aria-busy=move || go.pending().get().to_string()>
                {move || if go.pending().get() { busy.clone() } else { label.clone() }}
            </button>
        </form>
    }
}

#[island]
fn CancelButton(video_id: String, branch: String) -> impl IntoView {
    let fields = (video_id.clone(), branch.clone());
    let cancel = shared().action(move |_: ()| cancel_run(video_id.clone(), Some(branch.clone())).map(|r| r.map(|_| ())));
    view! {
        <form class="action" method="post" action=CancelRun::url() on:submit=move |ev| {
            ev.prevent_default();
            cancel.dispatch(());
        }>
            <input type="hidden" name="video_id" value=fields.0/>
            <input type="hidden" name="branch" value=fields.1/>
            <button type="submit" class="danger" data-focus="cancel" disabled=move || cancel.pending().get()>
                {move || if cancel.pending().get() { "Cancelling…" } else { "Cancel run" }}
            </button>
        </form>
    }
}

#[island]
fn BudgetForm(video_id: String, saved: String, spent: String) -> impl IntoView {
    let sh = shared();
    let (video_for_form, shown) = (video_id.clone(), saved.clone());
    let budget = sh.action(move |dollars: String| {
        let saving = set_budget(video_id.clone(), Some(dollars));
        async move {
            let saved = saving.await;
            if saved.is_ok() {
                sh.budget_draft.set(None);
            }
            saved
        }
    });
    let value = move || sh.budget_draft.get().unwrap_or_else(|| saved.clone());
    let submit = value.clone();
    view! {
        <form class="budget" method="post" action=SetBudget::url() on:submit=move |ev| {
            ev.prevent_default();
            budget.dispatch(submit());
        }>
            <input type="hidden" name="video_id" value=video_for_form/>
            <label for="budget-input">"Budget ($)"</label>
            <input id="budget-input" name="dollars" inputmode="decimal" placeholder="no limit" size="8" value=shown
                prop:value=value on:input=move |ev| sh.budget_draft.set(Some(event_target_value(&ev)))/>
            <button type="submit" class="small" data-focus="budget" disabled=move || budget.pending().get()>"Set budget"</button>
            <span class="muted small">{spent}</span>
        </form>
    }
}

#[island]
fn AutoContinue(video_id: String, on: bool) -> impl IntoView {
    let auto = shared().action(move |on: bool| set_auto_continue(video_id.clone(), on));
    view! {
        <div class="checkbox">
            <input id="auto-toggle" type="checkbox" prop:checked=on disabled=move || auto.pending().get()
                on:change=move |ev| { auto.dispatch(event_target_checked(&ev)); }/>
            <label for="auto-toggle">"Auto-continue"</label>
            <span class="muted small">"approve each checkpoint at once and start the next phase"</span>
        </div>
    }
}
