//! One trait per phase, so remote providers can replace the local ones by configuration.
//!
//! Errors say whether trying again may help (`Transient`: timeouts, resets, 5xx; `RateLimited`:
//! 429 with the wait the provider asked for), whether a new seed may help (`Rejected`: content
//! moderation), or nothing will (`Permanent`: a refused key, a bad request, a spent quota).
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::{Phase, RunId, Script};
use crate::storage::{self, ProviderJob, Store};

pub mod instant;
pub mod local;
pub mod remote;

/// Stops media work when the answer that waits for it is dropped (the run was cancelled, lost
/// its lease, or the server is shutting down): held by the answer's future, it tells the work
/// on the blocking pool to stop at its next frame.
pub(crate) struct StopOnDrop(pub(crate) Arc<crate::media::Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Transient(String),
    /// Try again, but not before `after`.
    #[error("{message}")]
    RateLimited { message: String, after: Duration },
    /// The provider's moderation refused this content; a new seed may pass.
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Permanent(String),
}

/// The unit a provider call makes: its key (stable across crashes and takeovers) and run, and
/// the book where a remote provider records the job it starts before waiting on it.
#[derive(Clone)]
pub struct UnitCall {
    pub key: String,
    pub run: RunId,
    pub jobs: JobBook,
}

/// `provider_jobs`, for providers: which remote job a unit's call already started.
#[derive(Clone, Debug)]
pub struct JobBook {
    store: Store,
}

impl JobBook {
    pub fn new(store: Store) -> JobBook {
        JobBook { store }
    }

    /// The job this call started earlier (before a crash, a takeover, or in an earlier run of
    /// the unit), if it is still out; it is this call's run's from now on.
    pub async fn started(&self, call: &UnitCall) -> Result<Option<String>, storage::StorageError> {
        let Some(job) = self.recorded(call).await? else { return Ok(None) };
        if job.run_id != call.run {
            let (key, from, run) = (call.key.clone(), job.run_id, call.run);
            if !self.store.write_retrying(async move |tx| storage::move_job(tx, &key, from, run).await).await? {
                // Taken to be cancelled with its run just now: this call makes a new one.
                return Ok(None);
            }
        }
        Ok(Some(job.job_id))
    }

    /// Whether a job of this call is in the book (a later try attaches to it). One that cannot
    /// be read is taken to be there: a cost it would count is counted once it is used.
    pub async fn holds(&self, call: &UnitCall) -> bool {
        self.recorded(call).await.map(|job| job.is_some()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the job book");
            true
        })
    }

    /// The call's job as the book holds it.
    async fn recorded(&self, call: &UnitCall) -> Result<Option<ProviderJob>, storage::StorageError> {
        let mut tx = self.store.read().await?;
        let job = storage::job_of_call(&mut tx, &call.key).await?;
        let _ = tx.rollback().await;
        Ok(job)
    }

    /// Records a job just created, before anyone waits on it.
    pub async fn record(&self, call: &UnitCall, provider: &str, job_id: &str) -> Result<(), storage::StorageError> {
        let job = ProviderJob { call_key: call.key.clone(), run_id: call.run, provider: provider.to_string(), job_id: job_id.to_string() };
        self.store.write_retrying(async move |tx| storage::record_job(tx, &job, crate::pipeline::now_ms()).await).await
    }

    /// Forgets a job of `run`'s to cancel it: true for the one caller that does.
    pub async fn take_to_cancel(&self, job: &storage::ProviderJob) -> Result<bool, storage::StorageError> {
        let (key, run) = (job.call_key.clone(), job.run_id);
        self.store.write_retrying(async move |tx| storage::forget_job_of_run(tx, &key, run).await).await
    }

    /// Forgets a call's job once it has ended, if it is still the call's run's (a cancel may
    /// have taken it, and a retry recorded its own since).
    pub async fn forget(&self, call: &UnitCall) -> Result<(), storage::StorageError> {
        let (key, run) = (call.key.clone(), call.run);
        self.store.write_retrying(async move |tx| storage::forget_job_of_run(tx, &key, run).await.map(drop)).await
    }
}

/// A provider's answer and what it cost, in micro-dollars.
#[derive(Clone, Debug)]
pub struct Costed<T> {
    pub value: T,
    pub cost_micros: i64,
}

/// What a clip is made from: the beat's still and what the beat says and shows.
#[derive(Clone, Debug)]
pub struct ClipRequest {
    pub still_png: Vec<u8>,
    /// The beat's picture in words (remote image-to-video models take it as their prompt).
    pub prompt: String,
    /// The beat's narration, drawn on the clip.
    pub caption: String,
    pub duration_ms: u32,
    pub fps: u32,
    pub seed: u64,
}

/// What the final video is made from.
#[derive(Clone, Debug)]
pub struct RenderRequest {
    pub clip_streams: Vec<Vec<u8>>,
    pub fps: u32,
    pub poster_still_png: Vec<u8>,
    pub title: String,
    /// Per beat, its narration (48 kHz mono WAV, empty bytes for a silent video) and what it says.
    pub narration: Vec<(Vec<u8>, String)>,
    /// Whether to make WebVTT captions (off when they are burned into the picture).
    pub captions: bool,
}

/// What one beat's narration says, and how.
#[derive(Clone, Debug)]
pub struct SpeechRequest {
    pub text: String,
    pub voice: String,
    pub speed_wpm: u32,
}

/// A narration: 48 kHz mono 16-bit WAV and its length.
#[derive(Clone, Debug)]
pub struct SpeechBytes {
    pub wav: Vec<u8>,
    pub duration_ms: u32,
}

#[derive(Clone, Debug)]
pub struct ClipBytes {
    pub stream: Vec<u8>,
    pub preview_mp4: Vec<u8>,
    pub frames: u32,
}

#[derive(Clone, Debug)]
pub struct RenderBytes {
    pub mp4: Vec<u8>,
    pub poster_png: Vec<u8>,
    pub duration_ms: u32,
    pub frames: u32,
    /// WebVTT, one cue per beat, when the request asked for captions.
    pub captions_vtt: Option<Vec<u8>>,
}

/// A call that failed, and what the provider billed for it first: an answer it made and charged
/// for that cannot be used (a script of the wrong shape, an image that does not decode or cannot
/// be downloaded, speech that is not a WAV) still counts against the video's budget.
#[derive(Debug)]
pub struct Failure {
    pub error: ProviderError,
    pub cost_micros: i64,
}

impl From<ProviderError> for Failure {
    /// A failure the provider answered with: nothing made, nothing to pay for.
    fn from(error: ProviderError) -> Failure {
        Failure { error, cost_micros: 0 }
    }
}

impl ProviderError {
    /// This error, after the provider made (and billed) `cost_micros` of output.
    pub fn paid(self, cost_micros: i64) -> Failure {
        Failure { error: self, cost_micros }
    }
}

pub type Answer<T> = BoxFuture<'static, Result<Costed<T>, Failure>>;

pub trait ScriptWriter: Send + Sync {
    /// Name and parameters; part of every memo key, so a new provider never reuses another's output.
    fn id(&self) -> String;
    /// What one unit is expected to cost, in micro-dollars, for estimates before a phase runs
    /// (0 unless the provider says).
    fn unit_price(&self) -> i64 {
        0
    }
    fn write(&self, call: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script>;
}

pub trait StoryboardArtist: Send + Sync {
    fn id(&self) -> String;
    /// What one unit is expected to cost, in micro-dollars, for estimates before a phase runs
    /// (0 unless the provider says).
    fn unit_price(&self) -> i64 {
        0
    }
    /// Draws beat `index`; may read the script's title, beat count and that beat only.
    fn draw(&self, call: &UnitCall, script: Script, index: usize, seed: u64, width: u32, height: u32) -> Answer<Vec<u8>>;
    /// Cancels a remote job this provider started (the run was cancelled).
    fn cancel(&self, _job_id: String) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

pub trait ClipAnimator: Send + Sync {
    fn id(&self) -> String;
    /// What one unit is expected to cost, in micro-dollars, for estimates before a phase runs
    /// (0 unless the provider says).
    fn unit_price(&self) -> i64 {
        0
    }
    fn animate(&self, call: &UnitCall, clip: ClipRequest) -> Answer<ClipBytes>;
    /// Cancels a remote job this provider started (the run was cancelled).
    fn cancel(&self, _job_id: String) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

pub trait Renderer: Send + Sync {
    fn id(&self) -> String;
    /// What one unit is expected to cost, in micro-dollars, for estimates before a phase runs
    /// (0 unless the provider says).
    fn unit_price(&self) -> i64 {
        0
    }
    fn render(&self, call: &UnitCall, render: RenderRequest) -> Answer<RenderBytes>;
}

/// Speaks one beat's narration.
pub trait Narrator: Send + Sync {
    fn id(&self) -> String;
    /// What one unit is expected to cost, in micro-dollars (0 unless the provider says).
    fn unit_price(&self) -> i64 {
        0
    }
    fn speak(&self, call: &UnitCall, speech: SpeechRequest) -> Answer<SpeechBytes>;
}

#[derive(Clone)]
pub struct Providers {
    pub script: Arc<dyn ScriptWriter>,
    pub storyboard: Arc<dyn StoryboardArtist>,
    pub clips: Arc<dyn ClipAnimator>,
    pub render: Arc<dyn Renderer>,
    /// Narration units run in the storyboard phase, next to the stills, with their own provider.
    pub narration: Arc<dyn Narrator>,
    /// Provider calls made, per phase (memo hits are not calls). For tests, benches and the log.
    pub calls: Arc<[AtomicU64; 4]>,
    /// Narration calls made (not counted in the storyboard phase's calls).
    pub narration_calls: Arc<AtomicU64>,
    /// What the settings page shows: per phase, the provider in use and whether its key is set.
    pub settings: Arc<remote::Settings>,
}

impl Providers {
    pub fn new(
        script: Arc<dyn ScriptWriter>,
        storyboard: Arc<dyn StoryboardArtist>,
        clips: Arc<dyn ClipAnimator>,
        render: Arc<dyn Renderer>,
    ) -> Providers {
        let settings = Arc::new(remote::ProvidersFile::default().settings(&|_| None));
        Providers {
            script,
            storyboard,
            clips,
            render,
            narration: Arc::new(local::LocalVoice),
            calls: Arc::new(Default::default()),
            narration_calls: Arc::new(AtomicU64::new(0)),
            settings,
        }
    }

    /// The offline providers that make real files.
    pub fn local() -> Providers {
        Providers::new(
            Arc::new(local::LocalScript),
            Arc::new(local::LocalStoryboard),
            Arc::new(local::LocalClips),
            Arc::new(local::LocalRender),
        )
    }

    /// Providers that do no work: for measuring orchestration alone.
    pub fn instant() -> Providers {
        let p =
            Providers::new(Arc::new(instant::Instant), Arc::new(instant::Instant), Arc::new(instant::Instant), Arc::new(instant::Instant));
        Providers { narration: Arc::new(instant::Instant), ..p }
    }

    pub fn id_of(&self, phase: Phase) -> String {
        match phase {
            Phase::Script => self.script.id(),
            Phase::Storyboard => self.storyboard.id(),
            Phase::Clips => self.clips.id(),
            Phase::Render => self.render.id(),
        }
    }

    /// What one unit of `phase` is expected to cost, in micro-dollars.
    pub fn unit_price(&self, phase: Phase) -> i64 {
        match phase {
            Phase::Script => self.script.unit_price(),
            Phase::Storyboard => self.storyboard.unit_price(),
            Phase::Clips => self.clips.unit_price(),
            Phase::Render => self.render.unit_price(),
        }
    }

    /// Cancels a remote job of `phase`'s provider.
    pub fn cancel(&self, phase: Phase, job_id: String) -> BoxFuture<'static, ()> {
        match phase {
            Phase::Storyboard => self.storyboard.cancel(job_id),
            Phase::Clips => self.clips.cancel(job_id),
            Phase::Script | Phase::Render => Box::pin(std::future::ready(())),
        }
    }

    pub fn count_call(&self, phase: Phase) {
        self.calls[usize::from(phase.number() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls_of(&self, phase: Phase) -> u64 {
        self.calls[usize::from(phase.number() - 1)].load(Ordering::Relaxed)
    }

    pub fn count_narration_call(&self) {
        self.narration_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn narration_calls(&self) -> u64 {
        self.narration_calls.load(Ordering::Relaxed)
    }
}
