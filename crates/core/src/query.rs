//! Search criteria this server understands today (issue #3 grows this into the
//! whole R4 search specification): `_id`, `identifier`, `_count`, and the
//! server's own paging cursor `_cursor`.
//!
//! Strict by default: any other parameter is an error naming it; with
//! lenient handling it is ignored and reported back.

use store::Filter;
use store::search::TokenValue;

use crate::error::{CoreError, Result};

pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 1000;

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub criteria: Vec<Filter>,
    pub count: usize,
    pub cursor: Option<String>,
    /// Parameters ignored under lenient handling.
    pub ignored: Vec<String>,
}

/// Decodes `application/x-www-form-urlencoded` (a URL query string or a
/// form body) into name/value pairs.
pub fn parse_query_string(q: &str) -> Result<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String> {
    let bad =
        || CoreError::BadRequest("the query string is not valid percent-encoded UTF-8".to_owned());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Splits a value on unescaped commas (`\,` is a literal comma).
fn split_or(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(last) = parts.last_mut()
                {
                    last.push(next);
                }
            }
            ',' => parts.push(String::new()),
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

fn token(value: &str) -> TokenValue {
    match value.split_once('|') {
        None => TokenValue {
            system: None,
            code: Some(value.to_owned()),
        },
        Some((system, code)) => TokenValue {
            system: Some(system.to_owned()),
            code: (!code.is_empty()).then(|| code.to_owned()),
        },
    }
}

/// Parameters that only shape the response and that the API layer consumes.
const FORMAT_PARAMS: &[&str] = &["_format", "_pretty"];

pub fn parse_search(pairs: &[(String, String)], lenient: bool) -> Result<Search> {
    let mut search = Search {
        count: DEFAULT_COUNT,
        ..Search::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "_id" => {
                let ids = split_or(value);
                if ids.iter().any(|id| !fhir::is_valid_id(id)) {
                    return Err(CoreError::BadRequest(
                        "_id: not a valid resource id".to_owned(),
                    ));
                }
                search.criteria.push(Filter::Id(ids));
            }
            "identifier" => {
                let any_of = split_or(value).iter().map(|v| token(v)).collect();
                search.criteria.push(Filter::Token {
                    param: "identifier".to_owned(),
                    not: false,
                    any_of,
                });
            }
            "_count" => {
                let n: usize = value.parse().map_err(|_| {
                    CoreError::BadRequest("_count must be a non-negative integer".to_owned())
                })?;
                search.count = n.min(MAX_COUNT);
            }
            "_cursor" => search.cursor = Some(value.clone()),
            n if FORMAT_PARAMS.contains(&n) => {}
            other if lenient => search.ignored.push(other.to_owned()),
            other => return Err(CoreError::UnknownParameter(other.to_owned())),
        }
    }
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        parse_query_string(q).unwrap()
    }

    #[test]
    fn decoding() {
        assert_eq!(
            pairs("identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9990000018&x=a+b"),
            vec![
                (
                    "identifier".to_owned(),
                    "https://fhir.nhs.uk/Id/nhs-number|9990000018".to_owned()
                ),
                ("x".to_owned(), "a b".to_owned())
            ]
        );
        assert!(parse_query_string("a=%zz").is_err());
        assert!(parse_query_string("a=%e2%28").is_err());
    }

    #[test]
    fn tokens_and_ids() {
        let s = parse_search(&pairs("identifier=s|1,|2,s|&_id=a,b&_count=5"), false).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(
            s.criteria,
            vec![
                Filter::Token {
                    param: "identifier".into(),
                    not: false,
                    any_of: vec![
                        TokenValue {
                            system: Some("s".into()),
                            code: Some("1".into())
                        },
                        TokenValue {
                            system: Some("".into()),
                            code: Some("2".into())
                        },
                        TokenValue {
                            system: Some("s".into()),
                            code: None
                        },
                    ]
                },
                Filter::Id(vec!["a".into(), "b".into()]),
            ]
        );
        assert_eq!(split_or(r"a\,b,c"), vec!["a,b", "c"]);
    }

    #[test]
    fn strictness() {
        assert!(
            matches!(parse_search(&pairs("name=x"), false), Err(CoreError::UnknownParameter(p)) if p == "name")
        );
        let s = parse_search(&pairs("name=x&_id=a"), true).unwrap();
        assert_eq!(s.ignored, vec!["name"]);
        assert!(parse_search(&pairs("_id=a/b"), false).is_err());
        assert!(parse_search(&pairs("_count=-1"), false).is_err());
    }
}
