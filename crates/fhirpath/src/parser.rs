//! Recursive-descent / precedence-climbing parser producing [`Expr`].
//!
//! Operator precedence, from loosest to tightest binding (FHIRPath §4):
//! `implies` < `or xor` < `and` < `in contains` < `= ~ != !~` <
//! `< > <= >=` < `|` < `is as` < `+ - &` < `* / div mod` < unary `+ -` <
//! indexer `[]` < invocation `.`. All binary operators are left-associative.
//!
//! Nesting is bounded: the parser counts its own recursion and every node
//! checks its depth against [`MAX_DEPTH`], so hostile input produces a
//! [`ParseError`] rather than a stack overflow.

use crate::ast::{
    BinaryOp, Expr, ExprKind, Func, MAX_DEPTH, SystemType, TypeOpKind, TypeSpec, lookup_function,
};
use crate::decimal::Decimal;
use crate::error::ParseError;
use crate::lexer::{Tok, Token, tokenize};
use crate::model::model;
use crate::quantity::{Quantity, calendar_keyword};
use crate::temporal::{Date, DateTime, Time};
use crate::value::Value;

/// Maximum recursion depth of the parser itself.
const MAX_NESTING: u32 = 64;

/// Compiles FHIRPath source text into an [`Expr`].
pub fn compile(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        nesting: 0,
    };
    let expr = parser.expression(0)?;
    match parser.peek() {
        Tok::Eof => Ok(expr),
        other => Err(parser.error(format!("unexpected {}", describe(other)))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: u32,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) | Tok::Delimited(s) => format!("identifier '{s}'"),
        Tok::Str(_) => "string literal".into(),
        Tok::Number(n) => format!("number {n}"),
        Tok::Date(_) | Tok::DateTime(_) | Tok::Time(_) => "date/time literal".into(),
        Tok::Variable(v) => format!("variable %{v}"),
        Tok::Special(s) => format!("${s}"),
        Tok::Symbol(s) => format!("'{s}'"),
        Tok::Eof => "end of expression".into(),
    }
}

/// Binary operator for a token in operator position, with its precedence.
fn binary_op(tok: &Tok) -> Option<(BinaryOp, u8)> {
    Some(match tok {
        Tok::Ident(s) => match s.as_str() {
            "implies" => (BinaryOp::Implies, 1),
            "or" => (BinaryOp::Or, 2),
            "xor" => (BinaryOp::Xor, 2),
            "and" => (BinaryOp::And, 3),
            "in" => (BinaryOp::In, 4),
            "contains" => (BinaryOp::Contains, 4),
            "div" => (BinaryOp::IntDiv, 10),
            "mod" => (BinaryOp::Mod, 10),
            _ => return None,
        },
        Tok::Symbol(s) => match *s {
            "=" => (BinaryOp::Eq, 5),
            "~" => (BinaryOp::Equiv, 5),
            "!=" => (BinaryOp::Ne, 5),
            "!~" => (BinaryOp::NotEquiv, 5),
            "<" => (BinaryOp::Lt, 6),
            ">" => (BinaryOp::Gt, 6),
            "<=" => (BinaryOp::Le, 6),
            ">=" => (BinaryOp::Ge, 6),
            "+" => (BinaryOp::Add, 9),
            "-" => (BinaryOp::Sub, 9),
            "&" => (BinaryOp::Concat, 9),
            "*" => (BinaryOp::Mul, 10),
            "/" => (BinaryOp::Div, 10),
            _ => return None,
        },
        _ => return None,
    })
}

const UNION_PRECEDENCE: u8 = 7;
const TYPE_PRECEDENCE: u8 = 8;

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, offset: usize) -> &Tok {
        self.tokens
            .get(self.pos + offset)
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    fn position(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .map_or(0, |t| t.pos)
    }

    fn advance(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(message, self.position())
    }

    fn expect(&mut self, symbol: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Tok::Symbol(symbol) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!(
                "expected '{symbol}' but found {}",
                describe(self.peek())
            )))
        }
    }

    fn node(&self, kind: ExprKind) -> Result<Expr, ParseError> {
        let expr = Expr::new(kind);
        if expr.depth > MAX_DEPTH {
            return Err(self.error(format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(expr)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// Parses operators binding at least as tightly as `min_precedence`.
    fn expression(&mut self, min_precedence: u8) -> Result<Expr, ParseError> {
        self.enter()?;
        let result = self.expression_inner(min_precedence);
        self.leave();
        result
    }

    fn expression_inner(&mut self, min_precedence: u8) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let tok = self.peek().clone();
            if tok == Tok::Symbol("|") {
                if UNION_PRECEDENCE < min_precedence {
                    break;
                }
                self.pos += 1;
                let right = self.expression(UNION_PRECEDENCE + 1)?;
                left = match left.kind {
                    ExprKind::Union(mut items) => {
                        items.push(right);
                        self.node(ExprKind::Union(items))?
                    }
                    other => self.node(ExprKind::Union(vec![
                        Expr {
                            kind: other,
                            depth: left.depth,
                        },
                        right,
                    ]))?,
                };
                continue;
            }
            if let Tok::Ident(word) = &tok
                && (word == "is" || word == "as")
            {
                if TYPE_PRECEDENCE < min_precedence {
                    break;
                }
                self.pos += 1;
                let spec = self.type_specifier()?;
                let op = if word == "is" {
                    TypeOpKind::Is
                } else {
                    TypeOpKind::AsOperator
                };
                left = self.node(ExprKind::TypeOp {
                    operand: Some(Box::new(left)),
                    op,
                    spec,
                })?;
                continue;
            }
            let Some((op, precedence)) = binary_op(&tok) else {
                break;
            };
            if precedence < min_precedence {
                break;
            }
            self.pos += 1;
            let right = self.expression(precedence + 1)?;
            left = self.node(ExprKind::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            })?;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let negate = match self.peek() {
            Tok::Symbol("-") => true,
            Tok::Symbol("+") => false,
            _ => return self.postfix(),
        };
        self.pos += 1;
        self.enter()?;
        let operand = self.unary();
        self.leave();
        self.node(ExprKind::Unary {
            negate,
            operand: Box::new(operand?),
        })
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.term()?;
        loop {
            match self.peek() {
                Tok::Symbol(".") => {
                    self.pos += 1;
                    let name = match self.advance() {
                        Tok::Ident(name) => name,
                        Tok::Delimited(name) => {
                            expr = self.node(ExprKind::Member {
                                target: Some(Box::new(expr)),
                                name,
                            })?;
                            continue;
                        }
                        other => {
                            return Err(self.error(format!(
                                "expected a name after '.' but found {}",
                                describe(&other)
                            )));
                        }
                    };
                    if *self.peek() == Tok::Symbol("(") {
                        expr = self.call(Some(expr), &name)?;
                    } else {
                        expr = self.node(ExprKind::Member {
                            target: Some(Box::new(expr)),
                            name,
                        })?;
                    }
                }
                Tok::Symbol("[") => {
                    self.pos += 1;
                    let index = self.expression(0)?;
                    self.expect("]")?;
                    expr = self.node(ExprKind::Indexer {
                        target: Box::new(expr),
                        index: Box::new(index),
                    })?;
                }
                _ => return Ok(expr),
            }
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let tok = self.advance();
        match tok {
            Tok::Number(text) => self.number(&text),
            Tok::Str(s) => self.node(ExprKind::Literal(Value::String(s.into()))),
            Tok::Date(text) => {
                let date = Date::parse(&text)
                    .ok_or_else(|| self.error(format!("invalid date @{text}")))?;
                self.node(ExprKind::Literal(Value::Date(date)))
            }
            Tok::DateTime(text) => {
                let dt = DateTime::parse(&text)
                    .ok_or_else(|| self.error(format!("invalid date/time @{text}")))?;
                self.node(ExprKind::Literal(Value::DateTime(dt)))
            }
            Tok::Time(text) => {
                let time = Time::parse(&text)
                    .ok_or_else(|| self.error(format!("invalid time @T{text}")))?;
                self.node(ExprKind::Literal(Value::Time(time)))
            }
            Tok::Variable(name) => self.node(ExprKind::Variable(name)),
            Tok::Special(name) => match name.as_str() {
                "this" => self.node(ExprKind::This),
                "index" => self.node(ExprKind::Index),
                _ => self.node(ExprKind::Total),
            },
            Tok::Symbol("(") => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            Tok::Symbol("{") => {
                self.expect("}")?;
                self.node(ExprKind::Empty)
            }
            Tok::Ident(name) => {
                if *self.peek() == Tok::Symbol("(") {
                    return self.call(None, &name);
                }
                match name.as_str() {
                    "true" => self.node(ExprKind::Literal(Value::Boolean(true))),
                    "false" => self.node(ExprKind::Literal(Value::Boolean(false))),
                    _ => self.node(ExprKind::Member { target: None, name }),
                }
            }
            Tok::Delimited(name) => self.node(ExprKind::Member { target: None, name }),
            other => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.error(format!("unexpected {}", describe(&other))))
            }
        }
    }

    /// A number literal, possibly followed by a unit (quantity literal).
    fn number(&mut self, text: &str) -> Result<Expr, ParseError> {
        let unit = match self.peek() {
            Tok::Str(unit) => Some(unit.clone()),
            Tok::Ident(word) if calendar_keyword(word).is_some() => Some(word.clone()),
            _ => None,
        };
        let decimal =
            Decimal::parse(text).ok_or_else(|| self.error(format!("invalid number {text}")))?;
        if let Some(unit) = unit {
            self.pos += 1;
            return self.node(ExprKind::Literal(Value::Quantity(Quantity::new(
                decimal, &unit,
            ))));
        }
        if text.contains('.') {
            return self.node(ExprKind::Literal(Value::Decimal(decimal)));
        }
        match text.parse::<i64>() {
            Ok(i) => self.node(ExprKind::Literal(Value::Integer(i))),
            Err(_) => self.node(ExprKind::Literal(Value::Decimal(decimal))),
        }
    }

    /// `name(args)`; the current token is `(`.
    fn call(&mut self, target: Option<Expr>, name: &str) -> Result<Expr, ParseError> {
        let call_pos = self.position();
        self.expect("(")?;
        let mut args = Vec::new();
        if *self.peek() != Tok::Symbol(")") {
            loop {
                args.push(self.expression(0)?);
                if *self.peek() == Tok::Symbol(",") {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        let target = target.map(Box::new);

        let type_op = match name {
            "is" => Some(TypeOpKind::Is),
            "as" => Some(TypeOpKind::AsFunction),
            "ofType" => Some(TypeOpKind::OfType),
            _ => None,
        };
        if let Some(op) = type_op {
            let [arg] = args.as_slice() else {
                return Err(ParseError::new(
                    format!("{name}() takes exactly one type argument"),
                    call_pos,
                ));
            };
            let names = type_name_parts(arg).ok_or_else(|| {
                ParseError::new(format!("{name}() expects a type name"), call_pos)
            })?;
            let spec = resolve_type(&names).map_err(|m| ParseError::new(m, call_pos))?;
            return self.node(ExprKind::TypeOp {
                operand: target,
                op,
                spec,
            });
        }

        let (func, min, max) = lookup_function(name)
            .ok_or_else(|| ParseError::new(format!("unknown function '{name}'"), call_pos))?;
        if args.len() < min || args.len() > max {
            return Err(ParseError::new(
                format!("wrong number of arguments for {name}()"),
                call_pos,
            ));
        }
        let flags_index = if func == Func::ReplaceMatches { 2 } else { 1 };
        let flags = match args.get(flags_index).map(|a| &a.kind) {
            None => Some(String::new()),
            Some(ExprKind::Literal(Value::String(f))) => Some(f.to_string()),
            Some(_) => None,
        };
        let regex = match (func, args.first().map(|a| &a.kind), flags) {
            (
                Func::Matches | Func::MatchesFull | Func::ReplaceMatches,
                Some(ExprKind::Literal(Value::String(p))),
                Some(flags),
            ) => {
                let full = func == Func::MatchesFull;
                Some(Box::new(build_regex(p, full, &flags).map_err(|e| {
                    ParseError::new(format!("invalid regular expression: {e}"), call_pos)
                })?))
            }
            _ => None,
        };
        self.node(ExprKind::Call {
            target,
            func,
            args,
            regex,
        })
    }

    /// `qualifiedIdentifier` after the `is`/`as` operators.
    fn type_specifier(&mut self) -> Result<TypeSpec, ParseError> {
        let pos = self.position();
        let mut names = Vec::new();
        loop {
            match self.advance() {
                Tok::Ident(n) | Tok::Delimited(n) => names.push(n),
                other => {
                    return Err(self.error(format!(
                        "expected a type name but found {}",
                        describe(&other)
                    )));
                }
            }
            let continues = *self.peek() == Tok::Symbol(".")
                && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Delimited(_))
                && *self.peek_at(2) != Tok::Symbol("(");
            if continues && names.len() == 1 {
                self.pos += 1;
            } else {
                break;
            }
        }
        resolve_type(&names).map_err(|m| ParseError::new(m, pos))
    }
}

/// Compiles a FHIRPath regular expression: case-sensitive unless flagged,
/// single-line mode (`.` matches newlines); `full` anchors it to the whole
/// string. The compiled program is size-limited and matching is linear-time.
pub(crate) fn build_regex(pattern: &str, full: bool, flags: &str) -> Result<regex::Regex, String> {
    // FHIRPath 2.1 flags: i (case-insensitive) and m (multi-line anchors).
    // Single-line mode (dot matches newline) is always on.
    let mut inline = String::from("s");
    for flag in flags.chars() {
        match flag {
            'i' | 'm' => inline.push(flag),
            other => return Err(format!("unknown regular expression flag '{other}'")),
        }
    }
    let source = if full {
        format!("(?{inline})^(?:{pattern})$")
    } else {
        format!("(?{inline}){pattern}")
    };
    regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// Extracts `Name` or `Namespace.Name` from a type argument expression.
fn type_name_parts(expr: &Expr) -> Option<Vec<String>> {
    match &expr.kind {
        ExprKind::Member { target: None, name } => Some(vec![name.clone()]),
        ExprKind::Member {
            target: Some(t),
            name,
        } => match &t.kind {
            ExprKind::Member {
                target: None,
                name: ns,
            } => Some(vec![ns.clone(), name.clone()]),
            _ => None,
        },
        _ => None,
    }
}

/// Resolves a (possibly qualified) type name against the system types and
/// the FHIR model.
fn resolve_type(names: &[String]) -> Result<TypeSpec, String> {
    let m = model();
    match names {
        [ns, name] if ns == "System" => {
            Ok(SystemType::from_name(name).map_or(TypeSpec::Nothing, TypeSpec::System))
        }
        [ns, name] if ns == "FHIR" => m
            .type_id(name)
            .map(TypeSpec::Fhir)
            .ok_or_else(|| format!("unknown FHIR type '{name}'")),
        [name] => {
            if name == "Quantity"
                && let Some(id) = m.type_id(name)
            {
                return Ok(TypeSpec::AnyQuantity(id));
            }
            if let Some(system) = SystemType::from_name(name) {
                return Ok(TypeSpec::System(system));
            }
            m.type_id(name)
                .map(TypeSpec::Fhir)
                .ok_or_else(|| format!("unknown type '{name}'"))
        }
        _ => Err(format!("unknown type '{}'", names.join("."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = compile("1 + 2 * 3 = 7 and true").unwrap();
        assert!(matches!(
            e.kind,
            ExprKind::Binary {
                op: BinaryOp::And,
                ..
            }
        ));
        let e = compile("-1.convertsToInteger()").unwrap();
        assert!(matches!(e.kind, ExprKind::Unary { negate: true, .. }));
        let e = compile("(1 | 1 is Integer)").unwrap();
        assert!(matches!(e.kind, ExprKind::Union(_)));
        let e = compile("a | b | c | d").unwrap();
        match e.kind {
            ExprKind::Union(items) => assert_eq!(items.len(), 4),
            _ => panic!("expected union"),
        }
    }

    #[test]
    fn keywords_as_names() {
        assert!(compile("ValueSet.expansion.repeat(contains)").is_ok());
        assert!(compile("text.div").is_ok());
        assert!(compile("Patient.is(FHIR.`Patient`)").is_ok());
    }

    #[test]
    fn errors() {
        assert!(compile("2 + 2 /").is_err());
        assert!(compile("name.foo(").is_err());
        assert!(compile("name.unknownFunction()").is_err());
        assert!(compile("x.as(string1)").is_err());
        assert!(compile("@T14:34:28Z").is_err());
    }

    #[test]
    fn depth_limits() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(compile(&deep).is_err());
        let long_path = vec!["a"; 10_000].join(".");
        assert!(compile(&long_path).is_err());
        let negations = format!("{}1", "-".repeat(10_000));
        assert!(compile(&negations).is_err());
        let unions = vec!["a"; 1000].join(" | ");
        assert!(compile(&unions).is_ok());
    }
}
