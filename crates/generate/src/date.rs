//! Calendar dates without a clock: days since 1970-01-01 (proleptic
//! Gregorian), converted with Howard Hinnant's civil-date algorithms.

use std::fmt;

/// A calendar date, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i64);

impl Date {
    /// The date `y-m-d`; `None` unless it exists.
    pub fn from_ymd(y: i64, m: u32, d: u32) -> Option<Date> {
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        Some(Date(days_from_civil(y, m, d)))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut parts = s.split('-');
        let y = parts.next()?;
        let m = parts.next()?;
        let d = parts.next()?;
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        Date::from_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    pub fn days(self) -> i64 {
        self.0
    }

    pub fn from_days(days: i64) -> Date {
        Date(days)
    }

    pub fn plus_days(self, n: i64) -> Date {
        Date(self.0 + n)
    }

    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.0)
    }

    /// Whole years from `self` (a birth date) to `on`.
    pub fn age_on(self, on: Date) -> i64 {
        let (y0, m0, d0) = self.ymd();
        let (y1, m1, d1) = on.ymd();
        let mut age = y1 - y0;
        if (m1, d1) < (m0, d0) {
            age -= 1;
        }
        age
    }

    /// The date `years` years later (29 February becomes 28 February).
    pub fn plus_years(self, years: i64) -> Date {
        let (y, m, d) = self.ymd();
        let y = y + years;
        let d = d.min(days_in_month(y, m));
        Date(days_from_civil(y, m, d))
    }

    /// A FHIR `dateTime` at `minutes` past midnight (UTC).
    pub fn at(self, minutes: i64) -> String {
        let minutes = minutes.clamp(0, 24 * 60 - 1);
        format!("{self}T{:02}:{:02}:00Z", minutes / 60, minutes % 60)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for days in -600_000..800_000i64 {
            let d = Date(days);
            assert_eq!(Date::parse(&d.to_string()).map(Date::days), Some(days));
        }
        assert_eq!(Date::parse("1970-01-01").map(Date::days), Some(0));
        assert_eq!(Date::parse("2000-03-01").map(Date::days), Some(11_017));
        assert!(Date::parse("2023-02-29").is_none());
        assert!(Date::parse("2024-02-29").is_some());
        assert!(Date::parse("2024-2-01").is_none());
    }

    #[test]
    fn ages() {
        let born = Date::parse("2000-06-15").unwrap();
        assert_eq!(born.age_on(Date::parse("2020-06-14").unwrap()), 19);
        assert_eq!(born.age_on(Date::parse("2020-06-15").unwrap()), 20);
        let leap = Date::parse("2024-02-29").unwrap();
        assert_eq!(leap.plus_years(1).to_string(), "2025-02-28");
        assert_eq!(leap.at(9 * 60 + 5), "2024-02-29T09:05:00Z");
    }
}
