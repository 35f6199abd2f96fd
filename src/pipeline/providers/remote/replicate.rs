//! Replicate predictions: an image model for the storyboard, an image-to-video model for clips.
//!
//! A prediction is paid for when it is created, so its id is recorded (`provider_jobs`) right
//! after the create call answers and before any waiting: a unit resumed after a crash or a lease
//! takeover attaches to the prediction already running instead of paying for a new one. That is
//! also why the create call does not use `Prefer: wait`: a crash during a synchronous wait would
//! lose the id. The prediction is polled instead, and cancelled when its run is cancelled.
use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::time::Duration;

use super::{Endpoint, is_gone, is_moderation, media, micros};
use crate::domain::Script;
use crate::pipeline::providers::{
    Answer, ClipAnimator, ClipBytes, ClipRequest, Costed, Failure, ProviderError, StoryboardArtist, UnitCall,
};

const MAX_IMAGE_BYTES: usize = 32 << 20;
const MAX_VIDEO_BYTES: usize = 256 << 20;

#[derive(Clone, Debug)]
pub struct Replicate {
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub version: Option<String>,
    pub price_per_second: f64,
    /// How long a prediction usually runs, for estimates.
    pub expected_seconds: f64,
    pub poll: Duration,
    /// How long a prediction may run before it is cancelled and its try fails.
    pub max_wait: Duration,
}

impl Replicate {
    fn unit_price(&self) -> i64 {
        micros(self.price_per_second * self.expected_seconds)
    }

    fn id(&self, what: &str) -> String {
        let model = self.version.as_deref().or(self.model.as_deref()).unwrap_or_default();
        format!("replicate-{what}/{model}@{}", self.endpoint.base_url)
    }

    /// Runs a prediction to its end (attaching to the call's earlier one if it is still out):
    /// its first output URL and what it cost. A prediction that cannot end well (gone, an output
    /// that is no URL, over `max_wait`) is forgotten, so the next try makes a new one instead of
    /// attaching to it again; what it ran for is billed, so its failure carries that cost. The
    /// try that takes it out of the job book charges it: while the book still holds it (the
    /// write failed), a later try attaches to it and charges it once it is out.
    async fn predict(&self, call: &UnitCall, input: Value) -> Result<(String, i64), Failure> {
        let recorded = call.jobs.started(call).await.map_err(|e| ProviderError::Transient(format!("cannot read the job book: {e}")))?;
        let attached = match recorded {
            Some(id) => match self.endpoint.get_json(&format!("/predictions/{id}")).await {
                Ok(prediction) => Some(prediction),
                // Gone (removed, or another account's now): a new one is made below. Any other
                // error (a refused key, spent credit) keeps the record: the prediction may be
                // running still, and a later try attaches to it.
                Err(e) if is_gone(&e) => {
                    tracing::info!(error = %e, "a recorded Replicate prediction is gone; making a new one");
                    let _ = self.forget(call).await;
                    None
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let mut prediction = match attached {
            Some(prediction) => prediction,
            None => {
                let created = self.create(input).await?;
                let id = text(&created, "id").ok_or_else(|| self.odd("the new prediction has no id"))?;
                if let Err(e) = call.jobs.record(call, &self.id("job"), id).await {
                    // Unrecorded, nobody would attach to it: the next try would pay for another.
                    self.cancel_job(id.to_string()).await;
                    return Err(ProviderError::Transient(format!("cannot record the prediction: {e}")).into());
                }
                created
            }
        };
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            let id = text(&prediction, "id").ok_or_else(|| self.odd("the prediction has no id"))?.to_string();
            match text(&prediction, "status").unwrap_or_default() {
                "succeeded" => {
                    return match self.finished(&prediction) {
                        Ok(done) => Ok(done),
                        Err(e) => Err(e.paid(self.charged(self.forget(call).await, &prediction))),
                    };
                }
                "failed" | "canceled" | "aborted" => {
                    return Err(self.failure(&prediction).paid(self.charged(self.forget(call).await, &prediction)));
                }
                status @ ("starting" | "processing") => {
                    if tokio::time::Instant::now() >= deadline {
                        let status = status.to_string();
                        // The cancel's answer is the prediction as it ended, with the time it ran.
                        let ended = cancel_prediction(&self.endpoint, &id).await.unwrap_or(prediction);
                        let error = ProviderError::Permanent(format!(
                            "Replicate: the prediction was still {status} after {} s (max_wait_ms), and was cancelled",
                            self.max_wait.as_secs()
                        ));
                        return Err(error.paid(self.charged(self.forget(call).await, &ended)));
                    }
                    tokio::time::sleep(self.poll).await;
                    prediction = self.endpoint.get_json(&format!("/predictions/{id}")).await?;
                }
                other => {
                    let error = self.odd(&format!("the prediction has an unknown status {other:?}"));
                    return Err(error.paid(self.charged(self.forget(call).await, &prediction)));
                }
            }
        }
    }

    /// Takes the call's prediction out of the job book; whether it is out.
    async fn forget(&self, call: &UnitCall) -> bool {
        match call.jobs.forget(call).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot forget a Replicate prediction");
                false
            }
        }
    }

    /// What a try charges for a prediction it ends with: its time when the try took it out of the
    /// job book, else nothing (the try that does so charges it).
    fn charged(&self, forgotten: bool, prediction: &Value) -> i64 {
        if forgotten { self.cost_of(prediction) } else { 0 }
    }

    async fn create(&self, input: Value) -> Result<Value, ProviderError> {
        match (&self.version, &self.model) {
            (Some(version), _) => self.endpoint.post_json("/predictions", &json!({"version": version, "input": input}), &[]).await,
            (None, Some(model)) => self.endpoint.post_json(&format!("/models/{model}/predictions"), &json!({"input": input}), &[]).await,
            (None, None) => Err(ProviderError::Permanent("Replicate: no model or version configured".into())),
        }
    }

    fn finished(&self, prediction: &Value) -> Result<(String, i64), ProviderError> {
        let output = prediction.get("output").ok_or_else(|| self.odd("the prediction succeeded without output"))?;
        let url = output.as_str().or_else(|| output.get(0).and_then(Value::as_str)).ok_or_else(|| self.odd("the output is not a URL"))?;
        Ok((url.to_string(), self.cost_of(prediction)))
    }

    /// What a prediction ran for, at the configured price (Replicate bills a prediction's time
    /// whether or not it succeeds; one that says nothing of its time counts nothing).
    fn cost_of(&self, prediction: &Value) -> i64 {
        let seconds = prediction.pointer("/metrics/predict_time").and_then(Value::as_f64).unwrap_or(0.0);
        micros(seconds * self.price_per_second)
    }

    fn failure(&self, prediction: &Value) -> ProviderError {
        let status = text(prediction, "status").unwrap_or_default();
        let said = text(prediction, "error").unwrap_or("no reason given");
        let message = format!("Replicate: the prediction {status}: {said}");
        if is_moderation(&said.to_ascii_lowercase()) {
            ProviderError::Rejected(message)
        } else {
            // A model's failure (out of memory, a bad start) is often gone on the next prediction.
            ProviderError::Transient(message)
        }
    }

    fn odd(&self, what: &str) -> ProviderError {
        ProviderError::Transient(format!("Replicate: {what}"))
    }

    /// What became of a finished prediction's output, which cost `cost`. When it cannot be used
    /// (expired, the wrong kind, too large, does not decode) the prediction is forgotten, so the
    /// next try makes a new one instead of attaching to this one again, and this try counts its
    /// cost. When it only could not be fetched this time, the prediction stays in the job book:
    /// the next try (or a retry's) attaches to it and counts the cost once, when it is used.
    async fn settle<T>(&self, call: &UnitCall, made: Result<T, ProviderError>, cost: i64) -> Result<Costed<T>, Failure> {
        match made {
            Ok(value) => Ok(Costed { value, cost_micros: cost }),
            Err(error @ ProviderError::Permanent(_)) => {
                let forgotten = self.forget(call).await;
                Err(error.paid(if forgotten { cost } else { 0 }))
            }
            Err(error) => Err(error.into()),
        }
    }

    fn cancel_job(&self, job_id: String) -> BoxFuture<'static, ()> {
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let _ = cancel_prediction(&endpoint, &job_id).await;
        })
    }
}

/// Cancels a prediction; Replicate answers with the prediction as cancelled.
async fn cancel_prediction(endpoint: &Endpoint, job_id: &str) -> Option<Value> {
    match endpoint.post_json(&format!("/predictions/{job_id}/cancel"), &json!({}), &[]).await {
        Ok(prediction) => Some(prediction),
        Err(e) => {
            tracing::warn!(error = %e, "cannot cancel a Replicate prediction");
            None
        }
    }
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// A Replicate image model for the storyboard.
#[derive(Clone, Debug)]
pub struct ReplicateImages(pub Replicate);

impl StoryboardArtist for ReplicateImages {
    fn id(&self) -> String {
        self.0.id("images")
    }
    fn unit_price(&self) -> i64 {
        self.0.unit_price()
    }
    fn draw(&self, call: &UnitCall, script: Script, index: usize, seed: u64, width: u32, height: u32) -> Answer<Vec<u8>> {
        let (replicate, call) = (self.0.clone(), call.clone());
        let input = json!({"prompt": super::openai::frame_prompt(&script, index), "seed": seed % (1 << 31)});
        Box::pin(async move {
            let (url, cost) = replicate.predict(&call, input).await?;
            let made = async {
                media::image("Replicate", replicate.endpoint.download(&url, "image/", MAX_IMAGE_BYTES).await?, width, height).await
            };
            replicate.settle(&call, made.await, cost).await
        })
    }
    fn cancel(&self, job_id: String) -> BoxFuture<'static, ()> {
        self.0.cancel_job(job_id)
    }
}

/// A Replicate image-to-video model for clips: the storyboard still and the beat's picture text.
#[derive(Clone, Debug)]
pub struct ReplicateClips {
    pub replicate: Replicate,
    /// The model's input field for the still.
    pub image_field: String,
}

impl ClipAnimator for ReplicateClips {
    fn id(&self) -> String {
        self.replicate.id("clips")
    }
    fn unit_price(&self) -> i64 {
        self.replicate.unit_price()
    }
    fn animate(&self, call: &UnitCall, clip: ClipRequest) -> Answer<ClipBytes> {
        let (replicate, call) = (self.replicate.clone(), call.clone());
        let image = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&clip.still_png));
        let input = json!({self.image_field.clone(): image, "prompt": clip.prompt, "seed": clip.seed % (1 << 31)});
        Box::pin(async move {
            let (url, cost) = replicate.predict(&call, input).await?;
            let made = async {
                let mp4 = replicate.endpoint.download(&url, "video/", MAX_VIDEO_BYTES).await?;
                media::clip("Replicate", mp4, clip).await
            };
            replicate.settle(&call, made.await, cost).await
        })
    }
    fn cancel(&self, job_id: String) -> BoxFuture<'static, ()> {
        self.replicate.cancel_job(job_id)
    }
}
