//! Narration audio: eSpeak NG run as a child process, WAV in and out, and resampling to 48 kHz.
use std::io::Write;
use std::process::{Command, Stdio};

use crate::domain::narration::{SILENT, VOICES};
use crate::media::MediaError;

/// The rate of every narration and of the video's audio track (Opus runs at 48 kHz).
pub const SAMPLE_RATE: u32 = 48_000;
/// The longest text sent to a voice, in characters; the script allows less.
pub const MAX_SPEECH_CHARS: usize = 1_000;

/// Mono 16-bit audio at `rate` samples per second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Pcm {
    pub fn duration_ms(&self) -> u32 {
        (self.samples.len() as u64 * 1000 / u64::from(self.rate.max(1))) as u32
    }
}

/// Speaks `text` with eSpeak NG's `voice` at `wpm` words per minute, as 48 kHz mono PCM.
///
/// The text goes in on stdin, never through a shell, so quotes and dashes in it are words.
pub fn speak_espeak(text: &str, voice: &str, wpm: u32) -> Result<Pcm, MediaError> {
    let text = checked_text(text)?;
    // eSpeak falls back to its default voice for a name it does not know: check the name here.
    if voice == SILENT || !VOICES.iter().any(|(v, _)| *v == voice) {
        return Err(MediaError::InvalidInput(format!("\"{voice}\" is not one of the voices offered")));
    }
    let mut child = Command::new("espeak-ng")
        .args(["--stdout", "--stdin", "-b", "1", "-v", voice, "-s", &wpm.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| MediaError::Speech(format!("cannot start espeak-ng (is the espeak-ng package installed?): {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from another thread: espeak-ng may fill its stdout pipe before it has read all of stdin.
    let owned = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(owned.as_bytes()));
    let out = child.wait_with_output().map_err(|e| MediaError::Speech(format!("espeak-ng stopped: {e}")))?;
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || out.stdout.is_empty() || !stderr.trim().is_empty() {
        return Err(MediaError::Speech(format!("espeak-ng failed ({}): {}", out.status, stderr.trim())));
    }
    Ok(resample(&parse_wav(&out.stdout)?, SAMPLE_RATE))
}

fn checked_text(text: &str) -> Result<&str, MediaError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MediaError::InvalidInput("there is no text to speak".into()));
    }
    if text.chars().count() > MAX_SPEECH_CHARS {
        return Err(MediaError::InvalidInput(format!("the text to speak is longer than {MAX_SPEECH_CHARS} characters")));
    }
    Ok(text)
}

/// The sample rates a WAV may have: a rate far below (a header saying 1 Hz) would make resampling
/// to 48 kHz ask for more memory than the machine has.
pub const WAV_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// Reads a mono 16-bit PCM WAV. A streamed WAV (eSpeak's `--stdout`, some speech servers) has a
/// bogus data size (too large, or 0): the data runs to the end of the bytes.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, MediaError> {
    let bad = |why: &str| MediaError::InvalidAudio(why.to_string());
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("it is not a RIFF/WAVE file"));
    }
    let (mut pos, mut rate) = (12, None);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        // A data size of 0 with samples after it, not another chunk, is a streamed WAV's.
        let next_is_chunk = bytes.get(pos + 8..pos + 12).is_none_or(|n| n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b' '));
        let size = if id == b"data" && size == 0 && !next_is_chunk { usize::MAX - pos - 8 } else { size };
        let body = &bytes[pos + 8..bytes.len().min((pos + 8).saturating_add(size))];
        match id {
            b"fmt " if body.len() >= 16 => {
                let word = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                if word(0) != 1 || word(2) != 1 || word(14) != 16 {
                    return Err(bad("only mono 16-bit PCM is read"));
                }
                rate = Some(u32::from_le_bytes(body[4..8].try_into().expect("4 bytes")));
            }
            b"data" => {
                let rate = rate.ok_or_else(|| bad("the data comes before a usable fmt chunk"))?;
                if !WAV_RATES.contains(&rate) {
                    return Err(MediaError::InvalidAudio(format!(
                        "its sample rate, {rate} Hz, is not one of {} to {} Hz",
                        WAV_RATES.start(),
                        WAV_RATES.end()
                    )));
                }
                let samples = body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                return Ok(Pcm { rate, samples });
            }
            _ => {}
        }
        pos = pos.saturating_add(8).saturating_add(size).saturating_add(size & 1);
    }
    Err(bad("it has no data chunk"))
}

/// A mono 16-bit PCM WAV of `pcm`, playable in a browser.
pub fn wav_bytes(pcm: &Pcm) -> Vec<u8> {
    let data_len = (pcm.samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for (v, n) in [(16u32, 4), (1, 2), (1, 2), (pcm.rate, 4), (pcm.rate * 2, 4), (2, 2), (16, 2)] {
        out.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &pcm.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Linear-interpolation resampling in integer arithmetic, so the result is the same everywhere.
pub fn resample(pcm: &Pcm, rate: u32) -> Pcm {
    if pcm.rate == rate || pcm.samples.is_empty() {
        return Pcm { rate, samples: pcm.samples.clone() };
    }
    let (from, to) = (u64::from(pcm.rate), u64::from(rate));
    let n = (pcm.samples.len() as u64 * to / from) as usize;
    let last = pcm.samples.len() - 1;
    let samples = (0..n as u64)
        .map(|i| {
            let (pos, frac) = ((i * from / to) as usize, (i * from % to) as i64);
            let (a, b) = (i64::from(pcm.samples[pos.min(last)]), i64::from(pcm.samples[(pos + 1).min(last)]));
            (a + (b - a) * frac / to as i64) as i16
        })
        .collect();
    Pcm { rate, samples }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espeak_speaks_48k_mono_and_longer_text_lasts_longer() {
        let short = speak_espeak("A gull.", "en", 175).unwrap();
        let long = speak_espeak("A gull reads the tide table aloud, badly, twice over.", "en", 175).unwrap();
        assert_eq!(short.rate, 48_000);
        assert!(long.duration_ms() > short.duration_ms() + 1000, "{} vs {}", long.duration_ms(), short.duration_ms());
        assert!(short.samples.iter().any(|s| s.unsigned_abs() > 1000), "the voice is audible");
        let slower = speak_espeak("A gull reads the tide table aloud, badly, twice over.", "en", 100).unwrap();
        assert!(slower.duration_ms() > long.duration_ms(), "speed is passed on");
        assert_eq!(long, speak_espeak("A gull reads the tide table aloud, badly, twice over.", "en", 175).unwrap());
    }

    #[test]
    fn shell_characters_are_just_text_and_bad_input_is_refused() {
        let pcm = speak_espeak("-v xx; $(touch /tmp/reelsmith-pwned) `id` \"quoted\"", "en-us", 175).unwrap();
        assert!(pcm.duration_ms() > 500);
        assert!(!std::path::Path::new("/tmp/reelsmith-pwned").exists());
        assert!(matches!(speak_espeak("hello", "en; ls", 175), Err(MediaError::InvalidInput(_))));
        assert!(matches!(speak_espeak("   ", "en", 175), Err(MediaError::InvalidInput(_))));
        assert!(matches!(speak_espeak(&"a ".repeat(600), "en", 175), Err(MediaError::InvalidInput(_))));
        let e = speak_espeak("hello", "no-such-voice", 175).unwrap_err();
        assert!(matches!(e, MediaError::InvalidInput(_)), "{e}");
        assert!(matches!(speak_espeak("hello", "none", 175), Err(MediaError::InvalidInput(_))));
    }

    #[test]
    fn wav_round_trips_and_resampling_keeps_the_duration() {
        let pcm = Pcm { rate: 22_050, samples: (0..22_050).map(|i| ((i % 100) * 300 - 15_000) as i16).collect() };
        assert_eq!(parse_wav(&wav_bytes(&pcm)).unwrap(), pcm);
        let up = resample(&pcm, 48_000);
        assert_eq!(up.samples.len(), 48_000);
        assert_eq!(up.duration_ms(), 1000);
        assert_eq!(up.samples[0], pcm.samples[0]);
        assert!(matches!(parse_wav(b"RIFF....WAVEjunk"), Err(MediaError::InvalidAudio(_))));
    }

    #[test]
    fn a_streamed_wav_runs_to_the_end_and_an_absurd_rate_is_refused() {
        let pcm = Pcm { rate: 16_000, samples: vec![7, -7, 300, -300] };
        let mut wav = wav_bytes(&pcm);
        let at = wav.len() - 8 - 4; // the data chunk's size, before its 4 samples
        for size in [0u32, u32::MAX, 1_000] {
            wav[at..at + 4].copy_from_slice(&size.to_le_bytes());
            assert_eq!(parse_wav(&wav).unwrap(), pcm, "data size {size}");
        }
        // A data chunk that is really empty, with another chunk after it, is silence.
        let mut empty = wav_bytes(&Pcm { rate: 16_000, samples: vec![] });
        empty.extend_from_slice(b"LIST\x04\0\0\0INFO");
        assert_eq!(parse_wav(&empty).unwrap().samples, Vec::<i16>::new());
        for rate in [1u32, 7_999, 192_001] {
            let bad = wav_bytes(&Pcm { rate, samples: vec![1, 2] });
            let err = parse_wav(&bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{rate} Hz")), "{err}");
        }
        assert!(matches!(parse_wav(b"not a wav"), Err(MediaError::InvalidAudio(_))));
    }
}
