//! `reelsmith bench [--quick]`: orchestration overhead, retry latency, status rendering, local
//! media and throughput, printed as `name: value unit` lines on a fresh SQLite file each.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::domain::{CheckpointId, NewVideo, Phase, Script, VideoId};
use crate::pipeline::Engine;
use crate::pipeline::providers::{Answer, Providers, StoryboardArtist, instant::Instant as InstantProvider};
use crate::pipeline::worker::WorkOutcome;
use crate::server::StartError;
use crate::server::options::Options;

type BenchResult<T> = Result<T, StartError>;

fn fail(e: impl std::fmt::Display) -> StartError {
    StartError::Io(format!("bench: {e}"))
}

fn line(name: &str, value: impl std::fmt::Display, unit: &str) {
    println!("{name}: {value} {unit}");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn micros(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(samples, 0.5), percentile(samples, 0.99))
}

/// A scratch data directory, removed afterwards.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(std::env::temp_dir().join(format!("reelsmith-bench-{tag}-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn engine(options: &Options, scratch: &Scratch, providers: Providers, fault_injection: bool) -> BenchResult<Engine> {
    let options = Options { data_dir: scratch.0.clone(), database_url: None, fault_injection, backoff_ms: 0, ..options.clone() };
    crate::server::engine_from(&options, providers).await
}

async fn drain(engine: &Engine) -> BenchResult<u32> {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut steps = 0;
    loop {
        match engine.work_once("bench", &rx).await.map_err(fail)? {
            WorkOutcome::Idle => return Ok(steps),
            _ => steps += 1,
        }
    }
}

async fn new_video(engine: &Engine, beats: u32, auto: bool, plan: Option<&str>) -> BenchResult<VideoId> {
    let new = NewVideo::parse("A benchmark of eight quiet beats", beats, auto, plan, plan.is_some()).map_err(fail)?;
    // A fresh seed each time, so no run is answered from an earlier run's memo.
    engine.create_video(new, Some(fastrand::u64(..) >> 1)).await.map_err(fail)
}

/// Instant providers whose storyboard records when its first call began (a unit starting).
struct Stopwatch {
    inner: InstantProvider,
    first_call: Arc<Mutex<Option<Instant>>>,
}

impl StoryboardArtist for Stopwatch {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn draw(&self, script: Script, index: usize, seed: u64, w: u32, h: u32) -> Answer<Vec<u8>> {
        self.first_call.lock().expect("stopwatch").get_or_insert_with(Instant::now);
        self.inner.draw(script, index, seed, w, h)
    }
}

pub async fn run(options: Options, quick: bool, only: Option<String>) -> BenchResult<()> {
    let wanted = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let started = Instant::now();
    let (runs, retries, renders) = if quick { (15, 30, 200) } else { (60, 200, 1000) };

    // 1. Orchestration alone: complete 4-phase, 8-beat runs with providers that do no work.
    if wanted("overhead") {
        let scratch = Scratch::new("overhead");
        let engine = engine(&options, &scratch, Providers::instant(), false).await?;
        let mut samples = Vec::with_capacity(runs);
        let mut writes = 0;
        for _ in 0..runs {
            let w0 = engine.store.write_transactions();
            let t = Instant::now();
            new_video(&engine, 8, true, None).await?;
            drain(&engine).await?;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            writes = engine.store.write_transactions() - w0;
        }
        let (p50, _) = micros(&mut samples);
        line("run_overhead_us", format!("{p50:.0}"), "us");
        line("transition_overhead_us", format!("{:.0}", p50 / 4.0), "us");
        line("sqlite_commits_per_run", writes, "commits");
    }

    // 2. Retry latency: from the retry command to the failed phase's first unit starting.
    if wanted("retry") {
        let scratch = Scratch::new("retry");
        let first_call = Arc::new(Mutex::new(None));
        let mut providers = Providers::instant();
        providers.storyboard = Arc::new(Stopwatch { inner: InstantProvider, first_call: first_call.clone() });
        let engine = engine(&options, &scratch, providers, true).await?;
        let plan = r#"[{"phase":2,"beat":0,"action":"fail","times":1}]"#;
        let mut samples = Vec::with_capacity(retries);
        let mut redone = 0;
        for _ in 0..retries {
            let video = new_video(&engine, 8, true, Some(plan)).await?;
            drain(&engine).await?;
            let state = engine.video_state(video).await.map_err(fail)?;
            let head: CheckpointId = state.branches[0].head_id.ok_or_else(|| fail("no script checkpoint"))?;
            *first_call.lock().expect("stopwatch") = None;
            let calls_before = engine.providers.calls_of(Phase::Storyboard);
            let t = Instant::now();
            engine.continue_video(video, Some(head), None, true).await.map_err(fail)?;
            let (_tx, rx) = tokio::sync::watch::channel(false);
            engine.work_once("bench", &rx).await.map_err(fail)?;
            let first = first_call.lock().expect("stopwatch").ok_or_else(|| fail("the retry ran no unit"))?;
            samples.push(first.duration_since(t).as_secs_f64() * 1e6);
            redone = engine.providers.calls_of(Phase::Storyboard) - calls_before;
            drain(&engine).await?;
        }
        let (p50, p99) = micros(&mut samples);
        line("retry_latency_us_p50", format!("{p50:.0}"), "us");
        line("retry_latency_us_p99", format!("{p99:.0}"), "us");
        line("retry_failed_units", 1, "units");
        line("retry_redone_units", redone, "units");
    }

    // 3. Server-side render of the status page of a video with 200 checkpoints over 3 branches.
    if wanted("render") {
        let scratch = Scratch::new("render");
        let engine = engine(&options, &scratch, Providers::instant(), false).await?;
        let video = new_video(&engine, 8, true, None).await?;
        drain(&engine).await?;
        let state = engine.video_state(video).await.map_err(fail)?;
        let script = state.checkpoints.iter().find(|c| c.phase == Phase::Script).ok_or_else(|| fail("no script"))?;
        let base = script.manifest.script().cloned().ok_or_else(|| fail("no script"))?;
        let script_id = script.id;
        for name in ["alt", "third"] {
            engine.create_branch(video, script_id, name).await.map_err(fail)?;
        }
        let mut n = engine.video_state(video).await.map_err(fail)?.checkpoints.len();
        let mut i = 0;
        while n < 200 {
            let branch = ["main", "alt", "third"][i % 3];
            let state = engine.video_state(video).await.map_err(fail)?;
            let head = state.branch_named(branch).and_then(|b| b.head_id).ok_or_else(|| fail("no head"))?;
            let mut edited = base.clone();
            edited.beats[0].narration = format!("Take {i} of the opening line.");
            let target = if state.checkpoint(head).map(|c| c.phase) == Some(Phase::Script) { head } else { script_id };
            engine.edit_script(video, Some(branch), target, &serde_json::to_string(&edited).map_err(fail)?).await.map_err(fail)?;
            i += 1;
            n += 1;
        }
        let leptos_options = leptos::prelude::LeptosOptions::builder().output_name("reelsmith").build();
        let app = crate::server::router(engine.clone(), leptos_options);
        let uri = format!("/videos/{video}");
        let mut samples = Vec::with_capacity(renders);
        let mut bytes = 0;
        for _ in 0..renders {
            let t = Instant::now();
            let response = app.clone().oneshot(Request::get(&uri).body(Body::empty()).map_err(fail)?).await.map_err(fail)?;
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024).await.map_err(fail)?;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            bytes = body.len();
        }
        let (p50, p99) = micros(&mut samples);
        line("status_render_checkpoints", n, "checkpoints");
        line("status_render_us_p50", format!("{p50:.0}"), "us");
        line("status_render_us_p99", format!("{p99:.0}"), "us");
        line("status_render_bytes", bytes, "bytes");
    }

    // 4. Throughput: complete zero-work runs per second with every worker busy.
    if wanted("throughput") {
        let scratch = Scratch::new("throughput");
        let engine = engine(&options, &scratch, Providers::instant(), false).await?;
        let videos = if quick { 40 } else { 200 };
        let workers = options.workers();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let handles: Vec<_> = (0..workers).map(|i| tokio::spawn(engine.clone().run_worker(format!("bench-w{i}"), rx.clone()))).collect();
        let t = Instant::now();
        let mut ids = Vec::with_capacity(videos);
        for _ in 0..videos {
            ids.push(new_video(&engine, 8, true, None).await?);
        }
        loop {
            let mut done = 0;
            for id in &ids {
                let state = engine.video_state(*id).await.map_err(fail)?;
                done += state.checkpoints.iter().filter(|c| c.phase == Phase::Render).count();
            }
            if done == videos {
                break;
            }
            if t.elapsed() > Duration::from_secs(300) {
                return Err(fail("throughput runs did not finish in 5 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        let _ = tx.send(true);
        for h in handles {
            let _ = h.await;
        }
        line("runs_per_s", format!("{:.1}", (videos * 4) as f64 / secs), "runs/s");
        line("throughput_workers", workers, "workers");
    }

    // 5. The local providers making a real 8-beat 1280x720 video end to end.
    if wanted("media") {
        let scratch = Scratch::new("media");
        let engine = engine(&options, &scratch, Providers::local(), false).await?;
        let t = Instant::now();
        let video = new_video(&engine, 8, true, None).await?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let handles: Vec<_> =
            (0..options.workers()).map(|i| tokio::spawn(engine.clone().run_worker(format!("media-w{i}"), rx.clone()))).collect();
        loop {
            let state = engine.video_state(video).await.map_err(fail)?;
            if let Some(render) = state.checkpoints.iter().find(|c| c.phase == Phase::Render) {
                if let crate::domain::Manifest::Render { video, duration_ms, .. } = &render.manifest {
                    line("local_video_s", format!("{:.2}", t.elapsed().as_secs_f64()), "s");
                    line("local_video_duration_s", format!("{:.2}", f64::from(*duration_ms) / 1000.0), "s");
                    line("local_video_bytes", video.bytes, "bytes");
                }
                break;
            }
            if state.runs.iter().any(|r| r.status.is_failure()) {
                return Err(fail("the local video failed"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tx.send(true);
        for h in handles {
            let _ = h.await;
        }
    }

    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .unwrap_or(0.0);
    line("peak_rss_mb", format!("{:.1}", rss / 1024.0), "MB");
    line("bench_wall_s", format!("{:.1}", started.elapsed().as_secs_f64()), "s");
    Ok(())
}
