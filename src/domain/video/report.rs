//! The read model's projection: what the status page shows for one branch, and everything it
//! decides (status word, current phase, error card, progress, allowed actions, retry label).
use serde::{Deserialize, Serialize};

use super::{Branch, Checkpoint, Run, UnitTry, Video};
use crate::domain::ids::RunId;
use crate::domain::manifest::Manifest;
use crate::domain::model::{BranchStatus, CheckpointStatus, Phase, RunStatus, TryOutcome};
use crate::domain::rules::{AllowedActions, BranchView, Limits, allowed_actions, branch_status};
use crate::domain::validate::BranchName;

/// The status page asked for a branch the video does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no branch named \"{0}\"")]
pub struct NoSuchBranch(pub String);

/// The failure the error card shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCard {
    pub run: RunId,
    pub message: String,
    pub phase: Phase,
    pub beat: Option<u32>,
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    Waiting,
    Running,
    Retrying,
    Done,
    Reused,
    Failed,
}

/// The units of the run whose progress the page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub run: RunId,
    pub phase: Phase,
    pub units: Vec<UnitState>,
    pub units_done: u32,
    pub units_total: u32,
}

/// Provider calls, memo hits and failed tries of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTally {
    pub calls: u32,
    pub memo_hits: u32,
    pub failed_tries: u32,
    /// Of the units made or reused, how many are narrations (storyboard runs only).
    pub narrations: u32,
}

/// One branch of the video as the branch list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct BranchLine<'a> {
    pub branch: &'a Branch,
    pub head: Option<&'a Checkpoint>,
    pub status: BranchStatus,
    pub can_continue: bool,
}

/// Everything the status page shows for one branch.
#[derive(Clone, Debug, PartialEq)]
pub struct BranchReport<'a> {
    pub branch: &'a Branch,
    pub status: BranchStatus,
    pub current_phase: Option<Phase>,
    pub error: Option<ErrorCard>,
    /// The head, while it waits for approval.
    pub pending: Option<&'a Checkpoint>,
    /// The branch's runs, oldest first, each with its tally.
    pub runs: Vec<(&'a Run, RunTally)>,
    pub allowed: AllowedActions,
    /// The error card's button: "Retry from Last Checkpoint (Retry #n of m)".
    pub retry_label: String,
    pub progress: Option<Progress>,
    /// The checkpoints from the head back to phase 1.
    pub line: Vec<&'a Checkpoint>,
    pub branches: Vec<BranchLine<'a>>,
    pub spent_micros: i64,
    /// What the next continue or retry is estimated to cost (memo hits at $0).
    pub estimate_micros: i64,
}

/// The status page of one branch (`main` when none is named).
pub fn branch_report<'a>(video: &'a Video, tries: &[UnitTry], branch: &str, limits: Limits) -> Result<BranchReport<'a>, NoSuchBranch> {
    let name = Some(branch).filter(|b| !b.is_empty()).unwrap_or(BranchName::MAIN);
    let branch = video.branch_named(name).ok_or_else(|| NoSuchBranch(name.to_string()))?;
    let view = video.branch_view(branch);
    let status = branch_status(&view);
    let head = video.head_of(branch);
    let mut runs: Vec<&Run> = video.runs.iter().filter(|r| r.branch_id == branch.id).collect();
    let latest = runs.iter().max_by_key(|r| (r.created_at, r.attempt)).copied();
    let progress = view
        .active_run
        .and_then(|a| video.run(a.id))
        .or(latest.filter(|r| r.status.is_failure() && status == BranchStatus::Failed))
        .map(|r| progress(r, tries));
    runs.sort_by_key(|r| r.created_at);
    let pending = head.filter(|h| h.status == CheckpointStatus::Pending);
    let allowed = allowed_actions(&view, limits);
    Ok(BranchReport {
        branch,
        status,
        current_phase: current_phase(&view, status, head),
        error: error_card(video, &view, status, latest),
        pending,
        runs: runs.into_iter().map(|r| (r, tally(r, tries, first_narration_unit(video, r)))).collect(),
        retry_label: retry_label(status, &allowed, pending),
        allowed,
        progress,
        line: video.line_of(branch),
        branches: branch_lines(video, limits),
        spent_micros: video.spent_micros(),
        estimate_micros: view.estimate_micros,
    })
}

/// The failure the error card shows: the branch's failed run, or, while a pending edit follows
/// a failure, the latest failed run (so the person sees what happened).
fn error_card(video: &Video, view: &BranchView, status: BranchStatus, latest: Option<&Run>) -> Option<ErrorCard> {
    match (status, view.latest_from_head.and_then(|v| video.run(v.id))) {
        (BranchStatus::Failed, Some(r)) => Some(error_of(r)),
        (BranchStatus::AwaitingApproval, _) => latest.filter(|r| r.status.is_failure()).map(error_of),
        _ => None,
    }
}

fn error_of(r: &Run) -> ErrorCard {
    ErrorCard {
        run: r.id,
        message: r.error.clone().unwrap_or_else(|| "The phase failed".into()),
        phase: r.phase,
        beat: r.failed_beat(),
        attempt: r.attempt,
    }
}

fn current_phase(view: &BranchView, status: BranchStatus, head: Option<&Checkpoint>) -> Option<Phase> {
    match view.active_run {
        Some(r) => Some(r.phase),
        None => match (status, view.latest_from_head) {
            (BranchStatus::Failed, Some(r)) => Some(r.phase),
            _ => head.map(|h| h.phase),
        },
    }
}

/// A failed branch retries its phase; after an edit, retrying continues from the new version.
fn retry_label(status: BranchStatus, allowed: &AllowedActions, pending: Option<&Checkpoint>) -> String {
    if status == BranchStatus::Failed {
        format!("Retry from Last Checkpoint (Retry #{} of {})", allowed.next_retry_number, allowed.retry_limit)
    } else {
        let version = pending.map(|c| format!(" ({} v{})", c.phase.label(), c.version)).unwrap_or_default();
        format!("Retry from Last Checkpoint{version}")
    }
}

fn tally(r: &Run, tries: &[UnitTry], first_narration: Option<u32>) -> RunTally {
    let mut t = RunTally::default();
    for attempt in tries.iter().filter(|t| t.run_id == r.id) {
        match attempt.outcome {
            TryOutcome::Ok => t.calls += 1,
            TryOutcome::Memo => t.memo_hits += 1,
            TryOutcome::Transient | TryOutcome::Permanent | TryOutcome::Cancelled => t.failed_tries += 1,
        }
        if matches!(attempt.outcome, TryOutcome::Ok | TryOutcome::Memo) && first_narration.is_some_and(|n| attempt.unit >= n) {
            t.narrations += 1;
        }
    }
    t
}

/// A storyboard run's units are its script's stills, then the narrations: the first narration's unit.
fn first_narration_unit(video: &Video, r: &Run) -> Option<u32> {
    let script = r.from_checkpoint.and_then(|id| video.checkpoint(id)).and_then(|c| c.manifest.script())?;
    (r.phase == Phase::Storyboard).then_some(script.beats.len() as u32)
}

fn progress(r: &Run, tries: &[UnitTry]) -> Progress {
    let mut units = vec![if r.status == RunStatus::Queued { UnitState::Waiting } else { UnitState::Running }; r.units_total as usize];
    let failed_run = r.status.is_failure();
    for (i, unit) in units.iter_mut().enumerate() {
        let mine: Vec<&UnitTry> = tries.iter().filter(|t| t.run_id == r.id && t.unit as usize == i).collect();
        *unit = if mine.iter().any(|t| t.outcome == TryOutcome::Ok) {
            UnitState::Done
        } else if mine.iter().any(|t| t.outcome == TryOutcome::Memo) {
            UnitState::Reused
        } else if failed_run && (!mine.is_empty() || r.failed_unit == Some(i as u32)) {
            UnitState::Failed
        } else if !mine.is_empty() {
            UnitState::Retrying
        } else if failed_run {
            UnitState::Waiting
        } else {
            *unit
        };
    }
    Progress { run: r.id, phase: r.phase, units, units_done: r.units_done, units_total: r.units_total }
}

fn branch_lines(video: &Video, limits: Limits) -> Vec<BranchLine<'_>> {
    video
        .branches
        .iter()
        .map(|b| {
            let view = video.branch_view(b);
            BranchLine {
                branch: b,
                head: video.head_of(b),
                status: branch_status(&view),
                can_continue: allowed_actions(&view, limits).can_continue,
            }
        })
        .collect()
}

/// One video as the list of videos shows it, from its `main` branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub status: BranchStatus,
    pub current_phase: Option<Phase>,
    pub poster_url: Option<String>,
    pub spent_micros: i64,
}

pub fn summary(video: &Video) -> Summary {
    let main = video.branch_named(BranchName::MAIN);
    let status = main.map(|b| branch_status(&video.branch_view(b))).unwrap_or(BranchStatus::Processing);
    let head = main.and_then(|b| video.head_of(b));
    let poster_url = main.and_then(|b| {
        video.line_of(b).iter().find_map(|c| match &c.manifest {
            Manifest::Render { poster, .. } => Some(poster.url(video.video.id)),
            Manifest::Storyboard { frames, .. } => frames.first().map(|f| f.url(video.video.id)),
            _ => None,
        })
    });
    let current_phase = main.and_then(|b| video.runs.iter().rev().find(|r| r.branch_id == b.id).map(|r| r.phase)).or(head.map(|h| h.phase));
    Summary { status, current_phase, poster_url, spent_micros: video.spent_micros() }
}
