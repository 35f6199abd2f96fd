//! The status badge: the status word in its colour.
use leptos::prelude::*;

use crate::domain::BranchStatus;

#[component]
pub fn StatusBadge(status: BranchStatus, #[prop(optional)] testid: bool) -> impl IntoView {
    let class = format!("badge badge-{}", status.wire());
    if testid {
        view! { <span class=class data-testid="video-status">{status.words()}</span> }.into_any()
    } else {
        view! { <span class=class>{status.words()}</span> }.into_any()
    }
}
