//! The video's audio track: each beat's narration laid under its clip, encoded to Opus, and
//! the WebVTT captions timed from the same audio.
use opus::{Application, Bitrate, Channels, Encoder};

use crate::media::MediaError;
use crate::media::speech::{Pcm, SAMPLE_RATE};

/// 20 ms at 48 kHz: the Opus frame size used throughout.
pub const OPUS_FRAME: usize = 960;
const OPUS_BITRATE: i32 = 48_000;

/// One beat's narration under its clip.
#[derive(Clone, Debug)]
pub struct BeatAudio<'a> {
    pub pcm: &'a Pcm,
    /// What is said, for the captions.
    pub text: &'a str,
}

/// Where each clip starts and ends on the video's time line, in 48 kHz samples: frame `n` of the
/// whole video is shown at `n / fps` seconds, so a beat's audio is cut to exactly its frames.
pub fn beat_spans(clip_frames: &[u32], fps: u32) -> Vec<(u64, u64)> {
    let to_samples = |frames: u64| (frames * u64::from(SAMPLE_RATE) + u64::from(fps) / 2) / u64::from(fps);
    let mut start_frame = 0u64;
    clip_frames
        .iter()
        .map(|&f| {
            let span = (to_samples(start_frame), to_samples(start_frame + u64::from(f)));
            start_frame += u64::from(f);
            span
        })
        .collect()
}

/// The narrations laid end to end, each padded with silence (or cut) to its clip's span.
pub fn lay_track(beats: &[BeatAudio<'_>], spans: &[(u64, u64)]) -> Result<Vec<i16>, MediaError> {
    if beats.len() != spans.len() {
        return Err(MediaError::InvalidInput(format!("{} narrations for {} clips", beats.len(), spans.len())));
    }
    let total = spans.last().map_or(0, |s| s.1) as usize;
    let mut track = vec![0i16; total];
    for (i, (beat, &(start, end))) in beats.iter().zip(spans).enumerate() {
        if beat.pcm.rate != SAMPLE_RATE {
            return Err(MediaError::InvalidAudio(format!("narration {} is at {} Hz, not {SAMPLE_RATE}", i + 1, beat.pcm.rate)));
        }
        let len = beat.pcm.samples.len().min((end - start) as usize);
        track[start as usize..start as usize + len].copy_from_slice(&beat.pcm.samples[..len]);
    }
    Ok(track)
}

/// Encodes mono 48 kHz samples as 20 ms Opus packets (the last one padded with silence).
pub fn encode_opus(samples: &[i16]) -> Result<Vec<Vec<u8>>, MediaError> {
    let err = |e: opus::Error| MediaError::Audio(e.to_string());
    let mut encoder = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip).map_err(err)?;
    encoder.set_bitrate(Bitrate::Bits(OPUS_BITRATE)).map_err(err)?;
    encoder.set_vbr(false).map_err(err)?;
    let mut frame = [0i16; OPUS_FRAME];
    samples
        .chunks(OPUS_FRAME)
        .map(|chunk| {
            frame[..chunk.len()].copy_from_slice(chunk);
            frame[chunk.len()..].fill(0);
            encoder.encode_vec(&frame, 1500).map_err(err)
        })
        .collect()
}

/// WebVTT with one cue per beat, from the beat's start to the end of its spoken audio.
pub fn webvtt(beats: &[BeatAudio<'_>], spans: &[(u64, u64)]) -> String {
    let mut out = String::from("WEBVTT\n");
    for (i, (beat, &(start, end))) in beats.iter().zip(spans).enumerate() {
        let spoken = (start + beat.pcm.samples.len() as u64).min(end);
        let end = if beat.pcm.samples.is_empty() { end } else { spoken };
        // A cue's text is markup: `<` opens a tag (the rest of the cue vanished) and `&` an
        // entity; `>` escaped also keeps "-->" from reading as a timing line.
        let text = crate::domain::words::markup_text(&beat.text.split_whitespace().collect::<Vec<_>>().join(" "));
        out.push_str(&format!("\n{}\n{} --> {}\n{}\n", i + 1, vtt_time(start), vtt_time(end), text));
    }
    out
}

fn vtt_time(samples: u64) -> String {
    let ms = samples * 1000 / u64::from(SAMPLE_RATE);
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u32) -> Pcm {
        let n = (ms * 48) as usize;
        Pcm { rate: SAMPLE_RATE, samples: (0..n).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect() }
    }

    #[test]
    fn spans_follow_the_frames_without_drift() {
        let spans = beat_spans(&[49, 50, 51], 24);
        assert_eq!(spans, vec![(0, 98_000), (98_000, 198_000), (198_000, 300_000)]);
        // 30000/1001-like rates that do not divide 48 kHz still end exactly at the video's end.
        let spans = beat_spans(&[7, 7, 7], 29);
        assert_eq!(spans.last().unwrap().1, (21 * 48_000 + 14) / 29);
    }

    #[test]
    fn each_narration_starts_at_its_clip_and_is_cut_to_it() {
        let (a, b) = (tone(500), tone(2000));
        let beats = [BeatAudio { pcm: &a, text: "Salt < pepper & more" }, BeatAudio { pcm: &b, text: "two --> three" }];
        let spans = beat_spans(&[24, 24], 24);
        let track = lay_track(&beats, &spans).unwrap();
        assert_eq!(track.len(), 96_000);
        assert_eq!(&track[..24_000], &a.samples[..]);
        assert!(track[24_000..48_000].iter().all(|&s| s == 0), "padded with silence");
        assert_eq!(&track[48_000..], &b.samples[..48_000], "cut at the clip's end");
        let vtt = webvtt(&beats, &spans);
        assert!(vtt.starts_with("WEBVTT\n"));
        assert!(vtt.contains("00:00:00.000 --> 00:00:00.500\nSalt &lt; pepper &amp; more\n"), "{vtt}");
        assert!(vtt.contains("00:00:01.000 --> 00:00:02.000\ntwo --&gt; three\n"), "{vtt}");
        assert!(lay_track(&beats[..1], &spans).is_err());
    }

    #[test]
    fn opus_packets_cover_the_track_and_are_deterministic() {
        let pcm = tone(1010);
        let packets = encode_opus(&pcm.samples).unwrap();
        assert_eq!(packets.len(), 51, "1010 ms is 50.5 frames of 20 ms");
        assert!(packets.iter().all(|p| !p.is_empty() && p.len() < 1500));
        assert_eq!(packets, encode_opus(&pcm.samples).unwrap());
    }
}
