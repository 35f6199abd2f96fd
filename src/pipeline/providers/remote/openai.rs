//! OpenAI-compatible APIs (any base URL, so self-hosted servers work too): chat completions with
//! a strict JSON-schema answer for the script, and image generations for the storyboard.
use base64::Engine as _;
use serde_json::{Value, json};

use super::config::PhaseTable;
use super::{Endpoint, media, micros};
use crate::domain::{Beat, Script};
use crate::pipeline::providers::{Answer, Costed, Failure, ProviderError, ScriptWriter, StoryboardArtist, UnitCall};

/// The most an image answer may weigh.
const MAX_IMAGE_BYTES: usize = 32 << 20;

#[derive(Clone, Debug)]
pub struct OpenAiScript {
    endpoint: Endpoint,
    model: String,
    price_in: f64,
    price_out: f64,
}

impl OpenAiScript {
    pub fn new(endpoint: Endpoint, t: &PhaseTable) -> OpenAiScript {
        OpenAiScript {
            endpoint,
            model: t.model.clone().unwrap_or_default(),
            price_in: t.price_per_1k_input_tokens.unwrap_or(0.0),
            price_out: t.price_per_1k_output_tokens.unwrap_or(0.0),
        }
    }

    /// The script, and the tokens it took; an answer that cannot be used was billed all the same.
    async fn ask(self, prompt: String, beats: u32, seed: u64) -> Result<Costed<Script>, Failure> {
        let body = json!({
            "model": self.model,
            "seed": seed % (1 << 31),
            "messages": [
                {"role": "system", "content": "You write scripts for short narrated videos. Each beat has one or two sentences of \
                    narration, a visual description of one still picture, and a duration in milliseconds (500 to 10000)."},
                {"role": "user", "content": format!("Write a script of exactly {beats} beats for: {prompt}")},
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "script", "strict": true, "schema": script_schema()}},
        });
        let answer = self.endpoint.post_json("/chat/completions", &body, &[]).await?;
        let usage = |field: &str| answer.pointer(&format!("/usage/{field}")).and_then(Value::as_f64).unwrap_or(0.0);
        let cost = micros(usage("prompt_tokens") / 1000.0 * self.price_in + usage("completion_tokens") / 1000.0 * self.price_out);
        let script = self.script_of(&answer, beats).map_err(|e| e.paid(cost))?;
        Ok(Costed { value: script, cost_micros: cost })
    }

    /// The script in an answer, checked by the validator that checks a person's edits.
    fn script_of(&self, answer: &Value, beats: u32) -> Result<Script, ProviderError> {
        let name = self.endpoint.name;
        let choice = answer.pointer("/choices/0").ok_or_else(|| ProviderError::Transient(format!("{name}: the answer has no choices")))?;
        if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
            return Err(ProviderError::Permanent(format!(
                "{name}: the script was cut off at the model's token limit (finish_reason = length)"
            )));
        }
        if let Some(refusal) = choice.pointer("/message/refusal").and_then(Value::as_str) {
            return Err(ProviderError::Permanent(format!("{name}: the model refused to write the script: {refusal}")));
        }
        let content = choice.pointer("/message/content").and_then(Value::as_str).unwrap_or_default();
        let script: Script = serde_json::from_str(content)
            .map_err(|e| ProviderError::Permanent(format!("{name}: the answer does not match the script schema: {e}")))?;
        script.validate().map_err(|e| ProviderError::Permanent(format!("{name}: the script is invalid: {}", e.message)))?;
        if script.beats.len() != beats as usize {
            return Err(ProviderError::Permanent(format!(
                "{name}: the script has {} beats, not the {beats} asked for",
                script.beats.len()
            )));
        }
        Ok(script)
    }
}

/// The JSON schema of `Script` for strict structured output.
fn script_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["title", "beats"],
        "properties": {
            "title": {"type": "string"},
            "beats": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["narration", "visual", "duration_ms"],
                "properties": {
                    "narration": {"type": "string"},
                    "visual": {"type": "string"},
                    "duration_ms": {"type": "integer"},
                },
            }},
        },
    })
}

impl ScriptWriter for OpenAiScript {
    fn id(&self) -> String {
        format!("openai-chat/{}@{}", self.model, self.endpoint.base_url)
    }
    /// A script's usual size: about 1k tokens in and 1.5k out.
    fn unit_price(&self) -> i64 {
        micros(self.price_in + 1.5 * self.price_out)
    }
    fn write(&self, _: &UnitCall, prompt: String, beats: u32, seed: u64) -> Answer<Script> {
        Box::pin(self.clone().ask(prompt, beats, seed))
    }
}

#[derive(Clone, Debug)]
pub struct OpenAiImages {
    endpoint: Endpoint,
    model: String,
    size: String,
    price_per_image: f64,
}

impl OpenAiImages {
    pub fn new(endpoint: Endpoint, t: &PhaseTable) -> OpenAiImages {
        OpenAiImages {
            endpoint,
            model: t.model.clone().unwrap_or_default(),
            size: t.size.clone().unwrap_or("1024x1024".into()),
            price_per_image: t.price_per_image.unwrap_or(0.0),
        }
    }

    /// The image, at the configured price. An answer without an image made nothing; an image
    /// that was made (an entry in the answer) and then cannot be used was billed all the same.
    async fn generate(self, prompt: String, width: u32, height: u32) -> Result<Costed<Vec<u8>>, Failure> {
        let body = json!({"model": self.model, "prompt": prompt, "n": 1, "size": self.size});
        let answer = self.endpoint.post_json("/images/generations", &body, &[]).await?;
        let image =
            answer.pointer("/data/0").ok_or_else(|| ProviderError::Transient(format!("{}: no image in the answer", self.endpoint.name)))?;
        let cost = micros(self.price_per_image);
        let made = async {
            let bytes = match (image.get("b64_json").and_then(Value::as_str), image.get("url").and_then(Value::as_str)) {
                (Some(b64), _) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| ProviderError::Permanent(format!("{}: the image is not valid base64: {e}", self.endpoint.name)))?,
                (None, Some(url)) => self.endpoint.download(url, "image/", MAX_IMAGE_BYTES).await?,
                (None, None) => {
                    return Err(ProviderError::Permanent(format!("{}: the answer has neither b64_json nor url", self.endpoint.name)));
                }
            };
            media::image(self.endpoint.name, bytes, width, height).await
        };
        let png = made.await.map_err(|e| e.paid(cost))?;
        Ok(Costed { value: png, cost_micros: cost })
    }
}

/// What a storyboard frame asks an image model for: the beat's picture, without text.
pub fn frame_prompt(script: &Script, index: usize) -> String {
    let Beat { visual, .. } = &script.beats[index];
    format!("{visual} — frame {} of {} of a storyboard for \"{}\"; no text or lettering.", index + 1, script.beats.len(), script.title)
}

impl StoryboardArtist for OpenAiImages {
    fn id(&self) -> String {
        format!("openai-images/{}/{}@{}", self.model, self.size, self.endpoint.base_url)
    }
    fn unit_price(&self) -> i64 {
        micros(self.price_per_image)
    }
    fn draw(&self, _: &UnitCall, script: Script, index: usize, _seed: u64, width: u32, height: u32) -> Answer<Vec<u8>> {
        Box::pin(self.clone().generate(frame_prompt(&script, index), width, height))
    }
}
