//! The generator's only source of randomness: a seeded xoshiro256** stream.
//!
//! Every stream is derived from `(seed, domain, index)` through SplitMix64,
//! so person `i`'s data depends on the seed and `i` alone: any range of people
//! can be generated on its own, in any order, on any number of threads, and
//! comes out the same.

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna, 2018), seeded by SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The stream for `(seed, domain, index)`. `domain` separates the
    /// independent streams of one person (demographics, clinical, …) and the
    /// organisations', so that a change to one part of the generator leaves
    /// the others' numbers as they were.
    pub fn stream(seed: u64, domain: u64, index: u64) -> Rng {
        let mut x = mix64(seed ^ 0x5eed_5eed_5eed_5eed)
            ^ mix64(domain.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            ^ mix64(index.wrapping_add(0x1234_5678_9abc_def1));
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(x)
        };
        let mut s = [next(), next(), next(), next()];
        if s == [0; 4] {
            s = [1, 2, 3, 4];
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (0 when `n` is 0), by Lemire's
    /// multiply-shift (the bias is below 2^-32 for the ranges used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + self.below(span) as i64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a slice, uniformly; `None` only for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }

    /// One of a list of strings (the empty string for an empty list).
    pub fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        self.pick(items).copied().unwrap_or("")
    }

    /// The index of an item chosen with probability proportional to its weight.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// A Poisson-distributed count with mean `mean` (Knuth's method; the
    /// means used here are small).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        let limit = (-mean).exp();
        let mut k = 0u32;
        let mut p = self.unit();
        while p > limit && k < 1000 {
            k += 1;
            p *= self.unit();
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(1, 2, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::stream(1, 2, 3);
        let mut y = Rng::stream(1, 2, 4);
        let mut z = Rng::stream(2, 2, 3);
        let (x1, y1, z1) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert_ne!(x1, y1);
        assert_ne!(x1, z1);
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut r = Rng::stream(7, 0, 0);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let v = r.below(10) as usize;
            counts[v] += 1;
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn poisson_mean() {
        let mut r = Rng::stream(9, 0, 0);
        let n = 50_000;
        let total: u64 = (0..n).map(|_| u64::from(r.poisson(3.0))).sum();
        let mean = total as f64 / n as f64;
        assert!((mean - 3.0).abs() < 0.05, "{mean}");
    }
}
