//! One video as the domain sees it: its settings, branches, checkpoints, runs and unit tries, and
//! the questions the rules ask of them (a branch's view, its line, the next version).
use super::fault::FaultPlan;
use super::ids::{AccountId, BranchId, CheckpointId, RunId, VideoId};
use super::manifest::Manifest;
use super::model::{CheckpointStatus, Origin, Phase, RunKind, RunStatus, Timestamp, TryOutcome};
use super::rules::{BranchView, HeadView, RunView};

mod report;

pub use report::{
    ATTEMPTS_PAGE, BranchLine, BranchReport, ErrorCard, NoSuchBranch, Pages, Progress, RunTally, StatusSlice, Summary, TREE_PAGE,
    UnitState, VIDEOS_PAGE, branch_report, named_branch, progress_run, summary,
};

/// The video's own settings and its change counter.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    pub id: VideoId,
    /// The account that made the video; only it sees or changes the video.
    pub owner: AccountId,
    pub prompt: String,
    pub title: String,
    pub beats: u32,
    pub seed: u64,
    pub auto_continue: bool,
    pub fault_plan: FaultPlan,
    pub budget_micros: Option<i64>,
    pub created_at: Timestamp,
    /// Counts every committed change of the video (see `storage::touch_video`).
    pub changes: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Branch {
    pub id: BranchId,
    pub video_id: VideoId,
    pub name: String,
    pub head_id: Option<CheckpointId>,
    pub forked_from: Option<CheckpointId>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub id: CheckpointId,
    pub video_id: VideoId,
    pub branch_id: BranchId,
    pub parent_id: Option<CheckpointId>,
    pub phase: Phase,
    pub version: u32,
    pub status: CheckpointStatus,
    pub origin: Origin,
    pub manifest: Manifest,
    pub run_id: Option<RunId>,
    pub created_at: Timestamp,
    pub approved_at: Option<Timestamp>,
}

/// A run that remakes one beat of a checkpoint, reusing the others.
#[derive(Clone, Debug, PartialEq)]
pub struct Regenerate {
    pub beat: u32,
    pub seed: u64,
    /// The checkpoint whose other beats are reused.
    pub of: CheckpointId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub video_id: VideoId,
    pub branch_id: BranchId,
    pub from_checkpoint: Option<CheckpointId>,
    pub phase: Phase,
    pub attempt: u32,
    pub kind: RunKind,
    pub status: RunStatus,
    pub regenerate: Option<Regenerate>,
    pub error: Option<String>,
    pub failed_unit: Option<u32>,
    pub units_total: u32,
    pub units_done: u32,
    pub cost_micros: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    /// Taken anew by every claim (see `storage::Lease`).
    pub lease_token: i64,
}

/// One try of one unit of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitTry {
    pub run_id: RunId,
    pub unit: u32,
    pub try_no: u32,
    pub outcome: TryOutcome,
    pub message: Option<String>,
    pub provider: String,
    pub cost_micros: i64,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

/// What a new run makes, and from where.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStart {
    pub phase: Phase,
    pub from: Option<CheckpointId>,
    pub attempt: u32,
    pub kind: RunKind,
    pub regenerate: Option<Regenerate>,
}

impl Run {
    /// A queued run on `branch`, as a command creates it.
    pub fn queued(id: RunId, branch: &Branch, start: RunStart, now: Timestamp) -> Run {
        let RunStart { phase, from, attempt, kind, regenerate } = start;
        Run {
            id,
            video_id: branch.video_id,
            branch_id: branch.id,
            from_checkpoint: from,
            phase,
            attempt,
            kind,
            status: RunStatus::Queued,
            regenerate,
            error: None,
            failed_unit: None,
            units_total: 0,
            units_done: 0,
            cost_micros: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
            lease_owner: None,
            lease_expires_at: None,
            lease_token: 0,
        }
    }

    pub fn view(&self) -> RunView {
        RunView { id: self.id, from: self.from_checkpoint, phase: self.phase, status: self.status, attempt: self.attempt, kind: self.kind }
    }

    /// The beat that failed, for phases with one unit per beat.
    pub fn failed_beat(&self) -> Option<u32> {
        self.failed_unit.filter(|_| matches!(self.phase, Phase::Storyboard | Phase::Clips))
    }
}

/// One video with its branches, checkpoints and runs, as read in one snapshot.
#[derive(Clone, Debug)]
pub struct Video {
    pub video: VideoInfo,
    pub branches: Vec<Branch>,
    /// Oldest first.
    pub checkpoints: Vec<Checkpoint>,
    /// Oldest first.
    pub runs: Vec<Run>,
    /// Per branch, what the run a continue or retry would start is estimated to cost; filled by
    /// the engine (it needs the memo and the providers' prices), empty when read bare.
    pub estimates: Vec<(BranchId, i64)>,
    /// What all the video's runs cost, when `runs` holds only some of them (a page reads only
    /// the runs the rules ask about; see `storage::load_rule_slice`); `None` when `runs` is whole.
    pub spent_total: Option<i64>,
}

impl Video {
    pub fn checkpoint(&self, id: CheckpointId) -> Option<&Checkpoint> {
        self.checkpoints.iter().find(|c| c.id == id)
    }

    pub fn branch(&self, id: BranchId) -> Option<&Branch> {
        self.branches.iter().find(|b| b.id == id)
    }

    pub fn branch_named(&self, name: &str) -> Option<&Branch> {
        self.branches.iter().find(|b| b.name == name)
    }

    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.iter().find(|r| r.id == id)
    }

    pub fn head_of(&self, branch: &Branch) -> Option<&Checkpoint> {
        branch.head_id.and_then(|id| self.checkpoint(id))
    }

    pub fn spent_micros(&self) -> i64 {
        self.spent_total.unwrap_or_else(|| self.runs.iter().map(|r| r.cost_micros).sum())
    }

    /// The rule table's input for one branch.
    pub fn branch_view(&self, branch: &Branch) -> BranchView {
        let head = self.head_of(branch).map(|c| HeadView { id: c.id, phase: c.phase, status: c.status });
        let from_head: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| r.branch_id == branch.id && r.from_checkpoint == branch.head_id && r.regenerate.is_none())
            .collect();
        let latest = from_head.iter().max_by_key(|r| r.attempt);
        BranchView {
            head,
            active_run: self.runs.iter().find(|r| r.branch_id == branch.id && r.status.is_active()).map(Run::view),
            latest_from_head: latest.map(|r| r.view()),
            attempts_from_head: latest.map(|r| r.attempt).unwrap_or(0),
            retries_from_head: from_head.iter().filter(|r| r.kind == RunKind::Retry).count() as u32,
            spent_micros: self.spent_micros(),
            budget_micros: self.video.budget_micros,
            estimate_micros: self.estimate_of(branch.id),
        }
    }

    /// The estimated cost of the run a continue or retry on `branch` would start (see `estimates`).
    pub fn estimate_of(&self, branch: BranchId) -> i64 {
        self.estimates.iter().find(|(b, _)| *b == branch).map_or(0, |(_, micros)| *micros)
    }

    /// The checkpoints from the branch's head back to phase 1.
    pub fn line_of(&self, branch: &Branch) -> Vec<&Checkpoint> {
        let mut line = Vec::new();
        let mut next = branch.head_id;
        while let Some(c) = next.and_then(|id| self.checkpoint(id)) {
            line.push(c);
            next = c.parent_id;
        }
        line
    }

    pub fn on_line(&self, branch: &Branch, checkpoint: CheckpointId) -> bool {
        self.line_of(branch).iter().any(|c| c.id == checkpoint)
    }

    /// The next version number among checkpoints with this parent and phase.
    pub fn next_version(&self, parent: Option<CheckpointId>, phase: Phase) -> u32 {
        self.checkpoints.iter().filter(|c| c.parent_id == parent && c.phase == phase).map(|c| c.version).max().unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests;
