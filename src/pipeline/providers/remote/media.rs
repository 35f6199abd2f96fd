//! Remote outputs checked and brought to the video's format, on the blocking pool: an output
//! that does not decode as what it should be is a permanent failure of the unit, said plainly.
use std::sync::Arc;

use crate::media;
use crate::pipeline::providers::StopOnDrop;
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
/// Dropping the answer (the run was cancelled) stops the conversion at its next frame.
pub async fn clip(provider: &'static str, mp4: Vec<u8>, clip: ClipRequest) -> Result<ClipBytes, ProviderError> {
    clip_until(provider, mp4, clip, Arc::new(media::Stop::default())).await
}

async fn clip_until(provider: &'static str, mp4: Vec<u8>, clip: ClipRequest, stop: Arc<media::Stop>) -> Result<ClipBytes, ProviderError> {
    let size = media::image_size(&clip.still_png).map_err(|e| unusable(provider, "storyboard still", e))?;
    let ClipRequest { caption, duration_ms, fps, .. } = clip;
    let _stop_on_drop = StopOnDrop(stop.clone());
    match tokio::task::spawn_blocking(move || media::normalize_clip(&mp4, size, fps, duration_ms, &caption, &stop)).await {
        Ok(Ok(c)) => Ok(ClipBytes { stream: c.stream, preview_mp4: c.preview_mp4, frames: c.frames }),
        Ok(Err(media::MediaError::Stopped)) => Err(ProviderError::Transient("stopped".into())),
        Ok(Err(e)) => Err(unusable(provider, "video", e)),
        Err(e) => Err(ProviderError::Transient(format!("the video task stopped: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cancelled run drops its unit's answer: converting a long remote video stops with it,
    /// instead of keeping a core busy for a clip nobody will use.
    #[tokio::test]
    async fn dropping_the_answer_stops_converting_a_remote_video() {
        let mut still = Vec::new();
        image::RgbImage::from_pixel(160, 96, image::Rgb([90, 120, 200]))
            .write_to(&mut std::io::Cursor::new(&mut still), image::ImageFormat::Png)
            .unwrap();
        let remote = media::make_clip(&still, "", 2000, 12, 5).unwrap().preview_mp4;
        // Two minutes at 24 fps from a source of two seconds: 2,880 frames to encode.
        let request =
            ClipRequest { still_png: still, prompt: "p".into(), caption: "A caption".into(), duration_ms: 120_000, fps: 24, seed: 1 };
        let stop = Arc::new(media::Stop::default());
        let converting = tokio::spawn(clip_until("Remote", remote, request, stop.clone()));
        while stop.frames_encoded() < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        converting.abort();
        assert!(converting.await.unwrap_err().is_cancelled());
        assert!(stop.is_stopped(), "dropping the answer told the conversion to stop");
        // The conversion ends at its next frame: wait until no frame is added for a while.
        let mut seen = stop.frames_encoded();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let now = stop.frames_encoded();
            if now == seen {
                break;
            }
            seen = now;
        }
        assert!(seen < 2880, "the conversion did not run to its end ({seen} frames)");
    }
}
