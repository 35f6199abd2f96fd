//! A fresh database (SQLite file, or a new PostgreSQL database when REELSMITH_TEST_DATABASE_URL is
//! set) and data directory per test, and helpers to step the worker by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::sync::watch;

use reelsmith::domain::{AccountId, NewVideo, VideoId};
use reelsmith::pipeline::providers::Providers;
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::pipeline::{Engine, EngineConfig, blobs::BlobStore};
use reelsmith::storage::{Backend, Store};

pub struct TestEnv {
    pub engine: Engine,
    pub dir: PathBuf,
    pub url: String,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn fast_config() -> EngineConfig {
    // gc in batches of 100, so a test's few hundred orphans take several.
    let gc_batch = 100;
    EngineConfig {
        fault_injection: true,
        backoff_base_ms: 1,
        lease_ms: 2_000,
        width: 320,
        height: 180,
        fps: 12,
        gc_batch,
        ..EngineConfig::default()
    }
}

pub async fn fresh_url(dir: &std::path::Path) -> String {
    match std::env::var("REELSMITH_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            sqlx::any::install_default_drivers();
            let name = format!("reelsmith_t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.expect("admin connection");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}/reelsmith.db", dir.display()),
    }
}

pub async fn env_with(providers: Providers, config: EngineConfig) -> TestEnv {
    env_on(providers, config, None).await
}

/// A test environment whose artifacts go to `blob_url` (see `BlobStore::open`), or to the data
/// directory.
pub async fn env_on(providers: Providers, config: EngineConfig, blob_url: Option<&str>) -> TestEnv {
    log_to_the_test();
    let dir = std::env::temp_dir().join(format!("reelsmith-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = fresh_url(&dir).await;
    let store = Store::open(&url, 16).await.expect("open store");
    let blobs = BlobStore::open(blob_url, &dir).await.expect("open the blob store");
    let engine = Engine::new(store, blobs, providers, config);
    TestEnv { engine, dir, url }
}

/// The server's warnings and errors go to the test's captured output, so a failing test shows
/// what the server logged (an internal error's cause is logged, never sent to the page).
/// `RUST_LOG` overrides the level.
pub fn log_to_the_test() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
}

/// The S3-compatible test server's bucket, with a fresh prefix per call:
/// `REELSMITH_TEST_BLOB_URL` (e.g. `s3://reelsmith-test`, with `AWS_ENDPOINT_URL` and keys set),
/// as `make test-scaleout` sets it; `None` without it (the caller says it skipped S3).
pub fn s3_blob_url() -> Option<String> {
    let base = std::env::var("REELSMITH_TEST_BLOB_URL").ok().filter(|u| u.starts_with("s3://"))?;
    Some(format!("{}/t-{}", base.trim_end_matches('/'), uuid::Uuid::new_v4().simple()))
}

pub async fn env() -> TestEnv {
    env_with(Providers::instant(), fast_config()).await
}

pub fn is_postgres(env: &TestEnv) -> bool {
    env.engine.store.backend() == Backend::Postgres
}

/// One worker step: claim a run and run it to its end.
pub async fn step(engine: &Engine) -> WorkOutcome {
    let (_tx, rx) = watch::channel(false);
    engine.work_once("test-worker", &rx).await.expect("worker step")
}

/// Steps until no run is queued; returns what each step did.
pub async fn drain(engine: &Engine) -> Vec<WorkOutcome> {
    let mut outcomes = Vec::new();
    loop {
        match step(engine).await {
            WorkOutcome::Idle => return outcomes,
            other => outcomes.push(other),
        }
        assert!(outcomes.len() < 100, "runaway worker");
    }
}

pub async fn new_video(engine: &Engine, prompt: &str, beats: u32, auto: bool, fault_plan: Option<&str>) -> VideoId {
    let new = NewVideo::parse(prompt, beats, auto, fault_plan, true).expect("valid video");
    engine.create_video(AccountId::LOCAL, new, Some(42)).await.expect("create video")
}

/// Every row of every table, as text: "nothing changed" compares two of these.
pub async fn snapshot(engine: &Engine) -> Vec<String> {
    use sqlx::Row;
    let mut out = Vec::new();
    for (table, order) in [
        ("videos", "id"),
        ("branches", "id"),
        ("checkpoints", "id"),
        ("runs", "id"),
        ("unit_tries", "id"),
        ("memo", "key"),
        ("blobs", "sha256"),
        ("fault_hits", "video_id, rule_index, unit_key, run_id"),
        ("provider_jobs", "call_key"),
    ] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY {order}")))
            .fetch_all(engine.store.pool())
            .await
            .unwrap();
        for row in rows {
            let mut cols = vec![table.to_string()];
            for i in 0..row.len() {
                let text = row
                    .try_get::<Option<String>, _>(i)
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| v.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into())))
                    .unwrap_or_else(|_| "?".into());
                cols.push(text);
            }
            out.push(cols.join("|"));
        }
    }
    out
}

/// One letter per worker step: S succeeded, F failed, X stopped.
pub fn letters(outcomes: &[WorkOutcome]) -> String {
    outcomes
        .iter()
        .map(|o| match o {
            WorkOutcome::Succeeded { .. } => 'S',
            WorkOutcome::Failed { .. } => 'F',
            WorkOutcome::Stopped => 'X',
            WorkOutcome::Idle => '-',
        })
        .collect()
}

/// Steps until no run is queued, and checks what each step did (see `letters`).
pub async fn drain_expect(engine: &Engine, expected: &str) -> Vec<WorkOutcome> {
    let outcomes = drain(engine).await;
    assert_eq!(letters(&outcomes), expected, "worker steps: {outcomes:?}");
    outcomes
}

/// One worker step that must commit a checkpoint.
pub async fn step_ok(engine: &Engine) -> reelsmith::domain::CheckpointId {
    match step(engine).await {
        WorkOutcome::Succeeded { checkpoint } => checkpoint,
        other => panic!("the step should commit a checkpoint, got {other:?}"),
    }
}

/// Makes every running run's lease lapse, as if its worker had died.
pub async fn expire_leases(env: &TestEnv) {
    sqlx::query("UPDATE runs SET lease_expires_at = 0 WHERE status = 'running'").execute(env.engine.store.pool()).await.unwrap();
}

pub fn chattr(flag: &str, file: &Path) -> Result<(), String> {
    match Command::new("chattr").arg(flag).arg(file).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`chattr {flag} {}` failed ({}): {}", file.display(), o.status, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("running `chattr` failed: {e}")),
    }
}

/// Files made immutable (`chattr +i`: even root cannot write them, through already-open
/// descriptors too; a directory takes no new entries); made writable again when released or
/// dropped (a failing test too).
pub struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// Makes the files (and directories) that exist immutable, or fails the test: a test that
    /// cannot set up must not pass (CI runs as root on a file system with `chattr`).
    pub fn set(files: &[PathBuf]) -> Immutable {
        let mut guard = Immutable(Vec::new());
        for f in files.iter().filter(|f| f.exists()) {
            if let Err(why) = chattr("+i", f) {
                panic!("cannot make {} read-only: {why} — it needs root and a file system with `chattr +i` (CI has both)", f.display());
            }
            guard.0.push(f.clone());
        }
        guard
    }

    pub fn release(mut self) {
        for f in std::mem::take(&mut self.0) {
            chattr("-i", &f).unwrap();
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = chattr("-i", f);
        }
    }
}
