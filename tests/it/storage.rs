//! Commands, rule table and storage together, on SQLite (default) or PostgreSQL
//! (REELSMITH_TEST_DATABASE_URL). Providers here do no media work.

use crate::common::*;
use reelsmith::domain::rules::Refusal;
use reelsmith::domain::{
    BranchId, BranchStatus, CheckpointId, CheckpointStatus, Entity, Phase, RunId, RunKind, RunStatus, TryOutcome, VideoId,
};
use reelsmith::pipeline::CoreError;
use reelsmith::pipeline::commands::ContinueOutcome;
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::storage::{self, BranchRecord, CheckpointRecord, Constraint, RunRecord, StorageError, VideoState};

const FAIL_BEAT0_ONCE: &str = r#"[{"phase":2,"beat":0,"action":"fail","times":1,"message":"Replicate API error: 502 Bad Gateway"}]"#;

fn head(state: &VideoState, branch: &str) -> CheckpointId {
    state.branch_named(branch).unwrap().head_id.expect("branch has a head")
}

fn status_of(state: &VideoState, branch: &str) -> BranchStatus {
    reelsmith::domain::rules::branch_status(&state.branch_view(state.branch_named(branch).unwrap()))
}

/// Phase 1 done and approved, phase 2 failed on beat 0: the seed document's situation.
async fn failed_in_phase2(env: &TestEnv) -> (VideoId, CheckpointId) {
    let e = &env.engine;
    let video = new_video(e, "A fox learns to sail", 4, false, Some(FAIL_BEAT0_ONCE)).await;
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }));
    let script = head(&e.video_state(video).await.unwrap(), "main");
    let started = e.continue_video(video, Some(script), None, false).await.unwrap();
    assert!(matches!(started, ContinueOutcome::Started { kind: RunKind::Continue, attempt: 1, .. }));
    match step(e).await {
        WorkOutcome::Failed { error } => {
            assert!(error.contains("storyboard image for beat 1"), "{error}");
            assert!(error.contains("Replicate API error: 502 Bad Gateway"), "{error}");
        }
        other => panic!("phase 2 should fail, got {other:?}"),
    }
    (video, script)
}

#[tokio::test]
async fn a_new_video_queues_phase_one() {
    let env = env().await;
    let video = new_video(&env.engine, "A quiet harbour at dawn", 3, false, None).await;
    let state = env.engine.video_state(video).await.unwrap();
    assert_eq!(state.branches.len(), 1);
    assert_eq!(state.branches[0].name, "main");
    assert_eq!(state.runs.len(), 1);
    let run = &state.runs[0];
    assert_eq!((run.phase, run.kind, run.status, run.attempt), (Phase::Script, RunKind::Initial, RunStatus::Queued, 1));
    assert_eq!(status_of(&state, "main"), BranchStatus::Processing);
}

#[tokio::test]
async fn manual_approval_walks_all_four_phases() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "A quiet harbour at dawn", 3, false, None).await;
    for phase in Phase::ALL {
        assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }), "{phase:?}");
        let state = e.video_state(video).await.unwrap();
        assert_eq!(status_of(&state, "main"), BranchStatus::AwaitingApproval);
        let h = state.checkpoint(head(&state, "main")).unwrap();
        assert_eq!((h.phase, h.status, h.version), (phase, CheckpointStatus::Pending, 1));
        let outcome = e.approve(video, h.id, None).await.unwrap();
        if phase == Phase::Render {
            assert_eq!(outcome, ContinueOutcome::Completed { checkpoint: h.id });
        } else {
            assert!(matches!(outcome, ContinueOutcome::Started { kind: RunKind::Continue, .. }));
        }
    }
    let state = e.video_state(video).await.unwrap();
    assert_eq!(status_of(&state, "main"), BranchStatus::Completed);
    assert_eq!(state.checkpoints.len(), 4);
    assert!(state.checkpoints.iter().all(|c| c.status == CheckpointStatus::Approved));
    assert_eq!(state.video.title, "A quiet harbour at dawn", "the title comes from the script");
}

#[tokio::test]
async fn auto_continue_runs_to_the_end_with_kind_auto() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Auto all the way", 2, true, None).await;
    drain_expect(e, "SSSS").await;
    let state = e.video_state(video).await.unwrap();
    assert_eq!(status_of(&state, "main"), BranchStatus::Completed);
    let kinds: Vec<RunKind> = state.runs.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![RunKind::Initial, RunKind::Auto, RunKind::Auto, RunKind::Auto]);
}

#[tokio::test]
async fn the_seed_bug_cannot_happen_retry_from_an_approved_checkpoint() {
    let env = env().await;
    let e = &env.engine;
    let (video, script) = failed_in_phase2(&env).await;
    let state = e.video_state(video).await.unwrap();
    assert_eq!(status_of(&state, "main"), BranchStatus::Failed);
    let allowed = reelsmith::domain::rules::allowed_actions(&state.branch_view(&state.branches[0]), e.config.limits());
    assert!(!allowed.can_continue, "the status must not say can_continue while continue is refused");
    assert!(allowed.can_retry);

    let before = snapshot(e).await;
    let refused = e.continue_video(video, Some(script), None, false).await.unwrap_err();
    assert!(matches!(refused, CoreError::Refused(Refusal::AlreadyApprovedUseForceRetry)), "{refused:?}");
    assert_eq!(refused.to_string(), "refused: Checkpoint already approved. To retry, use force_retry=true");
    assert_eq!(snapshot(e).await, before, "a refused continue changed nothing");

    let retry = e.continue_video(video, Some(script), None, true).await.unwrap();
    assert!(matches!(retry, ContinueOutcome::Started { kind: RunKind::Retry, attempt: 2, .. }), "{retry:?}");
    let state = e.video_state(video).await.unwrap();
    assert_eq!(state.checkpoint(script).unwrap().status, CheckpointStatus::Approved, "checkpoint unchanged");
    assert_eq!(status_of(&state, "main"), BranchStatus::Processing, "failure cleared");
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }));
    let state = e.video_state(video).await.unwrap();
    let board = state.checkpoint(head(&state, "main")).unwrap();
    assert_eq!((board.phase, board.parent_id, board.version), (Phase::Storyboard, Some(script), 1));
}

#[tokio::test]
async fn fifty_concurrent_retries_make_exactly_one_run() {
    let env = env().await;
    let e = &env.engine;
    let (video, script) = failed_in_phase2(&env).await;
    let calls = (0..50).map(|_| {
        let e = e.clone();
        tokio::spawn(async move { e.continue_video(video, Some(script), None, true).await })
    });
    let results: Vec<ContinueOutcome> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let ids: std::collections::HashSet<_> = results.iter().map(|o| o.run().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every caller gets the same run: {results:?}");
    let started = results.iter().filter(|o| matches!(o, ContinueOutcome::Started { .. })).count();
    assert_eq!(started, 1, "exactly one call started it; the rest were told it was running");
    let state = e.video_state(video).await.unwrap();
    assert_eq!(state.runs.iter().filter(|r| r.kind == RunKind::Retry).count(), 1);
    assert_eq!(state.runs.iter().filter(|r| r.status.is_active()).count(), 1);
}

#[tokio::test]
async fn bad_ids_are_not_found_and_change_nothing() {
    let env = env().await;
    let e = &env.engine;
    let (video, _) = failed_in_phase2(&env).await;
    let other = new_video(e, "Another video", 2, false, None).await;
    step_ok(e).await;
    let foreign = head(&e.video_state(other).await.unwrap(), "main");
    let before = snapshot(e).await;

    let unknown = VideoId(uuid::Uuid::new_v4());
    let err = e.continue_video(unknown, None, None, true).await.unwrap_err();
    assert!(matches!(&err, CoreError::NotFound { what: Entity::Video, .. }), "{err:?}");
    assert!(err.to_string().contains("video not found"));

    let err = e.continue_video(video, Some(foreign), None, true).await.unwrap_err();
    assert!(matches!(&err, CoreError::NotFound { what: Entity::Checkpoint, .. }), "a checkpoint of another video: {err:?}");

    let err = e.continue_video(video, Some(CheckpointId(uuid::Uuid::new_v4())), None, true).await.unwrap_err();
    assert!(matches!(&err, CoreError::NotFound { what: Entity::Checkpoint, .. }));

    let err = e.continue_video(video, None, Some("nope"), true).await.unwrap_err();
    assert!(matches!(&err, CoreError::NotFound { what: Entity::Branch, .. }));

    let err = reelsmith::domain::VideoId::parse("video_id", "12345").unwrap_err();
    assert_eq!(err.field, "video_id");
    assert!(err.message.contains("not a valid video id"));

    let err = e.create_branch(video, foreign, "alt").await.unwrap_err();
    assert!(matches!(&err, CoreError::NotFound { what: Entity::Checkpoint, .. }));
    assert_eq!(snapshot(e).await, before, "nothing changed");
}

#[tokio::test]
async fn invalid_branch_names_and_edits_are_refused_and_change_nothing() {
    let env = env().await;
    let e = &env.engine;
    let (video, script) = failed_in_phase2(&env).await;
    let before = snapshot(e).await;
    for bad in ["", "Main", "-x", "a b", &"x".repeat(41)] {
        let err = e.create_branch(video, script, bad).await.unwrap_err();
        assert!(matches!(&err, CoreError::Invalid(i) if i.field == "branch_name"), "{bad:?}: {err:?}");
    }
    let err = e.create_branch(video, script, "main").await.unwrap_err();
    assert!(matches!(&err, CoreError::Refused(Refusal::BranchNameTaken { .. })), "{err:?}");
    for (json, field) in [
        ("{not json", "script"),
        (r#"{"title":"","beats":[{"narration":"a","visual":"b","duration_ms":1000}]}"#, "title"),
        (r#"{"title":"T","beats":[]}"#, "beats"),
        (r#"{"title":"T","beats":[{"narration":"a","visual":"b","duration_ms":1}]}"#, "beats[0].duration_ms"),
    ] {
        let err = e.edit_script(video, None, script, json).await.unwrap_err();
        assert!(matches!(&err, CoreError::Invalid(i) if i.field == field), "{json}: {err:?}");
    }
    let state = e.video_state(video).await.unwrap();
    let unchanged = serde_json::to_string(state.checkpoint(script).unwrap().manifest.script().unwrap()).unwrap();
    let err = e.edit_script(video, None, script, &unchanged).await.unwrap_err();
    assert!(matches!(&err, CoreError::Invalid(i) if i.message.contains("nothing changed")));
    assert_eq!(snapshot(e).await, before, "nothing changed");
}

#[tokio::test]
async fn the_retry_limit_is_enforced_and_changes_nothing() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":2,"beat":1,"action":"fail","times":100}]"#;
    let video = new_video(e, "Keeps failing", 3, true, Some(plan)).await;
    drain_expect(e, "SF").await;
    let script = head(&e.video_state(video).await.unwrap(), "main");
    for attempt in 2..=6 {
        let outcome = e.continue_video(video, Some(script), None, true).await.unwrap();
        assert!(matches!(outcome, ContinueOutcome::Started { kind: RunKind::Retry, attempt: a, .. } if a == attempt), "{outcome:?}");
        assert!(matches!(step(e).await, WorkOutcome::Failed { .. }));
    }
    let before = snapshot(e).await;
    let err = e.continue_video(video, Some(script), None, true).await.unwrap_err();
    assert!(matches!(err, CoreError::Refused(Refusal::RetryLimitReached { limit: 5 })), "{err:?}");
    assert_eq!(err.to_string(), "refused: Retry limit reached (5)");
    assert_eq!(snapshot(e).await, before);
    // Every try of the affected unit was recorded: 1 + 2 automatic per run, 6 runs.
    let tries = e.unit_tries(video).await.unwrap();
    let failed = tries.iter().filter(|t| t.outcome == TryOutcome::Transient && t.unit == 1).count();
    assert_eq!(failed, 18);
}

#[tokio::test]
async fn edit_then_retry_uses_the_new_version() {
    let env = env().await;
    let e = &env.engine;
    let (video, script) = failed_in_phase2(&env).await;
    let state = e.video_state(video).await.unwrap();
    let mut edited = state.checkpoint(script).unwrap().manifest.script().unwrap().clone();
    edited.beats[0].narration = "An edited first beat.".into();
    let v2 = e.edit_script(video, None, script, &serde_json::to_string(&edited).unwrap()).await.unwrap();
    let state = e.video_state(video).await.unwrap();
    let c = state.checkpoint(v2).unwrap();
    assert_eq!((c.version, c.status, c.parent_id), (2, CheckpointStatus::Pending, None));
    assert_eq!(head(&state, "main"), v2);
    assert_eq!(state.checkpoint(script).unwrap().status, CheckpointStatus::Approved, "v1 untouched");
    assert_eq!(status_of(&state, "main"), BranchStatus::AwaitingApproval);
    let outcome = e.continue_video(video, Some(v2), None, false).await.unwrap();
    assert!(matches!(outcome, ContinueOutcome::Started { kind: RunKind::Continue, attempt: 1, .. }));
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }));
    let state = e.video_state(video).await.unwrap();
    assert_eq!(state.checkpoint(head(&state, "main")).unwrap().parent_id, Some(v2));
}

#[tokio::test]
async fn a_branch_from_phase_one_runs_independently_of_failed_main() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":2,"beat":0,"action":"fail","times":2}]"#;
    let video = new_video(e, "Two roads", 2, false, Some(plan)).await;
    step_ok(e).await;
    let script = head(&e.video_state(video).await.unwrap(), "main");
    e.continue_video(video, Some(script), None, false).await.unwrap();
    assert!(matches!(step(e).await, WorkOutcome::Failed { .. }));
    e.create_branch(video, script, "alt").await.unwrap();
    let state = e.video_state(video).await.unwrap();
    assert_eq!(status_of(&state, "alt"), BranchStatus::AwaitingApproval);
    assert_eq!(status_of(&state, "main"), BranchStatus::Failed);
    // The fresh branch starts phase 2 as attempt 1; it fails too (times = 2), then retries.
    let started = e.continue_video(video, Some(script), Some("alt"), false).await.unwrap();
    assert!(matches!(started, ContinueOutcome::Started { kind: RunKind::Continue, attempt: 1, .. }));
    assert!(matches!(step(e).await, WorkOutcome::Failed { .. }));
    e.continue_video(video, Some(script), Some("main"), true).await.unwrap();
    e.continue_video(video, Some(script), Some("alt"), true).await.unwrap();
    drain_expect(e, "SS").await;
    e.set_auto_continue(video, true).await.unwrap();
    for branch in ["main", "alt"] {
        let state = e.video_state(video).await.unwrap();
        e.approve(video, head(&state, branch), Some(branch)).await.unwrap();
    }
    drain_expect(e, "SSSS").await;
    let state = e.video_state(video).await.unwrap();
    for branch in ["main", "alt"] {
        assert_eq!(status_of(&state, branch), BranchStatus::Completed, "{branch}");
    }
    let renders: Vec<_> = state.checkpoints.iter().filter(|c| c.phase == Phase::Render).collect();
    assert_eq!(renders.len(), 2);
    assert_ne!(renders[0].branch_id, renders[1].branch_id);
}

#[tokio::test]
async fn cancel_stops_a_hanging_phase_and_retry_follows() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":1,"action":"hang"}]"#;
    let video = new_video(e, "Never finishes", 2, false, Some(plan)).await;
    let worker = {
        let e = e.clone();
        tokio::spawn(async move { step(&e).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = snapshot(e).await;
    let err = e.continue_video(video, None, None, true).await.unwrap();
    assert!(matches!(err, ContinueOutcome::AlreadyRunning { .. }), "a retry while running returns the run");
    assert_eq!(snapshot(e).await, before);
    let cancelled = e.cancel(video, None).await.unwrap();
    assert_eq!(tokio::time::timeout(std::time::Duration::from_secs(5), worker).await.unwrap().unwrap(), WorkOutcome::Stopped);
    let state = e.video_state(video).await.unwrap();
    let run = state.runs.iter().find(|r| r.id == cancelled).unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(status_of(&state, "main"), BranchStatus::Failed);
    assert!(matches!(e.cancel(video, None).await.unwrap_err(), CoreError::Refused(Refusal::NothingToCancel)));
    let retry = e.continue_video(video, None, None, true).await.unwrap();
    assert!(matches!(retry, ContinueOutcome::Started { kind: RunKind::Retry, attempt: 2, .. }));
}

#[tokio::test]
async fn a_spent_budget_refuses_new_runs() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "On a budget", 2, false, None).await;
    step_ok(e).await;
    e.set_budget(video, Some(0)).await.unwrap();
    let script = head(&e.video_state(video).await.unwrap(), "main");
    let before = snapshot(e).await;
    let err = e.continue_video(video, Some(script), None, false).await.unwrap_err();
    assert!(matches!(err, CoreError::Refused(Refusal::BudgetExhausted { .. })), "{err:?}");
    assert_eq!(snapshot(e).await, before);
    assert!(matches!(e.set_budget(video, Some(-5)).await.unwrap_err(), CoreError::Invalid(_)));
    e.set_budget(video, None).await.unwrap();
    assert!(e.continue_video(video, Some(script), None, false).await.is_ok());
}

#[tokio::test]
async fn costs_are_recorded_per_run_and_memo_hits_are_free() {
    let env = env().await;
    let e = &env.engine;
    let (video, script) = failed_in_phase2(&env).await;
    e.continue_video(video, Some(script), None, true).await.unwrap();
    step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let phase2: Vec<_> = state.runs.iter().filter(|r| r.phase == Phase::Storyboard).collect();
    // Instant providers cost 1 micro-dollar a call: 3 stills and 4 narrations made in attempt 1,
    // 1 still in the retry.
    assert_eq!(phase2[0].cost_micros, 7);
    assert_eq!(phase2[1].cost_micros, 1);
    let tries = e.unit_tries(video).await.unwrap();
    let retry_tries: Vec<_> = tries.iter().filter(|t| t.run_id == phase2[1].id).collect();
    assert_eq!(retry_tries.iter().filter(|t| t.outcome == TryOutcome::Memo).count(), 7);
    assert!(retry_tries.iter().filter(|t| t.outcome == TryOutcome::Memo).all(|t| t.cost_micros == 0));
}

#[tokio::test]
async fn the_suite_runs_on_the_backend_it_was_asked_for() {
    let env = env().await;
    let wanted_postgres = std::env::var("REELSMITH_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    assert_eq!(is_postgres(&env), wanted_postgres, "{}", env.url);
}

/// Each named constraint, broken on purpose, is known by `storage::violated`: PostgreSQL names
/// the constraint, SQLite lists the index's columns (or names the index).
#[tokio::test]
async fn a_broken_constraint_is_known_by_name() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Constraints", 2, false, None).await;
    step_ok(e).await;
    let state = e.video_state(video).await.unwrap();
    let mut conn = e.store.pool().acquire().await.unwrap();
    let refused = |written: Result<(), StorageError>| {
        let error = written.expect_err("the schema refuses the write");
        assert!(error.is_unique_violation(), "{error:?}");
        storage::violated(&error)
    };

    let twin = BranchRecord { id: BranchId(uuid::Uuid::new_v4()), ..state.branches[0].clone() };
    assert_eq!(refused(storage::insert_branch(&mut conn, &twin).await), Some(Constraint::BranchName));

    let first = state.runs[0].clone();
    let queued = |attempt| RunRecord { id: RunId(uuid::Uuid::new_v4()), attempt, status: RunStatus::Queued, ..first.clone() };
    storage::insert_run(&mut conn, &queued(2)).await.unwrap();
    assert_eq!(refused(storage::insert_run(&mut conn, &queued(3)).await), Some(Constraint::OneActiveRun));
    let same_attempt = RunRecord { id: RunId(uuid::Uuid::new_v4()), status: RunStatus::Cancelled, ..first.clone() };
    assert_eq!(refused(storage::insert_run(&mut conn, &same_attempt).await), Some(Constraint::RunAttempt));

    let same_version = CheckpointRecord { id: CheckpointId(uuid::Uuid::new_v4()), ..state.checkpoints[0].clone() };
    assert_eq!(refused(storage::insert_checkpoint(&mut conn, &same_version).await), Some(Constraint::CheckpointVersion));

    assert_eq!(refused(storage::insert_video(&mut conn, &state.video).await), Some(Constraint::PrimaryKey { table: "videos" }));
    assert_eq!(storage::violated(&StorageError::Locked(3)), None);
}

/// SQLite (whatever database the suite runs on): commits leave the WAL alone
/// (`wal_autocheckpoint = 0` on every connection), and the store's background checkpointer copies
/// what they wrote into the database file soon after.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_commits_leave_the_wal_to_a_background_checkpoint() {
    let dir = std::env::temp_dir().join(format!("reelsmith-wal-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = reelsmith::storage::Store::open(&format!("sqlite://{}/reelsmith.db", dir.display()), 4).await.expect("open store");
    let every_connection: Vec<i64> = futures::future::join_all((0..4).map(|_| async {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query_scalar::<_, i64>("PRAGMA wal_autocheckpoint").fetch_one(&mut *conn).await.unwrap()
    }))
    .await;
    assert_eq!(every_connection, vec![0; 4], "no connection checkpoints on commit");

    let file = dir.join("reelsmith.db");
    let before = std::fs::metadata(&file).unwrap().len();
    // About 2,000 pages, twice what a commit would have checkpointed by itself.
    let mut tx = store.write().await.unwrap();
    sqlx::query("CREATE TABLE wal_probe (b BLOB)").execute(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO wal_probe VALUES (zeroblob(8000000))").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let grown = loop {
        let len = std::fs::metadata(&file).unwrap().len();
        if len >= before + 8_000_000 || std::time::Instant::now() > deadline {
            break len;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(grown >= before + 8_000_000, "the commit reached the database file ({before} → {grown} bytes)");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The video's change counter, as a reader sees it (what committed).
async fn changes_of(store: &reelsmith::storage::Store, video: VideoId) -> i64 {
    let mut tx = store.read().await.unwrap();
    storage::video_changes(&mut tx, video).await.unwrap()
}

/// A write transaction that ends without a commit, whether dropped on an error path or with its
/// task cancelled while it waits, leaves nothing behind, and the next writer is not kept waiting
/// (on SQLite every write transaction shares one connection, which the dropped one must hand
/// back rolled back).
#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_never_commits_leaves_nothing_and_the_next_writer_goes_on() {
    let env = env().await;
    let store = env.engine.store.clone();
    let video = new_video(&env.engine, "Dropped", 2, false, None).await;
    let before = changes_of(&store, video).await;
    {
        let mut tx = store.write().await.unwrap();
        assert!(storage::touch_video(&mut tx, video).await.unwrap());
    }
    let (wrote_tx, wrote) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let store = store.clone();
        async move {
            let mut first = storage::batch::Batch::new(store.backend());
            first
                .push("UPDATE videos SET changes = changes + 1 WHERE id = $1".into(), vec![storage::batch::Value::Text(video.to_string())]);
            let (mut tx, answers) = store.write_starting(Some(first)).await.unwrap();
            assert_eq!(answers[0].rows_affected, 1);
            assert!(storage::touch_video(&mut tx, video).await.unwrap());
            wrote_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        }
    });
    wrote.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let mut tx = store.write().await.expect("the next writer gets the database, not a lock timeout");
    assert!(storage::touch_video(&mut tx, video).await.unwrap());
    assert_eq!(changes_of(&store, video).await, before, "nothing of the three writes is visible before the commit");
    tx.commit().await.unwrap();
    assert_eq!(changes_of(&store, video).await, before + 1, "only the committed write counts");
}

/// A transaction whose first statements fail (here a row the schema refuses, after a write that
/// worked) reports the error and leaves no transaction open: the write before it is undone and
/// the next writer goes on.
#[tokio::test]
async fn a_write_whose_first_statements_fail_is_undone() {
    let env = env().await;
    let store = &env.engine.store;
    let video = new_video(&env.engine, "Refused", 2, false, None).await;
    let before = changes_of(store, video).await;
    let mut first = storage::batch::Batch::new(store.backend());
    first.push("UPDATE videos SET changes = changes + 1 WHERE id = $1".into(), vec![storage::batch::Value::Text(video.to_string())]);
    let n = first.first_placeholder();
    first.push(format!("INSERT INTO videos (id) VALUES (${n})"), vec![storage::batch::Value::Text(video.to_string())]);
    let Err(error) = store.write_starting(Some(first)).await else { panic!("the schema refuses a video without its columns") };
    assert!(matches!(error, StorageError::Database(_)), "{error:?}");
    assert_eq!(changes_of(store, video).await, before, "the first statement's write is undone");
    let mut tx = store.write().await.expect("no transaction was left open");
    assert!(storage::touch_video(&mut tx, video).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(changes_of(store, video).await, before + 1);
}

/// A write whose first statements lose a race (a unique index refuses them) runs again, like a
/// race lost in its work: the second attempt commits, and the first left nothing behind.
#[tokio::test]
async fn a_write_whose_first_statements_lose_a_race_runs_again() {
    use storage::batch::{Batch, Value};
    let env = env().await;
    let store = &env.engine.store;
    let video = new_video(&env.engine, "Raced", 2, false, None).await;
    let before = changes_of(store, video).await;
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let first = || {
        // The first attempt's branch is named like the video's `main` (the index refuses it).
        let name = if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 { "main" } else { "raced" };
        let mut batch = Batch::new(store.backend());
        batch.push("UPDATE videos SET changes = changes + 1 WHERE id = $1".into(), vec![Value::Text(video.to_string())]);
        let n = batch.first_placeholder();
        batch.push(
            format!("INSERT INTO branches (id, video_id, name, created_at) VALUES (${n}, ${}, ${}, 0)", n + 1, n + 2),
            vec![Value::Text(uuid::Uuid::new_v4().to_string()), Value::Text(video.to_string()), Value::Text(name.into())],
        );
        Some(batch)
    };
    store.write_retrying_starting(first, async |_, _| Ok::<_, StorageError>(())).await.expect("the second attempt commits");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let state = env.engine.video_state(video).await.unwrap();
    let mut names: Vec<&str> = state.branches.iter().map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["main", "raced"]);
    assert_eq!(changes_of(store, video).await, before + 1, "the first attempt's write is undone");
}

/// Statements deferred to the commit (`WriteTx::defer`) run with it: none of them before it, all
/// after it. One that fails fails the commit, and the whole transaction is undone, the writes
/// before it included; the next writer goes on.
#[tokio::test]
async fn deferred_statements_commit_with_their_transaction_or_not_at_all() {
    use storage::batch::{Statement, Value};
    let env = env().await;
    let store = &env.engine.store;
    let video = new_video(&env.engine, "Deferred", 2, false, None).await;
    let before = changes_of(store, video).await;
    let mut tx = store.write().await.unwrap();
    tx.defer(storage::touch_video_statement(video));
    tx.defer(storage::touch_video_statement(video));
    assert_eq!(storage::video_changes(&mut tx, video).await.unwrap(), before, "not run before the commit");
    tx.commit().await.unwrap();
    assert_eq!(changes_of(store, video).await, before + 2, "both ran with the commit");

    let mut tx = store.write().await.unwrap();
    assert!(storage::touch_video(&mut tx, video).await.unwrap());
    tx.defer(storage::touch_video_statement(video));
    tx.defer(Statement { sql: "INSERT INTO videos (id) VALUES ($1)", values: vec![Value::Text(video.to_string())] });
    let error = tx.commit().await.expect_err("the schema refuses a video without its columns");
    assert!(matches!(error, sqlx::Error::Database(_)), "{error:?}");
    assert_eq!(changes_of(store, video).await, before + 2, "nothing of the failed transaction stays");
    let mut tx = store.write().await.expect("the next writer goes on");
    assert!(storage::touch_video(&mut tx, video).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(changes_of(store, video).await, before + 3);
}
