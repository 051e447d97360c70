//! Decoding `application/x-www-form-urlencoded` text (URL query strings,
//! `_search` form bodies, conditional criteria) into name/value pairs. The
//! meaning of the parameters is the `search` crate's business.

use crate::error::{CoreError, Result};

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
    let text = String::from_utf8(out).map_err(|_| bad())?;
    // Control characters (NUL above all) have no place in a search value
    // and PostgreSQL cannot even hold NUL in text.
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CoreError::BadRequest(
            "the query string holds control characters".to_owned(),
        ));
    }
    Ok(text)
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
        assert!(parse_query_string("name=%00").is_err());
    }
}
