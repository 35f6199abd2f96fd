//! How a script is spoken: the voice, its speed, and whether captions are burned into the picture.
use serde::{Deserialize, Serialize};

use super::validate::InvalidInput;

/// The eSpeak NG voices a person may pick, with the words the editor shows; `none` makes a silent video.
pub const VOICES: [(&str, &str); 7] = [
    ("en", "English"),
    ("en-us", "English (America)"),
    ("en-gb-x-rp", "English (Received Pronunciation)"),
    ("en-gb-scotland", "English (Scotland)"),
    ("en-029", "English (Caribbean)"),
    ("en-gb-x-gbclan", "English (Lancaster)"),
    (SILENT, "No narration"),
];
pub const SILENT: &str = "none";
pub const DEFAULT_WPM: u32 = 175;
pub const MIN_WPM: u32 = 80;
pub const MAX_WPM: u32 = 320;
/// Silence after a beat's narration before the next beat starts.
pub const PAUSE_AFTER_MS: u32 = 300;
/// The longest a beat's clip may last (the encoder's limit), its narration's pause included.
pub const LONGEST_BEAT_MS: u32 = 120_000;

/// Whether a narration of `spoken_ms`, with its pause, fits in the longest beat; if not, what to
/// say (for a script's field, from an estimate, and for a narration unit, from the real audio).
pub fn too_long_to_say(spoken_ms: u32) -> Option<String> {
    let seconds = |ms: u32| super::words::decimal(i64::from(ms), 1000, 1);
    (spoken_ms.saturating_add(PAUSE_AFTER_MS) > LONGEST_BEAT_MS).then(|| {
        format!(
            "it lasts {} s when spoken, and with the {} s pause after it a beat may last at most {} s: shorten the narration or raise the speed",
            seconds(spoken_ms),
            seconds(PAUSE_AFTER_MS),
            LONGEST_BEAT_MS / 1000
        )
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Narration {
    pub voice: String,
    /// Words per minute, as eSpeak's `-s`.
    pub speed_wpm: u32,
    /// Captions drawn on the picture instead of a WebVTT track.
    #[serde(default)]
    pub burn_captions: bool,
}

impl Default for Narration {
    fn default() -> Self {
        Narration { voice: VOICES[0].0.to_string(), speed_wpm: DEFAULT_WPM, burn_captions: false }
    }
}

impl Narration {
    pub fn is_silent(&self) -> bool {
        self.voice == SILENT
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        if !VOICES.iter().any(|(v, _)| *v == self.voice) {
            let known: Vec<&str> = VOICES.iter().map(|(v, _)| *v).collect();
            return Err(InvalidInput::new(
                "narration.voice",
                format!("unknown voice \"{}\"; pick one of {}", self.voice, known.join(", ")),
            ));
        }
        if !(MIN_WPM..=MAX_WPM).contains(&self.speed_wpm) {
            return Err(InvalidInput::new(
                "narration.speed_wpm",
                format!("the speed must be {MIN_WPM} to {MAX_WPM} words per minute, not {}", self.speed_wpm),
            ));
        }
        Ok(())
    }
}

/// How long a beat's clip lasts: what it says (`spoken_ms`, none when silent) and the pause
/// after it, or the beat's own length if that is longer.
pub fn clip_length_ms(beat_ms: u32, spoken_ms: Option<u32>) -> u32 {
    spoken_ms.map_or(beat_ms, |spoken| beat_ms.max(spoken.saturating_add(PAUSE_AFTER_MS)))
}

/// About how long `text` takes to say at `wpm` words per minute, for the editor (the real
/// duration comes from the audio).
pub fn estimated_speech_ms(text: &str, wpm: u32) -> u32 {
    let words = text.split_whitespace().count() as u64;
    let pauses = text.chars().filter(|c| matches!(c, '.' | ',' | ';' | ':' | '!' | '?')).count() as u64;
    (words * 60_000 / u64::from(wpm.max(1)) + pauses * 150).min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_spoken() {
        let n = Narration::default();
        assert!(n.validate().is_ok());
        assert!(!n.is_silent());
    }

    #[test]
    fn bad_voices_and_speeds_name_their_field() {
        let n = Narration { voice: "klingon; rm -rf /".into(), ..Narration::default() };
        let e = n.validate().unwrap_err();
        assert_eq!(e.field, "narration.voice");
        assert!(e.message.contains("en-gb-x-rp"), "{}", e.message);
        for speed in [0, MIN_WPM - 1, MAX_WPM + 1] {
            let e = Narration { speed_wpm: speed, ..Narration::default() }.validate().unwrap_err();
            assert_eq!(e.field, "narration.speed_wpm");
        }
        assert!(Narration { voice: SILENT.into(), ..Narration::default() }.is_silent());
    }

    #[test]
    fn estimates_grow_with_words_and_shrink_with_speed() {
        assert_eq!(estimated_speech_ms("", 175), 0);
        let slow = estimated_speech_ms("one two three four five six seven", 100);
        let fast = estimated_speech_ms("one two three four five six seven", 200);
        assert_eq!(slow, 4200);
        assert_eq!(fast, 2100);
        assert!(estimated_speech_ms("Wait. Then go.", 175) > estimated_speech_ms("Wait then go", 175));
    }
}
