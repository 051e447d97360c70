//! Small, total helpers over FHIR JSON: dotted paths and FHIR dates.

use serde_json::Value;

/// Every value reached by a dotted path (`clinicalStatus.coding.code`),
/// stepping through arrays at each level.
pub fn values<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current: Vec<&Value> = vec![v];
    for step in path.split('.') {
        let mut next = Vec::new();
        for c in current {
            match c.get(step) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(other) => next.push(other),
                None => {}
            }
        }
        current = next;
    }
    current
}

/// The strings reached by a path.
pub fn strings<'a>(v: &'a Value, path: &str) -> Vec<&'a str> {
    values(v, path)
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The first string reached by a path.
pub fn string<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    values(v, path).into_iter().find_map(Value::as_str)
}

/// Microseconds since the Unix epoch of the start of a FHIR `date`,
/// `dateTime` or `instant` (a partial date starts at its first instant; a
/// time without zone is read as UTC). `None` when it does not parse.
pub fn date_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = num(0, 4)?;
    let month = if b.len() >= 7 { num(5, 2)? } else { 1 };
    let day = if b.len() >= 10 { num(8, 2)? } else { 1 };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut secs, mut offset) = (0i64, 0i64);
    if b.len() > 10 {
        let h = num(11, 2)?;
        let m = num(14, 2)?;
        let sec = num(17, 2).unwrap_or(0);
        secs = h * 3600 + m * 60 + sec;
        let rest = s.get(19..).unwrap_or("");
        let zone = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
        if let Some(z) = zone.strip_prefix(['+', '-']) {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let zh: i64 = z.get(0..2)?.parse().ok()?;
            let zm: i64 = z.get(3..5)?.parse().ok()?;
            offset = sign * (zh * 3600 + zm * 60);
        }
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + secs - offset) * 1_000_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The reference string's `Type/id` parts (`Organization/abc`, also the tail
/// of an absolute URL).
pub fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let mut parts = reference.rsplitn(3, '/');
    let id = parts.next()?;
    let rtype = parts.next()?;
    if id.is_empty() || rtype.is_empty() {
        return None;
    }
    Some((rtype, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_micros("1970-01-01"), Some(0));
        assert_eq!(date_micros("1970-01-02T00:00:00Z"), Some(86_400_000_000));
        assert_eq!(date_micros("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            date_micros("1970-01-01T00:00:00.123-00:30"),
            Some(1_800_000_000)
        );
        assert_eq!(date_micros("2026"), date_micros("2026-01-01"));
        assert_eq!(date_micros("2026-01-01"), Some(1_767_225_600_000_000));
        assert_eq!(date_micros("bad"), None);
        assert_eq!(date_micros("2026-13-01"), None);
    }

    #[test]
    fn paths() {
        let v = serde_json::json!({"a": [{"b": {"c": "x"}}, {"b": {"c": "y"}}]});
        assert_eq!(strings(&v, "a.b.c"), vec!["x", "y"]);
        assert_eq!(
            split_reference("http://h/fhir/Organization/1"),
            Some(("Organization", "1"))
        );
        assert_eq!(split_reference("x"), None);
    }
}
