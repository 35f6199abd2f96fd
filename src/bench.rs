//! `reelsmith bench [--quick] [--only SECTION]`: printed as `name: value unit` lines, each section
//! on a fresh data directory. Sections: `overhead` (orchestration), `retry` (retry latency), `render`
//! (status page), `throughput`, `scale` (pages at 1,000 videos and 2,000 checkpoints), `processes`
//! (throughput with 1 and 2 worker processes, with `--database-url postgres://…`), `serve` (the
//! RSS of a `reelsmith serve` child after the pages of 1,000 finished videos; not `peak_rss_mb`,
//! which is this process's own) and `media` (local media).
//!
//! Every figure is measured in the run it describes; none is a constant. Waits that are not
//! themselves being timed follow the engine's change events instead of polling the database.
mod processes;
mod scale;
mod serve;

pub use processes::worker;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, watch};

use crate::domain::video::Video;
use crate::domain::{CheckpointId, NewVideo, Phase, RunId, RunKind, RunStatus, Script, TryOutcome, VideoId};
use crate::pipeline::Engine;
use crate::pipeline::events::Changed;
use crate::pipeline::providers::{
    Answer, ClipAnimator, ClipBytes, ClipRequest, Providers, RenderBytes, RenderRequest, Renderer, ScriptWriter, StoryboardArtist,
    UnitCall, instant::Instant as InstantProvider,
};
use crate::pipeline::worker::WorkOutcome;
use crate::server::StartError;
use crate::server::options::Options;

type BenchResult<T> = Result<T, StartError>;

/// The longest any single wait in the benchmark may take before it is reported as stuck.
const STUCK: Duration = Duration::from_secs(120);

fn fail(e: impl std::fmt::Display) -> StartError {
    StartError::Io(format!("bench: {e}"))
}

/// Set when a figure could not be written: whoever reads the output has gone (`reelsmith bench |
/// head`), so the sections after the one that found it out are not run.
static OUTPUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints one figure. A closed output is not an error of the benchmark (`println!` would panic):
/// it is noted, and `run` starts no further section, so each scratch directory is still removed.
fn line(name: &str, value: impl std::fmt::Display, unit: &str) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{name}: {value} {unit}").is_err() {
        OUTPUT_CLOSED.store(true, Ordering::Relaxed);
    }
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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `n` when every sample was `n`, else `min-max`: a figure that varied says so.
fn span(values: &[u64]) -> String {
    match (values.iter().min(), values.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "none".into(),
    }
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
    // The benchmark makes far more of everything than one person may: no limits.
    let limits = crate::server::options::LimitOptions::unlimited();
    let options = Options { data_dir: scratch.0.clone(), database_url: None, fault_injection, backoff_ms: 0, limits, ..options.clone() };
    crate::server::engine_from(&options, providers).await
}

/// Steps a worker by hand until no run is left (for setting up state; not timed).
async fn drain(engine: &Engine) -> BenchResult<u32> {
    let (_tx, rx) = watch::channel(false);
    let mut steps = 0;
    loop {
        match engine.work_once("bench", &rx).await.map_err(fail)? {
            WorkOutcome::Idle => return Ok(steps),
            _ => steps += 1,
        }
    }
}

/// Worker loops as the server runs them (`run_worker`), until `stop`.
struct Workers {
    shutdown: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    fn start(engine: &Engine, n: usize, tag: &str) -> Workers {
        let (shutdown, rx) = watch::channel(false);
        let handles = (0..n).map(|i| tokio::spawn(engine.clone().run_worker(format!("{tag}-w{i}"), rx.clone()))).collect();
        Workers { shutdown, handles }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

async fn new_video(engine: &Engine, beats: u32, auto: bool, plan: Option<&str>) -> BenchResult<VideoId> {
    let new = NewVideo::parse("A benchmark of eight quiet beats", beats, auto, plan, plan.is_some()).map_err(fail)?;
    // A fresh seed each time, so no run is answered from an earlier run's memo.
    engine.create_video(crate::domain::AccountId::LOCAL, new, Some(fastrand::u64(..) >> 1)).await.map_err(fail)
}

/// Waits on the engine's change events until `check` accepts the video's state. The state is read
/// once up front and then once per change of this video (subscribe before the action awaited, so
/// no change is missed); a lagging receiver just reads again.
async fn wait_for<T>(
    engine: &Engine,
    events: &mut broadcast::Receiver<Changed>,
    video: VideoId,
    what: &str,
    mut check: impl FnMut(&Video) -> BenchResult<Option<T>>,
) -> BenchResult<T> {
    let deadline = tokio::time::Instant::now() + STUCK;
    loop {
        let state = engine.video_state(video).await.map_err(fail)?;
        if let Some(value) = check(&state)? {
            return Ok(value);
        }
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(fail(format!("waited {} s for {what}", STUCK.as_secs()))),
                Ok(Ok(c)) if !c.concerns(video) => continue,
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(fail("the engine's events stopped")),
            }
        }
    }
}

/// The video's render checkpoint, or an error if any run of it failed (but `expected`).
fn rendered(state: &Video, expected: Option<RunId>) -> BenchResult<Option<CheckpointId>> {
    if let Some(r) = state.runs.iter().find(|r| r.status.is_failure() && Some(r.id) != expected) {
        return Err(fail(format!("a {} run failed: {}", r.phase.label(), r.error.as_deref().unwrap_or("?"))));
    }
    Ok(state.checkpoints.iter().find(|c| c.phase == Phase::Render).map(|c| c.id))
}

/// Provider calls as they begin: phase, unit index and when. A waiter is woken on each call.
/// With `flaky_first_frame`, the storyboard provider refuses each video's first frame once (a
/// provider's failure, as a retry in use meets it; no fault plan, no fault-injection writes).
#[derive(Clone, Default)]
struct Calls {
    log: Arc<Mutex<Vec<(Phase, usize, Instant)>>>,
    rang: Arc<Notify>,
    renders: Arc<AtomicUsize>,
    flaky_first_frame: bool,
    refused: Arc<Mutex<std::collections::HashSet<u64>>>,
}

impl Calls {
    fn note(&self, phase: Phase, index: usize) {
        self.log.lock().expect("calls").push((phase, index, Instant::now()));
        if phase == Phase::Render {
            self.renders.fetch_add(1, Ordering::Relaxed);
        }
        self.rang.notify_one();
    }

    fn take(&self) -> Vec<(Phase, usize, Instant)> {
        std::mem::take(&mut *self.log.lock().expect("calls"))
    }

    fn first(&self, phase: Phase, units: &BTreeSet<u32>) -> Option<Instant> {
        let log = self.log.lock().expect("calls");
        log.iter().filter(|(p, i, _)| *p == phase && units.contains(&(*i as u32))).map(|c| c.2).min()
    }

    /// Waits (no polling: woken by each call) for the first call of `phase` for one of `units`.
    async fn wait_first(&self, phase: Phase, units: &BTreeSet<u32>) -> BenchResult<Instant> {
        let deadline = tokio::time::Instant::now() + STUCK;
        loop {
            let rang = self.rang.notified();
            if let Some(t) = self.first(phase, units) {
                return Ok(t);
            }
            tokio::time::timeout_at(deadline, rang).await.map_err(|_| fail("the retried unit's provider was never called"))?;
        }
    }

    /// The instant providers, each recording its calls here.
    fn providers(&self) -> Providers {
        let p = || Arc::new(Recording { inner: InstantProvider, calls: self.clone() });
        Providers { narration: Arc::new(InstantProvider), ..Providers::new(p(), p(), p(), p()) }
    }
}

/// An instant provider that records when each of its calls begins (a unit starting).
struct Recording {
    inner: InstantProvider,
    calls: Calls,
}

impl ScriptWriter for Recording {
    fn id(&self) -> String {
        ScriptWriter::id(&self.inner)
    }
    fn write(&self, call: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        self.calls.note(Phase::Script, 0);
        self.inner.write(call, prompt, beats, seed)
    }
}

impl StoryboardArtist for Recording {
    fn id(&self) -> String {
        StoryboardArtist::id(&self.inner)
    }
    fn draw(&self, call: &UnitCall, script: Script, index: usize, seed: u64, w: u32, h: u32) -> Answer<Vec<u8>> {
        self.calls.note(Phase::Storyboard, index);
        if self.calls.flaky_first_frame && index == 0 && self.calls.refused.lock().expect("refused").insert(seed) {
            return Box::pin(std::future::ready(Err(crate::pipeline::providers::ProviderError::Permanent("refused once".into()).into())));
        }
        self.inner.draw(call, script, index, seed, w, h)
    }
}

impl ClipAnimator for Recording {
    fn id(&self) -> String {
        ClipAnimator::id(&self.inner)
    }
    fn animate(&self, call: &UnitCall, clip: ClipRequest) -> Answer<ClipBytes> {
        self.calls.note(Phase::Clips, 0);
        self.inner.animate(call, clip)
    }
}

impl Renderer for Recording {
    fn id(&self) -> String {
        Renderer::id(&self.inner)
    }
    fn render(&self, call: &UnitCall, render: RenderRequest) -> Answer<RenderBytes> {
        self.calls.note(Phase::Render, 0);
        self.inner.render(call, render)
    }
}

/// The units of `run` that ended without an output (only failed tries), and those it made by a
/// provider call (`ok`) or took from the memo (`memo`), from the run's recorded unit tries.
struct UnitsOf {
    failed: BTreeSet<u32>,
    made: BTreeSet<u32>,
    reused: BTreeSet<u32>,
}

fn units_of(tries: &[crate::domain::video::UnitTry], run: RunId) -> UnitsOf {
    let mut u = UnitsOf { failed: BTreeSet::new(), made: BTreeSet::new(), reused: BTreeSet::new() };
    let mut tried = BTreeSet::new();
    for t in tries.iter().filter(|t| t.run_id == run) {
        match t.outcome {
            TryOutcome::Ok => {
                u.made.insert(t.unit);
            }
            TryOutcome::Memo => {
                u.reused.insert(t.unit);
            }
            TryOutcome::Transient | TryOutcome::Permanent | TryOutcome::Cancelled => {
                tried.insert(t.unit);
            }
        }
    }
    u.failed = tried.into_iter().filter(|i| !u.made.contains(i) && !u.reused.contains(i)).collect();
    u
}

pub async fn run(options: Options, quick: bool, only: Option<String>) -> BenchResult<()> {
    // A section asked for after the output closed is skipped, and counted.
    let skipped = std::cell::Cell::new(0);
    let wanted = |section: &str| {
        let asked = only.as_deref().is_none_or(|o| o == section);
        let closed = OUTPUT_CLOSED.load(Ordering::Relaxed);
        skipped.set(skipped.get() + usize::from(asked && closed));
        asked && !closed
    };
    let started = Instant::now();
    let (runs, retries, renders) = if quick { (15, 30, 200) } else { (60, 200, 1000) };

    if wanted("overhead") {
        overhead(&options, runs).await?;
    }
    if wanted("retry") {
        retry(&options, retries).await?;
    }
    if wanted("render") {
        render(&options, renders).await?;
    }
    if wanted("throughput") {
        throughput(&options, quick).await?;
    }
    if wanted("scale") {
        scale::run(&options, quick).await?;
    }
    if wanted("processes") {
        processes::run(&options, quick).await?;
    }
    if wanted("serve") {
        serve::run(&options, quick).await?;
    }
    if wanted("media") {
        media(&options, Voice::Narrated).await?;
        media(&options, Voice::Silent).await?;
    }

    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .unwrap_or(0.0);
    line("peak_rss_mb", format!("{:.1}", rss / 1024.0), "MB");
    line("bench_wall_s", format!("{:.1}", started.elapsed().as_secs_f64()), "s");
    if skipped.get() > 0 {
        use std::io::Write;
        let n = skipped.get();
        let _ = writeln!(std::io::stderr(), "bench: the output was closed, so {n} section(s) after it were not run");
    }
    Ok(())
}

/// Orchestration alone: complete 4-phase, 8-beat runs with providers that do no work, one
/// worker stepped by hand so each checkpoint's commit is seen the moment it returns.
async fn overhead(options: &Options, runs: usize) -> BenchResult<()> {
    let scratch = Scratch::new("overhead");
    let calls = Calls::default();
    let engine = engine(options, &scratch, calls.providers(), false).await?;
    let (_tx, rx) = watch::channel(false);
    let mut samples = Vec::with_capacity(runs);
    let mut transitions = Vec::with_capacity(runs * 3);
    let mut commits = Vec::with_capacity(runs);
    for _ in 0..runs {
        calls.take();
        let c0 = engine.store.commits();
        let t = Instant::now();
        new_video(&engine, 8, true, None).await?;
        // When each phase's checkpoint committed (work_once returns right after the commit).
        let mut committed = Vec::with_capacity(4);
        let mut c1 = c0;
        loop {
            match engine.work_once("bench", &rx).await.map_err(fail)? {
                WorkOutcome::Succeeded { .. } => {
                    committed.push(Instant::now());
                    c1 = engine.store.commits();
                }
                WorkOutcome::Idle => break,
                other => return Err(fail(format!("an overhead run ended {other:?}"))),
            }
        }
        samples.push(us(t.elapsed()));
        // Up to the last checkpoint: the worker's final empty claim is not part of the video.
        commits.push(c1 - c0);
        if committed.len() != 4 {
            return Err(fail(format!("expected 4 checkpoints, got {}", committed.len())));
        }
        // Each transition: a phase's checkpoint commit → the next phase's first unit starting
        // (claim, state load, planning, progress write, memo lookup).
        let log = calls.take();
        let pairs = [(Phase::Script, Phase::Storyboard), (Phase::Storyboard, Phase::Clips), (Phase::Clips, Phase::Render)];
        for (done, next) in pairs {
            let at = committed[usize::from(done.number() - 1)];
            let first = log
                .iter()
                .filter(|(p, _, t)| *p == next && *t >= at)
                .map(|c| c.2)
                .min()
                .ok_or_else(|| fail(format!("no {} call after the {} checkpoint", next.label(), done.label())))?;
            transitions.push(us(first - at));
        }
    }
    let (p50, _) = micros(&mut samples);
    let (t50, _) = micros(&mut transitions);
    line("run_overhead_us", format!("{p50:.0}"), "us");
    line("transition_overhead_us", format!("{t50:.0}"), "us");
    line("sqlite_commits_per_run", span(&commits), "commits");
    Ok(())
}

/// Retry: a video whose storyboard provider refuses beat 0's still once, retried from the
/// script checkpoint while worker loops wait for work. Latency: the retry command being called →
/// the provider's first call for a unit that failed (through the worker's wake-up).
async fn retry(options: &Options, retries: usize) -> BenchResult<()> {
    let scratch = Scratch::new("retry");
    let calls = Calls { flaky_first_frame: true, ..Calls::default() };
    let engine = engine(options, &scratch, calls.providers(), false).await?;
    let mut events = engine.events.subscribe();
    let workers = Workers::start(&engine, options.workers(), "retry");
    let mut samples = Vec::with_capacity(retries);
    let (mut failed_n, mut redone_n, mut reused_n) = (Vec::new(), Vec::new(), Vec::new());
    let mut mismatches = 0;
    for _ in 0..retries {
        let video = new_video(&engine, 8, true, None).await?;
        let (failed_run, head) = wait_for(&engine, &mut events, video, "the storyboard to fail", |s| {
            let failed = s.runs.iter().find(|r| r.phase == Phase::Storyboard && r.status == RunStatus::Failed);
            Ok(failed.map(|r| (r.id, s.branches[0].head_id)))
        })
        .await?;
        let head: CheckpointId = head.ok_or_else(|| fail("no script checkpoint"))?;
        let failed = units_of(&engine.unit_tries(video).await.map_err(fail)?, failed_run).failed;
        // A person's click finds the workers waiting; give the loops time to finish their
        // post-failure step and park on the wake-up.
        tokio::time::sleep(Duration::from_millis(10)).await;
        calls.take();
        let t = Instant::now();
        let outcome = engine.continue_video(video, Some(head), None, true).await.map_err(fail)?;
        let retry_run = match outcome {
            crate::pipeline::commands::ContinueOutcome::Started { run, kind: RunKind::Retry, .. } => run,
            other => return Err(fail(format!("the retry did not start a retry run: {other:?}"))),
        };
        if !failed.is_empty() {
            let first = calls.wait_first(Phase::Storyboard, &failed).await?;
            samples.push(us(first - t));
        }
        wait_for(&engine, &mut events, video, "the retried video to finish", |s| rendered(s, Some(failed_run))).await?;
        let tries = engine.unit_tries(video).await.map_err(fail)?;
        let retry = units_of(&tries, retry_run);
        if failed.is_empty() || retry.made != failed || !retry.failed.is_empty() {
            mismatches += 1;
        }
        failed_n.push(failed.len() as u64);
        redone_n.push(retry.made.len() as u64);
        reused_n.push(retry.reused.len() as u64);
    }
    workers.stop().await;
    let (p50, p99) = micros(&mut samples);
    line("retry_latency_us_p50", format!("{p50:.0}"), "us");
    line("retry_latency_us_p99", format!("{p99:.0}"), "us");
    line("retry_failed_units", span(&failed_n), "units");
    line("retry_redone_units", span(&redone_n), "units");
    line("retry_reused_units", span(&reused_n), "units");
    line("retry_redone_mismatches", mismatches, "iterations");
    Ok(())
}

/// Server-side render of the status page of a video with 200 checkpoints over 3 branches.
async fn render(options: &Options, renders: usize) -> BenchResult<()> {
    let scratch = Scratch::new("render");
    let engine = engine(options, &scratch, Providers::instant(), false).await?;
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
    // Count what the page actually covers rather than what the loop meant to make.
    let n = engine.video_state(video).await.map_err(fail)?.checkpoints.len();
    scale::report(
        "status_render_200",
        (n, "checkpoints"),
        scale::time_get(&scale::app(&engine), &format!("/videos/{video}"), renders).await?,
    );
    Ok(())
}

/// Throughput: complete zero-work runs per second with every worker busy. The harness waits
/// on change events and reads the database only once every render has begun.
async fn throughput(options: &Options, quick: bool) -> BenchResult<()> {
    let scratch = Scratch::new("throughput");
    let calls = Calls::default();
    let engine = engine(options, &scratch, calls.providers(), false).await?;
    let videos = if quick { 40 } else { 200 };
    let workers = options.workers();
    let mut events = engine.events.subscribe();
    let pool = Workers::start(&engine, workers, "bench");
    let t = Instant::now();
    for _ in 0..videos {
        new_video(&engine, 8, true, None).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let secs = loop {
        if calls.renders.load(Ordering::Relaxed) >= videos {
            let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints WHERE phase = 4")
                .fetch_one(engine.store.pool())
                .await
                .map_err(fail)?;
            if done as usize >= videos {
                break t.elapsed().as_secs_f64();
            }
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err(fail("throughput runs did not finish in 5 minutes")),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => return Err(fail("the engine's events stopped")),
        }
    };
    pool.stop().await;
    let runs_done: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").fetch_one(engine.store.pool()).await.map_err(fail)?;
    line("runs_per_s", format!("{:.1}", runs_done as f64 / secs), "runs/s");
    line("throughput_workers", workers, "workers");
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Voice {
    Narrated,
    Silent,
}

/// The local script writer, with narration switched off in every script it writes.
struct SilentScript;

impl ScriptWriter for SilentScript {
    fn id(&self) -> String {
        "local-script-silent/1".into()
    }
    fn write(&self, call: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        let written = crate::pipeline::providers::local::LocalScript.write(call, prompt, beats, seed);
        Box::pin(async move {
            let mut c = written.await?;
            c.value.narration.voice = crate::domain::narration::SILENT.into();
            Ok(c)
        })
    }
}

/// The local providers making a real 8-beat 1280x720 video end to end, narrated by eSpeak NG
/// (`local_video_s`) or silent (`local_video_silent_s`).
async fn media(options: &Options, voice: Voice) -> BenchResult<()> {
    let scratch = Scratch::new("media");
    let mut providers = Providers::local();
    if voice == Voice::Silent {
        providers.script = Arc::new(SilentScript);
    }
    let engine = engine(options, &scratch, providers, false).await?;
    let mut events = engine.events.subscribe();
    let t = Instant::now();
    let video = new_video(&engine, 8, true, None).await?;
    let pool = Workers::start(&engine, options.workers(), "media");
    let render = wait_for(&engine, &mut events, video, "the local video", |s| {
        if rendered(s, None)?.is_none() {
            return Ok(None);
        }
        Ok(s.checkpoints.iter().find(|c| c.phase == Phase::Render).map(|c| c.manifest.clone()))
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    pool.stop().await;
    if let crate::domain::Manifest::Render { video, duration_ms, .. } = &render {
        let name = if voice == Voice::Silent { "local_video_silent" } else { "local_video" };
        line(&format!("{name}_s"), format!("{secs:.2}"), "s");
        line(&format!("{name}_duration_s"), format!("{:.2}", f64::from(*duration_ms) / 1000.0), "s");
        line(&format!("{name}_bytes"), video.bytes, "bytes");
    }
    Ok(())
}
