//! FHIRPath `Quantity` values and a small UCUM unit converter.
//!
//! Units are either UCUM expressions (`mg`, `mm[Hg]`, `10*3/uL`, `g/m`) or the
//! FHIRPath calendar-duration keywords (`year`, `months`, `week`, …).
//! Comparison works by reducing both units to a [`Canonical`] form: a
//! rational factor (kept as exact decimal numerator and denominator, so
//! `60 '/min'` equals `1 '/s'` exactly) times a vector of base-dimension
//! exponents. Two quantities are comparable when their dimension vectors are
//! identical.
//!
//! The atom table covers the SI base and derived units, the common clinical
//! units and the customary units that appear in FHIR examples. It is not the
//! full UCUM table: unknown units are only comparable with the identical unit
//! string. Calendar `year`/`month` are never comparable with UCUM `a`/`mo`
//! (FHIRPath defines them as different durations); the other calendar
//! keywords are equal to their UCUM counterparts (`1 week = 1 'wk'`).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::decimal::Decimal;
use crate::temporal::CalendarUnit;

/// A decimal value with a unit.
#[derive(Clone, Debug)]
pub struct Quantity {
    /// The numeric value.
    pub value: Decimal,
    /// UCUM code or calendar keyword; `1` means dimensionless.
    pub unit: Arc<str>,
}

/// Number of base dimensions: m, g, s, C, K, mol, cd, [iU], [arb'U].
const DIMS: usize = 9;

/// A unit reduced to base dimensions: `value * num / den` in base units.
#[derive(Clone, Debug, PartialEq)]
pub struct Canonical {
    num: Decimal,
    den: Decimal,
    dims: [i8; DIMS],
    /// Non-convertible units (calendar year/month, Celsius, …) only compare
    /// with themselves.
    special: Option<&'static str>,
}

impl Canonical {
    fn one() -> Canonical {
        Canonical {
            num: Decimal::ONE,
            den: Decimal::ONE,
            dims: [0; DIMS],
            special: None,
        }
    }

    fn base(dim: usize) -> Canonical {
        let mut c = Canonical::one();
        if let Some(slot) = c.dims.get_mut(dim) {
            *slot = 1;
        }
        c
    }

    fn mul(&self, other: &Canonical) -> Option<Canonical> {
        if self.special.is_some() && other.special.is_some() {
            return None;
        }
        let mut dims = self.dims;
        for (d, o) in dims.iter_mut().zip(other.dims.iter()) {
            *d = d.checked_add(*o)?;
        }
        Some(Canonical {
            num: self.num.checked_mul(&other.num)?,
            den: self.den.checked_mul(&other.den)?,
            dims,
            special: self.special.or(other.special),
        })
    }

    fn inverse(&self) -> Option<Canonical> {
        if self.special.is_some() {
            return None;
        }
        let mut dims = self.dims;
        for d in dims.iter_mut() {
            *d = d.checked_neg()?;
        }
        Some(Canonical {
            num: self.den,
            den: self.num,
            dims,
            special: None,
        })
    }

    fn pow(&self, exp: i32) -> Option<Canonical> {
        let base = if exp < 0 {
            self.inverse()?
        } else {
            self.clone()
        };
        let mut result = Canonical::one();
        for _ in 0..exp.unsigned_abs() {
            result = result.mul(&base)?;
        }
        Some(result)
    }

    fn scaled(&self, factor: Decimal) -> Option<Canonical> {
        let mut c = self.clone();
        c.num = c.num.checked_mul(&factor)?;
        Some(c)
    }

    fn same_kind(&self, other: &Canonical) -> bool {
        self.dims == other.dims && self.special == other.special
    }
}

/// One entry of the unit-atom table: code, factor, definition in other
/// units (empty = dimensionless), whether metric prefixes apply.
struct Atom {
    code: &'static str,
    factor: &'static str,
    definition: &'static str,
    metric: bool,
}

const fn atom(
    code: &'static str,
    factor: &'static str,
    definition: &'static str,
    metric: bool,
) -> Atom {
    Atom {
        code,
        factor,
        definition,
        metric,
    }
}

/// Base atoms map to a dimension index; everything else is defined in terms
/// of other atoms.
const BASE_ATOMS: [(&str, usize); 9] = [
    ("m", 0),
    ("g", 1),
    ("s", 2),
    ("C", 3),
    ("K", 4),
    ("mol", 5),
    ("cd", 6),
    ("[iU]", 7),
    ("[arb'U]", 8),
];

const ATOMS: &[Atom] = &[
    // Dimensionless
    atom("rad", "1", "", true),
    atom("sr", "1", "", true),
    atom("%", "0.01", "", false),
    atom("[ppth]", "0.001", "", false),
    atom("[ppm]", "0.000001", "", false),
    atom("[ppb]", "0.000000001", "", false),
    atom("[IU]", "1", "[iU]", true),
    atom("[pi]", "3.14159265358979323846", "", false),
    atom("deg", "0.01745329251994329577", "", false),
    // Time
    atom("min", "60", "s", false),
    atom("h", "3600", "s", false),
    atom("d", "86400", "s", false),
    atom("wk", "604800", "s", false),
    atom("mo", "2629800", "s", false),
    atom("mo_j", "2629800", "s", false),
    atom("mo_g", "2629746", "s", false),
    atom("a", "31557600", "s", false),
    atom("a_j", "31557600", "s", false),
    atom("a_g", "31556952", "s", false),
    atom("Hz", "1", "/s", true),
    atom("Bq", "1", "/s", true),
    atom("Ci", "37000000000", "/s", true),
    // Length, area, volume
    atom("Ao", "0.0000000001", "m", false),
    atom("[in_i]", "0.0254", "m", false),
    atom("[ft_i]", "0.3048", "m", false),
    atom("[yd_i]", "0.9144", "m", false),
    atom("[mi_i]", "1609.344", "m", false),
    atom("[ch]", "0.3", "mm", false),
    atom("ar", "100", "m2", true),
    atom("L", "0.001", "m3", true),
    atom("l", "0.001", "m3", true),
    atom("[gal_us]", "0.003785411784", "m3", false),
    atom("[qt_us]", "0.000946352946", "m3", false),
    atom("[pt_us]", "0.000473176473", "m3", false),
    atom("[foz_us]", "0.0000295735295625", "m3", false),
    atom("[tsp_us]", "0.00000492892159375", "m3", false),
    atom("[tbs_us]", "0.0000147867647812", "m3", false),
    atom("[cup_us]", "0.0002365882365", "m3", false),
    // Mass
    atom("t", "1000000", "g", true),
    atom("[lb_av]", "453.59237", "g", false),
    atom("[oz_av]", "28.349523125", "g", false),
    atom("[gr]", "0.06479891", "g", false),
    atom("[stone_av]", "6350.29318", "g", false),
    // Mechanics and energy
    atom("N", "1000", "g.m/s2", true),
    atom("Pa", "1000", "g/(m.s2)", true),
    atom("bar", "100000", "Pa", true),
    atom("atm", "101325", "Pa", false),
    atom("m[Hg]", "133322", "Pa", true),
    atom("m[H2O]", "9806.65", "Pa", true),
    atom("[in_i'Hg]", "3386.38864", "Pa", false),
    atom("[psi]", "6894.757293168", "Pa", false),
    atom("J", "1000", "g.m2/s2", true),
    atom("W", "1", "J/s", true),
    atom("cal", "4.184", "J", true),
    atom("[Cal]", "4184", "J", false),
    atom("eV", "0.0000000000000000001602176634", "J", true),
    atom("Gy", "1", "J/kg", true),
    atom("Sv", "1", "J/kg", true),
    atom("P", "0.1", "Pa.s", true),
    // Electromagnetism
    atom("A", "1", "C/s", true),
    atom("V", "1", "J/C", true),
    atom("Ohm", "1", "V/A", true),
    atom("S", "1", "/Ohm", true),
    atom("F", "1", "C/V", true),
    atom("Wb", "1", "V.s", true),
    atom("T", "1", "Wb/m2", true),
    atom("H", "1", "Wb/A", true),
    // Amount of substance
    atom("eq", "1", "mol", true),
    atom("osm", "1", "mol", true),
    atom("kat", "1", "mol/s", true),
    atom("U", "1", "umol/min", true),
    // Light
    atom("lm", "1", "cd.sr", true),
    atom("lx", "1", "lm/m2", true),
];

/// Non-convertible units: compared only with themselves.
const SPECIAL_ATOMS: &[&str] = &["Cel", "[degF]", "[pH]", "[degR]"];

const PREFIXES: &[(&str, &str)] = &[
    ("da", "10"),
    ("Y", "1000000000000000000000000"),
    ("Z", "1000000000000000000000"),
    ("E", "1000000000000000000"),
    ("P", "1000000000000000"),
    ("T", "1000000000000"),
    ("G", "1000000000"),
    ("M", "1000000"),
    ("k", "1000"),
    ("h", "100"),
    ("d", "0.1"),
    ("c", "0.01"),
    ("m", "0.001"),
    ("u", "0.000001"),
    ("n", "0.000000001"),
    ("p", "0.000000000001"),
    ("f", "0.000000000000001"),
    ("a", "0.000000000000000001"),
    ("z", "0.000000000000000000001"),
    ("y", "0.000000000000000000000001"),
];

/// Recursion guard for atom definitions and parenthesised terms.
const MAX_UNIT_DEPTH: u32 = 8;

fn canonical_atom(code: &str, depth: u32) -> Option<Canonical> {
    if depth > MAX_UNIT_DEPTH {
        return None;
    }
    if let Some((_, dim)) = BASE_ATOMS.iter().find(|(c, _)| *c == code) {
        return Some(Canonical::base(*dim));
    }
    if let Some(special) = SPECIAL_ATOMS.iter().find(|s| **s == code) {
        let mut c = Canonical::one();
        c.special = Some(special);
        return Some(c);
    }
    let atom = ATOMS.iter().find(|a| a.code == code)?;
    let base = if atom.definition.is_empty() {
        Canonical::one()
    } else {
        parse_term(
            &mut UnitParser {
                bytes: atom.definition.as_bytes(),
                pos: 0,
            },
            depth + 1,
        )?
    };
    base.scaled(Decimal::parse(atom.factor)?)
}

/// Resolves `prefix? atom`, preferring an exact atom match.
fn canonical_symbol(symbol: &str, depth: u32) -> Option<Canonical> {
    if let Some(c) = canonical_atom(symbol, depth) {
        return Some(c);
    }
    for (prefix, factor) in PREFIXES {
        if let Some(rest) = symbol.strip_prefix(prefix) {
            let is_metric = BASE_ATOMS
                .iter()
                .any(|(c, _)| *c == rest && *c != "[arb'U]")
                || ATOMS.iter().any(|a| a.code == rest && a.metric);
            if is_metric {
                return canonical_atom(rest, depth)?.scaled(Decimal::parse(factor)?);
            }
        }
    }
    None
}

struct UnitParser<'t> {
    bytes: &'t [u8],
    pos: usize,
}

impl UnitParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn exponent(&mut self) -> Option<Option<i32>> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == digits_start {
            self.pos = start;
            return Some(None);
        }
        let text = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        Some(Some(text.parse().ok()?))
    }
}

fn parse_term(p: &mut UnitParser<'_>, depth: u32) -> Option<Canonical> {
    if depth > MAX_UNIT_DEPTH {
        return None;
    }
    let mut result = Canonical::one();
    let mut divide = false;
    if p.peek() == Some(b'/') {
        p.pos += 1;
        divide = true;
    }
    loop {
        let component = parse_component(p, depth)?;
        result = if divide {
            result.mul(&component.inverse()?)?
        } else {
            result.mul(&component)?
        };
        match p.peek() {
            Some(b'.') => {
                p.pos += 1;
                divide = false;
            }
            Some(b'/') => {
                p.pos += 1;
                divide = true;
            }
            _ => return Some(result),
        }
    }
}

fn parse_component(p: &mut UnitParser<'_>, depth: u32) -> Option<Canonical> {
    match p.peek()? {
        b'(' => {
            p.pos += 1;
            let inner = parse_term(p, depth + 1)?;
            if p.peek() != Some(b')') {
                return None;
            }
            p.pos += 1;
            let exp = p.exponent()?.unwrap_or(1);
            skip_annotation(p)?;
            inner.pow(exp)
        }
        b'{' => {
            skip_annotation(p)?;
            Some(Canonical::one())
        }
        b if b.is_ascii_digit() => {
            let start = p.pos;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.pos += 1;
            }
            let number = Decimal::parse(std::str::from_utf8(p.bytes.get(start..p.pos)?).ok()?)?;
            let value = if matches!(p.peek(), Some(b'*' | b'^')) {
                p.pos += 1;
                let exp = p.exponent()?.and_then(|e| u32::try_from(e).ok())?;
                let mut v = Decimal::ONE;
                for _ in 0..exp {
                    v = v.checked_mul(&number)?;
                }
                v
            } else {
                number
            };
            skip_annotation(p)?;
            Canonical::one().scaled(value)
        }
        _ => {
            let start = p.pos;
            while let Some(b) = p.peek() {
                match b {
                    b'[' => {
                        while p.peek().is_some_and(|b| b != b']') {
                            p.pos += 1;
                        }
                        p.peek()?;
                        p.pos += 1;
                    }
                    b'.' | b'/' | b'(' | b')' | b'{' | b'+' | b'-' => break,
                    b if b.is_ascii_digit() => break,
                    _ => p.pos += 1,
                }
            }
            let symbol = std::str::from_utf8(p.bytes.get(start..p.pos)?).ok()?;
            if symbol.is_empty() {
                return None;
            }
            let exp = p.exponent()?.unwrap_or(1);
            skip_annotation(p)?;
            canonical_symbol(symbol, depth)?.pow(exp)
        }
    }
}

fn skip_annotation(p: &mut UnitParser<'_>) -> Option<()> {
    if p.peek() == Some(b'{') {
        while p.peek().is_some_and(|b| b != b'}') {
            p.pos += 1;
        }
        p.peek()?;
        p.pos += 1;
    }
    Some(())
}

/// The calendar duration named by a FHIRPath keyword (singular or plural).
pub fn calendar_keyword(unit: &str) -> Option<CalendarUnit> {
    Some(match unit {
        "year" | "years" => CalendarUnit::Year,
        "month" | "months" => CalendarUnit::Month,
        "week" | "weeks" => CalendarUnit::Week,
        "day" | "days" => CalendarUnit::Day,
        "hour" | "hours" => CalendarUnit::Hour,
        "minute" | "minutes" => CalendarUnit::Minute,
        "second" | "seconds" => CalendarUnit::Second,
        "millisecond" | "milliseconds" => CalendarUnit::Millisecond,
        _ => return None,
    })
}

/// UCUM codes for definite-duration years and months.
const UCUM_YEARS_AND_MONTHS: [&str; 6] = ["a", "a_j", "a_g", "mo", "mo_j", "mo_g"];

/// FHIRPath does not compare calendar durations with UCUM definite
/// durations of a year or a month (`1 'a' > 1 day` is empty).
fn mixes_calendar_with_ucum_year_or_month(a: &str, b: &str) -> bool {
    let ucum_long = |u: &str| UCUM_YEARS_AND_MONTHS.contains(&u);
    (calendar_keyword(a).is_some() && ucum_long(b))
        || (calendar_keyword(b).is_some() && ucum_long(a))
}

/// Reduces a unit string to canonical form; `None` for unknown units.
pub fn canonical_unit(unit: &str) -> Option<Canonical> {
    if let Some(cal) = calendar_keyword(unit) {
        let ucum = match cal {
            // Calendar years and months form their own dimension, with
            // 1 year = 12 months.
            CalendarUnit::Year | CalendarUnit::Month => {
                let mut c = Canonical::one();
                c.special = Some("calendar-month");
                if cal == CalendarUnit::Year {
                    c.num = Decimal::from_i64(12);
                }
                return Some(c);
            }
            CalendarUnit::Week => "wk",
            CalendarUnit::Day => "d",
            CalendarUnit::Hour => "h",
            CalendarUnit::Minute => "min",
            CalendarUnit::Second => "s",
            CalendarUnit::Millisecond => "ms",
        };
        return canonical_unit(ucum);
    }
    if unit.is_empty() || unit == "1" {
        return Some(Canonical::one());
    }
    let mut parser = UnitParser {
        bytes: unit.as_bytes(),
        pos: 0,
    };
    let canonical = parse_term(&mut parser, 0)?;
    (parser.pos == unit.len()).then_some(canonical)
}

/// A unit as a UCUM operand: calendar keywords become their UCUM codes and
/// compound units are parenthesised.
fn unit_operand(unit: &str) -> String {
    let ucum = ucum_form(unit);
    if ucum.contains(['.', '/']) {
        format!("({ucum})")
    } else {
        ucum
    }
}

/// The UCUM code equivalent to a calendar keyword (where one exists).
fn ucum_form(unit: &str) -> String {
    match calendar_keyword(unit) {
        Some(CalendarUnit::Week) => "wk".into(),
        Some(CalendarUnit::Day) => "d".into(),
        Some(CalendarUnit::Hour) => "h".into(),
        Some(CalendarUnit::Minute) => "min".into(),
        Some(CalendarUnit::Second) => "s".into(),
        Some(CalendarUnit::Millisecond) => "ms".into(),
        _ => unit.to_string(),
    }
}

impl Quantity {
    /// A quantity with the given unit.
    pub fn new(value: Decimal, unit: &str) -> Quantity {
        Quantity {
            value,
            unit: Arc::from(unit),
        }
    }

    /// True when the unit is dimensionless `'1'`.
    pub fn is_dimensionless(&self) -> bool {
        self.unit.as_ref() == "1" || self.unit.is_empty()
    }

    /// Whether the two quantities have convertible units.
    pub fn comparable(&self, other: &Quantity) -> bool {
        if self.unit == other.unit {
            return true;
        }
        match (canonical_unit(&self.unit), canonical_unit(&other.unit)) {
            (Some(a), Some(b)) => a.same_kind(&b),
            _ => false,
        }
    }

    /// Ordering after unit conversion; `None` when not comparable.
    pub fn compare(&self, other: &Quantity) -> Option<Ordering> {
        if self.unit == other.unit {
            return Some(self.value.cmp(&other.value));
        }
        if mixes_calendar_with_ucum_year_or_month(&self.unit, &other.unit) {
            return None;
        }
        let a = canonical_unit(&self.unit)?;
        let b = canonical_unit(&other.unit)?;
        if !a.same_kind(&b) {
            return None;
        }
        // va * na / da  <=>  vb * nb / db, cross-multiplied (denominators are
        // positive).
        let left = self.value.checked_mul(&a.num)?.checked_mul(&b.den)?;
        let right = other.value.checked_mul(&b.num)?.checked_mul(&a.den)?;
        Some(left.cmp(&right))
    }

    /// The same quantity expressed in `unit`; `None` when not convertible.
    pub fn convert_to(&self, unit: &str) -> Option<Quantity> {
        if self.unit.as_ref() == unit {
            return Some(self.clone());
        }
        let from = canonical_unit(&self.unit)?;
        let to = canonical_unit(unit)?;
        if !from.same_kind(&to) {
            return None;
        }
        // value * (from.num / from.den) / (to.num / to.den), multiplying
        // first so that exact conversions stay exact (12 'h' -> 0.5 'd').
        let numerator = self.value.checked_mul(&from.num)?.checked_mul(&to.den)?;
        let denominator = from.den.checked_mul(&to.num)?;
        let value = if denominator == Decimal::ONE {
            numerator
        } else {
            numerator.checked_div(&denominator)?
        };
        Some(Quantity::new(value, unit))
    }

    /// FHIRPath equivalence: convertible units and values equal at the
    /// precision of the less precise operand (trailing zeros do not count;
    /// the other operand's precision is taken after conversion, so
    /// `4040 'mg'` counts as `4.04 'g'`). Unlike equality, calendar
    /// `year`/`month` are equivalent to UCUM `a`/`mo`.
    pub fn equivalent(&self, other: &Quantity) -> bool {
        let this = self.with_ucum_calendar();
        let Some(converted) = other.with_ucum_calendar().convert_to(&this.unit) else {
            return false;
        };
        this.value.equivalent(&converted.value)
    }

    /// Calendar `year`/`month` re-expressed as UCUM `a`/`mo` (other units
    /// unchanged).
    fn with_ucum_calendar(&self) -> Quantity {
        match calendar_keyword(&self.unit) {
            Some(CalendarUnit::Year) => Quantity::new(self.value, "a"),
            Some(CalendarUnit::Month) => Quantity::new(self.value, "mo"),
            _ => self.clone(),
        }
    }

    /// Sum; the result is in the left operand's unit.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let other = other.convert_to(&self.unit)?;
        Some(Quantity {
            value: self.value.checked_add(&other.value)?,
            unit: self.unit.clone(),
        })
    }

    /// Difference; the result is in the left operand's unit.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let other = other.convert_to(&self.unit)?;
        Some(Quantity {
            value: self.value.checked_sub(&other.value)?,
            unit: self.unit.clone(),
        })
    }

    /// Product with a unit product.
    pub fn checked_mul(&self, other: &Quantity) -> Option<Quantity> {
        let value = self.value.checked_mul(&other.value)?;
        let unit = match (self.is_dimensionless(), other.is_dimensionless()) {
            (true, _) => other.unit.to_string(),
            (_, true) => self.unit.to_string(),
            _ => format!("{}.{}", unit_operand(&self.unit), unit_operand(&other.unit)),
        };
        Some(Quantity::new(value, &unit))
    }

    /// Quotient with a unit quotient; `None` when dividing by zero.
    pub fn checked_div(&self, other: &Quantity) -> Option<Quantity> {
        let value = self.value.checked_div(&other.value)?;
        let unit = if self.unit == other.unit {
            "1".to_string()
        } else if other.is_dimensionless() {
            self.unit.to_string()
        } else if self.is_dimensionless() {
            format!("/{}", unit_operand(&other.unit))
        } else {
            format!("{}/{}", unit_operand(&self.unit), unit_operand(&other.unit))
        };
        Some(Quantity::new(value, &unit))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if calendar_keyword(&self.unit).is_some() {
            write!(f, "{} {}", self.value, self.unit)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: &str, u: &str) -> Quantity {
        Quantity::new(Decimal::parse(v).unwrap(), u)
    }

    #[test]
    fn conversions() {
        assert_eq!(
            q("4.0000", "g").compare(&q("4000.0", "mg")),
            Some(Ordering::Equal)
        );
        assert_eq!(q("7", "days").compare(&q("1", "wk")), Some(Ordering::Equal));
        assert_eq!(
            q("60", "/min").compare(&q("1", "/s")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            q("185", "[lb_av]").compare(&q("185", "kg")),
            Some(Ordering::Less)
        );
        assert_eq!(
            q("120", "mm[Hg]").compare(&q("15", "kPa")),
            Some(Ordering::Greater)
        );
        assert_eq!(q("1", "mo").compare(&q("1", "month")), None);
        assert!(q("1", "cm").comparable(&q("1", "[in_i]")));
        assert!(!q("1", "cm").comparable(&q("1", "[s]")));
        assert!(!q("1", "cm").comparable(&q("1", "s")));
        assert!(q("1", "10*3/uL").comparable(&q("1", "10*9/L")));
    }

    #[test]
    fn equivalence_uses_least_precision() {
        assert!(q("4", "g").equivalent(&q("4040", "mg")));
        assert!(!q("4.1", "g").equivalent(&q("4040", "mg")));
        assert!(q("1", "year").equivalent(&q("12", "mo")));
        assert!(q("12", "months").equivalent(&q("1", "a")));
    }

    #[test]
    fn calendar_durations() {
        assert_eq!(
            q("1", "year").compare(&q("12", "months")),
            Some(Ordering::Equal)
        );
        assert_eq!(q("1", "a").compare(&q("1", "day")), None);
        assert_eq!(
            q("12", "h").convert_to("d").unwrap().value.to_string(),
            "0.5"
        );
        assert_eq!(
            q("7", "days")
                .checked_add(&q("12", "hours"))
                .unwrap()
                .to_string(),
            "7.5 days"
        );
    }

    #[test]
    fn unit_algebra() {
        let area = q("2.0", "cm").checked_mul(&q("2.0", "m")).unwrap();
        assert_eq!(area.compare(&q("0.040", "m2")), Some(Ordering::Equal));
        let ratio = q("4.0", "g").checked_div(&q("2.0", "m")).unwrap();
        assert_eq!(ratio.compare(&q("2", "g/m")), Some(Ordering::Equal));
        let one = q("1.0", "m").checked_div(&q("1.0", "m")).unwrap();
        assert_eq!(one.compare(&q("1", "1")), Some(Ordering::Equal));
    }
}
