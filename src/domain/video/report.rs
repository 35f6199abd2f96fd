//! The read model's projection: what the status page shows for one branch, and everything it
//! decides (status word, current phase, error card, progress, allowed actions, retry label).
use serde::{Deserialize, Serialize};

use super::{Branch, Checkpoint, Run, UnitTry, Video};
use crate::domain::ids::RunId;
use crate::domain::manifest::Manifest;
use crate::domain::model::{BranchStatus, CheckpointStatus, Origin, Phase, RunStatus, TryOutcome};
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
    /// A failed regeneration of `beat`: the version it was made from is unchanged, and the
    /// card offers no retry (the beat's own button makes it again).
    pub regenerating: bool,
    /// On a failed branch, a beat made again after that failure that failed too: the card shows
    /// the branch's failure and its retry, and says this one beside it.
    pub also: Option<Box<ErrorCard>>,
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

/// How many checkpoints one page of the tree shows (with the versions they came from).
pub const TREE_PAGE: u32 = 100;
/// How many runs one page of the Attempts table shows.
pub const ATTEMPTS_PAGE: u32 = 50;
/// How many videos one page of the list shows.
pub const VIDEOS_PAGE: u32 = 48;

/// Which page of the tree and of the Attempts table a status page shows (0 = the newest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pages {
    pub tree: u32,
    pub attempts: u32,
}

/// What the status page of one branch reads: a bounded slice of the video, however long its
/// history (see `storage::slices`).
#[derive(Clone, Debug)]
pub struct StatusSlice {
    /// The video as the rules see it: every branch, the checkpoints on their lines, the runs the
    /// rules ask about, and the estimates.
    pub state: Video,
    /// The branch the page shows.
    pub branch: String,
    pub pages: Pages,
    /// One page of the checkpoint tree, oldest first, and how many checkpoints there are.
    pub tree: Vec<Checkpoint>,
    pub tree_total: u32,
    /// One page of the branch's runs, newest first, with their tallies; how many runs the
    /// branch has, and what they cost.
    pub attempts: Vec<(Run, RunTally)>,
    pub attempts_total: u32,
    pub branch_spent_micros: i64,
    /// The tries of the run whose progress the page shows (see `progress_run`).
    pub progress_tries: Vec<UnitTry>,
}

/// The branch a page names (`main` when none is named).
pub fn named_branch<'a>(video: &'a Video, branch: &str) -> Result<&'a Branch, NoSuchBranch> {
    let name = Some(branch).filter(|b| !b.is_empty()).unwrap_or(BranchName::MAIN);
    video.branch_named(name).ok_or_else(|| NoSuchBranch(name.to_string()))
}

/// The branch's newest run.
fn latest_run<'a>(video: &'a Video, branch: &Branch) -> Option<&'a Run> {
    video.runs.iter().filter(|r| r.branch_id == branch.id).max_by_key(|r| (r.created_at, r.attempt))
}

/// The run whose units the progress bar shows: the active one, or the failed one a failed
/// branch would retry.
pub fn progress_run<'a>(video: &'a Video, branch: &Branch) -> Option<&'a Run> {
    let view = video.branch_view(branch);
    let failed = branch_status(&view) == BranchStatus::Failed;
    view.active_run.and_then(|a| video.run(a.id)).or(latest_run(video, branch).filter(|r| r.status.is_failure() && failed))
}

/// The status page of one branch (`main` when none is named). `tries` holds (at least) the
/// tries of its `progress_run`.
pub fn branch_report<'a>(video: &'a Video, tries: &[UnitTry], branch: &str, limits: Limits) -> Result<BranchReport<'a>, NoSuchBranch> {
    let branch = named_branch(video, branch)?;
    let view = video.branch_view(branch);
    let status = branch_status(&view);
    let head = video.head_of(branch);
    let pending = head.filter(|h| h.status == CheckpointStatus::Pending);
    let allowed = allowed_actions(&view, limits);
    Ok(BranchReport {
        branch,
        status,
        current_phase: current_phase(&view, status, head),
        error: error_card(video, &view, status, head, latest_run(video, branch)),
        pending,
        retry_label: retry_label(status, &allowed, pending),
        allowed,
        progress: progress_run(video, branch).map(|r| progress(r, tries)),
        line: video.line_of(branch),
        branches: branch_lines(video, limits),
        spent_micros: video.spent_micros(),
        estimate_micros: view.estimate_micros,
    })
}

/// The failure the error card shows: the branch's failed run; while an edit made after a
/// failure waits for approval, that failure (so the person sees what happened); and a failed
/// regeneration that is the branch's latest run, on a branch that is not failed (a completed
/// video's beat made again and failed said nothing). A failed branch shows its own failure
/// and retry, and a regeneration that failed after it beside them (it said nothing of it).
fn error_card(
    video: &Video,
    view: &BranchView,
    status: BranchStatus,
    head: Option<&Checkpoint>,
    latest: Option<&Run>,
) -> Option<ErrorCard> {
    let latest_failed = latest.filter(|r| r.status.is_failure());
    match (status, view.latest_from_head.and_then(|v| video.run(v.id))) {
        (BranchStatus::Failed, Some(r)) => {
            let also = latest_failed.filter(|l| l.regenerate.is_some() && l.status == RunStatus::Failed).map(|l| Box::new(error_of(l)));
            Some(ErrorCard { also, ..error_of(r) })
        }
        (BranchStatus::Processing, _) => None,
        _ => match latest_failed {
            Some(r) if r.regenerate.is_some() => (r.status == RunStatus::Failed).then(|| error_of(r)),
            // A run from another checkpoint than the head started before the head existed: the
            // edit came after the failure (no clocks compared: they may be two machines').
            Some(r)
                if status == BranchStatus::AwaitingApproval
                    && head.is_some_and(|h| h.origin == Origin::Edited && r.from_checkpoint != Some(h.id)) =>
            {
                Some(error_of(r))
            }
            _ => None,
        },
    }
}

fn error_of(r: &Run) -> ErrorCard {
    ErrorCard {
        run: r.id,
        message: r.error.clone().unwrap_or_else(|| "The phase failed".into()),
        phase: r.phase,
        beat: r.regenerate.as_ref().map(|g| g.beat).or(r.failed_beat()),
        attempt: r.attempt,
        regenerating: r.regenerate.is_some(),
        also: None,
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
    if status == BranchStatus::Failed && allowed.next_retry_number > allowed.retry_limit {
        match allowed.retry_limit {
            0 => "Retry from Last Checkpoint (no retries allowed)".to_string(),
            1 => "Retry from Last Checkpoint (its one retry used)".to_string(),
            n => format!("Retry from Last Checkpoint (all {n} retries used)"),
        }
    } else if status == BranchStatus::Failed {
        format!("Retry from Last Checkpoint (Retry #{} of {})", allowed.next_retry_number, allowed.retry_limit)
    } else {
        let version = pending.map(|c| format!(" ({} v{})", c.phase.label(), c.version)).unwrap_or_default();
        format!("Retry from Last Checkpoint{version}")
    }
}

fn progress(r: &Run, tries: &[UnitTry]) -> Progress {
    let mut per_unit: Vec<Vec<TryOutcome>> = vec![Vec::new(); r.units_total as usize];
    for t in tries.iter().filter(|t| t.run_id == r.id) {
        if let Some(unit) = per_unit.get_mut(t.unit as usize) {
            unit.push(t.outcome);
        }
    }
    let units = per_unit.iter().enumerate().map(|(i, mine)| unit_state(r, i as u32, mine)).collect();
    Progress { run: r.id, phase: r.phase, units, units_done: r.units_done, units_total: r.units_total }
}

fn unit_state(r: &Run, unit: u32, mine: &[TryOutcome]) -> UnitState {
    let failed_run = r.status.is_failure();
    if mine.contains(&TryOutcome::Ok) {
        UnitState::Done
    } else if mine.contains(&TryOutcome::Memo) {
        UnitState::Reused
    } else if failed_run && (!mine.is_empty() || r.failed_unit == Some(unit)) {
        UnitState::Failed
    } else if !mine.is_empty() {
        UnitState::Retrying
    } else if failed_run || r.status == RunStatus::Queued {
        UnitState::Waiting
    } else {
        UnitState::Running
    }
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
