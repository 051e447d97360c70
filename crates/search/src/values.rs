//! Parsing of search values (R4 3.1.1.4 and 3.1.1.5): escaping, prefixes,
//! and the value syntax of each parameter type.
//!
//! Values arrive percent-decoded. Within a value, `,` separates OR values,
//! `$` separates the parts of a composite and `|` the parts of a token or
//! quantity; `\,`, `\$`, `\|` and `\\` stand for the characters themselves.
//! Splitting always works on the raw text (escapes kept) and only the leaves
//! are unescaped, so an escaped separator never splits.
//!
//! Every function returns the reason a value is malformed as `Err(String)`;
//! the caller names the parameter.

use store::Micros;
use store::search::{Prefix, QuantityValue, RangeValue, ReferenceValue, TokenValue};

use crate::number::parse_number;
use crate::time::parse_range;

/// The fraction of the distance used by the `ap` prefix (R4 recommends 10%).
const APPROXIMATION: f64 = 0.1;

/// Splits `raw` at each `sep` not preceded by an escaping backslash. The
/// parts keep their escapes.
pub fn split_escaped(raw: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(raw.get(start..i).unwrap_or_default());
            start = i + c.len_utf8();
        }
    }
    parts.push(raw.get(start..).unwrap_or_default());
    parts
}

/// Removes the escaping backslashes of `\,`, `\$`, `\|` and `\\`. Any other
/// backslash is kept as written.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && matches!(next, ',' | '$' | '|' | '\\')
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// The prefix of an ordered value as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Plain(Prefix),
    Approximately,
}

/// Splits off a two-letter prefix (`eq ne gt lt ge le sa eb ap`); no prefix
/// means `eq`.
fn split_prefix(raw: &str) -> (Written, &str) {
    let prefix = match raw.get(..2) {
        Some("eq") => Written::Plain(Prefix::Eq),
        Some("ne") => Written::Plain(Prefix::Ne),
        Some("gt") => Written::Plain(Prefix::Gt),
        Some("lt") => Written::Plain(Prefix::Lt),
        Some("ge") => Written::Plain(Prefix::Ge),
        Some("le") => Written::Plain(Prefix::Le),
        Some("sa") => Written::Plain(Prefix::Sa),
        Some("eb") => Written::Plain(Prefix::Eb),
        Some("ap") => Written::Approximately,
        _ => return (Written::Plain(Prefix::Eq), raw),
    };
    (prefix, raw.get(2..).unwrap_or_default())
}

/// A date value with its prefix: the range its precision implies. `ap`
/// widens the range on both sides by 10% of the distance between `now` and
/// the nearest end of the range (nothing when the range contains `now`), and
/// becomes [`Prefix::Overlaps`].
pub fn date_value(raw: &str, now: Micros) -> Result<RangeValue<Micros>, String> {
    let (written, text) = split_prefix(raw);
    let (low, high) = parse_range(text).ok_or_else(|| format!("'{raw}' is not a valid date"))?;
    Ok(match written {
        Written::Plain(prefix) => RangeValue { prefix, low, high },
        Written::Approximately => {
            let gap = if now < low {
                low.saturating_sub(now)
            } else if now > high {
                now.saturating_sub(high)
            } else {
                0
            };
            let widen = gap / 10;
            RangeValue {
                prefix: Prefix::Overlaps,
                low: low.saturating_sub(widen),
                high: high.saturating_add(widen),
            }
        }
    })
}

/// A number value with its prefix: the range its precision implies. `ap`
/// widens the range on both sides by 10% of the value's magnitude and
/// becomes [`Prefix::Overlaps`].
pub fn number_value(raw: &str) -> Result<RangeValue<f64>, String> {
    let (written, text) = split_prefix(raw);
    let n = parse_number(text).ok_or_else(|| format!("'{raw}' is not a valid number"))?;
    Ok(match written {
        Written::Plain(prefix) => RangeValue {
            prefix,
            low: n.low,
            high: n.high,
        },
        Written::Approximately => {
            let widen = n.value.abs() * APPROXIMATION;
            RangeValue {
                prefix: Prefix::Overlaps,
                low: n.low - widen,
                high: n.high + widen,
            }
        }
    })
}

/// A quantity value: `[prefix]number`, or `[prefix]number|system|code` where
/// either of system and code may be empty (`5.4||mg`).
pub fn quantity_value(raw: &str) -> Result<QuantityValue, String> {
    let parts = split_escaped(raw, '|');
    let (number, system, code) = match parts.as_slice() {
        [number] => (*number, None, None),
        [number, system, code] => (*number, non_empty(system), non_empty(code)),
        _ => {
            return Err(format!(
                "'{raw}' is not a quantity (number, or number|system|code)"
            ));
        }
    };
    let range = number_value(&unescape(number))?;
    Ok(QuantityValue {
        prefix: range.prefix,
        low: range.low,
        high: range.high,
        system,
        code,
    })
}

fn non_empty(raw: &str) -> Option<String> {
    (!raw.is_empty()).then(|| unescape(raw))
}

/// A token value: `code`, `system|code`, `|code` (no system) or `system|`
/// (any code in the system).
pub fn token_value(raw: &str) -> Result<TokenValue, String> {
    let parts = split_escaped(raw, '|');
    match parts.as_slice() {
        [code] if !code.is_empty() => Ok(TokenValue {
            system: None,
            code: Some(unescape(code)),
        }),
        [system, code] if !system.is_empty() || !code.is_empty() => Ok(TokenValue {
            system: Some(unescape(system)),
            code: non_empty(code),
        }),
        _ => Err(format!(
            "'{raw}' is not a token (code, system|code, |code or system|)"
        )),
    }
}

/// An `:of-type` value `type-system|type-code|value`, as the synthetic code
/// indexed under `<param>:of-type`.
pub fn of_type_value(raw: &str) -> Result<TokenValue, String> {
    match split_escaped(raw, '|').as_slice() {
        [system, code, value] if !code.is_empty() && !value.is_empty() => Ok(TokenValue {
            system: None,
            code: Some(format!(
                "{}|{}|{}",
                unescape(system),
                unescape(code),
                unescape(value)
            )),
        }),
        _ => Err(format!(
            "'{raw}' is not an identifier type and value (type-system|type-code|value)"
        )),
    }
}

/// A reference value: `id`, `Type/id` (a `/_history/version` suffix is
/// dropped), or an absolute URL (including `urn:` URLs). `of_type` is the
/// type given by a `:Type` modifier; a `Type/id` value must agree with it.
pub fn reference_value(raw: &str, of_type: Option<&str>) -> Result<ReferenceValue, String> {
    let value = unescape(raw);
    if value.contains("://") || value.starts_with("urn:") {
        return Ok(ReferenceValue {
            target_type: None,
            id: None,
            url: Some(value),
        });
    }
    let without_version = match value.find("/_history/") {
        Some(i) => value.get(..i).unwrap_or_default(),
        None => value.as_str(),
    };
    let (rtype, id) = match without_version.split_once('/') {
        Some((rtype, id)) => {
            if !fhir::is_known_resource_type(rtype) {
                return Err(format!("'{raw}': unknown resource type {rtype}"));
            }
            if let Some(expected) = of_type
                && expected != rtype
            {
                return Err(format!("'{raw}' is not a reference to a {expected}"));
            }
            (Some(rtype), id)
        }
        None => (of_type, without_version),
    };
    if !fhir::is_valid_id(id) {
        return Err(format!(
            "'{raw}' is not a valid reference (id, Type/id or URL)"
        ));
    }
    Ok(ReferenceValue {
        target_type: rtype.map(str::to_owned),
        id: Some(id.to_owned()),
        url: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_unescaped_separators_only() {
        assert_eq!(split_escaped("a,b\\,c,d", ','), ["a", "b\\,c", "d"]);
        assert_eq!(split_escaped("a\\\\,b", ','), ["a\\\\", "b"]);
        assert_eq!(split_escaped("", ','), [""]);
        assert_eq!(split_escaped("a,", ','), ["a", ""]);
        assert_eq!(unescape("b\\,c\\$d\\|e\\\\f\\g"), "b,c$d|e\\f\\g");
    }

    #[test]
    fn token_forms() {
        let t = |s: Option<&str>, c: Option<&str>| TokenValue {
            system: s.map(String::from),
            code: c.map(String::from),
        };
        assert_eq!(token_value("abc"), Ok(t(None, Some("abc"))));
        assert_eq!(
            token_value("http://s|abc"),
            Ok(t(Some("http://s"), Some("abc")))
        );
        assert_eq!(token_value("|abc"), Ok(t(Some(""), Some("abc"))));
        assert_eq!(token_value("http://s|"), Ok(t(Some("http://s"), None)));
        assert_eq!(token_value("a\\|b"), Ok(t(None, Some("a|b"))));
        assert!(token_value("|").is_err());
        assert!(token_value("").is_err());
        assert!(token_value("a|b|c").is_err());
    }

    #[test]
    fn reference_forms() {
        let r = |t: Option<&str>, id: Option<&str>, url: Option<&str>| ReferenceValue {
            target_type: t.map(String::from),
            id: id.map(String::from),
            url: url.map(String::from),
        };
        assert_eq!(reference_value("123", None), Ok(r(None, Some("123"), None)));
        assert_eq!(
            reference_value("123", Some("Patient")),
            Ok(r(Some("Patient"), Some("123"), None))
        );
        assert_eq!(
            reference_value("Patient/123", None),
            Ok(r(Some("Patient"), Some("123"), None))
        );
        assert_eq!(
            reference_value("Patient/123/_history/2", None),
            Ok(r(Some("Patient"), Some("123"), None))
        );
        assert_eq!(
            reference_value("http://x.org/fhir/Patient/123", None),
            Ok(r(None, None, Some("http://x.org/fhir/Patient/123")))
        );
        assert!(reference_value("Patient/123", Some("Group")).is_err());
        assert!(reference_value("Nope/123", None).is_err());
        assert!(reference_value("bad id", None).is_err());
        assert!(reference_value("", None).is_err());
    }
}
