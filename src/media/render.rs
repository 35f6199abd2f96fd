//! Phase 4: joins clip streams into one fast-start MP4 (no re-encoding) and makes its poster.

use muxide::api::{Metadata, MuxerBuilder, VideoCodec};

use crate::media::MediaError;
use crate::media::clip::{ClipStream, MAX_FPS, is_idr, parameter_sets, parse_stream};
use crate::media::picture::{Motion, decode_png, encode_png, read_art_rows};
use crate::media::text::title_overlay;

/// The finished video and its poster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub mp4: Vec<u8>,
    pub poster_png: Vec<u8>,
    pub duration_ms: u32,
    pub frames: u32,
}

/// Concatenates the `stream`s of clips made by `make_clip` into one H.264 MP4 with `moov`
/// first, and draws `title` onto `poster_still_png` for the poster.
///
/// All clips must share size, frame rate (= `fps`) and encoder parameters.
pub fn render_video(clips: &[&[u8]], fps: u32, poster_still_png: &[u8], title: &str) -> Result<Rendered, MediaError> {
    if clips.is_empty() {
        return Err(MediaError::NoClips);
    }
    if !(1..=MAX_FPS).contains(&fps) {
        return Err(MediaError::InvalidInput(format!("frame rate {fps} is out of range; use 1..={MAX_FPS} fps")));
    }
    let streams = clips
        .iter()
        .enumerate()
        .map(|(index, bytes)| parse_stream(bytes).map_err(|reason| MediaError::InvalidClip { index, reason }))
        .collect::<Result<Vec<_>, _>>()?;
    check_compatible(&streams, fps)?;

    let frames: u32 = streams.iter().map(|s| s.frames.len() as u32).sum();
    let title = title.trim();
    let mp4 = mux_h264(&streams, fps, (!title.is_empty()).then_some(title))?;
    let duration_ms = ((u64::from(frames) * 1000 + u64::from(fps) / 2) / u64::from(fps)) as u32;
    let poster_png = poster(poster_still_png, title)?;
    Ok(Rendered { mp4, poster_png, duration_ms, frames })
}

fn check_compatible(streams: &[ClipStream<'_>], fps: u32) -> Result<(), MediaError> {
    let first = &streams[0];
    let first_params = parameter_sets(first.frames[0]);
    for (index, s) in streams.iter().enumerate() {
        if s.fps != fps {
            return Err(MediaError::ClipMismatch {
                index,
                reason: format!("it was made at {} fps but the video is rendered at {fps} fps", s.fps),
            });
        }
        if (s.width, s.height) != (first.width, first.height) {
            return Err(MediaError::ClipMismatch {
                index,
                reason: format!("it is {}x{} but clip 0 is {}x{}", s.width, s.height, first.width, first.height),
            });
        }
        // The MP4 carries one SPS/PPS for the whole track; a clip with other parameters
        // would decode as garbage after the cut.
        if parameter_sets(s.frames[0]) != first_params {
            return Err(MediaError::ClipMismatch { index, reason: "it was encoded with different settings (its SPS/PPS differ)".into() });
        }
    }
    Ok(())
}

/// Muxes the clips back to back; frame `n` of the whole video is shown at `n / fps` seconds.
pub(crate) fn mux_h264(streams: &[ClipStream<'_>], fps: u32, title: Option<&str>) -> Result<Vec<u8>, MediaError> {
    let first = streams.first().ok_or(MediaError::NoClips)?;
    let total: usize = streams.iter().map(|s| s.frames.iter().map(|f| f.len()).sum::<usize>()).sum();
    let mut out = Vec::with_capacity(total + 64 * 1024);
    let mut builder = MuxerBuilder::new(&mut out).video(VideoCodec::H264, first.width, first.height, f64::from(fps)).with_fast_start(true);
    if let Some(t) = title {
        builder = builder.with_metadata(Metadata::new().with_title(t));
    }
    let mut muxer = builder.build().map_err(|e| MediaError::Muxer(e.to_string()))?;
    let mut n: u64 = 0;
    for s in streams {
        for frame in &s.frames {
            let pts = n as f64 / f64::from(fps);
            muxer.write_video(pts, frame, is_idr(frame)).map_err(|e| MediaError::Muxer(format!("frame {n}: {e}")))?;
            n += 1;
        }
    }
    muxer.finish().map_err(|e| MediaError::Muxer(e.to_string()))?;
    Ok(out)
}

/// The poster is the still's art (its caption band framed out, as in the clips) with the
/// title across the top.
fn poster(still_png: &[u8], title: &str) -> Result<Vec<u8>, MediaError> {
    let still = decode_png(still_png)?;
    let (w, h) = still.dimensions();
    let mut img = match read_art_rows(still_png) {
        Some(rows) if rows < h => {
            let view = Motion::rest_view(w, h, rows);
            image::imageops::resize(
                &image::imageops::crop_imm(
                    &still,
                    view.x0.round() as u32,
                    0,
                    (w as f32 * view.step).round() as u32,
                    (h as f32 * view.step).round() as u32,
                )
                .to_image(),
                w,
                h,
                image::imageops::FilterType::CatmullRom,
            )
        }
        _ => still,
    };
    if !title.is_empty() {
        title_overlay(w, h, title).apply_rgb(&mut img, w);
    }
    encode_png(&img, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clip::tests::{still, top_level_boxes};
    use crate::media::make_clip;

    #[test]
    fn three_clips_make_one_video() {
        let png = still(320, 180, 4);
        let clips: Vec<_> = [(2000, 1), (2250, 2), (3500, 3)]
            .iter()
            .map(|&(ms, seed)| make_clip(&png, "A line of caption text", ms, 24, seed).unwrap())
            .collect();
        let streams: Vec<&[u8]> = clips.iter().map(|c| c.stream.as_slice()).collect();
        let r = render_video(&streams, 24, &png, "Paper Boats").unwrap();
        assert_eq!(r.frames, clips.iter().map(|c| c.frames).sum::<u32>());
        assert_eq!(r.frames, 48 + 54 + 84);
        assert_eq!(r.duration_ms, 7750);
        let boxes = top_level_boxes(&r.mp4);
        assert_eq!(boxes[0], "ftyp");
        assert!(boxes.iter().position(|b| b == "moov") < boxes.iter().position(|b| b == "mdat"));
        let poster = decode_png(&r.poster_png).unwrap();
        assert_eq!(poster.dimensions(), (320, 180));

        let again = render_video(&streams, 24, &png, "Paper Boats").unwrap();
        assert_eq!(r, again, "rendering must be deterministic");
    }

    #[test]
    fn mismatches_and_empty_input_are_errors() {
        let small = make_clip(&still(320, 180, 5), "a", 1000, 24, 1).unwrap();
        let big = make_clip(&still(640, 360, 5), "a", 1000, 24, 1).unwrap();
        let png = still(320, 180, 5);
        let e = render_video(&[&small.stream, &big.stream], 24, &png, "t").unwrap_err();
        assert!(matches!(e, MediaError::ClipMismatch { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("640x360"), "{e}");

        assert!(matches!(render_video(&[], 24, &png, "t"), Err(MediaError::NoClips)));
        let e = render_video(&[&small.stream], 30, &png, "t").unwrap_err();
        assert!(matches!(e, MediaError::ClipMismatch { index: 0, .. }), "{e}");
        let e = render_video(&[&small.stream, b"garbage"], 24, &png, "t").unwrap_err();
        assert!(matches!(e, MediaError::InvalidClip { index: 1, .. }), "{e}");
        let e = render_video(&[&small.stream], 24, b"nope", "t").unwrap_err();
        assert!(matches!(e, MediaError::InvalidPng(_)), "{e}");
    }
}
