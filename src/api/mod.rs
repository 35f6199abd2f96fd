//! Server functions: the browser's only way in. Each takes the engine from context, parses its
//! input, calls one command, and maps the result to wire types.
use leptos::prelude::*;
#[cfg(feature = "ssr")]
use leptos::server_fn::BoxedStream;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::{BoxedStream as Stream, Websocket};
use serde::{Deserialize, Serialize};

pub mod accounts;
#[cfg(feature = "ssr")]
pub mod convert;
pub mod error;
pub mod types;

pub use accounts::*;
pub use error::AppError;
pub use types::*;

#[cfg(feature = "ssr")]
mod session;
#[cfg(feature = "ssr")]
mod watch;

#[cfg(feature = "ssr")]
use crate::domain::{AccountId, CheckpointId, NewVideo, VideoId};
#[cfg(feature = "ssr")]
use crate::pipeline::Engine;
#[cfg(feature = "ssr")]
use session::{caller, viewer};

#[cfg(feature = "ssr")]
fn engine() -> Result<Engine, AppError> {
    use_context::<Engine>().ok_or(AppError::Internal)
}

#[cfg(feature = "ssr")]
fn video_id(raw: &str) -> Result<VideoId, AppError> {
    Ok(VideoId::parse("video_id", raw)?)
}

/// The video named by `raw`, if the signed-in account owns it; another account's video is
/// "Video not found", like an unknown id.
#[cfg(feature = "ssr")]
async fn my_video(engine: &Engine, raw: &str) -> Result<VideoId, AppError> {
    let id = video_id(raw)?;
    Ok(engine.owned(viewer()?, id).await?)
}

/// A status page's form posted without JavaScript, done: answered with that branch's page (not
/// with its `Referer`, which a browser may leave out; the page's code reloads it itself).
#[cfg(feature = "ssr")]
fn back_to_status_page(video: VideoId, branch: Option<&str>) {
    if error::posted_without_javascript() {
        let branch = branch.and_then(|b| crate::domain::BranchName::parse(b.trim()).ok());
        let query = branch.map(|b| format!("?branch={}", b.as_str())).unwrap_or_default();
        leptos_axum::redirect(&format!("/videos/{video}{query}"));
    }
}

#[cfg(feature = "ssr")]
fn checkpoint_id(raw: &str) -> Result<CheckpointId, AppError> {
    Ok(CheckpointId::parse("checkpoint_id", raw)?)
}

#[server(endpoint = "server_info")]
pub async fn server_info() -> Result<ServerSettings, AppError> {
    let engine = engine()?;
    Ok(ServerSettings {
        fault_injection: engine.config.fault_injection,
        retry_limit: engine.config.retry_limit,
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Per phase, the provider and model in use, whether its key is set, and its prices; for
/// signed-in people only (401 otherwise).
#[server(endpoint = "provider_settings")]
pub async fn provider_settings() -> Result<Vec<ProviderSetting>, AppError> {
    let engine = engine()?;
    viewer()?;
    Ok(engine.providers.settings.to_vec())
}

/// One page of the signed-in account's videos (0 = the newest).
#[server(endpoint = "list_videos")]
pub async fn list_videos(page: Option<u32>) -> Result<VideoList, AppError> {
    let engine = engine()?;
    let page = engine.video_page(viewer()?, page.unwrap_or(0)).await?;
    Ok(VideoList { videos: page.videos.iter().map(convert::summary).collect(), total: page.total, page: page.page })
}

#[server(endpoint = "create_video")]
pub async fn create_video(
    prompt: String,
    beats: u32,
    auto_continue: Option<String>,
    fault_plan: Option<String>,
    seed: Option<String>,
) -> Result<String, AppError> {
    let made = make_video(&prompt, beats, auto_continue.as_deref(), fault_plan.as_deref(), seed).await;
    if error::posted_without_javascript() {
        match &made {
            // Answered with the new video's page (the page's code goes there itself, with the id).
            Ok(id) => leptos_axum::redirect(&format!("/videos/{id}")),
            // Back to the form with what was typed (Leptos's own answer carries only the refusal),
            // but the auto-continue box (`ui::pages::videos::Draft` says why).
            Err(e) => {
                let (beats, page) = (beats.to_string(), error::list_page_posted_from().map(|p| p.to_string()).unwrap_or_default());
                let typed = [
                    ("page", page.as_str()),
                    ("prompt", prompt.as_str()),
                    ("beats", beats.as_str()),
                    ("fault_plan", fault_plan.as_deref().unwrap_or_default()),
                ];
                leptos_axum::redirect(&error::refused_form_url("/", <CreateVideo as leptos::server_fn::ServerFn>::PATH, e, &typed));
            }
        }
    }
    made
}

#[cfg(feature = "ssr")]
async fn make_video(
    prompt: &str,
    beats: u32,
    auto_continue: Option<&str>,
    fault_plan: Option<&str>,
    seed: Option<String>,
) -> Result<String, AppError> {
    let engine = engine()?;
    let owner: AccountId = viewer()?;
    let on = auto_continue.is_some_and(|v| !v.is_empty() && v != "false" && v != "off");
    let new = NewVideo::parse(prompt, beats, on, fault_plan, engine.config.fault_injection)?;
    // A fixed seed lets tests compare two videos byte for byte; like fault plans, only on a
    // server started for testing.
    let seed = match seed.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(_) if !engine.config.fault_injection => {
            return Err(AppError::InvalidInput {
                field: "seed".into(),
                message: "a fixed seed is accepted only when the server runs with --fault-injection".into(),
            });
        }
        Some(raw) => Some(raw.parse::<u64>().ok().filter(|s| *s <= i64::MAX as u64).ok_or_else(|| AppError::InvalidInput {
            field: "seed".into(),
            message: format!("\"{raw}\" is not a seed (a whole number from 0 to {})", i64::MAX),
        })?),
    };
    Ok(engine.create_video(owner, new, seed).await?.to_string())
}

/// The status page of one branch (`main` when none is named), at a page of the tree and of
/// the Attempts table (0 = the newest).
#[server(endpoint = "get_status")]
pub async fn get_status(
    video_id: String,
    branch: Option<String>,
    tree_page: Option<u32>,
    attempts_page: Option<u32>,
) -> Result<VideoStatusWire, AppError> {
    let engine = engine()?;
    let id = my_video(&engine, &video_id).await?;
    let pages = crate::domain::video::Pages { tree: tree_page.unwrap_or(0), attempts: attempts_page.unwrap_or(0) };
    let slice = engine.status_page(id, branch.as_deref().unwrap_or_default(), pages).await?;
    convert::status(&slice, &engine.config)
}

#[server(endpoint = "continue_video")]
pub async fn continue_video(
    video_id: String,
    checkpoint_id: Option<String>,
    branch: Option<String>,
    force_retry: bool,
) -> Result<ContinueResult, AppError> {
    let engine = engine()?;
    let checkpoint = checkpoint_id.as_deref().filter(|s| !s.is_empty()).map(self::checkpoint_id).transpose()?;
    let video = my_video(&engine, &video_id).await?;
    let outcome = engine.continue_video(video, checkpoint, branch.as_deref(), force_retry).await?;
    back_to_status_page(video, branch.as_deref());
    Ok(convert::continue_result(outcome))
}

#[server(endpoint = "edit_script")]
pub async fn edit_script(video_id: String, branch: Option<String>, checkpoint_id: String, script_json: String) -> Result<String, AppError> {
    let engine = engine()?;
    let id = engine
        .edit_script(my_video(&engine, &video_id).await?, branch.as_deref(), self::checkpoint_id(&checkpoint_id)?, &script_json)
        .await?;
    Ok(id.to_string())
}

#[server(endpoint = "create_branch")]
pub async fn create_branch(video_id: String, checkpoint_id: String, name: String) -> Result<String, AppError> {
    let engine = engine()?;
    engine.create_branch(my_video(&engine, &video_id).await?, self::checkpoint_id(&checkpoint_id)?, name.trim()).await?;
    Ok(name.trim().to_string())
}

#[server(endpoint = "cancel_run")]
pub async fn cancel_run(video_id: String, branch: Option<String>) -> Result<String, AppError> {
    let engine = engine()?;
    let video = my_video(&engine, &video_id).await?;
    let run = engine.cancel(video, branch.as_deref()).await?;
    back_to_status_page(video, branch.as_deref());
    Ok(run.to_string())
}

#[server(endpoint = "set_auto_continue")]
pub async fn set_auto_continue(video_id: String, on: bool) -> Result<(), AppError> {
    let engine = engine()?;
    Ok(engine.set_auto_continue(my_video(&engine, &video_id).await?, on).await?)
}

#[server(endpoint = "set_budget")]
pub async fn set_budget(video_id: String, dollars: Option<String>) -> Result<(), AppError> {
    let engine = engine()?;
    let budget = match dollars.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let value: f64 = raw.trim_start_matches('$').parse().map_err(|_| AppError::InvalidInput {
                field: "budget".into(),
                message: format!("\"{raw}\" is not an amount of dollars"),
            })?;
            if !value.is_finite() {
                return Err(AppError::InvalidInput { field: "budget".into(), message: "the budget must be a number".into() });
            }
            Some((value * 1e6).round() as i64)
        }
    };
    let video = my_video(&engine, &video_id).await?;
    engine.set_budget(video, budget).await?;
    back_to_status_page(video, None);
    Ok(())
}

#[server(endpoint = "regenerate_beat")]
pub async fn regenerate_beat(video_id: String, branch: Option<String>, checkpoint_id: String, beat: u32) -> Result<String, AppError> {
    let engine = engine()?;
    let video = my_video(&engine, &video_id).await?;
    let run = engine.regenerate_beat(video, branch.as_deref(), self::checkpoint_id(&checkpoint_id)?, beat).await?;
    back_to_status_page(video, branch.as_deref());
    Ok(run.to_string())
}

#[server(endpoint = "delete_video")]
pub async fn delete_video(video_id: String) -> Result<(), AppError> {
    let engine = engine()?;
    Ok(engine.delete_video(my_video(&engine, &video_id).await?).await?)
}

/// The browser's first message on the live channel: which video to watch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchRequest {
    pub video_id: String,
}

/// The video's change counter: sent when the channel opens (read after subscribing, so no change
/// can fall between) and after every change. The page fetches itself again whenever this is
/// higher than the `changes` of the page on screen, so a change made between the snapshot and the
/// channel opening is never missed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub changes: i64,
}

#[server(endpoint = "watch_video", protocol = Websocket<JsonEncoding, JsonEncoding>)]
pub async fn watch_video(input: Stream<WatchRequest, ServerFnError>) -> Result<Stream<WatchEvent, ServerFnError>, ServerFnError> {
    let engine = use_context::<Engine>().ok_or_else(|| ServerFnError::new("no engine"))?;
    let viewer = viewer().map_err(|e| ServerFnError::new(e.sentence()))?;
    let caller = caller().map_err(|e| ServerFnError::new(e.sentence()))?;
    let accounts = caller.mode == crate::server::options::AuthMode::Accounts;
    let session = caller.session.filter(|_| accounts);
    let slot = crate::pipeline::accounts::SocketCap::acquire(&engine.sockets, viewer)
        .ok_or_else(|| ServerFnError::new("Too many live pages are open for this account; close some tabs."))?;
    let (tx, rx) = futures::channel::mpsc::channel::<Result<WatchEvent, ServerFnError>>(16);
    tokio::spawn(watch::serve(engine, viewer, session, input, tx, slot));
    Ok(BoxedStream::from(rx))
}
