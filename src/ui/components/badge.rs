//! The status badge: the status word in its colour.
use leptos::prelude::*;

use crate::domain::BranchStatus;

#[component]
pub fn StatusBadge(status: BranchStatus, #[prop(optional)] testid: bool) -> impl IntoView {
    let class = format!("badge badge-{}", status.wire());
    view! { <span class=class data-testid=testid.then_some("video-status")>{status.words()}</span> }
}
