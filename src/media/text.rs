//! Text on pictures: the embedded DejaVu faces (with a system font for the letters they lack),
//! word wrapping, and caption/title overlays that can be laid over RGB stills and YUV video
//! frames alike.

use std::cell::OnceCell;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

/// Where the letters DejaVu lacks (Chinese, Japanese kana and kanji, Korean Hangul) are looked
/// for, with the face's index in its file: Debian's WenQuanYi Micro Hei (`fonts-wqy-microhei`,
/// which `make run` and `make test` install).
const FALLBACK_FONTS: &[(&str, u32)] = &[("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0)];

/// What a local provider that draws text adds to its id, so a memo key names the letters it was
/// drawn with: "+wqy-microhei" where the fallback font is installed, nothing where it is not
/// (those letters are boxes there, as in every output made before the fallback existed).
/// Workers with and without the font then never share a key, and a text drawn with boxes is not
/// reused where letters would be drawn.
pub fn letters_font_id() -> &'static str {
    static ID: OnceLock<&'static str> = OnceLock::new();
    ID.get_or_init(|| if FALLBACK_FONTS.iter().any(|(path, _)| std::path::Path::new(path).is_file()) { "+wqy-microhei" } else { "" })
}

/// The fallback font's bytes and face index, read once, the first time a text needs a letter
/// DejaVu lacks.
fn fallback_font() -> Option<FontRef<'static>> {
    static FOUND: OnceLock<Option<(&'static [u8], u32)>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let found = FALLBACK_FONTS.iter().find_map(|&(path, index)| {
            let bytes = std::fs::read(path).ok()?;
            FontRef::try_from_slice_and_index(&bytes, index).ok()?;
            Some((&*Box::leak(bytes.into_boxed_slice()), index))
        });
        if found.is_none() {
            tracing::warn!(
                looked_in = ?FALLBACK_FONTS,
                "no fallback font: letters DejaVu Sans lacks are drawn as boxes (install fonts-wqy-microhei)"
            );
        }
        found
    });
    found.and_then(|(bytes, index)| FontRef::try_from_slice_and_index(bytes, index).ok())
}

/// A DejaVu face and, for each letter it lacks, the fallback font (loaded when first needed).
pub(crate) struct Face {
    main: FontRef<'static>,
    fallback: OnceCell<Option<FontRef<'static>>>,
}

impl Face {
    fn of(bytes: &'static [u8]) -> Face {
        Face { main: FontRef::try_from_slice(bytes).expect("the embedded DejaVu faces are valid fonts"), fallback: OnceCell::new() }
    }

    /// The font that draws `c`, and its glyph: DejaVu's when it has one, else the fallback's,
    /// else DejaVu's box for a missing letter.
    fn glyph(&self, c: char) -> (&FontRef<'static>, GlyphId) {
        let id = self.main.glyph_id(c);
        if id.0 != 0 || c.is_whitespace() || c.is_control() {
            return (&self.main, id);
        }
        let fallback = self.fallback.get_or_init(fallback_font);
        match fallback {
            Some(font) if font.glyph_id(c).0 != 0 => (font, font.glyph_id(c)),
            _ => (&self.main, id),
        }
    }

    /// The main face at `px`, for a line's ascent and descent.
    fn scaled(&self, px: f32) -> ab_glyph::PxScaleFont<&FontRef<'static>> {
        self.main.as_scaled(PxScale::from(px))
    }
}

pub(crate) fn regular() -> Face {
    Face::of(dejavu::sans::regular())
}

pub(crate) fn bold() -> Face {
    Face::of(dejavu::sans::bold())
}

/// Lays out a line at `px` from `x0`: `each` gets every letter's font, glyph and pen position
/// (kerning applies between letters of the same font); the answer is the line's width.
fn layout<'f>(face: &'f Face, px: f32, text: &str, x0: f32, mut each: impl FnMut(&'f FontRef<'static>, GlyphId, f32)) -> f32 {
    let scale = PxScale::from(px);
    let mut x = x0;
    let mut prev: Option<(&FontRef<'static>, GlyphId)> = None;
    for c in text.chars() {
        let (font, id) = face.glyph(c);
        let scaled = font.as_scaled(scale);
        if let Some((pf, pid)) = prev
            && std::ptr::eq(pf, font)
        {
            x += scaled.kern(pid, id);
        }
        each(font, id, x);
        x += scaled.h_advance(id);
        prev = Some((font, id));
    }
    x - x0
}

/// Width in pixels of one line, laid out exactly as `raster_line` draws it.
pub(crate) fn measure(face: &Face, px: f32, text: &str) -> f32 {
    layout(face, px, text, 0.0, |_, _, _| {})
}

/// Greedy word wrap. A word wider than a whole line is split between characters, so
/// nothing is ever wider than `max_width` (unless a single glyph is).
pub(crate) fn wrap(font: &Face, px: f32, text: &str, max_width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if measure(font, px, &candidate) <= max_width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if measure(font, px, word) <= max_width {
            line = word.to_string();
            continue;
        }
        for c in word.chars() {
            let mut next = line.clone();
            next.push(c);
            if !line.is_empty() && measure(font, px, &next) > max_width {
                lines.push(std::mem::take(&mut line));
                line.push(c);
            } else {
                line = next;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Shortens the last kept line until it ends in an ellipsis that fits.
fn truncate_lines(font: &Face, px: f32, mut lines: Vec<String>, max_lines: usize, max_width: f32) -> Vec<String> {
    if lines.len() <= max_lines {
        return lines;
    }
    lines.truncate(max_lines);
    let last = lines.last_mut().expect("max_lines > 0");
    loop {
        let candidate = format!("{}…", last.trim_end());
        if measure(font, px, &candidate) <= max_width || last.is_empty() {
            *last = candidate;
            break;
        }
        last.pop();
    }
    lines
}

/// Draws one line of coverage into `mask` (row-major, `mw` wide), keeping the maximum where
/// glyph edges overlap so antialiasing never sums above full coverage.
#[allow(clippy::too_many_arguments)]
fn raster_line(mask: &mut [f32], mw: usize, face: &Face, px: f32, text: &str, x0: f32, baseline: f32, opacity: f32) {
    let mh = mask.len() / mw.max(1);
    let scale = PxScale::from(px);
    layout(face, px, text, x0, |font, id, x| {
        let glyph = id.with_scale_and_position(scale, point(x, baseline));
        let Some(outlined) = font.outline_glyph(glyph) else {
            return;
        };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, cov| {
            let px = bounds.min.x as i32 + gx as i32;
            let py = bounds.min.y as i32 + gy as i32;
            if px >= 0 && py >= 0 && (px as usize) < mw && (py as usize) < mh {
                let cell = &mut mask[py as usize * mw + px as usize];
                *cell = cell.max(cov.clamp(0.0, 1.0) * opacity);
            }
        });
    });
}

/// A full-width strip of the picture darkened and/or lit with white text.
///
/// Every pixel becomes `keep·picture + white·WHITE + (1 − keep − white)·BLACK`, which is linear in
/// the picture, so the same overlay works on RGB and on Y'CbCr planes.
pub(crate) struct Overlay {
    width: u32,
    /// First picture row the overlay touches.
    pub(crate) top: u32,
    height: u32,
    /// Weights in 1/256: how much of the picture survives, and how much white is added.
    keep: Vec<u16>,
    white: Vec<u16>,
}

struct Layers {
    width: usize,
    height: usize,
    keep: Vec<f32>,
    white: Vec<f32>,
}

impl Layers {
    fn new(width: usize, height: usize) -> Self {
        Layers { width, height, keep: vec![1.0; width * height], white: vec![0.0; width * height] }
    }

    fn black(&mut self, alpha: &[f32]) {
        for ((k, w), a) in self.keep.iter_mut().zip(self.white.iter_mut()).zip(alpha) {
            *k *= 1.0 - a;
            *w *= 1.0 - a;
        }
    }

    fn white(&mut self, alpha: &[f32]) {
        for ((k, w), a) in self.keep.iter_mut().zip(self.white.iter_mut()).zip(alpha) {
            *k *= 1.0 - a;
            *w = *w * (1.0 - a) + a;
        }
    }

    /// A drop shadow is the text mask, shifted and softened, laid down in black.
    fn shadow_of(&self, mask: &[f32], dx: usize, dy: usize, strength: f32) -> Vec<f32> {
        let (w, h) = (self.width, self.height);
        let mut out = vec![0.0f32; w * h];
        for y in dy..h {
            for x in dx..w {
                let src = (y - dy) * w + (x - dx);
                // A 3-tap horizontal blur is enough to keep thin strokes legible on busy art.
                let l = if x - dx > 0 { mask[src - 1] } else { 0.0 };
                let r = if x - dx + 1 < w { mask[src + 1] } else { 0.0 };
                out[y * w + x] = ((l + 2.0 * mask[src] + r) * 0.25 * strength).min(1.0);
            }
        }
        out
    }

    fn finish(self, top: u32) -> Overlay {
        let q = |v: f32| (v * 256.0).round().clamp(0.0, 256.0) as u16;
        let keep: Vec<u16> = self.keep.iter().map(|&k| q(k)).collect();
        let white: Vec<u16> = self.white.iter().zip(&keep).map(|(&w, &k)| q(w).min(256 - k)).collect();
        Overlay { width: self.width as u32, top, height: self.height as u32, keep, white }
    }
}

/// Sizes derive from a 1280x720 design, scaled by the tighter of the two axes.
fn unit(width: u32, height: u32) -> f32 {
    (width as f32 / 1280.0).min(height as f32 / 720.0).max(0.05)
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

const BAND_ALPHA: f32 = 0.64;

/// The caption lower-third: a translucent dark band at the bottom with the wrapped text
/// left-aligned, and an optional small marker ("3 / 8") on the right.
pub(crate) fn caption_overlay(width: u32, height: u32, text: &str, marker: Option<&str>) -> Overlay {
    let font = regular();
    let u = unit(width, height);
    let base = (34.0 * u).max(9.0);
    let margin = (0.045 * width as f32).max(6.0);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");

    let marker_px = base * 0.62;
    let marker_w = marker.map_or(0.0, |m| measure(&font, marker_px, m));
    let marker_col = if marker.is_some() { marker_w + base } else { 0.0 };
    let max_w = (width as f32 - 2.0 * margin - marker_col).max(base);

    // Shrink before truncating: a long narration should stay whole where that is readable.
    let attempts: [(f32, usize); 4] = [(1.0, 3), (0.86, 3), (0.74, 4), (0.64, 4)];
    let mut chosen = None;
    for (f, max_lines) in attempts {
        let px = base * f;
        let lines = wrap(&font, px, &text, max_w);
        if lines.len() <= max_lines {
            chosen = Some((px, lines));
            break;
        }
    }
    let (px, lines) = chosen.unwrap_or_else(|| {
        let px = base * 0.64;
        let lines = wrap(&font, px, &text, max_w);
        (px, truncate_lines(&font, px, lines, 4, max_w))
    });

    let scaled = font.scaled(px);
    let (ascent, descent) = (scaled.ascent(), scaled.descent());
    let line_h = px * 1.3;
    let pad = px * 0.75;
    let fade = (px * 1.2).ceil();
    let n = lines.len().max(1) as f32;
    let band = (2.0 * pad + n * line_h).ceil();
    let total = ((band + fade) as u32).min(height);
    let top = height - total;
    let band_start = total as f32 - band;

    let (w, h) = (width as usize, total as usize);
    let mut layers = Layers::new(w, h);

    let mut band_alpha = vec![0.0f32; w * h];
    for y in 0..h {
        let a = if (y as f32) < band_start { BAND_ALPHA * smoothstep((y as f32 + 0.5) / band_start) } else { BAND_ALPHA };
        band_alpha[y * w..(y + 1) * w].fill(a);
    }
    layers.black(&band_alpha);

    let mut mask = vec![0.0f32; w * h];
    for (i, line) in lines.iter().enumerate() {
        let line_top = band_start + pad + i as f32 * line_h;
        let baseline = line_top + (line_h - (ascent - descent)) / 2.0 + ascent;
        raster_line(&mut mask, w, &font, px, line, margin, baseline.round(), 1.0);
    }
    if let Some(m) = marker {
        let ms = font.scaled(marker_px);
        let baseline = band_start + band / 2.0 + (ms.ascent() + ms.descent()) / 2.0;
        raster_line(&mut mask, w, &font, marker_px, m, width as f32 - margin - marker_w, baseline.round(), 0.8);
    }
    let off = (2.0 * u).round().max(1.0) as usize;
    let shadow = layers.shadow_of(&mask, off, off, 0.85);
    layers.black(&shadow);
    layers.white(&mask);
    layers.finish(top)
}

/// The poster title: large bold centred lines over a scrim that fades down from the top.
pub(crate) fn title_overlay(width: u32, height: u32, title: &str) -> Overlay {
    let font = bold();
    let u = unit(width, height);
    let base = (64.0 * u).max(12.0);
    let margin = (0.07 * width as f32).max(8.0);
    let max_w = (width as f32 - 2.0 * margin).max(base);
    let title: String = title.split_whitespace().collect::<Vec<_>>().join(" ");

    let mut chosen = None;
    for f in [1.0, 0.86, 0.74, 0.62] {
        let lines = wrap(&font, base * f, &title, max_w);
        if lines.len() <= 2 {
            chosen = Some((base * f, lines));
            break;
        }
    }
    let (px, lines) = chosen.unwrap_or_else(|| {
        let px = base * 0.62;
        let lines = wrap(&font, px, &title, max_w);
        (px, truncate_lines(&font, px, lines, 2, max_w))
    });

    let scaled = font.scaled(px);
    let (ascent, descent) = (scaled.ascent(), scaled.descent());
    let line_h = px * 1.2;
    let text_top = (48.0 * u).round();
    let text_bottom = text_top + lines.len() as f32 * line_h;
    let total = ((text_bottom + 0.9 * text_bottom.max(120.0 * u)).ceil() as u32).min(height);

    let (w, h) = (width as usize, total as usize);
    let mut layers = Layers::new(w, h);
    let mut scrim = vec![0.0f32; w * h];
    for y in 0..h {
        // Solid behind the text, then a long fade so the art is not cut by a hard edge.
        let yf = y as f32 + 0.5;
        let a = if yf <= text_bottom { 0.62 } else { 0.62 * (1.0 - smoothstep((yf - text_bottom) / (h as f32 - text_bottom))) };
        scrim[y * w..(y + 1) * w].fill(a);
    }
    layers.black(&scrim);

    let mut mask = vec![0.0f32; w * h];
    for (i, line) in lines.iter().enumerate() {
        let lw = measure(&font, px, line);
        let x = ((width as f32 - lw) / 2.0).max(margin);
        let line_top = text_top + i as f32 * line_h;
        let baseline = line_top + (line_h - (ascent - descent)) / 2.0 + ascent;
        raster_line(&mut mask, w, &font, px, line, x.round(), baseline.round(), 1.0);
    }
    let off = (3.0 * u).round().max(1.0) as usize;
    let shadow = layers.shadow_of(&mask, off, off, 0.9);
    layers.black(&shadow);
    layers.white(&mask);
    layers.finish(0)
}

impl Overlay {
    pub(crate) fn apply_rgb(&self, rgb: &mut [u8], width: u32) {
        debug_assert_eq!(width, self.width);
        let w = self.width as usize;
        for r in 0..self.height as usize {
            let row = (self.top as usize + r) * w * 3;
            for x in 0..w {
                let i = r * w + x;
                let (k, wh) = (u32::from(self.keep[i]), u32::from(self.white[i]));
                if k == 256 {
                    continue;
                }
                for c in 0..3 {
                    let p = &mut rgb[row + x * 3 + c];
                    *p = ((k * u32::from(*p) + wh * 255 + 128) >> 8) as u8;
                }
            }
        }
    }

    /// Precomputes the per-pixel terms for limited-range Y'CbCr, where black is Y=16 and
    /// white Y=235 and both have neutral chroma, so chroma only needs the averaged `keep`.
    pub(crate) fn for_yuv(&self) -> YuvOverlay {
        let w = self.width as usize;
        let luma_add: Vec<u16> = self
            .keep
            .iter()
            .zip(&self.white)
            .map(|(&k, &wh)| {
                let (k, wh) = (u32::from(k), u32::from(wh));
                (wh * 235 + (256 - k - wh) * 16 + 128) as u16
            })
            .collect();
        let keep_at = |x: usize, y: usize| -> u32 {
            if y < self.top as usize || y >= (self.top + self.height) as usize {
                256
            } else {
                u32::from(self.keep[(y - self.top as usize) * w + x])
            }
        };
        let c_top = self.top as usize / 2;
        let c_bottom = (self.top + self.height).div_ceil(2) as usize;
        let cw = w / 2;
        let mut chroma_keep = Vec::with_capacity((c_bottom - c_top) * cw);
        for cy in c_top..c_bottom {
            for cx in 0..cw {
                let (x, y) = (cx * 2, cy * 2);
                let s = keep_at(x, y) + keep_at(x + 1, y) + keep_at(x, y + 1) + keep_at(x + 1, y + 1);
                chroma_keep.push(((s + 2) / 4) as u16);
            }
        }
        YuvOverlay {
            width: w,
            top: self.top as usize,
            height: self.height as usize,
            keep: self.keep.clone(),
            luma_add,
            c_top,
            c_rows: c_bottom - c_top,
            chroma_keep,
        }
    }
}

pub(crate) struct YuvOverlay {
    width: usize,
    top: usize,
    height: usize,
    keep: Vec<u16>,
    luma_add: Vec<u16>,
    c_top: usize,
    c_rows: usize,
    chroma_keep: Vec<u16>,
}

impl YuvOverlay {
    pub(crate) fn apply(&self, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
        let w = self.width;
        for r in 0..self.height {
            let row = &mut y[(self.top + r) * w..(self.top + r + 1) * w];
            let keep = &self.keep[r * w..(r + 1) * w];
            let add = &self.luma_add[r * w..(r + 1) * w];
            for ((p, &k), &a) in row.iter_mut().zip(keep).zip(add) {
                *p = ((u32::from(k) * u32::from(*p) + u32::from(a)) >> 8) as u8;
            }
        }
        let cw = w / 2;
        for plane in [u, v] {
            for r in 0..self.c_rows {
                let row = &mut plane[(self.c_top + r) * cw..(self.c_top + r + 1) * cw];
                let keep = &self.chroma_keep[r * cw..(r + 1) * cw];
                for (p, &k) in row.iter_mut().zip(keep) {
                    let k = u32::from(k);
                    *p = ((k * u32::from(*p) + (256 - k) * 128 + 128) >> 8) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_respects_width_even_for_unbreakable_words() {
        let font = regular();
        let long = "x".repeat(400);
        let text = format!("short words then {long} and more");
        let lines = wrap(&font, 30.0, &text, 500.0);
        assert!(lines.len() > 3);
        for l in &lines {
            assert!(measure(&font, 30.0, l) <= 500.0, "{l}");
        }
    }

    #[test]
    fn longest_allowed_narration_is_not_truncated_at_720p() {
        // The app accepts edited narrations of up to 400 characters.
        let text = "The quick brown fox jumps over the lazy dog while it rains. ".repeat(7);
        let text = &text[..400];
        let font = regular();
        let base = 34.0 * 0.64;
        let max_w = 1280.0 - 2.0 * 0.045 * 1280.0 - (measure(&font, 34.0 * 0.62, "12 / 12") + 34.0);
        assert!(wrap(&font, base, text, max_w).len() <= 4);
    }

    /// A line's coverage, drawn as the overlays draw it.
    fn line_mask(face: &Face, text: &str) -> Vec<f32> {
        let (w, h) = (480, 60);
        let mut mask = vec![0.0; w * h];
        raster_line(&mut mask, w, face, 32.0, text, 4.0, 44.0, 1.0);
        mask
    }

    #[test]
    fn letters_dejavu_lacks_are_drawn_from_the_fallback_font() {
        assert!(fallback_font().is_some(), "no fallback font in {FALLBACK_FONTS:?}: install fonts-wqy-microhei (make test does)");
        let face = regular();
        for c in "東京の夜景、서울".chars() {
            assert_ne!(face.glyph(c).1, GlyphId(0), "{c} has a glyph");
        }
        // A missing letter is always the same box, so two of them swapped draw the same picture.
        let without = Face { fallback: OnceCell::from(None), ..regular() };
        assert_eq!(line_mask(&without, "東京"), line_mask(&without, "京東"), "DejaVu alone draws boxes");
        assert_ne!(line_mask(&face, "東京"), line_mask(&face, "京東"), "the fallback draws the letters");
        assert!(line_mask(&face, "東京").iter().sum::<f32>() > 50.0, "the letters have ink");
        // Text DejaVu has is drawn exactly as before.
        assert_eq!(line_mask(&face, "Tokyo at night"), line_mask(&without, "Tokyo at night"));
        // A line without spaces wraps between letters, within the width.
        let lines = wrap(&face, 32.0, &"東京の夜景".repeat(20), 300.0);
        assert!(lines.len() > 1 && lines.iter().all(|l| measure(&face, 32.0, l) <= 300.0), "{lines:?}");
        assert_eq!(lines.concat(), "東京の夜景".repeat(20), "no letter lost in the wrap");
    }

    #[test]
    fn caption_overlay_fits_the_frame() {
        let text = "word ".repeat(400);
        let o = caption_overlay(1280, 720, &text, Some("12 / 12"));
        assert!(o.top > 720 / 2, "band should stay in the lower part, top={}", o.top);
        let o = caption_overlay(64, 36, &text, Some("1 / 1"));
        assert!(o.top + o.height <= 36);
    }
}
