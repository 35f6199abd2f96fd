//! Phase 3: one H.264 clip per beat — a pan or zoom over the still with the caption on top —
//! plus the framing format that lets phase 4 join clips without re-encoding.

use openh264::OpenH264API;
use openh264::Timestamp;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, FrameType, UsageType, VuiConfig};
use openh264::formats::YUVSlices;

use crate::media::picture::{Motion, Yuv420, decode_png, read_art_rows};
use crate::media::render::mux_h264;
use crate::media::text::caption_overlay;
use crate::media::{MediaError, Stop};

/// One encoded clip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clip {
    /// The clip's access units in Reelsmith's own framing (see `parse_stream`); the input to
    /// `render_video`.
    pub stream: Vec<u8>,
    /// The same frames as a playable fast-start MP4, for previewing this clip alone.
    pub preview_mp4: Vec<u8>,
    pub frames: u32,
}

const MAGIC: &[u8; 8] = b"RSH264C1";
const HEADER_LEN: usize = 8 + 4 * 4;
const BITRATE_BPS: u32 = 4_000_000;
pub(crate) const MAX_FPS: u32 = 120;
/// The longest clip the encoder makes (a beat, with its narration and the pause after it).
const MAX_DURATION_MS: u32 = crate::domain::narration::LONGEST_BEAT_MS;

/// Encodes a clip of `duration_ms` at `fps` from a still PNG.
///
/// The motion (zoom in/out, pan left/right) comes from `seed`. The caption is drawn after the
/// motion, so it is complete in every frame. If the still is a storyboard, its own caption band
/// is kept out of frame. The first frame is an IDR carrying SPS/PPS.
pub fn make_clip(still_png: &[u8], caption: &str, duration_ms: u32, fps: u32, seed: u64) -> Result<Clip, MediaError> {
    make_clip_until(still_png, caption, duration_ms, fps, seed, &Stop::default())
}

/// `make_clip` that checks `stop` before every frame and returns `MediaError::Stopped` once it
/// is set, so a cancelled run does not keep a blocking thread encoding.
pub fn make_clip_until(still_png: &[u8], caption: &str, duration_ms: u32, fps: u32, seed: u64, stop: &Stop) -> Result<Clip, MediaError> {
    let frames = frame_count(duration_ms, fps)?;
    let still = decode_png(still_png)?;
    let (w, h) = still.dimensions();
    check_size(w, h, "the still")?;
    let art_rows = read_art_rows(still_png).unwrap_or(h);
    let source = Yuv420::from_rgb(&still);
    drop(still);
    let motion = Motion::new(seed, w, h, art_rows);
    // No caption, no band: the narration is then spoken and shown as a WebVTT track instead.
    let overlay = (!caption.trim().is_empty()).then(|| caption_overlay(w, h, caption, None).for_yuv());
    encode_clip(w, h, fps, frames, stop, |i, frame| {
        let t = i as f32 / (frames - 1) as f32;
        source.sample_into(motion.view_at(t), frame);
        if let Some(overlay) = &overlay {
            overlay.apply(&mut frame.y, &mut frame.u, &mut frame.v);
        }
        Ok(())
    })
}

/// How many frames a clip of `duration_ms` at `fps` has; refuses what the encoder cannot make.
pub(crate) fn frame_count(duration_ms: u32, fps: u32) -> Result<u32, MediaError> {
    if !(1..=MAX_FPS).contains(&fps) {
        return Err(MediaError::InvalidInput(format!("frame rate {fps} is out of range; use 1..={MAX_FPS} fps")));
    }
    if duration_ms > MAX_DURATION_MS {
        return Err(MediaError::InvalidInput(format!(
            "clip duration {duration_ms} ms is too long; a clip may last at most {MAX_DURATION_MS} ms"
        )));
    }
    let frames = ((u64::from(duration_ms) * u64::from(fps) + 500) / 1000) as u32;
    // muxide derives the last frame's duration from the gap before it, so one frame alone
    // would last a single 90 kHz tick in the preview.
    if frames < 2 {
        return Err(MediaError::InvalidInput(format!(
            "clip duration {duration_ms} ms at {fps} fps gives {frames} frame(s); a clip needs at least 2"
        )));
    }
    Ok(frames)
}

/// H.264 needs even sizes of at least 16; the encoder's level caps the rest.
pub(crate) fn check_size(w: u32, h: u32, what: &str) -> Result<(), MediaError> {
    if !w.is_multiple_of(2) || !h.is_multiple_of(2) || w < 16 || h < 16 {
        return Err(MediaError::InvalidInput(format!("{what} is {w}x{h}; H.264 needs even width and height of at least 16")));
    }
    if w.max(h) > 3840 || w.min(h) > 2160 {
        return Err(MediaError::InvalidInput(format!("{what} is {w}x{h}; the encoder supports at most 3840x2160")));
    }
    Ok(())
}

/// Encodes `frames` frames of `w`x`h` at `fps`, each drawn by `fill`, into a clip (stream and
/// preview). Checks `stop` before every frame. The first frame is an IDR carrying SPS/PPS.
pub(crate) fn encode_clip(
    w: u32,
    h: u32,
    fps: u32,
    frames: u32,
    stop: &Stop,
    mut fill: impl FnMut(u32, &mut Yuv420) -> Result<(), MediaError>,
) -> Result<Clip, MediaError> {
    let mut encoder = new_encoder(fps)?;
    let mut frame = Yuv420::new(w as usize, h as usize);
    let mut stream = Vec::with_capacity(HEADER_LEN + frames as usize * 8 * 1024);
    stream.extend_from_slice(MAGIC);
    for v in [w, h, fps, frames] {
        stream.extend_from_slice(&v.to_le_bytes());
    }
    let mut access_unit = Vec::new();
    for i in 0..frames {
        if stop.is_stopped() {
            return Err(MediaError::Stopped);
        }
        fill(i, &mut frame)?;
        let yuv = YUVSlices::new((&frame.y, &frame.u, &frame.v), (w as usize, h as usize), (w as usize, w as usize / 2, w as usize / 2));
        let ms = u64::from(i) * 1000 / u64::from(fps);
        let bits = encoder.encode_at(&yuv, Timestamp::from_millis(ms)).map_err(|e| MediaError::Encoder(format!("frame {i}: {e}")))?;
        if i == 0 && bits.frame_type() != FrameType::IDR {
            return Err(MediaError::Encoder(format!("the first frame came out as {:?}, not an IDR", bits.frame_type())));
        }
        access_unit.clear();
        bits.write_vec(&mut access_unit);
        if access_unit.is_empty() {
            return Err(MediaError::Encoder(format!("frame {i} was skipped by the encoder")));
        }
        stream.extend_from_slice(&(access_unit.len() as u32).to_le_bytes());
        stream.extend_from_slice(&access_unit);
        stop.frame_done();
    }
    let parsed = parse_stream(&stream).map_err(|e| MediaError::Encoder(format!("produced an unreadable stream: {e}")))?;
    if !has_parameter_sets(parsed.frames[0]) {
        return Err(MediaError::Encoder("the first frame lacks SPS/PPS".into()));
    }
    let preview_mp4 = mux_h264(&[parsed], fps, None, None)?;
    Ok(Clip { stream, preview_mp4, frames })
}

/// Settings are fixed so every clip of a video has identical SPS/PPS and can be concatenated.
fn new_encoder(fps: u32) -> Result<Encoder, MediaError> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(BITRATE_BPS))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        // One thread: openh264's multi-threaded slicing is not guaranteed to be byte-stable.
        .num_threads(1)
        .vui(VuiConfig::bt709());
    Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| MediaError::Encoder(e.to_string()))
}

/// A clip stream, borrowed: `MAGIC`, then width, height, fps and frame count (u32 LE), then per
/// frame a u32 LE length and that frame's Annex-B bytes.
pub(crate) struct ClipStream<'a> {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: u32,
    pub(crate) frames: Vec<&'a [u8]>,
}

pub(crate) fn parse_stream(bytes: &[u8]) -> Result<ClipStream<'_>, String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("it does not start with the clip stream header".into());
    }
    let word = |i: usize| u32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes"));
    let (width, height, fps, count) = (word(0), word(1), word(2), word(3));
    if count == 0 {
        return Err("it has no frames".into());
    }
    let mut frames = Vec::with_capacity(count as usize);
    let mut pos = HEADER_LEN;
    for i in 0..count {
        let len = bytes
            .get(pos..pos + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| format!("it ends before frame {i} of {count}"))?;
        let frame = bytes.get(pos + 4..pos + 4 + len).ok_or_else(|| format!("frame {i} is cut short"))?;
        if len == 0 {
            return Err(format!("frame {i} is empty"));
        }
        frames.push(frame);
        pos += 4 + len;
    }
    if pos != bytes.len() {
        return Err(format!("{} stray bytes follow the last frame", bytes.len() - pos));
    }
    if !is_idr(frames[0]) {
        return Err("its first frame is not an IDR keyframe".into());
    }
    Ok(ClipStream { width, height, fps, frames })
}

/// NAL units of an Annex-B access unit (start codes removed).
pub(crate) fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // Trim the next start code, including the leading zero of a 4-byte one.
            let mut e = s - 3;
            while e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).map(move |(s, e)| &data[s..e.max(s)])
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

pub(crate) fn is_idr(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|n| nal_type(n) == 5)
}

fn has_parameter_sets(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|n| nal_type(n) == 7) && nal_units(access_unit).any(|n| nal_type(n) == 8)
}

/// The SPS and PPS bytes of an access unit, for checking that clips agree.
pub(crate) fn parameter_sets(access_unit: &[u8]) -> Vec<&[u8]> {
    nal_units(access_unit).filter(|n| matches!(nal_type(n), 7 | 8)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::{draw_storyboard, write_script};

    /// A small storyboard still, cached per size so tests stay fast.
    pub(crate) fn still(w: u32, h: u32, seed: u64) -> Vec<u8> {
        let s = write_script("paper boats on a rainy canal", 3, seed);
        draw_storyboard(&s, (seed % 3) as usize, seed, w, h).unwrap()
    }

    pub(crate) fn top_level_boxes(mp4: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= mp4.len() {
            let size = u32::from_be_bytes(mp4[pos..pos + 4].try_into().unwrap()) as usize;
            out.push(String::from_utf8_lossy(&mp4[pos + 4..pos + 8]).into_owned());
            if size < 8 {
                break;
            }
            pos += size;
        }
        out
    }

    #[test]
    fn a_stopped_clip_encodes_no_further_frame() {
        let png = still(320, 180, 1);
        let stop = std::sync::Arc::new(Stop::default());
        let worker = {
            let (png, stop) = (png.clone(), stop.clone());
            std::thread::spawn(move || make_clip_until(&png, "A long clip", 60_000, 24, 3, &stop))
        };
        while stop.frames_encoded() < 5 {
            std::thread::yield_now();
        }
        stop.stop();
        let at_stop = stop.frames_encoded();
        let result = worker.join().unwrap();
        assert!(matches!(result, Err(MediaError::Stopped)), "{result:?}");
        let after = stop.frames_encoded() - at_stop;
        assert!(after <= 1, "{after} frames were encoded after the stop (at most the one in progress)");
        assert!(stop.frames_encoded() < 1440, "the clip did not run to its end");
    }

    #[test]
    fn frame_count_fast_start_and_determinism() {
        let png = still(320, 180, 1);
        let a = make_clip(&png, "Paper boats drift past the lanterns.", 2250, 24, 5).unwrap();
        assert_eq!(a.frames, 54);
        let parsed = parse_stream(&a.stream).unwrap();
        assert_eq!(parsed.frames.len(), 54);
        assert_eq!((parsed.width, parsed.height, parsed.fps), (320, 180, 24));
        assert!(has_parameter_sets(parsed.frames[0]));
        assert!(parsed.frames[0].starts_with(&[0, 0, 0, 1]));

        let boxes = top_level_boxes(&a.preview_mp4);
        assert_eq!(boxes[0], "ftyp", "{boxes:?}");
        let moov = boxes.iter().position(|b| b == "moov").expect("moov");
        let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
        assert!(moov < mdat, "fast start needs moov before mdat: {boxes:?}");

        let b = make_clip(&png, "Paper boats drift past the lanterns.", 2250, 24, 5).unwrap();
        assert_eq!(a, b, "same input must give the same bytes");
        let c = make_clip(&png, "Paper boats drift past the lanterns.", 2250, 24, 6).unwrap();
        assert_ne!(a.stream, c.stream);
    }

    #[test]
    fn frame_count_rounds() {
        let png = still(64, 64, 2);
        assert_eq!(make_clip(&png, "x", 1000, 30, 0).unwrap().frames, 30);
        assert_eq!(make_clip(&png, "x", 3500, 24, 0).unwrap().frames, 84);
        assert_eq!(make_clip(&png, "x", 2020, 24, 0).unwrap().frames, 48);
    }

    #[test]
    fn every_frame_decodes() {
        use openh264::decoder::Decoder;
        let png = still(160, 96, 3);
        let clip = make_clip(&png, "A caption", 1000, 12, 1).unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut decoded = 0;
        for f in parse_stream(&clip.stream).unwrap().frames {
            if dec.decode(f).unwrap().is_some() {
                decoded += 1;
            }
        }
        assert_eq!(decoded, 12);
    }

    #[test]
    fn bad_inputs_are_reported() {
        let png = still(64, 64, 2);
        assert!(matches!(make_clip(b"not a png", "x", 2000, 24, 0), Err(MediaError::InvalidPng(_))));
        assert!(matches!(make_clip(&png, "x", 2000, 0, 0), Err(MediaError::InvalidInput(_))));
        assert!(matches!(make_clip(&png, "x", 10, 24, 0), Err(MediaError::InvalidInput(_))));
        let odd = crate::media::picture::encode_png(&image::RgbImage::new(33, 32), None).unwrap();
        let e = make_clip(&odd, "x", 2000, 24, 0).unwrap_err();
        assert!(e.to_string().contains("even"), "{e}");
    }

    #[test]
    fn nal_splitting_handles_both_start_codes() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9];
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9, 9][..]]);
        assert!(is_idr(&au));
    }
}
