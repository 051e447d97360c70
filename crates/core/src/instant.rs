//! Stored times (microseconds since the epoch, UTC) to and from FHIR strings.

use store::Micros;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-11-25T15:25:04.123456Z`: a FHIR `instant` with microseconds, so
/// that `_since` with a value read back from `meta.lastUpdated` is exact.
pub fn to_instant(micros: Micros) -> String {
    let nanos = i128::from(micros) * 1_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let d = t.date();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                d.year(),
                u8::from(d.month()),
                d.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            )
        }
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// Parses a FHIR `instant`/`dateTime` with a timezone, or a `date`
/// (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, read as the start of that period, UTC).
pub fn parse_instant(s: &str) -> Option<Micros> {
    let to_micros = |t: OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000).ok();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return to_micros(t);
    }
    let padded = match s.len() {
        4 => format!("{s}-01-01T00:00:00Z"),
        7 => format!("{s}-01T00:00:00Z"),
        10 => format!("{s}T00:00:00Z"),
        _ => return None,
    };
    OffsetDateTime::parse(&padded, &Rfc3339)
        .ok()
        .and_then(to_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = 1_764_084_304_123_456;
        let s = to_instant(t);
        assert_eq!(s, "2025-11-25T15:25:04.123456Z");
        assert_eq!(parse_instant(&s), Some(t));
    }

    #[test]
    fn forms() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_instant("1970-01-01T01:00:01+01:00"), Some(1_000_000));
        assert_eq!(parse_instant("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_instant("1970-02"), Some(31 * 86_400_000_000));
        assert_eq!(parse_instant("1971"), Some(365 * 86_400_000_000));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(
            parse_instant("2020-01-01T10:00:00"),
            None,
            "a time needs a zone"
        );
    }
}
