//! The status page's projection on small hand-built videos.
use super::*;
use crate::domain::model::BranchStatus;
use crate::domain::rules::Limits;
use uuid::Uuid;

const VIDEO: VideoId = VideoId(Uuid::from_u128(1));
const MAIN: BranchId = BranchId(Uuid::from_u128(2));

fn cp(n: u128, parent: Option<u128>, phase: Phase, version: u32, status: CheckpointStatus) -> Checkpoint {
    Checkpoint {
        id: CheckpointId(Uuid::from_u128(n)),
        video_id: VIDEO,
        branch_id: MAIN,
        parent_id: parent.map(|p| CheckpointId(Uuid::from_u128(p))),
        phase,
        version,
        status,
        origin: Origin::Generated,
        manifest: Manifest::Storyboard { frames: Vec::new(), seeds: Vec::new(), narrations: Vec::new() },
        run_id: None,
        created_at: n as i64,
        approved_at: None,
    }
}

fn run(n: u128, from: Option<u128>, phase: Phase, attempt: u32, status: RunStatus) -> Run {
    Run {
        id: RunId(Uuid::from_u128(1000 + n)),
        video_id: VIDEO,
        branch_id: MAIN,
        from_checkpoint: from.map(|c| CheckpointId(Uuid::from_u128(c))),
        phase,
        attempt,
        kind: if attempt > 1 { RunKind::Retry } else { RunKind::Continue },
        status,
        regenerate: None,
        error: None,
        failed_unit: None,
        units_total: 3,
        units_done: 0,
        cost_micros: 10,
        created_at: 100 + n as i64,
        started_at: None,
        finished_at: None,
        lease_owner: None,
        lease_expires_at: None,
        lease_token: 0,
    }
}

fn failed_try(run: &Run, unit: u32) -> UnitTry {
    UnitTry {
        run_id: run.id,
        unit,
        try_no: 1,
        outcome: TryOutcome::Permanent,
        message: None,
        provider: "test".into(),
        cost_micros: 0,
        started_at: 0,
        finished_at: 0,
    }
}

/// Phase 1 approved, phase 2 failed on beat 2.
fn failed_storyboard() -> Video {
    let mut failed = run(2, Some(10), Phase::Storyboard, 1, RunStatus::Failed);
    failed.error = Some("the artist dropped the pencil".into());
    failed.failed_unit = Some(1);
    Video {
        video: VideoInfo {
            id: VIDEO,
            owner: crate::domain::AccountId::LOCAL,
            prompt: "p".into(),
            title: "t".into(),
            beats: 3,
            seed: 0,
            auto_continue: false,
            fault_plan: FaultPlan::default(),
            budget_micros: None,
            created_at: 0,
            changes: 7,
        },
        branches: vec![Branch {
            id: MAIN,
            video_id: VIDEO,
            name: "main".into(),
            head_id: Some(CheckpointId(Uuid::from_u128(10))),
            forked_from: None,
            created_at: 0,
        }],
        checkpoints: vec![cp(10, None, Phase::Script, 1, CheckpointStatus::Approved)],
        runs: vec![run(1, None, Phase::Script, 1, RunStatus::Succeeded), failed],
        estimates: vec![],
        spent_total: None,
    }
}

#[test]
fn a_slice_reports_the_spend_of_every_run_not_only_those_it_read() {
    let mut video = failed_storyboard();
    video.runs.remove(0);
    video.spent_total = Some(20);
    let report = branch_report(&video, &[], "", Limits::default()).unwrap();
    assert_eq!((report.spent_micros, report.status), (20, BranchStatus::Failed));
}

#[test]
fn a_failed_phase_shows_its_error_progress_and_retry() {
    let video = failed_storyboard();
    let tries = [failed_try(&video.runs[1], 1)];
    let report = branch_report(&video, &tries, "", Limits::default()).unwrap();
    assert_eq!(report.status, BranchStatus::Failed);
    assert_eq!(report.current_phase, Some(Phase::Storyboard));
    let error = report.error.clone().unwrap();
    assert_eq!((error.run, error.phase, error.beat, error.attempt), (video.runs[1].id, Phase::Storyboard, Some(1), 1));
    assert_eq!(error.message, "the artist dropped the pencil");
    let progress = report.progress.clone().unwrap();
    assert_eq!(progress.run, video.runs[1].id);
    assert_eq!(progress.units, vec![UnitState::Waiting, UnitState::Failed, UnitState::Waiting]);
    assert!(report.allowed.can_retry && !report.allowed.can_continue);
    assert_eq!(report.retry_label, "Retry from Last Checkpoint (Retry #1 of 5)");
    assert_eq!(report.spent_micros, 20);
    assert_eq!(report.branches.len(), 1);
}

#[test]
fn an_edit_after_a_failure_keeps_the_error_card_and_continues_from_the_new_version() {
    let mut video = failed_storyboard();
    let mut edited = cp(11, None, Phase::Script, 2, CheckpointStatus::Pending);
    (edited.origin, edited.created_at) = (Origin::Edited, 200);
    video.checkpoints.push(edited);
    video.branches[0].head_id = Some(CheckpointId(Uuid::from_u128(11)));
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert_eq!(report.status, BranchStatus::AwaitingApproval);
    assert_eq!(report.error.map(|e| e.run), Some(video.runs[1].id));
    assert_eq!(report.progress, None);
    assert_eq!(report.current_phase, Some(Phase::Script));
    assert_eq!(report.pending.map(|c| c.version), Some(2));
    assert_eq!(report.retry_label, "Retry from Last Checkpoint (Script v2)");
    assert!(report.allowed.can_continue);
}

/// At the limit the (disabled) button said "Retry #6 of 5".
#[test]
fn at_the_retry_limit_the_label_says_the_retries_are_used() {
    let mut video = failed_storyboard();
    for attempt in 2..=6 {
        video.runs.push(run(attempt as u128 + 10, Some(10), Phase::Storyboard, attempt, RunStatus::Failed));
    }
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert!(!report.allowed.can_retry);
    assert_eq!(report.retry_label, "Retry from Last Checkpoint (all 5 retries used)");
}

/// A storyboard v1 waiting for approval, and a regeneration of its beat 2 that failed.
fn failed_regeneration(head_status: CheckpointStatus) -> Video {
    let mut video = failed_storyboard();
    video.runs.pop();
    video.checkpoints[0].status = CheckpointStatus::Approved;
    video.checkpoints.push(cp(11, Some(10), Phase::Storyboard, 1, head_status));
    video.branches[0].head_id = Some(CheckpointId(Uuid::from_u128(11)));
    let mut regen = run(3, Some(11), Phase::Storyboard, 1, RunStatus::Failed);
    regen.kind = RunKind::Regenerate;
    regen.regenerate = Some(Regenerate { beat: 1, seed: 9, of: CheckpointId(Uuid::from_u128(11)) });
    (regen.error, regen.failed_unit) = (Some("the artist dropped the pencil".into()), Some(1));
    video.runs.push(regen);
    video
}

/// A failed regeneration is no failed phase: the card says the beat failed and offers no retry
/// (it offered "The last attempt failed … You saved a new version" and a button that approved the
/// version instead), and the branch still waits for approval.
#[test]
fn a_failed_regeneration_says_so_and_offers_no_retry() {
    let video = failed_regeneration(CheckpointStatus::Pending);
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert_eq!(report.status, BranchStatus::AwaitingApproval);
    let error = report.error.expect("the failure is shown");
    assert!(error.regenerating);
    assert_eq!((error.run, error.phase, error.beat), (video.runs[1].id, Phase::Storyboard, Some(1)));
    assert!(report.allowed.can_continue, "approving the version is still the way on");
}

/// On a completed video a beat made again that failed said nothing at all.
#[test]
fn a_failed_regeneration_on_an_approved_version_is_shown_too() {
    let mut video = failed_regeneration(CheckpointStatus::Approved);
    video.checkpoints[1].phase = Phase::Render;
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert_eq!(report.status, BranchStatus::Completed);
    assert!(report.error.is_some_and(|e| e.regenerating && e.beat == Some(1)));
}

/// On a failed branch a beat made again that failed too is said beside the branch's failure,
/// which keeps its retry (the card said only the branch's failure, and the person's click went
/// unanswered). One that failed before the branch's failure is not news.
#[test]
fn a_failed_regeneration_on_a_failed_branch_is_said_beside_its_failure() {
    let mut video = failed_regeneration(CheckpointStatus::Approved);
    let regen = video.runs.iter().position(|r| r.regenerate.is_some()).unwrap();
    // The clips failed (created at 102), then beat 2's still was made again and failed (103).
    let mut clips = run(2, Some(11), Phase::Clips, 1, RunStatus::Failed);
    clips.error = Some("the camera jammed".into());
    video.runs.push(clips);
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert_eq!(report.status, BranchStatus::Failed);
    let error = report.error.clone().expect("the branch's failure is shown");
    assert_eq!((error.phase, error.regenerating, error.message.as_str()), (Phase::Clips, false, "the camera jammed"));
    assert!(report.allowed.can_retry, "its retry is still offered");
    let also = error.also.expect("the regeneration's failure is said too");
    assert_eq!((also.run, also.phase, also.beat, also.regenerating), (video.runs[regen].id, Phase::Storyboard, Some(1), true));

    // The regeneration failed before the branch did: only the branch's failure.
    video.runs[regen].created_at = 50;
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert!(report.error.is_some_and(|e| e.phase == Phase::Clips && e.also.is_none()));
}

/// A version waiting for approval that nobody edited is no "new version you saved" after a
/// failure: no card (it said so for any failed latest run).
#[test]
fn only_an_edit_after_the_failure_keeps_its_card() {
    let mut video = failed_storyboard();
    video.checkpoints.push(cp(11, None, Phase::Script, 2, CheckpointStatus::Pending));
    video.branches[0].head_id = Some(CheckpointId(Uuid::from_u128(11)));
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert_eq!((report.status, report.error), (BranchStatus::AwaitingApproval, None), "a generated version");
}

/// At a limit of 1 or 0 the label is no "all 1 retries used".
#[test]
fn the_retry_limit_label_reads_well_at_one_and_none() {
    let mut video = failed_storyboard();
    video.runs.push(run(20, Some(10), Phase::Storyboard, 2, RunStatus::Failed));
    let one = branch_report(&video, &[], "main", Limits { retry_limit: 1 }).unwrap();
    assert_eq!(one.retry_label, "Retry from Last Checkpoint (its one retry used)");
    video.runs.pop();
    let none = branch_report(&video, &[], "main", Limits { retry_limit: 0 }).unwrap();
    assert_eq!(none.retry_label, "Retry from Last Checkpoint (no retries allowed)");
}

#[test]
fn a_running_phase_shows_its_own_progress() {
    let mut video = failed_storyboard();
    video.runs.push(run(3, Some(10), Phase::Storyboard, 2, RunStatus::Running));
    let report = branch_report(&video, &[], "main", Limits::default()).unwrap();
    assert_eq!(report.status, BranchStatus::Processing);
    assert_eq!(report.error, None);
    assert_eq!(report.progress.map(|p| (p.run, p.units)), Some((video.runs[2].id, vec![UnitState::Running; 3])));
    assert!(report.allowed.can_cancel);
}

#[test]
fn an_unknown_branch_is_named_in_the_error() {
    let video = failed_storyboard();
    assert_eq!(branch_report(&video, &[], "nope", Limits::default()).unwrap_err(), NoSuchBranch("nope".into()));
    assert_eq!(summary(&video).status, BranchStatus::Failed);
}
