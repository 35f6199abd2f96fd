//! The Attempts table: one row per run on the branch, with what it cost.
use leptos::prelude::*;

use crate::api::{VideoStatusWire, dollars};
use crate::domain::RunKind;
use crate::domain::video::ATTEMPTS_PAGE;
use crate::domain::words::count;
use crate::ui::components::pager::Pager;
use crate::ui::duration;
use crate::ui::pages::status::page_href;

#[component]
pub fn Attempts(s: VideoStatusWire) -> impl IntoView {
    let (video_id, branch, tree_page) = (s.video_id.clone(), s.branch.clone(), s.tree_page);
    let rows = s
        .runs
        .iter()
        .map(|r| {
            let attempt =
                if r.kind == RunKind::Retry { format!("{} (Retry #{})", r.attempt, r.attempt - 1) } else { r.attempt.to_string() };
            let work = format!(
                "{} made · {} reused{}{}",
                r.calls,
                r.memo_hits,
                if r.narrations > 0 { format!(" (incl. {})", count(r.narrations, "narration", "narrations")) } else { String::new() },
                if r.failed_tries > 0 { format!(" · {}", count(r.failed_tries, "failed try", "failed tries")) } else { String::new() }
            );
            view! {
                <tr class=format!("run-{}", r.status)>
                    <td>{format!("{} {}", r.phase.number(), r.phase.label())}</td>
                    <td>{attempt}</td>
                    <td>{r.kind.wire()}</td>
                    <td><span class=format!("chip {}", r.status)>{r.status.wire()}</span></td>
                    <td>{duration(r.started_at, r.finished_at)}</td>
                    <td class="muted small units">{work}</td>
                    <td class="num">{dollars(r.cost_micros)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card attempts">
            <table>
                <caption>"Attempts"</caption>
                <thead>
                    <tr><th scope="col">"Phase"</th><th scope="col">"Attempt"</th><th scope="col">"Kind"</th><th scope="col">"Status"</th><th scope="col">"Duration"</th><th scope="col">"Units"</th><th scope="col" class="num">"Cost"</th></tr>
                </thead>
                <tbody>{rows}</tbody>
                <tfoot>
                    <tr><th scope="row" colspan="6">{format!("Total on {} (video: {})", s.branch, dollars(s.total_cost_micros))}</th><td class="num">{dollars(s.branch_cost_micros)}</td></tr>
                </tfoot>
            </table>
            <Pager what="attempts" page=s.attempts_page size=ATTEMPTS_PAGE total=s.runs_total href=move |n| page_href(&video_id, &branch, tree_page, n)/>
        </section>
    }
}
