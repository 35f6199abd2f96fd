//! Every function of `storage::queries` against the real database (SQLite, or PostgreSQL under
//! `make test-postgres`). `sqlx::Any` cannot check SQL at compile time, so this is the check: each
//! statement runs on each backend, and what it wrote reads back as the same domain value.
use crate::common::*;
use reelsmith::domain::video::{Branch, Checkpoint, Regenerate, Run, RunStart, UnitTry, VideoInfo};
use reelsmith::domain::{
    BlobRef, BranchId, CheckpointId, CheckpointStatus, FaultPlan, Manifest, Origin, Phase, RunId, RunKind, RunStatus, Script, TryOutcome,
    VideoId,
};
use reelsmith::storage::{self, Ender, FinishedUnit, MemoEntry, NewBlob, StorageError};
use uuid::Uuid;

fn video_info(now: i64) -> VideoInfo {
    VideoInfo {
        id: VideoId(Uuid::new_v4()),
        owner: reelsmith::domain::AccountId::LOCAL,
        prompt: "Every statement, once".into(),
        title: "Queries".into(),
        beats: 2,
        seed: u64::MAX - 7,
        auto_continue: false,
        fault_plan: FaultPlan::parse(r#"[{"phase":2,"beat":1,"action":"fail","times":1}]"#, 2).unwrap(),
        budget_micros: None,
        created_at: now,
        changes: 0,
    }
}

fn script_manifest() -> Manifest {
    let script = Script::parse_edit(
        r#"{"title":"Queries","beats":[{"narration":"One.","visual":"A desk.","duration_ms":1000},{"narration":"Two.","visual":"A lamp.","duration_ms":1000}]}"#,
    )
    .expect("a valid script");
    Manifest::Script { script, seed: 3 }
}

#[tokio::test]
async fn every_query_runs_and_reads_back_what_it_wrote() {
    let env = env().await;
    let store = &env.engine.store;
    let now = reelsmith::pipeline::now_ms();
    let mut tx = store.write().await.unwrap();

    // Videos.
    let mut info = video_info(now);
    storage::insert_video(&mut tx, &info).await.unwrap();
    assert_eq!(storage::get_video(&mut tx, info.id).await.unwrap(), Some(info.clone()));
    storage::set_video_title(&mut tx, info.id, "Renamed").await.unwrap();
    storage::set_auto_continue(&mut tx, info.id, true).await.unwrap();
    storage::set_budget(&mut tx, info.id, Some(1_500_000)).await.unwrap();
    storage::lock_video(&mut tx, store.backend(), info.id).await.unwrap();
    assert!(storage::touch_video(&mut tx, info.id).await.unwrap());
    assert!(!storage::touch_video(&mut tx, VideoId(Uuid::new_v4())).await.unwrap(), "no such video");
    assert_eq!(storage::video_changes(&mut tx, info.id).await.unwrap(), 1);
    assert_eq!(storage::video_changes(&mut tx, VideoId(Uuid::new_v4())).await.unwrap(), 0);
    (info.title, info.auto_continue, info.budget_micros, info.changes) = ("Renamed".into(), true, Some(1_500_000), 1);
    assert_eq!(storage::list_videos(&mut tx, reelsmith::domain::AccountId::LOCAL, 10).await.unwrap(), vec![info.clone()]);

    // A branch and its head checkpoint.
    let branch =
        Branch { id: BranchId(Uuid::new_v4()), video_id: info.id, name: "main".into(), head_id: None, forked_from: None, created_at: now };
    storage::insert_branch(&mut tx, &branch).await.unwrap();
    let checkpoint = Checkpoint {
        id: CheckpointId(Uuid::new_v4()),
        video_id: info.id,
        branch_id: branch.id,
        parent_id: None,
        phase: Phase::Script,
        version: 1,
        status: CheckpointStatus::Pending,
        origin: Origin::Edited,
        manifest: script_manifest(),
        run_id: None,
        created_at: now,
        approved_at: None,
    };
    storage::insert_checkpoint(&mut tx, &checkpoint).await.unwrap();
    storage::set_branch_head(&mut tx, branch.id, checkpoint.id).await.unwrap();
    assert!(storage::approve_checkpoint(&mut tx, checkpoint.id, now + 1).await.unwrap());
    assert!(!storage::approve_checkpoint(&mut tx, checkpoint.id, now + 2).await.unwrap(), "approved only once");

    // A regenerate run: every optional column set.
    let regenerate = Some(Regenerate { beat: 1, seed: 99, of: checkpoint.id });
    let start = RunStart { phase: Phase::Storyboard, from: Some(checkpoint.id), attempt: 1, kind: RunKind::Regenerate, regenerate };
    let run = Run { units_total: 2, ..Run::queued(RunId(Uuid::new_v4()), &branch, start, now) };
    storage::insert_run(&mut tx, &run).await.unwrap();
    tx.commit().await.unwrap();

    // Claims and the fenced writes.
    let mut tx = store.write().await.unwrap();
    let (claimed, first) = storage::claim_run(&mut tx, "w1", now, 10_000).await.unwrap().expect("the queued run");
    assert_eq!((claimed.id, claimed.status, claimed.started_at, first.token), (run.id, RunStatus::Running, Some(now), 1));
    assert!(storage::claim_run(&mut tx, "w2", now, 10_000).await.unwrap().is_none(), "nothing else to claim");
    assert!(storage::hold_lease(&mut tx, &first, now + 1, 10_000).await.unwrap());
    assert!(storage::set_run_progress(&mut tx, &first, 2, 0, 5).await.unwrap());
    let changes = storage::video_changes(&mut tx, info.id).await.unwrap();
    assert!(storage::release_run(&mut tx, &first).await.unwrap());
    assert_eq!(storage::video_changes(&mut tx, info.id).await.unwrap(), changes + 1, "a page showing it running sees it queued");
    let (_, second, state) = storage::claim_run_with_state(&mut tx, "w2", now + 2, 10_000).await.unwrap().expect("released to the queue");
    assert_eq!(second.token, 2);
    // The state read with the claim (one call on SQLite) is the video as read after it.
    let after = storage::load_video_state(&mut tx, info.id).await.unwrap().expect("the video");
    assert_eq!(format!("{state:?}"), format!("{after:?}"));
    assert_eq!((state.video.changes, state.branches.len(), state.checkpoints.len(), state.runs.len()), (info.changes + 3, 1, 1, 1));
    assert_eq!(state.runs[0].lease_token, 2);
    assert!(storage::load_video_state(&mut tx, VideoId(Uuid::new_v4())).await.unwrap().is_none(), "no such video");
    // Every write for a held run counts its video and extends the lease, in one call on SQLite.
    assert!(storage::touch_and_hold(&mut tx, &second, now + 3, 10_000).await.unwrap());
    assert_eq!(storage::video_changes(&mut tx, info.id).await.unwrap(), info.changes + 4);
    assert!(!storage::touch_and_hold(&mut tx, &first, now + 3, 10_000).await.unwrap(), "a superseded lease holds nothing");
    let elsewhere = storage::Lease { video: VideoId(Uuid::new_v4()), ..second.clone() };
    assert!(!storage::touch_and_hold(&mut tx, &elsewhere, now + 3, 10_000).await.unwrap(), "a lease is its run's video's");
    let expired = storage::load_video_state(&mut tx, info.id).await.unwrap().expect("the video").runs[0].lease_expires_at;
    assert_eq!(expired, Some(now + 3 + 10_000), "only the held lease was extended");

    // A group of finished units: memo, blobs (one kept in its row), tries, progress.
    let memo = MemoEntry {
        key: "k1".into(),
        phase: Phase::Storyboard,
        provider: "local".into(),
        output: r#"{"sha":"ab"}"#.into(),
        cost_micros: 4,
    };
    let made = |output: &str, key: &str, content: Option<&[u8]>| FinishedUnit {
        unit: 0,
        memo_key: key.into(),
        made: Some((
            MemoEntry { output: output.into(), key: key.into(), ..memo.clone() },
            vec![NewBlob {
                blob: BlobRef { sha256: "ab".into(), bytes: 3, media_type: "image/png".into() },
                content: content.map(<[u8]>::to_vec),
            }],
        )),
        tried: UnitTry {
            run_id: run.id,
            unit: 0,
            try_no: 0,
            outcome: TryOutcome::Ok,
            message: None,
            provider: "local".into(),
            cost_micros: 4,
            started_at: now,
            finished_at: now + 1,
        },
    };
    let progress = async |tx: &mut reelsmith::storage::WriteTx| -> (i64, i64) {
        let q = sqlx::query_as("SELECT units_done, cost_micros FROM runs WHERE id = $1").bind(run.id.to_string());
        q.fetch_one(&mut **tx).await.unwrap()
    };
    // A stale lease's group says so, and its caller rolls it back (here to a savepoint).
    sqlx::raw_sql("SAVEPOINT tried").execute(&mut *tx).await.unwrap();
    assert!(!storage::record_finished(&mut tx, &first, 2, &[made(&memo.output, "k1", Some(b"png"))], now).await.unwrap(), "stale");
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT tried; RELEASE SAVEPOINT tried").execute(&mut *tx).await.unwrap();
    assert_eq!(progress(&mut tx).await, (0, 5), "a stale lease wrote nothing");
    assert!(storage::memo_of(&mut tx, &["k1".into()]).await.unwrap().is_empty(), "a stale lease wrote nothing");
    // A row without its bytes (a blob kept in a file, or one from before blobs went in rows)
    // takes them from the next group that has them: a blob whose file is lost is made again.
    assert!(storage::record_finished(&mut tx, &second, 2, &[made("in a file", "k0", None)], now).await.unwrap());
    assert_eq!(storage::inline_blob(&mut tx, "ab").await.unwrap(), None);
    assert!(storage::record_finished(&mut tx, &second, 2, &[made(&memo.output, "k1", Some(b"png"))], now).await.unwrap());
    assert!(storage::record_finished(&mut tx, &second, 2, &[made("loser", "k1", None), made("other", "k3", None)], now).await.unwrap());
    assert_eq!(progress(&mut tx).await, (4, 21), "four units counted, with their costs");
    // A unit reused from the memo is recorded only while its entry is there (`gc` may forget
    // one between the unit finding it and its group): tried in a savepoint.
    let reused = |key: &str| FinishedUnit {
        made: None,
        tried: UnitTry { outcome: TryOutcome::Memo, ..made("", key, None).tried },
        ..made("", key, None)
    };
    sqlx::raw_sql("SAVEPOINT tried").execute(&mut *tx).await.unwrap();
    assert!(storage::record_finished(&mut tx, &second, 2, &[reused("k1"), reused("k3")], now).await.unwrap(), "both entries are there");
    assert!(!storage::record_finished(&mut tx, &second, 2, &[reused("k1"), reused("k-forgotten")], now).await.unwrap(), "one is gone");
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT tried; RELEASE SAVEPOINT tried").execute(&mut *tx).await.unwrap();
    // A success ends the run and reads the video in one call on SQLite (tried in a savepoint).
    sqlx::raw_sql("SAVEPOINT tried").execute(&mut *tx).await.unwrap();
    assert!(storage::finish_and_load(&mut tx, &first, now + 3).await.unwrap().is_none(), "a superseded lease ends nothing");
    let ended = storage::finish_and_load(&mut tx, &second, now + 3).await.unwrap().expect("the held run ends");
    assert_eq!((ended.runs[0].status, ended.runs[0].finished_at, ended.video.id), (RunStatus::Succeeded, Some(now + 3), info.id));
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT tried; RELEASE SAVEPOINT tried").execute(&mut *tx).await.unwrap();
    assert!(!storage::finish_run(&mut tx, run.id, Ender::Worker(&first), RunStatus::Succeeded, None, None, now + 3).await.unwrap());
    assert!(storage::finish_run(&mut tx, run.id, Ender::Worker(&second), RunStatus::Failed, Some("boom"), Some(1), now + 3).await.unwrap());
    assert!(!storage::finish_run(&mut tx, run.id, Ender::Person, RunStatus::Cancelled, None, None, now + 4).await.unwrap(), "already over");

    // Tries, memo, blobs, fault hits.
    let tried = UnitTry {
        run_id: run.id,
        unit: 1,
        try_no: 2,
        outcome: TryOutcome::Transient,
        message: Some("502".into()),
        provider: "local".into(),
        cost_micros: 0,
        started_at: now,
        finished_at: now + 1,
    };
    storage::insert_unit_try(&mut tx, &tried).await.unwrap();
    let tries = storage::unit_tries_of_video(&mut tx, info.id).await.unwrap();
    assert_eq!((tries.len(), tries.iter().filter(|t| **t == tried).count()), (5, 1), "four finished units' tries and a failed one");
    let found = storage::memo_of(&mut tx, &["k1".into(), "k2".into()]).await.unwrap();
    assert_eq!(found.into_values().collect::<Vec<_>>(), vec![memo.clone()], "the first writer of a key wins");
    assert_eq!(
        storage::inline_blob(&mut tx, "ab").await.unwrap().as_deref(),
        Some(&b"png"[..]),
        "the bytes came with the first that had them"
    );
    assert_eq!(storage::inline_blob(&mut tx, "cd").await.unwrap(), None);
    let ab = || vec!["ab".to_string(), "cd".to_string()];
    assert_eq!(storage::inline_blobs_among(&mut tx, &ab()).await.unwrap(), ["ab".to_string()].into());
    assert_eq!(storage::inline_blob_contents(&mut tx, &ab()).await.unwrap(), [("ab".to_string(), b"png".to_vec())].into());
    assert_eq!(storage::inline_blob_rows(&mut tx).await.unwrap(), vec![("ab".to_string(), 3, now)]);
    assert!(storage::checkpoint_manifests(&mut tx).await.unwrap().iter().any(|d| d.contains("A lamp.")));
    // The run is a failed regeneration: a retry would remake its beat, so it holds nothing.
    assert!(storage::held_memo_outputs(&mut tx).await.unwrap().is_empty());
    assert!(storage::held_memo_outputs_of(&mut tx, info.owner).await.unwrap().is_empty());
    let mut outputs = storage::memo_outputs(&mut tx).await.unwrap();
    outputs.sort();
    let entry = |key: &str, output: &str| (key.to_string(), output.to_string());
    assert_eq!(outputs, vec![entry("k0", "in a file"), entry("k1", &memo.output), entry("k3", "other")]);
    storage::delete_memo(&mut tx, "k1").await.unwrap();
    assert!(storage::memo_of(&mut tx, &["k1".into()]).await.unwrap().is_empty());
    storage::delete_blob_row(&mut tx, "ab").await.unwrap();
    storage::record_fault_hit(&mut tx, info.id, 0, "2:1", run.id).await.unwrap();
    storage::record_fault_hit(&mut tx, info.id, 0, "2:1", run.id).await.unwrap();
    assert_eq!(storage::fault_hits(&mut tx, info.id, 0, "2:1").await.unwrap(), vec![run.id]);
    assert_eq!(storage::fault_hits(&mut tx, info.id, 1, "2:1").await.unwrap(), vec![]);

    // The whole video, as the read model sees it.
    let state = storage::load_video_state(&mut tx, info.id).await.unwrap().expect("the video");
    tx.commit().await.unwrap();
    // (The fenced write that lost its lease counted too: its caller rolls the transaction back.)
    assert_eq!(state.video.changes, 6, "one touch, two claims, a release and two fenced writes");
    assert_eq!(state.branches, vec![Branch { head_id: Some(checkpoint.id), ..branch }]);
    assert_eq!(state.checkpoints, vec![Checkpoint { status: CheckpointStatus::Approved, approved_at: Some(now + 1), ..checkpoint }]);
    let ended = Run {
        status: RunStatus::Failed,
        error: Some("boom".into()),
        failed_unit: Some(1),
        units_done: 4,
        cost_micros: 21,
        started_at: Some(now),
        finished_at: Some(now + 3),
        lease_token: 2,
        ..run
    };
    assert_eq!(state.runs, vec![ended]);
    let mut tx = store.write().await.unwrap();
    assert!(storage::load_video_state(&mut tx, VideoId(Uuid::new_v4())).await.unwrap().is_none());
}

/// A row whose id or word does not read as its type is reported as corrupt, naming the column;
/// it is never read as some default.
#[tokio::test]
async fn a_corrupt_row_is_reported_not_guessed() {
    let env = env().await;
    let store = &env.engine.store;
    let mut tx = store.write().await.unwrap();
    sqlx::query(
        "INSERT INTO videos (id, prompt, title, beats, seed, auto_continue, fault_plan, budget_micros, created_at) \
         VALUES ('not-a-uuid', 'p', 't', 2, 1, 0, '[]', NULL, 1)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = storage::list_videos(&mut tx, reelsmith::domain::AccountId::LOCAL, 10).await.unwrap_err();
    assert!(matches!(&err, StorageError::Corrupt(m) if m.starts_with("column id does not read as its type: invalid character")), "{err:?}");
    let mut info = video_info(2);
    info.title = "Good".into();
    storage::insert_video(&mut tx, &info).await.unwrap();
    sqlx::query("UPDATE videos SET fault_plan = '{' WHERE id = $1").bind(info.id.to_string()).execute(&mut *tx).await.unwrap();
    let err = storage::get_video(&mut tx, info.id).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt(m) if m.starts_with("column fault_plan does not read as its type: invalid type: map, expected a sequence")),
        "{err:?}"
    );
}

/// Claimers racing for a queue of runs each get a different run, at once, with the first token;
/// none fails and none is claimed twice (on PostgreSQL: `FOR UPDATE SKIP LOCKED`).
#[tokio::test]
async fn racing_claimers_each_get_a_different_run() {
    let env = env().await;
    let e = &env.engine;
    for n in 0..6 {
        new_video(e, &format!("Queue {n}"), 2, false, None).await;
    }
    let claims = (0..6).map(|n| {
        let store = e.store.clone();
        tokio::spawn(async move {
            let mut tx = store.write().await.unwrap();
            let claimed = storage::claim_run(&mut tx, &format!("w{n}"), reelsmith::pipeline::now_ms(), 10_000).await.unwrap();
            tx.commit().await.unwrap();
            claimed.map(|(run, lease)| (run.id, lease.token))
        })
    });
    let mut won: Vec<(RunId, i64)> = futures::future::join_all(claims).await.into_iter().map(|r| r.unwrap().expect("a run each")).collect();
    won.sort();
    won.dedup();
    assert_eq!(won.len(), 6, "six different runs: {won:?}");
    assert!(won.iter().all(|(_, token)| *token == 1));
    let mut tx = e.store.write().await.unwrap();
    assert!(storage::claim_run(&mut tx, "late", reelsmith::pipeline::now_ms(), 10_000).await.unwrap().is_none());
}

/// The statements added with accounts and remote jobs, each on the database under test: accounts
/// and sessions, ownership and limit counts, the fair-claim note, the newest videos in four
/// statements, remote jobs, and deleting a video with every row of its own.
#[tokio::test]
async fn every_account_job_and_delete_query_runs() {
    use reelsmith::domain::{Account, AccountId, Email};
    use reelsmith::storage::ProviderJob;
    let env = env().await;
    let store = &env.engine.store;
    let now = reelsmith::pipeline::now_ms();
    let mut tx = store.write().await.unwrap();

    let email = Email::parse("Ada@Example.org").unwrap();
    let account = Account { id: AccountId(Uuid::new_v4()), email: email.clone(), password_hash: "$argon2id$v=19$fake".into() };
    storage::insert_account(&mut tx, &account, now).await.unwrap();
    let found = storage::account_by_email(&mut tx, &email).await.unwrap().expect("found by email");
    assert_eq!((found.id, found.password_hash.as_str()), (account.id, "$argon2id$v=19$fake"));
    assert_eq!(storage::account_by_id(&mut tx, account.id).await.unwrap().map(|a| a.email), Some(email));
    assert!(storage::account_by_id(&mut tx, AccountId(Uuid::new_v4())).await.unwrap().is_none());
    storage::insert_session(&mut tx, "hash-1", account.id, now, now + 1_000).await.unwrap();
    assert_eq!(storage::session_account(&mut tx, "hash-1", now).await.unwrap(), Some(account.id));
    assert_eq!(storage::session_account(&mut tx, "hash-1", now + 1_000).await.unwrap(), None, "expired");
    storage::delete_session(&mut tx, "hash-1", now).await.unwrap();
    assert_eq!(storage::session_account(&mut tx, "hash-1", now).await.unwrap(), None, "signed out");

    let info = VideoInfo { owner: account.id, ..video_info(now) };
    storage::insert_video(&mut tx, &info).await.unwrap();
    assert_eq!(storage::video_owner(&mut tx, info.id).await.unwrap(), Some(account.id));
    assert_eq!(storage::videos_made_since(&mut tx, account.id, now - 1).await.unwrap(), 1);
    assert_eq!(storage::videos_made_since(&mut tx, account.id, now + 1).await.unwrap(), 0);
    let branch =
        Branch { id: BranchId(Uuid::new_v4()), video_id: info.id, name: "main".into(), head_id: None, forked_from: None, created_at: now };
    storage::insert_branch(&mut tx, &branch).await.unwrap();
    let checkpoint = Checkpoint {
        id: CheckpointId(Uuid::new_v4()),
        video_id: info.id,
        branch_id: branch.id,
        parent_id: None,
        phase: Phase::Script,
        version: 1,
        status: CheckpointStatus::Approved,
        origin: Origin::Generated,
        manifest: script_manifest(),
        run_id: None,
        created_at: now,
        approved_at: Some(now),
    };
    storage::insert_checkpoint(&mut tx, &checkpoint).await.unwrap();
    let start = RunStart { phase: Phase::Storyboard, from: Some(checkpoint.id), attempt: 1, kind: RunKind::Continue, regenerate: None };
    let run = Run::queued(RunId(Uuid::new_v4()), &branch, start, now);
    storage::insert_run(&mut tx, &run).await.unwrap();
    assert_eq!(storage::active_runs_of(&mut tx, account.id).await.unwrap(), 1);
    assert!(!storage::others_waiting(&mut tx, account.id).await.unwrap(), "its own queued run is not another's");
    assert!(storage::others_waiting(&mut tx, AccountId(Uuid::new_v4())).await.unwrap());
    assert_eq!(storage::run_status(&mut tx, run.id).await.unwrap(), Some(RunStatus::Queued));
    assert_eq!(storage::run_status(&mut tx, RunId(Uuid::new_v4())).await.unwrap(), None);
    storage::note_claim(&mut tx, info.id, now).await.unwrap();
    let docs = storage::manifests_of(&mut tx, account.id).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert!(docs[0].contains("A lamp."));
    assert!(!storage::video_holds_blob(&mut tx, info.id, "ab").await.unwrap());
    storage::set_branch_head(&mut tx, branch.id, checkpoint.id).await.unwrap();
    let (newest, total) = storage::load_video_page(&mut tx, account.id, 10, 0).await.unwrap();
    assert_eq!((newest.len(), total, newest[0].branches.len(), newest[0].checkpoints.len(), newest[0].runs.len()), (1, 1, 1, 1, 1));
    assert_eq!(newest[0].spent_total, Some(0));
    let (others, none) = storage::load_video_page(&mut tx, AccountId(Uuid::new_v4()), 10, 0).await.unwrap();
    assert!(others.is_empty() && none == 0, "only the owner's");
    let slice = storage::load_rule_slice(&mut tx, info.id).await.unwrap().unwrap();
    assert_eq!((slice.checkpoints, slice.runs), (vec![checkpoint.clone()], vec![run.clone()]));
    assert_eq!(storage::tree_page(&mut tx, info.id, 10, 0).await.unwrap(), (vec![checkpoint.clone()], 1));
    assert_eq!(storage::attempts_page(&mut tx, branch.id, 10, 0).await.unwrap(), vec![(run.clone(), Default::default())]);
    assert_eq!(storage::branch_totals(&mut tx, branch.id).await.unwrap(), (1, 0));
    assert!(storage::unit_tries_of_run(&mut tx, run.id).await.unwrap().is_empty());

    let job = ProviderJob { call_key: "k-1".into(), run_id: run.id, provider: "replicate".into(), job_id: "p-1".into() };
    storage::record_job(&mut tx, &job, now).await.unwrap();
    let again = ProviderJob { job_id: "p-2".into(), ..job.clone() };
    storage::record_job(&mut tx, &again, now).await.unwrap();
    assert_eq!(storage::job_of_call(&mut tx, "k-1").await.unwrap(), Some(again.clone()), "a call's new job replaces its old one");
    assert_eq!(storage::jobs_of_run(&mut tx, run.id).await.unwrap(), vec![again]);
    let other = RunId(Uuid::new_v4());
    assert!(!storage::forget_job_of_run(&mut tx, "k-1", other).await.unwrap(), "another run's forget takes nothing");
    assert!(storage::job_of_call(&mut tx, "k-1").await.unwrap().is_some());
    assert!(storage::forget_job_of_run(&mut tx, "k-1", run.id).await.unwrap());
    assert_eq!(storage::job_of_call(&mut tx, "k-1").await.unwrap(), None);

    // Deleting takes every row of the video, a remote job left behind included.
    storage::record_job(&mut tx, &job, now).await.unwrap();
    storage::delete_video(&mut tx, info.id).await.unwrap();
    assert!(storage::load_video_state(&mut tx, info.id).await.unwrap().is_none());
    assert_eq!(storage::jobs_of_run(&mut tx, run.id).await.unwrap(), vec![]);
    assert_eq!(storage::active_runs_of(&mut tx, account.id).await.unwrap(), 0);
    tx.commit().await.unwrap();
}

/// A database made before tries named their memo entries (the migrations up to 0005, a queued
/// run with one staged unit: its memo entry, its try and a failed try) upgrades in place: the
/// staged unit's try now names the entry, so `gc` still keeps what the run holds, the failed try
/// names nothing, and the staging table is gone.
#[tokio::test]
async fn an_older_database_keeps_what_its_staged_units_held() {
    let dir = std::env::temp_dir().join(format!("reelsmith-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = fresh_url(&dir).await;
    sqlx::any::install_default_drivers();
    let old_url = if url.starts_with("sqlite") { format!("{url}?mode=rwc") } else { url.clone() };
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&old_url).await.unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut old = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    old.migrations = std::borrow::Cow::Owned(old.migrations.iter().filter(|m| m.version <= 5).cloned().collect());
    assert_eq!(old.migrations.len(), 5, "the migrations before the tries named their memo entries");
    old.run(&pool).await.unwrap();

    let now = reelsmith::pipeline::now_ms();
    let info = video_info(now);
    let mut conn = pool.acquire().await.unwrap();
    storage::insert_video(&mut conn, &info).await.unwrap();
    let branch =
        Branch { id: BranchId(Uuid::new_v4()), video_id: info.id, name: "main".into(), head_id: None, forked_from: None, created_at: now };
    storage::insert_branch(&mut conn, &branch).await.unwrap();
    let start = RunStart { phase: Phase::Script, from: None, attempt: 1, kind: RunKind::Initial, regenerate: None };
    let run = Run::queued(RunId(Uuid::new_v4()), &branch, start, now);
    storage::insert_run(&mut conn, &run).await.unwrap();
    let statements = [
        "INSERT INTO memo (key, phase, provider, output, cost_micros, created_at) VALUES ('k-held', 1, 'local', '{\"held\":true}', 0, 0)",
        "INSERT INTO staged_units (run_id, unit, memo_key) VALUES ($1, 0, 'k-held')",
        "INSERT INTO unit_tries (id, run_id, unit, try_no, outcome, provider, started_at, finished_at) VALUES ('t-failed', $1, 0, 1, 'transient', 'local', 0, 1)",
        "INSERT INTO unit_tries (id, run_id, unit, try_no, outcome, provider, started_at, finished_at) VALUES ('t-ok', $1, 0, 2, 'ok', 'local', 1, 2)",
    ];
    for sql in statements {
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") { query.bind(run.id.to_string()) } else { query };
        query.execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    pool.close().await;

    let store = reelsmith::storage::Store::open(&url, 2).await.expect("the upgrade applies");
    let mut conn = store.pool().acquire().await.unwrap();
    assert_eq!(storage::held_memo_outputs(&mut conn).await.unwrap(), vec![r#"{"held":true}"#.to_string()], "still held for gc");
    let named: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, memo_key FROM unit_tries ORDER BY id").fetch_all(&mut *conn).await.unwrap();
    assert_eq!(named, vec![("t-failed".to_string(), None), ("t-ok".to_string(), Some("k-held".to_string()))]);
    assert!(sqlx::query("SELECT 1 FROM staged_units").fetch_all(&mut *conn).await.is_err(), "the staging table is gone");
    drop(conn);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
