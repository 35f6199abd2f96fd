//! Rendering at scale: the status page of a video with 2,000 checkpoints, and the list page of
//! an account with 1,000 videos (server render, through the whole router).
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use std::time::Instant;
use tower::ServiceExt;
use uuid::Uuid;

use super::{BenchResult, Scratch, drain, engine, fail, line, micros, new_video, us};
use crate::domain::video::Checkpoint;
use crate::domain::{CheckpointId, CheckpointStatus, Origin, Phase, VideoId};
use crate::pipeline::Engine;
use crate::pipeline::providers::Providers;
use crate::server::options::{AuthMode, Options};
use crate::storage;

/// The app as `reelsmith serve --auth none` serves it.
pub(super) fn app(engine: &Engine) -> Router {
    let guard =
        crate::server::guard::Guard { engine: engine.clone(), mode: AuthMode::None, scheme: "http".into(), host: "localhost".into() };
    let options = leptos::prelude::LeptosOptions::builder().output_name("reelsmith").build();
    crate::server::router(guard, options, "bench")
}

/// Renders `uri` `renders` times: (p50 µs, p99 µs, bytes of the last page).
pub(super) async fn time_get(app: &Router, uri: &str, renders: usize) -> BenchResult<(f64, f64, usize)> {
    let mut samples = Vec::with_capacity(renders);
    let mut bytes = 0;
    for _ in 0..renders {
        let t = Instant::now();
        let request = Request::get(uri).header("host", "localhost").body(Body::empty()).map_err(fail)?;
        let response = app.clone().oneshot(request).await.map_err(fail)?;
        if !response.status().is_success() {
            return Err(fail(format!("{uri} answered {}", response.status())));
        }
        let body = axum::body::to_bytes(response.into_body(), 256 * 1024 * 1024).await.map_err(fail)?;
        samples.push(us(t.elapsed()));
        bytes = body.len();
    }
    let (p50, p99) = micros(&mut samples);
    Ok((p50, p99, bytes))
}

/// Prints `<name>_<count unit>`, `<name>_us_p50`, `<name>_us_p99` and `<name>_bytes`.
pub(super) fn report(name: &str, (count, unit): (usize, &str), (p50, p99, bytes): (f64, f64, usize)) {
    line(&format!("{name}_{unit}"), count, unit);
    line(&format!("{name}_us_p50"), format!("{p50:.0}"), "us");
    line(&format!("{name}_us_p99"), format!("{p99:.0}"), "us");
    line(&format!("{name}_bytes"), bytes, "bytes");
}

/// Adds script versions under the video's first script until it has `total` checkpoints, in one
/// transaction (what that many edits make, without timing the edits).
async fn grow(engine: &Engine, video: VideoId, total: usize) -> BenchResult<usize> {
    let state = engine.video_state(video).await.map_err(fail)?;
    let script = state.checkpoints.iter().find(|c| c.phase == Phase::Script).cloned().ok_or_else(|| fail("no script"))?;
    let versions: Vec<Checkpoint> = (state.checkpoints.len()..total)
        .enumerate()
        .map(|(i, _)| Checkpoint {
            id: CheckpointId(Uuid::new_v4()),
            version: script.version + 1 + i as u32,
            status: CheckpointStatus::Pending,
            origin: Origin::Edited,
            run_id: None,
            created_at: script.created_at + 1 + i as i64,
            approved_at: None,
            ..script.clone()
        })
        .collect();
    let mut tx = engine.store.write().await.map_err(fail)?;
    for c in &versions {
        storage::insert_checkpoint(&mut tx, c).await.map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(engine.video_state(video).await.map_err(fail)?.checkpoints.len())
}

async fn status_at_scale(options: &Options, renders: usize) -> BenchResult<()> {
    let scratch = Scratch::new("render-2000");
    let engine = engine(options, &scratch, Providers::instant(), false).await?;
    let video = new_video(&engine, 8, true, None).await?;
    drain(&engine).await?;
    let n = grow(&engine, video, 2_000).await?;
    report("status_render", (n, "checkpoints"), time_get(&app(&engine), &format!("/videos/{video}"), renders).await?);
    Ok(())
}

async fn list_at_scale(options: &Options, renders: usize) -> BenchResult<()> {
    let scratch = Scratch::new("list-1000");
    let engine = engine(options, &scratch, Providers::instant(), false).await?;
    for _ in 0..1_000 {
        new_video(&engine, 2, false, None).await?;
    }
    drain(&engine).await?;
    report("list_render", (1_000, "videos"), time_get(&app(&engine), "/", renders).await?);
    Ok(())
}

pub(super) async fn run(options: &Options, quick: bool) -> BenchResult<()> {
    let renders = if quick { 10 } else { 50 };
    status_at_scale(options, renders).await?;
    list_at_scale(options, renders).await
}
