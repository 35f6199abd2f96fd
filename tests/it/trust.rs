//! The core's promises under races: fenced leases, serialised writers, a live channel that never
//! misses a change, bounded failure recording, and blobs that `gc` cannot take from a committing
//! unit. On SQLite (default) or PostgreSQL (REELSMITH_TEST_DATABASE_URL).

use crate::common::*;
use reelsmith::domain::rules::Refusal;
use reelsmith::domain::{CheckpointId, Phase, RunStatus};
use reelsmith::pipeline::CoreError;
use reelsmith::pipeline::commands::ContinueOutcome;
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::storage::{self, Ender, Lease};
use std::time::Duration;
use tokio::sync::watch;

/// Two workers with the same owner id (as `hostname-pid-wN` used to collide across containers):
/// the first stalls mid-unit, its lease expires and the second takes the run over. The first
/// must then commit nothing: no progress, no unit, no checkpoint.
#[tokio::test]
async fn a_stalled_worker_whose_run_was_taken_over_commits_nothing() {
    let env = env().await;
    let e = env.engine.clone();
    let plan = r#"[{"phase":1,"action":"delay","ms":1500}]"#;
    let video = new_video(&e, "A stalled worker and its successor", 2, false, Some(plan)).await;
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let first = tokio::spawn({
        let (e, shutdown) = (e.clone(), shutdown.clone());
        async move { e.work_once("host-1-w0", &shutdown).await }
    });
    // Wait until the first worker holds the run, then let its lease lapse (a stall) and let the
    // second worker, with the same owner id, take it.
    loop {
        let state = e.video_state(video).await.unwrap();
        if state.runs[0].status == RunStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    expire_leases(&env).await;
    let second = e.work_once("host-1-w0", &shutdown).await.unwrap();
    assert!(matches!(second, WorkOutcome::Succeeded { .. }), "the successor finishes the run: {second:?}");
    let first = first.await.unwrap().unwrap();
    assert_eq!(first, WorkOutcome::Stopped, "the stalled worker stops instead of finishing");

    let state = e.video_state(video).await.unwrap();
    assert_eq!(state.checkpoints.len(), 1, "one checkpoint, from the successor");
    let run = &state.runs[0];
    assert_eq!((run.status, run.units_done, run.units_total), (RunStatus::Succeeded, 1, 1), "the unit is counted once");
    assert_eq!(run.lease_token, 2, "two claims, two tokens");
    let tries = e.unit_tries(video).await.unwrap();
    assert_eq!(tries.len(), 1, "one recorded try, the successor's: {tries:?}");
}

/// Every write a worker makes for a run is conditional on its token: with a stale one, nothing
/// changes, on either database.
#[tokio::test]
async fn writes_under_a_stale_token_change_nothing() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Fenced writes", 2, false, None).await;
    let claim = |owner: &'static str| async move {
        let mut tx = e.store.write().await.unwrap();
        let claimed = storage::claim_run(&mut tx, owner, reelsmith::pipeline::now_ms(), 10_000).await.unwrap();
        tx.commit().await.unwrap();
        claimed.expect("a claimable run").1
    };
    let stale = claim("w").await;
    expire_leases(&env).await;
    let current = claim("w").await;
    assert_eq!((stale.token, current.token), (1, 2));
    let before = snapshot(e).await;
    let mut tx = e.store.write().await.unwrap();
    let now = reelsmith::pipeline::now_ms();
    assert!(!storage::hold_lease(&mut tx, &stale, now, 10_000).await.unwrap());
    assert!(!storage::set_run_progress(&mut tx, &stale, 5, 5, 99).await.unwrap());
    assert!(!storage::record_finished(&mut tx, &stale, 5, &[], now).await.unwrap());
    assert!(!storage::release_run(&mut tx, &stale).await.unwrap());
    assert!(!storage::finish_run(&mut tx, stale.run, Ender::Worker(&stale), RunStatus::Succeeded, None, None, now).await.unwrap());
    assert!(!storage::lease_held(&mut tx, &stale, now).await.unwrap(), "a stale token holds nothing");
    assert!(storage::lease_held(&mut tx, &current, now).await.unwrap(), "the current token holds the run");
    assert!(!storage::lease_held(&mut tx, &current, now + 60_000).await.unwrap(), "an expired lease holds nothing");
    let other = Lease { owner: "someone else".into(), ..current.clone() };
    assert!(!storage::lease_held(&mut tx, &other, now).await.unwrap(), "another owner holds nothing");
    tx.commit().await.unwrap();
    assert_eq!(snapshot(e).await, before, "a stale token wrote something");
    let mut tx = e.store.write().await.unwrap();
    assert!(storage::hold_lease(&mut tx, &current, now, 10_000).await.unwrap(), "the current holder still may");
    tx.rollback().await.unwrap();
    let _ = video;
}

/// The page reads its snapshot, then opens the live channel. A change committed in between
/// must be announced by the channel's first message (the page refetches when it is ahead).
#[tokio::test]
async fn a_change_between_the_snapshot_and_the_live_channel_is_announced() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Nothing is missed", 2, false, None).await;
    let snapshot_state = e.status_page(video, "", Default::default()).await.unwrap().state;
    let shown = snapshot_state.video.changes;
    // The interleaving that used to lose the update: a worker commits between the two.
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }));
    let mut live = e.watch(video).await.unwrap();
    let first = live.next().await.unwrap().unwrap();
    assert!(first > shown, "the first message ({first}) is ahead of the snapshot ({shown}): the page refetches");
    let fresh = e.status_page(video, "", Default::default()).await.unwrap().state;
    assert_eq!(fresh.video.changes, first, "a refetch shows exactly what was announced");

    // And a change after the channel opened is announced too.
    let script = fresh.branch_named("main").unwrap().head_id.unwrap();
    e.continue_video(video, Some(script), None, false).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), live.next()).await.expect("announced").unwrap().unwrap();
    assert!(next > first);
    assert!(matches!(e.watch(reelsmith::domain::VideoId(uuid::Uuid::new_v4())).await, Err(CoreError::NotFound { .. })));
}

/// Every committed change of a video moves its counter: unit progress, failures and commands.
#[tokio::test]
async fn every_kind_of_change_moves_the_counter() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":1,"action":"fail","times":1,"message":"Replicate API error: 502 Bad Gateway"}]"#;
    let video = new_video(e, "Counted changes", 2, false, Some(plan)).await;
    let c0 = e.video_changes(video).await.unwrap();
    assert!(matches!(step(e).await, WorkOutcome::Failed { .. }));
    let c1 = e.video_changes(video).await.unwrap();
    assert!(c1 > c0, "a failed run moved the counter");
    e.continue_video(video, None, None, true).await.unwrap();
    let c2 = e.video_changes(video).await.unwrap();
    assert!(c2 > c1, "a retry moved the counter");
    let refused = e.continue_video(video, None, None, true).await.unwrap();
    assert!(matches!(refused, ContinueOutcome::AlreadyRunning { .. }));
}

/// Recording a failure when the database will not take the write: the worker gives up within
/// its lease (instead of looking busy for a minute with nobody renewing), and the run is taken
/// over and finished once the database is free again.
#[tokio::test]
async fn a_failure_that_cannot_be_recorded_is_handed_over_not_left_running() {
    let env = env().await;
    let e = env.engine.clone();
    let plan = r#"[{"phase":1,"action":"fail","times":1,"message":"Replicate API error: 502 Bad Gateway"},
                   {"phase":1,"action":"delay","ms":300}]"#;
    let video = new_video(&e, "The database is locked", 2, false, Some(plan)).await;
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let worker = tokio::spawn({
        let (e, shutdown) = (e.clone(), shutdown.clone());
        async move {
            let started = std::time::Instant::now();
            (e.work_once("locked-out", &shutdown).await, started.elapsed())
        }
    });
    // While the unit sleeps, take the database's write lock and keep it past the lease (2 s).
    loop {
        if e.video_state(video).await.unwrap().runs[0].status == RunStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SQLite: the write lock is database-wide. PostgreSQL: lock the runs table against writes.
    let mut blocker = e.store.write().await.unwrap();
    if is_postgres(&env) {
        sqlx::query("LOCK TABLE runs IN EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    }
    let (outcome, took) = worker.await.unwrap();
    assert!(
        matches!(outcome, Ok(WorkOutcome::Stopped) | Err(_)),
        "the worker stops (it cannot renew its lease) rather than reporting an outcome it could not record: {outcome:?}"
    );
    assert!(took < Duration::from_secs(10), "it stopped within its lease, not after a minute ({took:?})");
    sqlx::query("SELECT 1").execute(&mut *blocker).await.unwrap();
    blocker.rollback().await.unwrap();
    // The lease has lapsed: the next worker takes the run over and finishes it.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let next = e.work_once("successor", &shutdown).await.unwrap();
    assert!(!matches!(next, WorkOutcome::Idle), "the run was claimable again");
    let run = e.video_state(video).await.unwrap().runs[0].clone();
    assert!(!run.status.is_active(), "the run ended: {:?}", run.status);
    assert_eq!(run.lease_token, 2);
}

/// Edits and continues on one branch, fifty pairs at once: each pair is one edit of the pending
/// script and one approve-and-continue. Whatever the order, the branch head is a valid state
/// and no committed edit is lost off the branch.
#[tokio::test]
async fn fifty_racing_edit_and_continue_pairs_leave_a_valid_branch() {
    let env = env().await;
    let e = &env.engine;
    let mut videos = Vec::new();
    for i in 0..50 {
        videos.push(new_video(e, &format!("Race number {i}"), 2, false, None).await);
    }
    assert_eq!(drain(e).await.len(), 50, "every script is written");
    let mut handles = Vec::new();
    for (i, video) in videos.into_iter().enumerate() {
        let state = e.video_state(video).await.unwrap();
        let script: CheckpointId = state.branch_named("main").unwrap().head_id.unwrap();
        let reelsmith::domain::Manifest::Script { script: old, .. } = &state.checkpoint(script).unwrap().manifest else { unreachable!() };
        let mut edited = serde_json::to_value(old).unwrap();
        edited["title"] = serde_json::Value::String(format!("Edited title {i}"));
        let edited = edited.to_string();
        let (a, b) = (e.clone(), e.clone());
        handles.push(tokio::spawn(async move {
            let (edit, cont) =
                tokio::join!(a.edit_script(video, None, script, &edited), b.continue_video(video, Some(script), None, false));
            (video, script, edit, cont)
        }));
    }
    let mut pairs = Vec::new();
    for h in handles {
        pairs.push(h.await.unwrap());
    }
    // Whatever was queued runs to its end: a checkpoint commit must not drop an edit either.
    drain(e).await;
    for (video, script, edit, cont) in pairs {
        let state = e.video_state(video).await.unwrap();
        let main = state.branch_named("main").unwrap();
        let head = state.checkpoint(main.head_id.unwrap()).unwrap();
        match (&edit, &cont) {
            // The edit went first: the continue then approved... the edit? It named the old
            // checkpoint, which is no longer the head, so it must have been refused.
            (Ok(edited), Err(CoreError::Refused(_))) => {
                assert_eq!(head.id, *edited, "the edit is the head");
                assert!(state.runs.iter().all(|r| r.phase == Phase::Script), "no phase 2 run from a replaced version");
            }
            // The continue went first: the script is approved and phase 2 queued (and, drained,
            // made); the edit, made while that run was active, is refused.
            (Err(CoreError::Refused(r)), Ok(ContinueOutcome::Started { .. })) => {
                assert_eq!((head.phase, head.parent_id), (Phase::Storyboard, Some(script)), "phase 2 follows the approved script: {r:?}");
            }
            // Both committed: each decided on the state before the other's write (READ
            // COMMITTED without the video lock), and the phase 2 checkpoint would later drop the
            // edit off the branch.
            (Ok(edited), Ok(started)) => panic!("both the edit ({edited}) and the continue ({started:?}) committed"),
            other => panic!("unexpected pair of outcomes: {other:?}"),
        }
        let versions: Vec<u32> = state.checkpoints.iter().filter(|c| c.phase == Phase::Script).map(|c| c.version).collect();
        let mut sorted = versions.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=versions.len() as u32).collect::<Vec<_>>(), "versions without gaps");
        assert!(state.runs.iter().filter(|r| r.status.is_active()).count() <= 1);
    }
}

/// A cancel that finds its run already finished says so, instead of reporting "cancelled".
#[tokio::test]
async fn cancel_after_the_run_finished_is_refused_and_changes_nothing() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Too late to cancel", 2, false, None).await;
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }));
    let before = snapshot(e).await;
    let refused = e.cancel(video, None).await;
    assert!(matches!(refused, Err(CoreError::Refused(Refusal::NothingToCancel))), "{refused:?}");
    let after = snapshot(e).await;
    // The failed command's transaction rolled back, counter bump included.
    assert_eq!(after, before);
}

/// A unit that stores bytes already on disk (an old, unreferenced file) renews the file's time,
/// so `gc` does not delete it before the unit's memo row commits.
#[tokio::test]
async fn gc_keeps_an_old_blob_that_a_unit_has_just_stored_again() {
    let env = env().await;
    let e = &env.engine;
    let old = e.blobs.put(b"an old storyboard still", "image/png").await.unwrap();
    let path = e.blobs.local_path(&old.sha256).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(hour_ago).unwrap();
    // A unit makes the same bytes again and is about to commit its memo row when gc runs.
    let again = e.blobs.put(b"an old storyboard still", "image/png").await.unwrap();
    let report = e.gc(None).await.unwrap();
    assert_eq!(report.removed, 0, "{report:?}");
    assert!(e.blobs.intact(&again).await, "the unit's bytes are still there");
    // Without the second put, the same file is garbage.
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(hour_ago).unwrap();
    assert_eq!(e.gc(None).await.unwrap().removed, 1);
}

#[tokio::test]
async fn the_first_claim_of_a_run_takes_token_one_for_its_video() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Lease fields", 2, false, None).await;
    let mut tx = e.store.write().await.unwrap();
    let (run, lease): (_, Lease) =
        storage::claim_run(&mut tx, "w", reelsmith::pipeline::now_ms(), 10_000).await.unwrap().expect("claimable");
    tx.commit().await.unwrap();
    assert_eq!((lease.video, lease.run, lease.token), (video, run.id, 1));
}

/// A lease that expired is lost even before anyone claims the run: its worker (which stalled past
/// it) cannot renew it, and the run is free for the next claim.
#[tokio::test]
async fn an_expired_lease_cannot_be_renewed() {
    let env = env().await;
    let e = &env.engine;
    new_video(e, "Expired", 2, false, None).await;
    let mut tx = e.store.write().await.unwrap();
    let (_, lease) = storage::claim_run(&mut tx, "w", reelsmith::pipeline::now_ms(), 10_000).await.unwrap().expect("claimable");
    tx.commit().await.unwrap();
    expire_leases(&env).await;
    let mut tx = e.store.write().await.unwrap();
    assert!(!storage::hold_lease(&mut tx, &lease, reelsmith::pipeline::now_ms(), 10_000).await.unwrap());
    let next = storage::claim_run(&mut tx, "other", reelsmith::pipeline::now_ms(), 10_000).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next.map(|(_, l)| l.token), Some(2), "the run went to the next claim");
}

/// With auto-continue, the worker that writes a checkpoint claims the next phase's run in the
/// same commit (the claim any idle worker would make): the run is already the worker's, under a
/// first lease, so another worker finds nothing to take, and the same worker's next step runs it.
#[tokio::test]
async fn the_worker_that_writes_a_checkpoint_claims_the_next_run_in_the_same_commit() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Claimed with its checkpoint", 2, true, None).await;
    let commits = e.store.commits();
    step_ok(e).await;
    assert_eq!(e.store.commits() - commits, 2, "the script's claim, then its checkpoint with the next claim");
    let state = e.video_state(video).await.unwrap();
    let next = state.runs.iter().find(|r| r.phase == Phase::Storyboard).expect("auto-continue queued the storyboard");
    assert_eq!(next.status, RunStatus::Running);
    assert_eq!(next.lease_owner.as_deref(), Some("test-worker"));
    assert_eq!(next.lease_token, 1, "claimed once");
    assert!(next.units_total > 0 && next.units_done == 0, "planned, its progress started: {next:?}");

    let before = snapshot(e).await;
    let (_tx, rx) = watch::channel(false);
    assert_eq!(e.work_once("another-worker", &rx).await.unwrap(), WorkOutcome::Idle, "nothing left to claim");
    assert_eq!(snapshot(e).await, before, "an idle claim changes nothing");

    drain_expect(e, "SSS").await;
    let state = e.video_state(video).await.unwrap();
    assert_eq!(state.checkpoints.len(), 4);
    assert!(state.runs.iter().all(|r| r.status == RunStatus::Succeeded && r.lease_token == 1), "each run claimed once: {:?}", state.runs);
}

/// A run claimed with the last checkpoint that the worker has not started when it shuts down goes
/// back to the queue at once, for any worker, instead of waiting for its lease to lapse.
#[tokio::test]
async fn a_claimed_run_not_yet_started_goes_back_to_the_queue_at_shutdown() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Handed back at shutdown", 2, true, None).await;
    step_ok(e).await;
    let (_stop, stopped) = watch::channel(true);
    e.clone().run_worker("test-worker".to_string(), stopped).await;
    let state = e.video_state(video).await.unwrap();
    let next = state.runs.iter().find(|r| r.phase == Phase::Storyboard).unwrap();
    assert_eq!((next.status, next.lease_owner.as_deref()), (RunStatus::Queued, None), "handed back");

    let (_tx, rx) = watch::channel(false);
    let taken = e.work_once("another-worker", &rx).await.unwrap();
    assert!(matches!(taken, WorkOutcome::Succeeded { .. }), "another worker takes it at once: {taken:?}");
    let state = e.video_state(video).await.unwrap();
    let next = state.runs.iter().find(|r| r.phase == Phase::Storyboard).unwrap();
    assert_eq!((next.status, next.lease_token), (RunStatus::Succeeded, 2));
}

/// The next run's claim cannot cost a checkpoint: when the claim fails (here the run the fair
/// order picks belongs to a video whose row does not read), it is rolled back alone, to its
/// savepoint, and the checkpoint commits without it.
#[tokio::test]
async fn a_claim_that_fails_after_a_checkpoint_is_rolled_back_alone() {
    let env = env().await;
    let e = &env.engine;
    let first = new_video(e, "Its checkpoint commits", 2, true, None).await;
    let broken = new_video(e, "Its row does not read", 2, true, None).await;
    sqlx::query("UPDATE videos SET fault_plan = '{' WHERE id = $1").bind(broken.to_string()).execute(e.store.pool()).await.unwrap();
    // The first video's script run is claimed as usual; its checkpoint's claim then picks the
    // broken video's run (queued before the storyboard run the checkpoint queues).
    step_ok(e).await;
    let state = e.video_state(first).await.unwrap();
    assert_eq!(state.checkpoints.len(), 1, "the checkpoint committed");
    let next = state.runs.iter().find(|r| r.phase == Phase::Storyboard).expect("auto-continue queued the storyboard");
    assert_eq!((next.status, next.lease_token), (RunStatus::Queued, 0), "nothing claimed with it");
    let (status, token): (String, i64) = sqlx::query_as("SELECT status, lease_token FROM runs WHERE video_id = $1")
        .bind(broken.to_string())
        .fetch_one(e.store.pool())
        .await
        .unwrap();
    assert_eq!((status.as_str(), token), ("queued", 0), "the failed claim left no trace");
}

/// Every command on a video that does not exist answers "video not found" and writes nothing,
/// even when what else it names (a checkpoint, a branch) exists on another video.
#[tokio::test]
async fn commands_on_an_unknown_video_are_not_found_and_change_nothing() {
    let env = env().await;
    let e = &env.engine;
    let real = new_video(e, "A real video beside a missing one", 2, false, None).await;
    let script = step_ok(e).await;
    let state = e.video_state(real).await.unwrap();
    let reelsmith::domain::Manifest::Script { script: old, .. } = &state.checkpoint(script).unwrap().manifest else { unreachable!() };
    let mut edited = serde_json::to_value(old).unwrap();
    edited["title"] = serde_json::Value::String("Edited elsewhere".into());
    let edited = edited.to_string();
    let (before, commits) = (snapshot(e).await, e.store.commits());

    let ghost = reelsmith::domain::VideoId(uuid::Uuid::new_v4());
    let not_found = |what: &str, r: Result<(), CoreError>| match r {
        Err(CoreError::NotFound { what: reelsmith::domain::Entity::Video, id }) => assert_eq!(id, ghost.to_string(), "{what}"),
        other => panic!("{what}: {other:?}"),
    };
    not_found("continue", e.continue_video(ghost, None, None, false).await.map(drop));
    not_found("retry", e.continue_video(ghost, Some(script), Some("main"), true).await.map(drop));
    not_found("approve", e.approve(ghost, script, None).await.map(drop));
    not_found("edit", e.edit_script(ghost, None, script, &edited).await.map(drop));
    not_found("branch", e.create_branch(ghost, script, "elsewhere").await.map(drop));
    not_found("cancel", e.cancel(ghost, None).await.map(drop));
    not_found("auto-continue", e.set_auto_continue(ghost, true).await);
    not_found("budget", e.set_budget(ghost, Some(1_000)).await);
    not_found("regenerate", e.regenerate_beat(ghost, None, script, 0).await.map(drop));

    assert_eq!(e.store.commits(), commits, "no command committed");
    assert_eq!(snapshot(e).await, before, "nothing changed");
}

/// Waits (up to 10 s) until `n` of the engine's worker loops wait for work.
async fn waiting_loops(e: &reelsmith::pipeline::Engine, n: usize) {
    for _ in 0..10_000 {
        if e.waiting_workers() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{n} worker loops never waited (now {})", e.waiting_workers());
}

/// Waits (up to 10 s) until the video has `n` checkpoints.
async fn checkpoints(e: &reelsmith::pipeline::Engine, video: reelsmith::domain::VideoId, n: usize) -> reelsmith::domain::video::Video {
    for _ in 0..2_000 {
        let state = e.video_state(video).await.unwrap();
        if state.checkpoints.len() >= n {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the video never reached {n} checkpoints");
}

/// A 2-beat video stopped at its script checkpoint, and a worker loop (`waiting-loop`) waiting
/// for work: its stop signal and its task.
async fn a_script_and_a_waiting_loop(
    e: &reelsmith::pipeline::Engine,
    prompt: &str,
) -> (reelsmith::domain::VideoId, CheckpointId, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let video = new_video(e, prompt, 2, false, None).await;
    let script = step_ok(e).await;
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(e.clone().run_worker("waiting-loop".to_string(), stopped));
    waiting_loops(e, 1).await;
    (video, script, stop, worker)
}

/// A command that queues a run while a worker loop of this process waits for work claims the run
/// for that loop in its own transaction and hands it over (on SQLite): the loop runs it under that
/// first lease, without a claim of its own, so the approval and the checkpoint are the phase's only
/// commits (a claim of the loop's own would be a third; the lease's owner is cleared when the
/// run ends).
#[tokio::test]
async fn a_continue_hands_its_run_to_a_waiting_worker_loop_claimed_in_its_own_commit() {
    let env = env().await;
    let e = &env.engine;
    let (video, script, stop, worker) = a_script_and_a_waiting_loop(e, "Handed to a waiting loop").await;

    // PostgreSQL's commands hand nothing over (`Engine::reserve_worker` says why): there the loop
    // wakes and claims the run in a commit of its own.
    let handed = !is_postgres(&env);
    let commits = e.store.commits();
    let outcome = e.approve(video, script, None).await.unwrap();
    if handed {
        assert_eq!(e.waiting_workers(), 0, "the command took the waiting loop");
    }
    let ContinueOutcome::Started { run, .. } = outcome else { panic!("the approval started nothing: {outcome:?}") };
    let state = checkpoints(e, video, 2).await;
    let expected = if handed { 2 } else { 3 };
    assert_eq!(e.store.commits() - commits, expected, "the approval (with the claim on SQLite), the checkpoint");
    let storyboard = state.runs.iter().find(|r| r.id == run).unwrap();
    assert_eq!((storyboard.status, storyboard.lease_token), (RunStatus::Succeeded, 1), "run under the command's claim, the only one");
    stop.send(true).unwrap();
    worker.await.unwrap();
}

/// A command that set a waiting loop aside and then queues nothing (here a regeneration the rule
/// table refuses: a script has no beats to make again) changes nothing and lets the loop go: it
/// waits again, and a new video's first run is handed to it at once.
#[tokio::test]
async fn a_refused_command_lets_the_waiting_loop_go() {
    let env = env().await;
    let e = &env.engine;
    let (video, script, stop, worker) = a_script_and_a_waiting_loop(e, "Nothing to retry here").await;

    let before = snapshot(e).await;
    let refused = e.regenerate_beat(video, None, script, 0).await;
    assert!(matches!(refused, Err(CoreError::Refused(Refusal::NotRegenerable { phase: Phase::Script }))), "{refused:?}");
    assert_eq!(snapshot(e).await, before, "a refused command changes nothing");
    waiting_loops(e, 1).await;

    let next = new_video(e, "Taken by the same loop", 2, false, None).await;
    let state = checkpoints(e, next, 1).await;
    assert_eq!((state.runs[0].status, state.runs[0].lease_token), (RunStatus::Succeeded, 1));
    stop.send(true).unwrap();
    worker.await.unwrap();
}
