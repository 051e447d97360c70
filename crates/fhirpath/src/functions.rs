//! The built-in function library.
//!
//! Each function receives its input collection and its *unevaluated*
//! argument expressions, so it can choose between evaluating an argument
//! once in the caller's scope (`substring(1)`, `combine(x)`) or once per
//! input item with `$this` rebound (`where(...)`, `select(...)`).
//! Functions that need a single input item raise an error for several items
//! and return empty for none, as FHIRPath specifies.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;

use crate::ast::{BinaryOp, Expr, ExprKind, Func, TypeSpec};
use crate::decimal::Decimal;
use crate::error::{EvalError, EvalErrorKind};
use crate::eval::{
    Collection, Evaluator, MAX_ITEMS, Scope, binary_values, children, compare_values, decimal_of,
    integer_of, is_valueless, push_distinct, single, single_value, to_boolean, value_is,
    values_equal, without_valueless,
};
use crate::model::model;
use crate::parser::build_regex;
use crate::quantity::{Quantity, calendar_keyword};
use crate::temporal::{Date, DateTime, Time};
use crate::value::{Node, Value};

/// Maximum number of non-node values `repeat()` may produce.
const MAX_REPEAT_VALUES: usize = 10_000;

fn boolean<'a>(b: bool) -> Collection<'a> {
    vec![Value::Boolean(b)]
}

fn optional<'a>(v: Option<Value<'a>>) -> Collection<'a> {
    v.into_iter().collect()
}

fn string_value<'a>(s: impl Into<Arc<str>>) -> Value<'a> {
    Value::String(s.into())
}

/// The string content of a singleton input; an error for non-strings.
fn input_string(input: &[Value<'_>], what: &str) -> Result<Option<Arc<str>>, EvalError> {
    match single_value(input, what)? {
        None => Ok(None),
        Some(v) => match v {
            Value::String(s) => Ok(Some(s)),
            other => Err(EvalError::type_error(format!(
                "{what} expects a String input, got {}",
                other.type_info().name
            ))),
        },
    }
}

/// Items that are Booleans (for `allTrue()` and friends); an error for
/// anything else.
fn boolean_items(input: &[Value<'_>], what: &str) -> Result<Vec<bool>, EvalError> {
    input
        .iter()
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| EvalError::type_error(format!("{what} expects Boolean items")))
        })
        .collect()
}

/// Node identity key (for de-duplicating nodes cheaply).
fn node_key(node: &Node<'_>) -> (usize, usize) {
    let addr = |j: Option<&Json>| j.map_or(0, |v| v as *const Json as usize);
    (addr(node.json), addr(node.shadow))
}

fn char_index_of(haystack: &str, byte_index: usize) -> i64 {
    i64::try_from(haystack.get(..byte_index).map_or(0, |p| p.chars().count())).unwrap_or(i64::MAX)
}

fn empty_object() -> &'static Json {
    static EMPTY: OnceLock<Json> = OnceLock::new();
    EMPTY.get_or_init(|| Json::Object(serde_json::Map::new()))
}

impl<'a> Evaluator<'_, 'a> {
    fn arg(
        &self,
        args: &[Expr],
        i: usize,
        scope: &Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        match args.get(i) {
            Some(expr) => self.eval(expr, scope),
            None => Ok(Vec::new()),
        }
    }

    fn arg_single(
        &self,
        args: &[Expr],
        i: usize,
        scope: &Scope<'_, 'a>,
        what: &str,
    ) -> Result<Option<Value<'a>>, EvalError> {
        let values = self.arg(args, i, scope)?;
        single_value(&values, what)
    }

    fn arg_string(
        &self,
        args: &[Expr],
        i: usize,
        scope: &Scope<'_, 'a>,
        what: &str,
    ) -> Result<Option<Arc<str>>, EvalError> {
        match self.arg_single(args, i, scope, what)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(EvalError::type_error(format!(
                "{what} expects a String argument, got {}",
                other.type_info().name
            ))),
        }
    }

    fn arg_integer(
        &self,
        args: &[Expr],
        i: usize,
        scope: &Scope<'_, 'a>,
        what: &str,
    ) -> Result<Option<i64>, EvalError> {
        match self.arg_single(args, i, scope, what)? {
            None => Ok(None),
            Some(v) => integer_of(&v).map(Some).ok_or_else(|| {
                EvalError::type_error(format!("{what} expects an Integer argument"))
            }),
        }
    }

    /// Evaluates `expr` once per input item with `$this`/`$index` bound.
    fn per_item(
        &self,
        input: &[Value<'a>],
        expr: &Expr,
        scope: &Scope<'_, 'a>,
        i: usize,
    ) -> Result<Collection<'a>, EvalError> {
        let item = input.get(i).map(std::slice::from_ref).unwrap_or_default();
        let item_scope = Scope {
            this: item,
            index: Some(i),
            total: scope.total,
        };
        self.eval(expr, &item_scope)
    }

    fn criteria_holds(
        &self,
        input: &[Value<'a>],
        expr: &Expr,
        scope: &Scope<'_, 'a>,
        i: usize,
    ) -> Result<bool, EvalError> {
        let result = self.per_item(input, expr, scope, i)?;
        if self.env.strict {
            return Ok(to_boolean(&result, "criteria")? == Some(true));
        }
        // Like the reference implementations, a criterion that yields several
        // items counts as true rather than raising the singleton error.
        Ok(match &*without_valueless(&result) {
            [] => false,
            [v] => v.as_bool().unwrap_or(true),
            _ => true,
        })
    }

    /// Dispatches a function call.
    pub(crate) fn call(
        &self,
        func: Func,
        input: &[Value<'a>],
        args: &[Expr],
        regex: Option<&regex::Regex>,
        scope: &Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let first_arg = || {
            args.first()
                .ok_or_else(|| EvalError::new(EvalErrorKind::Argument, "missing argument"))
        };
        match func {
            // Existence
            Func::Empty => Ok(boolean(input.is_empty())),
            Func::Exists => {
                if args.is_empty() {
                    return Ok(boolean(!input.is_empty()));
                }
                let expr = first_arg()?;
                for i in 0..input.len() {
                    if self.criteria_holds(input, expr, scope, i)? {
                        return Ok(boolean(true));
                    }
                }
                Ok(boolean(false))
            }
            Func::All => {
                let expr = first_arg()?;
                for i in 0..input.len() {
                    if !self.criteria_holds(input, expr, scope, i)? {
                        return Ok(boolean(false));
                    }
                }
                Ok(boolean(true))
            }
            Func::AllTrue => Ok(boolean(
                boolean_items(input, "allTrue()")?.iter().all(|b| *b),
            )),
            Func::AnyTrue => Ok(boolean(
                boolean_items(input, "anyTrue()")?.iter().any(|b| *b),
            )),
            Func::AllFalse => Ok(boolean(
                boolean_items(input, "allFalse()")?.iter().all(|b| !*b),
            )),
            Func::AnyFalse => Ok(boolean(
                boolean_items(input, "anyFalse()")?.iter().any(|b| !*b),
            )),
            Func::SubsetOf | Func::SupersetOf => {
                let other = self.arg(args, 0, scope)?;
                let (sub, sup) = if func == Func::SubsetOf {
                    (input, other.as_slice())
                } else {
                    (other.as_slice(), input)
                };
                Ok(boolean(sub.iter().all(|x| {
                    sup.iter().any(|y| values_equal(x, y) == Some(true))
                })))
            }
            Func::Count => Ok(vec![Value::Integer(
                i64::try_from(input.len()).unwrap_or(i64::MAX),
            )]),
            Func::Distinct => {
                let mut out = Vec::new();
                for v in input {
                    push_distinct(&mut out, v.clone());
                }
                Ok(out)
            }
            Func::IsDistinct => {
                let mut out = Vec::new();
                for v in input {
                    push_distinct(&mut out, v.clone());
                }
                Ok(boolean(out.len() == input.len()))
            }

            // Filtering and projection
            Func::Where => {
                let expr = first_arg()?;
                let mut out = Vec::new();
                for (i, item) in input.iter().enumerate() {
                    if self.criteria_holds(input, expr, scope, i)? {
                        out.push(item.clone());
                    }
                }
                Ok(out)
            }
            Func::Select => {
                let expr = first_arg()?;
                let mut out = Vec::new();
                for i in 0..input.len() {
                    out.extend(self.per_item(input, expr, scope, i)?);
                    if out.len() > MAX_ITEMS {
                        return Err(EvalError::new(
                            EvalErrorKind::Limit,
                            "select() result too large",
                        ));
                    }
                }
                Ok(out)
            }
            Func::Repeat => self.repeat(input, first_arg()?, scope),

            // Subsetting
            Func::Single => Ok(single(input, "single()")?.cloned().into_iter().collect()),
            Func::First => Ok(input.first().cloned().into_iter().collect()),
            Func::Last => Ok(input.last().cloned().into_iter().collect()),
            Func::Tail => Ok(input.get(1..).unwrap_or_default().to_vec()),
            Func::Skip => {
                let Some(n) = self.arg_integer(args, 0, scope, "skip()")? else {
                    return Ok(Vec::new());
                };
                let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                Ok(input.get(n..).unwrap_or_default().to_vec())
            }
            Func::Take => {
                let Some(n) = self.arg_integer(args, 0, scope, "take()")? else {
                    return Ok(Vec::new());
                };
                let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                Ok(input.iter().take(n).cloned().collect())
            }
            Func::Intersect => {
                let other = self.arg(args, 0, scope)?;
                let mut out = Vec::new();
                for v in input
                    .iter()
                    .filter(|x| other.iter().any(|y| values_equal(x, y) == Some(true)))
                {
                    push_distinct(&mut out, v.clone());
                }
                Ok(out)
            }
            Func::Exclude => {
                let other = self.arg(args, 0, scope)?;
                Ok(input
                    .iter()
                    .filter(|x| !other.iter().any(|y| values_equal(x, y) == Some(true)))
                    .cloned()
                    .collect())
            }

            // Combining
            Func::Union => {
                let other = self.arg(args, 0, scope)?;
                let mut out = Vec::new();
                for v in input.iter().cloned().chain(other) {
                    push_distinct(&mut out, v);
                }
                Ok(out)
            }
            Func::Combine => {
                let mut out = input.to_vec();
                out.extend(self.arg(args, 0, scope)?);
                Ok(out)
            }

            // Conversion
            Func::Iif => {
                if input.len() > 1 {
                    return Err(EvalError::singleton("iif()", input.len()));
                }
                let iif_scope = Scope {
                    this: input,
                    index: scope.index,
                    total: scope.total,
                };
                let criterion = self.arg(args, 0, &iif_scope)?;
                if self.env.strict
                    && single(&criterion, "iif()")?.is_some_and(|v| v.as_bool().is_none())
                {
                    return Err(EvalError::type_error("iif() criterion must be a Boolean"));
                }
                if to_boolean(&criterion, "iif()")? == Some(true) {
                    self.arg(args, 1, &iif_scope)
                } else {
                    self.arg(args, 2, &iif_scope)
                }
            }
            Func::ToBoolean => self.convert(input, "toBoolean()", to_boolean_value),
            Func::ConvertsToBoolean => {
                self.converts(input, "convertsToBoolean()", to_boolean_value)
            }
            Func::ToInteger => self.convert(input, "toInteger()", to_integer_value),
            Func::ConvertsToInteger => {
                self.converts(input, "convertsToInteger()", to_integer_value)
            }
            Func::ToDecimal => self.convert(input, "toDecimal()", to_decimal_value),
            Func::ConvertsToDecimal => {
                self.converts(input, "convertsToDecimal()", to_decimal_value)
            }
            Func::ToString => self.convert(input, "toString()", to_string_value),
            Func::ConvertsToString => self.converts(input, "convertsToString()", to_string_value),
            Func::ToDate => self.convert(input, "toDate()", to_date_value),
            Func::ConvertsToDate => self.converts(input, "convertsToDate()", to_date_value),
            Func::ToDateTime => self.convert(input, "toDateTime()", to_date_time_value),
            Func::ConvertsToDateTime => {
                self.converts(input, "convertsToDateTime()", to_date_time_value)
            }
            Func::ToTime => self.convert(input, "toTime()", to_time_value),
            Func::ConvertsToTime => self.converts(input, "convertsToTime()", to_time_value),
            Func::ToQuantity | Func::ConvertsToQuantity => {
                let unit = self.arg_string(args, 0, scope, "toQuantity()")?;
                let Some(item) = single_value(input, "toQuantity()")? else {
                    return Ok(Vec::new());
                };
                let quantity = to_quantity_value(&item).and_then(|q| match &unit {
                    Some(u) => q.convert_to(u),
                    None => Some(q),
                });
                if func == Func::ToQuantity {
                    Ok(optional(quantity.map(Value::Quantity)))
                } else {
                    Ok(boolean(quantity.is_some()))
                }
            }

            // Strings
            Func::IndexOf | Func::LastIndexOf => {
                let Some(s) = input_string(input, "indexOf()")? else {
                    return Ok(Vec::new());
                };
                let Some(sub) = self.arg_string(args, 0, scope, "indexOf()")? else {
                    return Ok(Vec::new());
                };
                let found = if func == Func::IndexOf {
                    s.find(sub.as_ref())
                } else {
                    s.rfind(sub.as_ref())
                };
                Ok(vec![Value::Integer(
                    found.map_or(-1, |b| char_index_of(&s, b)),
                )])
            }
            Func::Substring => {
                let Some(s) = input_string(input, "substring()")? else {
                    return Ok(Vec::new());
                };
                let Some(start) = self.arg_integer(args, 0, scope, "substring()")? else {
                    return Ok(Vec::new());
                };
                let length = self.arg_integer(args, 1, scope, "substring()")?;
                let count = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
                if start < 0 || start >= count {
                    return Ok(Vec::new());
                }
                let take = length.unwrap_or(count).max(0);
                let result: String = s
                    .chars()
                    .skip(usize::try_from(start).unwrap_or(0))
                    .take(usize::try_from(take).unwrap_or(usize::MAX))
                    .collect();
                Ok(vec![string_value(result)])
            }
            Func::StartsWith | Func::EndsWith | Func::Contains => {
                let Some(s) = input_string(input, "string function")? else {
                    return Ok(Vec::new());
                };
                let Some(arg) = self.arg_string(args, 0, scope, "string function")? else {
                    return Ok(Vec::new());
                };
                Ok(boolean(match func {
                    Func::StartsWith => s.starts_with(arg.as_ref()),
                    Func::EndsWith => s.ends_with(arg.as_ref()),
                    _ => s.contains(arg.as_ref()),
                }))
            }
            Func::Upper | Func::Lower | Func::Trim | Func::Length | Func::ToChars => {
                let Some(s) = input_string(input, "string function")? else {
                    return Ok(Vec::new());
                };
                Ok(match func {
                    Func::Upper => vec![string_value(s.to_uppercase())],
                    Func::Lower => vec![string_value(s.to_lowercase())],
                    Func::Trim => vec![string_value(s.trim())],
                    Func::Length => vec![Value::Integer(
                        i64::try_from(s.chars().count()).unwrap_or(i64::MAX),
                    )],
                    _ => s.chars().map(|c| string_value(c.to_string())).collect(),
                })
            }
            Func::Replace => {
                let Some(s) = input_string(input, "replace()")? else {
                    return Ok(Vec::new());
                };
                let Some(pattern) = self.arg_string(args, 0, scope, "replace()")? else {
                    return Ok(Vec::new());
                };
                let Some(with) = self.arg_string(args, 1, scope, "replace()")? else {
                    return Ok(Vec::new());
                };
                Ok(vec![string_value(s.replace(pattern.as_ref(), &with))])
            }
            Func::Matches | Func::MatchesFull | Func::ReplaceMatches => {
                let Some(s) = input_string(input, "matches()")? else {
                    return Ok(Vec::new());
                };
                let Some(pattern) = self.arg_string(args, 0, scope, "matches()")? else {
                    return Ok(Vec::new());
                };
                let flags_arg = if func == Func::ReplaceMatches { 2 } else { 1 };
                let flags = self.arg_string(args, flags_arg, scope, "regex flags")?;
                let compiled;
                let re = match regex {
                    Some(re) => re,
                    None => {
                        let full = func == Func::MatchesFull;
                        compiled = build_regex(&pattern, full, flags.as_deref().unwrap_or(""))
                            .map_err(|e| {
                                EvalError::new(
                                    EvalErrorKind::Argument,
                                    format!("invalid regular expression: {e}"),
                                )
                            })?;
                        &compiled
                    }
                };
                if func != Func::ReplaceMatches {
                    return Ok(boolean(re.is_match(&s)));
                }
                let Some(with) = self.arg_string(args, 1, scope, "replaceMatches()")? else {
                    return Ok(Vec::new());
                };
                if pattern.is_empty() {
                    return Ok(vec![Value::String(s)]);
                }
                Ok(vec![string_value(
                    re.replace_all(&s, with.as_ref()).into_owned(),
                )])
            }
            Func::Split => {
                let Some(s) = input_string(input, "split()")? else {
                    return Ok(Vec::new());
                };
                let Some(sep) = self.arg_string(args, 0, scope, "split()")? else {
                    return Ok(Vec::new());
                };
                if sep.is_empty() {
                    return Ok(s.chars().map(|c| string_value(c.to_string())).collect());
                }
                Ok(s.split(sep.as_ref()).map(string_value).collect())
            }
            Func::Join => {
                let sep = self
                    .arg_string(args, 0, scope, "join()")?
                    .unwrap_or_else(|| Arc::from(""));
                if input.is_empty() {
                    return Ok(Vec::new());
                }
                let parts: Result<Vec<String>, EvalError> = input
                    .iter()
                    .filter(|v| !is_valueless(v))
                    .map(|v| match v.to_system() {
                        Value::String(s) => Ok(s.to_string()),
                        other => Err(EvalError::type_error(format!(
                            "join() expects strings, got {}",
                            other.type_info().name
                        ))),
                    })
                    .collect();
                Ok(vec![string_value(parts?.join(&sep))])
            }
            Func::Encode | Func::Decode | Func::Escape | Func::Unescape => {
                let Some(s) = input_string(input, "encoding function")? else {
                    return Ok(Vec::new());
                };
                let Some(format) = self.arg_string(args, 0, scope, "encoding function")? else {
                    return Ok(Vec::new());
                };
                let result = match func {
                    Func::Encode => encode(&s, &format),
                    Func::Decode => Some(decode(&s, &format).ok_or_else(|| {
                        EvalError::new(
                            EvalErrorKind::Argument,
                            format!("decode(): '{s}' is not valid {format}"),
                        )
                    })?),
                    Func::Escape => escape(&s, &format),
                    _ => unescape(&s, &format),
                };
                Ok(optional(result.map(string_value)))
            }

            // Math
            Func::Abs
            | Func::Ceiling
            | Func::Floor
            | Func::Truncate
            | Func::Exp
            | Func::Ln
            | Func::Sqrt => {
                let Some(v) = single_value(input, "math function")? else {
                    return Ok(Vec::new());
                };
                math_unary(func, &v)
            }
            Func::Round => {
                let Some(v) = single_value(input, "round()")? else {
                    return Ok(Vec::new());
                };
                let places = self.arg_integer(args, 0, scope, "round()")?.unwrap_or(0);
                let places = u32::try_from(places).map_err(|_| {
                    EvalError::new(
                        EvalErrorKind::Argument,
                        "round() precision must not be negative",
                    )
                })?;
                if let Value::Quantity(q) = &v {
                    let value = q.value.round(places);
                    return Ok(optional(value.map(|value| {
                        Value::Quantity(Quantity {
                            value,
                            unit: q.unit.clone(),
                        })
                    })));
                }
                let d = decimal_of(&v)
                    .ok_or_else(|| EvalError::type_error("round() expects a number"))?;
                Ok(optional(d.round(places).map(Value::Decimal)))
            }
            Func::Log | Func::Power => {
                let Some(base) = single_value(input, "math function")? else {
                    return Ok(Vec::new());
                };
                let Some(arg) = self.arg_single(args, 0, scope, "math function")? else {
                    return Ok(Vec::new());
                };
                if func == Func::Power {
                    return Ok(optional(power(&base, &arg)?));
                }
                let (Some(x), Some(b)) = (decimal_of(&base), decimal_of(&arg)) else {
                    return Err(EvalError::type_error("log() expects numbers"));
                };
                let result = x.to_f64().ln() / b.to_f64().ln();
                Ok(optional(Decimal::from_f64(result).map(Value::Decimal)))
            }

            // Tree navigation
            Func::Children => {
                let mut out = Vec::new();
                for item in input {
                    children(item, &mut out);
                }
                Ok(out)
            }
            Func::Descendants => {
                let mut out = Vec::new();
                let mut frontier: Collection<'a> = input.to_vec();
                while !frontier.is_empty() {
                    let mut next = Vec::new();
                    for item in &frontier {
                        children(item, &mut next);
                    }
                    out.extend(next.iter().cloned());
                    if out.len() > MAX_ITEMS {
                        return Err(EvalError::new(
                            EvalErrorKind::Limit,
                            "descendants() result too large",
                        ));
                    }
                    frontier = next;
                }
                Ok(out)
            }

            // Utility
            Func::Trace => {
                if let Some(tracer) = self.env.tracer {
                    let name = self
                        .arg_string(args, 0, scope, "trace()")?
                        .unwrap_or_else(|| Arc::from(""));
                    match args.get(1) {
                        Some(projection) => {
                            let mut projected = Vec::new();
                            for i in 0..input.len() {
                                projected.extend(self.per_item(input, projection, scope, i)?);
                            }
                            tracer(&name, &projected);
                        }
                        None => tracer(&name, input),
                    }
                }
                Ok(input.to_vec())
            }
            Func::Now | Func::Today | Func::TimeOfDay => {
                let now = self.env.now.ok_or_else(|| {
                    EvalError::new(
                        EvalErrorKind::NoClock,
                        "no clock: the environment has no 'now'",
                    )
                })?;
                Ok(vec![match func {
                    Func::Now => Value::DateTime(now),
                    Func::Today => Value::Date(now.date()),
                    _ => match now.time() {
                        Some(t) => Value::Time(t),
                        None => return Ok(Vec::new()),
                    },
                }])
            }
            Func::Aggregate => {
                let expr = first_arg()?;
                let mut total = self.arg(args, 1, scope)?;
                for (i, item) in input.iter().enumerate() {
                    let next = {
                        let item_scope = Scope {
                            this: std::slice::from_ref(item),
                            index: Some(i),
                            total: Some(&total),
                        };
                        self.eval(expr, &item_scope)?
                    };
                    total = next;
                }
                Ok(total)
            }
            Func::Sort => self.sort(input, args, scope),
            Func::LowBoundary | Func::HighBoundary => {
                let Some(v) = single_value(input, "boundary function")? else {
                    return Ok(Vec::new());
                };
                let digits = self.arg_integer(args, 0, scope, "boundary function")?;
                Ok(optional(boundary(&v, digits, func == Func::HighBoundary)))
            }
            Func::Precision => {
                let Some(v) = single_value(input, "precision()")? else {
                    return Ok(Vec::new());
                };
                Ok(optional(
                    match v {
                        Value::Decimal(d) => Some(i64::from(d.scale())),
                        Value::Integer(_) => Some(0),
                        Value::Date(d) => Some(d.precision_digits()),
                        Value::DateTime(d) => Some(d.precision_digits()),
                        Value::Time(t) => Some(t.precision_digits()),
                        _ => None,
                    }
                    .map(Value::Integer),
                ))
            }
            Func::Comparable => {
                let Some(v) = single_value(input, "comparable()")? else {
                    return Ok(Vec::new());
                };
                let Some(other) = self.arg_single(args, 0, scope, "comparable()")? else {
                    return Ok(Vec::new());
                };
                match (v, other) {
                    (Value::Quantity(a), Value::Quantity(b)) => Ok(boolean(a.comparable(&b))),
                    _ => Err(EvalError::type_error("comparable() expects quantities")),
                }
            }
            Func::YearOf
            | Func::MonthOf
            | Func::DayOf
            | Func::HourOf
            | Func::MinuteOf
            | Func::SecondOf
            | Func::MillisecondOf
            | Func::TimezoneOffsetOf
            | Func::DateOf
            | Func::TimeOf => {
                let Some(v) = single_value(input, "date/time component function")? else {
                    return Ok(Vec::new());
                };
                Ok(optional(temporal_component(func, &v)))
            }
            Func::Type => Ok(input
                .iter()
                .map(|v| Value::TypeInfo(v.type_info()))
                .collect()),
            Func::Not => Ok(optional(
                to_boolean(input, "not()")?.map(|b| Value::Boolean(!b)),
            )),
            Func::HasValue => Ok(boolean(match input {
                [Value::Node(node)] => {
                    node.is_primitive()
                        && node.type_name() != Some("xhtml")
                        && node.json.is_some_and(|j| !j.is_null())
                }
                [Value::Quantity(_) | Value::TypeInfo(_)] => false,
                [Value::Node(_), ..] | [] => false,
                [_] => true,
                _ => false,
            })),
            Func::GetValue => Ok(match input {
                [Value::Node(node)] if node.is_primitive() => optional(node.to_system()),
                [v] if !matches!(v, Value::Node(_)) => vec![v.clone()],
                _ => Vec::new(),
            }),
            Func::Extension => {
                let Some(url) = self.arg_string(args, 0, scope, "extension()")? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                let extension_type = model().type_id("Extension");
                for item in input {
                    let Value::Node(node) = item else { continue };
                    let holder = match node.json {
                        Some(Json::Object(_)) => node.json,
                        _ => node.shadow,
                    };
                    let Some(extensions) = holder
                        .and_then(|h| h.get("extension"))
                        .and_then(Json::as_array)
                    else {
                        continue;
                    };
                    for ext in extensions {
                        if ext.get("url").and_then(Json::as_str) == Some(url.as_ref()) {
                            out.push(Value::Node(Node {
                                json: Some(ext),
                                shadow: None,
                                ty: extension_type,
                            }));
                        }
                    }
                }
                Ok(out)
            }
            Func::Resolve => {
                let mut out = Vec::new();
                for item in input {
                    let reference = match item {
                        Value::Node(Node {
                            json: Some(json @ Json::Object(_)),
                            ..
                        }) => json.get("reference").and_then(Json::as_str),
                        other => other.as_str(),
                    };
                    if let Some(resolved) = reference.and_then(|r| self.resolve_reference(r)) {
                        out.push(resolved);
                    }
                }
                Ok(out)
            }
            Func::ConformsTo => {
                let Some(url) = self.arg_string(args, 0, scope, "conformsTo()")? else {
                    return Ok(Vec::new());
                };
                let ty = url
                    .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                    .and_then(|name| model().type_id(name))
                    .ok_or_else(|| {
                        EvalError::new(
                            EvalErrorKind::Unsupported,
                            format!("conformsTo(): unknown profile '{url}'"),
                        )
                    })?;
                let Some(item) = single(input, "conformsTo()")? else {
                    return Ok(Vec::new());
                };
                Ok(boolean(value_is(item, &TypeSpec::Fhir(ty), false)))
            }
            Func::MemberOf => Err(EvalError::new(
                EvalErrorKind::Unsupported,
                "memberOf() needs a terminology service",
            )),
            Func::HtmlChecks => Ok(boolean(true)),
            Func::Sum | Func::Min | Func::Max | Func::Avg => aggregate_numbers(func, input),
        }
    }

    fn convert(
        &self,
        input: &[Value<'a>],
        what: &str,
        f: fn(&Value<'a>) -> Option<Value<'a>>,
    ) -> Result<Collection<'a>, EvalError> {
        Ok(match single_value(input, what)? {
            None => Vec::new(),
            Some(v) => optional(f(&v)),
        })
    }

    fn converts(
        &self,
        input: &[Value<'a>],
        what: &str,
        f: fn(&Value<'a>) -> Option<Value<'a>>,
    ) -> Result<Collection<'a>, EvalError> {
        Ok(match single_value(input, what)? {
            None => Vec::new(),
            Some(v) => boolean(f(&v).is_some()),
        })
    }

    /// `repeat(projection)`: applies the projection to the input and then to
    /// every new result until nothing new appears. Complex elements are
    /// compared by identity (a hash set), primitives and other values by
    /// equality (a linear scan, hence the lower [`MAX_REPEAT_VALUES`] cap,
    /// which also stops runaway projections such as `repeat($this + 1)`).
    fn repeat(
        &self,
        input: &[Value<'a>],
        expr: &Expr,
        scope: &Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let mut out: Collection<'a> = Vec::new();
        let mut seen_nodes: HashSet<(usize, usize)> = HashSet::new();
        let mut values_added = 0usize;
        let mut frontier: Collection<'a> = input.to_vec();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for i in 0..frontier.len() {
                for value in self.per_item(&frontier, expr, scope, i)? {
                    let is_new = match &value {
                        Value::Node(node) if matches!(node.json, Some(Json::Object(_))) => {
                            seen_nodes.insert(node_key(node))
                        }
                        other => !out.iter().any(|v| values_equal(v, other) == Some(true)),
                    };
                    if is_new {
                        if !matches!(
                            value,
                            Value::Node(Node {
                                json: Some(Json::Object(_)),
                                ..
                            })
                        ) {
                            values_added += 1;
                        }
                        out.push(value.clone());
                        next.push(value);
                    }
                }
                if out.len() > MAX_ITEMS || values_added > MAX_REPEAT_VALUES {
                    return Err(EvalError::new(
                        EvalErrorKind::Limit,
                        "repeat() result too large",
                    ));
                }
            }
            frontier = next;
        }
        Ok(out)
    }

    /// `sort(keys…)`: a key written `-expr` sorts descending. Items whose key
    /// is empty sort first in either direction.
    fn sort(
        &self,
        input: &[Value<'a>],
        args: &[Expr],
        scope: &Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let keys: Vec<(&Expr, bool)> = args
            .iter()
            .map(|a| match &a.kind {
                ExprKind::Unary {
                    negate: true,
                    operand,
                } => (operand.as_ref(), true),
                _ => (a, false),
            })
            .collect();
        let mut rows: Vec<(Vec<Option<Value<'a>>>, Value<'a>)> = Vec::with_capacity(input.len());
        for (i, item) in input.iter().enumerate() {
            let mut row = Vec::with_capacity(keys.len().max(1));
            if keys.is_empty() {
                row.push(Some(item.clone()));
            }
            for (expr, _) in &keys {
                let values = self.per_item(input, expr, scope, i)?;
                row.push(single(&values, "sort() key")?.cloned());
            }
            rows.push((row, item.clone()));
        }
        let mut error = None;
        rows.sort_by(|(a, _), (b, _)| {
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                let descending = keys.get(k).is_some_and(|(_, d)| *d);
                let ordering = match (x, y) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => {
                        let ordering = match compare_values(x, y) {
                            Ok(o) => o.unwrap_or(Ordering::Equal),
                            Err(e) => {
                                error.get_or_insert(e);
                                Ordering::Equal
                            }
                        };
                        if descending {
                            ordering.reverse()
                        } else {
                            ordering
                        }
                    }
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            Ordering::Equal
        });
        match error {
            Some(e) => Err(e),
            None => Ok(rows.into_iter().map(|(_, v)| v).collect()),
        }
    }

    /// Finds the target of a reference: a contained resource (`#id`), a
    /// Bundle entry (by `fullUrl` or `Type/id`), the environment's resolver,
    /// or (if enabled) an empty stub typed from the reference text.
    fn resolve_reference(&self, reference: &str) -> Option<Value<'a>> {
        let containers = [Some(self.resource), self.env.root_resource];
        if let Some(id) = reference.strip_prefix('#') {
            for container in containers.into_iter().flatten() {
                if id.is_empty() {
                    return Some(Value::Node(Node::from_json(container)));
                }
                let contained = container.get("contained").and_then(Json::as_array);
                if let Some(found) = contained
                    .into_iter()
                    .flatten()
                    .find(|r| r.get("id").and_then(Json::as_str) == Some(id))
                {
                    return Some(Value::Node(Node::from_json(found)));
                }
            }
            return None;
        }
        let relative = relative_reference(reference);
        for bundle in containers.into_iter().flatten() {
            if bundle.get("resourceType").and_then(Json::as_str) != Some("Bundle") {
                continue;
            }
            for entry in bundle
                .get("entry")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let Some(resource) = entry.get("resource") else {
                    continue;
                };
                if entry.get("fullUrl").and_then(Json::as_str) == Some(reference) {
                    return Some(Value::Node(Node::from_json(resource)));
                }
                if let Some((rt, id)) = relative {
                    let matches = resource.get("resourceType").and_then(Json::as_str) == Some(rt)
                        && resource.get("id").and_then(Json::as_str) == Some(id);
                    if matches {
                        return Some(Value::Node(Node::from_json(resource)));
                    }
                }
            }
        }
        if let Some(found) = self.env.resolver.and_then(|r| r.resolve(reference)) {
            return Some(Value::Node(Node::from_json(found)));
        }
        if self.env.reference_stubs
            && let Some((rt, _)) = relative
        {
            let ty = model().resource_type(rt)?;
            return Some(Value::Node(Node {
                json: Some(empty_object()),
                shadow: None,
                ty: Some(ty),
            }));
        }
        None
    }
}

/// `(resourceType, id)` of a relative or absolute RESTful reference,
/// ignoring a `/_history/version` suffix.
fn relative_reference(reference: &str) -> Option<(&str, &str)> {
    let path = match reference.find("/_history/") {
        Some(i) => reference.get(..i)?,
        None => reference,
    };
    let mut segments = path.rsplit('/');
    let id = segments.next()?;
    let rt = segments.next()?;
    (!id.is_empty() && model().resource_type(rt).is_some()).then_some((rt, id))
}

// ---------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------

fn to_boolean_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    let b = match v {
        Value::Boolean(b) => *b,
        Value::Integer(1) => true,
        Value::Integer(0) => false,
        Value::Decimal(d) if *d == Decimal::ONE => true,
        Value::Decimal(d) if d.is_zero() => false,
        Value::String(s) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => true,
            "false" | "f" | "no" | "n" | "0" | "0.0" => false,
            _ => return None,
        },
        _ => return None,
    };
    Some(Value::Boolean(b))
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn to_integer_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    match v {
        Value::Integer(i) => Some(Value::Integer(*i)),
        Value::Boolean(b) => Some(Value::Integer(i64::from(*b))),
        Value::String(s) if is_integer_text(s) => s.parse().ok().map(Value::Integer),
        _ => None,
    }
}

fn is_decimal_text(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    match body.split_once('.') {
        Some((int, frac)) => {
            is_integer_text(int) && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => is_integer_text(body),
    }
}

fn to_decimal_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    match v {
        Value::Integer(i) => Some(Value::Decimal(Decimal::from_i64(*i))),
        Value::Decimal(d) => Some(Value::Decimal(*d)),
        Value::Boolean(b) => Decimal::new(if *b { 10 } else { 0 }, 1).map(Value::Decimal),
        Value::String(s) if is_decimal_text(s) => Decimal::parse(s).map(Value::Decimal),
        _ => None,
    }
}

fn to_string_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    match v {
        Value::Node(_) | Value::TypeInfo(_) => None,
        Value::String(s) => Some(Value::String(s.clone())),
        other => Some(string_value(other.to_string())),
    }
}

fn to_date_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    match v {
        Value::Date(d) => Some(Value::Date(*d)),
        Value::DateTime(d) => Some(Value::Date(d.date())),
        Value::String(s) => Date::parse(s)
            .or_else(|| DateTime::parse(s).map(|d| d.date()))
            .map(Value::Date),
        _ => None,
    }
}

fn to_date_time_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    match v {
        Value::DateTime(d) => Some(Value::DateTime(*d)),
        Value::Date(d) => Some(Value::DateTime(d.to_date_time())),
        Value::String(s) => DateTime::parse(s).map(Value::DateTime),
        _ => None,
    }
}

fn to_time_value<'a>(v: &Value<'a>) -> Option<Value<'a>> {
    match v {
        Value::Time(t) => Some(Value::Time(*t)),
        Value::String(s) => Time::parse(s.strip_prefix('T').unwrap_or(s)).map(Value::Time),
        _ => None,
    }
}

/// The component functions of FHIRPath 2.1 (`yearOf()` … `timeOf()`): empty
/// when the value does not have the component at its precision.
fn temporal_component<'a>(func: Func, v: &Value<'a>) -> Option<Value<'a>> {
    let date_time = match v {
        Value::DateTime(d) => Some(*d),
        Value::Date(d) => Some(d.to_date_time()),
        Value::String(s) => DateTime::parse(s),
        _ => None,
    };
    let time = match (v, &date_time) {
        (Value::Time(t), _) => Some(*t),
        (_, Some(d)) => d.time(),
        _ => None,
    };
    let integer = |n: Option<u32>| n.map(|n| Value::Integer(i64::from(n)));
    match func {
        Func::YearOf => date_time.map(|d| Value::Integer(i64::from(d.year()))),
        Func::MonthOf => integer(date_time?.date().month().map(u32::from)),
        Func::DayOf => integer(date_time?.date().day().map(u32::from)),
        Func::HourOf => integer(time?.hour().map(u32::from)),
        Func::MinuteOf => integer(time?.minute().map(u32::from)),
        Func::SecondOf => integer(time?.second().map(u32::from)),
        Func::MillisecondOf => integer(time?.millisecond().map(u32::from)),
        Func::TimezoneOffsetOf => {
            let minutes = date_time?.zone()?.minutes();
            Decimal::from_i64(i64::from(minutes))
                .checked_div(&Decimal::from_i64(60))
                .map(Value::Decimal)
        }
        Func::DateOf => date_time.map(|d| Value::Date(d.date())),
        Func::TimeOf => match v {
            Value::Time(_) => None,
            _ => time.map(Value::Time),
        },
        _ => None,
    }
}

/// Converts to a quantity: numbers get unit `'1'`, strings must look like
/// `number` optionally followed by `'ucum unit'` or a calendar keyword.
fn to_quantity_value(v: &Value<'_>) -> Option<Quantity> {
    match v {
        Value::Quantity(q) => Some(q.clone()),
        Value::Integer(i) => Some(Quantity::new(Decimal::from_i64(*i), "1")),
        Value::Decimal(d) => Some(Quantity::new(*d, "1")),
        Value::Boolean(b) => Some(Quantity::new(
            Decimal::new(if *b { 10 } else { 0 }, 1)?,
            "1",
        )),
        Value::String(s) => {
            let s = s.trim();
            let end = s
                .char_indices()
                .find(|(i, c)| {
                    !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-')))
                })
                .map_or(s.len(), |(i, _)| i);
            let (number, rest) = s.split_at(end);
            if !is_decimal_text(number) {
                return None;
            }
            let value = Decimal::parse(number)?;
            let rest = rest.trim();
            let unit = if rest.is_empty() {
                "1"
            } else if let Some(quoted) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\''))
            {
                quoted
            } else if calendar_keyword(rest).is_some() {
                rest
            } else {
                return None;
            };
            Some(Quantity::new(value, unit))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Math
// ---------------------------------------------------------------------------

fn math_unary<'a>(func: Func, v: &Value<'a>) -> Result<Collection<'a>, EvalError> {
    let not_number = || EvalError::type_error("math functions expect a number");
    let to_integer =
        |i: Option<i128>| optional(i.and_then(|i| i64::try_from(i).ok()).map(Value::Integer));
    match func {
        Func::Abs => Ok(vec![match v {
            Value::Integer(i) => Value::Integer(i.checked_abs().ok_or_else(not_number)?),
            Value::Decimal(d) => Value::Decimal(d.abs()),
            Value::Quantity(q) => Value::Quantity(Quantity {
                value: q.value.abs(),
                unit: q.unit.clone(),
            }),
            _ => return Err(not_number()),
        }]),
        Func::Ceiling | Func::Floor | Func::Truncate => {
            let apply = |d: Decimal| match func {
                Func::Ceiling => d.ceiling(),
                Func::Floor => d.floor(),
                _ => d.trunc(),
            };
            if let Value::Quantity(q) = v {
                // Quantities keep their unit (FHIRPath 2.1).
                let value = apply(q.value).and_then(|i| i64::try_from(i).ok());
                return Ok(optional(value.map(|i| {
                    Value::Quantity(Quantity {
                        value: Decimal::from_i64(i),
                        unit: q.unit.clone(),
                    })
                })));
            }
            Ok(to_integer(apply(decimal_of(v).ok_or_else(not_number)?)))
        }
        _ => {
            let x = decimal_of(v).ok_or_else(not_number)?.to_f64();
            let result = match func {
                Func::Exp => x.exp(),
                Func::Ln => x.ln(),
                _ => x.sqrt(),
            };
            Ok(optional(Decimal::from_f64(result).map(Value::Decimal)))
        }
    }
}

fn power<'a>(base: &Value<'a>, exponent: &Value<'a>) -> Result<Option<Value<'a>>, EvalError> {
    match (base, exponent) {
        (Value::Integer(b), Value::Integer(e)) if *e >= 0 => Ok(u32::try_from(*e)
            .ok()
            .and_then(|e| b.checked_pow(e))
            .map(Value::Integer)),
        _ => {
            let (Some(b), Some(e)) = (decimal_of(base), decimal_of(exponent)) else {
                return Err(EvalError::type_error("power() expects numbers"));
            };
            if let Some(n) = e.to_i64_exact().filter(|n| (0..=64).contains(n)) {
                let mut result = Decimal::ONE;
                for _ in 0..n {
                    match result.checked_mul(&b) {
                        Some(r) => result = r,
                        None => return Ok(None),
                    }
                }
                return Ok(Some(Value::Decimal(result)));
            }
            Ok(Decimal::from_f64(b.to_f64().powf(e.to_f64())).map(Value::Decimal))
        }
    }
}

/// `lowBoundary()` / `highBoundary()` for numbers, quantities and
/// temporal values.
fn boundary<'a>(v: &Value<'a>, digits: Option<i64>, high: bool) -> Option<Value<'a>> {
    match v {
        Value::Integer(i) => {
            decimal_boundary(Decimal::from_i64(*i), digits, high).map(Value::Decimal)
        }
        Value::Decimal(d) => decimal_boundary(*d, digits, high).map(Value::Decimal),
        Value::Quantity(q) => decimal_boundary(q.value, digits, high).map(|value| {
            Value::Quantity(Quantity {
                value,
                unit: q.unit.clone(),
            })
        }),
        Value::Date(d) => d.boundary(digits, high).map(Value::Date),
        Value::DateTime(d) => d.boundary(digits, high).map(Value::DateTime),
        Value::Time(t) => t.boundary(digits, high).map(Value::Time),
        _ => None,
    }
}

/// The decimal boundary: the value ± half a unit in its last digit, then
/// truncated (low) or rounded (high) to `digits` places; negative values
/// mirror the positive case.
fn decimal_boundary(d: Decimal, digits: Option<i64>, high: bool) -> Option<Decimal> {
    let places = u32::try_from(digits.unwrap_or(8))
        .ok()
        .filter(|p| *p <= 28)?;
    if d.is_negative() {
        return decimal_boundary(d.abs(), Some(i64::from(places)), !high).map(|b| b.neg());
    }
    let half = Decimal::new(5, d.scale() + 1)?;
    if high {
        d.checked_add(&half)?.round(places)
    } else {
        d.checked_sub(&half)?.truncate_to(places)
    }
}

/// `sum()`, `min()`, `max()`, `avg()` (FHIRPath 2.1). Valueless primitive
/// elements are skipped; an empty input (or incompatible units) gives empty.
fn aggregate_numbers<'a>(func: Func, input: &[Value<'a>]) -> Result<Collection<'a>, EvalError> {
    let values: Vec<Value<'a>> = input
        .iter()
        .filter(|v| !is_valueless(v))
        .map(Value::to_system)
        .collect();
    let summable = |v: &Value<'a>| {
        matches!(
            v,
            Value::Integer(_) | Value::Decimal(_) | Value::Quantity(_)
        )
    };
    if matches!(func, Func::Sum | Func::Avg) && !values.iter().all(summable) {
        return Err(EvalError::type_error(format!(
            "{func:?} expects numbers or quantities"
        )));
    }
    let Some((first, rest)) = values.split_first() else {
        return Ok(Vec::new());
    };
    let mut result = first.clone();
    for v in rest {
        result = match func {
            Func::Min | Func::Max => {
                let ordering = compare_values(v, &result)?.unwrap_or(Ordering::Equal);
                let wanted = if func == Func::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if ordering == wanted {
                    v.clone()
                } else {
                    result
                }
            }
            _ => {
                let sum = binary_values(BinaryOp::Add, &[result], std::slice::from_ref(v))?;
                match sum.into_iter().next() {
                    Some(total) => total,
                    None => return Ok(Vec::new()),
                }
            }
        };
    }
    if func == Func::Avg {
        let count = Value::Integer(i64::try_from(values.len()).unwrap_or(i64::MAX));
        return binary_values(BinaryOp::Div, &[result], &[count]);
    }
    Ok(vec![result])
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_encode(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                out.push(char::from(alphabet.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let value = u32::try_from(alphabet.iter().position(|a| *a == c)?).ok()?;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xFF).ok()?);
        }
    }
    Some(out)
}

fn encode(s: &str, format: &str) -> Option<String> {
    match format {
        "base64" => Some(base64_encode(s.as_bytes(), BASE64)),
        "urlbase64" => Some(base64_encode(s.as_bytes(), BASE64_URL)),
        "hex" => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
        _ => None,
    }
}

fn decode(s: &str, format: &str) -> Option<String> {
    let bytes = match format {
        "base64" => base64_decode(s, BASE64)?,
        "urlbase64" => base64_decode(s, BASE64_URL)?,
        "hex" => {
            if !s.len().is_multiple_of(2) {
                return None;
            }
            (0..s.len())
                .step_by(2)
                .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<Vec<u8>>>()?
        }
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

fn escape(s: &str, format: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    match format {
        "html" => {
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    other => out.push(other),
                }
            }
        }
        "json" => {
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    other => out.push(other),
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

fn unescape(s: &str, format: &str) -> Option<String> {
    match format {
        "html" => Some(
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        ),
        "json" => {
            let mut out = String::with_capacity(s.len());
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                // Unknown escapes (and a trailing backslash) are kept as written.
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some(c @ ('"' | '\\' | '/')) => out.push(c),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                }
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(encode("subjects?_d", "base64").unwrap(), "c3ViamVjdHM/X2Q=");
        assert_eq!(
            encode("subjects?_d", "urlbase64").unwrap(),
            "c3ViamVjdHM_X2Q="
        );
        assert_eq!(decode("dGVzdA==", "base64").unwrap(), "test");
        assert_eq!(decode("74657374", "hex").unwrap(), "test");
    }

    #[test]
    fn boundaries() {
        let d = |s: &str| Decimal::parse(s).unwrap();
        let low = |s: &str, p: Option<i64>| decimal_boundary(d(s), p, false).unwrap().to_string();
        let high = |s: &str, p: Option<i64>| decimal_boundary(d(s), p, true).unwrap().to_string();
        assert_eq!(low("1.587", None), "1.58650000");
        assert_eq!(low("1.587", Some(2)), "1.58");
        assert_eq!(low("-1.587", Some(2)), "-1.59");
        assert_eq!(low("1", Some(0)), "0");
        assert_eq!(high("1", Some(0)), "2");
        assert_eq!(high("0.0034", Some(1)), "0.0");
        assert_eq!(low("120", Some(2)), "119.50");
        assert_eq!(high("12.500", Some(4)), "12.5005");
        assert!(decimal_boundary(d("1.587"), Some(-1), false).is_none());
    }

    #[test]
    fn string_quantities() {
        let q = |s: &str| to_quantity_value(&Value::String(s.into())).map(|q| q.to_string());
        assert_eq!(q("1 day").as_deref(), Some("1 day"));
        assert_eq!(q("1 'wk'").as_deref(), Some("1 'wk'"));
        assert_eq!(q("1 wk"), None);
        assert_eq!(q("1.a"), None);
        assert_eq!(q("1.0").as_deref(), Some("1.0 '1'"));
    }
}
