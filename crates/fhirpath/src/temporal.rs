//! Partial dates, date-times and times with precision, as FHIRPath needs them.
//!
//! Every value records the finest component that was actually specified
//! ([`Precision`]); components below that precision are stored as their
//! minimum (month/day 1, time 0) and are never observable. Comparisons
//! follow FHIRPath: components are compared from the most significant down,
//! and when one side runs out of precision before a difference is found the
//! result is unknown (`None`, which the evaluator turns into an empty
//! collection). Seconds and milliseconds count as a single precision.
//!
//! Invariants: `Date` precision is at most `Day` and it has no time zone;
//! `Time` precision is at least `Hour`; all components are range-checked on
//! construction (year 1..=9999).

use std::cmp::Ordering;
use std::fmt;

/// The finest component present in a temporal value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// `YYYY`
    Year,
    /// `YYYY-MM`
    Month,
    /// `YYYY-MM-DD`
    Day,
    /// `Thh`
    Hour,
    /// `Thh:mm`
    Minute,
    /// `Thh:mm:ss`
    Second,
    /// `Thh:mm:ss.fff`
    Millisecond,
}

/// A time-zone designator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeZone {
    /// Written as `Z`.
    Utc,
    /// Written as `+hh:mm` / `-hh:mm`; offset from UTC in minutes.
    Offset(i16),
}

impl TimeZone {
    /// Offset from UTC in minutes.
    pub fn minutes(&self) -> i32 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::Offset(m) => i32::from(*m),
        }
    }
}

/// A calendar duration unit used in date/time arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalendarUnit {
    /// Calendar year.
    Year,
    /// Calendar month.
    Month,
    /// Seven days.
    Week,
    /// Day.
    Day,
    /// Hour.
    Hour,
    /// Minute.
    Minute,
    /// Second.
    Second,
    /// Millisecond.
    Millisecond,
}

impl CalendarUnit {
    fn millis(self) -> Option<i64> {
        match self {
            CalendarUnit::Week => Some(7 * 86_400_000),
            CalendarUnit::Day => Some(86_400_000),
            CalendarUnit::Hour => Some(3_600_000),
            CalendarUnit::Minute => Some(60_000),
            CalendarUnit::Second => Some(1000),
            CalendarUnit::Millisecond => Some(1),
            CalendarUnit::Year | CalendarUnit::Month => None,
        }
    }
}

/// Shared component storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Parts {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    millis: u16,
    precision: Precision,
}

const MILLIS_PER_DAY: i64 = 86_400_000;

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = y + i64::from(m <= 2);
    (
        i32::try_from(year).unwrap_or(i32::MAX),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

impl Parts {
    fn valid(&self) -> bool {
        (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.millis < 1000
    }

    fn epoch_millis(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * MILLIS_PER_DAY
            + i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * 60_000
            + i64::from(self.second) * 1000
            + i64::from(self.millis)
    }

    fn from_epoch_millis(ms: i64, precision: Precision) -> Parts {
        let days = ms.div_euclid(MILLIS_PER_DAY);
        let rem = ms.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Parts {
            year,
            month,
            day,
            hour: u8::try_from(rem / 3_600_000).unwrap_or(0),
            minute: u8::try_from(rem / 60_000 % 60).unwrap_or(0),
            second: u8::try_from(rem / 1000 % 60).unwrap_or(0),
            millis: u16::try_from(rem % 1000).unwrap_or(0),
            precision,
        }
    }

    /// Clears components finer than `precision`.
    fn truncated(mut self, precision: Precision) -> Parts {
        if precision < Precision::Month {
            self.month = 1;
        }
        if precision < Precision::Day {
            self.day = 1;
        }
        if precision < Precision::Hour {
            self.hour = 0;
        }
        if precision < Precision::Minute {
            self.minute = 0;
        }
        if precision < Precision::Second {
            self.second = 0;
        }
        if precision < Precision::Millisecond {
            self.millis = 0;
        }
        self.precision = precision;
        self
    }

    /// Component-wise FHIRPath comparison starting at `start`.
    fn compare(&self, other: &Parts, start: Precision) -> Option<Ordering> {
        const LEVELS: [Precision; 6] = [
            Precision::Year,
            Precision::Month,
            Precision::Day,
            Precision::Hour,
            Precision::Minute,
            Precision::Second,
        ];
        for level in LEVELS {
            if level < start {
                continue;
            }
            let a_has = self.precision >= level;
            let b_has = other.precision >= level;
            if !a_has && !b_has {
                return Some(Ordering::Equal);
            }
            if a_has != b_has {
                return None;
            }
            let (x, y) = match level {
                Precision::Year => (i64::from(self.year), i64::from(other.year)),
                Precision::Month => (i64::from(self.month), i64::from(other.month)),
                Precision::Day => (i64::from(self.day), i64::from(other.day)),
                Precision::Hour => (i64::from(self.hour), i64::from(other.hour)),
                Precision::Minute => (i64::from(self.minute), i64::from(other.minute)),
                _ => (
                    i64::from(self.second) * 1000 + i64::from(self.millis),
                    i64::from(other.second) * 1000 + i64::from(other.millis),
                ),
            };
            if x != y {
                return Some(x.cmp(&y));
            }
        }
        Some(Ordering::Equal)
    }

    /// Adds a calendar duration, keeping the precision. Amounts in units
    /// finer than the precision are first converted to the precision's unit
    /// (truncating), as FHIRPath specifies.
    fn add(&self, amount: i64, unit: CalendarUnit) -> Option<Parts> {
        let mut result = *self;
        match unit {
            CalendarUnit::Year | CalendarUnit::Month => {
                let months = if unit == CalendarUnit::Year {
                    amount.checked_mul(12)?
                } else {
                    amount
                };
                let months = if self.precision == Precision::Year {
                    months / 12 * 12
                } else {
                    months
                };
                let total =
                    (i64::from(self.year) * 12 + i64::from(self.month) - 1).checked_add(months)?;
                result.year = i32::try_from(total.div_euclid(12)).ok()?;
                result.month = u8::try_from(total.rem_euclid(12) + 1).ok()?;
                result.day = result.day.min(days_in_month(result.year, result.month));
            }
            _ => {
                let unit_ms = unit.millis()?;
                let total = amount.checked_mul(unit_ms)?;
                let step = match self.precision {
                    Precision::Year => 365 * MILLIS_PER_DAY,
                    Precision::Month => 30 * MILLIS_PER_DAY,
                    Precision::Day => MILLIS_PER_DAY,
                    Precision::Hour => 3_600_000,
                    Precision::Minute => 60_000,
                    Precision::Second => 1000,
                    Precision::Millisecond => 1,
                };
                if step > unit_ms {
                    let whole = total / step;
                    return match self.precision {
                        Precision::Year => self.add(whole, CalendarUnit::Year),
                        Precision::Month => self.add(whole, CalendarUnit::Month),
                        _ => {
                            let ms = self.epoch_millis().checked_add(whole.checked_mul(step)?)?;
                            let parts = Parts::from_epoch_millis(ms, self.precision);
                            parts.valid().then_some(parts)
                        }
                    };
                }
                let ms = self.epoch_millis().checked_add(total)?;
                result = Parts::from_epoch_millis(ms, self.precision);
            }
        }
        result.valid().then_some(result)
    }

    /// Fills the components between the current precision and `target`
    /// with their minimum (`high == false`) or maximum values.
    fn boundary(&self, target: Precision, high: bool) -> Parts {
        let mut p = *self;
        // An hour without minutes is not a legal FHIR time; treat `T08` as
        // `T08:00` first (as the official tests expect).
        if p.precision == Precision::Hour {
            p.minute = 0;
            p.precision = Precision::Minute;
        }
        if target <= p.precision {
            return p.truncated(target);
        }
        if high {
            if p.precision < Precision::Month {
                p.month = 12;
            }
            if p.precision < Precision::Day {
                p.day = days_in_month(p.year, p.month);
            }
            if p.precision < Precision::Hour {
                p.hour = 23;
            }
            if p.precision < Precision::Minute {
                p.minute = 59;
            }
            if p.precision < Precision::Second {
                p.second = 59;
            }
            if p.precision < Precision::Millisecond {
                p.millis = 999;
            }
        }
        // The low boundary's missing components are already at their minimum.
        p.truncated(target)
    }

    fn fmt_date(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if self.precision >= Precision::Month {
            write!(f, "-{:02}", self.month)?;
        }
        if self.precision >= Precision::Day {
            write!(f, "-{:02}", self.day)?;
        }
        Ok(())
    }

    fn fmt_time(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.hour)?;
        if self.precision >= Precision::Minute {
            write!(f, ":{:02}", self.minute)?;
        }
        if self.precision >= Precision::Second {
            write!(f, ":{:02}", self.second)?;
        }
        if self.precision >= Precision::Millisecond {
            write!(f, ".{:03}", self.millis)?;
        }
        Ok(())
    }
}

/// A cursor over ASCII text used by the parsers below.
struct Scanner<'t> {
    bytes: &'t [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..n {
            let b = self.peek().filter(u8::is_ascii_digit)?;
            value = value * 10 + u32::from(b - b'0');
            self.pos += 1;
        }
        Some(value)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// Parses `hh(:mm(:ss(.f+)?)?)?` into the time fields of `parts`.
fn scan_time(s: &mut Scanner<'_>, parts: &mut Parts) -> Option<()> {
    parts.hour = u8::try_from(s.digits(2)?).ok()?;
    parts.precision = Precision::Hour;
    if s.peek() == Some(b':') && s.bytes.get(s.pos + 1).is_some_and(u8::is_ascii_digit) {
        s.pos += 1;
        parts.minute = u8::try_from(s.digits(2)?).ok()?;
        parts.precision = Precision::Minute;
        if s.peek() == Some(b':') && s.bytes.get(s.pos + 1).is_some_and(u8::is_ascii_digit) {
            s.pos += 1;
            parts.second = u8::try_from(s.digits(2)?).ok()?;
            parts.precision = Precision::Second;
            if s.peek() == Some(b'.') && s.bytes.get(s.pos + 1).is_some_and(u8::is_ascii_digit) {
                s.pos += 1;
                let mut millis = 0u32;
                let mut count = 0;
                while let Some(b) = s.peek().filter(u8::is_ascii_digit) {
                    if count < 3 {
                        millis = millis * 10 + u32::from(b - b'0');
                    }
                    count += 1;
                    s.pos += 1;
                }
                for _ in count..3 {
                    millis *= 10;
                }
                parts.millis = u16::try_from(millis).ok()?;
                parts.precision = Precision::Millisecond;
            }
        }
    }
    Some(())
}

/// Parses `Z` or `(+|-)hh:mm` if present.
fn scan_zone(s: &mut Scanner<'_>) -> Option<Option<TimeZone>> {
    if s.eat(b'Z') {
        return Some(Some(TimeZone::Utc));
    }
    let sign = match s.peek() {
        Some(b'+') => 1i16,
        Some(b'-') => -1i16,
        _ => return Some(None),
    };
    s.pos += 1;
    let hours = i16::try_from(s.digits(2)?).ok()?;
    if !s.eat(b':') {
        return None;
    }
    let minutes = i16::try_from(s.digits(2)?).ok()?;
    if minutes > 59 || hours * 60 + minutes > 14 * 60 {
        return None;
    }
    Some(Some(TimeZone::Offset(sign * (hours * 60 + minutes))))
}

fn scan_date(s: &mut Scanner<'_>) -> Option<Parts> {
    let mut parts = Parts {
        year: i32::try_from(s.digits(4)?).ok()?,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        millis: 0,
        precision: Precision::Year,
    };
    if s.peek() == Some(b'-') && s.bytes.get(s.pos + 1).is_some_and(u8::is_ascii_digit) {
        s.pos += 1;
        parts.month = u8::try_from(s.digits(2)?).ok()?;
        parts.precision = Precision::Month;
        if s.peek() == Some(b'-') && s.bytes.get(s.pos + 1).is_some_and(u8::is_ascii_digit) {
            s.pos += 1;
            parts.day = u8::try_from(s.digits(2)?).ok()?;
            parts.precision = Precision::Day;
        }
    }
    Some(parts)
}

/// A FHIRPath `Date`: year, year-month or full date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Date(Parts);

impl Date {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Date> {
        let mut s = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let parts = scan_date(&mut s)?;
        (s.at_end() && parts.valid()).then_some(Date(parts))
    }

    /// Builds a date from components; `month`/`day` may be omitted from the
    /// end to lower the precision.
    pub fn new(year: i32, month: Option<u8>, day: Option<u8>) -> Option<Date> {
        let precision = match (month, day) {
            (None, None) => Precision::Year,
            (Some(_), None) => Precision::Month,
            (Some(_), Some(_)) => Precision::Day,
            (None, Some(_)) => return None,
        };
        let parts = Parts {
            year,
            month: month.unwrap_or(1),
            day: day.unwrap_or(1),
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
            precision,
        };
        parts.valid().then_some(Date(parts))
    }

    /// The precision (`Year`, `Month` or `Day`).
    pub fn precision(&self) -> Precision {
        self.0.precision
    }

    /// Year component.
    pub fn year(&self) -> i32 {
        self.0.year
    }

    /// Month component, if within precision.
    pub fn month(&self) -> Option<u8> {
        (self.0.precision >= Precision::Month).then_some(self.0.month)
    }

    /// Day component, if within precision.
    pub fn day(&self) -> Option<u8> {
        (self.0.precision >= Precision::Day).then_some(self.0.day)
    }

    /// The same date as a `DateTime` with date precision and no zone.
    pub fn to_date_time(&self) -> DateTime {
        DateTime {
            parts: self.0,
            zone: None,
        }
    }

    /// FHIRPath ordering; `None` when precision makes it unknowable.
    pub fn compare(&self, other: &Date) -> Option<Ordering> {
        self.0.compare(&other.0, Precision::Year)
    }

    /// Date arithmetic; units finer than a day are converted to days.
    pub fn add(&self, amount: i64, unit: CalendarUnit) -> Option<Date> {
        self.0.add(amount, unit).map(Date)
    }

    /// `lowBoundary` / `highBoundary` at `digits` (4, 6 or 8).
    pub fn boundary(&self, digits: Option<i64>, high: bool) -> Option<Date> {
        let target = match digits.unwrap_or(8) {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            _ => return None,
        };
        let mut p = self.0;
        if target <= p.precision {
            return Some(Date(p.truncated(target)));
        }
        if high {
            if p.precision < Precision::Month {
                p.month = 12;
            }
            p.day = days_in_month(p.year, p.month);
        }
        Some(Date(p.truncated(target)))
    }

    /// Number of digits of precision (4, 6 or 8).
    pub fn precision_digits(&self) -> i64 {
        match self.0.precision {
            Precision::Year => 4,
            Precision::Month => 6,
            _ => 8,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_date(f)
    }
}

/// A FHIRPath `DateTime`: a partial date with an optional partial time and
/// an optional time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    parts: Parts,
    zone: Option<TimeZone>,
}

impl DateTime {
    /// Parses `YYYY(-MM(-DD(T(hh(:mm(:ss(.fff)?)?)?)?(Z|+hh:mm)?)?)?)?`. A bare
    /// trailing `T` is accepted (FHIRPath literal `@2015T`).
    pub fn parse(text: &str) -> Option<DateTime> {
        let mut s = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let mut parts = scan_date(&mut s)?;
        let mut zone = None;
        if s.eat(b'T') && s.peek().is_some_and(|b| b.is_ascii_digit()) {
            if parts.precision != Precision::Day {
                return None;
            }
            scan_time(&mut s, &mut parts)?;
            zone = scan_zone(&mut s)?;
        }
        (s.at_end() && parts.valid()).then_some(DateTime { parts, zone })
    }

    /// Builds a millisecond-precision value from milliseconds since the Unix
    /// epoch, expressed in the zone `offset_minutes` east of UTC.
    pub fn from_unix_millis(millis: i64, offset_minutes: i16) -> Option<DateTime> {
        let local = millis.checked_add(i64::from(offset_minutes) * 60_000)?;
        let parts = Parts::from_epoch_millis(local, Precision::Millisecond);
        let zone = if offset_minutes == 0 {
            TimeZone::Utc
        } else {
            TimeZone::Offset(offset_minutes)
        };
        parts.valid().then_some(DateTime {
            parts,
            zone: Some(zone),
        })
    }

    /// The precision.
    pub fn precision(&self) -> Precision {
        self.parts.precision
    }

    /// The time zone, if specified.
    pub fn zone(&self) -> Option<TimeZone> {
        self.zone
    }

    /// Year component.
    pub fn year(&self) -> i32 {
        self.parts.year
    }

    /// The date part (at most day precision).
    pub fn date(&self) -> Date {
        let precision = self.parts.precision.min(Precision::Day);
        Date(self.parts.truncated(precision))
    }

    /// The time part, if the value has one.
    pub fn time(&self) -> Option<Time> {
        (self.parts.precision >= Precision::Hour).then(|| {
            let mut p = self.parts;
            p.year = 1;
            p.month = 1;
            p.day = 1;
            Time(p)
        })
    }

    /// Milliseconds since the Unix epoch of the earliest instant the value
    /// covers, using UTC for values without a zone.
    pub fn to_unix_millis(&self) -> i64 {
        let offset = self.zone.map_or(0, |z| i64::from(z.minutes()));
        self.parts.epoch_millis() - offset * 60_000
    }

    /// The same instant shifted to UTC (only meaningful with a time part).
    fn to_utc(self) -> Parts {
        match self.zone {
            Some(zone) if zone.minutes() != 0 && self.parts.precision >= Precision::Hour => {
                let ms = self.parts.epoch_millis() - i64::from(zone.minutes()) * 60_000;
                Parts::from_epoch_millis(ms, self.parts.precision)
            }
            _ => self.parts,
        }
    }

    /// FHIRPath ordering; `None` when precision (or a missing time zone on
    /// one side only) makes it unknowable.
    pub fn compare(&self, other: &DateTime) -> Option<Ordering> {
        let both_timed =
            self.parts.precision >= Precision::Hour && other.parts.precision >= Precision::Hour;
        if !both_timed {
            return self.parts.compare(&other.parts, Precision::Year);
        }
        match (self.zone, other.zone) {
            (Some(_), Some(_)) => self.to_utc().compare(&other.to_utc(), Precision::Year),
            (None, None) => self.parts.compare(&other.parts, Precision::Year),
            _ => None,
        }
    }

    /// Date/time arithmetic with a calendar duration.
    pub fn add(&self, amount: i64, unit: CalendarUnit) -> Option<DateTime> {
        Some(DateTime {
            parts: self.parts.add(amount, unit)?,
            zone: self.zone,
        })
    }

    /// `lowBoundary` / `highBoundary` at `digits` (4, 6, 8, 10, 12, 14, 17).
    /// A missing zone becomes +14:00 (low) or -12:00 (high).
    pub fn boundary(&self, digits: Option<i64>, high: bool) -> Option<DateTime> {
        let target = match digits.unwrap_or(17) {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            10 => Precision::Hour,
            12 => Precision::Minute,
            14 => Precision::Second,
            17 => Precision::Millisecond,
            _ => return None,
        };
        let parts = self.parts.boundary(target, high);
        let zone = if target >= Precision::Hour {
            Some(self.zone.unwrap_or(if high {
                TimeZone::Offset(-12 * 60)
            } else {
                TimeZone::Offset(14 * 60)
            }))
        } else {
            None
        };
        Some(DateTime { parts, zone })
    }

    /// Number of digits of precision (4 … 17).
    pub fn precision_digits(&self) -> i64 {
        match self.parts.precision {
            Precision::Year => 4,
            Precision::Month => 6,
            Precision::Day => 8,
            Precision::Hour => 10,
            Precision::Minute => 12,
            Precision::Second => 14,
            Precision::Millisecond => 17,
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts.fmt_date(f)?;
        if self.parts.precision >= Precision::Hour {
            f.write_str("T")?;
            self.parts.fmt_time(f)?;
            match self.zone {
                Some(TimeZone::Utc) => f.write_str("Z")?,
                Some(TimeZone::Offset(m)) => {
                    let sign = if m < 0 { '-' } else { '+' };
                    write!(f, "{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// A FHIRPath `Time` of day (no zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Time(Parts);

impl Time {
    /// Parses `hh(:mm(:ss(.fff)?)?)?`.
    pub fn parse(text: &str) -> Option<Time> {
        let mut s = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let mut parts = Parts {
            year: 1,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
            precision: Precision::Hour,
        };
        scan_time(&mut s, &mut parts)?;
        (s.at_end() && parts.valid()).then_some(Time(parts))
    }

    /// The precision (`Hour` … `Millisecond`).
    pub fn precision(&self) -> Precision {
        self.0.precision
    }

    /// Hour component.
    pub fn hour(&self) -> Option<u8> {
        Some(self.0.hour)
    }

    /// Minute component, if within precision.
    pub fn minute(&self) -> Option<u8> {
        (self.0.precision >= Precision::Minute).then_some(self.0.minute)
    }

    /// Second component, if within precision.
    pub fn second(&self) -> Option<u8> {
        (self.0.precision >= Precision::Second).then_some(self.0.second)
    }

    /// Millisecond component, if the value has fractional seconds.
    pub fn millisecond(&self) -> Option<u16> {
        (self.0.precision >= Precision::Millisecond).then_some(self.0.millis)
    }

    /// FHIRPath ordering; `None` when precision makes it unknowable.
    pub fn compare(&self, other: &Time) -> Option<Ordering> {
        self.0.compare(&other.0, Precision::Hour)
    }

    /// Time arithmetic (wraps around midnight). Only hour and finer units
    /// apply to a time.
    pub fn add(&self, amount: i64, unit: CalendarUnit) -> Option<Time> {
        let unit_ms = match unit {
            CalendarUnit::Hour
            | CalendarUnit::Minute
            | CalendarUnit::Second
            | CalendarUnit::Millisecond => unit.millis()?,
            _ => return None,
        };
        let step = match self.0.precision {
            Precision::Hour => 3_600_000,
            Precision::Minute => 60_000,
            Precision::Second => 1000,
            _ => 1,
        };
        // Only the shift within a day matters (times wrap around midnight).
        let delta = (amount.checked_mul(unit_ms)? / step * step).rem_euclid(MILLIS_PER_DAY);
        let ms = (self.0.epoch_millis() - days_from_civil(1, 1, 1) * MILLIS_PER_DAY + delta)
            .rem_euclid(MILLIS_PER_DAY);
        let mut parts = Parts::from_epoch_millis(ms, self.0.precision);
        parts.year = 1;
        parts.month = 1;
        parts.day = 1;
        Some(Time(parts))
    }

    /// `lowBoundary` / `highBoundary` at `digits` (2, 4, 6 or 9).
    pub fn boundary(&self, digits: Option<i64>, high: bool) -> Option<Time> {
        let target = match digits.unwrap_or(9) {
            2 => Precision::Hour,
            4 => Precision::Minute,
            6 => Precision::Second,
            9 => Precision::Millisecond,
            _ => return None,
        };
        Some(Time(self.0.boundary(target, high)))
    }

    /// Number of digits of precision (2, 4, 6 or 9).
    pub fn precision_digits(&self) -> i64 {
        match self.0.precision {
            Precision::Hour => 2,
            Precision::Minute => 4,
            Precision::Second => 6,
            _ => 9,
        }
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_time(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(Date::parse("2015-02").unwrap().to_string(), "2015-02");
        assert!(Date::parse("2015-02-30").is_none());
        assert_eq!(
            DateTime::parse("2015-02-04T14:34:28.1+10:00")
                .unwrap()
                .to_string(),
            "2015-02-04T14:34:28.100+10:00"
        );
        assert_eq!(DateTime::parse("2015T").unwrap().to_string(), "2015");
        assert_eq!(
            DateTime::parse("2015-02-04T14").unwrap().precision(),
            Precision::Hour
        );
        assert!(DateTime::parse("2015-02T14").is_none());
        assert_eq!(Time::parse("14:34").unwrap().to_string(), "14:34");
        assert!(Time::parse("24:00").is_none());
    }

    #[test]
    fn comparison_with_precision() {
        let a = DateTime::parse("2018-03-01T10:30").unwrap();
        let b = DateTime::parse("2018-03-01T10:30:00").unwrap();
        assert_eq!(a.compare(&b), None);
        let c = DateTime::parse("2018-03-01T10:30:00.0").unwrap();
        assert_eq!(b.compare(&c), Some(Ordering::Equal));
        let x = DateTime::parse("2017-11-05T01:30:00.0-04:00").unwrap();
        let y = DateTime::parse("2017-11-05T01:15:00.0-05:00").unwrap();
        assert_eq!(x.compare(&y), Some(Ordering::Less));
        assert_eq!(
            Date::parse("2018-03")
                .unwrap()
                .compare(&Date::parse("2018-04-01").unwrap()),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn arithmetic() {
        let d = Date::parse("1973-12-25").unwrap();
        assert_eq!(
            d.add(7, CalendarUnit::Day).unwrap().to_string(),
            "1974-01-01"
        );
        assert_eq!(
            d.add(1, CalendarUnit::Month).unwrap().to_string(),
            "1974-01-25"
        );
        assert_eq!(
            Date::parse("2019-01-31")
                .unwrap()
                .add(1, CalendarUnit::Month)
                .unwrap()
                .to_string(),
            "2019-02-28"
        );
        assert_eq!(
            d.add(25, CalendarUnit::Hour).unwrap().to_string(),
            "1973-12-26"
        );
        let t = Time::parse("23:30").unwrap();
        assert_eq!(t.add(1, CalendarUnit::Hour).unwrap().to_string(), "00:30");
    }

    #[test]
    fn unix_millis_round_trip() {
        let dt = DateTime::from_unix_millis(0, 600).unwrap();
        assert_eq!(dt.to_string(), "1970-01-01T10:00:00.000+10:00");
        assert_eq!(dt.to_unix_millis(), 0);
    }
}
