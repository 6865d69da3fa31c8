//! Training-time image augmentation as Bain's split-CIFAR-100 code has it
//! (`datasets/splitCIFAR100.py`): torchvision's `RandomHorizontalFlip(0.5)`
//! then `RandomAffine(degrees, translate, scale)` on each training image,
//! drawn anew every epoch.
//!
//! [`Augment`] holds the parameters; its defaults are those of his last
//! change to the file, commit c391c50 (2022-05-11): rotation up to ±30°,
//! translation up to 0.2 of the width and height, scale 0.8-1.2. Every later
//! commit (the grid searches and the 5-seed runs of 2022-05-12 to 05-16)
//! trained with them; the rotation 30-70°, translation 0.1-0.3, scale
//! 0.5-0.75 of commits 0158da2 to 92d112b stood in the file for five hours
//! of the same day (16:37 to 21:28, off from 20:22 to 21:01), before any of
//! those runs.
//!
//! The transform replays torchvision's on PIL images: the angle (clockwise,
//! as `F.affine` takes it) and scale uniform in their ranges, the shifts
//! whole pixels (`round(U(-0.2 w, 0.2 w))`, ties to even as Python rounds),
//! about the centre (w/2, h/2), nearest-neighbour sampling at pixel centres
//! as PIL does it, and 0 (black, before normalization) where the source
//! falls outside. Draws come from a ChaCha8 stream per image, so the bytes
//! depend only on the seed; they cannot equal PyTorch's own random draws.
//! It works on normalized rows (nearest sampling only copies values), with
//! the fill given in normalized units, and never touches what follows the
//! image in a row (a task context).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Random flip and affine transform of training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Rotation range in degrees, clockwise (torchvision's `degrees=30` is `[-30, 30]`).
    pub degrees: [f64; 2],
    /// Largest shift as a fraction of the width and of the height.
    pub translate: [f64; 2],
    /// Scale range.
    pub scale: [f64; 2],
}

impl Default for Augment {
    /// Bain's parameters at commit c391c50.
    fn default() -> Self {
        Augment {
            flip: 0.5,
            degrees: [-30.0, 30.0],
            translate: [0.2, 0.2],
            scale: [0.8, 1.2],
        }
    }
}

/// Image layout of a row: channels, height, width (C×H×W values first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Channels.
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

impl Augment {
    /// Checks the ranges; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let range = |name: &str, [lo, hi]: [f64; 2]| {
            if lo.is_finite() && hi.is_finite() && lo <= hi {
                Ok(())
            } else {
                Err(format!(
                    "{name}: [low, high] with low ≤ high, got [{lo}, {hi}]"
                ))
            }
        };
        if !(0.0..=1.0).contains(&self.flip) {
            return Err(format!("flip: a probability in [0, 1], got {}", self.flip));
        }
        range("degrees", self.degrees)?;
        range("scale", self.scale)?;
        if self.scale[0] <= 0.0 {
            return Err(format!("scale: must be positive, got {:?}", self.scale));
        }
        if self.translate.iter().any(|t| !(0.0..=1.0).contains(t)) {
            return Err(format!(
                "translate: fractions in [0, 1], got {:?}",
                self.translate
            ));
        }
        Ok(())
    }

    /// Every row of `rows` (`stride` values each, the image first) with its
    /// image flipped and warped; `fill` holds one value per channel (or one
    /// for all) for pixels whose source is outside the image. Row i's draws
    /// come from stream i of `seed`.
    pub fn apply(
        &self,
        rows: &[f32],
        stride: usize,
        image: Geometry,
        fill: &[f32],
        seed: u64,
    ) -> Vec<f32> {
        let mut out = rows.to_vec();
        out.par_chunks_mut(stride)
            .zip(rows.par_chunks(stride))
            .enumerate()
            .for_each(|(i, (dst, src))| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(i as u64);
                self.draw(&mut rng, image).warp(src, dst, image, fill);
            });
        out
    }

    /// One image's transform, drawn in torchvision's order: flip, angle,
    /// shifts, scale.
    fn draw(&self, rng: &mut ChaCha8Rng, image: Geometry) -> Warp {
        let mut uniform = |[lo, hi]: [f64; 2]| lo + (hi - lo) * rng.gen::<f64>();
        let flip = uniform([0.0, 1.0]) < self.flip;
        let angle = uniform(self.degrees).to_radians();
        let shift = |fraction: f64, size: usize, u: f64| {
            let max = fraction * size as f64;
            (-max + 2.0 * max * u).round_ties_even()
        };
        let tx = shift(self.translate[0], image.width, uniform([0.0, 1.0]));
        let ty = shift(self.translate[1], image.height, uniform([0.0, 1.0]));
        let scale = uniform(self.scale);
        Warp {
            flip,
            cos: angle.cos() / scale,
            sin: angle.sin() / scale,
            tx,
            ty,
        }
    }
}

/// A drawn transform: PIL's inverse affine map (rotation over scale) and
/// the shifts.
struct Warp {
    flip: bool,
    cos: f64,
    sin: f64,
    tx: f64,
    ty: f64,
}

impl Warp {
    /// Writes the warped image of `src` into `dst` (the image part only).
    fn warp(&self, src: &[f32], dst: &mut [f32], g: Geometry, fill: &[f32]) {
        let (w, h) = (g.width, g.height);
        let plane = w * h;
        let (cx, cy) = (w as f64 * 0.5, h as f64 * 0.5);
        for y in 0..h {
            for x in 0..w {
                let dx = x as f64 + 0.5 - cx - self.tx;
                let dy = y as f64 + 0.5 - cy - self.ty;
                let xin = self.cos * dx + self.sin * dy + cx;
                let yin = -self.sin * dx + self.cos * dy + cy;
                let inside = (0.0..w as f64).contains(&xin) && (0.0..h as f64).contains(&yin);
                let source = inside.then(|| {
                    let col = xin as usize;
                    let col = if self.flip { w - 1 - col } else { col };
                    yin as usize * w + col
                });
                for c in 0..g.channels {
                    dst[c * plane + y * w + x] = match source {
                        Some(s) => src[c * plane + s],
                        None => fill[c.min(fill.len() - 1)],
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: Geometry = Geometry {
        channels: 2,
        height: 4,
        width: 4,
    };

    /// Two 2×4×4 images, each followed by a context of 3 values.
    fn rows() -> Vec<f32> {
        (0..2 * (32 + 3)).map(|v| v as f32).collect()
    }

    fn still() -> Augment {
        Augment {
            flip: 0.0,
            degrees: [0.0, 0.0],
            translate: [0.0, 0.0],
            scale: [1.0, 1.0],
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        let a = Augment::default();
        let x = rows();
        let once = a.apply(&x, 35, IMAGE, &[-1.0, -2.0], 7);
        let again = a.apply(&x, 35, IMAGE, &[-1.0, -2.0], 7);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&once), bits(&again));
        assert_ne!(bits(&once), bits(&a.apply(&x, 35, IMAGE, &[-1.0, -2.0], 8)));
        // The contexts after the images are untouched.
        for r in 0..2 {
            assert_eq!(once[r * 35 + 32..r * 35 + 35], x[r * 35 + 32..r * 35 + 35]);
        }
    }

    #[test]
    fn no_transform_is_the_identity_and_a_certain_flip_mirrors() {
        let x = rows();
        assert_eq!(still().apply(&x, 35, IMAGE, &[0.0], 1), x);
        let flip = Augment {
            flip: 1.0,
            ..still()
        };
        let out = flip.apply(&x, 35, IMAGE, &[0.0], 1);
        for c in 0..2 {
            for y in 0..4 {
                for col in 0..4 {
                    assert_eq!(out[c * 16 + y * 4 + col], x[c * 16 + y * 4 + 3 - col]);
                }
            }
        }
    }

    /// torchvision's `F.affine` turns clockwise: at 90° the output's top
    /// row is the input's left column read upwards. Half-size shrinks into a
    /// centred 2×2 with the fill around it.
    #[test]
    fn rotation_is_clockwise_and_scaling_fills_the_border() {
        let x = rows();
        let quarter = Augment {
            degrees: [90.0, 90.0],
            ..still()
        };
        let out = quarter.apply(&x, 35, IMAGE, &[0.0], 1);
        for y in 0..4 {
            for col in 0..4 {
                assert_eq!(out[y * 4 + col], x[(3 - col) * 4 + y], "({col}, {y})");
            }
        }
        let half = Augment {
            scale: [0.5, 0.5],
            ..still()
        };
        let out = half.apply(&x, 35, IMAGE, &[-9.0, -8.0], 1);
        let fills = out[..32]
            .iter()
            .filter(|&&v| v == -9.0 || v == -8.0)
            .count();
        assert_eq!(fills, 2 * 12, "a 2×2 centre is left of each 4×4 channel");
        assert_eq!(out[5], x[5], "output (1, 1) samples input (1, 1)");
        assert_eq!(out[6], x[7], "output (2, 1) samples input (3, 1)");
        assert_eq!(out[16], -8.0, "the second channel's own fill");
    }

    #[test]
    fn bad_ranges_are_named() {
        let flip = Augment {
            flip: 2.0,
            ..still()
        };
        assert!(flip.validate().unwrap_err().starts_with("flip"));
        let scale = Augment {
            scale: [1.2, 0.8],
            ..still()
        };
        assert!(scale.validate().unwrap_err().starts_with("scale"));
        assert!(Augment::default().validate().is_ok());
    }
}
