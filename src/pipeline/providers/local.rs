//! The default offline providers: a rule-based writer, procedural art, pan/zoom clips and H.264 render.
//!
//! Media work is CPU-bound, so it runs on tokio's blocking pool. Costs are nominal prices, so the
//! ledger shows what a comparable remote call would have cost.
use super::*;
use crate::media;

fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, media::MediaError> + Send + 'static, cost_micros: i64) -> Answer<T> {
    Box::pin(async move {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(value)) => Ok(Costed { value, cost_micros }),
            Ok(Err(e)) => Err(ProviderError::Permanent(e.to_string())),
            Err(e) => Err(ProviderError::Transient(format!("the media task stopped: {e}"))),
        }
    })
}

pub struct LocalScript;
pub struct LocalStoryboard;
pub struct LocalClips;
pub struct LocalRender;

impl ScriptWriter for LocalScript {
    fn id(&self) -> String {
        "local-script/1".into()
    }
    fn write(&self, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        blocking(move || Ok(media::write_script(&prompt, beats, seed)), 2_000)
    }
}

impl StoryboardArtist for LocalStoryboard {
    fn id(&self) -> String {
        "local-storyboard/1".into()
    }
    fn draw(&self, script: Script, index: usize, seed: u64, width: u32, height: u32) -> Answer<Vec<u8>> {
        blocking(move || media::draw_storyboard(&script, index, seed, width, height), 10_000)
    }
}

impl ClipAnimator for LocalClips {
    fn id(&self) -> String {
        "local-clips/1".into()
    }
    fn animate(&self, still_png: Vec<u8>, caption: String, duration_ms: u32, fps: u32, seed: u64) -> Answer<ClipBytes> {
        blocking(
            move || {
                media::make_clip(&still_png, &caption, duration_ms, fps, seed).map(|c| ClipBytes {
                    stream: c.stream,
                    preview_mp4: c.preview_mp4,
                    frames: c.frames,
                })
            },
            20_000,
        )
    }
}

impl Renderer for LocalRender {
    fn id(&self) -> String {
        "local-render/1".into()
    }
    fn render(&self, clip_streams: Vec<Vec<u8>>, fps: u32, poster_still_png: Vec<u8>, title: String) -> Answer<RenderBytes> {
        blocking(
            move || {
                let refs: Vec<&[u8]> = clip_streams.iter().map(Vec::as_slice).collect();
                media::render_video(&refs, fps, &poster_still_png, &title).map(|r| RenderBytes {
                    mp4: r.mp4,
                    poster_png: r.poster_png,
                    duration_ms: r.duration_ms,
                    frames: r.frames,
                })
            },
            5_000,
        )
    }
}
