//! One trait per phase, so remote providers can replace the local ones by configuration.
//!
//! Errors say whether trying again may help (`Transient`: timeouts, 429, 5xx) or not (`Permanent`).
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::{Phase, Script};

pub mod instant;
pub mod local;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// A provider's answer and what it cost, in micro-dollars.
#[derive(Clone, Debug)]
pub struct Costed<T> {
    pub value: T,
    pub cost_micros: i64,
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
}

pub type Answer<T> = BoxFuture<'static, Result<Costed<T>, ProviderError>>;

pub trait ScriptWriter: Send + Sync {
    /// Name and parameters; part of every memo key, so a new provider never reuses another's output.
    fn id(&self) -> String;
    fn write(&self, prompt: String, beats: u32, seed: u64) -> Answer<Script>;
}

pub trait StoryboardArtist: Send + Sync {
    fn id(&self) -> String;
    /// Draws beat `index`; may read the script's title, beat count and that beat only.
    fn draw(&self, script: Script, index: usize, seed: u64, width: u32, height: u32) -> Answer<Vec<u8>>;
}

pub trait ClipAnimator: Send + Sync {
    fn id(&self) -> String;
    fn animate(&self, still_png: Vec<u8>, caption: String, duration_ms: u32, fps: u32, seed: u64) -> Answer<ClipBytes>;
}

pub trait Renderer: Send + Sync {
    fn id(&self) -> String;
    fn render(&self, clip_streams: Vec<Vec<u8>>, fps: u32, poster_still_png: Vec<u8>, title: String) -> Answer<RenderBytes>;
}

#[derive(Clone)]
pub struct Providers {
    pub script: Arc<dyn ScriptWriter>,
    pub storyboard: Arc<dyn StoryboardArtist>,
    pub clips: Arc<dyn ClipAnimator>,
    pub render: Arc<dyn Renderer>,
    /// Provider calls made, per phase (memo hits are not calls). For tests, benches and the log.
    pub calls: Arc<[AtomicU64; 4]>,
}

impl Providers {
    pub fn new(
        script: Arc<dyn ScriptWriter>,
        storyboard: Arc<dyn StoryboardArtist>,
        clips: Arc<dyn ClipAnimator>,
        render: Arc<dyn Renderer>,
    ) -> Providers {
        Providers { script, storyboard, clips, render, calls: Arc::new(Default::default()) }
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
        Providers::new(Arc::new(instant::Instant), Arc::new(instant::Instant), Arc::new(instant::Instant), Arc::new(instant::Instant))
    }

    pub fn id_of(&self, phase: Phase) -> String {
        match phase {
            Phase::Script => self.script.id(),
            Phase::Storyboard => self.storyboard.id(),
            Phase::Clips => self.clips.id(),
            Phase::Render => self.render.id(),
        }
    }

    pub fn count_call(&self, phase: Phase) {
        self.calls[usize::from(phase.number() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls_of(&self, phase: Phase) -> u64 {
        self.calls[usize::from(phase.number() - 1)].load(Ordering::Relaxed)
    }
}
