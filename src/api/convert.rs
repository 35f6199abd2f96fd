//! Domain → wire types. Field mapping only: what the page shows is decided in
//! `domain::video::branch_report` (and the rule table behind it).
use std::collections::HashMap;

use super::error::AppError;
use super::types::*;
use crate::domain::video::{self, BranchLine, BranchReport, Checkpoint, ErrorCard, Progress, Run, RunTally, StatusSlice, Video};
use crate::domain::{CheckpointId, Entity, Manifest};
use crate::pipeline::EngineConfig;
use crate::pipeline::commands::ContinueOutcome;

/// Which branches each checkpoint heads, so a page lists them without scanning every branch per
/// checkpoint.
struct Heads(HashMap<CheckpointId, Vec<String>>);

impl Heads {
    fn of(state: &Video) -> Heads {
        let mut map: HashMap<CheckpointId, Vec<String>> = HashMap::new();
        for b in &state.branches {
            if let Some(head) = b.head_id {
                map.entry(head).or_default().push(b.name.clone());
            }
        }
        Heads(map)
    }
}

fn checkpoint(state: &Video, heads: &Heads, c: &Checkpoint) -> CheckpointWire {
    CheckpointWire {
        id: c.id.to_string(),
        phase: c.phase,
        phase_number: c.phase.number(),
        version: c.version,
        status: c.status,
        origin: c.origin,
        parent_id: c.parent_id.map(|p| p.to_string()),
        branch: state.branch(c.branch_id).map(|b| b.name.clone()).unwrap_or_default(),
        head_of: heads.0.get(&c.id).cloned().unwrap_or_default(),
        created_at: c.created_at,
        approved_at: c.approved_at,
        run_id: c.run_id.map(|r| r.to_string()),
    }
}

/// The tree of `nodes` (a page of checkpoints with everything they descend from), in one pass.
fn tree(state: &Video, heads: &Heads, nodes: &[Checkpoint]) -> Vec<TreeNode> {
    let mut children: HashMap<Option<CheckpointId>, Vec<&Checkpoint>> = HashMap::new();
    for c in nodes {
        children.entry(c.parent_id).or_default().push(c);
    }
    for list in children.values_mut() {
        list.sort_by_key(|c| (c.version, c.created_at));
    }
    fn build(
        state: &Video,
        heads: &Heads,
        map: &HashMap<Option<CheckpointId>, Vec<&Checkpoint>>,
        parent: Option<CheckpointId>,
    ) -> Vec<TreeNode> {
        let list = map.get(&parent).map(Vec::as_slice).unwrap_or_default();
        list.iter().map(|c| TreeNode { checkpoint: checkpoint(state, heads, c), children: build(state, heads, map, Some(c.id)) }).collect()
    }
    build(state, heads, &children, None)
}

fn run(state: &Video, r: &Run, tally: RunTally) -> RunWire {
    RunWire {
        id: r.id.to_string(),
        branch: state.branch(r.branch_id).map(|b| b.name.clone()).unwrap_or_default(),
        phase: r.phase,
        attempt: r.attempt,
        kind: r.kind,
        status: r.status,
        error: r.error.clone(),
        failed_beat: r.failed_beat(),
        from_checkpoint: r.from_checkpoint.map(|c| c.to_string()),
        cost_micros: r.cost_micros,
        units_total: r.units_total,
        units_done: r.units_done,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        calls: tally.calls,
        memo_hits: tally.memo_hits,
        failed_tries: tally.failed_tries,
        narrations: tally.narrations,
    }
}

fn progress(p: Progress) -> ProgressWire {
    ProgressWire { run_id: p.run.to_string(), phase: p.phase, units: p.units, units_done: p.units_done, units_total: p.units_total }
}

fn error(e: ErrorCard) -> ErrorWire {
    ErrorWire {
        message: e.message,
        phase: e.phase,
        beat: e.beat,
        run_id: e.run.to_string(),
        attempt: e.attempt,
        regenerating: e.regenerating,
        also: e.also.map(|a| Box::new(error(*a))),
    }
}

fn artifacts(state: &Video, heads: &Heads, line: &[&Checkpoint]) -> ArtifactsWire {
    let mut a = ArtifactsWire::default();
    let id = state.video.id;
    for c in line {
        match &c.manifest {
            Manifest::Script { script, .. } => {
                a.script = Some(script.clone());
                a.script_checkpoint = Some(checkpoint(state, heads, c));
                a.script_next_version = Some(state.next_version(c.parent_id, crate::domain::Phase::Script));
            }
            Manifest::Storyboard { frames, narrations, .. } => {
                a.storyboard = frames.iter().map(|f| f.url(id)).collect();
                a.narrations =
                    narrations.iter().map(|n| NarrationWire { audio_url: n.audio.url(id), duration_ms: n.duration_ms }).collect();
                a.storyboard_checkpoint = Some(checkpoint(state, heads, c));
            }
            Manifest::Clips { clips, .. } => {
                a.clips = clips.iter().map(|c| ClipWire { preview_url: c.preview.url(id), frames: c.frames }).collect();
                a.clips_checkpoint = Some(checkpoint(state, heads, c));
            }
            Manifest::Render { video, poster, duration_ms, captions, .. } => {
                a.captions_url = captions.as_ref().map(|c| c.url(id));
                a.video_url = Some(video.url(id));
                a.poster_url = Some(poster.url(id));
                a.video_duration_ms = Some(*duration_ms);
                a.video_bytes = Some(video.bytes);
            }
        }
    }
    a
}

fn branch(line: &BranchLine<'_>) -> BranchWire {
    BranchWire {
        branch_name: line.branch.name.clone(),
        latest_checkpoint_id: line.head.map(|c| c.id.to_string()),
        phase_number: line.head.map(|c| c.phase.number()),
        status: line.head.map(|c| c.status),
        branch_status: line.status,
        can_continue: line.can_continue,
        forked_from: line.branch.forked_from.map(|c| c.to_string()),
    }
}

pub fn summary(state: &Video) -> VideoSummary {
    let s = video::summary(state);
    VideoSummary {
        video_id: state.video.id.to_string(),
        title: state.video.title.clone(),
        status: s.status,
        current_phase: s.current_phase,
        poster_url: s.poster_url,
        created_at: state.video.created_at,
        total_cost_micros: s.spent_micros,
        beats: state.video.beats,
    }
}

/// The status page of the branch a slice was read for.
pub fn status(slice: &StatusSlice, config: &EngineConfig) -> Result<VideoStatusWire, AppError> {
    let report = video::branch_report(&slice.state, &slice.progress_tries, &slice.branch, config.limits())
        .map_err(|missing| AppError::NotFound { what: Entity::Branch, id: missing.0 })?;
    Ok(status_wire(slice, report, config.fault_injection))
}

fn status_wire(slice: &StatusSlice, report: BranchReport<'_>, fault_injection: bool) -> VideoStatusWire {
    let state = &slice.state;
    let v = &state.video;
    let heads = Heads::of(state);
    VideoStatusWire {
        changes: v.changes,
        video_id: v.id.to_string(),
        title: v.title.clone(),
        prompt: v.prompt.clone(),
        beats: v.beats,
        auto_continue: v.auto_continue,
        budget_micros: v.budget_micros,
        branch: report.branch.name.clone(),
        status: report.status,
        current_phase: report.current_phase,
        error: report.error.map(error),
        current_checkpoint: report.pending.map(|h| checkpoint(state, &heads, h)),
        checkpoint_tree: tree(state, &heads, &slice.tree),
        tree_total: slice.tree_total,
        tree_page: slice.pages.tree,
        active_branches: report.branches.iter().map(branch).collect(),
        runs: slice.attempts.iter().map(|(r, tally)| run(state, r, *tally)).collect(),
        runs_total: slice.attempts_total,
        attempts_page: slice.pages.attempts,
        branch_cost_micros: slice.branch_spent_micros,
        allowed: report.allowed,
        retry_label: report.retry_label,
        progress: report.progress.map(progress),
        artifacts: artifacts(state, &heads, &report.line),
        total_cost_micros: report.spent_micros,
        estimate_micros: report.estimate_micros,
        fault_injection,
    }
}

pub fn continue_result(outcome: ContinueOutcome) -> ContinueResult {
    match outcome {
        ContinueOutcome::Started { run, kind, attempt } => ContinueResult::Started { run_id: run.to_string(), kind, attempt },
        ContinueOutcome::AlreadyRunning { run } => ContinueResult::AlreadyRunning { run_id: run.to_string() },
        ContinueOutcome::Completed { .. } => ContinueResult::Completed,
    }
}
