//! Rows as stored, decoded into the domain's types (`domain::video`).
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::StorageError;
use crate::domain::video::{Branch, Checkpoint, Run, UnitTry, VideoInfo};
use crate::domain::{BranchId, CheckpointId, CheckpointStatus, Origin, Phase, RunId, RunKind, RunStatus, TryOutcome, VideoId};

// The stored shapes are the domain's; these names keep the storage API's old spelling for callers.
pub use crate::domain::video::{
    Branch as BranchRecord, Checkpoint as CheckpointRecord, Regenerate, Run as RunRecord, UnitTry as UnitTryRecord, Video as VideoState,
    VideoInfo as VideoRecord,
};

/// Decoding one row into its domain type.
pub(crate) trait Decode: Sized {
    fn decode(row: &AnyRow) -> Result<Self, StorageError>;
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

impl Decode for VideoInfo {
    fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(VideoInfo {
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

impl Decode for Branch {
    fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(Branch {
            id: BranchId(uuid(row, "id")?),
            video_id: VideoId(uuid(row, "video_id")?),
            name: row.try_get("name")?,
            head_id: opt_uuid(row, "head_id")?.map(CheckpointId),
            forked_from: opt_uuid(row, "forked_from")?.map(CheckpointId),
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Decode for Checkpoint {
    fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(Checkpoint {
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

impl Decode for Run {
    fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        let beat: Option<i64> = row.try_get("regenerate_beat")?;
        let seed: Option<i64> = row.try_get("regenerate_seed")?;
        let of = opt_uuid(row, "regenerate_of")?;
        let regenerate = match (beat, seed, of) {
            (Some(beat), Some(seed), Some(of)) => Some(Regenerate { beat: beat as u32, seed: seed as u64, of: CheckpointId(of) }),
            _ => None,
        };
        Ok(Run {
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
}

impl Decode for UnitTry {
    fn decode(row: &AnyRow) -> Result<Self, StorageError> {
        Ok(UnitTry {
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
