//! The Attempts table: one row per run on the branch, with what it cost.
use leptos::prelude::*;

use crate::api::{VideoStatusWire, dollars};
use crate::domain::RunKind;
use crate::ui::duration;

#[component]
pub fn Attempts(s: VideoStatusWire) -> impl IntoView {
    let branch_total: i64 = s.runs.iter().map(|r| r.cost_micros).sum();
    let rows = s
        .runs
        .iter()
        .rev()
        .map(|r| {
            let attempt =
                if r.kind == RunKind::Retry { format!("{} (Retry #{})", r.attempt, r.attempt - 1) } else { r.attempt.to_string() };
            let work = format!(
                "{} made · {} reused{}{}",
                r.calls,
                r.memo_hits,
                if r.narrations > 0 { format!(" (incl. {} narrations)", r.narrations) } else { String::new() },
                if r.failed_tries > 0 { format!(" · {} failed tries", r.failed_tries) } else { String::new() }
            );
            view! {
                <tr class=format!("run-{}", r.status)>
                    <td>{format!("{} {}", r.phase.number(), r.phase.label())}</td>
                    <td>{attempt}</td>
                    <td>{r.kind.wire()}</td>
                    <td><span class=format!("chip {}", r.status)>{r.status.wire()}</span></td>
                    <td>{duration(r.started_at, r.finished_at)}</td>
                    <td class="muted small">{work}</td>
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
                    <tr><th scope="row" colspan="6">{format!("Total on {} (video: {})", s.branch, dollars(s.total_cost_micros))}</th><td class="num">{dollars(branch_total)}</td></tr>
                </tfoot>
            </table>
        </section>
    }
}
