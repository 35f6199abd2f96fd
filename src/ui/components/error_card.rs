//! The error card of a failed branch: what failed, in words, and the one-click retry.
use leptos::prelude::*;

use crate::api::{ErrorWire, VideoStatusWire, dollars};
use crate::domain::{BranchStatus, Phase};
use crate::ui::components::editor::EditButton;
use crate::ui::components::timeline::ContinueButton;

#[component]
pub fn ErrorCard(s: VideoStatusWire, e: ErrorWire) -> impl IntoView {
    if e.regenerating {
        return view! { <RegenerationFailed e/> }.into_any();
    }
    let allowed = s.allowed.clone();
    let failed = s.status == BranchStatus::Failed;
    let (enabled, refused) =
        (if failed { allowed.can_retry } else { allowed.can_continue }, allowed.retry_refused.clone().filter(|_| failed));
    let heading =
        if failed { format!("The {} phase failed", e.phase.label().to_lowercase()) } else { "The last attempt failed".to_string() };
    view! {
        <section class="card error-card" role="alert" aria-labelledby="error-heading">
            <h2 id="error-heading">{heading}</h2>
            <p class="error-text">{e.message.clone()}</p>
            <p class="muted">{where_(&e)}</p>
            {e.also.clone().map(|g| view! { <p class="also-failed">{also_failed(&g)}</p> })}
            {(!failed).then(|| view! {
                <p>"You saved a new version; retrying continues from it."</p>
            })}
            {refused.map(|r| view! {
                <p class="refusal"><strong>{format!("{r}.")}</strong> " " {r.next_step()}</p>
            })}
            {(failed && enabled).then(|| view! {
                <p class="muted estimate">{format!(
                    "Only the units that failed run again; finished ones are reused at no cost. Estimated cost: {}.",
                    dollars(s.estimate_micros)
                )}</p>
            })}
            <RetryActions s enabled/>
        </section>
    }
    .into_any()
}

/// Where it failed: phase, beat, attempt.
fn where_(e: &ErrorWire) -> String {
    match e.beat {
        Some(b) => format!("Phase {} · {} · beat {} · attempt {}", e.phase.number(), e.phase.label(), b + 1, e.attempt),
        None => format!("Phase {} · {} · attempt {}", e.phase.number(), e.phase.label(), e.attempt),
    }
}

/// A beat made again after the branch failed, that failed too: said beside the branch's failure.
fn also_failed(g: &ErrorWire) -> String {
    let beat = g.beat.map(|b| format!(" beat {}", b + 1)).unwrap_or_default();
    format!("Making{beat} of the {} again failed too, and {}: {}", g.phase.label().to_lowercase(), unchanged(g.phase), g.message)
}

/// "the storyboard is unchanged", "the clips are unchanged".
fn unchanged(phase: Phase) -> String {
    let name = phase.label().to_lowercase();
    let verb = if name.ends_with('s') { "are" } else { "is" };
    format!("the {name} {verb} unchanged")
}

/// A beat made again that failed: what it was made from is unchanged, so there is nothing to
/// retry from here (the beat's own button makes it again).
#[component]
fn RegenerationFailed(e: ErrorWire) -> impl IntoView {
    let beat = e.beat.map(|b| format!(" beat {}", b + 1)).unwrap_or_default();
    view! {
        <section class="card error-card" role="alert" aria-labelledby="error-heading">
            <h2 id="error-heading">{format!("Making{beat} of the {} again failed", e.phase.label().to_lowercase())}</h2>
            <p class="error-text">{e.message.clone()}</p>
            <p class="muted">{where_(&e)}</p>
            <p>{format!(
                "{}. Make the beat again with its Regenerate button, or go on with it as it is.",
                capitalised(&unchanged(e.phase))
            )}</p>
        </section>
    }
}

/// The one-click retry (after an edit: continue from the new version) and the way to the editor.
#[component]
fn RetryActions(s: VideoStatusWire, enabled: bool) -> impl IntoView {
    let head = s.active_branches.iter().find(|b| b.branch_name == s.branch).and_then(|b| b.latest_checkpoint_id.clone());
    // After an edit the branch waits on the new version; the card then continues from it.
    let force_retry = s.status == BranchStatus::Failed;
    let can_edit = s.allowed.can_edit && s.artifacts.script_checkpoint.is_some();
    view! {
        <div class="actions">
            <ContinueButton video_id=s.video_id.clone() branch=s.branch.clone() checkpoint=head force_retry
                label=s.retry_label.clone() busy="Retrying…".into() enabled/>
            {can_edit.then(|| view! { <EditButton label="Edit Previous Phase".into() small=false/> })}
        </div>
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regeneration_that_failed_after_the_branch_is_said_in_a_sentence() {
        let g = ErrorWire {
            message: "OpenAI: HTTP 503: Service Unavailable".into(),
            phase: Phase::Storyboard,
            beat: Some(1),
            run_id: "r".into(),
            attempt: 1,
            regenerating: true,
            also: None,
        };
        assert_eq!(
            also_failed(&g),
            "Making beat 2 of the storyboard again failed too, and the storyboard is unchanged: OpenAI: HTTP 503: Service Unavailable"
        );
        let clips = ErrorWire { phase: Phase::Clips, beat: Some(0), ..g };
        assert!(also_failed(&clips).starts_with("Making beat 1 of the clips again failed too, and the clips are unchanged: "));
        assert_eq!(capitalised(&unchanged(Phase::Clips)), "The clips are unchanged");
    }
}
