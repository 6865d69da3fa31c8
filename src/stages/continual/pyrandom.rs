//! CPython 3's `random.Random`, as far as `Random(seed).shuffle(list)` needs
//! it, so that a split can replay the class order of Bain's
//! `datasets/splitCIFAR100.py` for any seed.
//!
//! [`PyRandom`] is the Mersenne Twister MT19937 seeded as `random.seed(n)`
//! seeds it for an integer n (`init_by_array` over the 32-bit words of |n|,
//! least significant first; `[0]` for 0), with `getrandbits`, `_randbelow`
//! (rejection sampling with `getrandbits(n.bit_length())`) and `shuffle`
//! (Fisher-Yates from the end, `j = _randbelow(i + 1)`). Tested against
//! CPython 3.11.7; Bain's `environment.yml` names Python 3.8, whose seeding,
//! `_randbelow` and `shuffle` are the same code. Nothing else of Python's
//! module (floats, other seed types).

const N: usize = 624;
const M: usize = 397;

/// The state of one `random.Random(seed)`.
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> PyRandom {
        let key: Vec<u32> = match seed {
            0 => vec![0],
            s if s >> 32 == 0 => vec![s as u32],
            s => vec![s as u32, (s >> 32) as u32],
        };
        let mut r = PyRandom::init_genrand(19_650_218);
        let mt = &mut r.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    /// MT19937's `init_genrand(s)`.
    fn init_genrand(s: u32) -> PyRandom {
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        PyRandom { mt, index: N }
    }

    /// The next tempered 32-bit output (`genrand_uint32`).
    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for i in 0..N {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[i] = self.mt[(i + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for 1 ≤ k ≤ 64: 32-bit words, least significant
    /// first, the last one cut to the bits left.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!((1..=64).contains(&k), "getrandbits({k}): 1 to 64 bits");
        let mut out = 0u64;
        let (mut left, mut shift) = (k, 0);
        while left > 0 {
            let word = u64::from(self.next_u32() >> 32u32.saturating_sub(left));
            out |= word << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        out
    }

    /// `_randbelow(n)` for n ≥ 1: a uniform integer in [0, n).
    pub fn randbelow(&mut self, n: u64) -> u64 {
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `shuffle(x)`: in place, as Python shuffles a list.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shuffled(seed: u64, n: u8) -> Vec<u8> {
        let mut v: Vec<u8> = (0..n).collect();
        PyRandom::new(seed).shuffle(&mut v);
        v
    }

    /// Orders from CPython 3.11.7 on this machine:
    /// `l = list(range(n)); random.Random(seed).shuffle(l); print(l)`.
    #[test]
    fn shuffle_matches_cpython_for_small_and_large_seeds() {
        let cases: [(u64, [u8; 10], [u8; 100]); 6] = [
            (
                0,
                [7, 8, 1, 5, 3, 4, 2, 0, 9, 6],
                [
                    23, 8, 11, 7, 48, 13, 1, 91, 94, 54, 16, 63, 52, 41, 80, 2, 47, 87, 78, 66, 19,
                    6, 24, 10, 59, 30, 22, 29, 83, 37, 93, 81, 43, 99, 86, 28, 34, 88, 44, 14, 84,
                    70, 4, 20, 15, 21, 31, 76, 57, 67, 73, 50, 69, 25, 98, 46, 96, 0, 72, 35, 58,
                    92, 3, 95, 56, 90, 26, 40, 55, 89, 75, 71, 60, 42, 9, 82, 39, 18, 77, 68, 32,
                    79, 12, 85, 36, 17, 64, 27, 74, 45, 61, 38, 51, 62, 65, 33, 5, 53, 97, 49,
                ],
            ),
            (
                1,
                [6, 8, 9, 7, 5, 3, 0, 4, 1, 2],
                [
                    53, 37, 65, 51, 4, 20, 38, 9, 10, 81, 44, 36, 84, 50, 96, 90, 66, 16, 80, 33,
                    24, 52, 91, 99, 64, 5, 58, 76, 39, 79, 23, 94, 30, 73, 25, 47, 31, 45, 19, 87,
                    42, 68, 95, 21, 7, 67, 46, 82, 11, 6, 41, 86, 88, 70, 18, 78, 71, 59, 43, 61,
                    22, 14, 35, 93, 56, 28, 98, 54, 27, 89, 1, 69, 74, 2, 85, 40, 13, 75, 29, 34,
                    92, 0, 77, 55, 49, 3, 62, 12, 26, 48, 83, 60, 57, 63, 15, 32, 8, 97, 72, 17,
                ],
            ),
            (
                2,
                [5, 9, 3, 4, 6, 7, 2, 8, 1, 0],
                [
                    0, 76, 61, 63, 1, 71, 2, 6, 16, 19, 13, 24, 49, 12, 75, 9, 83, 72, 5, 41, 99,
                    45, 89, 53, 79, 18, 52, 92, 14, 42, 68, 44, 38, 84, 36, 17, 31, 15, 70, 88, 25,
                    97, 51, 73, 66, 37, 78, 33, 80, 26, 82, 28, 60, 35, 43, 57, 23, 58, 91, 8, 62,
                    93, 98, 86, 29, 30, 22, 95, 67, 54, 48, 40, 59, 96, 3, 87, 34, 64, 56, 69, 47,
                    65, 50, 81, 55, 20, 74, 4, 90, 27, 77, 32, 39, 85, 94, 21, 46, 10, 11, 7,
                ],
            ),
            (
                3,
                [1, 5, 6, 0, 9, 4, 7, 2, 8, 3],
                [
                    35, 41, 45, 4, 76, 12, 0, 64, 42, 11, 81, 39, 7, 48, 78, 15, 53, 62, 9, 52, 68,
                    55, 63, 65, 61, 67, 95, 18, 58, 86, 99, 92, 10, 17, 72, 21, 14, 44, 37, 91, 22,
                    59, 83, 32, 26, 98, 40, 27, 43, 96, 13, 31, 57, 2, 6, 23, 56, 71, 28, 36, 51,
                    46, 25, 54, 73, 79, 34, 3, 38, 5, 20, 90, 88, 49, 66, 89, 84, 19, 50, 82, 85,
                    97, 87, 24, 29, 70, 33, 93, 1, 94, 8, 74, 80, 60, 77, 47, 16, 69, 75, 30,
                ],
            ),
            (
                4,
                [8, 2, 0, 7, 6, 9, 5, 1, 4, 3],
                [
                    73, 86, 82, 23, 1, 42, 57, 40, 76, 69, 25, 94, 9, 41, 88, 83, 74, 91, 67, 95,
                    79, 75, 6, 72, 4, 71, 63, 62, 20, 65, 89, 60, 29, 56, 59, 90, 16, 84, 14, 10,
                    85, 44, 58, 98, 77, 26, 12, 32, 48, 54, 45, 36, 18, 0, 93, 53, 81, 55, 52, 5,
                    17, 99, 15, 80, 31, 64, 49, 43, 96, 47, 87, 39, 21, 24, 34, 78, 3, 27, 33, 97,
                    22, 35, 46, 68, 66, 28, 7, 37, 70, 51, 2, 8, 11, 19, 61, 50, 92, 13, 38, 30,
                ],
            ),
            (
                (1 << 40) + 3,
                [8, 5, 6, 7, 9, 2, 4, 1, 0, 3],
                [
                    84, 36, 40, 66, 45, 14, 55, 94, 78, 37, 77, 56, 57, 22, 6, 50, 53, 23, 79, 64,
                    80, 97, 43, 16, 44, 82, 81, 20, 25, 67, 17, 98, 27, 68, 59, 21, 18, 51, 61, 52,
                    35, 62, 2, 30, 24, 91, 99, 95, 5, 9, 0, 49, 11, 34, 41, 76, 73, 1, 65, 19, 10,
                    48, 74, 92, 83, 31, 26, 86, 13, 46, 3, 8, 63, 15, 58, 88, 4, 96, 47, 69, 87,
                    90, 32, 39, 75, 85, 33, 42, 93, 71, 60, 29, 54, 89, 38, 72, 12, 70, 7, 28,
                ],
            ),
        ];
        for (seed, ten, hundred) in cases {
            assert_eq!(shuffled(seed, 10), ten, "seed {seed}, 10 items");
            assert_eq!(shuffled(seed, 100), hundred, "seed {seed}, 100 items");
        }
    }

    /// `random.Random(0).getrandbits(k)` in CPython 3.11.7, for words of
    /// one, two and part of a word.
    #[test]
    fn getrandbits_matches_cpython() {
        let mut r = PyRandom::new(0);
        assert_eq!(r.getrandbits(32), GETRANDBITS_0[0]);
        assert_eq!(r.getrandbits(5), GETRANDBITS_0[1]);
        assert_eq!(r.getrandbits(64), GETRANDBITS_0[2]);
        assert_eq!(r.getrandbits(40), GETRANDBITS_0[3]);
        // A seed of two 32-bit words.
        let mut r = PyRandom::new((1 << 40) + 3);
        assert_eq!(r.getrandbits(64), 1_122_159_575_387_338_702);
    }

    const GETRANDBITS_0: [u64; 4] = [
        3_626_764_237,
        12,
        16_422_101_724_900_707_500,
        44_756_014_165,
    ];
}
