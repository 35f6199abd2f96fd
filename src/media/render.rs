//! Phase 4: joins clip streams into one fast-start MP4 (no re-encoding) and makes its poster.

use muxide::api::{AudioCodec, Metadata, MuxerBuilder, VideoCodec};

use crate::media::MediaError;
use crate::media::audio::{BeatAudio, OPUS_FRAME, beat_spans, encode_opus, lay_track, webvtt};
use crate::media::clip::{ClipStream, MAX_FPS, is_idr, parameter_sets, parse_stream};
use crate::media::picture::{Motion, decode_png, encode_png, read_art_rows};
use crate::media::speech::SAMPLE_RATE;
use crate::media::text::title_overlay;

/// The finished video and its poster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub mp4: Vec<u8>,
    pub poster_png: Vec<u8>,
    pub duration_ms: u32,
    pub frames: u32,
    /// One cue per beat, when the render was given the beats' narration.
    pub captions_vtt: Option<String>,
}

/// Concatenates the `stream`s of clips made by `make_clip` into one H.264 MP4 with `moov`
/// first, and draws `title` onto `poster_still_png` for the poster.
///
/// All clips must share size, frame rate (= `fps`) and encoder parameters.
pub fn render_video(clips: &[&[u8]], fps: u32, poster_still_png: &[u8], title: &str) -> Result<Rendered, MediaError> {
    render_narrated(clips, None, fps, poster_still_png, title)
}

/// `render_video` with each beat's narration under its clip as an Opus track (none when every
/// narration is empty), and WebVTT captions timed from the narration.
pub fn render_narrated(
    clips: &[&[u8]],
    beats: Option<&[BeatAudio<'_>]>,
    fps: u32,
    poster_still_png: &[u8],
    title: &str,
) -> Result<Rendered, MediaError> {
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
    let spans = beat_spans(&streams.iter().map(|s| s.frames.len() as u32).collect::<Vec<_>>(), fps);
    let audio = match beats {
        Some(beats) if beats.iter().any(|b| !b.pcm.samples.is_empty()) => Some(encode_opus(&lay_track(beats, &spans)?)?),
        Some(beats) => lay_track(beats, &spans).map(|_| None)?,
        None => None,
    };
    let title = title.trim();
    let mp4 = mux_h264(&streams, fps, (!title.is_empty()).then_some(title), audio.as_deref())?;
    let duration_ms = ((u64::from(frames) * 1000 + u64::from(fps) / 2) / u64::from(fps)) as u32;
    let poster_png = poster(poster_still_png, title)?;
    let captions_vtt = beats.map(|b| webvtt(b, &spans));
    Ok(Rendered { mp4, poster_png, duration_ms, frames, captions_vtt })
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
/// Opus packets of 20 ms, if any, start with the first frame.
pub(crate) fn mux_h264(streams: &[ClipStream<'_>], fps: u32, title: Option<&str>, opus: Option<&[Vec<u8>]>) -> Result<Vec<u8>, MediaError> {
    let first = streams.first().ok_or(MediaError::NoClips)?;
    let total: usize = streams.iter().map(|s| s.frames.iter().map(|f| f.len()).sum::<usize>()).sum();
    let mut out = Vec::with_capacity(total + 64 * 1024);
    let mut builder = MuxerBuilder::new(&mut out).video(VideoCodec::H264, first.width, first.height, f64::from(fps)).with_fast_start(true);
    if let Some(t) = title {
        builder = builder.with_metadata(Metadata::new().with_title(t));
    }
    if opus.is_some() {
        builder = builder.audio(AudioCodec::Opus, SAMPLE_RATE, 1);
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
    for (i, packet) in opus.unwrap_or_default().iter().enumerate() {
        let pts = (i * OPUS_FRAME) as f64 / f64::from(SAMPLE_RATE);
        muxer.write_audio(pts, packet).map_err(|e| MediaError::Muxer(format!("audio packet {i}: {e}")))?;
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
    fn narration_becomes_an_opus_track_as_long_as_the_video() {
        use crate::media::{BeatAudio, speak_espeak};
        let png = still(320, 180, 4);
        let clips: Vec<_> = [(2000, 1), (2250, 2)].iter().map(|&(ms, seed)| make_clip(&png, "", ms, 24, seed).unwrap()).collect();
        let streams: Vec<&[u8]> = clips.iter().map(|c| c.stream.as_slice()).collect();
        let (a, b) = (speak_espeak("A gull.", "en", 175).unwrap(), speak_espeak("It reads the tides.", "en", 175).unwrap());
        let beats = [BeatAudio { pcm: &a, text: "A gull." }, BeatAudio { pcm: &b, text: "It reads the tides." }];
        let r = render_narrated(&streams, Some(&beats), 24, &png, "Gulls").unwrap();
        let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(&r.mp4), r.mp4.len() as u64).unwrap();
        let ms = |t: &mp4::Mp4Track| t.duration().as_secs_f64() * 1000.0;
        let video = reader.tracks().values().find(|t| t.track_type().ok() == Some(mp4::TrackType::Video)).unwrap();
        let audio = reader.tracks().values().find(|t| t.track_type().ok() == Some(mp4::TrackType::Audio)).expect("an audio track");
        assert!((ms(audio) - ms(video)).abs() < 40.0, "audio {} ms, video {} ms", ms(audio), ms(video));
        let vtt = r.captions_vtt.as_deref().unwrap();
        assert_eq!(vtt.matches(" --> ").count(), 2, "{vtt}");
        assert!(vtt.contains("\n00:00:02.000 --> "), "the second cue starts with the second clip: {vtt}");
        assert_eq!(r, render_narrated(&streams, Some(&beats), 24, &png, "Gulls").unwrap(), "deterministic");
        let silent = render_video(&streams, 24, &png, "Gulls").unwrap();
        assert!(silent.mp4.len() < r.mp4.len() && silent.captions_vtt.is_none());
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
