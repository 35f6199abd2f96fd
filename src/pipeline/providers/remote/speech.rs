//! OpenAI-compatible speech (`POST {base_url}/audio/speech`) for narration: WAV in, 48 kHz WAV out.
use serde_json::json;

use super::config::PhaseTable;
use super::{Endpoint, micros};
use crate::domain::narration::DEFAULT_WPM;
use crate::media;
use crate::pipeline::providers::{Answer, Costed, Failure, Narrator, ProviderError, SpeechBytes, SpeechRequest, UnitCall};

/// The most a speech answer may weigh (a beat's narration is a few seconds).
const MAX_SPEECH_BYTES: usize = 16 << 20;

#[derive(Clone, Debug)]
pub struct OpenAiSpeech {
    endpoint: Endpoint,
    model: String,
    /// The provider's own voice (the script's eSpeak voice does not apply).
    voice: String,
    price_per_1k_chars: f64,
}

impl OpenAiSpeech {
    pub fn new(endpoint: Endpoint, t: &PhaseTable) -> OpenAiSpeech {
        OpenAiSpeech {
            endpoint,
            model: t.model.clone().unwrap_or_default(),
            voice: t.voice.clone().unwrap_or("alloy".into()),
            price_per_1k_chars: t.price_per_1k_chars.unwrap_or(0.0),
        }
    }

    /// The speech, priced by its characters; speech that came back and cannot be used was billed
    /// all the same.
    async fn speak(self, s: SpeechRequest) -> Result<Costed<SpeechBytes>, Failure> {
        let name = self.endpoint.name;
        // The script's speed is in words per minute; the API's is a factor of its normal pace.
        let speed = (f64::from(s.speed_wpm) / f64::from(DEFAULT_WPM)).clamp(0.25, 4.0);
        let body = json!({"model": self.model, "input": s.text, "voice": self.voice, "response_format": "wav", "speed": speed});
        let bytes = self.endpoint.post_for_bytes("/audio/speech", &body, MAX_SPEECH_BYTES).await?;
        let cost = micros(s.text.chars().count() as f64 / 1000.0 * self.price_per_1k_chars);
        let pcm = media::parse_wav(&bytes)
            .map_err(|e| ProviderError::Permanent(format!("{name}: the speech is not a usable WAV: {e}")).paid(cost))?;
        let pcm = media::resample(&pcm, media::SAMPLE_RATE);
        if pcm.samples.is_empty() {
            return Err(ProviderError::Permanent(format!("{name}: the speech is empty")).paid(cost));
        }
        Ok(Costed { value: SpeechBytes { duration_ms: pcm.duration_ms(), wav: media::wav_bytes(&pcm) }, cost_micros: cost })
    }
}

impl Narrator for OpenAiSpeech {
    fn id(&self) -> String {
        format!("openai-speech/{}/{}@{}", self.model, self.voice, self.endpoint.base_url)
    }
    /// A beat's usual narration: about 150 characters.
    fn unit_price(&self) -> i64 {
        micros(0.15 * self.price_per_1k_chars)
    }
    fn speak(&self, _: &UnitCall, speech: SpeechRequest) -> Answer<SpeechBytes> {
        Box::pin(self.clone().speak(speech))
    }
}
