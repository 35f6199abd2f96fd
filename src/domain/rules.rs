//! The one rule table (SPEC §4): for a branch's state and a requested action, what happens or why not.
//!
//! The status view's buttons and `can_continue` are computed here, and every command validates
//! here, so the page can never offer an action the server then refuses.
use serde::{Deserialize, Serialize};
use std::fmt;

use super::ids::{CheckpointId, RunId};
use super::model::{BranchStatus, CheckpointStatus, Phase, RunKind, RunStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadView {
    pub id: CheckpointId,
    pub phase: Phase,
    pub status: CheckpointStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunView {
    pub id: RunId,
    pub from: Option<CheckpointId>,
    pub phase: Phase,
    pub status: RunStatus,
    pub attempt: u32,
    pub kind: RunKind,
}

/// Everything the rules need to know about one branch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BranchView {
    pub head: Option<HeadView>,
    pub active_run: Option<RunView>,
    /// The newest run on this branch that started from the head (from nothing, with no head).
    pub latest_from_head: Option<RunView>,
    /// Runs started from the head on this branch so far (the last one's attempt number).
    pub attempts_from_head: u32,
    /// Of those, how many were retries.
    pub retries_from_head: u32,
    pub spent_micros: i64,
    pub budget_micros: Option<i64>,
    /// What the run a continue or retry would start is estimated to cost (its units not in the
    /// memo, at the provider's price); 0 when unknown.
    pub estimate_micros: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub retry_limit: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { retry_limit: 5 }
    }
}

/// A checkpoint named in a request, already found to belong to this video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GivenCheckpoint {
    pub id: CheckpointId,
    pub status: CheckpointStatus,
}

/// The continue request of the seed document: a checkpoint (none only before phase 1 made one)
/// and `force_retry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContinueRequest {
    pub checkpoint: Option<GivenCheckpoint>,
    pub force_retry: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Queue a run of `phase` from `from`; approve `from` first when `approve`.
    Start { kind: RunKind, phase: Phase, from: Option<CheckpointId>, attempt: u32, approve: bool },
    /// Approve the last phase's checkpoint: the video is complete, no run follows.
    ApproveFinal { checkpoint: CheckpointId },
    /// A run from that checkpoint is already active: here it is (idempotent double clicks).
    AlreadyRunning { run: RunId },
}

impl Decision {
    /// The same decision taken automatically (auto-continue): kind `auto` instead of `continue`.
    pub fn automatic(self) -> Decision {
        match self {
            Decision::Start { kind: RunKind::Continue, phase, from, attempt, approve } => {
                Decision::Start { kind: RunKind::Auto, phase, from, attempt, approve }
            }
            other => other,
        }
    }

    pub fn starts_or_approves(&self) -> bool {
        !matches!(self, Decision::AlreadyRunning { .. })
    }
}

/// Why an action was refused. Expected outcomes, not faults: each has a sentence and a next step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case", try_from = "super::records::RefusalRecord")]
pub enum Refusal {
    AlreadyApproved,
    AlreadyApprovedUseForceRetry,
    RetryNeedsForce,
    RetryLimitReached { limit: u32 },
    BudgetExhausted { spent_micros: i64, budget_micros: i64 },
    OverBudget { estimate_micros: i64, spent_micros: i64, budget_micros: i64 },
    Busy { run: RunId },
    NotBranchHead,
    NotOnBranch,
    NothingToCancel,
    OnlyScriptsAreEditable { phase: Phase },
    NotRegenerable { phase: Phase },
    BeatOutOfRange { beat: u32, beats: u32 },
    BranchNameTaken { name: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AlreadyApproved => f.write_str("Checkpoint already approved"),
            Refusal::AlreadyApprovedUseForceRetry => f.write_str("Checkpoint already approved. To retry, use force_retry=true"),
            Refusal::RetryNeedsForce => f.write_str("The last attempt failed. To retry, use force_retry=true"),
            Refusal::RetryLimitReached { limit } => write!(f, "Retry limit reached ({limit})"),
            Refusal::BudgetExhausted { spent_micros, budget_micros } => {
                write!(f, "The budget is spent: {} of {}", Dollars(*spent_micros), Dollars(*budget_micros))
            }
            Refusal::OverBudget { estimate_micros, spent_micros, budget_micros } => write!(
                f,
                "The next phase is estimated at {}, more than the {} left of the budget",
                Dollars(*estimate_micros),
                Dollars(budget_micros.saturating_sub(*spent_micros))
            ),
            Refusal::Busy { .. } => f.write_str("A run is already active on this branch"),
            Refusal::NotBranchHead => f.write_str("That checkpoint is not the newest one on this branch"),
            Refusal::NotOnBranch => f.write_str("That checkpoint is not on this branch"),
            Refusal::NothingToCancel => f.write_str("Nothing is running on this branch"),
            Refusal::OnlyScriptsAreEditable { phase } => {
                write!(f, "{} checkpoints cannot be edited by hand", phase.label())
            }
            Refusal::NotRegenerable { phase } => write!(f, "{} checkpoints have no beats to regenerate", phase.label()),
            Refusal::BeatOutOfRange { beat, beats } => {
                write!(f, "Beat {} does not exist; this video has {}", u64::from(*beat) + 1, super::words::count(*beats, "beat", "beats"))
            }
            Refusal::BranchNameTaken { name } => write!(f, "A branch named \"{name}\" already exists in this video"),
        }
    }
}

/// Millionths of a dollar as the pages show them ("$0.120").
struct Dollars(i64);

impl fmt::Display for Dollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::words::dollars(self.0))
    }
}

impl Refusal {
    /// What the person can do instead.
    pub fn next_step(&self) -> &'static str {
        match self {
            Refusal::AlreadyApproved => "Continue from the newest checkpoint of the branch, or create a branch from this one.",
            Refusal::AlreadyApprovedUseForceRetry | Refusal::RetryNeedsForce => {
                "Use \"Retry from Last Checkpoint\" to run the failed phase again."
            }
            Refusal::RetryLimitReached { .. } => "Edit the previous phase or create a branch from an earlier checkpoint instead.",
            Refusal::BudgetExhausted { .. } | Refusal::OverBudget { .. } => "Raise the video's budget to run more phases.",
            Refusal::Busy { .. } => "Wait for the running phase to finish, or cancel it.",
            Refusal::NotBranchHead | Refusal::NotOnBranch => "Reload the page to see the branch's newest checkpoint.",
            Refusal::NothingToCancel => "Reload the page to see the latest state.",
            Refusal::OnlyScriptsAreEditable { .. } => "Edit the script, or regenerate one beat.",
            Refusal::NotRegenerable { .. } => "Regenerate beats of a storyboard or clips checkpoint.",
            Refusal::BeatOutOfRange { .. } => "Pick a beat of this video.",
            Refusal::BranchNameTaken { .. } => "Choose another name.",
        }
    }
}

impl std::error::Error for Refusal {}

impl BranchView {
    /// A budget already spent: it refuses any new run, whatever that run would cost.
    fn budget_spent(&self) -> Option<Refusal> {
        self.budget_micros
            .filter(|budget| self.spent_micros >= *budget)
            .map(|budget| Refusal::BudgetExhausted { spent_micros: self.spent_micros, budget_micros: budget })
    }

    fn budget_check(&self) -> Result<(), Refusal> {
        if let Some(spent) = self.budget_spent() {
            return Err(spent);
        }
        match self.budget_micros {
            Some(budget) if self.spent_micros + self.estimate_micros > budget => {
                Err(Refusal::OverBudget { estimate_micros: self.estimate_micros, spent_micros: self.spent_micros, budget_micros: budget })
            }
            _ => Ok(()),
        }
    }

    fn retry(&self, phase: Phase, from: Option<CheckpointId>, limits: Limits) -> Result<Decision, Refusal> {
        if self.retries_from_head >= limits.retry_limit {
            return Err(Refusal::RetryLimitReached { limit: limits.retry_limit });
        }
        self.budget_check()?;
        Ok(Decision::Start { kind: RunKind::Retry, phase, from, attempt: self.attempts_from_head + 1, approve: false })
    }

    fn blocked_by_active_run(&self) -> Result<(), Refusal> {
        match self.active_run {
            Some(run) => Err(Refusal::Busy { run: run.id }),
            None => Ok(()),
        }
    }
}

/// The rule table of SPEC §4.
pub fn decide(view: &BranchView, request: ContinueRequest, limits: Limits) -> Result<Decision, Refusal> {
    let given = request.checkpoint;
    if let Some(active) = view.active_run {
        return while_running(active, given);
    }
    let Some(head) = view.head else {
        // Phase 1 has made no checkpoint on this branch yet.
        if given.is_some() {
            return Err(Refusal::NotOnBranch);
        }
        return view.start_or_retry(RunKind::Initial, Phase::Script, None, request.force_retry, limits, Refusal::RetryNeedsForce);
    };
    match given {
        Some(g) if g.id == head.id => at_head(view, head, request.force_retry, limits),
        Some(g) if g.status == CheckpointStatus::Approved => Err(Refusal::AlreadyApproved),
        _ => Err(Refusal::NotBranchHead),
    }
}

/// A branch with a run queued or running: the same request again gets that run (idempotent).
fn while_running(active: RunView, given: Option<GivenCheckpoint>) -> Result<Decision, Refusal> {
    match given {
        g if g.map(|g| g.id) == active.from => Ok(Decision::AlreadyRunning { run: active.id }),
        // Row 7: another approved checkpoint is refused as approved, running or not.
        Some(g) if g.status == CheckpointStatus::Approved => Err(Refusal::AlreadyApproved),
        _ => Err(Refusal::Busy { run: active.id }),
    }
}

/// The request names the branch's head: approve it and go on, or retry what failed after it.
fn at_head(view: &BranchView, head: HeadView, force_retry: bool, limits: Limits) -> Result<Decision, Refusal> {
    match (head.status, head.phase.next()) {
        (CheckpointStatus::Pending, None) => Ok(Decision::ApproveFinal { checkpoint: head.id }),
        (CheckpointStatus::Approved, None) => Err(Refusal::AlreadyApproved),
        (CheckpointStatus::Pending, Some(next)) => {
            view.budget_check()?;
            let attempt = view.attempts_from_head + 1;
            Ok(Decision::Start { kind: RunKind::Continue, phase: next, from: Some(head.id), attempt, approve: true })
        }
        (CheckpointStatus::Approved, Some(next)) => {
            view.start_or_retry(RunKind::Continue, next, Some(head.id), force_retry, limits, Refusal::AlreadyApprovedUseForceRetry)
        }
    }
}

impl BranchView {
    /// Nothing pending to approve: the first run from here, a retry of the one that failed (only
    /// when forced, else `needs_force`), or a refusal when a run from here already succeeded.
    fn start_or_retry(
        &self,
        kind: RunKind,
        phase: Phase,
        from: Option<CheckpointId>,
        force_retry: bool,
        limits: Limits,
        needs_force: Refusal,
    ) -> Result<Decision, Refusal> {
        match self.latest_from_head {
            None => {
                self.budget_check()?;
                Ok(Decision::Start { kind, phase, from, attempt: 1, approve: false })
            }
            Some(run) if run.status.is_failure() => {
                if force_retry {
                    self.retry(phase, from, limits)
                } else {
                    Err(needs_force)
                }
            }
            Some(_) => Err(Refusal::AlreadyApproved),
        }
    }
}

/// Editing a checkpoint's artifacts: only scripts, only on this branch's line, only when idle.
pub fn decide_edit(view: &BranchView, phase: Phase, on_branch_line: bool) -> Result<(), Refusal> {
    view.blocked_by_active_run()?;
    if !on_branch_line {
        return Err(Refusal::NotOnBranch);
    }
    if phase != Phase::Script {
        return Err(Refusal::OnlyScriptsAreEditable { phase });
    }
    Ok(())
}

/// Regenerating one beat of a storyboard or clips checkpoint.
pub fn decide_regenerate(view: &BranchView, phase: Phase, on_branch_line: bool, beat: u32, beats: u32) -> Result<(), Refusal> {
    view.blocked_by_active_run()?;
    if !on_branch_line {
        return Err(Refusal::NotOnBranch);
    }
    if !matches!(phase, Phase::Storyboard | Phase::Clips) {
        return Err(Refusal::NotRegenerable { phase });
    }
    if beat >= beats {
        return Err(Refusal::BeatOutOfRange { beat, beats });
    }
    view.budget_check()
}

pub fn decide_cancel(view: &BranchView) -> Result<RunId, Refusal> {
    view.active_run.map(|r| r.id).ok_or(Refusal::NothingToCancel)
}

/// The branch's status word (SPEC §3).
pub fn branch_status(view: &BranchView) -> BranchStatus {
    if view.active_run.is_some() {
        return BranchStatus::Processing;
    }
    match view.head {
        Some(head) if head.status == CheckpointStatus::Pending => BranchStatus::AwaitingApproval,
        Some(head) if head.phase == Phase::Render => BranchStatus::Completed,
        _ => match view.latest_from_head {
            Some(run) if run.status.is_failure() => BranchStatus::Failed,
            _ => BranchStatus::AwaitingApproval,
        },
    }
}

/// What the status page may offer on a branch, each with the refusal that explains a missing button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedActions {
    pub can_continue: bool,
    pub can_retry: bool,
    /// Set when a retry is what the branch needs but the rules refuse it (limit, budget).
    pub retry_refused: Option<Refusal>,
    /// Set when continuing is what the branch needs but the budget forbids it.
    pub continue_refused: Option<Refusal>,
    /// "Retry #n of limit": n is the retry this button would make.
    pub next_retry_number: u32,
    pub retry_limit: u32,
    pub can_edit: bool,
    pub can_cancel: bool,
    /// Set when nothing runs but a beat's Regenerate would be refused (the budget): the page
    /// shows why instead of buttons that fail.
    #[serde(default)]
    pub regenerate_refused: Option<Refusal>,
}

pub fn allowed_actions(view: &BranchView, limits: Limits) -> AllowedActions {
    let head_request =
        |force_retry| ContinueRequest { checkpoint: view.head.map(|h| GivenCheckpoint { id: h.id, status: h.status }), force_retry };
    let proceed = decide(view, head_request(false), limits);
    let can_continue = matches!(proceed, Ok(d) if d.starts_or_approves());
    let continue_refused = match proceed {
        Err(refusal @ (Refusal::BudgetExhausted { .. } | Refusal::OverBudget { .. })) => Some(refusal),
        _ => None,
    };
    let retry = decide(view, head_request(true), limits);
    let can_retry = matches!(retry, Ok(Decision::Start { kind: RunKind::Retry, .. }));
    let needs_retry = view.active_run.is_none() && view.latest_from_head.is_some_and(|r| r.status.is_failure());
    let retry_refused = match retry {
        Err(refusal) if needs_retry => Some(refusal),
        _ => None,
    };
    AllowedActions {
        can_continue,
        can_retry,
        retry_refused,
        continue_refused,
        next_retry_number: view.retries_from_head + 1,
        retry_limit: limits.retry_limit,
        can_edit: view.active_run.is_none(),
        can_cancel: view.active_run.is_some(),
        // A spent budget refuses any regeneration; whether one beat's cost fits what is left the
        // engine checks against that beat's own estimate (this view's is the next phase's).
        regenerate_refused: view.active_run.is_none().then(|| view.budget_spent()).flatten(),
    }
}

#[cfg(test)]
mod tests;
