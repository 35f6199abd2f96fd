//! Remote outputs checked and brought to the video's format, on the blocking pool: an output
//! that does not decode as what it should be is a permanent failure of the unit, said plainly.
use crate::media;
use crate::pipeline::providers::{ClipBytes, ClipRequest, ProviderError};

fn unusable(provider: &str, what: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Permanent(format!("{provider}: the {what} cannot be used: {e}"))
}

/// An image answer as a PNG of the video's frame size.
pub async fn image(provider: &'static str, bytes: Vec<u8>, width: u32, height: u32) -> Result<Vec<u8>, ProviderError> {
    tokio::task::spawn_blocking(move || media::normalize_image(&bytes, width, height))
        .await
        .map_err(|e| ProviderError::Transient(format!("the image task stopped: {e}")))?
        .map_err(|e| unusable(provider, "image", e))
}

/// A video answer as a clip of the still's size, the video's frame rate and the beat's length.
pub async fn clip(provider: &'static str, mp4: Vec<u8>, clip: ClipRequest) -> Result<ClipBytes, ProviderError> {
    let size = media::image_size(&clip.still_png).map_err(|e| unusable(provider, "storyboard still", e))?;
    let ClipRequest { caption, duration_ms, fps, .. } = clip;
    tokio::task::spawn_blocking(move || media::normalize_clip(&mp4, size, fps, duration_ms, &caption, &media::Stop::default()))
        .await
        .map_err(|e| ProviderError::Transient(format!("the video task stopped: {e}")))?
        .map(|c| ClipBytes { stream: c.stream, preview_mp4: c.preview_mp4, frames: c.frames })
        .map_err(|e| unusable(provider, "video", e))
}
