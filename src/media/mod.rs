//! Media generation for the four phases: script, storyboard stills, clips and the final render.
//!
//! Everything here is a pure, synchronous function of its inputs (including a seed), so a phase
//! can be retried from its checkpoint and produce byte-identical artifacts.

mod audio;
mod clip;
mod normalize;
mod picture;
mod render;
mod script;
mod seed;
mod speech;
mod storyboard;
mod text;

pub use audio::BeatAudio;
pub use clip::{Clip, make_clip, make_clip_until};
pub use normalize::{image_size, normalize_clip, normalize_image};
pub use render::{Rendered, render_narrated, render_video};
pub use script::write_script;
pub use speech::{MAX_SPEECH_CHARS, Pcm, SAMPLE_RATE, parse_wav, resample, speak_espeak, wav_bytes};
pub use storyboard::draw_storyboard;
pub use text::letters_font_id;

/// Tells long media work to stop between frames (the run was cancelled, lost its lease, or the
/// server is shutting down), and counts the frames it encoded.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: std::sync::atomic::AtomicBool,
    frames_encoded: std::sync::atomic::AtomicU64,
}

impl Stop {
    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn frames_encoded(&self) -> u64 {
        self.frames_encoded.load(std::sync::atomic::Ordering::Acquire)
    }

    fn frame_done(&self) {
        self.frames_encoded.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Width and height of the stills and video the app produces by default.
pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;
/// Frame rate the app renders at by default.
pub const DEFAULT_FPS: u32 = 24;

/// Why a media step failed. Input errors are the caller's to fix; encoder and muxer errors
/// come from openh264 or muxide and usually mean a bug or an unsupported size.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the picture is not a readable PNG: {0}")]
    InvalidPng(String),
    #[error("clip {index} is not a clip stream made by make_clip: {reason}")]
    InvalidClip { index: usize, reason: String },
    #[error("clip {index} does not match clip 0: {reason}")]
    ClipMismatch { index: usize, reason: String },
    #[error("there are no clips to render")]
    NoClips,
    #[error("the H.264 encoder failed: {0}")]
    Encoder(String),
    #[error("writing the MP4 failed: {0}")]
    Muxer(String),
    #[error("writing the PNG failed: {0}")]
    PngEncode(String),
    #[error("the voice failed: {0}")]
    Speech(String),
    #[error("the audio is not readable: {0}")]
    InvalidAudio(String),
    #[error("the Opus encoder failed: {0}")]
    Audio(String),
    #[error("stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The whole pipeline at the app's default size. Writes /tmp/media-demo.mp4 and
    /// /tmp/media-demo-poster.png for a look in a browser.
    #[test]
    #[ignore = "slow: renders a full 8-beat 1280x720 video; run with --ignored"]
    fn whole_video_demo() {
        let start = Instant::now();
        let script = write_script("A lighthouse keeper who befriends a storm", 8, 2026);
        let t_script = start.elapsed();
        let stills: Vec<Vec<u8>> =
            (0..script.beats.len()).map(|i| draw_storyboard(&script, i, 7, DEFAULT_WIDTH, DEFAULT_HEIGHT).unwrap()).collect();
        let t_stills = start.elapsed();
        let clips: Vec<Clip> = script
            .beats
            .iter()
            .zip(&stills)
            .enumerate()
            .map(|(i, (beat, png))| make_clip(png, &beat.narration, beat.duration_ms, DEFAULT_FPS, 7 + i as u64).unwrap())
            .collect();
        let t_clips = start.elapsed();
        let streams: Vec<&[u8]> = clips.iter().map(|c| c.stream.as_slice()).collect();
        let rendered = render_video(&streams, DEFAULT_FPS, &stills[0], &script.title).unwrap();
        let t_render = start.elapsed();

        std::fs::write("/tmp/media-demo.mp4", &rendered.mp4).unwrap();
        std::fs::write("/tmp/media-demo-poster.png", &rendered.poster_png).unwrap();
        for (i, s) in stills.iter().enumerate() {
            std::fs::write(format!("/tmp/media-demo-still-{i}.png"), s).unwrap();
        }
        std::fs::write("/tmp/media-demo-clip-0.mp4", &clips[0].preview_mp4).unwrap();
        println!("title: {}", script.title);
        for b in &script.beats {
            println!("  [{} ms] {} | {}", b.duration_ms, b.narration, b.visual);
        }
        println!(
            "script {:?}, stills {:?}, clips {:?}, render {:?}; total {:?}",
            t_script,
            t_stills - t_script,
            t_clips - t_stills,
            t_render - t_clips,
            t_render
        );
        println!(
            "mp4 {} bytes, {} frames, {} ms; poster {} bytes; stills {} bytes avg; clip streams {} bytes total",
            rendered.mp4.len(),
            rendered.frames,
            rendered.duration_ms,
            rendered.poster_png.len(),
            stills.iter().map(Vec::len).sum::<usize>() / stills.len(),
            streams.iter().map(|s| s.len()).sum::<usize>()
        );
        let expected: u32 = script.beats.iter().map(|b| (b.duration_ms * DEFAULT_FPS + 500) / 1000).sum();
        assert_eq!(rendered.frames, expected);
    }
}
