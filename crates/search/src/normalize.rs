//! String normalisation for string search (R4 3.1.1.4.9: "case-insensitive
//! and accent-insensitive").
//!
//! [`normalize`] is applied to indexed strings at write time and to search
//! values at query time, so the store only ever compares normalised text.
//!
//! Invariants:
//! - The output is lower case, has no accents on Latin letters (Latin-1
//!   Supplement and Latin Extended-A are folded by a table, and combining
//!   diacritical marks U+0300–U+036F are dropped), has no leading or trailing
//!   white space, and has single spaces between words.
//! - `normalize(normalize(s)) == normalize(s)`.
//! - Punctuation is kept: `o'brien` stays `o'brien`.

/// Lower-cases `s`, folds accented Latin letters to their base letters
/// (`é`→`e`, `ß`→`ss`, `ø`→`o`), and collapses runs of white space into one
/// space, trimming both ends.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // True when a space is pending: emitted only before the next word.
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if is_combining_mark(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for lower in c.to_lowercase() {
            if is_combining_mark(lower) {
                // `İ` lower-cases to `i` and a combining dot.
                continue;
            }
            match fold(lower) {
                Some(folded) => out.push_str(folded),
                None => out.push(lower),
            }
        }
    }
    out
}

/// Combining diacritical marks (the accents of decomposed text).
fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// The unaccented form of a lower-case letter of Latin-1 Supplement or
/// Latin Extended-A, or `None` when the letter has no accent to fold.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' | 'ĸ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn lower_cases_and_collapses_white_space() {
        assert_eq!(
            normalize("  Peter   James\tCHALMERS \n"),
            "peter james chalmers"
        );
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("   "), "");
    }

    #[test]
    fn folds_latin_accents() {
        assert_eq!(normalize("Adán Portillo"), "adan portillo");
        assert_eq!(normalize("Ærøskøbing"), "aeroskobing");
        assert_eq!(normalize("Straße"), "strasse");
        assert_eq!(normalize("Łódź"), "lodz");
        assert_eq!(normalize("Œuvre"), "oeuvre");
        assert_eq!(normalize("ŠŽČĆĐ"), "szccd");
        assert_eq!(normalize("Þór"), "thor");
        assert_eq!(normalize("ÿ"), "y");
        assert_eq!(normalize("İstanbul"), "istanbul");
    }

    #[test]
    fn drops_combining_marks() {
        // "é" written as "e" + COMBINING ACUTE ACCENT.
        assert_eq!(normalize("Jose\u{301}"), "jose");
    }

    #[test]
    fn keeps_punctuation_and_other_scripts() {
        assert_eq!(normalize("O'Brien-Smith"), "o'brien-smith");
        assert_eq!(normalize("Ελένη"), "ελένη");
    }

    #[test]
    fn is_idempotent() {
        for s in ["Ærøskøbing  Straße", " A  b ", "Jose\u{301}"] {
            assert_eq!(normalize(&normalize(s)), normalize(s));
        }
    }
}
