//! FHIR dates and times as inclusive ranges of microseconds (UTC).
//!
//! A FHIR `date`, `dateTime` or `instant` denotes the whole period its
//! precision implies (R4 3.1.1.4.6): `2015` is every instant of 2015,
//! `2015-02-07T13:28:17-05:00` every instant of that second. [`parse_range`]
//! returns that period as `[low, high]`, both ends inclusive, in
//! microseconds since the Unix epoch, UTC (`store::Micros`).
//!
//! Invariants and choices:
//! - `low <= high` always; `high` is the last microsecond of the period.
//! - A value with a time but no time zone is read as UTC (R4 leaves the
//!   zone to the server; ours is UTC). Dates without a time have no zone
//!   and are taken as UTC days.
//! - Fractional seconds keep their precision: `.5` is 100 ms wide, `.123`
//!   1 ms wide, six or more digits 1 µs wide (digits past the sixth are
//!   truncated).
//! - Accepted forms: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and
//!   `YYYY-MM-DDThh:mm[:ss[.f…]][Z|±hh:mm]`. Minutes without seconds are not
//!   valid FHIR `dateTime`s but are accepted (search values use them).
//!   Years run from 0001 to 9999.

use store::Micros;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// The inclusive range of microseconds (UTC) that a FHIR date, dateTime or
/// instant denotes, or `None` if `s` is not one.
pub fn parse_range(s: &str) -> Option<(Micros, Micros)> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    if year == 0 {
        return None;
    }
    if b.len() == 4 {
        let low = day_start(year, 1, 1);
        return Some((low, day_start(year + 1, 1, 1) - 1));
    }
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if b.len() == 7 {
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        return Some((
            day_start(year, month, 1),
            day_start(next_year, next_month, 1) - 1,
        ));
    }
    if b.get(7) != Some(&b'-') {
        return None;
    }
    let day = digits(b, 8, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let midnight = day_start(year, month, day);
    if b.len() == 10 {
        return Some((midnight, midnight + MICROS_PER_DAY - 1));
    }
    if b.get(10) != Some(&b'T') {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut pos = 16;
    let mut local = midnight + (hour * 3_600 + minute * 60) * MICROS_PER_SECOND;
    // The width of the period, from the precision.
    let mut width = 60 * MICROS_PER_SECOND;
    if b.get(pos) == Some(&b':') {
        let second = digits(b, pos + 1, 2)?;
        if second > 60 {
            return None;
        }
        local += second * MICROS_PER_SECOND;
        width = MICROS_PER_SECOND;
        pos += 3;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            let mut fraction = 0;
            while let Some(d) = b.get(pos).filter(|c| c.is_ascii_digit()) {
                if pos - start < 6 {
                    fraction = fraction * 10 + i64::from(d - b'0');
                    width /= 10;
                }
                pos += 1;
            }
            let used = (pos - start).min(6);
            if used == 0 {
                return None;
            }
            // Scale the kept digits to microseconds.
            let scale = 10_i64.pow(u32::try_from(6 - used).ok()?);
            local += fraction * scale;
        }
    }
    let offset_minutes = match b.get(pos) {
        None => 0,
        Some(b'Z') if b.len() == pos + 1 => 0,
        Some(sign @ (b'+' | b'-')) => {
            if b.len() != pos + 6 || b.get(pos + 3) != Some(&b':') {
                return None;
            }
            let hours = digits(b, pos + 1, 2)?;
            let minutes = digits(b, pos + 4, 2)?;
            if hours > 14 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' { -total } else { total }
        }
        Some(_) => return None,
    };
    let low = local - offset_minutes * 60 * MICROS_PER_SECOND;
    Some((low, low + width - 1))
}

/// The number at `b[start..start + len]`, which must be all ASCII digits.
fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let slice = b.get(start..start + len)?;
    let mut n = 0;
    for d in slice {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(n)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Microseconds at 00:00 UTC of a proleptic Gregorian date.
fn day_start(year: i64, month: i64, day: i64) -> Micros {
    days_from_civil(year, month, day) * MICROS_PER_DAY
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    // Reference values: 2015-01-01T00:00:00Z is 1_420_070_400 s after the epoch.
    const Y2015: i64 = 1_420_070_400_000_000;
    const Y2016: i64 = 1_451_606_400_000_000;

    #[test]
    fn year_month_day() {
        assert_eq!(parse_range("2015"), Some((Y2015, Y2016 - 1)));
        // February 2015: 2015-02-01 is day 31 of the year; March starts on day 59.
        let feb = Y2015 + 31 * 86_400_000_000;
        let mar = Y2015 + 59 * 86_400_000_000;
        assert_eq!(parse_range("2015-02"), Some((feb, mar - 1)));
        assert_eq!(
            parse_range("2015-12"),
            Some((Y2016 - 31 * 86_400_000_000, Y2016 - 1))
        );
        assert_eq!(
            parse_range("2015-02-07"),
            Some((feb + 6 * 86_400_000_000, feb + 7 * 86_400_000_000 - 1))
        );
        assert_eq!(parse_range("1970-01-01"), Some((0, 86_400_000_000 - 1)));
        // Before the epoch.
        assert_eq!(parse_range("1969-12-31"), Some((-86_400_000_000, -1)));
    }

    #[test]
    fn times_and_zones() {
        let day = Y2015 + 37 * 86_400_000_000; // 2015-02-07
        let at = day + (18 * 3_600 + 28 * 60 + 17) * 1_000_000; // 18:28:17Z
        assert_eq!(
            parse_range("2015-02-07T13:28:17-05:00"),
            Some((at, at + 999_999))
        );
        assert_eq!(
            parse_range("2015-02-07T18:28:17Z"),
            Some((at, at + 999_999))
        );
        assert_eq!(parse_range("2015-02-07T18:28:17"), Some((at, at + 999_999)));
        assert_eq!(
            parse_range("2015-02-07T19:28:17+01:00"),
            Some((at, at + 999_999))
        );
        assert_eq!(
            parse_range("2015-02-07T18:28:17.123Z"),
            Some((at + 123_000, at + 123_999))
        );
        assert_eq!(
            parse_range("2015-02-07T18:28:17.5Z"),
            Some((at + 500_000, at + 599_999))
        );
        assert_eq!(
            parse_range("2015-02-07T18:28:17.1234567Z"),
            Some((at + 123_456, at + 123_456))
        );
        let minute = at - 17_000_000;
        assert_eq!(
            parse_range("2015-02-07T18:28Z"),
            Some((minute, minute + 59_999_999))
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "15",
            "2015-",
            "2015-13",
            "2015-00",
            "2015-02-29",
            "2016-02-30",
            "2015-02-07T",
            "2015-02-07T24:00:00Z",
            "2015-02-07T13:60:00Z",
            "2015-02-07T13:28:17+5",
            "2015-02-07T13:28:17.Z",
            "2015-02-07 13:28",
            "0000",
            "2015-02-07T13:28:17Zx",
            "abcd",
            "2015-02-07Z",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert!(parse_range("2016-02-29").is_some());
        assert!(parse_range("2000-02-29").is_some());
        assert!(parse_range("1900-02-29").is_none());
    }
}
