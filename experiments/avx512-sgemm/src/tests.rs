use super::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 { self.0 ^= self.0 << 13; self.0 ^= self.0 >> 7; self.0 ^= self.0 << 17; self.0 }
    fn f(&mut self) -> f32 { ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 }
    fn r(&mut self, lo: usize, hi: usize) -> usize { lo + (self.next() as usize) % (hi - lo + 1) }
}

#[allow(clippy::too_many_arguments)]
fn check(m: usize, n: usize, k: usize, bl: BLayout, accumulate: bool, pad: usize, threads: usize, rng: &mut Rng) -> Vec<f32> {
    let lda = k + pad;
    let ldc = n + pad;
    let ldb = match bl { BLayout::RowMajor => n + pad, BLayout::Transposed => k + pad };
    let a: Vec<f32> = (0..m * lda).map(|_| rng.f()).collect();
    let bn = match bl { BLayout::RowMajor => k * ldb, BLayout::Transposed => n * ldb };
    let b: Vec<f32> = (0..bn.max(1)).map(|_| rng.f()).collect();
    let c0: Vec<f32> = (0..m * ldc).map(|_| rng.f()).collect();
    let mut c = c0.clone();
    sgemm(m, n, k, &a, lda, &b, ldb, bl, &mut c, ldc, accumulate, threads);
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            let mut sa = 0f64;
            for p in 0..k {
                let bv = match bl { BLayout::RowMajor => b[p * ldb + j], BLayout::Transposed => b[j * ldb + p] } as f64;
                s += a[i * lda + p] as f64 * bv;
                sa += (a[i * lda + p] as f64 * bv).abs();
            }
            if accumulate { s += c0[i * ldc + j] as f64; sa += (c0[i * ldc + j] as f64).abs(); }
            let got = c[i * ldc + j] as f64;
            let tol = 1e-5 * sa + 1e-6 * (k as f64).sqrt() * sa + 1e-30;
            assert!((got - s).abs() <= tol.max(1e-6),
                "m{m} n{n} k{k} {bl:?} acc={accumulate} pad={pad} at ({i},{j}): got {got} want {s} tol {tol}");
        }
        // padding columns of C must be untouched
        for j in n..ldc { assert_eq!(c[i * ldc + j].to_bits(), c0[i * ldc + j].to_bits(), "padding clobbered"); }
    }
    c
}

#[test]
fn fixed_shapes() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let shapes = [
        (1, 1, 1), (1, 1, 7), (1, 17, 1), (13, 1, 1), (12, 32, 256), (11, 31, 255), (13, 33, 257),
        (12, 16, 5), (5, 15, 300), (25, 65, 513), (145, 47, 300), (300, 60, 784), (300, 784, 60),
        (784, 60, 300), (10, 128, 100), (100, 128, 300), (2, 3000, 3), (3000, 2, 17), (1, 2100, 40),
        (150, 2081, 20), (37, 1, 600), (1, 37, 600),
    ];
    for &(m, n, k) in &shapes {
        for bl in [BLayout::RowMajor, BLayout::Transposed] {
            for acc in [false, true] {
                for pad in [0, 3] {
                    check(m, n, k, bl, acc, pad, 2, &mut rng);
                }
            }
        }
    }
}

#[test]
fn random_shapes() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..150 {
        let m = rng.r(1, 140);
        let n = rng.r(1, 140);
        let k = rng.r(1, 600);
        let bl = if rng.next() & 1 == 0 { BLayout::RowMajor } else { BLayout::Transposed };
        let acc = rng.next() & 1 == 0;
        let pad = rng.r(0, 5);
        check(m, n, k, bl, acc, pad, 2, &mut rng);
    }
}

#[test]
fn k_zero() {
    let a = vec![0f32; 0];
    let b = vec![0f32; 0];
    let mut c = vec![5f32; 6];
    sgemm(2, 3, 0, &a, 0, &b, 3, BLayout::RowMajor, &mut c, 3, true, 2);
    assert!(c.iter().all(|&x| x == 5.0));
    sgemm(2, 3, 0, &a, 0, &b, 3, BLayout::RowMajor, &mut c, 3, false, 2);
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
fn deterministic_across_threads_and_fallback() {
    // bit-identical results for 1, 2, 3, 4 threads, and the scalar fallback (same order)
    for &(m, n, k) in &[(300usize, 784usize, 600usize), (50, 1000, 300), (1000, 40, 513)] {
        for bl in [BLayout::RowMajor, BLayout::Transposed] {
            for acc in [false, true] {
                let mut rng = Rng(42);
                let ldb = if bl == BLayout::RowMajor { n } else { k };
                let a: Vec<f32> = (0..m * k).map(|_| rng.f()).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.f()).collect();
                let c0: Vec<f32> = (0..m * n).map(|_| rng.f()).collect();
                let mut r1 = c0.clone();
                sgemm(m, n, k, &a, k, &b, ldb, bl, &mut r1, n, acc, 1);
                for t in [2, 3, 4] {
                    let mut r = c0.clone();
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
                    pool.install(|| sgemm(m, n, k, &a, k, &b, ldb, bl, &mut r, n, acc, t));
                    assert!(r.iter().zip(&r1).all(|(x, y)| x.to_bits() == y.to_bits()), "threads {t} differs");
                }
                let mut rf = c0.clone();
                sgemm_fallback(m, n, k, &a, k, &b, ldb, bl, &mut rf, n, acc);
                assert!(rf.iter().zip(&r1).all(|(x, y)| x.to_bits() == y.to_bits()), "fallback differs");
            }
        }
    }
}
