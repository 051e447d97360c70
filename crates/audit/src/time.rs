//! Formatting [`Micros`] (microseconds since the Unix epoch, UTC) as a FHIR
//! `instant`, without a date library.
//!
//! Invariants:
//! - The output is always `YYYY-MM-DDThh:mm:ss.ffffffZ`: UTC, six fraction
//!   digits, `Z`. Times before the epoch are handled (floor division).
//! - Every `i64` input formats without panicking. Years outside 0000–9999
//!   (more than about 8,000 years from the epoch) are not valid FHIR
//!   instants; they are printed as their plain year number.

use store::Micros;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// `micros` as a FHIR instant, e.g. `2023-11-14T22:13:20.000000Z`.
pub fn format_instant(micros: Micros) -> String {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let fraction = micros.rem_euclid(MICROS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = second_of_day / 3600;
    let minute = second_of_day % 3600 / 60;
    let second = second_of_day % 60;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction:06}Z")
}

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`). `days` is at most about
/// 1.1e8 in magnitude here, so nothing overflows.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // 0..=399
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365
    let march_month = (5 * day_of_year + 2) / 153; // 0..=11, March = 0
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_epoch_and_known_instants() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_instant(1_700_000_000 * MICROS_PER_SECOND),
            "2023-11-14T22:13:20.000000Z"
        );
        assert_eq!(
            format_instant(951_782_400 * MICROS_PER_SECOND + 123_456),
            "2000-02-29T00:00:00.123456Z"
        );
        assert_eq!(
            format_instant(1_709_251_199 * MICROS_PER_SECOND + 999_999),
            "2024-02-29T23:59:59.999999Z"
        );
        assert_eq!(
            format_instant(253_402_300_799 * MICROS_PER_SECOND),
            "9999-12-31T23:59:59.000000Z"
        );
    }

    #[test]
    fn formats_times_before_the_epoch() {
        assert_eq!(format_instant(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            format_instant(-86_400 * MICROS_PER_SECOND),
            "1969-12-31T00:00:00.000000Z"
        );
        assert_eq!(
            format_instant(-2_208_988_800 * MICROS_PER_SECOND),
            "1900-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn agrees_with_a_day_by_day_walk() {
        // Walk the calendar from 1969-01-01 for 800 years' worth of days
        // at a stride, checking against a simple reference.
        fn is_leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        fn month_len(y: i64, m: i64) -> i64 {
            match m {
                2 if is_leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        let (mut y, mut m, mut d) = (1969, 1, 1);
        let mut days = -365;
        while y < 2400 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
            days += 1;
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        assert!(format_instant(i64::MAX).ends_with('Z'));
        assert!(format_instant(i64::MIN).ends_with('Z'));
    }
}
