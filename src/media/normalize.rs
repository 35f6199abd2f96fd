//! Remote outputs in the video's own format. A model answers in whatever size, frame rate and
//! encoding it likes (a 1024x1024 PNG or JPEG, an 832x480 16 fps H.264 MP4); these functions
//! decode what came, scale it to cover the video's frame and crop the middle, and re-encode.
use image::imageops::FilterType;
use image::{ImageReader, RgbImage};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use std::io::Cursor;

use crate::media::clip::{Clip, check_size, encode_clip, frame_count};
use crate::media::picture::{Yuv420, encode_png};
use crate::media::text::caption_overlay;
use crate::media::{MediaError, Stop};

/// The largest picture decoded (either side), against decompression bombs.
const MAX_SIDE: u32 = 8192;

/// Any common image (PNG, JPEG, WebP) as a `width`x`height` PNG.
pub fn normalize_image(bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| MediaError::InvalidPng(e.to_string()))?;
    let mut limits = image::Limits::default();
    (limits.max_image_width, limits.max_image_height) = (Some(MAX_SIDE), Some(MAX_SIDE));
    reader.limits(limits);
    let Some(format) = reader.format() else {
        return Err(MediaError::InvalidPng("the bytes are not a PNG, JPEG or WebP image".into()));
    };
    let img = reader.decode().map_err(|e| MediaError::InvalidPng(format!("the {format:?} image does not decode: {e}")))?;
    encode_png(&cover(&img.to_rgb8(), width, height), None)
}

/// The width and height of an image, read from its header.
pub fn image_size(bytes: &[u8]) -> Result<(u32, u32), MediaError> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| MediaError::InvalidPng(e.to_string()))?;
    reader.into_dimensions().map_err(|e| MediaError::InvalidPng(e.to_string()))
}

/// Scales `img` to cover `width`x`height` and crops the middle.
fn cover(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    let scale = (width as f32 / img.width() as f32).max(height as f32 / img.height() as f32);
    let (sw, sh) = (((img.width() as f32 * scale).ceil() as u32).max(width), ((img.height() as f32 * scale).ceil() as u32).max(height));
    let scaled = image::imageops::resize(img, sw, sh, FilterType::Triangle);
    image::imageops::crop_imm(&scaled, (sw - width) / 2, (sh - height) / 2, width, height).to_image()
}

/// An H.264 MP4 as a clip of `width`x`height` at `fps` lasting `duration_ms`, with the caption
/// drawn like a local clip's. Each output frame shows the source frame on screen at its time; a
/// source shorter than the beat holds its last frame.
pub fn normalize_clip(
    mp4: &[u8],
    (width, height): (u32, u32),
    fps: u32,
    duration_ms: u32,
    caption: &str,
    stop: &Stop,
) -> Result<Clip, MediaError> {
    let frames = frame_count(duration_ms, fps)?;
    check_size(width, height, "the video's frame")?;
    let mut source = Mp4Frames::open(mp4)?;
    // No caption (the narration is a WebVTT track): no band, as on a local clip.
    let overlay = (!caption.trim().is_empty()).then(|| caption_overlay(width, height, caption, None).for_yuv());
    let mut shown: Option<Yuv420> = None;
    encode_clip(width, height, fps, frames, stop, |i, frame| {
        let at_ms = u64::from(i) * 1000 / u64::from(fps);
        if let Some(picture) = source.frame_at(at_ms)? {
            shown = Some(Yuv420::from_rgb(&cover(&picture, width, height)));
        }
        let picture = shown.as_ref().ok_or_else(|| MediaError::InvalidInput("the video has no decodable frame".into()))?;
        frame.y.copy_from_slice(&picture.y);
        frame.u.copy_from_slice(&picture.u);
        frame.v.copy_from_slice(&picture.v);
        if let Some(overlay) = &overlay {
            overlay.apply(&mut frame.y, &mut frame.u, &mut frame.v);
        }
        Ok(())
    })
}

/// The frames of an MP4's H.264 track, decoded in order as they are asked for.
struct Mp4Frames<'a> {
    reader: mp4::Mp4Reader<Cursor<&'a [u8]>>,
    track: u32,
    samples: u32,
    next: u32,
    timescale: u64,
    length_size: usize,
    decoder: Decoder,
    /// Parameter sets in Annex-B form, sent before the first sample.
    header: Option<Vec<u8>>,
}

impl<'a> Mp4Frames<'a> {
    fn open(mp4: &'a [u8]) -> Result<Self, MediaError> {
        let bad = |e: String| MediaError::InvalidInput(format!("the video is not a readable MP4: {e}"));
        let reader = mp4::Mp4Reader::read_header(Cursor::new(mp4), mp4.len() as u64).map_err(|e| bad(e.to_string()))?;
        let (&track, t) = reader
            .tracks()
            .iter()
            .find(|(_, t)| matches!(t.media_type(), Ok(mp4::MediaType::H264)))
            .ok_or_else(|| bad("it has no H.264 video track".into()))?;
        let (w, h) = (u32::from(t.width()), u32::from(t.height()));
        if w > MAX_SIDE || h > MAX_SIDE {
            return Err(MediaError::InvalidInput(format!("the video is {w}x{h}; at most {MAX_SIDE} on a side")));
        }
        let mut header = Vec::new();
        for nal in [t.sequence_parameter_set(), t.picture_parameter_set()] {
            header.extend_from_slice(&[0, 0, 0, 1]);
            header.extend_from_slice(nal.map_err(|e| bad(e.to_string()))?);
        }
        let length_size = t.trak.mdia.minf.stbl.stsd.avc1.as_ref().map_or(4, |a| usize::from(a.avcc.length_size_minus_one & 3) + 1);
        let (samples, timescale) = (t.sample_count(), u64::from(t.timescale().max(1)));
        let decoder = Decoder::new().map_err(|e| MediaError::Encoder(format!("the H.264 decoder: {e}")))?;
        Ok(Mp4Frames { reader, track, samples, next: 1, timescale, length_size, decoder, header: Some(header) })
    }

    /// The newest frame due by `at_ms` that has not been returned yet (`None`: the frame on
    /// screen is still the last one returned).
    fn frame_at(&mut self, at_ms: u64) -> Result<Option<RgbImage>, MediaError> {
        let mut newest = None;
        while self.next <= self.samples {
            let sample = self
                .reader
                .read_sample(self.track, self.next)
                .map_err(|e| MediaError::InvalidInput(format!("sample {}: {e}", self.next)))?;
            let Some(sample) = sample else { break };
            if sample.start_time * 1000 / self.timescale > at_ms && newest.is_some() {
                break;
            }
            self.next += 1;
            if let Some(picture) = self.decode(&sample.bytes)? {
                newest = Some(picture);
            }
        }
        Ok(newest)
    }

    fn decode(&mut self, avcc: &[u8]) -> Result<Option<RgbImage>, MediaError> {
        let mut annex_b = self.header.take().unwrap_or_default();
        let mut rest = avcc;
        while rest.len() > self.length_size {
            let len = rest[..self.length_size].iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
            let nal = rest
                .get(self.length_size..self.length_size + len)
                .ok_or_else(|| MediaError::InvalidInput("a truncated H.264 sample".into()))?;
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(nal);
            rest = &rest[self.length_size + len..];
        }
        let decoded =
            self.decoder.decode(&annex_b).map_err(|e| MediaError::InvalidInput(format!("the H.264 video does not decode: {e}")))?;
        Ok(decoded.map(|yuv| {
            let (w, h) = yuv.dimensions();
            let mut rgb = vec![0u8; w * h * 3];
            yuv.write_rgb8(&mut rgb);
            RgbImage::from_raw(w as u32, h as u32, rgb).expect("a buffer of the decoded size")
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clip::parse_stream;

    fn picture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90]))
    }

    #[test]
    fn a_square_jpeg_becomes_a_wide_png_of_the_videos_size() {
        let mut jpeg = Vec::new();
        picture(1024, 1024).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        let png = normalize_image(&jpeg, 320, 180).unwrap();
        let back = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!((back.width(), back.height()), (320, 180));
        assert!(matches!(normalize_image(b"<html>expired</html>", 320, 180), Err(MediaError::InvalidPng(_))));
    }

    #[test]
    fn an_832x480_16fps_mp4_becomes_a_clip_of_the_videos_format() {
        let still = encode_png(&picture(832, 480), None).unwrap();
        let remote = crate::media::make_clip(&still, "", 3000, 16, 5).unwrap().preview_mp4;
        let clip = normalize_clip(&remote, (320, 180), 12, 2000, "A caption", &Stop::default()).unwrap();
        let stream = parse_stream(&clip.stream).unwrap();
        assert_eq!((stream.width, stream.height, stream.fps, clip.frames), (320, 180, 12, 24));
        let mut decoder = Decoder::new().unwrap();
        let decoded = stream.frames.iter().filter(|f| decoder.decode(f).unwrap().is_some()).count();
        assert_eq!(decoded, 24, "every frame of the new clip decodes");
        let longer = normalize_clip(&remote, (320, 180), 12, 5000, "", &Stop::default()).unwrap();
        assert_eq!(longer.frames, 60, "a source shorter than the beat holds its last frame");
        assert!(normalize_clip(b"not an mp4", (320, 180), 12, 2000, "", &Stop::default()).is_err());
    }

    /// Without a caption the picture's lower part is the model's, not a dark empty band (which
    /// sat under the browser's subtitles on every remote clip).
    #[test]
    fn no_caption_draws_no_band() {
        let still = encode_png(&RgbImage::from_pixel(320, 180, image::Rgb([200, 200, 200])), None).unwrap();
        let remote = crate::media::make_clip(&still, "", 1000, 12, 5).unwrap().preview_mp4;
        let bottom = |caption: &str| {
            let clip = normalize_clip(&remote, (320, 180), 12, 1000, caption, &Stop::default()).unwrap();
            let first = Mp4Frames::open(&clip.preview_mp4).unwrap().frame_at(0).unwrap().expect("a first frame");
            let rows = first.rows().skip(160).flat_map(|row| row.map(|p| u64::from(p.0[1]))).collect::<Vec<_>>();
            rows.iter().sum::<u64>() / rows.len() as u64
        };
        let (plain, captioned) = (bottom(""), bottom("A caption"));
        assert!(plain > 170, "the bottom rows keep the picture's grey: {plain}");
        assert!(captioned + 60 < plain, "a caption still gets its band: {captioned} against {plain}");
    }
}
