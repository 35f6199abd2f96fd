//! Pixels in and out: PNG decode/encode (with the "art rows" note a storyboard leaves for
//! later phases), RGB → Y'CbCr 4:2:0, and the bilinear pan/zoom sampler.

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat, RgbImage};

use crate::media::MediaError;
use crate::media::seed::Rng;

pub(crate) fn decode_png(bytes: &[u8]) -> Result<RgbImage, MediaError> {
    let img = image::load_from_memory_with_format(bytes, ImageFormat::Png).map_err(|e| MediaError::InvalidPng(e.to_string()))?;
    Ok(img.to_rgb8())
}

/// The tEXt keyword under which a storyboard records how many rows from the top are art
/// (the rest is its caption band). Clips and posters use it to keep the baked caption out
/// of frame instead of showing it twice.
const ART_ROWS_KEY: &str = "reelsmith:art-rows";

pub(crate) fn encode_png(img: &RgbImage, art_rows: Option<u32>) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 4);
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)
        .map_err(|e| MediaError::PngEncode(e.to_string()))?;
    if let Some(rows) = art_rows {
        insert_text_chunk(&mut out, ART_ROWS_KEY, &rows.to_string());
    }
    Ok(out)
}

/// Inserts a tEXt chunk right after IHDR (signature 8 bytes + IHDR chunk 25 bytes), where
/// every PNG reader expects ancillary chunks may appear.
fn insert_text_chunk(png: &mut Vec<u8>, key: &str, value: &str) {
    let mut body = Vec::with_capacity(4 + key.len() + 1 + value.len());
    body.extend_from_slice(b"tEXt");
    body.extend_from_slice(key.as_bytes());
    body.push(0);
    body.extend_from_slice(value.as_bytes());
    let mut chunk = Vec::with_capacity(body.len() + 8);
    chunk.extend_from_slice(&((body.len() - 4) as u32).to_be_bytes());
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    png.splice(33..33, chunk);
}

pub(crate) fn read_art_rows(png: &[u8]) -> Option<u32> {
    let mut pos = 8;
    while pos + 12 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().ok()?) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = png.get(pos + 8..pos + 8 + len)?;
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        if kind == b"tEXt"
            && let Some(value) = data.strip_prefix(ART_ROWS_KEY.as_bytes()).and_then(|d| d.strip_prefix(&[0]))
        {
            return std::str::from_utf8(value).ok()?.parse().ok();
        }
        pos += 12 + len;
    }
    None
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Planar Y'CbCr 4:2:0, BT.709 limited range — what the encoder's VUI announces, so browsers
/// convert it back with the same matrix.
pub(crate) struct Yuv420 {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) y: Vec<u8>,
    pub(crate) u: Vec<u8>,
    pub(crate) v: Vec<u8>,
}

impl Yuv420 {
    pub(crate) fn new(width: usize, height: usize) -> Self {
        Yuv420 {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; width / 2 * (height / 2)],
            v: vec![128; width / 2 * (height / 2)],
        }
    }

    /// Callers guarantee even dimensions; chroma is the 2x2 box average.
    pub(crate) fn from_rgb(img: &RgbImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let rgb = img.as_raw();
        let mut out = Yuv420::new(w, h);
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            out.y[i] = (16 + ((11966 * r + 40254 * g + 4064 * b + 32768) >> 16)) as u8;
        }
        let cw = w / 2;
        for cy in 0..h / 2 {
            for cx in 0..cw {
                let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = ((cy * 2 + dy) * w + cx * 2 + dx) * 3;
                    r += i32::from(rgb[p]);
                    g += i32::from(rgb[p + 1]);
                    b += i32::from(rgb[p + 2]);
                }
                // Sums of four pixels: shift two more bits to average.
                let u = 128 + ((-6596 * r - 22189 * g + 28784 * b + (1 << 17)) >> 18);
                let v = 128 + ((28784 * r - 26145 * g - 2639 * b + (1 << 17)) >> 18);
                out.u[cy * cw + cx] = u.clamp(0, 255) as u8;
                out.v[cy * cw + cx] = v.clamp(0, 255) as u8;
            }
        }
        out
    }

    /// Renders this picture seen through `view` into `dst` (same size as `self`).
    pub(crate) fn sample_into(&self, view: View, dst: &mut Yuv420) {
        let (w, h) = (self.width, self.height);
        sample_plane(&self.y, w, h, &mut dst.y, w, h, view.x0, view.y0, view.step);
        let (cw, ch) = (w / 2, h / 2);
        let (cx0, cy0) = (view.x0 / 2.0, view.y0 / 2.0);
        sample_plane(&self.u, cw, ch, &mut dst.u, cw, ch, cx0, cy0, view.step);
        sample_plane(&self.v, cw, ch, &mut dst.v, cw, ch, cx0, cy0, view.step);
    }
}

/// A window into the source: its top-left corner and the source distance per output pixel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct View {
    pub(crate) x0: f32,
    pub(crate) y0: f32,
    pub(crate) step: f32,
}

/// Per-axis lookup: the two neighbouring source indices and the weight of the second in 1/256.
fn axis_table(src_len: usize, dst_len: usize, origin: f32, step: f32) -> Vec<(u32, u32, u32)> {
    (0..dst_len)
        .map(|d| {
            // Pixel centres sit at i + 0.5 in both spaces.
            let s = (origin + (d as f32 + 0.5) * step - 0.5).clamp(0.0, (src_len - 1) as f32);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(src_len - 1);
            let f = ((s - i0 as f32) * 256.0).round() as u32;
            (i0 as u32, i1 as u32, f.min(256))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn sample_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize, x0: f32, y0: f32, step: f32) {
    let cols = axis_table(sw, dw, x0, step);
    let rows = axis_table(sh, dh, y0, step);
    for (dy, &(r0, r1, fy)) in rows.iter().enumerate() {
        let top = &src[r0 as usize * sw..(r0 as usize + 1) * sw];
        let bot = &src[r1 as usize * sw..(r1 as usize + 1) * sw];
        let out = &mut dst[dy * dw..(dy + 1) * dw];
        for (o, &(c0, c1, fx)) in out.iter_mut().zip(&cols) {
            let (c0, c1) = (c0 as usize, c1 as usize);
            let t = u32::from(top[c0]) * (256 - fx) + u32::from(top[c1]) * fx;
            let b = u32::from(bot[c0]) * (256 - fx) + u32::from(bot[c1]) * fx;
            *o = ((t * (256 - fy) + b * fy + 32768) >> 16) as u8;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Move {
    ZoomIn,
    ZoomOut,
    PanLeft,
    PanRight,
}

/// A Ken Burns move over the art rows of a still, always covering the whole output frame and
/// never showing rows below `art_rows` (where a storyboard's own caption lives).
pub(crate) struct Motion {
    kind: Move,
    width: f32,
    height: f32,
    /// Smallest zoom that fits the output aspect inside the art rows.
    z_min: f32,
    /// Where the zoom is centred, or the vertical position of a pan, as 0..1 of the free range.
    anchor: (f32, f32),
    art_rows: f32,
}

const ZOOM_SPAN: f32 = 0.14;
const PAN_ZOOM: f32 = 1.14;

impl Motion {
    pub(crate) fn new(seed: u64, width: u32, height: u32, art_rows: u32) -> Self {
        let mut rng = Rng::new(seed ^ 0x6d6f_7469_6f6e);
        let kind = *rng.pick(&[Move::ZoomIn, Move::ZoomOut, Move::PanLeft, Move::PanRight]);
        let art_rows = art_rows.clamp(height / 2, height);
        let anchor = (rng.range(0.3, 0.7), rng.range(0.3, 0.7));
        Motion {
            kind,
            width: width as f32,
            height: height as f32,
            z_min: height as f32 / art_rows as f32,
            anchor,
            art_rows: art_rows as f32,
        }
    }

    #[cfg(test)]
    pub(crate) fn kind(&self) -> Move {
        self.kind
    }

    /// The still framed with no motion: the art rows, horizontally centred.
    pub(crate) fn rest_view(width: u32, height: u32, art_rows: u32) -> View {
        let art_rows = art_rows.clamp(height / 2, height) as f32;
        let z = height as f32 / art_rows;
        let vw = width as f32 / z;
        View { x0: (width as f32 - vw) / 2.0, y0: 0.0, step: 1.0 / z }
    }

    /// `t` runs 0..=1 over the clip.
    pub(crate) fn view_at(&self, t: f32) -> View {
        let t = t.clamp(0.0, 1.0);
        // Mostly linear with eased ends: clips are cut back to back, so a full ease-in-out
        // would make every cut feel like a stop.
        let e = 0.5 * t + 0.5 * t * t * (3.0 - 2.0 * t);
        let (zoom, pan) = match self.kind {
            Move::ZoomIn => (1.02 + ZOOM_SPAN * e, None),
            Move::ZoomOut => (1.02 + ZOOM_SPAN * (1.0 - e), None),
            Move::PanLeft => (PAN_ZOOM, Some(1.0 - e)),
            Move::PanRight => (PAN_ZOOM, Some(e)),
        };
        let z = self.z_min * zoom;
        let (vw, vh) = (self.width / z, self.height / z);
        // The free range is computed for the widest view of the move, so a zoom centred
        // there stays inside the art as it tightens.
        let z_wide = self.z_min
            * match self.kind {
                Move::ZoomIn | Move::ZoomOut => 1.02,
                _ => PAN_ZOOM,
            };
        let (ww, wh) = (self.width / z_wide, self.height / z_wide);
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let cx = match pan {
            Some(p) => lerp(ww / 2.0, self.width - ww / 2.0, p),
            None => lerp(ww / 2.0, self.width - ww / 2.0, self.anchor.0),
        };
        let cy = lerp(wh / 2.0, self.art_rows - wh / 2.0, self.anchor.1);
        View { x0: cx - vw / 2.0, y0: cy - vh / 2.0, step: 1.0 / z }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunk_round_trips_and_png_still_decodes() {
        let img = RgbImage::from_pixel(8, 6, image::Rgb([10, 200, 30]));
        let png = encode_png(&img, Some(512)).unwrap();
        assert_eq!(read_art_rows(&png), Some(512));
        let back = decode_png(&png).unwrap();
        assert_eq!(back, img);
        assert_eq!(read_art_rows(&encode_png(&img, None).unwrap()), None);
    }

    #[test]
    fn crc_matches_reference() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }

    #[test]
    fn views_stay_inside_the_art_rows() {
        for seed in 0..64 {
            for art in [720u32, 560, 400] {
                let m = Motion::new(seed, 1280, 720, art);
                for i in 0..=20 {
                    let v = m.view_at(i as f32 / 20.0);
                    let (x1, y1) = (v.x0 + 1280.0 * v.step, v.y0 + 720.0 * v.step);
                    assert!(v.x0 >= -0.01 && v.y0 >= -0.01, "{v:?}");
                    assert!(x1 <= 1280.01 && y1 <= art.max(360) as f32 + 0.01, "{v:?} {:?}", m.kind());
                }
            }
        }
    }

    #[test]
    fn gray_converts_to_neutral_chroma() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([128, 128, 128]));
        let yuv = Yuv420::from_rgb(&img);
        assert!(yuv.u.iter().chain(&yuv.v).all(|&c| c == 128));
        let white = Yuv420::from_rgb(&RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 255])));
        assert_eq!(white.y[0], 235);
    }
}
