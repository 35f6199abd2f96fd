//! Records → wire types. Statuses and allowed actions come from the rule table, nothing is decided here.
use std::collections::HashMap;

use super::error::AppError;
use super::types::*;
use crate::domain::rules::BranchView;
use crate::domain::rules::{allowed_actions, branch_status};
use crate::domain::{BranchName, BranchStatus, CheckpointId, CheckpointStatus, Entity, Manifest, Phase, RunStatus, TryOutcome};
use crate::pipeline::EngineConfig;
use crate::pipeline::commands::ContinueOutcome;
use crate::storage::{BranchRecord, CheckpointRecord, RunRecord, UnitTryRecord, VideoState};

fn checkpoint(state: &VideoState, c: &CheckpointRecord) -> CheckpointWire {
    CheckpointWire {
        id: c.id.to_string(),
        phase: c.phase,
        phase_number: c.phase.number(),
        version: c.version,
        status: c.status,
        origin: c.origin,
        parent_id: c.parent_id.map(|p| p.to_string()),
        branch: state.branch(c.branch_id).map(|b| b.name.clone()).unwrap_or_default(),
        head_of: state.branches.iter().filter(|b| b.head_id == Some(c.id)).map(|b| b.name.clone()).collect(),
        created_at: c.created_at,
        approved_at: c.approved_at,
        run_id: c.run_id.map(|r| r.to_string()),
    }
}

fn tree(state: &VideoState) -> Vec<TreeNode> {
    let mut children: HashMap<Option<CheckpointId>, Vec<&CheckpointRecord>> = HashMap::new();
    for c in &state.checkpoints {
        children.entry(c.parent_id).or_default().push(c);
    }
    fn build(
        state: &VideoState,
        map: &HashMap<Option<CheckpointId>, Vec<&CheckpointRecord>>,
        parent: Option<CheckpointId>,
    ) -> Vec<TreeNode> {
        map.get(&parent)
            .map(|list| {
                let mut list = list.clone();
                list.sort_by_key(|c| (c.version, c.created_at));
                list.iter().map(|c| TreeNode { checkpoint: checkpoint(state, c), children: build(state, map, Some(c.id)) }).collect()
            })
            .unwrap_or_default()
    }
    build(state, &children, None)
}

fn run(state: &VideoState, r: &RunRecord, tries: &[UnitTryRecord]) -> RunWire {
    let mine = tries.iter().filter(|t| t.run_id == r.id);
    let (mut calls, mut memo_hits, mut failed) = (0, 0, 0);
    for t in mine {
        match t.outcome {
            TryOutcome::Ok => calls += 1,
            TryOutcome::Memo => memo_hits += 1,
            TryOutcome::Transient | TryOutcome::Permanent | TryOutcome::Cancelled => failed += 1,
        }
    }
    RunWire {
        id: r.id.to_string(),
        branch: state.branch(r.branch_id).map(|b| b.name.clone()).unwrap_or_default(),
        phase: r.phase,
        attempt: r.attempt,
        kind: r.kind,
        status: r.status,
        error: r.error.clone(),
        failed_beat: r.failed_unit.filter(|_| matches!(r.phase, Phase::Storyboard | Phase::Clips)),
        from_checkpoint: r.from_checkpoint.map(|c| c.to_string()),
        cost_micros: r.cost_micros,
        units_total: r.units_total,
        units_done: r.units_done,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        calls,
        memo_hits,
        failed_tries: failed,
    }
}

fn progress(r: &RunRecord, tries: &[UnitTryRecord]) -> ProgressWire {
    let mut units = vec![if r.status == RunStatus::Queued { UnitState::Waiting } else { UnitState::Running }; r.units_total as usize];
    let failed_run = r.status.is_failure();
    for (i, unit) in units.iter_mut().enumerate() {
        let mine: Vec<&UnitTryRecord> = tries.iter().filter(|t| t.run_id == r.id && t.unit as usize == i).collect();
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
    ProgressWire { run_id: r.id.to_string(), phase: r.phase, units, units_done: r.units_done, units_total: r.units_total }
}

fn artifacts(state: &VideoState, branch: &BranchRecord) -> ArtifactsWire {
    let mut a = ArtifactsWire::default();
    for c in state.line_of(branch) {
        match &c.manifest {
            Manifest::Script { script, .. } => {
                a.script = Some(script.clone());
                a.script_checkpoint = Some(checkpoint(state, c));
            }
            Manifest::Storyboard { frames, .. } => {
                a.storyboard = frames.iter().map(|f| f.url()).collect();
                a.storyboard_checkpoint = Some(checkpoint(state, c));
            }
            Manifest::Clips { clips, .. } => {
                a.clips = clips.iter().map(|c| ClipWire { preview_url: c.preview.url(), frames: c.frames }).collect();
                a.clips_checkpoint = Some(checkpoint(state, c));
            }
            Manifest::Render { video, poster, duration_ms, .. } => {
                a.video_url = Some(video.url());
                a.poster_url = Some(poster.url());
                a.video_duration_ms = Some(*duration_ms);
                a.video_bytes = Some(video.bytes);
            }
        }
    }
    a
}

fn error_of(r: &RunRecord) -> ErrorWire {
    ErrorWire {
        message: r.error.clone().unwrap_or_else(|| "The phase failed".into()),
        phase: r.phase,
        beat: r.failed_unit.filter(|_| matches!(r.phase, Phase::Storyboard | Phase::Clips)),
        run_id: r.id.to_string(),
        attempt: r.attempt,
    }
}

pub fn summary(state: &VideoState) -> VideoSummary {
    let main = state.branch_named(BranchName::MAIN);
    let status = main.map(|b| branch_status(&state.branch_view(b))).unwrap_or(BranchStatus::Processing);
    let head = main.and_then(|b| b.head_id).and_then(|id| state.checkpoint(id));
    let poster_url = main.and_then(|b| {
        state.line_of(b).iter().find_map(|c| match &c.manifest {
            Manifest::Render { poster, .. } => Some(poster.url()),
            Manifest::Storyboard { frames, .. } => frames.first().map(|f| f.url()),
            _ => None,
        })
    });
    let current_phase = main.and_then(|b| state.runs.iter().rev().find(|r| r.branch_id == b.id).map(|r| r.phase)).or(head.map(|h| h.phase));
    VideoSummary {
        video_id: state.video.id.to_string(),
        title: state.video.title.clone(),
        status,
        current_phase,
        poster_url,
        created_at: state.video.created_at,
        total_cost_micros: state.spent_micros(),
        beats: state.video.beats,
    }
}

pub fn status(
    state: &VideoState,
    branch: Option<&str>,
    tries: &[UnitTryRecord],
    config: &EngineConfig,
) -> Result<VideoStatusWire, AppError> {
    let name = branch.filter(|b| !b.is_empty()).unwrap_or(BranchName::MAIN);
    let branch = state.branch_named(name).ok_or_else(|| AppError::NotFound { what: Entity::Branch, id: name.into() })?;
    let view = state.branch_view(branch);
    let status = branch_status(&view);
    let head = branch.head_id.and_then(|id| state.checkpoint(id));
    let branch_runs: Vec<&RunRecord> = state.runs.iter().filter(|r| r.branch_id == branch.id).collect();
    let latest = branch_runs.iter().max_by_key(|r| (r.created_at, r.attempt)).copied();
    let progress = view
        .active_run
        .and_then(|a| state.runs.iter().find(|r| r.id == a.id))
        .or(latest.filter(|r| r.status.is_failure() && status == BranchStatus::Failed))
        .map(|r| progress(r, tries));
    let mut runs: Vec<RunWire> = branch_runs.iter().map(|r| run(state, r, tries)).collect();
    runs.sort_by_key(|r| r.created_at);
    Ok(VideoStatusWire {
        changes: state.video.changes,
        video_id: state.video.id.to_string(),
        title: state.video.title.clone(),
        prompt: state.video.prompt.clone(),
        beats: state.video.beats,
        auto_continue: state.video.auto_continue,
        budget_micros: state.video.budget_micros,
        branch: branch.name.clone(),
        status,
        current_phase: current_phase(&view, status, head),
        error: error_card(state, &view, status, latest),
        current_checkpoint: head.filter(|h| h.status == CheckpointStatus::Pending).map(|h| checkpoint(state, h)),
        checkpoint_tree: tree(state),
        active_branches: branches(state, config),
        runs,
        allowed: allowed_actions(&view, config.limits()),
        progress,
        artifacts: artifacts(state, branch),
        total_cost_micros: state.spent_micros(),
        fault_injection: config.fault_injection,
    })
}

/// The failure the error card shows: the branch's failed run, or, while a pending edit follows
/// a failure, the latest failed run (so the person sees what happened).
fn error_card(state: &VideoState, view: &BranchView, status: BranchStatus, latest: Option<&RunRecord>) -> Option<ErrorWire> {
    match (status, view.latest_from_head.and_then(|v| state.runs.iter().find(|r| r.id == v.id))) {
        (BranchStatus::Failed, Some(r)) => Some(error_of(r)),
        (BranchStatus::AwaitingApproval, _) => latest.filter(|r| r.status.is_failure()).map(error_of),
        _ => None,
    }
}

fn current_phase(view: &BranchView, status: BranchStatus, head: Option<&CheckpointRecord>) -> Option<Phase> {
    match view.active_run {
        Some(r) => Some(r.phase),
        None => match (status, view.latest_from_head) {
            (BranchStatus::Failed, Some(r)) => Some(r.phase),
            _ => head.map(|h| h.phase),
        },
    }
}

fn branches(state: &VideoState, config: &EngineConfig) -> Vec<BranchWire> {
    state
        .branches
        .iter()
        .map(|b| {
            let v = state.branch_view(b);
            let h = b.head_id.and_then(|id| state.checkpoint(id));
            BranchWire {
                branch_name: b.name.clone(),
                latest_checkpoint_id: h.map(|c| c.id.to_string()),
                phase_number: h.map(|c| c.phase.number()),
                status: h.map(|c| c.status),
                branch_status: branch_status(&v),
                can_continue: allowed_actions(&v, config.limits()).can_continue,
                forked_from: b.forked_from.map(|c| c.to_string()),
            }
        })
        .collect()
}

pub fn continue_result(outcome: ContinueOutcome) -> ContinueResult {
    match outcome {
        ContinueOutcome::Started { run, kind, attempt } => ContinueResult::Started { run_id: run.to_string(), kind, attempt },
        ContinueOutcome::AlreadyRunning { run } => ContinueResult::AlreadyRunning { run_id: run.to_string() },
        ContinueOutcome::Completed { .. } => ContinueResult::Completed,
    }
}
