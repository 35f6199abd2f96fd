//! Throughput across processes on PostgreSQL: the same zero-work runs as `throughput`, claimed by
//! 1 and then 2 worker processes (`reelsmith bench-worker`, this binary) sharing one fresh
//! database; the harness only creates videos and waits for the cross-process change notices.
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{BenchResult, Scratch, fail, line, new_video};
use crate::pipeline::Engine;
use crate::pipeline::providers::Providers;
use crate::server::options::{LimitOptions, Options};

/// What a `bench-worker` prints once its workers run.
pub const READY: &str = "reelsmith: bench worker ready";

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh database next to the one `admin` names; its URL.
async fn fresh_database(admin: &str) -> BenchResult<String> {
    sqlx::any::install_default_drivers();
    let name = format!("reelsmith_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await.map_err(fail)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.map_err(fail)?;
    let base = admin.split('?').next().unwrap_or(admin).rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// Starts `n` worker processes on `options`' database and waits until each says it is ready.
fn start_workers(options: &Options, n: usize) -> BenchResult<Children> {
    let exe = std::env::current_exe().map_err(fail)?;
    let mut children = Children(Vec::new());
    for _ in 0..n {
        let mut args = vec!["bench-worker".to_string(), "--data-dir".into(), options.data_dir.display().to_string()];
        args.extend(["--database-url".into(), options.database_url(), "--workers".into(), options.workers().to_string()]);
        if let Some(blobs) = &options.blob_url {
            args.extend(["--blob-url".into(), blobs.clone()]);
        }
        let mut child = Command::new(&exe).args(&args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().map_err(fail)?;
        let stdout = child.stdout.take().ok_or_else(|| fail("no stdout"))?;
        children.0.push(child);
        let first = std::io::BufReader::new(stdout).lines().next().and_then(Result::ok).unwrap_or_default();
        if first != READY {
            return Err(fail(format!("a bench worker did not start (it said {first:?})")));
        }
    }
    Ok(children)
}

/// Creates `videos` 8-beat videos and waits until every one has its render: runs per second.
async fn timed_runs(engine: &Engine, videos: usize) -> BenchResult<f64> {
    let mut events = engine.events.subscribe();
    let t = Instant::now();
    for _ in 0..videos {
        new_video(engine, 8, true, None).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let count = |q: &'static str| async move { sqlx::query_scalar::<_, i64>(q).fetch_one(engine.store.pool()).await.map_err(fail) };
    while (count("SELECT COUNT(*) FROM checkpoints WHERE phase = 4").await? as usize) < videos {
        if tokio::time::timeout_at(deadline, events.recv()).await.is_err() {
            return Err(fail("the worker processes did not finish in 5 minutes"));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").await? as f64 / secs)
}

/// One measurement with `n` worker processes on a fresh database.
async fn with_processes(options: &Options, n: usize, videos: usize) -> BenchResult<f64> {
    let scratch = Scratch::new("processes");
    let database_url = Some(fresh_database(&options.database_url()).await?);
    let limits = LimitOptions::unlimited();
    let options = Options { data_dir: scratch.0.clone(), database_url, backoff_ms: 0, limits, ..options.clone() };
    // The harness only creates videos and waits: it runs no workers of its own.
    let engine = crate::server::engine_from(&options, Providers::instant()).await?;
    let children = start_workers(&options, n)?;
    let rate = timed_runs(&engine, videos).await;
    drop(children);
    engine.store.close().await;
    rate
}

pub(super) async fn run(options: &Options, quick: bool) -> BenchResult<()> {
    if !options.database_url().starts_with("postgres") {
        line("runs_per_s_processes", "skipped (needs --database-url postgres://…)", "");
        return Ok(());
    }
    let videos = if quick { 30 } else { 120 };
    for n in [1, 2] {
        let rate = with_processes(options, n, videos).await?;
        line(&format!("runs_per_s_{n}_worker_process{}", if n == 1 { "" } else { "es" }), format!("{rate:.1}"), "runs/s");
    }
    line("workers_per_process", options.workers(), "workers");
    Ok(())
}

/// `reelsmith bench-worker`: worker loops with zero-work providers until killed.
pub async fn worker(options: Options) -> Result<(), crate::server::StartError> {
    let engine = crate::server::engine_from(&options, Providers::instant()).await?;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let loops: Vec<_> = (0..options.workers())
        .map(|i| tokio::spawn(engine.clone().run_worker(format!("bench-{}-w{i}", std::process::id()), shutdown.clone())))
        .collect();
    println!("{READY}");
    futures::future::join_all(loops).await;
    Ok(())
}
