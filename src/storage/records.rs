//! Rows as stored (`FromRow`, ids and words checked as they are read), and their domain types
//! (`domain::video`).
use crate::domain::video::{Branch, Checkpoint, Run, UnitTry, VideoInfo};
use crate::domain::{
    AccountId, BranchId, CheckpointId, CheckpointStatus, FaultPlan, Manifest, Origin, Phase, RunId, RunKind, RunStatus, Timestamp,
    TryOutcome, VideoId,
};

// The stored shapes are the domain's; these names keep the storage API's old spelling for callers.
pub use crate::domain::video::{
    Branch as BranchRecord, Checkpoint as CheckpointRecord, Regenerate, Run as RunRecord, UnitTry as UnitTryRecord, Video as VideoState,
    VideoInfo as VideoRecord,
};

pub(crate) fn key_of(id: Option<CheckpointId>) -> String {
    id.map(|c| c.to_string()).unwrap_or_default()
}

/// An optional id column: NULL (or an empty string) is none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Maybe<T>(Option<T>);

impl<T: TryFrom<String>> TryFrom<Option<String>> for Maybe<T> {
    type Error = T::Error;
    fn try_from(raw: Option<String>) -> Result<Self, T::Error> {
        raw.filter(|s| !s.is_empty()).map(T::try_from).transpose().map(Maybe)
    }
}

/// A JSON document column, parsed as it is read.
#[derive(Clone, Debug)]
pub(crate) struct Stored<T>(T);

impl<T: serde::de::DeserializeOwned> TryFrom<String> for Stored<T> {
    type Error = serde_json::Error;
    fn try_from(raw: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&raw).map(Stored)
    }
}

row! {
    pub(crate) struct VideoRow {
        id: VideoId as String,
        prompt: String,
        title: String,
        beats: u32 as i64,
        seed: i64,
        auto_continue: i64,
        fault_plan: Stored<FaultPlan> as String,
        budget_micros: Option<i64>,
        created_at: Timestamp,
        changes: i64,
        account_id: AccountId as String,
    }
}

impl From<VideoRow> for VideoInfo {
    fn from(r: VideoRow) -> Self {
        VideoInfo {
            id: r.id,
            owner: r.account_id,
            prompt: r.prompt,
            title: r.title,
            beats: r.beats,
            seed: r.seed as u64,
            auto_continue: r.auto_continue != 0,
            fault_plan: r.fault_plan.0,
            budget_micros: r.budget_micros,
            created_at: r.created_at,
            changes: r.changes,
        }
    }
}

row! {
    pub(crate) struct BranchRow {
        id: BranchId as String,
        video_id: VideoId as String,
        name: String,
        head_id: Maybe<CheckpointId> as Option<String>,
        forked_from: Maybe<CheckpointId> as Option<String>,
        created_at: Timestamp,
    }
}

impl From<BranchRow> for Branch {
    fn from(r: BranchRow) -> Self {
        Branch {
            id: r.id,
            video_id: r.video_id,
            name: r.name,
            head_id: r.head_id.0,
            forked_from: r.forked_from.0,
            created_at: r.created_at,
        }
    }
}

row! {
    pub(crate) struct CheckpointRow {
        id: CheckpointId as String,
        video_id: VideoId as String,
        branch_id: BranchId as String,
        parent_id: Maybe<CheckpointId> as Option<String>,
        phase: Phase as i64,
        version: u32 as i64,
        status: CheckpointStatus as String,
        origin: Origin as String,
        manifest: Stored<Manifest> as String,
        run_id: Maybe<RunId> as Option<String>,
        created_at: Timestamp,
        approved_at: Option<Timestamp>,
    }
}

impl From<CheckpointRow> for Checkpoint {
    fn from(r: CheckpointRow) -> Self {
        Checkpoint {
            id: r.id,
            video_id: r.video_id,
            branch_id: r.branch_id,
            parent_id: r.parent_id.0,
            phase: r.phase,
            version: r.version,
            status: r.status,
            origin: r.origin,
            manifest: r.manifest.0,
            run_id: r.run_id.0,
            created_at: r.created_at,
            approved_at: r.approved_at,
        }
    }
}

row! {
    pub(crate) struct RunRow {
        id: RunId as String,
        video_id: VideoId as String,
        branch_id: BranchId as String,
        from_checkpoint: Maybe<CheckpointId> as Option<String>,
        phase: Phase as i64,
        attempt: u32 as i64,
        kind: RunKind as String,
        status: RunStatus as String,
        regenerate_beat: Option<i64>,
        regenerate_seed: Option<i64>,
        regenerate_of: Maybe<CheckpointId> as Option<String>,
        error: Option<String>,
        failed_unit: Option<i64>,
        units_total: u32 as i64,
        units_done: u32 as i64,
        cost_micros: i64,
        created_at: Timestamp,
        started_at: Option<Timestamp>,
        finished_at: Option<Timestamp>,
        lease_owner: Option<String>,
        lease_expires_at: Option<Timestamp>,
        lease_token: i64,
    }
}

impl From<RunRow> for Run {
    fn from(r: RunRow) -> Self {
        let regenerate = match (r.regenerate_beat, r.regenerate_seed, r.regenerate_of.0) {
            (Some(beat), Some(seed), Some(of)) => Some(Regenerate { beat: beat as u32, seed: seed as u64, of }),
            _ => None,
        };
        Run {
            id: r.id,
            video_id: r.video_id,
            branch_id: r.branch_id,
            from_checkpoint: r.from_checkpoint.0,
            phase: r.phase,
            attempt: r.attempt,
            kind: r.kind,
            status: r.status,
            regenerate,
            error: r.error,
            failed_unit: r.failed_unit.map(|u| u as u32),
            units_total: r.units_total,
            units_done: r.units_done,
            cost_micros: r.cost_micros,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            lease_token: r.lease_token,
        }
    }
}

row! {
    pub(crate) struct UnitTryRow {
        run_id: RunId as String,
        unit: u32 as i64,
        try_no: u32 as i64,
        outcome: TryOutcome as String,
        message: Option<String>,
        provider: String,
        cost_micros: i64,
        started_at: Timestamp,
        finished_at: Timestamp,
    }
}

impl From<UnitTryRow> for UnitTry {
    fn from(r: UnitTryRow) -> Self {
        UnitTry {
            run_id: r.run_id,
            unit: r.unit,
            try_no: r.try_no,
            outcome: r.outcome,
            message: r.message,
            provider: r.provider,
            cost_micros: r.cost_micros,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}
