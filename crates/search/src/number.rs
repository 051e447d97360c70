//! Decimals and the ranges their precision implies (R4 3.1.1.4.5).
//!
//! `100` is "100 to the nearest unit", so it stands for `[99.5, 100.5]`;
//! `100.00` for `[99.995, 100.005]`; `1.5e2` for `[145, 155]` (the last
//! written digit of the mantissa sets the precision, scaled by the
//! exponent). The bounds are computed in decimal and rounded once to the
//! nearest `f64`, so `99.995` is exactly the `f64` literal `99.995`.
//!
//! Invariants: `low <= value <= high`, and the range is symmetric around the
//! written value (up to `f64` rounding).
//!
//! Note on indexed values: JSON numbers are read through `serde_json` without
//! `arbitrary_precision`, so trailing zeros in a resource (`100.00`) are lost
//! before indexing and the precision of the shortest decimal form of the
//! `f64` is used instead (`100.0` for `100.00`; `100` for an integer).

/// A decimal and its implicit range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// Parses `[+|-]digits[.digits][(e|E)[+|-]digits]`.
pub fn parse_number(s: &str) -> Option<Number> {
    let (mantissa_text, exponent) = match s.find(['e', 'E']) {
        Some(i) => {
            let exponent = s.get(i + 1..)?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (s.get(..i)?, exponent.parse::<i32>().ok()?)
        }
        None => (s, 0),
    };
    let (negative, unsigned) = match mantissa_text.as_bytes().first() {
        Some(b'-') => (true, mantissa_text.get(1..)?),
        Some(b'+') => (false, mantissa_text.get(1..)?),
        _ => (false, mantissa_text),
    };
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((i, f)) => (i, f),
        None => (unsigned, ""),
    };
    let valid = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if integer.is_empty() || !valid(integer) || !valid(fraction) || unsigned.ends_with('.') {
        return None;
    }
    let value: f64 = s.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    // The precision: the place of the last written digit.
    let scale = exponent - i32::try_from(fraction.len()).ok()?;
    // low/high = (10 * m -/+ 5) * 10^(scale - 1), with m the signed digits
    // as an integer, written as decimal text and parsed once, so that the
    // result is correctly rounded.
    let digits = format!("{integer}{fraction}");
    let signed = digits
        .parse::<i128>()
        .ok()
        .and_then(|m| m.checked_mul(if negative { -10 } else { 10 }));
    let (low, high) = match signed {
        Some(m10) => {
            let bound = |d: i128| format!("{d}e{}", scale - 1).parse::<f64>().ok();
            (bound(m10.checked_sub(5)?)?, bound(m10.checked_add(5)?)?)
        }
        // More digits than i128 holds: plain f64 arithmetic is as precise.
        None => {
            let half = 0.5 * 10f64.powi(scale);
            (value - half, value + half)
        }
    };
    Some(Number { value, low, high })
}

/// The number of a JSON number, with the precision of its shortest decimal
/// form (see the module note).
pub fn from_json(n: &serde_json::Number) -> Option<Number> {
    parse_number(&n.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Number, parse_number};

    fn n(value: f64, low: f64, high: f64) -> Option<Number> {
        Some(Number { value, low, high })
    }

    #[test]
    fn precision_sets_the_range() {
        assert_eq!(parse_number("100"), n(100.0, 99.5, 100.5));
        assert_eq!(parse_number("100.00"), n(100.0, 99.995, 100.005));
        assert_eq!(parse_number("0.1"), n(0.1, 0.05, 0.15));
        assert_eq!(parse_number("-7.5"), n(-7.5, -7.55, -7.45));
        assert_eq!(parse_number("+3"), n(3.0, 2.5, 3.5));
        assert_eq!(parse_number("1.5e2"), n(150.0, 145.0, 155.0));
        assert_eq!(parse_number("1e2"), n(100.0, 50.0, 150.0));
        assert_eq!(parse_number("25E-1"), n(2.5, 2.45, 2.55));
        assert_eq!(parse_number("0"), n(0.0, -0.5, 0.5));
    }

    #[test]
    fn rejects_malformed_numbers() {
        for bad in [
            "", "-", "1.", ".5", "1e", "1e+", "abc", "1,5", "1.2.3", "--1", "NaN", "inf", "1e999",
        ] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_numbers_keep_their_shortest_precision() {
        let int: serde_json::Number = 72.into();
        assert_eq!(super::from_json(&int), n(72.0, 71.5, 72.5));
        let float = serde_json::Number::from_f64(36.6).unwrap();
        assert_eq!(super::from_json(&float), n(36.6, 36.55, 36.65));
    }
}
