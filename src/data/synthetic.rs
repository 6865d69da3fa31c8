//! `synthetic`: a seeded, learnable 28×28 grayscale 10-class dataset for fast tests.
//!
//! Each class has a fixed prototype (three soft blobs on a 3×3 grid, a
//! different triple per class, the same for every seed); an example is its class's prototype,
//! shifted by up to 2 pixels, scaled in brightness and covered in uniform
//! noise. A small MLP separates the classes easily. Everything is integer
//! arithmetic driven by ChaCha8, so the bytes are identical on every machine
//! for a given seed and size. Train and test examples come from separate
//! random streams, so changing one size leaves the other split unchanged.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::dataset::{Dataset, Split};

/// Image side in pixels.
pub const SIDE: usize = 28;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Largest shift, in pixels, in each direction.
const MAX_SHIFT: i32 = 2;
/// Largest absolute noise added to a pixel.
const NOISE: i32 = 40;
/// Squared radius of a prototype blob, in pixels².
const BLOB_RADIUS2: i64 = 10;

/// The ten class prototypes, 28×28 each (fixed: they do not depend on the seed).
///
/// Each class lights three of the nine cells of a 3×3 grid with a soft blob.
/// The ten cell triples are lines of the affine plane over Z/3 (3 rows, 3
/// columns, 3 wrapping diagonals, 1 anti-diagonal), so any two classes share
/// at most one blob and differ in at least four.
fn prototypes() -> Vec<[u8; SIDE * SIDE]> {
    (0..CLASSES as i64)
        .map(|k| {
            let cells: Vec<(i64, i64)> = (0..3)
                .map(|r| match k {
                    0..=2 => (k, r),
                    3..=5 => (r, k - 3),
                    6..=8 => (r, (r + k - 6) % 3),
                    _ => (r, (2 * r) % 3),
                })
                .collect();
            std::array::from_fn(|p| {
                let (y, x) = ((p / SIDE) as i64, (p % SIDE) as i64);
                // A soft blob 1/(1 + d²/r²)², in integers: 255·r⁴/(r² + d²)².
                let r2 = BLOB_RADIUS2;
                let v: i64 = cells
                    .iter()
                    .map(|&(cy, cx)| {
                        let d2 = (y - (6 + 8 * cy)).pow(2) + (x - (6 + 8 * cx)).pow(2);
                        255 * r2 * r2 / ((r2 + d2) * (r2 + d2))
                    })
                    .sum();
                v.min(255) as u8
            })
        })
        .collect()
}

/// Draws `n` examples from `rng`.
fn draw(rng: &mut ChaCha8Rng, protos: &[[u8; SIDE * SIDE]], n: usize) -> Split {
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let label = rng.gen_range(0..CLASSES);
        let (dy, dx) = (
            rng.gen_range(-MAX_SHIFT..=MAX_SHIFT),
            rng.gen_range(-MAX_SHIFT..=MAX_SHIFT),
        );
        let gain = rng.gen_range(180..=255i32);
        let proto = &protos[label];
        for y in 0..SIDE as i32 {
            for x in 0..SIDE as i32 {
                let (sy, sx) = (y - dy, x - dx);
                let base = if (0..SIDE as i32).contains(&sy) && (0..SIDE as i32).contains(&sx) {
                    i32::from(proto[sy as usize * SIDE + sx as usize]) * gain / 255
                } else {
                    0
                };
                let v = base + rng.gen_range(-NOISE..=NOISE);
                images.push(v.clamp(0, 255) as u8);
            }
        }
        labels.push(label as u8);
    }
    Split { images, labels }
}

/// Generates the synthetic dataset with `train` and `test` examples.
/// Mean and std are measured on the generated training images.
pub fn generate(seed: u64, train: usize, test: usize) -> Dataset {
    let protos = prototypes();
    let stream = |s: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(s);
        rng
    };
    let train = draw(&mut stream(0), &protos, train);
    let test = draw(&mut stream(1), &protos, test);
    let (mean, std) = if train.images.is_empty() {
        (0.0, 1.0)
    } else {
        let n = train.images.len() as f64;
        let (sum, sq) = train.images.iter().fold((0.0f64, 0.0f64), |(s, q), &b| {
            let x = f64::from(b) / 255.0;
            (s + x, q + x * x)
        });
        let mean = sum / n;
        (mean, (sq / n - mean * mean).max(1e-12).sqrt())
    };
    Dataset {
        name: "synthetic".into(),
        channels: 1,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
        mean: vec![mean as f32],
        std: vec![std as f32],
        train,
        validation: None,
        test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_seed_and_streams_are_independent() {
        let a = generate(7, 200, 50);
        assert_eq!(a, generate(7, 200, 50));
        assert_ne!(a.train, generate(8, 200, 50).train);
        // More training examples leave the test split and the first examples unchanged.
        let b = generate(7, 300, 50);
        assert_eq!(a.test, b.test);
        assert_eq!(a.train.labels[..], b.train.labels[..200]);
        assert_eq!(a.train.images.len(), 200 * 784);
        assert!(a.train.labels.iter().all(|&l| l < 10));
        assert!(a.std[0] > 0.05 && a.mean[0] > 0.0 && a.mean[0] < 1.0);
    }

    /// Learnability proxy: a nearest-class-mean classifier fitted on train
    /// scores well above 90% on test, so a small MLP will too.
    #[test]
    fn nearest_class_mean_separates_the_classes() {
        let ds = generate(0, 2000, 500);
        let mut sums = vec![[0f64; 784]; CLASSES];
        let mut counts = [0usize; CLASSES];
        for (img, &l) in ds.train.images.chunks(784).zip(&ds.train.labels) {
            counts[usize::from(l)] += 1;
            for (s, &p) in sums[usize::from(l)].iter_mut().zip(img) {
                *s += f64::from(p);
            }
        }
        let correct = ds
            .test
            .images
            .chunks(784)
            .zip(&ds.test.labels)
            .filter(|&(img, &l)| {
                let dist = |k: usize| -> f64 {
                    sums[k]
                        .iter()
                        .zip(img.iter())
                        .map(|(s, &p)| (s / counts[k].max(1) as f64 - f64::from(p)).powi(2))
                        .sum()
                };
                (0..CLASSES).min_by(|&a, &b| dist(a).total_cmp(&dist(b))) == Some(usize::from(l))
            })
            .count();
        let acc = correct as f64 / ds.test.len() as f64;
        assert!(acc > 0.9, "nearest-mean accuracy {acc}");
    }
}
