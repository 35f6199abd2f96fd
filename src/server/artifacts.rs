//! Serves artifact blobs at `/artifacts/videos/<video>/ab/<sha256>.<ext>` with HTTP Range (video
//! seeking) and the right content type, to the video's owner only, and only blobs that video's
//! checkpoints hold. Anything else (another account's video, an unknown id, a blob of another
//! video) is the same 404; nothing else under the data directory is reachable.
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use std::convert::Infallible;
use tower::ServiceExt;
use tower::service_fn;
use tower::util::BoxCloneSyncService;
use tower_http::services::ServeFile;

use super::guard::Caller;
use crate::domain::VideoId;
use crate::pipeline::Engine;

fn content_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "png" => "image/png",
        "mp4" => "video/mp4",
        "wav" => "audio/wav",
        "vtt" => "text/vtt; charset=utf-8",
        "bin" => "application/octet-stream",
        _ => return None,
    })
}

fn not_found() -> Response<Body> {
    Response::builder().status(StatusCode::NOT_FOUND).body(Body::from("not found")).expect("static response")
}

/// `<video>/<ab>/<sha256>.<ext>` → the video, the hash and its content type.
fn parse(path: &str) -> Option<(VideoId, String, &'static str)> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (video, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    let video = VideoId::parse("video", video).ok()?;
    let (sha, ext) = name.split_once('.')?;
    let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) && prefix == &sha[..2];
    valid.then_some(())?;
    Some((video, sha.to_string(), content_type(ext)?))
}

async fn serve(engine: Engine, req: Request<Body>) -> Response<Body> {
    let Some((video, sha, mime)) = parse(req.uri().path()) else { return not_found() };
    let Some(viewer) = req.extensions().get::<Caller>().and_then(|c| c.account) else { return not_found() };
    match engine.may_see_blob(viewer, video, &sha).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cannot check an artifact's owner");
            return Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body(Body::empty()).expect("static response");
        }
    }
    let mut response = match ServeFile::new(engine.blobs.path_of(&sha)).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(_) => return not_found(),
    };
    if response.status().is_success() {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        // Content-addressed, so the bytes never change; private: only its owner may see it.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    }
    response
}

pub fn service(engine: Engine) -> BoxCloneSyncService<Request<Body>, Response<Body>, Infallible> {
    BoxCloneSyncService::new(service_fn(move |req: Request<Body>| {
        let engine = engine.clone();
        async move { Ok(serve(engine, req).await) }
    }))
}
