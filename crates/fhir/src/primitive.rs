//! FHIR R4 primitive data types and hand-written checks of their JSON values.
//!
//! Each check follows the regular expression published with the type's
//! StructureDefinition (for example `date` allows `YYYY`, `YYYY-MM` and
//! `YYYY-MM-DD`), plus the JSON rules: numbers and booleans are JSON numbers
//! and booleans, everything else is a non-empty JSON string. Dates are also
//! checked against the calendar (no 30 February).

use serde_json::Value;

/// A FHIR R4 primitive type. `xhtml` is included because `Narrative.div` uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    Base64Binary,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

/// Why a JSON value is not a valid instance of a primitive type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrimitiveError {
    /// The JSON kind is wrong; the payload names the expected kind ("a JSON string").
    WrongJsonKind(&'static str),
    /// An empty string, which FHIR JSON forbids.
    Empty,
    /// The value has the right JSON kind but not the type's format; the payload
    /// describes the expected format without echoing the value.
    Format(&'static str),
}

impl Primitive {
    /// Maps a FHIR type code such as `"dateTime"` to the primitive type, if it is one.
    pub(crate) fn from_code(code: &str) -> Option<Primitive> {
        Some(match code {
            "base64Binary" => Primitive::Base64Binary,
            "boolean" => Primitive::Boolean,
            "canonical" => Primitive::Canonical,
            "code" => Primitive::Code,
            "date" => Primitive::Date,
            "dateTime" => Primitive::DateTime,
            "decimal" => Primitive::Decimal,
            "id" => Primitive::Id,
            "instant" => Primitive::Instant,
            "integer" => Primitive::Integer,
            "markdown" => Primitive::Markdown,
            "oid" => Primitive::Oid,
            "positiveInt" => Primitive::PositiveInt,
            "string" => Primitive::String,
            "time" => Primitive::Time,
            "unsignedInt" => Primitive::UnsignedInt,
            "uri" => Primitive::Uri,
            "url" => Primitive::Url,
            "uuid" => Primitive::Uuid,
            "xhtml" => Primitive::Xhtml,
            _ => return None,
        })
    }

    /// The FHIR type code, e.g. `"dateTime"`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Primitive::Base64Binary => "base64Binary",
            Primitive::Boolean => "boolean",
            Primitive::Canonical => "canonical",
            Primitive::Code => "code",
            Primitive::Date => "date",
            Primitive::DateTime => "dateTime",
            Primitive::Decimal => "decimal",
            Primitive::Id => "id",
            Primitive::Instant => "instant",
            Primitive::Integer => "integer",
            Primitive::Markdown => "markdown",
            Primitive::Oid => "oid",
            Primitive::PositiveInt => "positiveInt",
            Primitive::String => "string",
            Primitive::Time => "time",
            Primitive::UnsignedInt => "unsignedInt",
            Primitive::Uri => "uri",
            Primitive::Url => "url",
            Primitive::Uuid => "uuid",
            Primitive::Xhtml => "xhtml",
        }
    }

    /// Checks one JSON value (never `null`: callers handle nulls) against this type.
    pub(crate) fn check(self, value: &Value) -> Result<(), PrimitiveError> {
        match self {
            Primitive::Boolean => match value {
                Value::Bool(_) => Ok(()),
                _ => Err(PrimitiveError::WrongJsonKind("a JSON boolean")),
            },
            Primitive::Decimal => match value {
                Value::Number(_) => Ok(()),
                _ => Err(PrimitiveError::WrongJsonKind("a JSON number")),
            },
            Primitive::Integer => check_integer(value, i64::from(i32::MIN), "an integer"),
            Primitive::UnsignedInt => check_integer(value, 0, "an integer of 0 or more"),
            Primitive::PositiveInt => check_integer(value, 1, "an integer of 1 or more"),
            _ => {
                let Value::String(s) = value else {
                    return Err(PrimitiveError::WrongJsonKind("a JSON string"));
                };
                if s.is_empty() {
                    return Err(PrimitiveError::Empty);
                }
                self.check_string(s)
            }
        }
    }

    /// Checks the lexical form of a non-empty string value.
    fn check_string(self, s: &str) -> Result<(), PrimitiveError> {
        // R4 datatypes: strings hold no control characters other than
        // tab, carriage return and line feed (regex `[ \r\n\t\S]+`).
        if s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
        {
            return Err(PrimitiveError::Format("text without control characters"));
        }
        let (ok, expected) = match self {
            // Numbers and booleans are handled by `check`; strings and markdown
            // only need to be non-empty, which the caller has checked.
            Primitive::Boolean
            | Primitive::Decimal
            | Primitive::Integer
            | Primitive::UnsignedInt
            | Primitive::PositiveInt
            | Primitive::String
            | Primitive::Markdown => (true, ""),
            Primitive::Base64Binary => (is_base64(s), "base64 text"),
            Primitive::Canonical | Primitive::Uri | Primitive::Url => (
                !s.chars().any(char::is_whitespace),
                "a URI without whitespace",
            ),
            Primitive::Code => (
                is_code(s),
                "a code without leading, trailing or repeated whitespace",
            ),
            Primitive::Date => (is_date(s), "a date: YYYY, YYYY-MM or YYYY-MM-DD"),
            Primitive::DateTime => (
                is_date_time(s),
                "a dateTime: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss] with a timezone (Z or +hh:mm)",
            ),
            Primitive::Instant => (
                is_instant(s),
                "an instant: YYYY-MM-DDThh:mm:ss[.sss] with a timezone (Z or +hh:mm)",
            ),
            Primitive::Time => (is_time(s), "a time: hh:mm:ss[.sss]"),
            Primitive::Id => (
                crate::is_valid_id(s),
                "an id: 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'",
            ),
            Primitive::Oid => (is_oid(s), "an OID URI: urn:oid:1.2.3"),
            Primitive::Uuid => (
                is_uuid_urn(s),
                "a UUID URI: urn:uuid: followed by a lower-case UUID",
            ),
            Primitive::Xhtml => (
                s.trim_start().starts_with("<div"),
                "XHTML starting with a <div> element",
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(PrimitiveError::Format(expected))
        }
    }
}

/// Checks a JSON integer in `min..=i32::MAX` (FHIR integers are 32-bit signed).
fn check_integer(value: &Value, min: i64, expected: &'static str) -> Result<(), PrimitiveError> {
    let Value::Number(n) = value else {
        return Err(PrimitiveError::WrongJsonKind("a JSON number"));
    };
    match n.as_i64() {
        Some(i) if (min..=i64::from(i32::MAX)).contains(&i) => Ok(()),
        _ => Err(PrimitiveError::Format(expected)),
    }
}

/// FHIR `id`: 1 to 64 characters from `[A-Za-z0-9\-\.]`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// FHIR `code`: `[^\s]+(\s[^\s]+)*` — non-empty, no leading or trailing
/// whitespace, and no two whitespace characters in a row.
pub(crate) fn is_code(s: &str) -> bool {
    let mut previous_was_space = true;
    for c in s.chars() {
        let space = c.is_whitespace();
        if space && previous_was_space {
            return false;
        }
        previous_was_space = space;
    }
    !previous_was_space
}

/// Reads `n` ASCII digits of `b` starting at `from` as a number.
fn digits(b: &[u8], from: usize, n: usize) -> Option<u32> {
    let part = b.get(from..from.checked_add(n)?)?;
    part.iter().try_fold(0u32, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, year 0001 to 9999, a real calendar day.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(year) = digits(b, 0, 4).filter(|y| *y >= 1) else {
        return false;
    };
    match b.len() {
        4 => true,
        7 | 10 => {
            let Some(month) = digits(b, 5, 2).filter(|m| (1..=12).contains(m)) else {
                return false;
            };
            if b.get(4) != Some(&b'-') {
                return false;
            }
            if b.len() == 7 {
                return true;
            }
            b.get(7) == Some(&b'-')
                && digits(b, 8, 2).is_some_and(|d| (1..=days_in_month(year, month)).contains(&d))
        }
        _ => false,
    }
}

/// FHIR `time`: `hh:mm:ss` with optional fractional seconds; 60 seconds allowed (leap second).
pub(crate) fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    let clock = digits(b, 0, 2).is_some_and(|h| h <= 23)
        && b.get(2) == Some(&b':')
        && digits(b, 3, 2).is_some_and(|m| m <= 59)
        && b.get(5) == Some(&b':')
        && digits(b, 6, 2).is_some_and(|s| s <= 60);
    clock && is_fraction(b.get(8..).unwrap_or_default())
}

/// An empty string, or `.` followed by at least one digit.
fn is_fraction(b: &[u8]) -> bool {
    match b.split_first() {
        None => true,
        Some((b'.', rest)) => !rest.is_empty() && rest.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// A timezone: `Z`, or `+hh:mm` / `-hh:mm` with hours 00–13 (or exactly 14:00).
fn is_timezone(b: &[u8]) -> bool {
    match b.split_first() {
        Some((b'Z', [])) => true,
        Some((b'+' | b'-', rest)) if rest.len() == 5 => {
            let hours = digits(rest, 0, 2);
            let minutes = digits(rest, 3, 2);
            rest.get(2) == Some(&b':')
                && match (hours, minutes) {
                    (Some(h), Some(m)) => (h <= 13 && m <= 59) || (h == 14 && m == 0),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`: a full date, a time and a timezone.
fn is_full_date_time(s: &str) -> bool {
    let Some((date, rest)) = s.split_at_checked(10) else {
        return false;
    };
    let Some(("T", rest)) = rest.split_at_checked(1) else {
        return false;
    };
    // The time is hh:mm:ss plus an optional fraction; the timezone follows.
    let b = rest.as_bytes();
    let tz_start = b
        .iter()
        .position(|c| matches!(c, b'Z' | b'+' | b'-'))
        .unwrap_or(b.len());
    let (time, tz) = b.split_at(tz_start);
    is_date(date) && std::str::from_utf8(time).is_ok_and(is_time) && is_timezone(tz)
}

/// FHIR `dateTime`: a partial date, or a full date with a time and a timezone.
pub(crate) fn is_date_time(s: &str) -> bool {
    if s.len() <= 10 {
        is_date(s)
    } else {
        is_full_date_time(s)
    }
}

/// FHIR `instant`: a full date, time to the second, and a timezone.
pub(crate) fn is_instant(s: &str) -> bool {
    is_full_date_time(s)
}

/// FHIR `oid`: `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`.
pub(crate) fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut arcs = rest.split('.');
    let first_ok = arcs.next().is_some_and(|a| matches!(a, "0" | "1" | "2"));
    let mut count = 0usize;
    let rest_ok = arcs.all(|arc| {
        count += 1;
        !arc.is_empty()
            && arc.bytes().all(|b| b.is_ascii_digit())
            && (arc == "0" || !arc.starts_with('0'))
    });
    first_ok && rest_ok && count >= 1
}

/// A UUID in its 8-4-4-4-12 hexadecimal form; `lower_only` restricts to lower case.
pub(crate) fn is_uuid(s: &str, lower_only: bool) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => {
                c.is_ascii_digit()
                    || matches!(c, b'a'..=b'f')
                    || (!lower_only && matches!(c, b'A'..=b'F'))
            }
        })
}

/// FHIR `uuid`: `urn:uuid:` followed by a lower-case UUID.
pub(crate) fn is_uuid_urn(s: &str) -> bool {
    s.strip_prefix("urn:uuid:")
        .is_some_and(|u| is_uuid(u, true))
}

/// FHIR `base64Binary`: base64 characters in groups of four, whitespace allowed,
/// padding (`=`) only at the end.
pub(crate) fn is_base64(s: &str) -> bool {
    let mut count = 0usize;
    let mut padding = 0usize;
    for b in s.bytes() {
        if b.is_ascii_whitespace() {
            continue;
        }
        count += 1;
        if b == b'=' {
            padding += 1;
        } else if padding > 0 || !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
            return false;
        }
    }
    count > 0 && count.is_multiple_of(4) && padding <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert!(is_valid_id("a"));
        assert!(is_valid_id("Abc-123.x"));
        assert!(is_valid_id(&"a".repeat(64)));
        assert!(!is_valid_id(&"a".repeat(65)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a_b"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id("a/b"));
    }

    #[test]
    fn codes() {
        for ok in ["male", "a b", "x"] {
            assert!(is_code(ok), "{ok:?}");
        }
        for bad in ["", " a", "a ", "a  b", "\t", "a\n"] {
            assert!(!is_code(bad), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        for ok in [
            "2020",
            "2020-01",
            "2020-12-31",
            "2020-02-29",
            "2000-02-29",
            "0001-01-01",
        ] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "2020-13-01",
            "2020-02-30",
            "2019-02-29",
            "1900-02-29",
            "0000",
            "20",
            "2020-1",
            "2020-01-1",
            "2020/01/01",
            "2020-00",
            "2020-01-00",
            "2020-04-31",
            "2020-01-01T00:00:00Z",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn date_times() {
        for ok in [
            "2020",
            "2020-05",
            "2020-05-06",
            "2015-02-07T13:28:17Z",
            "2015-02-07T13:28:17-05:00",
            "2015-02-07T13:28:17.239+02:00",
            "2015-02-07T23:59:60+14:00",
            "2011-04-15T09:13:12+00:00",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "2015-02-07T13:28:17",
            "2015-02-07T13:28Z",
            "2015-02-07T24:00:00Z",
            "2015-02-07 13:28:17Z",
            "2015-02-07T13:28:17+14:30",
            "2015-02-07T13:28:17+5:00",
            "2015-02-07T13:28:17.Z",
            "2015-02-30T13:28:17Z",
            "2015-02-07T",
            "2015-02-07T13:28:17ZZ",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }

    #[test]
    fn instants_and_times() {
        assert!(is_instant("2015-02-07T13:28:17.239+02:00"));
        assert!(!is_instant("2015-02-07"));
        assert!(is_time("13:28:17"));
        assert!(is_time("13:28:17.5"));
        assert!(!is_time("13:28"));
        assert!(!is_time("25:00:00"));
        assert!(!is_time("13:28:17."));
    }

    #[test]
    fn oids_uuids_base64() {
        assert!(is_oid("urn:oid:2.16.840.1.113883"));
        assert!(!is_oid("urn:oid:3.1"));
        assert!(!is_oid("urn:oid:1"));
        assert!(!is_oid("urn:oid:1.02"));
        assert!(!is_oid("2.16.840"));
        assert!(is_uuid_urn("urn:uuid:a656ed17-26cc-47cb-981e-22207719cc22"));
        assert!(!is_uuid_urn(
            "urn:uuid:A656ED17-26CC-47CB-981E-22207719CC22"
        ));
        assert!(is_uuid("A656ED17-26CC-47CB-981E-22207719CC22", false));
        assert!(!is_uuid_urn("urn:uuid:a656ed17-26cc-47cb-981e"));
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("aGVs\nbG8h"));
        assert!(!is_base64("aGVsbG8"));
        assert!(!is_base64("aGV=bG8="));
        assert!(!is_base64("a*Vs"));
    }

    #[test]
    fn json_kinds_and_ranges() {
        use Primitive as P;
        assert_eq!(P::Boolean.check(&json!(true)), Ok(()));
        assert!(matches!(
            P::Boolean.check(&json!("true")),
            Err(PrimitiveError::WrongJsonKind(_))
        ));
        assert_eq!(P::Decimal.check(&json!(1.5)), Ok(()));
        assert!(P::Decimal.check(&json!("1.5")).is_err());
        assert_eq!(P::Integer.check(&json!(-5)), Ok(()));
        assert!(P::Integer.check(&json!(1.5)).is_err());
        assert!(P::Integer.check(&json!(3_000_000_000_i64)).is_err());
        assert!(P::UnsignedInt.check(&json!(-1)).is_err());
        assert_eq!(P::UnsignedInt.check(&json!(0)), Ok(()));
        assert!(P::PositiveInt.check(&json!(0)).is_err());
        assert_eq!(P::String.check(&json!("")), Err(PrimitiveError::Empty));
        assert!(P::String.check(&json!(5)).is_err());
        assert_eq!(
            P::Xhtml.check(&json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"/>")),
            Ok(())
        );
        assert!(P::Xhtml.check(&json!("<p>hi</p>")).is_err());
        for code in ["dateTime", "code", "xhtml", "positiveInt"] {
            assert_eq!(Primitive::from_code(code).map(Primitive::code), Some(code));
        }
        assert_eq!(Primitive::from_code("HumanName"), None);
    }
}
