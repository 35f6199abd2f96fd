//! Records as stored, decoded into domain types, and the in-memory view of one video's state.
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::StorageError;
use crate::domain::rules::{BranchView, HeadView, RunView};
use crate::domain::{
    BranchId, CheckpointId, CheckpointStatus, FaultPlan, Manifest, Origin, Phase, RunId, RunKind, RunStatus, Timestamp, TryOutcome, VideoId,
};

#[derive(Clone, Debug, PartialEq)]
pub struct VideoRecord {
    pub id: VideoId,
    pub prompt: String,
    pub title: String,
    pub beats: u32,
    pub seed: u64,
    pub auto_continue: bool,
    pub fault_plan: FaultPlan,
    pub budget_micros: Option<i64>,
    pub created_at: Timestamp,
    /// Counts every committed change of the video (see `touch_video`).
    pub changes: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BranchRecord {
    pub id: BranchId,
    pub video_id: VideoId,
    pub name: String,
    pub head_id: Option<CheckpointId>,
    pub forked_from: Option<CheckpointId>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRecord {
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

#[derive(Clone, Debug, PartialEq)]
pub struct Regenerate {
    pub beat: u32,
    pub seed: u64,
    /// The checkpoint whose other beats are reused.
    pub of: CheckpointId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
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

#[derive(Clone, Debug, PartialEq)]
pub struct UnitTryRecord {
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

pub(crate) fn key_of(id: Option<CheckpointId>) -> String {
    id.map(|c| c.to_string()).unwrap_or_default()
}

fn uuid(row: &AnyRow, col: &str) -> Result<Uuid, StorageError> {
    let raw: String = row.try_get(col)?;
    Uuid::parse_str(&raw).map_err(|_| StorageError::Corrupt(format!("{col} = {raw:?} is not a uuid")))
}

fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>, StorageError> {
    let raw: Option<String> = row.try_get(col)?;
    raw.filter(|s| !s.is_empty())
        .map(|s| Uuid::parse_str(&s).map_err(|_| StorageError::Corrupt(format!("{col} = {s:?} is not a uuid"))))
        .transpose()
}

fn phase(row: &AnyRow) -> Result<Phase, StorageError> {
    let n: i64 = row.try_get("phase")?;
    Phase::from_number(n).ok_or_else(|| StorageError::Corrupt(format!("phase {n}")))
}

fn wire<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, StorageError> {
    let raw: String = row.try_get(col)?;
    parse(&raw).ok_or_else(|| StorageError::Corrupt(format!("{col} = {raw:?}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StorageError> {
    let raw: String = row.try_get(col)?;
    serde_json::from_str(&raw).map_err(|e| StorageError::Corrupt(format!("{col}: {e}")))
}

fn u32_of(row: &AnyRow, col: &str) -> Result<u32, StorageError> {
    let n: i64 = row.try_get(col)?;
    u32::try_from(n).map_err(|_| StorageError::Corrupt(format!("{col} = {n}")))
}

impl VideoRecord {
    pub(crate) fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(VideoRecord {
            id: VideoId(uuid(row, "id")?),
            prompt: row.try_get("prompt")?,
            title: row.try_get("title")?,
            beats: u32_of(row, "beats")?,
            seed: row.try_get::<i64, _>("seed")? as u64,
            auto_continue: row.try_get::<i64, _>("auto_continue")? != 0,
            fault_plan: json(row, "fault_plan")?,
            budget_micros: row.try_get("budget_micros")?,
            created_at: row.try_get("created_at")?,
            changes: row.try_get("changes")?,
        })
    }
}

impl BranchRecord {
    pub(crate) fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(BranchRecord {
            id: BranchId(uuid(row, "id")?),
            video_id: VideoId(uuid(row, "video_id")?),
            name: row.try_get("name")?,
            head_id: opt_uuid(row, "head_id")?.map(CheckpointId),
            forked_from: opt_uuid(row, "forked_from")?.map(CheckpointId),
            created_at: row.try_get("created_at")?,
        })
    }
}

impl CheckpointRecord {
    pub(crate) fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(CheckpointRecord {
            id: CheckpointId(uuid(row, "id")?),
            video_id: VideoId(uuid(row, "video_id")?),
            branch_id: BranchId(uuid(row, "branch_id")?),
            parent_id: opt_uuid(row, "parent_id")?.map(CheckpointId),
            phase: phase(row)?,
            version: u32_of(row, "version")?,
            status: wire(row, "status", CheckpointStatus::from_wire)?,
            origin: wire(row, "origin", Origin::from_wire)?,
            manifest: json(row, "manifest")?,
            run_id: opt_uuid(row, "run_id")?.map(RunId),
            created_at: row.try_get("created_at")?,
            approved_at: row.try_get("approved_at")?,
        })
    }
}

impl RunRecord {
    pub(crate) fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        let beat: Option<i64> = row.try_get("regenerate_beat")?;
        let seed: Option<i64> = row.try_get("regenerate_seed")?;
        let of = opt_uuid(row, "regenerate_of")?;
        let regenerate = match (beat, seed, of) {
            (Some(beat), Some(seed), Some(of)) => Some(Regenerate { beat: beat as u32, seed: seed as u64, of: CheckpointId(of) }),
            _ => None,
        };
        Ok(RunRecord {
            id: RunId(uuid(row, "id")?),
            video_id: VideoId(uuid(row, "video_id")?),
            branch_id: BranchId(uuid(row, "branch_id")?),
            from_checkpoint: opt_uuid(row, "from_checkpoint")?.map(CheckpointId),
            phase: phase(row)?,
            attempt: u32_of(row, "attempt")?,
            kind: wire(row, "kind", RunKind::from_wire)?,
            status: wire(row, "status", RunStatus::from_wire)?,
            regenerate,
            error: row.try_get("error")?,
            failed_unit: row.try_get::<Option<i64>, _>("failed_unit")?.map(|u| u as u32),
            units_total: u32_of(row, "units_total")?,
            units_done: u32_of(row, "units_done")?,
            cost_micros: row.try_get("cost_micros")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            lease_owner: row.try_get("lease_owner")?,
            lease_expires_at: row.try_get("lease_expires_at")?,
            lease_token: row.try_get("lease_token")?,
        })
    }

    pub fn view(&self) -> RunView {
        RunView { id: self.id, from: self.from_checkpoint, phase: self.phase, status: self.status, attempt: self.attempt, kind: self.kind }
    }
}

impl UnitTryRecord {
    pub(crate) fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(UnitTryRecord {
            run_id: RunId(uuid(row, "run_id")?),
            unit: u32_of(row, "unit")?,
            try_no: u32_of(row, "try_no")?,
            outcome: wire(row, "outcome", TryOutcome::from_wire)?,
            message: row.try_get("message")?,
            provider: row.try_get("provider")?,
            cost_micros: row.try_get("cost_micros")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// One video with its branches, checkpoints and runs, loaded in one snapshot.
#[derive(Clone, Debug)]
pub struct VideoState {
    pub video: VideoRecord,
    pub branches: Vec<BranchRecord>,
    /// Oldest first.
    pub checkpoints: Vec<CheckpointRecord>,
    /// Oldest first.
    pub runs: Vec<RunRecord>,
}

impl VideoState {
    pub fn checkpoint(&self, id: CheckpointId) -> Option<&CheckpointRecord> {
        self.checkpoints.iter().find(|c| c.id == id)
    }

    pub fn branch(&self, id: BranchId) -> Option<&BranchRecord> {
        self.branches.iter().find(|b| b.id == id)
    }

    pub fn branch_named(&self, name: &str) -> Option<&BranchRecord> {
        self.branches.iter().find(|b| b.name == name)
    }

    pub fn spent_micros(&self) -> i64 {
        self.runs.iter().map(|r| r.cost_micros).sum()
    }

    /// The rule table's input for one branch.
    pub fn branch_view(&self, branch: &BranchRecord) -> BranchView {
        let head = branch.head_id.and_then(|id| self.checkpoint(id)).map(|c| HeadView { id: c.id, phase: c.phase, status: c.status });
        let from_head: Vec<&RunRecord> = self
            .runs
            .iter()
            .filter(|r| r.branch_id == branch.id && r.from_checkpoint == branch.head_id && r.regenerate.is_none())
            .collect();
        let latest = from_head.iter().max_by_key(|r| r.attempt);
        BranchView {
            head,
            active_run: self.runs.iter().find(|r| r.branch_id == branch.id && r.status.is_active()).map(RunRecord::view),
            latest_from_head: latest.map(|r| r.view()),
            attempts_from_head: latest.map(|r| r.attempt).unwrap_or(0),
            retries_from_head: from_head.iter().filter(|r| r.kind == RunKind::Retry).count() as u32,
            spent_micros: self.spent_micros(),
            budget_micros: self.video.budget_micros,
        }
    }

    /// The checkpoints from the branch's head back to phase 1.
    pub fn line_of(&self, branch: &BranchRecord) -> Vec<&CheckpointRecord> {
        let mut line = Vec::new();
        let mut next = branch.head_id;
        while let Some(c) = next.and_then(|id| self.checkpoint(id)) {
            line.push(c);
            next = c.parent_id;
        }
        line
    }

    pub fn on_line(&self, branch: &BranchRecord, checkpoint: CheckpointId) -> bool {
        self.line_of(branch).iter().any(|c| c.id == checkpoint)
    }

    /// The next version number among checkpoints with this parent and phase.
    pub fn next_version(&self, parent: Option<CheckpointId>, phase: Phase) -> u32 {
        self.checkpoints.iter().filter(|c| c.parent_id == parent && c.phase == phase).map(|c| c.version).max().unwrap_or(0) + 1
    }
}
