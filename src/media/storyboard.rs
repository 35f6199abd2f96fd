//! Phase 2: one storyboard still per beat — procedural landscape art with the narration as a
//! caption band and a "n / total" marker.

use crate::domain::script::Script;
use crate::media::MediaError;
use crate::media::picture::encode_png;
use crate::media::script::PALETTES;
use crate::media::seed::{Rng, fnv1a, mix};
use crate::media::text::caption_overlay;
use image::RgbImage;

/// Colours of a named palette, in the order they are layered.
struct Palette {
    sky_top: u32,
    sky_bottom: u32,
    glow: u32,
    far: u32,
    near: u32,
    accent: u32,
    night: bool,
}

/// Indexed like `script::PALETTES`, so the words in a visual description are the colours drawn.
const PALETTE_COLOURS: [Palette; 10] = [
    Palette { sky_top: 0x0f3d4c, sky_bottom: 0xf2a65a, glow: 0xffd89a, far: 0x3f7c85, near: 0x12323a, accent: 0xffc971, night: false },
    Palette { sky_top: 0x2a1a4a, sky_bottom: 0xc77dab, glow: 0xffd1e8, far: 0x6a4c93, near: 0x241a3a, accent: 0xf6a5c0, night: true },
    Palette { sky_top: 0x5fa8d3, sky_bottom: 0xffc6a8, glow: 0xfff1c1, far: 0xf28c7a, near: 0x7b3f4f, accent: 0xffe0c2, night: false },
    Palette { sky_top: 0x1f3b2d, sky_bottom: 0xa8c686, glow: 0xf4f1bb, far: 0x4f7d4a, near: 0x173022, accent: 0xe9f5b8, night: false },
    Palette { sky_top: 0x0b2545, sky_bottom: 0x8da9c4, glow: 0xeef4ed, far: 0x5b7fa6, near: 0x13315c, accent: 0xdbe9f6, night: false },
    Palette { sky_top: 0x4a3b6b, sky_bottom: 0xffb347, glow: 0xfff0b3, far: 0xc0704a, near: 0x3b2430, accent: 0xffd27f, night: false },
    Palette { sky_top: 0x120c2c, sky_bottom: 0xff2e88, glow: 0xffd0f0, far: 0x5a1a7a, near: 0x0d0820, accent: 0x36e2ff, night: true },
    Palette { sky_top: 0x6b8fb3, sky_bottom: 0xf3d9b1, glow: 0xfff4dc, far: 0xd4a373, near: 0x7f5539, accent: 0xfaedcd, night: false },
    Palette { sky_top: 0x3a4a5c, sky_bottom: 0xf1b5b9, glow: 0xffe6e8, far: 0x8b7d92, near: 0x2f3a47, accent: 0xffd6d9, night: false },
    Palette { sky_top: 0x050a30, sky_bottom: 0x2e3a87, glow: 0xc9d6ff, far: 0x1f2a6b, near: 0x060818, accent: 0x9fb4ff, night: true },
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Motif {
    Hills,
    Waves,
    Skyline,
}

type Rgb = [f32; 3];

fn rgb(hex: u32) -> Rgb {
    [((hex >> 16) & 0xff) as f32 / 255.0, ((hex >> 8) & 0xff) as f32 / 255.0, (hex & 0xff) as f32 / 255.0]
}

fn mix_rgb(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Draws beat `index` of `script` as a PNG (RGB8, `width`x`height`).
///
/// The picture depends only on the beat's text, its position and `seed`, so it is
/// byte-for-byte reproducible.
pub fn draw_storyboard(script: &Script, index: usize, seed: u64, width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    let total = script.beats.len();
    let beat = script
        .beats
        .get(index)
        .ok_or_else(|| MediaError::InvalidInput(format!("beat {} does not exist; the script has {total} beat(s)", index + 1)))?;
    if !(16..=8192).contains(&width) || !(16..=8192).contains(&height) {
        return Err(MediaError::InvalidInput(format!(
            "storyboard size {width}x{height} is out of range; each side must be 16..=8192 pixels"
        )));
    }

    let visual = beat.visual.to_lowercase();
    let palette_index = PALETTES
        .iter()
        .position(|name| visual.contains(name))
        .unwrap_or((fnv1a(visual.as_bytes()) % PALETTE_COLOURS.len() as u64) as usize);
    let palette = &PALETTE_COLOURS[palette_index];
    let motif = if ["dune", "hill", "mountain", "ridge", "valley", "meadow", "desert", "forest", "field"].iter().any(|w| visual.contains(w))
    {
        Motif::Hills
    } else if ["coast", "harbor", "sea", "lake", "ocean", "river", "beach", "wave"].iter().any(|w| visual.contains(w)) {
        Motif::Waves
    } else if ["city", "downtown", "skyline", "rooftop", "street", "town"].iter().any(|w| visual.contains(w)) {
        Motif::Skyline
    } else {
        [Motif::Hills, Motif::Waves, Motif::Skyline][(fnv1a(visual.as_bytes()) >> 8) as usize % 3]
    };
    let mut rng = Rng::new(mix(mix(fnv1a(beat.visual.as_bytes()), fnv1a(beat.narration.as_bytes())), seed ^ index as u64));

    let mut canvas = Canvas::new(width as usize, height as usize);
    canvas.sky(palette, &mut rng);
    if palette.night || motif == Motif::Skyline && rng.below(2) == 0 {
        canvas.stars(&mut rng);
    }
    canvas.sun(palette, &mut rng);
    canvas.bokeh(palette, &mut rng);
    match motif {
        Motif::Hills => canvas.hills(palette, &mut rng, 4, 0.5),
        Motif::Waves => {
            canvas.hills(palette, &mut rng, 1, 0.44);
            canvas.waves(palette, &mut rng);
        }
        Motif::Skyline => {
            canvas.hills(palette, &mut rng, 1, 0.56);
            canvas.skyline(palette, &mut rng);
        }
    }
    canvas.vignette();

    let mut img = canvas.into_image();
    let marker = format!("{} / {}", index + 1, total);
    let overlay = caption_overlay(width, height, &beat.narration, Some(&marker));
    overlay.apply_rgb(&mut img, width);
    encode_png(&img, Some(overlay.top))
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<Rgb>,
    /// The sky colour right above the horizon, used to haze distant layers.
    horizon: Rgb,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas { w, h, px: vec![[0.0; 3]; w * h], horizon: [0.0; 3] }
    }

    fn blend(&mut self, x: usize, y: usize, c: Rgb, a: f32) {
        let p = &mut self.px[y * self.w + x];
        *p = mix_rgb(*p, c, a.clamp(0.0, 1.0));
    }

    fn sky(&mut self, pal: &Palette, rng: &mut Rng) {
        let (top, bottom) = (rgb(pal.sky_top), rgb(pal.sky_bottom));
        let tilt = rng.range(-0.12, 0.12);
        let horizon = rng.range(0.62, 0.78);
        let (w, h) = (self.w as f32, self.h as f32);
        for y in 0..self.h {
            for x in 0..self.w {
                // The tilt can push t below zero near a top corner; powf would turn that into NaN.
                let t = ((y as f32 / h + tilt * (x as f32 / w - 0.5)) / horizon).clamp(0.0, 1.0);
                self.px[y * self.w + x] = mix_rgb(top, bottom, smoothstep(t.powf(0.85)));
            }
        }
        self.horizon = bottom;
        // A broad glow behind where the sun will sit keeps the sky from looking flat.
        let glow = rgb(pal.glow);
        let (gx, gy, r) = (rng.range(0.2, 0.8) * w, rng.range(0.25, 0.5) * h, 0.6 * h);
        for y in 0..self.h {
            for x in 0..self.w {
                let d = ((x as f32 - gx).powi(2) + (y as f32 - gy).powi(2)).sqrt() / r;
                let a = (1.0 - d).max(0.0).powi(2) * 0.5;
                if a > 0.0 {
                    self.blend(x, y, glow, a);
                }
            }
        }
    }

    fn disc(&mut self, cx: f32, cy: f32, r: f32, soft: f32, c: Rgb, alpha: f32) {
        let x0 = (cx - r - soft).floor().max(0.0) as usize;
        let x1 = ((cx + r + soft).ceil() as usize).min(self.w);
        let y0 = (cy - r - soft).floor().max(0.0) as usize;
        let y1 = ((cy + r + soft).ceil() as usize).min(self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let a = 1.0 - smoothstep((d - r) / soft + 0.5);
                if a > 0.0 {
                    self.blend(x, y, c, a * alpha);
                }
            }
        }
    }

    fn stars(&mut self, rng: &mut Rng) {
        let n = (self.w * self.h / 9000).clamp(10, 400);
        let s = self.h as f32 / 720.0;
        for _ in 0..n {
            let (x, y) = (rng.unit() * self.w as f32, rng.unit() * self.h as f32 * 0.6);
            let r = rng.range(0.5, 1.5) * s.max(0.5);
            let a = rng.range(0.35, 0.95) * (1.0 - y / (self.h as f32 * 0.6));
            self.disc(x, y, r, 1.0, [1.0, 1.0, 0.95], a);
        }
    }

    fn sun(&mut self, pal: &Palette, rng: &mut Rng) {
        let (w, h) = (self.w as f32, self.h as f32);
        let r = rng.range(0.055, 0.1) * h;
        let (cx, cy) = (rng.range(0.15, 0.85) * w, rng.range(0.18, 0.42) * h);
        self.disc(cx, cy, r * 2.2, r * 1.5, rgb(pal.glow), 0.25);
        self.disc(cx, cy, r, 1.5, rgb(pal.glow), 0.95);
    }

    fn bokeh(&mut self, pal: &Palette, rng: &mut Rng) {
        let (w, h) = (self.w as f32, self.h as f32);
        let accent = rgb(pal.accent);
        for _ in 0..rng.below(5) + 5 {
            let r = rng.range(0.02, 0.09) * h;
            let (cx, cy) = (rng.unit() * w, rng.range(0.05, 0.6) * h);
            self.disc(cx, cy, r, r * 0.35, accent, rng.range(0.06, 0.18));
        }
    }

    /// Fills from a ridge line down to the bottom; `ridge[x]` is the top in pixels.
    fn fill_below(&mut self, ridge: &[f32], c: Rgb, alpha: f32) {
        for (x, &top) in ridge.iter().enumerate() {
            let start = top.floor().max(0.0) as usize;
            for y in start..self.h {
                // Vertical antialiasing is enough: ridges are gentle slopes.
                let cov = (y as f32 + 1.0 - top).clamp(0.0, 1.0);
                self.blend(x, y, c, cov * alpha);
            }
        }
    }

    fn layer_colour(&self, pal: &Palette, depth: f32) -> Rgb {
        // Aerial perspective: far layers take on the horizon colour.
        let base = mix_rgb(rgb(pal.far), rgb(pal.near), depth);
        mix_rgb(base, self.horizon, (1.0 - depth) * 0.35)
    }

    fn hills(&mut self, pal: &Palette, rng: &mut Rng, layers: usize, start: f32) {
        let (w, h) = (self.w as f32, self.h as f32);
        for j in 0..layers {
            let depth = if layers == 1 { 0.0 } else { j as f32 / (layers - 1) as f32 };
            let base = h * (start + 0.1 * j as f32 + rng.range(-0.02, 0.02));
            let waves: Vec<(f32, f32, f32)> = [(0.07, 1.0, 2.2), (0.03, 3.0, 6.0), (0.01, 8.0, 14.0)]
                .iter()
                .map(|&(amp, f0, f1)| (amp * h * rng.range(0.6, 1.2), rng.range(f0, f1), rng.range(0.0, std::f32::consts::TAU)))
                .collect();
            let ridge: Vec<f32> = (0..self.w)
                .map(|x| {
                    let u = x as f32 / w * std::f32::consts::TAU;
                    base - waves.iter().map(|&(a, f, p)| a * (u * f + p).sin()).sum::<f32>()
                })
                .collect();
            let c = self.layer_colour(pal, depth * 0.8);
            self.fill_below(&ridge, c, 1.0);
        }
    }

    fn waves(&mut self, pal: &Palette, rng: &mut Rng) {
        let (w, h) = (self.w as f32, self.h as f32);
        let water_top = h * rng.range(0.54, 0.6);
        let glint = rgb(pal.glow);
        for j in 0..5 {
            let depth = j as f32 / 4.0;
            let base = water_top + (h - water_top) * 0.22 * j as f32;
            let (amp, freq, phase) =
                (h * (0.004 + 0.006 * depth), rng.range(6.0, 12.0) * (1.0 + depth), rng.range(0.0, std::f32::consts::TAU));
            let ridge: Vec<f32> = (0..self.w)
                .map(|x| {
                    let u = x as f32 / w * std::f32::consts::TAU;
                    base - amp * ((u * freq + phase).sin() + 0.4 * (u * freq * 2.3 + phase * 1.7).sin())
                })
                .collect();
            // Water mirrors the sky near the horizon and darkens towards the viewer.
            let surface = mix_rgb(self.horizon, rgb(pal.far), 0.45);
            let c = mix_rgb(surface, rgb(pal.near), depth.powf(1.3) * 0.9);
            self.fill_below(&ridge, c, 1.0);
            // A thin highlight on each crest reads as light on water.
            for (x, &top) in ridge.iter().enumerate() {
                let y = top.round() as usize;
                if y < self.h {
                    self.blend(x, y, glint, 0.35 * (1.0 - depth * 0.5));
                }
            }
        }
    }

    fn skyline(&mut self, pal: &Palette, rng: &mut Rng) {
        let h = self.h as f32;
        let lights = rgb(pal.accent);
        for j in 0..2 {
            let depth = 0.5 + 0.5 * j as f32;
            let ground = h * (0.72 + 0.08 * j as f32);
            let mut ridge = vec![h; self.w];
            let mut x = 0usize;
            let mut buildings = Vec::new();
            while x < self.w {
                let bw = ((rng.range(0.03, 0.08) * self.w as f32) as usize).max(2);
                let top = ground - rng.range(0.08, 0.32 - 0.08 * j as f32) * h;
                let end = (x + bw).min(self.w);
                ridge[x..end].fill(top);
                buildings.push((x, end, top));
                // Either buildings touch or leave a real gap; 1-2 px slivers read as glitches.
                x = end + if rng.below(3) == 0 { (self.w / 80).max(2) } else { 0 };
            }
            let c = self.layer_colour(pal, depth);
            self.fill_below(&ridge, c, 1.0);
            let win = (h / 120.0).max(1.0) as usize;
            for (x0, x1, top) in buildings {
                let mut y = top as usize + win * 2;
                while y + win < (ground as usize).min(self.h) {
                    let mut x = x0 + win;
                    while x + win < x1 {
                        if rng.below(4) == 0 {
                            for yy in y..y + win {
                                for xx in x..x + win {
                                    self.blend(xx, yy, lights, 0.55 * depth);
                                }
                            }
                        }
                        x += win * 3;
                    }
                    y += win * 3;
                }
            }
        }
    }

    fn vignette(&mut self) {
        let (w, h) = (self.w as f32, self.h as f32);
        for y in 0..self.h {
            for x in 0..self.w {
                let (dx, dy) = (x as f32 / w - 0.5, y as f32 / h - 0.5);
                let f = 1.0 - 0.45 * (dx * dx + dy * dy) * 2.0;
                let p = &mut self.px[y * self.w + x];
                for c in p.iter_mut() {
                    *c *= f;
                }
            }
        }
    }

    fn into_image(self) -> RgbImage {
        // No dithering: it hid little banding but made every PNG 2.5x larger.
        let raw = self.px.iter().flat_map(|p| p.map(|c| (c * 255.0 + 0.5).clamp(0.0, 255.0) as u8)).collect();
        RgbImage::from_raw(self.w as u32, self.h as u32, raw).expect("buffer matches dimensions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::script::Beat;
    use crate::media::picture::{decode_png, read_art_rows};
    use crate::media::write_script;

    #[test]
    fn decodes_as_1280x720_and_is_deterministic() {
        let s = write_script("A lighthouse keeper who befriends a storm", 4, 9);
        let a = draw_storyboard(&s, 0, 1, 1280, 720).unwrap();
        let img = decode_png(&a).unwrap();
        assert_eq!((img.width(), img.height()), (1280, 720));
        assert_eq!(a, draw_storyboard(&s, 0, 1, 1280, 720).unwrap());
        let rows = read_art_rows(&a).unwrap();
        assert!(rows > 400 && rows < 720, "{rows}");
    }

    #[test]
    fn different_beats_and_seeds_differ() {
        let s = write_script("city of lanterns", 3, 2);
        let a = draw_storyboard(&s, 0, 1, 320, 180).unwrap();
        let b = draw_storyboard(&s, 1, 1, 320, 180).unwrap();
        let c = draw_storyboard(&s, 0, 2, 320, 180).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn long_caption_wraps_without_panic() {
        let narration = "An extraordinarily long caption that keeps going ".repeat(30) + &"unbreakableword".repeat(40);
        let s = Script {
            title: "t".into(),
            beats: vec![Beat { narration, visual: "whatever; sandstone palette".into(), duration_ms: 2000 }],
            narration: Default::default(),
        };
        let png = draw_storyboard(&s, 0, 0, 1280, 720).unwrap();
        assert_eq!(decode_png(&png).unwrap().dimensions(), (1280, 720));
        assert!(read_art_rows(&png).unwrap() > 360);
        // Tiny sizes must not panic either.
        draw_storyboard(&s, 0, 0, 16, 16).unwrap();
    }

    #[test]
    fn rejects_bad_index_and_size() {
        let s = write_script("x", 2, 0);
        assert!(matches!(draw_storyboard(&s, 2, 0, 1280, 720), Err(MediaError::InvalidInput(_))));
        assert!(matches!(draw_storyboard(&s, 0, 0, 0, 720), Err(MediaError::InvalidInput(_))));
    }
}
