//! Remote providers: OpenAI-compatible chat and images, Replicate predictions; the providers
//! file that chooses them (SPEC §7); and the HTTP layer they share, which sorts every failure
//! into the classes the worker acts on.
//!
//! | what the provider answered                        | class        | what the worker does       |
//! |---------------------------------------------------|--------------|----------------------------|
//! | connect error, timeout, reset, 408, 5xx           | `Transient`  | backoff, try again         |
//! | 429 rate limit                                    | `RateLimited`| waits `Retry-After`, again |
//! | 429 saying the quota or credit is exhausted       | `Permanent`  | fails the unit at once     |
//! | 400, 404, 422, other 4xx                          | `Permanent`  | fails the unit at once     |
//! | 401, 403                                          | `Permanent`  | "check OPENAI_API_KEY"     |
//! | content moderation                                | `Rejected`   | a new seed, a few times    |
//!
//! Messages name the provider, the HTTP status and what the provider said; the key never
//! appears in them (it is cut out even if a provider echoes it).
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::{Duration, SystemTime};

use super::ProviderError;

pub mod config;
pub mod media;
pub mod openai;
pub mod replicate;
pub mod speech;

pub use config::{ProvidersFile, Settings};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error body quoted in a message.
const QUOTED_CHARS: usize = 300;

/// One remote API: where it is, how it is named in messages, and its key.
#[derive(Clone)]
pub struct Endpoint {
    /// "OpenAI" or "Replicate", for messages.
    pub name: &'static str,
    pub base_url: String,
    /// The environment variable the key comes from (named in messages, never the key).
    pub key_env: String,
    key: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("name", &self.name).field("base_url", &self.base_url).field("key_env", &self.key_env).finish()
    }
}

impl Endpoint {
    /// `timeout` bounds each whole HTTP exchange (the providers file's `timeout_ms`).
    pub fn new(name: &'static str, base_url: &str, key_env: &str, key: Option<String>, timeout: Duration) -> Endpoint {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .build()
            .expect("an HTTP client with default TLS settings");
        Endpoint { name, base_url: base_url.trim_end_matches('/').to_string(), key_env: key_env.to_string(), key, client }
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    fn key(&self) -> Result<&str, ProviderError> {
        self.key.as_deref().ok_or_else(|| ProviderError::Permanent(format!("{}: no API key: set {}", self.name, self.key_env)))
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") { path.to_string() } else { format!("{}{path}", self.base_url) }
    }

    /// `POST` a JSON body with the key; the answer's JSON.
    pub async fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Value, ProviderError> {
        let mut request = self.client.post(self.url(path)).bearer_auth(self.key()?).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.json_of(request).await
    }

    /// `GET` with the key; the answer's JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, ProviderError> {
        let request = self.client.get(self.url(path)).bearer_auth(self.key()?);
        self.json_of(request).await
    }

    /// POSTs a JSON body and returns the answer's bytes (audio, for speech), at most `max_bytes`.
    pub async fn post_for_bytes(&self, path: &str, body: &Value, max_bytes: usize) -> Result<Vec<u8>, ProviderError> {
        let request = self.client.post(self.url(path)).bearer_auth(self.key()?).json(body);
        Ok(self.answer_of(request, max_bytes).await?.1)
    }

    /// The answer's status and body, read up to `max_bytes` (a larger answer is refused without
    /// reading the rest); an error status is classified from the first `ERROR_BODY_BYTES` of its
    /// body, with the key cut out before anything is quoted.
    async fn answer_of(&self, request: reqwest::RequestBuilder, max_bytes: usize) -> Result<(StatusCode, Vec<u8>), ProviderError> {
        let mut response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = if status.is_success() { max_bytes } else { ERROR_BODY_BYTES };
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if body.len() + chunk.len() > limit {
                if status.is_success() {
                    return Err(ProviderError::Permanent(format!("{}: the answer is larger than {} MB", self.name, max_bytes >> 20)));
                }
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = self.without_key(&String::from_utf8_lossy(&body));
            return Err(self.redacted(classify(self.name, &self.key_env, status, &headers, &text, SystemTime::now())));
        }
        Ok((status, body))
    }

    async fn json_of(&self, request: reqwest::RequestBuilder) -> Result<Value, ProviderError> {
        let (status, body) = self.answer_of(request, MAX_JSON_BYTES).await?;
        let body = self.without_key(&String::from_utf8_lossy(&body));
        serde_json::from_str(&body).map_err(|_| {
            ProviderError::Transient(format!("{}: HTTP {}: the answer is not JSON: {}", self.name, status.as_u16(), quote(&body)))
        })
    }

    /// Downloads an output (without the key: output URLs are signed or public) of at most
    /// `max_bytes`, whose `Content-Type` starts with `kind` ("image/", "video/"). An expired
    /// URL (403/404/410) is permanent: the output is gone; a 5xx is transient.
    pub async fn download(&self, url: &str, kind: &str, max_bytes: usize) -> Result<Vec<u8>, ProviderError> {
        let mut response = self.client.get(url).send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let said = response.text().await.unwrap_or_default();
            return Err(match status.as_u16() {
                403 | 404 | 410 => ProviderError::Permanent(format!(
                    "{}: the output URL answers HTTP {} (it has expired): {}",
                    self.name,
                    status.as_u16(),
                    quote(&said)
                )),
                _ => classify(self.name, &self.key_env, status, &HeaderMap::new(), &said, SystemTime::now()),
            });
        }
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if !content_type.starts_with(kind) && !content_type.starts_with("application/octet-stream") {
            return Err(ProviderError::Permanent(format!("{}: the output is {content_type:?}, not {kind}*", self.name)));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(ProviderError::Permanent(format!("{}: the output is larger than {} MB", self.name, max_bytes >> 20)));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// No answer at all: connect error, timeout, reset. Always worth another try.
    fn unreachable(&self, e: &reqwest::Error) -> ProviderError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "the connection failed"
        };
        ProviderError::Transient(format!("{}: {what} ({})", self.name, self.base_url))
    }

    /// The message with the key cut out, in case the provider echoed it.
    fn redacted(&self, error: ProviderError) -> ProviderError {
        let clean = |m: String| self.without_key(&m);
        match error {
            ProviderError::Transient(m) => ProviderError::Transient(clean(m)),
            ProviderError::RateLimited { message, after } => ProviderError::RateLimited { message: clean(message), after },
            ProviderError::Rejected(m) => ProviderError::Rejected(clean(m)),
            ProviderError::Permanent(m) => ProviderError::Permanent(clean(m)),
        }
    }

    /// The text with the key cut out, before it is quoted (a quote cut short could keep a part).
    fn without_key(&self, text: &str) -> String {
        match self.key.as_deref().filter(|k| k.len() >= 4) {
            Some(key) => text.replace(key, "[key]"),
            None => text.to_string(),
        }
    }
}

/// How much of an error answer's body is read: enough for its message.
const ERROR_BODY_BYTES: usize = 64 << 10;
/// The largest JSON answer read (an image given inline as base64 is the largest expected).
const MAX_JSON_BYTES: usize = 48 << 20;

/// Sorts an HTTP error answer into the worker's classes (the table at the top of this module).
pub fn classify(name: &str, key_env: &str, status: StatusCode, headers: &HeaderMap, body: &str, now: SystemTime) -> ProviderError {
    let said = message_of(body);
    let code = status.as_u16();
    let message = format!("{name}: HTTP {code}: {said}");
    let lower = body.to_ascii_lowercase();
    match code {
        401 | 403 => ProviderError::Permanent(format!("{message} — the API key was refused: check {key_env}")),
        429 if ["quota", "credit", "billing"].iter().any(|w| lower.contains(w)) => {
            ProviderError::Permanent(format!("{message} — the account's quota or credit is exhausted"))
        }
        429 => ProviderError::RateLimited { message, after: retry_after(headers, now).unwrap_or(Duration::from_secs(1)) },
        408 | 500..=599 => ProviderError::Transient(message),
        _ if is_moderation(&lower) => ProviderError::Rejected(format!("{message} — refused by the provider's content moderation")),
        _ => ProviderError::Permanent(message),
    }
}

/// An answer of 404 or 410: what was asked for is not there (any more).
pub fn is_gone(error: &ProviderError) -> bool {
    matches!(error, ProviderError::Permanent(m) if m.contains(": HTTP 404: ") || m.contains(": HTTP 410: "))
}

/// A refusal by content moderation, as OpenAI and Replicate word it.
pub fn is_moderation(lower: &str) -> bool {
    ["content_policy_violation", "moderation", "safety system", "nsfw", "flagged as sensitive"].iter().any(|w| lower.contains(w))
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What an error body says: OpenAI's `error.message`, Replicate's `detail`, or the text itself.
fn message_of(body: &str) -> String {
    let said = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        v.pointer("/error/message").or_else(|| v.get("detail")).or_else(|| v.get("error")).and_then(Value::as_str).map(str::to_string)
    });
    quote(&said.unwrap_or_else(|| body.to_string()))
}

fn quote(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".into();
    }
    let cut: String = text.chars().take(QUOTED_CHARS).collect();
    if cut.len() < text.len() { format!("{cut}…") } else { cut }
}

/// Dollars to micro-dollars, rounded.
pub fn micros(dollars: f64) -> i64 {
    (dollars * 1_000_000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("retry-after", retry_after.parse().unwrap());
        h
    }

    fn class(code: u16, body: &str) -> ProviderError {
        classify("OpenAI", "OPENAI_API_KEY", StatusCode::from_u16(code).unwrap(), &HeaderMap::new(), body, SystemTime::now())
    }

    #[test]
    fn every_status_falls_in_its_class() {
        for code in [408, 500, 502, 503, 504] {
            assert!(matches!(class(code, ""), ProviderError::Transient(_)), "{code}");
        }
        for code in [400, 404, 422] {
            assert!(matches!(class(code, r#"{"error":{"message":"bad"}}"#), ProviderError::Permanent(m) if m.contains("bad")), "{code}");
        }
        for code in [401, 403] {
            assert!(matches!(class(code, ""), ProviderError::Permanent(m) if m.contains("check OPENAI_API_KEY")), "{code}");
        }
        assert!(matches!(class(429, r#"{"error":{"message":"slow down"}}"#), ProviderError::RateLimited { .. }));
        let quota = class(429, r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota"}}"#);
        assert!(matches!(quota, ProviderError::Permanent(m) if m.contains("quota or credit")));
        let moderated = class(400, r#"{"error":{"code":"content_policy_violation","message":"Your request was rejected"}}"#);
        assert!(matches!(moderated, ProviderError::Rejected(_)));
        assert!(is_gone(&class(404, r#"{"detail":"Not found."}"#)) && is_gone(&class(410, "")));
        assert!(!is_gone(&class(401, "")) && !is_gone(&class(400, "HTTP 404: ")) && !is_gone(&class(502, "")));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(&headers("7"), now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&later), now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&headers("soon"), now), None);
        let ProviderError::RateLimited { after, .. } = classify("Replicate", "R", StatusCode::TOO_MANY_REQUESTS, &headers("12"), "{}", now)
        else {
            panic!("a rate limit")
        };
        assert_eq!(after, Duration::from_secs(12));
    }

    #[test]
    fn messages_quote_the_provider_but_not_the_key() {
        let endpoint = Endpoint::new("OpenAI", "http://x", "OPENAI_API_KEY", Some("sk-secret-123".into()), Duration::from_secs(1));
        let echoed = endpoint.redacted(class(401, r#"{"error":{"message":"Incorrect API key provided: sk-secret-123"}}"#));
        let text = echoed.to_string();
        assert!(!text.contains("sk-secret-123") && text.contains("HTTP 401") && text.contains("[key]"), "{text}");
        assert!(!format!("{endpoint:?}").contains("sk-secret"), "Debug leaves the key out");
        assert!(class(502, &"x".repeat(5000)).to_string().len() < 400, "long bodies are cut");
    }
}
