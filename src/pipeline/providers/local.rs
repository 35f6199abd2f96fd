//! The default offline providers: a rule-based writer, procedural art, pan/zoom clips and H.264 render.
//!
//! Media work is CPU-bound, so it runs on tokio's blocking pool. Costs are nominal prices, so the
//! ledger shows what a comparable remote call would have cost.
use super::*;
use crate::media;

/// Runs media work on the blocking pool. Dropping the answer (the run was cancelled, lost its
/// lease, or the server is shutting down) tells the work to stop at its next frame.
fn blocking<T: Send + 'static>(
    f: impl FnOnce(&media::Stop) -> Result<T, media::MediaError> + Send + 'static,
    cost_micros: i64,
) -> Answer<T> {
    let stop = std::sync::Arc::new(media::Stop::default());
    let guard = StopOnDrop(stop.clone());
    Box::pin(async move {
        let _guard = guard;
        match tokio::task::spawn_blocking(move || f(&stop)).await {
            Ok(Ok(value)) => Ok(Costed { value, cost_micros }),
            Ok(Err(media::MediaError::Stopped)) => Err(ProviderError::Transient("stopped".into()).into()),
            Ok(Err(e)) => Err(ProviderError::Permanent(e.to_string()).into()),
            Err(e) => Err(ProviderError::Transient(format!("the media task stopped: {e}")).into()),
        }
    })
}

pub struct LocalScript;
pub struct LocalStoryboard;
pub struct LocalClips;
pub struct LocalRender;
/// eSpeak NG, offline.
pub struct LocalVoice;

// Nominal prices per unit, in micro-dollars: what a comparable remote call would cost.
const SCRIPT_PRICE: i64 = 2_000;
const STORYBOARD_PRICE: i64 = 10_000;
const CLIP_PRICE: i64 = 20_000;
const RENDER_PRICE: i64 = 5_000;
const NARRATION_PRICE: i64 = 3_000;

impl ScriptWriter for LocalScript {
    fn id(&self) -> String {
        "local-script/1".into()
    }
    fn unit_price(&self) -> i64 {
        SCRIPT_PRICE
    }
    fn write(&self, _: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        blocking(move |_| Ok(media::write_script(&prompt, beats, seed)), SCRIPT_PRICE)
    }
}

impl StoryboardArtist for LocalStoryboard {
    fn id(&self) -> String {
        format!("local-storyboard/1{}", media::letters_font_id())
    }
    fn unit_price(&self) -> i64 {
        STORYBOARD_PRICE
    }
    fn draw(&self, _: &UnitCall, script: Script, index: usize, seed: u64, width: u32, height: u32) -> Answer<Vec<u8>> {
        blocking(move |_| media::draw_storyboard(&script, index, seed, width, height), STORYBOARD_PRICE)
    }
}

impl ClipAnimator for LocalClips {
    fn id(&self) -> String {
        format!("local-clips/1{}", media::letters_font_id())
    }
    fn unit_price(&self) -> i64 {
        CLIP_PRICE
    }
    fn animate(&self, _: &UnitCall, clip: ClipRequest) -> Answer<ClipBytes> {
        blocking(
            move |stop| {
                media::make_clip_until(&clip.still_png, &clip.caption, clip.duration_ms, clip.fps, clip.seed, stop).map(|c| ClipBytes {
                    stream: c.stream,
                    preview_mp4: c.preview_mp4,
                    frames: c.frames,
                })
            },
            CLIP_PRICE,
        )
    }
}

impl Renderer for LocalRender {
    fn id(&self) -> String {
        // 2: WebVTT cues are escaped (a render of 1 lost the text of a caption holding a "<").
        format!("local-render/2{}", media::letters_font_id())
    }
    fn unit_price(&self) -> i64 {
        RENDER_PRICE
    }
    fn render(&self, _: &UnitCall, r: RenderRequest) -> Answer<RenderBytes> {
        blocking(
            move |_| {
                let refs: Vec<&[u8]> = r.clip_streams.iter().map(Vec::as_slice).collect();
                let pcms = r.narration.iter().map(|(wav, _)| narration_pcm(wav)).collect::<Result<Vec<_>, _>>()?;
                let beats: Vec<media::BeatAudio> =
                    pcms.iter().zip(&r.narration).map(|(pcm, (_, text))| media::BeatAudio { pcm, text }).collect();
                let narrated = (!beats.is_empty()).then_some(beats.as_slice());
                let out = media::render_narrated(&refs, narrated, r.fps, &r.poster_still_png, &r.title)?;
                Ok(RenderBytes {
                    mp4: out.mp4,
                    poster_png: out.poster_png,
                    duration_ms: out.duration_ms,
                    frames: out.frames,
                    captions_vtt: out.captions_vtt.filter(|_| r.captions).map(String::into_bytes),
                })
            },
            RENDER_PRICE,
        )
    }
}

/// A beat's narration as samples; a silent beat has none.
fn narration_pcm(wav: &[u8]) -> Result<media::Pcm, media::MediaError> {
    if wav.is_empty() {
        return Ok(media::Pcm { rate: media::SAMPLE_RATE, samples: vec![] });
    }
    media::parse_wav(wav).map(|pcm| media::resample(&pcm, media::SAMPLE_RATE))
}

impl Narrator for LocalVoice {
    fn id(&self) -> String {
        "local-espeak-ng/1".into()
    }
    fn unit_price(&self) -> i64 {
        NARRATION_PRICE
    }
    fn speak(&self, _: &UnitCall, s: SpeechRequest) -> Answer<SpeechBytes> {
        blocking(
            move |_| {
                let pcm = media::speak_espeak(&s.text, &s.voice, s.speed_wpm)?;
                Ok(SpeechBytes { duration_ms: pcm.duration_ms(), wav: media::wav_bytes(&pcm) })
            },
            NARRATION_PRICE,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker drops a provider's answer when the run stops; the blocking work must notice.
    #[tokio::test]
    async fn dropping_an_answer_stops_its_blocking_work() {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (ended_tx, ended_rx) = std::sync::mpsc::channel();
        let answer = blocking(
            move |stop| {
                started_tx.send(()).unwrap();
                let mut spins = 0u64;
                while !stop.is_stopped() && spins < 20_000 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    spins += 1;
                }
                ended_tx.send(stop.is_stopped()).unwrap();
                Ok(())
            },
            0,
        );
        let running = tokio::spawn(answer);
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();
        running.abort();
        let stopped = tokio::task::spawn_blocking(move || ended_rx.recv().unwrap()).await.unwrap();
        assert!(stopped, "the work ended because it was told to stop, not because it ran out");
    }
}
