//! Test-range NHS numbers: a seed-keyed bijection from person index to the
//! valid numbers between 999 000 0000 and 999 999 9999.
//!
//! The range has 1,000,000 nine-digit stems (999000000–999999999); a stem
//! whose Modulus 11 check digit would be 10 cannot be issued, which leaves
//! [`CAPACITY`] valid numbers. Person `i` gets the valid number of rank
//! `(a·i + b) mod CAPACITY`, with `a` (coprime to the capacity) and `b` drawn
//! from the seed: unique within a run, and different seeds give different
//! numbers. People beyond the capacity get no NHS number (see the crate
//! documentation).

use crate::rng::Rng;

/// How many valid NHS numbers the test range holds.
pub const CAPACITY: u64 = 909_091;

/// Stems are grouped by their first eight digits: 99900000–99999999.
const GROUPS: usize = 100_000;
const FIRST_GROUP: u64 = 99_900_000;

/// The seed's numbering of the test range.
pub struct NhsNumbers {
    /// `start[g]`: the rank of group `g`'s first valid stem; `start[GROUPS]`
    /// is the number of valid stems.
    start: Vec<u32>,
    a: u64,
    b: u64,
}

/// The weighted sum (weights 10, 9, …) of the leading digits of `n`, which
/// has `len` digits.
fn weighted_sum(n: u64, len: u32) -> u64 {
    let mut sum = 0;
    let mut rest = n;
    // The last digit of `n` has weight 11 - len, the first weight 10.
    for position in (0..len).rev() {
        sum += (rest % 10) * u64::from(10 - position);
        rest /= 10;
    }
    sum
}

/// The last digit (0–9) that makes a group's stem invalid, if any.
fn invalid_last_digit(group: u64) -> Option<u64> {
    let s8 = weighted_sum(group, 8) % 11;
    // The ninth digit has weight 2; the check is 10 when the sum ≡ 1 (mod 11).
    // 2·6 ≡ 1, so d ≡ 6·(1 − s8).
    let d = (6 * ((1 + 11 - s8) % 11)) % 11;
    (d <= 9).then_some(d)
}

/// The check digit of a nine-digit stem (`None` when it would be 10).
pub fn check_digit(stem: u64) -> Option<u64> {
    match 11 - weighted_sum(stem, 9) % 11 {
        11 => Some(0),
        10 => None,
        d => Some(d),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl NhsNumbers {
    pub fn new(seed: u64) -> NhsNumbers {
        let mut start = Vec::with_capacity(GROUPS + 1);
        let mut total = 0u32;
        for g in 0..GROUPS as u64 {
            start.push(total);
            total += if invalid_last_digit(FIRST_GROUP + g).is_some() {
                9
            } else {
                10
            };
        }
        start.push(total);
        let mut rng = Rng::stream(seed, crate::domain::NHS_NUMBERS, 0);
        let mut a = 1 + rng.below(CAPACITY - 1);
        while gcd(a, CAPACITY) != 1 {
            a += 1;
        }
        let b = rng.below(CAPACITY);
        NhsNumbers { start, a, b }
    }

    /// The NHS number of person `index`, or `None` beyond the capacity.
    pub fn number(&self, index: u64) -> Option<String> {
        if index >= CAPACITY {
            return None;
        }
        let rank = ((u128::from(self.a) * u128::from(index) + u128::from(self.b))
            % u128::from(CAPACITY)) as u32;
        // The last group whose start is <= rank.
        let g = self.start.partition_point(|s| *s <= rank).checked_sub(1)?;
        let offset = u64::from(rank - *self.start.get(g)?);
        let group = FIRST_GROUP + g as u64;
        let last = match invalid_last_digit(group) {
            Some(bad) if offset >= bad => offset + 1,
            _ => offset,
        };
        let stem = group * 10 + last;
        let check = check_digit(stem)?;
        Some(format!("{}", stem * 10 + check))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_the_count_of_valid_stems() {
        let valid = (999_000_000u64..=999_999_999)
            .filter(|s| check_digit(*s).is_some())
            .count() as u64;
        assert_eq!(valid, CAPACITY);
        assert_eq!(
            u64::from(*NhsNumbers::new(0).start.last().unwrap()),
            CAPACITY
        );
    }

    #[test]
    fn check_digits_match_known_numbers() {
        assert_eq!(check_digit(999_000_001), Some(8));
        assert_eq!(check_digit(943_476_591), Some(9));
    }

    #[test]
    fn every_rank_maps_to_a_distinct_valid_number() {
        let n = NhsNumbers::new(42);
        let mut seen = std::collections::HashSet::new();
        for i in 0..CAPACITY {
            let s = n.number(i).unwrap();
            assert!(s.starts_with("999"), "{s}");
            assert!(seen.insert(s));
        }
        assert!(n.number(CAPACITY).is_none());
        assert_ne!(NhsNumbers::new(1).number(0), NhsNumbers::new(2).number(0));
    }
}
