//! Serves artifact blobs at `/artifacts/videos/<video>/ab/<sha256>.<ext>` with HTTP Range (video
//! seeking) and the right content type, to the video's owner only, and only blobs that video's
//! checkpoints hold. Anything else (another account's video, an unknown id, a blob of another
//! video) is the same 404; nothing else under the data directory is reachable.
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use std::convert::Infallible;
use std::ops::Range;
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
    let inline = match engine.inline_blob(&sha).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot read an artifact's row");
            return Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body(Body::empty()).expect("static response");
        }
    };
    let range = req.headers().get(header::RANGE);
    let mut response = match (inline, engine.blobs.local_path(&sha)) {
        (Some(bytes), _) => serve_bytes(axum::body::Bytes::from(bytes), range),
        (None, Some(path)) => match ServeFile::new(path).oneshot(req).await {
            Ok(r) => r.map(Body::new),
            Err(_) => return not_found(),
        },
        (None, None) => serve_stored(&engine, &sha, range).await,
    };
    if response.status().is_success() {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        // Content-addressed, so the bytes never change; private: only its owner may see it.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    }
    response
}

/// A single `bytes=` range of a `size`-byte body: `None` for no usable Range header (the whole
/// body is sent, as RFC 9110 allows for ranges it does not support), `Some(Err(()))` when the
/// range lies outside the body.
fn byte_range(header: Option<&HeaderValue>, size: u64) -> Option<Result<Range<u64>, ()>> {
    let spec = header?.to_str().ok()?.strip_prefix("bytes=")?;
    let (first, last) = spec.trim().split_once('-')?;
    if spec.contains(',') {
        return None;
    }
    let span = match (first.parse::<u64>().ok(), last.parse::<u64>().ok()) {
        (Some(a), Some(b)) if a <= b => a..b.saturating_add(1).min(size),
        (Some(a), None) if last.is_empty() => a..size,
        (None, Some(n)) if first.is_empty() && n > 0 => size.saturating_sub(n)..size,
        _ => return None,
    };
    Some(if span.start < size { Ok(span) } else { Err(()) })
}

/// The status and span a Range header asks of a `size`-byte body; `None`: it lies outside (416).
fn ranged(range: Option<&HeaderValue>, size: u64) -> Option<(StatusCode, Range<u64>)> {
    match byte_range(range, size) {
        None => Some((StatusCode::OK, 0..size)),
        Some(Ok(span)) => Some((StatusCode::PARTIAL_CONTENT, span)),
        Some(Err(())) => None,
    }
}

fn unsatisfiable(size: u64) -> Response<Body> {
    let response = Response::builder().status(StatusCode::RANGE_NOT_SATISFIABLE);
    response.header(header::CONTENT_RANGE, format!("bytes */{size}")).body(Body::empty()).expect("valid response")
}

/// The headers of a (possibly partial) answer of `span` out of `size` bytes.
fn ranged_response(status: StatusCode, span: &Range<u64>, size: u64) -> axum::http::response::Builder {
    let mut response =
        Response::builder().status(status).header(header::ACCEPT_RANGES, "bytes").header(header::CONTENT_LENGTH, span.end - span.start);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", span.start, span.end - 1));
    }
    response
}

/// A small blob kept in its database row, with Range.
fn serve_bytes(bytes: axum::body::Bytes, range: Option<&HeaderValue>) -> Response<Body> {
    let size = bytes.len() as u64;
    let Some((status, span)) = ranged(range, size) else { return unsatisfiable(size) };
    let part = bytes.slice(span.start as usize..span.end as usize);
    ranged_response(status, &span, size).body(Body::from(part)).expect("valid response")
}

/// A blob from object storage, through the app (so the owner check above holds), with Range.
async fn serve_stored(engine: &Engine, sha: &str, range: Option<&HeaderValue>) -> Response<Body> {
    let Ok(size) = engine.blobs.size(sha).await else { return not_found() };
    let Some((status, span)) = ranged(range, size) else { return unsatisfiable(size) };
    let stream = match engine.blobs.stream(sha, span.clone()).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(error = %e, "cannot read an artifact from the blob store");
            return Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::empty()).expect("static response");
        }
    };
    ranged_response(status, &span, size).body(Body::from_stream(stream)).expect("valid response")
}

pub fn service(engine: Engine) -> BoxCloneSyncService<Request<Body>, Response<Body>, Infallible> {
    BoxCloneSyncService::new(service_fn(move |req: Request<Body>| {
        let engine = engine.clone();
        async move { Ok(serve(engine, req).await) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(byte_range(None, 100), None);
        assert_eq!(byte_range(Some(&h("bytes=0-99")), 1000), Some(Ok(0..100)));
        assert_eq!(byte_range(Some(&h("bytes=900-")), 1000), Some(Ok(900..1000)));
        assert_eq!(byte_range(Some(&h("bytes=-10")), 1000), Some(Ok(990..1000)));
        assert_eq!(byte_range(Some(&h("bytes=990-5000")), 1000), Some(Ok(990..1000)));
        assert_eq!(byte_range(Some(&h("bytes=1000-")), 1000), Some(Err(())));
        assert_eq!(byte_range(Some(&h("bytes=5-2")), 1000), None);
        assert_eq!(byte_range(Some(&h("bytes=0-1,5-6")), 1000), None);
        assert_eq!(byte_range(Some(&h("items=0-1")), 1000), None);
    }
}
