//! Providers that do no media work: deterministic placeholder bytes, for measuring orchestration.
use super::*;
use crate::domain::Beat;

pub struct Instant;

fn ready<T: Send + 'static>(value: T, cost_micros: i64) -> Answer<T> {
    Box::pin(std::future::ready(Ok(Costed { value, cost_micros })))
}

impl ScriptWriter for Instant {
    fn id(&self) -> String {
        "instant/1".into()
    }
    fn unit_price(&self) -> i64 {
        1
    }
    fn write(&self, _: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        let title: String = prompt.chars().take(60).collect();
        let beats = (0..beats)
            .map(|i| Beat { narration: format!("Beat {} of {title} ({seed})", i + 1), visual: "A plain frame".into(), duration_ms: 2000 })
            .collect();
        ready(Script { title, beats, narration: Default::default() }, 1)
    }
}

impl StoryboardArtist for Instant {
    fn id(&self) -> String {
        "instant/1".into()
    }
    fn unit_price(&self) -> i64 {
        1
    }
    fn draw(&self, _: &UnitCall, script: Script, index: usize, seed: u64, _: u32, _: u32) -> Answer<Vec<u8>> {
        ready(format!("frame:{}:{index}:{}:{seed}", script.title, script.beats[index].narration).into_bytes(), 1)
    }
}

impl ClipAnimator for Instant {
    fn id(&self) -> String {
        "instant/1".into()
    }
    fn unit_price(&self) -> i64 {
        1
    }
    fn animate(&self, _: &UnitCall, clip: ClipRequest) -> Answer<ClipBytes> {
        let mut stream = clip.still_png;
        stream.extend(format!(":{}:{}:{}", clip.caption, clip.duration_ms, clip.seed).bytes());
        ready(ClipBytes { preview_mp4: [b"preview:".as_slice(), &stream].concat(), stream, frames: 1 }, 1)
    }
}

impl Renderer for Instant {
    fn id(&self) -> String {
        "instant/1".into()
    }
    fn unit_price(&self) -> i64 {
        1
    }
    fn render(&self, _: &UnitCall, r: RenderRequest) -> Answer<RenderBytes> {
        let frames = r.clip_streams.len() as u32;
        ready(
            RenderBytes {
                mp4: r.clip_streams.concat(),
                poster_png: [r.title.as_bytes(), &r.poster_still_png].concat(),
                duration_ms: frames * 2000,
                frames,
                captions_vtt: r
                    .captions
                    .then(|| r.narration.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>().join("\n").into_bytes()),
            },
            1,
        )
    }
}

impl Narrator for Instant {
    fn id(&self) -> String {
        "instant/1".into()
    }
    fn unit_price(&self) -> i64 {
        1
    }
    fn speak(&self, _: &UnitCall, s: SpeechRequest) -> Answer<SpeechBytes> {
        let duration_ms = crate::domain::narration::estimated_speech_ms(&s.text, s.speed_wpm);
        ready(SpeechBytes { wav: format!("speech:{}:{}:{}", s.voice, s.speed_wpm, s.text).into_bytes(), duration_ms }, 1)
    }
}
