//! Tokenizer for FHIRPath source text.
//!
//! Produces the whole token list up front (expressions are short). Comments
//! (`// …` and `/* … */`) and whitespace are skipped. Keywords are returned as
//! plain identifiers; the parser decides from position whether `div`,
//! `contains`, `as`, … are operators or element names.

use crate::error::ParseError;

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A plain identifier (possibly a keyword).
    Ident(String),
    /// A back-tick delimited identifier (never a keyword).
    Delimited(String),
    /// A string literal (escapes resolved).
    Str(String),
    /// An integer or decimal literal, as written.
    Number(String),
    /// `@YYYY…` without a time part.
    Date(String),
    /// `@YYYY…T…`.
    DateTime(String),
    /// `@Thh…`.
    Time(String),
    /// `%name`, ``%`name` `` or `%'name'`.
    Variable(String),
    /// `$this`, `$index`, `$total` (name without `$`).
    Special(String),
    /// Punctuation or operator symbol.
    Symbol(&'static str),
    /// End of input.
    Eof,
}

/// A token with its byte offset in the source.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// Operator and punctuation symbols, two-character ones first.
const SYMBOLS: [&str; 22] = [
    "<=", ">=", "!=", "!~", ".", "[", "]", "(", ")", "{", "}", ",", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

struct Lexer<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
    };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_trivia()?;
        let pos = lexer.pos;
        let Some(b) = lexer.peek() else {
            tokens.push(Token { tok: Tok::Eof, pos });
            return Ok(tokens);
        };
        let tok = match b {
            b'\'' => Tok::Str(lexer.quoted(b'\'')?),
            b'`' => Tok::Delimited(lexer.quoted(b'`')?),
            b'@' => lexer.temporal()?,
            b'%' => {
                lexer.pos += 1;
                match lexer.peek() {
                    Some(b'`') => Tok::Variable(lexer.quoted(b'`')?),
                    Some(b'\'') => Tok::Variable(lexer.quoted(b'\'')?),
                    _ => {
                        let name = lexer.identifier();
                        if name.is_empty() {
                            return Err(ParseError::new("expected a variable name after '%'", pos));
                        }
                        Tok::Variable(name.to_string())
                    }
                }
            }
            b'$' => {
                lexer.pos += 1;
                let name = lexer.identifier();
                match name {
                    "this" | "index" | "total" => Tok::Special(name.to_string()),
                    _ => {
                        return Err(ParseError::new(
                            format!("unknown special variable '${name}'"),
                            pos,
                        ));
                    }
                }
            }
            b if b.is_ascii_digit() => Tok::Number(lexer.number().to_string()),
            b if b.is_ascii_alphabetic() || b == b'_' => Tok::Ident(lexer.identifier().to_string()),
            _ => {
                let rest = lexer.src.get(lexer.pos..).unwrap_or_default();
                match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
                    Some(sym) => {
                        lexer.pos += sym.len();
                        Tok::Symbol(sym)
                    }
                    None => {
                        let ch = rest.chars().next().unwrap_or('?');
                        return Err(ParseError::new(format!("unexpected character '{ch}'"), pos));
                    }
                }
            }
        };
        tokens.push(Token { tok, pos });
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(b), _) if b.is_ascii_whitespace() => self.pos += 1,
                (Some(b'/'), Some(b'/')) => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos;
                    let rest = self.src.get(self.pos + 2..).unwrap_or_default();
                    match rest.find("*/") {
                        Some(end) => self.pos += 2 + end + 2,
                        None => return Err(ParseError::new("unterminated comment", start)),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn identifier(&mut self) -> &str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// Reads an integer or decimal literal. An integer may carry the
    /// FHIRPath 2.1 `Long` suffix `L`, which is accepted and dropped (this
    /// engine's integers are 64-bit).
    fn number(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
        } else if self.peek() == Some(b'L')
            && !self
                .peek_at(1)
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            let text = self.src.get(start..self.pos).unwrap_or_default();
            self.pos += 1;
            return text;
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// Reads the four hex digits of a `\u` escape.
    fn unicode_escape(&mut self) -> Result<u32, ParseError> {
        let hex = self.src.get(self.pos..self.pos + 4).unwrap_or_default();
        let code = u32::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ParseError::new("invalid \\u escape", self.pos))?;
        self.pos += 4;
        Ok(code)
    }

    /// Reads a quoted string or delimited identifier, resolving escapes.
    fn quoted(&mut self, quote: u8) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.src.get(self.pos..).unwrap_or_default();
            let mut chars = rest.chars();
            let Some(ch) = chars.next() else {
                return Err(ParseError::new("unterminated string", start));
            };
            self.pos += ch.len_utf8();
            if ch as u32 == u32::from(quote) {
                return Ok(out);
            }
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            let Some(esc) = chars.next() else {
                return Err(ParseError::new("unterminated escape", self.pos));
            };
            self.pos += esc.len_utf8();
            match esc {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{000C}'),
                'u' => {
                    let mut code = self.unicode_escape()?;
                    // A UTF-16 surrogate pair written as two escapes.
                    if (0xD800..0xDC00).contains(&code)
                        && self
                            .src
                            .get(self.pos..)
                            .is_some_and(|r| r.starts_with("\\u"))
                    {
                        self.pos += 2;
                        let low = self.unicode_escape()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(ParseError::new("invalid surrogate pair", self.pos));
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    }
                    let ch = char::from_u32(code)
                        .ok_or_else(|| ParseError::new("invalid \\u escape", self.pos))?;
                    out.push(ch);
                }
                other => out.push(other),
            }
        }
    }

    fn digits(&mut self, n: usize) -> bool {
        if (0..n).all(|i| self.peek_at(i).is_some_and(|b| b.is_ascii_digit())) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    /// Consumes `hh(:mm(:ss(.f+)?)?)?`; returns false if no hour.
    fn time_part(&mut self) -> bool {
        if !self.digits(2) {
            return false;
        }
        if self.peek() == Some(b':') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            if !self.digits(2) {
                return true;
            }
            if self.peek() == Some(b':') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
                if !self.digits(2) {
                    return true;
                }
                if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit())
                {
                    self.pos += 1;
                    while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                        self.pos += 1;
                    }
                }
            }
        }
        true
    }

    fn temporal(&mut self) -> Result<Tok, ParseError> {
        let at = self.pos;
        self.pos += 1;
        let start = self.pos;
        if self.peek() == Some(b'T') {
            self.pos += 1;
            if !self.time_part() {
                return Err(ParseError::new("invalid time literal", at));
            }
            let text = self.src.get(start + 1..self.pos).unwrap_or_default();
            return Ok(Tok::Time(text.to_string()));
        }
        if !self.digits(4) {
            return Err(ParseError::new("invalid date literal", at));
        }
        for _ in 0..2 {
            if self.peek() == Some(b'-') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
                if !self.digits(2) {
                    return Err(ParseError::new("invalid date literal", at));
                }
            }
        }
        if self.peek() != Some(b'T') {
            return Ok(Tok::Date(
                self.src
                    .get(start..self.pos)
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        self.pos += 1;
        if self.time_part() {
            // Optional zone: Z or ±hh:mm.
            if self.peek() == Some(b'Z') {
                self.pos += 1;
            } else if matches!(self.peek(), Some(b'+' | b'-'))
                && (1..=2).all(|i| self.peek_at(i).is_some_and(|b| b.is_ascii_digit()))
                && self.peek_at(3) == Some(b':')
            {
                self.pos += 4;
                if !self.digits(2) {
                    return Err(ParseError::new("invalid time zone", at));
                }
            }
        }
        Ok(Tok::DateTime(
            self.src
                .get(start..self.pos)
                .unwrap_or_default()
                .to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks("1.convertsToInteger()"),
            vec![
                Tok::Number("1".into()),
                Tok::Symbol("."),
                Tok::Ident("convertsToInteger".into()),
                Tok::Symbol("("),
                Tok::Symbol(")"),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("@2015-02-04T14:34:28.123+10:00")[0],
            Tok::DateTime("2015-02-04T14:34:28.123+10:00".into())
        );
        assert_eq!(toks("@T14:34.is(Time)")[0], Tok::Time("14:34".into()));
        assert_eq!(
            toks("@2015T.is(DateTime)")[0],
            Tok::DateTime("2015T".into())
        );
        assert_eq!(toks("'a\\'b\\u0065'")[0], Tok::Str("a'be".into()));
        assert_eq!(toks("%`vs-x`")[0], Tok::Variable("vs-x".into()));
        assert_eq!(toks("'\\uD83E\\uDDB6'")[0], Tok::Str("\u{1F9B6}".into()));
        assert_eq!(toks("5L.toString()")[0], Tok::Number("5".into()));
        assert!(tokenize("'\\uD83E'").is_err());
    }

    #[test]
    fn comments() {
        assert_eq!(toks("2 // c\n/ 2").len(), 4);
        assert!(tokenize("2 + 2 /* open").is_err());
    }
}
