//! Wire types: what the server functions send to the browser. Separate from rows and domain types.
use serde::{Deserialize, Serialize};

use crate::domain::rules::AllowedActions;
pub use crate::domain::video::UnitState;
use crate::domain::{BranchStatus, CheckpointStatus, Origin, Phase, RunKind, RunStatus, Script};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerSettings {
    pub fault_injection: bool,
    pub retry_limit: u32,
    pub version: String,
}

pub use crate::domain::ProviderSetting;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoList {
    /// Newest first; one page of `VIDEOS_PAGE`.
    pub videos: Vec<VideoSummary>,
    pub total: u32,
    pub page: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoSummary {
    pub video_id: String,
    pub title: String,
    pub status: BranchStatus,
    pub current_phase: Option<Phase>,
    pub poster_url: Option<String>,
    pub created_at: i64,
    pub total_cost_micros: i64,
    pub beats: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointWire {
    pub id: String,
    pub phase: Phase,
    pub phase_number: u8,
    pub version: u32,
    pub status: CheckpointStatus,
    pub origin: Origin,
    pub parent_id: Option<String>,
    /// The branch the checkpoint was made on.
    pub branch: String,
    /// Branches whose newest checkpoint this is.
    pub head_of: Vec<String>,
    pub created_at: i64,
    pub approved_at: Option<i64>,
    pub run_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    pub checkpoint: CheckpointWire,
    pub children: Vec<TreeNode>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BranchWire {
    pub branch_name: String,
    pub latest_checkpoint_id: Option<String>,
    pub phase_number: Option<u8>,
    /// The status of the branch's newest checkpoint.
    pub status: Option<CheckpointStatus>,
    pub branch_status: BranchStatus,
    pub can_continue: bool,
    pub forked_from: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunWire {
    pub id: String,
    pub branch: String,
    pub phase: Phase,
    pub attempt: u32,
    pub kind: RunKind,
    pub status: RunStatus,
    pub error: Option<String>,
    pub failed_beat: Option<u32>,
    pub from_checkpoint: Option<String>,
    pub cost_micros: i64,
    pub units_total: u32,
    pub units_done: u32,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Provider calls, memo hits and failed tries of this run.
    pub calls: u32,
    pub memo_hits: u32,
    pub failed_tries: u32,
    /// Of the units made or reused, the narrations.
    #[serde(default)]
    pub narrations: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorWire {
    pub message: String,
    pub phase: Phase,
    pub beat: Option<u32>,
    pub run_id: String,
    pub attempt: u32,
    /// A failed regeneration of `beat` (no retry on the card).
    #[serde(default)]
    pub regenerating: bool,
    /// On a failed branch, a regeneration that failed after the branch's failure.
    #[serde(default)]
    pub also: Option<Box<ErrorWire>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressWire {
    pub run_id: String,
    pub phase: Phase,
    pub units: Vec<UnitState>,
    pub units_done: u32,
    pub units_total: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipWire {
    pub preview_url: String,
    pub frames: u32,
}

/// The artifacts along the selected branch, newest version of each phase on its line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactsWire {
    pub script: Option<Script>,
    pub script_checkpoint: Option<CheckpointWire>,
    /// The version an edit of the script saves.
    #[serde(default)]
    pub script_next_version: Option<u32>,
    pub storyboard: Vec<String>,
    /// Per beat, its spoken narration (none for a silent script).
    #[serde(default)]
    pub narrations: Vec<NarrationWire>,
    pub storyboard_checkpoint: Option<CheckpointWire>,
    pub clips: Vec<ClipWire>,
    pub clips_checkpoint: Option<CheckpointWire>,
    pub video_url: Option<String>,
    pub poster_url: Option<String>,
    pub video_duration_ms: Option<u32>,
    pub video_bytes: Option<u64>,
    /// The WebVTT captions of the video (none when they are burned into the picture).
    #[serde(default)]
    pub captions_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NarrationWire {
    pub audio_url: String,
    pub duration_ms: u32,
}

/// The seed document's status response, for one branch, plus what the page needs to draw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoStatusWire {
    pub video_id: String,
    pub title: String,
    pub prompt: String,
    pub beats: u32,
    pub auto_continue: bool,
    pub budget_micros: Option<i64>,
    pub branch: String,
    pub status: BranchStatus,
    pub current_phase: Option<Phase>,
    pub error: Option<ErrorWire>,
    pub current_checkpoint: Option<CheckpointWire>,
    /// One page of the tree (see `domain::video::TREE_PAGE`), and how many checkpoints there are.
    pub checkpoint_tree: Vec<TreeNode>,
    pub tree_total: u32,
    pub tree_page: u32,
    pub active_branches: Vec<BranchWire>,
    /// One page of the branch's runs, newest first (see `ATTEMPTS_PAGE`); how many it has, and
    /// what they cost in all.
    pub runs: Vec<RunWire>,
    pub runs_total: u32,
    pub attempts_page: u32,
    pub branch_cost_micros: i64,
    pub allowed: AllowedActions,
    /// The error card's button label.
    pub retry_label: String,
    pub progress: Option<ProgressWire>,
    pub artifacts: ArtifactsWire,
    pub total_cost_micros: i64,
    /// What the next continue or retry is estimated to cost: units the memo already holds are free.
    pub estimate_micros: i64,
    pub fault_injection: bool,
    /// The video's change counter when this snapshot was read: the live channel says when the
    /// server's is higher, and the page fetches itself again (see `WatchEvent`, `ui::live`).
    pub changes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ContinueResult {
    Started { run_id: String, kind: RunKind, attempt: u32 },
    AlreadyRunning { run_id: String },
    Completed,
}

pub use crate::domain::words::{decimal, dollars};
