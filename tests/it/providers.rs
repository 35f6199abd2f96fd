//! The remote providers' real HTTP clients, driven by the real engine and worker, against local
//! fakes of the OpenAI and Replicate APIs (wiremock): every error class, `Retry-After`, a crash
//! between create and done, cancel, expired and malformed outputs, and the cheap retry.
use crate::common::*;
use base64::Engine as _;
use reelsmith::domain::video::{UnitTry, Video};
use reelsmith::domain::{Phase, RunStatus, TryOutcome, VideoId};
use reelsmith::pipeline::EngineConfig;
use reelsmith::pipeline::providers::Providers;
use reelsmith::pipeline::providers::remote::ProvidersFile;
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::storage;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-fake-4f1c9a77";

/// Answers from a queue, then the last answer forever; notes when each request came.
#[derive(Clone)]
struct Replies {
    queue: Arc<Mutex<VecDeque<ResponseTemplate>>>,
    last: ResponseTemplate,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Replies {
    fn new(mut answers: Vec<ResponseTemplate>) -> Replies {
        let last = answers.pop().expect("at least one answer");
        Replies { queue: Arc::new(Mutex::new(answers.into())), last, times: Default::default() }
    }
}

impl Respond for Replies {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.times.lock().unwrap().push(Instant::now());
        self.queue.lock().unwrap().pop_front().unwrap_or_else(|| self.last.clone())
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 120]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn status(code: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(body)
}

fn openai_error(code: u16, message: &str, kind: &str) -> ResponseTemplate {
    status(code, json!({"error": {"message": message, "type": kind, "code": kind}}))
}

/// An engine whose phases in `toml` are remote (keys: `FAKE_KEY` holds `KEY`), the rest `base`.
async fn remote_env(toml: &str, base: Providers) -> TestEnv {
    let file = ProvidersFile::parse(toml).expect("a valid providers file");
    let providers = file.build(base, &|name| (name == "FAKE_KEY").then(|| KEY.to_string()));
    env_with(providers, EngineConfig { rerolls: 2, ..fast_config() }).await
}

fn table(phase: &str, kind: &str, server: &MockServer, extra: &str) -> String {
    format!(
        "[{phase}]\nkind = \"{kind}\"\nbase_url = \"{}/v1\"\nmodel = \"acme/model\"\napi_key_env = \"FAKE_KEY\"\ntimeout_ms = 1000\n{extra}\n",
        server.uri()
    )
}

async fn state(env: &TestEnv, video: VideoId) -> Video {
    env.engine.video_state(video).await.unwrap()
}

async fn tries(env: &TestEnv, video: VideoId) -> Vec<UnitTry> {
    let mut tx = env.engine.store.read().await.unwrap();
    storage::unit_tries_of_video(&mut tx, video).await.unwrap()
}

async fn jobs_left(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM provider_jobs").fetch_one(env.engine.store.pool()).await.unwrap()
}

async fn calls(server: &MockServer, verb: &str, path_part: &str) -> usize {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.method.as_str() == verb && r.url.path().contains(path_part)).count()
}

/// The storyboard run of a one-beat video whose storyboard comes from a fake OpenAI images API
/// answering `answers` in turn: the worker's steps, the storyboard run, its tries, the calls.
struct ImagesCase {
    env: TestEnv,
    server: MockServer,
    video: VideoId,
    steps: String,
}

async fn images_case(answers: Vec<ResponseTemplate>) -> ImagesCase {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/images/generations")).respond_with(Replies::new(answers)).mount(&server).await;
    images_case_on(server).await
}

async fn images_case_on(server: MockServer) -> ImagesCase {
    let env = remote_env(&table("storyboard", "openai", &server, "price_per_image = 0.04"), Providers::instant()).await;
    let video = new_video(&env.engine, "A fox at the fake API", 1, true, None).await;
    let steps = letters(&drain(&env.engine).await);
    ImagesCase { env, server, video, steps }
}

impl ImagesCase {
    async fn storyboard_run(&self) -> reelsmith::domain::video::Run {
        state(&self.env, self.video).await.runs.into_iter().find(|r| r.phase == Phase::Storyboard).expect("a storyboard run")
    }

    /// The tries of the storyboard run's unit `unit` (0: the still; 1: the narration).
    async fn outcomes_of(&self, unit: u32) -> Vec<TryOutcome> {
        let board = self.storyboard_run().await.id;
        tries(&self.env, self.video).await.into_iter().filter(|t| t.run_id == board && t.unit == unit).map(|t| t.outcome).collect()
    }

    async fn outcomes(&self) -> Vec<TryOutcome> {
        self.outcomes_of(0).await
    }

    async fn cost_of(&self, unit: u32) -> i64 {
        let board = self.storyboard_run().await.id;
        tries(&self.env, self.video).await.iter().filter(|t| t.run_id == board && t.unit == unit).map(|t| t.cost_micros).sum()
    }
}

fn image_ok() -> ResponseTemplate {
    status(200, json!({"data": [{"b64_json": b64(&png(64, 64))}]}))
}

/// A case: its name, the fake's answers, the worker's steps, the storyboard unit's tries, and
/// what the error card must say.
type ErrorCase = (&'static str, Vec<ResponseTemplate>, &'static str, Vec<TryOutcome>, &'static str);

/// Each error class of the table in `providers::remote`, through the worker: what it retried,
/// what it gave up on at once, and what the error card says.
#[tokio::test]
async fn each_error_class_is_handled_as_its_class() {
    use TryOutcome::{Ok as Made, Permanent, Transient};
    let quota = openai_error(429, "You exceeded your current quota, please check your plan", "insufficient_quota");
    let moderated = openai_error(400, "Your request was rejected by our safety system", "content_policy_violation");
    let cases: Vec<ErrorCase> = vec![
        ("502 then ok", vec![openai_error(502, "Bad Gateway", "server_error"), image_ok()], "SSSS", vec![Transient, Made], ""),
        ("503 every time", vec![openai_error(503, "Service Unavailable", "server_error")], "SF", vec![Transient; 3], "OpenAI: HTTP 503"),
        ("408 then ok", vec![ResponseTemplate::new(408), image_ok()], "SSSS", vec![Transient, Made], ""),
        ("timeout then ok", vec![image_ok().set_delay(Duration::from_millis(1500)), image_ok()], "SSSS", vec![Transient, Made], ""),
        (
            "401",
            vec![openai_error(401, "Incorrect API key provided: sk-fake-4f1c9a77", "invalid_api_key")],
            "SF",
            vec![Permanent],
            "check FAKE_KEY",
        ),
        ("403", vec![openai_error(403, "Forbidden", "forbidden")], "SF", vec![Permanent], "the API key was refused"),
        ("400", vec![openai_error(400, "size must be one of 1024x1024", "invalid_request_error")], "SF", vec![Permanent], "HTTP 400"),
        ("404", vec![openai_error(404, "The model does not exist", "model_not_found")], "SF", vec![Permanent], "HTTP 404"),
        ("422", vec![openai_error(422, "Unprocessable", "invalid")], "SF", vec![Permanent], "HTTP 422"),
        ("429 quota", vec![quota], "SF", vec![Permanent], "quota or credit is exhausted"),
        ("moderation then ok", vec![moderated.clone(), image_ok()], "SSSS", vec![Transient, Made], ""),
        ("moderation every time", vec![moderated], "SF", vec![Transient; 3], "refused 3 times, each with a new seed"),
        (
            "not an image",
            vec![status(200, json!({"data": [{"b64_json": b64(b"<html>oops</html>")}]}))],
            "SF",
            vec![Permanent],
            "cannot be used",
        ),
        ("no image", vec![status(200, json!({"data": []}))], "SF", vec![Transient; 3], "no image in the answer"),
    ];
    for (name, answers, steps, outcomes, error) in cases {
        let case = images_case(answers).await;
        assert_eq!(case.steps, steps, "{name}");
        assert_eq!(case.outcomes().await, outcomes, "{name}");
        assert_eq!(calls(&case.server, "POST", "/images/generations").await, outcomes.len(), "{name}: one call per try");
        let run = case.storyboard_run().await;
        let shown = run.error.clone().unwrap_or_default();
        assert!(shown.contains(error), "{name}: {shown}");
        assert!(!shown.contains(KEY) && !format!("{:?}", tries(&case.env, case.video).await).contains(KEY), "{name}: the key leaked");
        // Billed: each image the answers carried (one that does not decode too); an error, an
        // answer without an image and a timed-out request count nothing.
        let images = u8::from(run.status == RunStatus::Succeeded || name == "not an image");
        assert_eq!(case.cost_of(0).await, i64::from(images) * 40_000, "{name}: the configured price per image made");
    }
}

/// A WAV as a speech API answers it: 24 kHz mono 16-bit, a tone of `ms` milliseconds.
fn speech_wav(ms: u32) -> Vec<u8> {
    let samples = (0..ms * 24).map(|i| ((i as f32 * 0.07).sin() * 9000.0) as i16).collect();
    reelsmith::media::wav_bytes(&reelsmith::media::Pcm { rate: 24_000, samples })
}

fn speech_ok(ms: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(speech_wav(ms), "audio/wav")
}

/// A one-beat video whose narration comes from a fake OpenAI speech API answering `answers` in turn.
async fn speech_case(answers: Vec<ResponseTemplate>) -> ImagesCase {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/audio/speech")).respond_with(Replies::new(answers)).mount(&server).await;
    let toml = table("narration", "openai", &server, "voice = \"alloy\"\nprice_per_1k_chars = 100.0");
    let env = remote_env(&toml, Providers::instant()).await;
    let video = new_video(&env.engine, "A fox reads aloud", 1, true, None).await;
    let steps = letters(&drain(&env.engine).await);
    ImagesCase { env, server, video, steps }
}

/// The remote voice: what it is asked, the WAV it answers made 48 kHz, and its error classes as
/// for every other remote provider.
#[tokio::test]
async fn narration_comes_from_the_speech_api_with_the_same_error_classes() {
    use TryOutcome::{Ok as Made, Permanent, Transient};
    let case = speech_case(vec![openai_error(502, "Bad Gateway", "server_error"), speech_ok(1500)]).await;
    assert_eq!((case.steps.as_str(), case.outcomes_of(1).await), ("SSSS", vec![Transient, Made]));
    let asked = case.server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&asked[1].body).unwrap();
    let state = state(&case.env, case.video).await;
    let script = state.checkpoints.iter().find_map(|c| c.manifest.script()).unwrap();
    assert_eq!((body["input"].as_str(), body["voice"].as_str()), (Some(script.beats[0].narration.as_str()), Some("alloy")));
    assert_eq!((body["response_format"].as_str(), body["model"].as_str()), (Some("wav"), Some("acme/model")));
    assert_eq!(asked[1].headers.get("authorization").unwrap().to_str().unwrap(), format!("Bearer {KEY}"));
    let board = state.checkpoints.iter().find(|c| c.phase == Phase::Storyboard).unwrap();
    let reelsmith::domain::Manifest::Storyboard { narrations, .. } = &board.manifest else { unreachable!() };
    assert_eq!(narrations[0].duration_ms, 1500);
    let wav = reelsmith::media::parse_wav(&case.env.engine.blob_bytes(&narrations[0].audio).await.unwrap()).unwrap();
    assert_eq!((wav.rate, wav.samples.len()), (48_000, 72_000), "resampled to 48 kHz");
    let chars = script.beats[0].narration.chars().count() as i64;
    assert_eq!(case.cost_of(1).await, chars * 100_000, "$100 per 1k characters");

    let cases: Vec<(&str, Vec<ResponseTemplate>, Vec<TryOutcome>, &str)> = vec![
        ("503 every time", vec![openai_error(503, "Service Unavailable", "server_error")], vec![Transient; 3], "OpenAI: HTTP 503"),
        (
            "401",
            vec![openai_error(401, "Incorrect API key provided: sk-fake-4f1c9a77", "invalid_api_key")],
            vec![Permanent],
            "check FAKE_KEY",
        ),
        ("429 quota", vec![openai_error(429, "You exceeded your current quota", "insufficient_quota")], vec![Permanent], "quota"),
        ("400", vec![openai_error(400, "voice must be one of alloy, echo", "invalid_request_error")], vec![Permanent], "HTTP 400"),
        ("not a WAV", vec![status(200, json!({"audio": "nope"}))], vec![Permanent], "not a usable WAV"),
    ];
    for (name, answers, outcomes, error) in cases {
        let case = speech_case(answers).await;
        assert_eq!((case.steps.as_str(), case.outcomes_of(1).await), ("SF", outcomes), "{name}");
        let shown = case.storyboard_run().await.error.unwrap_or_default();
        assert!(shown.contains("narration for beat 1") && shown.contains(error), "{name}: {shown}");
        let billed = if name == "not a WAV" { chars * 100_000 } else { 0 };
        assert_eq!(case.cost_of(1).await, billed, "{name}: speech that came back is billed, usable or not");
        assert!(!shown.contains(KEY) && !format!("{:?}", tries(&case.env, case.video).await).contains(KEY), "{name}: the key leaked");
    }
}

/// A provider that echoes the key where the error card's quote of its message ends: no part of
/// the key is left in the quote (the key is cut out before the message is shortened).
#[tokio::test]
async fn a_key_echoed_at_the_end_of_a_long_message_leaves_no_part_on_the_page() {
    let message =
        format!("{} {KEY} and more words after it", "Your request was refused because".repeat(9).chars().take(292).collect::<String>());
    let case = speech_case(vec![openai_error(401, &message, "invalid_api_key")]).await;
    assert_eq!(case.steps, "SF");
    let shown = case.storyboard_run().await.error.unwrap_or_default();
    let kept = format!("{shown} {:?}", tries(&case.env, case.video).await);
    assert!(shown.contains("Your request was refused") && shown.contains("check FAKE_KEY"), "{shown}");
    assert!(!kept.contains(&KEY[..6]), "a part of the key reached the page: {shown}");
}

/// No server at all: a connect error is transient, and the error card says so.
#[tokio::test]
async fn an_unreachable_server_is_transient() {
    let server = MockServer::start().await;
    let toml = table("storyboard", "openai", &server, "").replace(&server.uri(), "http://127.0.0.1:9");
    let env = remote_env(&toml, Providers::instant()).await;
    let video = new_video(&env.engine, "Nobody home", 1, true, None).await;
    assert_eq!(letters(&drain(&env.engine).await), "SF");
    let all = tries(&env, video).await;
    assert_eq!(all.iter().filter(|t| t.outcome == TryOutcome::Transient).count(), 3);
    assert!(all.iter().any(|t| t.message.as_deref().is_some_and(|m| m.contains("cannot connect"))), "{all:?}");
}

/// A rate limit's `Retry-After` (seconds, and an HTTP date) is waited out before the next try.
#[tokio::test]
async fn retry_after_is_honoured() {
    let in_seconds: fn() -> String = || "1".into();
    // Written when the answer is made; an HTTP date has one-second resolution, so at least a
    // second of the two is left.
    let as_date: fn() -> String = || httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    for retry_after in [in_seconds, as_date] {
        let server = MockServer::start().await;
        let limited = RateLimitedOnce { retry_after, times: Default::default() };
        Mock::given(method("POST")).and(path("/v1/images/generations")).respond_with(limited.clone()).mount(&server).await;
        let case = images_case_on(server).await;
        assert_eq!(case.steps, "SSSS");
        let times = limited.times.lock().unwrap().clone();
        assert_eq!(times.len(), 2);
        assert!(
            times[1] - times[0] >= Duration::from_millis(990),
            "waited only {:?} after Retry-After {}",
            times[1] - times[0],
            retry_after()
        );
    }
}

/// 429 with a `Retry-After` the first time, an image after that.
#[derive(Clone)]
struct RateLimitedOnce {
    retry_after: fn() -> String,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for RateLimitedOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut times = self.times.lock().unwrap();
        times.push(Instant::now());
        if times.len() > 1 {
            return image_ok();
        }
        openai_error(429, "Rate limit reached", "rate_limit_exceeded").insert_header("Retry-After", (self.retry_after)().as_str())
    }
}

/// An image answered as a URL is downloaded and checked: an expired URL and a web page instead
/// of an image fail the unit at once; a 5xx while fetching is tried again.
#[tokio::test]
async fn image_urls_are_downloaded_and_checked() {
    let cases: Vec<(&str, Vec<ResponseTemplate>, &str, usize)> = vec![
        ("expired", vec![ResponseTemplate::new(404).set_body_string("<Error>AccessDenied: Request has expired</Error>")], "SF", 1),
        ("html", vec![ResponseTemplate::new(200).insert_header("Content-Type", "text/html").set_body_string("<html></html>")], "SF", 1),
        ("503 then ok", vec![ResponseTemplate::new(503), ResponseTemplate::new(200).set_body_raw(png(48, 80), "image/png")], "SSSS", 2),
    ];
    for (name, file_answers, steps, generations) in cases {
        let server = MockServer::start().await;
        let url = format!("{}/files/frame.png", server.uri());
        let answer = status(200, json!({"data": [{"url": url}]}));
        Mock::given(method("POST")).and(path("/v1/images/generations")).respond_with(answer).mount(&server).await;
        Mock::given(method("GET")).and(path("/files/frame.png")).respond_with(Replies::new(file_answers)).mount(&server).await;
        let case = images_case_on(server).await;
        assert_eq!(case.steps, steps, "{name}: {:?}", case.storyboard_run().await.error);
        assert_eq!(calls(&case.server, "POST", "/images/generations").await, generations, "{name}");
        let downloads = calls(&case.server, "GET", "/files/frame.png").await;
        assert_eq!(downloads, generations, "{name}: one download per try, without the key");
        let requests = case.server.received_requests().await.unwrap();
        assert!(requests.iter().filter(|r| r.method.as_str() == "GET").all(|r| !r.headers.contains_key("authorization")), "{name}");
        assert_eq!(case.cost_of(0).await, generations as i64 * 40_000, "{name}: every image made was billed, used or not");
    }
}

fn script_answer(content: &str, finish: &str, refusal: Option<&str>) -> ResponseTemplate {
    status(
        200,
        json!({
            "choices": [{"finish_reason": finish, "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 2000},
        }),
    )
}

/// The script from chat completions: checked by the edit validator; a cut-off answer, a refusal
/// and an answer of the wrong shape each fail with their own message. The cost is the usage.
#[tokio::test]
async fn scripts_come_from_chat_completions_and_are_checked() {
    let first = json!({"narration": "A fox wakes.", "visual": "A fox in a den.", "duration_ms": 1500});
    let second = json!({"narration": "It runs.", "visual": "A fox on snow.", "duration_ms": 1500});
    let good = json!({"title": "A fox", "beats": [first, second]}).to_string();
    let one_beat = json!({"title": "A fox", "beats": [first]}).to_string();
    let empty_narration = good.replace("A fox wakes.", " ");
    let cases = [
        ("good", script_answer(&good, "stop", None), None),
        ("cut off", script_answer(&good[..40], "length", None), Some("cut off at the model's token limit")),
        ("refusal", script_answer("", "stop", Some("I can't help with that.")), Some("refused to write the script: I can't help")),
        ("wrong shape", script_answer(r#"{"title": 3}"#, "stop", None), Some("does not match the script schema")),
        ("invalid", script_answer(&empty_narration, "stop", None), Some("the script is invalid: beat 1 needs narration")),
        ("one beat", script_answer(&one_beat, "stop", None), Some("has 1 beats, not the 2")),
    ];
    for (name, answer, error) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(answer).mount(&server).await;
        let prices = "price_per_1k_input_tokens = 0.00015\nprice_per_1k_output_tokens = 0.0006";
        let env = remote_env(&table("script", "openai", &server, prices), Providers::instant()).await;
        let video = new_video(&env.engine, "A fox", 2, false, None).await;
        let outcome = step(&env.engine).await;
        let run = state(&env, video).await.runs.remove(0);
        match error {
            None => {
                assert!(matches!(outcome, WorkOutcome::Succeeded { .. }), "{name}: {outcome:?}");
                assert_eq!(run.cost_micros, 150 + 1200, "{name}: 1k input tokens and 2k output tokens at the configured prices");
                let script = state(&env, video).await.checkpoints[0].manifest.script().cloned().unwrap();
                assert_eq!(script.beats[1].visual, "A fox on snow.");
                let request: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
                assert_eq!(request["response_format"]["json_schema"]["strict"], true, "{name}: strict structured output");
            }
            Some(expected) => {
                assert!(run.error.as_deref().is_some_and(|e| e.contains(expected)), "{name}: {:?}", run.error);
                assert_eq!(calls(&server, "POST", "/chat/completions").await, 1, "{name}: a permanent failure is not tried again");
                assert_eq!(run.cost_micros, 150 + 1200, "{name}: the answer's tokens were billed though it could not be used");
            }
        }
    }
}

/// A fake Replicate: predictions of one model, polled, with an MP4 output.
struct FakeReplicate {
    server: MockServer,
    /// When set, polls answer "succeeded"; until then "processing".
    done: Arc<AtomicBool>,
    /// How many polls answer 404 next (the prediction is gone).
    gone: Arc<AtomicUsize>,
}

impl FakeReplicate {
    async fn start(output: Vec<u8>, content_type: &str) -> FakeReplicate {
        let server = MockServer::start().await;
        let (done, gone) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let output_url = format!("{}/files/out", server.uri());
        let created = status(201, json!({"id": "p-1", "status": "starting", "urls": {}}));
        Mock::given(method("POST")).and(path("/v1/models/acme/model/predictions")).respond_with(created).mount(&server).await;
        let poll = PollReply { done: done.clone(), gone: gone.clone(), output_url };
        Mock::given(method("GET")).and(path("/v1/predictions/p-1")).respond_with(poll).mount(&server).await;
        Mock::given(method("POST"))
            .and(path_regex("^/v1/predictions/p-1/cancel$"))
            .respond_with(status(200, json!({"id": "p-1", "status": "canceled", "metrics": {"predict_time": 1.5}})))
            .mount(&server)
            .await;
        let file = ResponseTemplate::new(200).set_body_raw(output, content_type);
        Mock::given(method("GET")).and(path("/files/out")).respond_with(file).mount(&server).await;
        FakeReplicate { server, done, gone }
    }

    async fn creates(&self) -> usize {
        calls(&self.server, "POST", "/models/acme/model/predictions").await
    }
}

struct PollReply {
    done: Arc<AtomicBool>,
    gone: Arc<AtomicUsize>,
    output_url: String,
}

impl Respond for PollReply {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.gone.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            status(404, json!({"detail": "Not found."}))
        } else if self.done.load(Ordering::SeqCst) {
            status(200, json!({"id": "p-1", "status": "succeeded", "output": self.output_url, "metrics": {"predict_time": 2.5}}))
        } else {
            status(200, json!({"id": "p-1", "status": "processing"}))
        }
    }
}

/// What a remote video model answers: an 832x480, 16 fps H.264 MP4.
fn remote_mp4() -> Vec<u8> {
    let still = png(832, 480);
    reelsmith::media::make_clip(&still, "", 3000, 16, 9).unwrap().preview_mp4
}

async fn clips_env(fake: &FakeReplicate) -> TestEnv {
    clips_env_with(fake, "").await
}

async fn clips_env_with(fake: &FakeReplicate, more: &str) -> TestEnv {
    let extra = format!("price_per_second = 0.0014\npoll_ms = 20\nimage_field = \"first_frame_image\"\n{more}");
    remote_env(&table("clips", "replicate", &fake.server, &extra), Providers::local()).await
}

async fn wait_until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A one-beat video whose clips prediction was created and polled (at least `polls` times) by a
/// worker that then died: its run is still `running` under a lease nobody renews, and the
/// prediction is recorded.
async fn a_worker_died_mid_prediction(prompt: &str, polls: usize) -> (FakeReplicate, TestEnv, VideoId) {
    let fake = FakeReplicate::start(remote_mp4(), "video/mp4").await;
    let env = clips_env(&fake).await;
    let e = env.engine.clone();
    let video = new_video(&e, prompt, 1, true, None).await;
    assert_eq!(letters(&[step(&e).await, step(&e).await]), "SS", "script and storyboard, locally");
    let worker = tokio::spawn(async move { step(&e).await });
    wait_until("the prediction is polled", async || calls(&fake.server, "GET", "/predictions/p-1").await >= polls).await;
    worker.abort();
    let _ = worker.await;
    (fake, env, video)
}

/// The worker dies between creating the prediction and its end. The run is taken over, and the
/// new worker attaches to the prediction already running: zero extra creates, one clip, paid once.
#[tokio::test]
async fn a_crash_between_create_and_done_attaches_instead_of_paying_again() {
    let (fake, env, video) = a_worker_died_mid_prediction("A crash mid-prediction", 2).await;
    let e = env.engine.clone();
    assert_eq!((fake.creates().await, jobs_left(&env).await), (1, 1), "the prediction was recorded before waiting");
    expire_leases(&env).await;
    fake.done.store(true, Ordering::SeqCst);
    drain_expect(&e, "SS").await;
    assert_eq!(fake.creates().await, 1, "the takeover attached to the prediction: zero extra creates");
    assert_eq!(jobs_left(&env).await, 0, "the finished job is forgotten with its unit recorded");
    let s = state(&env, video).await;
    let clips = s.runs.iter().find(|r| r.phase == Phase::Clips && r.status == RunStatus::Succeeded).expect("the clips run finished");
    assert_eq!(clips.cost_micros, 3_500, "2.5 s of prediction at $0.0014 per second, paid once");
    let created: Value = serde_json::from_slice(&fake.server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(created["input"]["first_frame_image"].as_str().unwrap().starts_with("data:image/png;base64,"), "the still goes in");
    let render = s.checkpoints.iter().find(|c| c.phase == Phase::Render).expect("the video was rendered");
    assert!(render.manifest.blobs().iter().any(|b| b.media_type == "video/mp4"));
}

/// The run is taken over, but the prediction it recorded is gone (Replicate removed it, or the
/// key is another account's now): the new worker makes a new one instead of failing on the old
/// one in every try and every retry.
#[tokio::test]
async fn a_recorded_prediction_that_is_gone_is_made_anew() {
    let (fake, env, video) = a_worker_died_mid_prediction("A prediction lost", 1).await;
    let e = env.engine.clone();
    expire_leases(&env).await;
    fake.gone.store(1, Ordering::SeqCst);
    fake.done.store(true, Ordering::SeqCst);
    drain_expect(&e, "SS").await;
    assert_eq!((fake.creates().await, jobs_left(&env).await), (2, 0), "one new prediction, forgotten once finished");
    let tries = tries(&env, video).await;
    let clips = state(&env, video).await.runs.into_iter().find(|r| r.phase == Phase::Clips).unwrap();
    let outcomes: Vec<TryOutcome> = tries.iter().filter(|t| t.run_id == clips.id).map(|t| t.outcome).collect();
    assert_eq!((clips.status, outcomes), (RunStatus::Succeeded, vec![TryOutcome::Ok]), "made in the takeover's first try");
}

/// A prediction that never finishes is cancelled after `max_wait_ms`, and the unit fails with a
/// sentence that names the setting; nothing is left recorded or running.
#[tokio::test]
async fn a_prediction_that_never_finishes_is_cancelled_after_max_wait() {
    let fake = FakeReplicate::start(remote_mp4(), "video/mp4").await;
    let env = clips_env_with(&fake, "max_wait_ms = 300").await;
    let e = env.engine.clone();
    let video = new_video(&e, "A prediction stuck in its queue", 1, true, None).await;
    drain_expect(&e, "SSF").await;
    let failed = state(&env, video).await.runs.into_iter().find(|r| r.status == RunStatus::Failed).unwrap();
    assert!(failed.error.as_deref().is_some_and(|m| m.contains("still processing") && m.contains("max_wait_ms")), "{:?}", failed.error);
    assert_eq!(calls(&fake.server, "POST", "/predictions/p-1/cancel").await, 1, "cancelled, not left running");
    assert_eq!((fake.creates().await, jobs_left(&env).await), (1, 0), "a permanent failure: not tried again, not recorded");
    assert_eq!(failed.cost_micros, 2_100, "the 1.5 s it ran before the cancel, at $0.0014 per second");
}

/// Cancelling the run cancels its prediction (once), and forgets it.
#[tokio::test]
async fn cancelling_the_run_cancels_the_prediction() {
    let fake = FakeReplicate::start(remote_mp4(), "video/mp4").await;
    let env = clips_env(&fake).await;
    let e = env.engine.clone();
    let video = new_video(&e, "A cancelled prediction", 1, true, None).await;
    assert_eq!(letters(&[step(&e).await, step(&e).await]), "SS");
    let worker = tokio::spawn({
        let e = e.clone();
        async move { step(&e).await }
    });
    wait_until("the prediction is polled", async || calls(&fake.server, "GET", "/predictions/p-1").await >= 1).await;
    e.cancel(video, None).await.unwrap();
    assert!(matches!(worker.await.unwrap(), WorkOutcome::Stopped));
    // The command and the run's worker both cancel the run's jobs: one of them takes each job.
    wait_until("the prediction is cancelled", async || calls(&fake.server, "POST", "/predictions/p-1/cancel").await >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls(&fake.server, "POST", "/predictions/p-1/cancel").await, 1, "cancelled once, not by both");
    assert_eq!(jobs_left(&env).await, 0);
}

/// The run's worker is gone (its process crashed) when the person cancels: the cancel itself
/// cancels the prediction, which would otherwise run on and be paid for; the video can then be
/// deleted with nothing left out.
#[tokio::test]
async fn cancelling_a_run_whose_worker_died_cancels_the_prediction() {
    let (fake, env, video) = a_worker_died_mid_prediction("A worker gone", 1).await;
    let e = env.engine.clone();
    e.cancel(video, None).await.unwrap();
    wait_until("the prediction is cancelled", async || calls(&fake.server, "POST", "/predictions/p-1/cancel").await >= 1).await;
    assert_eq!(jobs_left(&env).await, 0, "forgotten before it was cancelled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls(&fake.server, "POST", "/predictions/p-1/cancel").await, 1, "cancelled once");
}

/// A video is deleted while one of its ended runs still has a prediction out (its worker died and
/// the run was failed; or its cancel's own cancelling has not read the jobs yet): the delete
/// cancels what it deletes.
#[tokio::test]
async fn deleting_a_video_cancels_the_predictions_its_runs_left_out() {
    let (fake, env, video) = a_worker_died_mid_prediction("Deleted with a prediction out", 1).await;
    let e = env.engine.clone();
    // The run ends without its worker and without a cancel (what a failure whose last try timed
    // out while the prediction ran on leaves): only the delete can cancel the prediction now.
    sqlx::query("UPDATE runs SET status = 'failed', lease_owner = NULL WHERE status = 'running'")
        .execute(env.engine.store.pool())
        .await
        .unwrap();
    assert_eq!(jobs_left(&env).await, 1);
    e.delete_video(video).await.unwrap();
    wait_until("the prediction is cancelled", async || calls(&fake.server, "POST", "/predictions/p-1/cancel").await >= 1).await;
    assert_eq!(jobs_left(&env).await, 0);
}

/// A prediction whose output cannot be used (expired, not a video, not an MP4) fails the unit at
/// once and is forgotten: the retry makes a new prediction instead of attaching to that one.
#[tokio::test]
async fn an_unusable_output_fails_and_the_retry_creates_anew() {
    for (name, output, content_type) in
        [("not a video", b"<html/>".to_vec(), "text/html"), ("not an mp4", b"garbage".to_vec(), "video/mp4")]
    {
        let fake = FakeReplicate::start(output, content_type).await;
        fake.done.store(true, Ordering::SeqCst);
        let env = clips_env(&fake).await;
        let e = env.engine.clone();
        let video = new_video(&e, "Bad output", 1, true, None).await;
        drain_expect(&e, "SSF").await;
        let failed = state(&env, video).await.runs.into_iter().find(|r| r.status == RunStatus::Failed).unwrap();
        assert!(failed.error.as_deref().is_some_and(|m| m.contains("Replicate")), "{name}: {:?}", failed.error);
        assert_eq!((fake.creates().await, jobs_left(&env).await), (1, 0), "{name}");
        assert_eq!(failed.cost_micros, 3_500, "{name}: the prediction's 2.5 s were billed though its output is unusable");
        let board = state(&env, video).await.branch_named("main").unwrap().head_id;
        e.continue_video(video, board, None, true).await.unwrap();
        drain_expect(&e, "F").await;
        assert_eq!(fake.creates().await, 2, "{name}: the retry made a new prediction");
        let spent: i64 = state(&env, video).await.runs.iter().filter(|r| r.phase == Phase::Clips).map(|r| r.cost_micros).sum();
        assert_eq!(spent, 7_000, "{name}: two predictions, each billed once");
    }
}

/// The seed document's failure for real: beat 0 of 8 gets "502 Bad Gateway" from Replicate on
/// every try of the first run. The retry makes exactly one new create call.
#[tokio::test]
async fn a_retry_after_a_502_on_beat_0_of_8_creates_exactly_once() {
    let server = MockServer::start().await;
    let failing = Arc::new(AtomicBool::new(true));
    let create = BeatZeroFails { failing: failing.clone(), output: format!("{}/files/frame.png", server.uri()) };
    Mock::given(method("POST")).and(path("/v1/models/acme/model/predictions")).respond_with(create).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/files/frame.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png(64, 36), "image/png"))
        .mount(&server)
        .await;
    let env = remote_env(&table("storyboard", "replicate", &server, "price_per_second = 0.002"), Providers::instant()).await;
    let e = env.engine.clone();
    let video = new_video(&e, "A fox learns to sail", 8, false, None).await;
    let script = step_ok(&e).await;
    e.continue_video(video, Some(script), None, false).await.unwrap();
    let outcome = step(&e).await;
    assert!(matches!(&outcome, WorkOutcome::Failed { error } if error.contains("Replicate: HTTP 502")), "{outcome:?}");
    let first_run = fake_creates(&server).await;
    assert_eq!(first_run, 3 + 7, "three tries of beat 0, one create for each other beat");
    failing.store(false, Ordering::SeqCst);
    e.continue_video(video, Some(script), None, true).await.unwrap();
    step_ok(&e).await;
    assert_eq!(fake_creates(&server).await - first_run, 1, "the retry made exactly one new create call");
    let retry = state(&env, video).await.runs.into_iter().rev().find(|r| r.phase == Phase::Storyboard).unwrap();
    assert_eq!(retry.cost_micros, 3_000, "one new prediction of 1.5 s at $0.002 per second; memo hits are free");
}

async fn fake_creates(server: &MockServer) -> usize {
    calls(server, "POST", "/predictions").await
}

struct BeatZeroFails {
    failing: Arc<AtomicBool>,
    output: String,
}

impl Respond for BeatZeroFails {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let prompt = body["input"]["prompt"].as_str().unwrap_or_default();
        if prompt.contains("frame 1 of 8") && self.failing.load(Ordering::SeqCst) {
            return ResponseTemplate::new(502).set_body_string("Bad Gateway");
        }
        let id = format!("p-{}", fastrand::u64(..));
        status(201, json!({"id": id, "status": "succeeded", "output": [self.output], "metrics": {"predict_time": 1.5}}))
    }
}

/// A failed prediction that moderation flagged is made again with a new seed.
#[tokio::test]
async fn a_flagged_prediction_is_rerolled_with_a_new_seed() {
    let server = MockServer::start().await;
    let flagged = status(201, json!({"id": "p-9", "status": "failed", "error": "NSFW content detected. Try running it again."}));
    let ok = status(201, json!({"id": "p-10", "status": "succeeded", "output": format!("{}/files/frame.png", server.uri())}));
    Mock::given(method("POST"))
        .and(path("/v1/models/acme/model/predictions"))
        .respond_with(Replies::new(vec![flagged, ok]))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/frame.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png(64, 36), "image/png"))
        .mount(&server)
        .await;
    let env = remote_env(&table("storyboard", "replicate", &server, ""), Providers::instant()).await;
    let video = new_video(&env.engine, "Flagged once", 1, true, None).await;
    drain_expect(&env.engine, "SSSS").await;
    let requests = server.received_requests().await.unwrap();
    let seeds: Vec<u64> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["input"]["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds.len(), 2);
    assert_ne!(seeds[0], seeds[1], "the second prediction has a new seed");
    let outcomes: Vec<TryOutcome> = tries(&env, video).await.into_iter().map(|t| t.outcome).collect();
    assert!(outcomes.contains(&TryOutcome::Transient));
}

/// Fails the images request for one frame (by its prompt) while `failing` is set.
struct FrameFails {
    marker: &'static str,
    failing: Arc<AtomicBool>,
}

impl Respond for FrameFails {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        if body["prompt"].as_str().unwrap_or_default().contains(self.marker) && self.failing.load(Ordering::SeqCst) {
            return openai_error(502, "Bad Gateway", "server_error");
        }
        image_ok()
    }
}

async fn estimate_now(env: &TestEnv, video: VideoId) -> i64 {
    let state = env.engine.status_page(video, "main", Default::default()).await.unwrap().state;
    state.estimate_of(state.branch_named("main").unwrap().id)
}

/// Before a phase starts its cost is estimated, memoized units at $0; a phase whose estimate
/// would take the video past its budget is refused before it spends anything.
#[tokio::test]
async fn a_phase_estimated_over_budget_is_refused_before_it_spends() {
    use reelsmith::domain::rules::Refusal;
    use reelsmith::pipeline::CoreError;
    let server = MockServer::start().await;
    let failing = Arc::new(AtomicBool::new(true));
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(FrameFails { marker: "frame 2 of 3", failing: failing.clone() })
        .mount(&server)
        .await;
    let env = remote_env(&table("storyboard", "openai", &server, "price_per_image = 0.04"), Providers::instant()).await;
    let e = env.engine.clone();
    let video = new_video(&e, "Three frames on a budget", 3, false, None).await;
    let script = step_ok(&e).await;
    e.set_budget(video, Some(100_000)).await.unwrap();
    assert_eq!(estimate_now(&env, video).await, 120_003, "three images at $0.04 and three instant narrations at 1 micro-dollar");
    let before = snapshot(&e).await;
    let refused = e.continue_video(video, Some(script), None, false).await.unwrap_err();
    assert!(matches!(refused, CoreError::Refused(Refusal::OverBudget { estimate_micros: 120_003, .. })), "{refused:?}");
    assert!(refused.to_string().contains("more than the $0.100 left of the budget"), "{refused}");
    assert_eq!(snapshot(&e).await, before, "a refused phase changes nothing");
    assert_eq!(calls(&server, "POST", "/images/generations").await, 0, "and spends nothing");

    e.set_budget(video, Some(200_000)).await.unwrap();
    e.continue_video(video, Some(script), None, false).await.unwrap();
    assert!(matches!(step(&e).await, WorkOutcome::Failed { .. }), "frame 2 fails on every try");
    assert_eq!(estimate_now(&env, video).await, 40_000, "the retry re-makes one frame; the two made are free");
    e.set_budget(video, Some(100_000)).await.unwrap();
    let refused = e.continue_video(video, Some(script), None, true).await.unwrap_err();
    assert!(matches!(refused, CoreError::Refused(Refusal::OverBudget { estimate_micros: 40_000, .. })), "{refused:?}");
    failing.store(false, Ordering::SeqCst);
    e.set_budget(video, Some(200_000)).await.unwrap();
    e.continue_video(video, Some(script), None, true).await.unwrap();
    step_ok(&e).await;
    let spent: i64 = state(&env, video).await.runs.iter().map(|r| r.cost_micros).sum();
    assert_eq!(spent, 1 + 80_003 + 40_000, "the script, two frames and three narrations, then the one frame retried");
}

/// A picture that does not compress: its PNG stays far above what the database keeps inline, so
/// the blob store's disk must take it.
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_u32;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let [r, g, b, _] = seed.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// What the tries of beat 1's still cost, over every storyboard run of the video.
async fn still_cost(env: &TestEnv, video: VideoId) -> i64 {
    let boards: Vec<_> = state(env, video).await.runs.iter().filter(|r| r.phase == Phase::Storyboard).map(|r| r.id).collect();
    tries(env, video).await.iter().filter(|t| boards.contains(&t.run_id) && t.unit == 0).map(|t| t.cost_micros).sum()
}

/// The blob store's directory made read-only before anything is written to it (a full or
/// failing disk, for the outputs too large for the database).
fn refusing_disk(env: &TestEnv) -> Immutable {
    let blobs = env.dir.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    Immutable::set(&[blobs])
}

/// An output the disk will not take was paid for all the same. An image from an API without jobs
/// is gone with its try, so each try counts its image; a Replicate prediction stays in the job
/// book, so the tries attach to it again and count nothing, and the retry that keeps its output
/// counts it once.
#[tokio::test]
async fn an_output_the_disk_will_not_take_counts_what_it_cost_once() {
    let server = MockServer::start().await;
    let image = status(200, json!({"data": [{"b64_json": b64(&noisy_png(640, 360))}]}));
    Mock::given(method("POST")).and(path("/v1/images/generations")).respond_with(image).mount(&server).await;
    let env = remote_env(&table("storyboard", "openai", &server, "price_per_image = 0.04"), Providers::instant()).await;
    let disk = refusing_disk(&env);
    let video = new_video(&env.engine, "A fox on a full disk", 1, true, None).await;
    drain_expect(&env.engine, "SF").await;
    let board = state(&env, video).await.runs.into_iter().find(|r| r.phase == Phase::Storyboard).unwrap();
    assert!(board.error.as_deref().is_some_and(|e| e.contains("could not store the output")), "{:?}", board.error);
    assert_eq!(calls(&server, "POST", "/images/generations").await, 3, "three tries, an image each");
    assert_eq!(still_cost(&env, video).await, 3 * 40_000, "three images made and billed, none kept");
    drop(disk);

    let fake = FakeReplicate::start(noisy_png(640, 360), "image/png").await;
    fake.done.store(true, Ordering::SeqCst);
    let prices = "price_per_second = 0.0014\npoll_ms = 20";
    let env = remote_env(&table("storyboard", "replicate", &fake.server, prices), Providers::instant()).await;
    let e = env.engine.clone();
    let video = new_video(&e, "A fox on a full disk", 1, false, None).await;
    let script = step_ok(&e).await;
    let disk = refusing_disk(&env);
    e.continue_video(video, Some(script), None, false).await.unwrap();
    let outcome = step(&e).await;
    assert!(matches!(&outcome, WorkOutcome::Failed { error } if error.contains("could not store the output")), "{outcome:?}");
    assert_eq!((fake.creates().await, jobs_left(&env).await), (1, 1), "one prediction, kept in the book for the next try");
    assert_eq!(still_cost(&env, video).await, 0, "each try attached to the same prediction; nothing kept, nothing counted yet");
    disk.release();
    e.continue_video(video, Some(script), None, true).await.unwrap();
    step_ok(&e).await;
    assert_eq!((fake.creates().await, jobs_left(&env).await), (1, 0), "the retry attached to the prediction and kept its output");
    assert_eq!(still_cost(&env, video).await, 3_500, "the prediction's 2.5 s, counted once");
}
