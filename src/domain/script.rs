//! The phase-1 artifact: a script of beats, and its validation.
use serde::{Deserialize, Serialize};

use super::narration::Narration;
use super::validate::InvalidInput;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub title: String,
    pub beats: Vec<Beat>,
    /// Voice, speed and captions; scripts written before narration existed read as the default.
    #[serde(default)]
    pub narration: Narration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    pub narration: String,
    pub visual: String,
    pub duration_ms: u32,
}

pub const MAX_BEATS: usize = 12;
pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_NARRATION_CHARS: usize = 400;
pub const MAX_VISUAL_CHARS: usize = 400;
pub const MIN_BEAT_MS: u32 = 500;
pub const MAX_BEAT_MS: u32 = 10_000;

impl Script {
    /// About how long beat `i`'s clip will last: its own length, or its narration's estimated
    /// length and the pause after it when that is longer (the clip is made to fit what is said).
    pub fn estimated_beat_ms(&self, i: usize) -> u32 {
        let beat = &self.beats[i];
        let spoken =
            (!self.narration.is_silent()).then(|| super::narration::estimated_speech_ms(&beat.narration, self.narration.speed_wpm));
        super::narration::clip_length_ms(beat.duration_ms, spoken)
    }

    /// Parses an edited script document; every error names the field it is about.
    pub fn parse_edit(json: &str) -> Result<Script, InvalidInput> {
        if json.len() > 64 * 1024 {
            return Err(InvalidInput::new("script", "the script is larger than 64 KB"));
        }
        let script: Script = serde_json::from_str(json)
            .map_err(|e| InvalidInput::new("script", format!("the script is not valid JSON of the expected shape: {e}")))?;
        script.validate()?;
        Ok(script)
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        let title = self.title.trim();
        if title.is_empty() {
            return Err(InvalidInput::new("title", "the title must not be empty"));
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(InvalidInput::new("title", format!("the title is longer than {MAX_TITLE_CHARS} characters")));
        }
        if self.beats.is_empty() || self.beats.len() > MAX_BEATS {
            return Err(InvalidInput::new("beats", format!("a script has 1 to {MAX_BEATS} beats, not {}", self.beats.len())));
        }
        self.narration.validate()?;
        for (i, beat) in self.beats.iter().enumerate() {
            let n = i + 1;
            if beat.narration.trim().is_empty() {
                return Err(InvalidInput::new(format!("beats[{i}].narration"), format!("beat {n} needs narration")));
            }
            if beat.narration.chars().count() > MAX_NARRATION_CHARS {
                return Err(InvalidInput::new(
                    format!("beats[{i}].narration"),
                    format!("beat {n}'s narration is longer than {MAX_NARRATION_CHARS} characters"),
                ));
            }
            if !self.narration.is_silent()
                && let Some(why) =
                    super::narration::too_long_to_say(super::narration::estimated_speech_ms(&beat.narration, self.narration.speed_wpm))
            {
                return Err(InvalidInput::new(format!("beats[{i}].narration"), format!("beat {n}'s narration is too long to say: {why}")));
            }
            if beat.visual.trim().is_empty() {
                return Err(InvalidInput::new(format!("beats[{i}].visual"), format!("beat {n} needs a visual description")));
            }
            if beat.visual.chars().count() > MAX_VISUAL_CHARS {
                return Err(InvalidInput::new(
                    format!("beats[{i}].visual"),
                    format!("beat {n}'s visual description is longer than {MAX_VISUAL_CHARS} characters"),
                ));
            }
            if !(MIN_BEAT_MS..=MAX_BEAT_MS).contains(&beat.duration_ms) {
                return Err(InvalidInput::new(
                    format!("beats[{i}].duration_ms"),
                    format!("beat {n} must last between {MIN_BEAT_MS} and {MAX_BEAT_MS} ms, not {}", beat.duration_ms),
                ));
            }
        }
        Ok(())
    }

    pub fn duration_ms(&self) -> u64 {
        self.beats.iter().map(|b| u64::from(b.duration_ms)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Script {
        Script {
            title: "A walk".into(),
            beats: vec![Beat { narration: "We walk.".into(), visual: "A road.".into(), duration_ms: 2000 }],
            narration: Narration::default(),
        }
    }

    #[test]
    fn a_beat_lasts_as_long_as_its_narration_needs() {
        let mut s = sample();
        assert_eq!(s.estimated_beat_ms(0), 2000, "\"We walk.\" fits in the beat's 2 s");
        s.beats[0].narration = "word ".repeat(20);
        // 20 words at 175 a minute (6,857 ms) and the 0.3 s pause after them.
        assert_eq!(s.estimated_beat_ms(0), 7157);
        s.narration.voice = crate::domain::narration::SILENT.into();
        assert_eq!(s.estimated_beat_ms(0), 2000, "a silent beat keeps its own length");
    }

    #[test]
    fn a_script_without_narration_settings_reads_as_the_default() {
        let old = r#"{"title":"A walk","beats":[{"narration":"We walk.","visual":"A road.","duration_ms":2000}]}"#;
        assert_eq!(Script::parse_edit(old).unwrap(), sample());
    }

    #[test]
    fn a_valid_edit_parses() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(Script::parse_edit(&json).unwrap(), sample());
    }

    #[test]
    fn broken_edits_name_the_problem() {
        assert_eq!(Script::parse_edit("{not json").unwrap_err().field, "script");
        let mut s = sample();
        s.beats[0].narration = "  ".into();
        let err = Script::parse_edit(&serde_json::to_string(&s).unwrap()).unwrap_err();
        assert_eq!(err.field, "beats[0].narration");
        let mut s = sample();
        s.beats[0].duration_ms = 5;
        let err = s.validate().unwrap_err();
        assert_eq!(err.field, "beats[0].duration_ms");
        assert!(err.message.contains("between 500 and 10000"));
        let mut s = sample();
        s.beats.clear();
        assert_eq!(s.validate().unwrap_err().field, "beats");
        let mut s = sample();
        s.title = "t".repeat(500);
        assert_eq!(s.validate().unwrap_err().field, "title");
        assert_eq!(Script::parse_edit(&"x".repeat(70_000)).unwrap_err().field, "script");
        let mut s = sample();
        s.narration.voice = "robot".into();
        assert_eq!(s.validate().unwrap_err().field, "narration.voice");
    }
}
