//! "Newer" and "Older" links under a list that shows one page at a time; plain links, so they
//! work before the page hydrates and the browser's back button undoes them.
use leptos::prelude::*;

/// `page` is 0 for the newest; `href(n)` is the address of page `n`.
#[component]
pub fn Pager(
    /// What the list holds, plural: "checkpoints", "attempts", "videos".
    what: &'static str,
    page: u32,
    size: u32,
    total: u32,
    href: impl Fn(u32) -> String,
) -> impl IntoView {
    let first = page.saturating_mul(size);
    let last = first.saturating_add(size).min(total);
    let shown = if first < total {
        format!("Showing {} to {last} of {total} {what}, newest first", first + 1)
    } else {
        format!("No {what} on this page ({total} in all)")
    };
    (total > size || page > 0).then(|| {
        view! {
            <nav class="pager" aria-label=format!("Pages of {what}")>
                <span class="muted small">{shown}</span>
                {(page > 0).then(|| view! { <a href=href((page - 1).min(total.saturating_sub(1) / size.max(1))) rel="prev">{format!("Newer {what}")}</a> })}
                {(last < total).then(|| view! { <a href=href(page + 1) rel="next">{format!("Older {what}")}</a> })}
            </nav>
        }
    })
}
