//! The pages read bounded slices (issue 12, item 5): the status page and the list say exactly
//! what the whole history says, and a long history is shown one page at a time.
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use crate::common::*;
use reelsmith::api::convert;
use reelsmith::domain::video::{ATTEMPTS_PAGE, Checkpoint, Pages, Run, RunStart, RunTally, StatusSlice, TREE_PAGE, VIDEOS_PAGE};
use reelsmith::domain::{
    AccountId, CheckpointId, CheckpointStatus, NewVideo, Origin, Phase, RunId, RunKind, RunStatus, TryOutcome, VideoId,
};
use reelsmith::pipeline::{Engine, EngineConfig};
use reelsmith::storage;

/// The slice the page would read if it read everything: the whole state, every checkpoint in
/// the tree, every run of the branch in the Attempts table, every try.
async fn whole_slice(e: &Engine, video: VideoId, branch: &str, estimates_from: &StatusSlice) -> StatusSlice {
    let mut state = e.video_state(video).await.unwrap();
    state.estimates = estimates_from.state.estimates.clone();
    let tries = e.unit_tries(video).await.unwrap();
    let id = state.branch_named(branch).unwrap().id;
    let mut runs: Vec<Run> = state.runs.iter().filter(|r| r.branch_id == id).cloned().collect();
    runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id.0)));
    let attempts: Vec<(Run, RunTally)> = runs
        .into_iter()
        .map(|r| {
            // A storyboard run's units are its script's stills, then one narration per beat.
            let script = r.from_checkpoint.and_then(|c| state.checkpoint(c)).and_then(|c| c.manifest.script());
            let first_narration = script.filter(|_| r.phase == Phase::Storyboard).map(|s| s.beats.len() as u32);
            let mut t = RunTally::default();
            for x in tries.iter().filter(|x| x.run_id == r.id) {
                match x.outcome {
                    TryOutcome::Ok => t.calls += 1,
                    TryOutcome::Memo => t.memo_hits += 1,
                    _ => t.failed_tries += 1,
                }
                if matches!(x.outcome, TryOutcome::Ok | TryOutcome::Memo) && first_narration.is_some_and(|n| x.unit >= n) {
                    t.narrations += 1;
                }
            }
            (r, t)
        })
        .collect();
    StatusSlice {
        tree: state.checkpoints.clone(),
        tree_total: state.checkpoints.len() as u32,
        attempts_total: attempts.len() as u32,
        branch_spent_micros: attempts.iter().map(|(r, _)| r.cost_micros).sum(),
        attempts,
        branch: branch.to_string(),
        pages: Pages::default(),
        progress_tries: tries,
        state,
    }
}

async fn script_edit(e: &Engine, video: VideoId, on: CheckpointId, narration: &str) -> String {
    let state = e.video_state(video).await.unwrap();
    let mut script = state.checkpoint(on).unwrap().manifest.script().unwrap().clone();
    script.beats[0].narration = narration.into();
    serde_json::to_string(&script).unwrap()
}

/// Failures, retries, an edit and a branch: on each branch, the page read from a slice is the
/// page read from the whole history, field for field.
#[tokio::test]
async fn the_bounded_page_says_what_the_whole_history_says() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":2,"beat":1,"action":"fail","times":2,"message":"upstream 502"}]"#;
    let video = new_video(e, "A kite that will not come down", 3, false, Some(plan)).await;
    let script = step_ok(e).await;
    e.continue_video(video, Some(script), None, false).await.unwrap();
    drain_expect(e, "F").await;
    e.continue_video(video, Some(script), None, true).await.unwrap();
    drain_expect(e, "F").await;
    let failed = e.status_page(video, "main", Pages::default()).await.unwrap();
    assert!(failed.progress_tries.iter().all(|t| Some(t.run_id) == failed.state.runs.last().map(|r| r.id)), "only the failed run's tries");
    e.continue_video(video, Some(script), None, true).await.unwrap();
    drain_expect(e, "S").await;
    e.create_branch(video, script, "calmer").await.unwrap();
    let edit = script_edit(e, video, script, "A calmer opening line.").await;
    e.edit_script(video, Some("calmer"), script, &edit).await.unwrap();
    for branch in ["main", "calmer"] {
        let sliced = e.status_page(video, branch, Pages::default()).await.unwrap();
        let whole = whole_slice(e, video, branch, &sliced).await;
        let (got, want) = (convert::status(&sliced, &e.config).unwrap(), convert::status(&whole, &e.config).unwrap());
        assert_eq!(got, want, "branch {branch}");
    }
    let main = convert::status(&e.status_page(video, "main", Pages::default()).await.unwrap(), &e.config).unwrap();
    let failed: Vec<bool> = main.runs.iter().map(|r| r.failed_tries > 0).collect();
    assert_eq!(failed, vec![false, true, true, false], "newest first, with their tallies");
}

/// Adds `count` script versions beside the video's first one (what that many edits make).
async fn grow_checkpoints(e: &Engine, video: VideoId, count: usize) -> Vec<Checkpoint> {
    let state = e.video_state(video).await.unwrap();
    let first = state.checkpoints.iter().find(|c| c.phase == Phase::Script).unwrap().clone();
    let versions: Vec<Checkpoint> = (0..count)
        .map(|i| Checkpoint {
            id: CheckpointId(Uuid::new_v4()),
            version: first.version + 1 + i as u32,
            status: CheckpointStatus::Pending,
            origin: Origin::Edited,
            run_id: None,
            created_at: first.created_at + 1 + i as i64,
            approved_at: None,
            ..first.clone()
        })
        .collect();
    let mut tx = e.store.write().await.unwrap();
    for c in &versions {
        storage::insert_checkpoint(&mut tx, c).await.unwrap();
    }
    tx.commit().await.unwrap();
    versions
}

/// Adds one finished storyboard run from each of `from`, on `main`.
async fn grow_runs(e: &Engine, video: VideoId, from: &[Checkpoint]) -> Vec<RunId> {
    let state = e.video_state(video).await.unwrap();
    let main = state.branch_named("main").unwrap().clone();
    let mut tx = e.store.write().await.unwrap();
    let mut ids = Vec::new();
    for (i, c) in from.iter().enumerate() {
        let start = RunStart { phase: Phase::Storyboard, from: Some(c.id), attempt: 1, kind: RunKind::Continue, regenerate: None };
        let run =
            Run { status: RunStatus::Succeeded, ..Run::queued(RunId(Uuid::new_v4()), &main, start, c.created_at + 10_000 + i as i64) };
        storage::insert_run(&mut tx, &run).await.unwrap();
        ids.push(run.id);
    }
    tx.commit().await.unwrap();
    ids
}

#[tokio::test]
async fn a_long_history_is_read_one_page_at_a_time() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "A lighthouse with too many drafts", 2, true, None).await;
    drain_expect(e, "SSSS").await;
    let grown = grow_checkpoints(e, video, 2 * TREE_PAGE as usize + 30).await;
    let extra_runs = grow_runs(e, video, &grown[..ATTEMPTS_PAGE as usize + 20]).await;
    let all = e.video_state(video).await.unwrap();

    let first = e.status_page(video, "main", Pages::default()).await.unwrap();
    assert_eq!(first.state.checkpoints.len(), 4, "the rules read main's line only");
    assert!(first.state.runs.len() <= 5, "and only the runs they ask about: {}", first.state.runs.len());
    assert_eq!(first.state.spent_micros(), all.spent_micros(), "the spend still counts every run");
    assert_eq!((first.tree_total as usize, first.attempts_total as usize), (all.checkpoints.len(), all.runs.len()));

    let mut seen = HashSet::new();
    let pages = all.checkpoints.len().div_ceil(TREE_PAGE as usize) as u32;
    for page in 0..pages {
        let slice = e.status_page(video, "main", Pages { tree: page, attempts: 0 }).await.unwrap();
        let known: HashSet<CheckpointId> = slice.tree.iter().map(|c| c.id).collect();
        assert!(slice.tree.iter().all(|c| c.parent_id.is_none_or(|p| known.contains(&p))), "page {page} is a tree");
        assert!(slice.tree.len() <= TREE_PAGE as usize + 3, "page {page} holds a page and its ancestors");
        seen.extend(known);
    }
    assert_eq!(seen.len(), all.checkpoints.len(), "the pages together show every checkpoint");
    let newest = all.checkpoints.iter().max_by_key(|c| (c.created_at, c.id.0)).unwrap().id;
    assert!(first.tree.iter().any(|c| c.id == newest), "the first page holds the newest");
    let past = e.status_page(video, "main", Pages { tree: pages + 5, attempts: pages + 5 }).await.unwrap();
    assert!(past.tree.is_empty() && past.attempts.is_empty(), "a page past the end is empty, not an error");

    let mut runs = Vec::new();
    for page in 0..all.runs.len().div_ceil(ATTEMPTS_PAGE as usize) as u32 {
        let slice = e.status_page(video, "main", Pages { tree: 0, attempts: page }).await.unwrap();
        assert!(slice.attempts.len() <= ATTEMPTS_PAGE as usize);
        runs.extend(slice.attempts.into_iter().map(|(r, _)| r));
    }
    let order: Vec<(i64, Uuid)> = runs.iter().map(|r| (r.created_at, r.id.0)).collect();
    assert!(order.windows(2).all(|w| w[0] > w[1]), "newest first, no run twice");
    assert_eq!(runs.len(), all.runs.len());
    assert!(extra_runs.iter().all(|id| runs.iter().any(|r| r.id == *id)));

    let wire = convert::status(&first, &e.config).unwrap();
    assert_eq!(
        (wire.runs.len(), wire.runs_total as usize, wire.tree_total as usize),
        (ATTEMPTS_PAGE as usize, all.runs.len(), all.checkpoints.len())
    );
    assert_eq!(wire.status, reelsmith::domain::BranchStatus::Completed, "the long history does not change what main says");
}

#[tokio::test]
async fn the_list_is_read_one_page_at_a_time() {
    let env = env_with(
        reelsmith::pipeline::providers::Providers::instant(),
        EngineConfig { quotas: reelsmith::domain::Quotas::UNLIMITED, ..fast_config() },
    )
    .await;
    let e = &env.engine;
    let other = {
        let key = e.sign_up("pages-other@example.org", "a long enough password", std::net::Ipv4Addr::LOCALHOST.into()).await.unwrap();
        e.session_account(&key).await.unwrap().unwrap()
    };
    e.create_video(other, NewVideo::parse("Not mine", 1, false, None, true).unwrap(), Some(1)).await.unwrap();
    let count = VIDEOS_PAGE as usize + 3;
    let mut mine = Vec::new();
    for i in 0..count {
        mine.push(new_video(e, &format!("Video number {i}"), 1, false, None).await);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut listed = Vec::new();
    for page in 0..3 {
        let p = e.video_page(AccountId::LOCAL, page).await.unwrap();
        assert_eq!((p.total as usize, p.page), (count, page));
        listed.extend(p.videos.iter().map(|v| v.video.id));
    }
    let created: HashMap<VideoId, usize> = mine.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    assert_eq!(listed.len(), count, "every video once, and not the other account's");
    let positions: Vec<usize> = listed.iter().map(|v| created[v]).collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "newest first: {positions:?}");
}

/// A page number that is not a page is a clear error, and a page past the end is empty.
#[tokio::test(flavor = "multi_thread")]
async fn page_numbers_are_checked_at_the_door() {
    let env = env().await;
    let web = crate::web::Web::start(&env, reelsmith::server::options::AuthMode::None).await;
    let video = new_video(&env.engine, "Paged", 1, false, None).await.to_string();
    for bad in ["-1", "two", "99999999999"] {
        let answer = web.call(None, "get_status", &[("video_id", video.as_str()), ("tree_page", bad)]).await;
        assert!((400..500).contains(&answer.status), "tree_page={bad}: {} {}", answer.status, answer.body);
        let answer = web.call(None, "list_videos", &[("page", bad)]).await;
        assert!((400..500).contains(&answer.status), "page={bad}: {} {}", answer.status, answer.body);
    }
    let far = web.call(None, "get_status", &[("video_id", video.as_str()), ("tree_page", "7"), ("attempts_page", "7")]).await;
    assert_eq!(far.status, 200, "{}", far.body);
    assert_eq!((far.body["checkpoint_tree"].as_array().unwrap().len(), far.body["runs"].as_array().unwrap().len()), (0, 0));
    assert_eq!(far.body["runs_total"], 1, "the totals still count everything");
    let list = web.call(None, "list_videos", &[("page", "3")]).await;
    assert_eq!((list.status, list.body["videos"].as_array().unwrap().len(), list.body["total"].clone()), (200, 0, serde_json::json!(1)));
}

/// A regenerated beat, then two edits: the estimate the page shows (read from a slice) is what
/// the run then costs. The run takes its seeds from the branch's newest
/// storyboard, which after an edit is off the branch's line; planned with the video's seeds, the
/// page counted the regenerated beat as new.
#[tokio::test]
async fn the_pages_estimate_plans_with_the_seeds_the_run_will_use() {
    let env = env().await;
    let e = &env.engine;
    let video = new_video(e, "Three lanterns on a quay", 3, false, None).await;
    let script = step_ok(e).await;
    e.continue_video(video, Some(script), None, false).await.unwrap();
    let board = step_ok(e).await;
    e.regenerate_beat(video, None, board, 2).await.unwrap();
    step_ok(e).await;
    let edit = async |from: CheckpointId, beat: usize, visual: &str| {
        let state = e.video_state(video).await.unwrap();
        let mut script = state.checkpoint(from).unwrap().manifest.script().unwrap().clone();
        script.beats[beat].visual = visual.into();
        e.edit_script(video, None, from, &serde_json::to_string(&script).unwrap()).await.unwrap()
    };
    // Beat 3's picture changes: drawn again, with its regenerated seed.
    let second = edit(script, 2, "A red lantern swinging.").await;
    e.continue_video(video, Some(second), None, false).await.unwrap();
    step_ok(e).await;
    // Then beat 1's: only that still is new.
    let third = edit(second, 0, "A harbour wall in fog.").await;
    let shown = convert::status(&e.status_page(video, "main", Pages::default()).await.unwrap(), &e.config).unwrap();
    e.continue_video(video, Some(third), None, false).await.unwrap();
    step_ok(e).await;
    let run = e.video_state(video).await.unwrap().runs.last().unwrap().clone();
    assert_eq!(shown.estimate_micros, run.cost_micros, "the estimate is what the run cost");
    assert_eq!(run.cost_micros, 1, "one still drawn, at the instant provider's price");
}

/// A beat made again that failed after its branch failed is said on the status page, under the
/// branch's failure, which keeps its retry (the page said only the branch's failure).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_regeneration_on_a_failed_branch_is_on_the_page() {
    let env = env().await;
    let e = &env.engine;
    let plan = r#"[{"phase":3,"action":"fail","times":9,"message":"the camera jammed"}]"#;
    let video = new_video(e, "A storm at the lighthouse", 2, true, Some(plan)).await;
    drain_expect(e, "SSF").await;
    let state = e.video_state(video).await.unwrap();
    let main = state.branch_named("main").unwrap().clone();
    let board = state.checkpoints.iter().find(|c| c.phase == Phase::Storyboard).unwrap().id;
    let regenerate = Some(reelsmith::domain::video::Regenerate { beat: 1, seed: 7, of: board });
    let start = RunStart { phase: Phase::Storyboard, from: Some(board), attempt: 1, kind: RunKind::Regenerate, regenerate };
    let later = state.runs.iter().map(|r| r.created_at).max().unwrap() + 1;
    let regen = Run::queued(RunId(Uuid::new_v4()), &main, start, later);
    let mut tx = e.store.write().await.unwrap();
    storage::insert_run(&mut tx, &regen).await.unwrap();
    tx.commit().await.unwrap();
    // A run is inserted queued; its end is written apart.
    sqlx::query("UPDATE runs SET status = 'failed', error = $1, failed_unit = 1 WHERE id = $2")
        .bind("the pencil broke")
        .bind(regen.id.to_string())
        .execute(e.store.pool())
        .await
        .unwrap();

    let web = crate::web::Web::start(&env, reelsmith::server::options::AuthMode::None).await;
    let page = web.get(None, &format!("/videos/{video}"), &[]).await;
    let html = page.body.as_str().unwrap_or_default();
    assert_eq!(page.status, 200, "{html}");
    for said in [
        "The clips phase failed",
        "the camera jammed",
        "Making beat 2 of the storyboard again failed too, and the storyboard is unchanged: the pencil broke",
        "Retry from Last Checkpoint",
    ] {
        assert!(html.contains(said), "the page says {said:?}");
    }
}
