//! Serves artifact blobs at `/artifacts/blobs/ab/<sha256>.<ext>` with HTTP Range (video seeking)
//! and the right content type; nothing else under the data directory is reachable.
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use std::convert::Infallible;
use tower::ServiceExt;
use tower::service_fn;
use tower::util::BoxCloneSyncService;
use tower_http::services::ServeFile;

use crate::pipeline::blobs::BlobStore;

fn content_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "png" => "image/png",
        "mp4" => "video/mp4",
        "bin" => "application/octet-stream",
        _ => return None,
    })
}

pub fn service(blobs: BlobStore) -> BoxCloneSyncService<Request<Body>, Response<Body>, Infallible> {
    BoxCloneSyncService::new(service_fn(move |req: Request<Body>| {
        let blobs = blobs.clone();
        async move {
            let path = req.uri().path().trim_start_matches('/').to_string();
            let not_found = || Response::builder().status(StatusCode::NOT_FOUND).body(Body::from("not found")).expect("static response");
            let Some((prefix, name)) = path.split_once('/') else { return Ok(not_found()) };
            let Some((sha, ext)) = name.split_once('.') else { return Ok(not_found()) };
            let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) && prefix == &sha[..2];
            let (true, Some(mime)) = (valid, content_type(ext)) else { return Ok(not_found()) };
            let file = blobs.path_of(sha);
            let mut response = match ServeFile::new(file).oneshot(req).await {
                Ok(r) => r.map(Body::new),
                Err(_) => return Ok(not_found()),
            };
            if response.status().is_success() {
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
                // Content-addressed: the bytes behind a URL never change.
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
            }
            Ok(response)
        }
    }))
}
