//! Exact fixed-point decimal arithmetic for FHIRPath `Decimal` values.
//!
//! A [`Decimal`] is `mantissa / 10^scale`. The scale is also the number of
//! significant fractional digits the value was written with (`1.50` has scale
//! 2), which FHIRPath needs for equivalence, `precision()` and the boundary
//! functions, so arithmetic never silently drops trailing zeros.
//!
//! Invariants: `scale <= MAX_SCALE`; every operation that could overflow the
//! `i128` mantissa is checked and returns `None` instead (FHIRPath maps
//! arithmetic overflow to an empty result).

use std::cmp::Ordering;
use std::fmt;

/// Largest number of fractional digits kept.
pub const MAX_SCALE: u32 = 28;

/// Fractional digits produced by division (and by conversions from binary
/// floating point) when the operands do not already carry more.
const DIVISION_SCALE: u32 = 16;

/// An exact decimal number with a significant-digit count.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Decimal {
    /// Zero with scale 0.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };
    /// One with scale 0.
    pub const ONE: Decimal = Decimal {
        mantissa: 1,
        scale: 0,
    };

    /// Builds `mantissa / 10^scale`; `None` if `scale` exceeds 28.
    pub fn new(mantissa: i128, scale: u32) -> Option<Decimal> {
        (scale <= MAX_SCALE).then_some(Decimal { mantissa, scale })
    }

    /// The integer `value` with scale 0.
    pub fn from_i64(value: i64) -> Decimal {
        Decimal {
            mantissa: i128::from(value),
            scale: 0,
        }
    }

    /// Number of fractional digits.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The unscaled integer value.
    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// True when the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// True when the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]`. Returns `None` for any
    /// other text or when the value cannot be represented.
    pub fn parse(text: &str) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        match bytes.first() {
            Some(b'-') => {
                negative = true;
                pos = 1;
            }
            Some(b'+') => pos = 1,
            _ => {}
        }
        let mut mantissa: i128 = 0;
        let mut int_digits = 0usize;
        let mut scale: i64 = 0;
        while let Some(&b) = bytes.get(pos) {
            if !b.is_ascii_digit() {
                break;
            }
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
            int_digits += 1;
            pos += 1;
        }
        if int_digits == 0 {
            return None;
        }
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            let mut frac_digits = 0;
            while let Some(&b) = bytes.get(pos) {
                if !b.is_ascii_digit() {
                    break;
                }
                mantissa = mantissa
                    .checked_mul(10)?
                    .checked_add(i128::from(b - b'0'))?;
                scale += 1;
                frac_digits += 1;
                pos += 1;
            }
            if frac_digits == 0 {
                return None;
            }
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            let exp_text = text.get(pos..)?;
            let exp: i64 = exp_text.parse().ok()?;
            if exp_text.is_empty() || exp.abs() > 60 {
                return None;
            }
            scale -= exp;
            pos = bytes.len();
        }
        if pos != bytes.len() {
            return None;
        }
        if scale < 0 {
            mantissa = mantissa.checked_mul(pow10(u32::try_from(-scale).ok()?)?)?;
            scale = 0;
        }
        let mut scale = u32::try_from(scale).ok()?;
        while scale > MAX_SCALE {
            mantissa /= 10;
            scale -= 1;
        }
        if negative {
            mantissa = -mantissa;
        }
        Some(Decimal { mantissa, scale })
    }

    /// Converts a binary float using its shortest round-trip representation,
    /// rounded to 16 significant digits (dropping binary noise such as the
    /// `4` of `0.30000000000000004`) and at most 16
    /// fractional digits, trailing zeros removed. `None` for NaN, infinities
    /// and out-of-range values.
    pub fn from_f64(value: f64) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        let parsed = Decimal::parse(&format!("{value}"))?;
        // Round away binary noise such as 0.30000000000000004.
        let significant = if value == 0.0 {
            0
        } else {
            value.abs().log10().floor() as i64 + 1
        };
        let keep = (16 - significant).clamp(0, i64::from(DIVISION_SCALE));
        let rounded = parsed.round(u32::try_from(keep).ok()?)?;
        Some(rounded.normalized())
    }

    /// Lossy conversion to `f64` (for the transcendental math functions).
    pub fn to_f64(&self) -> f64 {
        // The text form is exact, so parsing it gives the nearest f64.
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// The value as an integer if it has no fractional part.
    pub fn to_i64_exact(&self) -> Option<i64> {
        let divisor = pow10(self.scale)?;
        if self.mantissa % divisor != 0 {
            return None;
        }
        i64::try_from(self.mantissa / divisor).ok()
    }

    /// Re-expresses the value with exactly `scale` fractional digits when
    /// that can be done without losing digits.
    fn rescale_up(&self, scale: u32) -> Option<Decimal> {
        if scale < self.scale || scale > MAX_SCALE {
            return None;
        }
        let mantissa = self.mantissa.checked_mul(pow10(scale - self.scale)?)?;
        Some(Decimal { mantissa, scale })
    }

    /// Both operands at their common (larger) scale.
    fn aligned(&self, other: &Decimal) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let a = self.rescale_up(scale)?;
        let b = other.rescale_up(scale)?;
        Some((a.mantissa, b.mantissa, scale))
    }

    /// Removes trailing fractional zeros (`2.500` becomes `2.5`).
    pub fn normalized(&self) -> Decimal {
        let mut d = *self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Checked addition; the result has the larger scale of the operands.
    pub fn checked_add(&self, other: &Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    /// Checked subtraction.
    pub fn checked_sub(&self, other: &Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            mantissa: a.checked_sub(b)?,
            scale,
        })
    }

    /// Checked multiplication; scales add up (then capped by rounding).
    pub fn checked_mul(&self, other: &Decimal) -> Option<Decimal> {
        let mantissa = self.mantissa.checked_mul(other.mantissa)?;
        let d = Decimal {
            mantissa,
            scale: self.scale + other.scale,
        };
        if d.scale > MAX_SCALE {
            d.round_unchecked(MAX_SCALE)
        } else {
            Some(d)
        }
    }

    /// Checked division; `None` when dividing by zero. The quotient carries
    /// enough digits for FHIRPath's "at least 8 digits" precision and is
    /// normalised (no trailing zeros).
    pub fn checked_div(&self, other: &Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        let mut target = DIVISION_SCALE
            .max(self.scale)
            .max(other.scale)
            .min(MAX_SCALE);
        loop {
            // q = (a / 10^sa) / (b / 10^sb) = a * 10^(sb + target) / (b * 10^sa) / 10^target
            let numerator = pow10(other.scale + target).and_then(|p| self.mantissa.checked_mul(p));
            let denominator = pow10(self.scale).and_then(|p| other.mantissa.checked_mul(p));
            if let (Some(n), Some(d)) = (numerator, denominator) {
                let q = div_round_half_away(n, d)?;
                return Some(
                    Decimal {
                        mantissa: q,
                        scale: target,
                    }
                    .normalized(),
                );
            }
            if target == 0 {
                return None;
            }
            target -= 1;
        }
    }

    /// Truncated division (`div`): the integer part of the quotient.
    pub fn div_trunc(&self, other: &Decimal) -> Option<i128> {
        let (a, b, _) = self.aligned(other)?;
        a.checked_div(b)
    }

    /// Remainder of truncated division (`mod`), with the sign of the dividend.
    pub fn checked_rem(&self, other: &Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            mantissa: a.checked_rem(b)?,
            scale,
        })
    }

    /// Negation.
    pub fn neg(&self) -> Decimal {
        Decimal {
            mantissa: -self.mantissa,
            scale: self.scale,
        }
    }

    /// Absolute value.
    pub fn abs(&self) -> Decimal {
        Decimal {
            mantissa: self.mantissa.abs(),
            scale: self.scale,
        }
    }

    fn round_unchecked(&self, places: u32) -> Option<Decimal> {
        if places >= self.scale {
            return Some(*self);
        }
        let divisor = pow10(self.scale - places)?;
        Some(Decimal {
            mantissa: div_round_half_away(self.mantissa, divisor)?,
            scale: places,
        })
    }

    /// Rounds half away from zero to `places` fractional digits. When the
    /// value has fewer digits it is padded with zeros to exactly `places`.
    pub fn round(&self, places: u32) -> Option<Decimal> {
        if places >= self.scale {
            self.rescale_up(places)
        } else {
            self.round_unchecked(places)
        }
    }

    /// Truncates (toward zero) to `places` fractional digits, padding when
    /// the value has fewer.
    pub fn truncate_to(&self, places: u32) -> Option<Decimal> {
        if places >= self.scale {
            return self.rescale_up(places);
        }
        let divisor = pow10(self.scale - places)?;
        Some(Decimal {
            mantissa: self.mantissa / divisor,
            scale: places,
        })
    }

    /// Largest integer not greater than the value.
    pub fn floor(&self) -> Option<i128> {
        let divisor = pow10(self.scale)?;
        Some(self.mantissa.div_euclid(divisor))
    }

    /// Smallest integer not less than the value.
    pub fn ceiling(&self) -> Option<i128> {
        let divisor = pow10(self.scale)?;
        let floor = self.mantissa.div_euclid(divisor);
        Some(if self.mantissa.rem_euclid(divisor) == 0 {
            floor
        } else {
            floor + 1
        })
    }

    /// Integer part (toward zero).
    pub fn trunc(&self) -> Option<i128> {
        let divisor = pow10(self.scale)?;
        Some(self.mantissa / divisor)
    }

    /// FHIRPath equivalence: both values rounded to the precision of the
    /// less precise one are equal; trailing zeros do not count as precision
    /// (`1.10 ~ 1.1`, `1.1 ~ 1.0`).
    pub fn equivalent(&self, other: &Decimal) -> bool {
        let places = self.normalized().scale.min(other.normalized().scale);
        match (self.round(places), other.round(places)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// `n / d` rounded half away from zero; `None` if `d` is zero.
fn div_round_half_away(n: i128, d: i128) -> Option<i128> {
    let q = n.checked_div(d)?;
    let r = n.checked_rem(d)?;
    // Compare 2|r| with |d| without overflowing.
    let r_abs = r.unsigned_abs();
    let d_abs = d.unsigned_abs();
    if r_abs >= d_abs - r_abs {
        if (n < 0) == (d < 0) {
            q.checked_add(1)
        } else {
            q.checked_sub(1)
        }
    } else {
        Some(q)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => {
                // Alignment overflowed: compare integer parts, then the
                // fractional remainders at the smaller common scale.
                let (ia, ib) = (self.trunc().unwrap_or(0), other.trunc().unwrap_or(0));
                ia.cmp(&ib)
                    .then_with(|| self.to_f64().total_cmp(&other.to_f64()))
            }
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int_part}.{frac_part}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parse_and_display_keep_scale() {
        assert_eq!(d("1.50").to_string(), "1.50");
        assert_eq!(d("-0.0034").to_string(), "-0.0034");
        assert_eq!(d("185").to_string(), "185");
        assert_eq!(d("1e-3").to_string(), "0.001");
        assert_eq!(d("1.5E2").to_string(), "150");
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse(".5").is_none());
        assert!(Decimal::parse("1.a").is_none());
    }

    #[test]
    fn arithmetic() {
        assert_eq!(d("1.2").checked_add(&d("1.8")).unwrap(), d("3.0"));
        assert_eq!(d("1.2").checked_mul(&d("1.8")).unwrap().to_string(), "2.16");
        assert_eq!(d("1").checked_div(&d("2")).unwrap().to_string(), "0.5");
        assert_eq!(d("2.2").checked_rem(&d("1.8")).unwrap(), d("0.4"));
        assert_eq!(d("2.2").div_trunc(&d("1.8")), Some(1));
        assert!(d("1").checked_div(&d("0")).is_none());
        assert_eq!(
            d("1.2").checked_div(&d("1.8")).unwrap().round(2).unwrap(),
            d("0.67")
        );
    }

    #[test]
    fn rounding() {
        assert_eq!(d("3.14159").round(3).unwrap().to_string(), "3.142");
        assert_eq!(d("-1.5").round(0).unwrap().to_string(), "-2");
        assert_eq!(d("1.5865").truncate_to(2).unwrap().to_string(), "1.58");
        assert_eq!(d("-2.1").floor(), Some(-3));
        assert_eq!(d("-1.1").ceiling(), Some(-1));
        assert!(d("1.10").equivalent(&d("1.1")));
        assert!(d("0.6666666666666667").equivalent(&d("0.67")));
    }

    #[test]
    fn from_f64_strips_noise() {
        assert_eq!(Decimal::from_f64(0.1 + 0.2).unwrap().to_string(), "0.3");
        assert_eq!(Decimal::from_f64(9.0).unwrap().to_string(), "9");
        assert_eq!(
            Decimal::from_f64(std::f64::consts::E).unwrap().to_string(),
            "2.718281828459045"
        );
    }
}
