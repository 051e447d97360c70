//! The evaluator: walks a compiled [`Expr`] over FHIR JSON.
//!
//! Every expression maps an input collection to an output collection
//! (`Vec<Value>`). The *scope* carries `$this` (the focus that an expression
//! without an explicit target starts from), `$index` and `$total`. At the top
//! level `$this` is the context (by default the resource); functions that
//! iterate (`where`, `select`, `all`, `exists`, `repeat`, `aggregate`,
//! `sort`) evaluate their argument once per input item with `$this` bound to
//! that item. Arguments of other functions are evaluated in the caller's
//! scope, so `name.given.combine(name.family)` sees the resource as `$this`.
//!
//! Errors follow FHIRPath: singletons are enforced where the specification
//! requires them and type mismatches in arithmetic and ordering raise an
//! [`EvalError`]; equality between different types is simply `false`.
//!
//! Recursion is bounded by the depth of the compiled expression (capped by
//! the parser); JSON traversal (`descendants()`, `repeat()`) is iterative and
//! result sizes are capped by [`MAX_ITEMS`].

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::ast::{BinaryOp, Expr, ExprKind, SystemType, TypeOpKind, TypeSpec};
use crate::decimal::Decimal;
use crate::env::Env;
use crate::error::{EvalError, EvalErrorKind};
use crate::model::{TypeId, TypeKind, model};
use crate::quantity::{Quantity, calendar_keyword};
use crate::temporal::CalendarUnit;
use crate::value::{Node, Value};

/// Upper bound on the size of intermediate collections built by `repeat()`
/// and similar functions.
pub(crate) const MAX_ITEMS: usize = 1_000_000;

/// A FHIRPath collection.
pub(crate) type Collection<'a> = Vec<Value<'a>>;

/// Evaluates `expr` with `resource` as `%resource`, `%context` and `$this`.
pub fn evaluate<'a>(
    expr: &Expr,
    resource: &'a Json,
    env: &Env<'a>,
) -> Result<Vec<Value<'a>>, EvalError> {
    let context = [Value::Node(Node::from_json(resource))];
    evaluate_with_context(expr, resource, &context, env)
}

/// Evaluates `expr` on `context` (e.g. an element inside `resource`, for
/// invariants), with `resource` as `%resource`.
pub fn evaluate_with_context<'a>(
    expr: &Expr,
    resource: &'a Json,
    context: &[Value<'a>],
    env: &Env<'a>,
) -> Result<Vec<Value<'a>>, EvalError> {
    let evaluator = Evaluator {
        env,
        resource,
        context,
    };
    let scope = Scope {
        this: context,
        index: None,
        total: None,
    };
    evaluator.eval(expr, &scope)
}

pub(crate) struct Evaluator<'e, 'a> {
    pub(crate) env: &'e Env<'a>,
    pub(crate) resource: &'a Json,
    pub(crate) context: &'e [Value<'a>],
}

/// The iteration variables visible to an expression.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'s, 'a> {
    pub(crate) this: &'s [Value<'a>],
    pub(crate) index: Option<usize>,
    pub(crate) total: Option<&'s [Value<'a>]>,
}

impl<'e, 'a> Evaluator<'e, 'a> {
    pub(crate) fn eval(
        &self,
        expr: &Expr,
        scope: &Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        match &expr.kind {
            ExprKind::Empty => Ok(Vec::new()),
            ExprKind::Literal(value) => Ok(vec![value.clone()]),
            ExprKind::This => Ok(scope.this.to_vec()),
            ExprKind::Index => Ok(scope
                .index
                .map(|i| Value::Integer(i64::try_from(i).unwrap_or(i64::MAX)))
                .into_iter()
                .collect()),
            ExprKind::Total => Ok(scope.total.map(<[Value<'a>]>::to_vec).unwrap_or_default()),
            ExprKind::Variable(name) => self.variable(name),
            ExprKind::Member { target, name } => {
                let input = self.input(target.as_deref(), scope)?;
                let mut out = Vec::new();
                for item in input.iter() {
                    navigate(item, name, &mut out, self.env.strict)?;
                }
                Ok(out)
            }
            ExprKind::Call {
                target,
                func,
                args,
                regex,
            } => {
                let input = self.input(target.as_deref(), scope)?;
                self.call(*func, &input, args, regex.as_deref(), scope)
            }
            ExprKind::Indexer { target, index } => {
                let input = self.input(Some(target), scope)?;
                let index = self.eval(index, scope)?;
                let index = match single(&index, "indexer")? {
                    None => return Ok(Vec::new()),
                    Some(v) => integer_of(v)
                        .ok_or_else(|| EvalError::type_error("indexer expects an Integer"))?,
                };
                Ok(usize::try_from(index)
                    .ok()
                    .and_then(|i| input.get(i))
                    .cloned()
                    .into_iter()
                    .collect())
            }
            ExprKind::Unary { negate, operand } => {
                let operand = self.eval(operand, scope)?;
                let Some(value) = single(&operand, "unary operator")? else {
                    return Ok(Vec::new());
                };
                let value = value.to_system();
                let result = match (value, negate) {
                    (v @ (Value::Integer(_) | Value::Decimal(_) | Value::Quantity(_)), false) => v,
                    (Value::Integer(i), true) => {
                        Value::Integer(i.checked_neg().ok_or_else(overflow)?)
                    }
                    (Value::Decimal(d), true) => Value::Decimal(d.neg()),
                    (Value::Quantity(q), true) => Value::Quantity(Quantity {
                        value: q.value.neg(),
                        unit: q.unit,
                    }),
                    (other, _) => {
                        return Err(EvalError::type_error(format!(
                            "unary {} cannot be applied to {}",
                            if *negate { '-' } else { '+' },
                            other.type_info().name
                        )));
                    }
                };
                Ok(vec![result])
            }
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right, scope),
            ExprKind::Union(items) => {
                let mut out: Collection<'a> = Vec::new();
                for item in items {
                    for value in self.eval(item, scope)? {
                        push_distinct(&mut out, value);
                    }
                }
                Ok(out)
            }
            ExprKind::TypeOp { operand, op, spec } => {
                let input = self.input(operand.as_deref(), scope)?;
                match op {
                    TypeOpKind::Is => match single(&input, "is")? {
                        None => Ok(Vec::new()),
                        Some(v) => Ok(vec![Value::Boolean(value_is(v, spec, false))]),
                    },
                    TypeOpKind::AsFunction => match single(&input, "as()")? {
                        None => Ok(Vec::new()),
                        Some(v) => Ok(if value_is(v, spec, true) {
                            vec![v.clone()]
                        } else {
                            Vec::new()
                        }),
                    },
                    TypeOpKind::AsOperator | TypeOpKind::OfType => Ok(input
                        .iter()
                        .filter(|v| value_is(v, spec, true))
                        .cloned()
                        .collect()),
                }
            }
        }
    }

    /// The input collection of a path step: the target's value, or `$this`.
    pub(crate) fn input<'s>(
        &self,
        target: Option<&Expr>,
        scope: &Scope<'s, 'a>,
    ) -> Result<Cow<'s, [Value<'a>]>, EvalError> {
        match target {
            Some(t) => Ok(Cow::Owned(self.eval(t, scope)?)),
            None => Ok(Cow::Borrowed(scope.this)),
        }
    }

    fn variable(&self, name: &str) -> Result<Collection<'a>, EvalError> {
        let string = |s: String| Ok(vec![Value::String(s.into())]);
        match name {
            "context" => return Ok(self.context.to_vec()),
            "resource" => return Ok(vec![Value::Node(Node::from_json(self.resource))]),
            "rootResource" => {
                let root = self.env.root_resource.unwrap_or(self.resource);
                return Ok(vec![Value::Node(Node::from_json(root))]);
            }
            _ => {}
        }
        if let Some(value) = self.env.variables.get(name) {
            return Ok(value.clone());
        }
        match name {
            "ucum" => string("http://unitsofmeasure.org".into()),
            "sct" => string("http://snomed.info/sct".into()),
            "loinc" => string("http://loinc.org".into()),
            _ => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    string(format!("http://hl7.org/fhir/ValueSet/{vs}"))
                } else if let Some(ext) = name.strip_prefix("ext-") {
                    string(format!("http://hl7.org/fhir/StructureDefinition/{ext}"))
                } else {
                    Err(EvalError::new(
                        EvalErrorKind::UnknownVariable,
                        format!("unknown variable %{name}"),
                    ))
                }
            }
        }
    }

    fn binary(
        &self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        scope: &Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        // Boolean operators short-circuit where the result is already known.
        match op {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Implies => {
                let l = to_boolean(&self.eval(left, scope)?, "boolean operator")?;
                let decided = match (op, l) {
                    (BinaryOp::And, Some(false)) => Some(false),
                    (BinaryOp::Or, Some(true)) => Some(true),
                    (BinaryOp::Implies, Some(false)) => Some(true),
                    _ => None,
                };
                if let Some(result) = decided {
                    return Ok(vec![Value::Boolean(result)]);
                }
                let r = to_boolean(&self.eval(right, scope)?, "boolean operator")?;
                let result = match op {
                    BinaryOp::And => match (l, r) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    BinaryOp::Or => match (l, r) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    _ => match (l, r) {
                        (_, Some(true)) => Some(true),
                        (Some(true), Some(false)) => Some(false),
                        _ => None,
                    },
                };
                return Ok(result.map(Value::Boolean).into_iter().collect());
            }
            BinaryOp::Xor => {
                let l = to_boolean(&self.eval(left, scope)?, "xor")?;
                let r = to_boolean(&self.eval(right, scope)?, "xor")?;
                return Ok(match (l, r) {
                    (Some(a), Some(b)) => vec![Value::Boolean(a != b)],
                    _ => Vec::new(),
                });
            }
            _ => {}
        }
        let l = self.eval(left, scope)?;
        let r = self.eval(right, scope)?;
        binary_values(op, &l, &r)
    }
}

fn overflow() -> EvalError {
    EvalError::new(EvalErrorKind::Argument, "arithmetic overflow")
}

/// Applies a non-boolean binary operator to two evaluated operands.
pub(crate) fn binary_values<'a>(
    op: BinaryOp,
    l: &[Value<'a>],
    r: &[Value<'a>],
) -> Result<Collection<'a>, EvalError> {
    let l = &*without_valueless(l);
    let r = &*without_valueless(r);
    let boolean = |b: Option<bool>| Ok(b.map(Value::Boolean).into_iter().collect());
    match op {
        BinaryOp::Eq => boolean(collections_equal(l, r)),
        BinaryOp::Ne => boolean(collections_equal(l, r).map(|b| !b)),
        BinaryOp::Equiv => boolean(Some(collections_equivalent(l, r))),
        BinaryOp::NotEquiv => boolean(Some(!collections_equivalent(l, r))),
        BinaryOp::Lt | BinaryOp::Gt | BinaryOp::Le | BinaryOp::Ge => {
            let (Some(a), Some(b)) = (single(l, "comparison")?, single(r, "comparison")?) else {
                return Ok(Vec::new());
            };
            let ordering = compare_values(a, b)?;
            boolean(ordering.map(|o| match op {
                BinaryOp::Lt => o == Ordering::Less,
                BinaryOp::Gt => o == Ordering::Greater,
                BinaryOp::Le => o != Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        BinaryOp::In | BinaryOp::Contains => {
            let (needle, haystack) = if op == BinaryOp::In { (l, r) } else { (r, l) };
            match single(needle, "membership operator")? {
                None => Ok(Vec::new()),
                Some(item) => boolean(Some(
                    haystack.iter().any(|h| values_equal(item, h) == Some(true)),
                )),
            }
        }
        BinaryOp::Concat => {
            let text = |c: &[Value<'a>]| -> Result<String, EvalError> {
                match single(c, "&")? {
                    None => Ok(String::new()),
                    Some(v) => match v.to_system() {
                        Value::String(s) => Ok(s.to_string()),
                        other => Err(EvalError::type_error(format!(
                            "& expects strings, got {}",
                            other.type_info().name
                        ))),
                    },
                }
            };
            Ok(vec![Value::String(
                format!("{}{}", text(l)?, text(r)?).into(),
            )])
        }
        _ => {
            let (Some(a), Some(b)) = (
                single(l, "arithmetic operator")?,
                single(r, "arithmetic operator")?,
            ) else {
                return Ok(Vec::new());
            };
            Ok(arithmetic(op, &a.to_system(), &b.to_system())?
                .into_iter()
                .collect())
        }
    }
}

/// Arithmetic on two system values. `Ok(None)` means an empty result
/// (division by zero, overflow, incompatible units).
fn arithmetic<'a>(
    op: BinaryOp,
    a: &Value<'a>,
    b: &Value<'a>,
) -> Result<Option<Value<'a>>, EvalError> {
    use Value::{Date, DateTime, Decimal as Dec, Integer, Quantity as Qty, String as Str, Time};
    let mismatch = || {
        EvalError::type_error(format!(
            "operator {op:?} cannot be applied to {} and {}",
            a.type_info().name,
            b.type_info().name
        ))
    };
    Ok(match (op, a, b) {
        (BinaryOp::Add, Str(x), Str(y)) => Some(Str(format!("{x}{y}").into())),
        (_, Integer(x), Integer(y)) => match op {
            BinaryOp::Add => x.checked_add(*y).map(Integer),
            BinaryOp::Sub => x.checked_sub(*y).map(Integer),
            BinaryOp::Mul => x.checked_mul(*y).map(Integer),
            BinaryOp::Div => Decimal::from_i64(*x)
                .checked_div(&Decimal::from_i64(*y))
                .map(Dec),
            BinaryOp::IntDiv => x.checked_div(*y).map(Integer),
            BinaryOp::Mod => x.checked_rem(*y).map(Integer),
            _ => return Err(mismatch()),
        },
        (_, Integer(_) | Dec(_), Integer(_) | Dec(_)) => {
            let (Some(x), Some(y)) = (decimal_of(a), decimal_of(b)) else {
                return Err(mismatch());
            };
            match op {
                BinaryOp::Add => x.checked_add(&y).map(Dec),
                BinaryOp::Sub => x.checked_sub(&y).map(Dec),
                BinaryOp::Mul => x.checked_mul(&y).map(Dec),
                BinaryOp::Div => x.checked_div(&y).map(Dec),
                BinaryOp::IntDiv => x
                    .div_trunc(&y)
                    .and_then(|q| i64::try_from(q).ok())
                    .map(Integer),
                BinaryOp::Mod => x.checked_rem(&y).map(Dec),
                _ => return Err(mismatch()),
            }
        }
        (_, Qty(x), Qty(y)) => match op {
            BinaryOp::Add => x.checked_add(y).map(Qty),
            BinaryOp::Sub => x.checked_sub(y).map(Qty),
            BinaryOp::Mul => x.checked_mul(y).map(Qty),
            BinaryOp::Div => x.checked_div(y).map(Qty),
            _ => return Err(mismatch()),
        },
        (_, Qty(_), Integer(_) | Dec(_)) | (_, Integer(_) | Dec(_), Qty(_)) => {
            // A number in quantity arithmetic is the dimensionless quantity
            // `'1'` (adding it to a dimensioned quantity then yields empty).
            let as_quantity = |v: &Value<'a>| match v {
                Qty(q) => Some(q.clone()),
                other => decimal_of(other).map(|d| Quantity::new(d, "1")),
            };
            let (Some(x), Some(y)) = (as_quantity(a), as_quantity(b)) else {
                return Err(mismatch());
            };
            match op {
                BinaryOp::Add => x.checked_add(&y).map(Qty),
                BinaryOp::Sub => x.checked_sub(&y).map(Qty),
                BinaryOp::Mul => x.checked_mul(&y).map(Qty),
                BinaryOp::Div => x.checked_div(&y).map(Qty),
                _ => return Err(mismatch()),
            }
        }
        (BinaryOp::Add | BinaryOp::Sub, Date(_) | DateTime(_) | Time(_), Qty(q)) => {
            let (amount, unit) = calendar_amount(q)?;
            let amount = if op == BinaryOp::Sub {
                amount.checked_neg().ok_or_else(overflow)?
            } else {
                amount
            };
            match a {
                Date(d) => d.add(amount, unit).map(Date),
                DateTime(d) => d.add(amount, unit).map(DateTime),
                Time(t) => match unit {
                    CalendarUnit::Hour
                    | CalendarUnit::Minute
                    | CalendarUnit::Second
                    | CalendarUnit::Millisecond => t.add(amount, unit).map(Time),
                    _ => {
                        return Err(EvalError::type_error(
                            "a Time can only be shifted by hours or smaller units",
                        ));
                    }
                },
                _ => None,
            }
        }
        _ => return Err(mismatch()),
    })
}

/// Interprets a quantity as a whole number of calendar units for date
/// arithmetic (decimal parts are truncated). UCUM `a` and `mo` are rejected
/// because their durations are not calendar years/months.
fn calendar_amount(q: &Quantity) -> Result<(i64, CalendarUnit), EvalError> {
    let unit = match calendar_keyword(&q.unit) {
        Some(u) => u,
        None => match q.unit.as_ref() {
            "wk" => CalendarUnit::Week,
            "d" => CalendarUnit::Day,
            "h" => CalendarUnit::Hour,
            "min" => CalendarUnit::Minute,
            "s" => CalendarUnit::Second,
            "ms" => CalendarUnit::Millisecond,
            other => {
                return Err(EvalError::type_error(format!(
                    "'{other}' is not a calendar duration for date arithmetic"
                )));
            }
        },
    };
    let amount = q
        .value
        .trunc()
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(overflow)?;
    Ok((amount, unit))
}

/// Whether `v` is a FHIR primitive element that carries only extensions
/// (`"_given": [{"extension": …}]` with a `null` value). Operators and value
/// functions treat such items as absent.
pub(crate) fn is_valueless(v: &Value<'_>) -> bool {
    matches!(v, Value::Node(Node { json: None, .. }))
}

/// `c` without valueless primitive elements (borrowed when there are none).
pub(crate) fn without_valueless<'c, 'a>(c: &'c [Value<'a>]) -> Cow<'c, [Value<'a>]> {
    if c.iter().any(is_valueless) {
        Cow::Owned(c.iter().filter(|v| !is_valueless(v)).cloned().collect())
    } else {
        Cow::Borrowed(c)
    }
}

/// The system value of the single item of `c`, for operations on values:
/// `Ok(None)` if empty or valueless, an error if there are several items.
pub(crate) fn single_value<'a>(
    c: &[Value<'a>],
    what: &str,
) -> Result<Option<Value<'a>>, EvalError> {
    Ok(single(c, what)?
        .filter(|v| !is_valueless(v))
        .map(Value::to_system))
}

/// The single item of `c`: `Ok(None)` if empty, an error if it has several.
pub(crate) fn single<'c, 'a>(
    c: &'c [Value<'a>],
    what: &str,
) -> Result<Option<&'c Value<'a>>, EvalError> {
    match c {
        [] => Ok(None),
        [v] => Ok(Some(v)),
        _ => Err(EvalError::singleton(what, c.len())),
    }
}

/// FHIRPath singleton evaluation of a collection as a Boolean: empty (or a
/// valueless primitive) is unknown, a single Boolean is itself, any other
/// single item is `true`.
pub(crate) fn to_boolean(c: &[Value<'_>], what: &str) -> Result<Option<bool>, EvalError> {
    Ok(single(&without_valueless(c), what)?.map(|v| v.as_bool().unwrap_or(true)))
}

pub(crate) fn integer_of(v: &Value<'_>) -> Option<i64> {
    match v.to_system() {
        Value::Integer(i) => Some(i),
        _ => None,
    }
}

pub(crate) fn decimal_of(v: &Value<'_>) -> Option<Decimal> {
    match v.to_system() {
        Value::Integer(i) => Some(Decimal::from_i64(i)),
        Value::Decimal(d) => Some(d),
        _ => None,
    }
}

/// Appends `value` unless an equal item is already present.
pub(crate) fn push_distinct<'a>(out: &mut Collection<'a>, value: Value<'a>) {
    if !out.iter().any(|v| values_equal(v, &value) == Some(true)) {
        out.push(value);
    }
}

// ---------------------------------------------------------------------------
// Equality, equivalence and ordering
// ---------------------------------------------------------------------------

/// `=` on collections: empty if either side is empty, false on size
/// mismatch, otherwise item-wise in order.
pub(crate) fn collections_equal(a: &[Value<'_>], b: &[Value<'_>]) -> Option<bool> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.len() != b.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (x, y) in a.iter().zip(b) {
        match values_equal(x, y) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown { None } else { Some(true) }
}

/// `~` on collections: order-independent, empty ~ empty is true.
pub(crate) fn collections_equivalent(a: &[Value<'_>], b: &[Value<'_>]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    'outer: for x in a {
        for (y, taken) in b.iter().zip(used.iter_mut()) {
            if !*taken && values_equivalent(x, y) {
                *taken = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// Item equality; `None` when unknowable (date precision, incomparable
/// units).
pub(crate) fn values_equal(a: &Value<'_>, b: &Value<'_>) -> Option<bool> {
    let a = a.to_system();
    let b = b.to_system();
    match (&a, &b) {
        (Value::Node(x), Value::Node(y)) => Some(x.json == y.json && x.shadow == y.shadow),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x == y),
        (Value::Integer(x), Value::Integer(y)) => Some(x == y),
        (Value::String(x), Value::String(y)) => Some(x == y),
        (Value::TypeInfo(x), Value::TypeInfo(y)) => Some(x == y),
        (Value::Quantity(x), Value::Quantity(y)) => x.compare(y).map(|o| o == Ordering::Equal),
        (Value::Quantity(q), n) | (n, Value::Quantity(q)) if numeric(n).is_some() => {
            dimensionless_compare(q, n)
                .map(|o| o == Ordering::Equal)
                .or(Some(false))
        }
        _ => {
            if let (Some(x), Some(y)) = (numeric(&a), numeric(&b)) {
                return Some(x == y);
            }
            match temporal_compare(&a, &b) {
                Some(result) => result.map(|o| o == Ordering::Equal),
                None => Some(false),
            }
        }
    }
}

/// Compares a dimensionless quantity (`'1'`, `'kg.kg-1'`) with the number
/// `n`; `None` if the quantity has a dimension.
fn dimensionless_compare(q: &Quantity, n: &Value<'_>) -> Option<Ordering> {
    q.compare(&Quantity::new(numeric(n)?, "1"))
}

fn numeric(v: &Value<'_>) -> Option<Decimal> {
    match v {
        Value::Integer(i) => Some(Decimal::from_i64(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Compares temporal values (and strings that parse as the other side's
/// temporal type). Outer `None`: not a temporal pair.
fn temporal_compare(a: &Value<'_>, b: &Value<'_>) -> Option<Option<Ordering>> {
    use crate::temporal::{Date, DateTime, Time};
    let as_date_time = |v: &Value<'_>| match v {
        Value::DateTime(d) => Some(*d),
        Value::Date(d) => Some(d.to_date_time()),
        Value::String(s) => DateTime::parse(s),
        _ => None,
    };
    Some(match (a, b) {
        (Value::Date(x), Value::Date(y)) => x.compare(y),
        (Value::Date(x), Value::String(s)) => x.compare(&Date::parse(s)?),
        (Value::String(s), Value::Date(y)) => Date::parse(s)?.compare(y),
        (Value::Time(x), Value::Time(y)) => x.compare(y),
        (Value::Time(x), Value::String(s)) => x.compare(&Time::parse(s)?),
        (Value::String(s), Value::Time(y)) => Time::parse(s)?.compare(y),
        (
            Value::DateTime(_) | Value::Date(_) | Value::String(_),
            Value::DateTime(_) | Value::Date(_) | Value::String(_),
        ) => as_date_time(a)?.compare(&as_date_time(b)?),
        _ => return None,
    })
}

/// Item equivalence (`~`).
pub(crate) fn values_equivalent(a: &Value<'_>, b: &Value<'_>) -> bool {
    let a = a.to_system();
    let b = b.to_system();
    match (&a, &b) {
        (Value::String(x), Value::String(y)) => {
            normalize_for_equivalence(x) == normalize_for_equivalence(y)
        }
        (Value::Quantity(x), Value::Quantity(y)) => x.equivalent(y),
        (Value::Node(x), Value::Node(y)) => match (x.json, y.json) {
            (Some(p), Some(q)) => json_equivalent(p, q),
            _ => x.same_node(y),
        },
        _ => {
            if let (Some(x), Some(y)) = (numeric(&a), numeric(&b)) {
                return x.equivalent(&y);
            }
            match temporal_compare(&a, &b) {
                Some(result) => result == Some(Ordering::Equal),
                None => values_equal(&a, &b) == Some(true),
            }
        }
    }
}

/// String equivalence ignores case and treats every whitespace character
/// as a space (without collapsing or trimming).
fn normalize_for_equivalence(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    spaced.to_lowercase()
}

/// Structural equivalence of JSON: strings compared as for `~`.
fn json_equivalent(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::String(x), Json::String(y)) => {
            normalize_for_equivalence(x) == normalize_for_equivalence(y)
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equivalent(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            let keys =
                |m: &'_ serde_json::Map<String, Json>| m.keys().filter(|k| *k != "id").count();
            keys(x) == keys(y)
                && x.iter()
                    .filter(|(k, _)| *k != "id")
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equivalent(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering for `<`, `>`, `<=`, `>=` and `sort()`. `Ok(None)` when
/// unknowable; an error when the types cannot be ordered.
pub(crate) fn compare_values(a: &Value<'_>, b: &Value<'_>) -> Result<Option<Ordering>, EvalError> {
    let a = a.to_system();
    let b = b.to_system();
    if let (Some(x), Some(y)) = (numeric(&a), numeric(&b)) {
        return Ok(Some(x.cmp(&y)));
    }
    match (&a, &b) {
        (Value::String(x), Value::String(y)) => return Ok(Some(x.cmp(y))),
        (Value::Quantity(x), Value::Quantity(y)) => return Ok(x.compare(y)),
        // A number orders against a dimensionless quantity; against any
        // other quantity the result is unknown (empty), not an error.
        (Value::Quantity(q), n) if numeric(n).is_some() => return Ok(dimensionless_compare(q, n)),
        (n, Value::Quantity(q)) if numeric(n).is_some() => {
            return Ok(dimensionless_compare(q, n).map(Ordering::reverse));
        }
        _ => {}
    }
    let is_string = |v: &Value<'_>| matches!(v, Value::String(_));
    if !(is_string(&a) && is_string(&b))
        && let Some(result) = temporal_compare(&a, &b)
    {
        return Ok(result);
    }
    Err(EvalError::type_error(format!(
        "cannot compare {} with {}",
        a.type_info().name,
        b.type_info().name
    )))
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// Whether `value` is of the type `spec`. With `exact`, FHIR primitive types
/// must match exactly (`code` is not `as(string)`), while complex types still
/// accept profiles/specialisations (`Age` as `Quantity`).
pub(crate) fn value_is(value: &Value<'_>, spec: &TypeSpec, exact: bool) -> bool {
    let m = model();
    match spec {
        TypeSpec::Nothing => false,
        TypeSpec::System(system) if matches!(value, Value::Node(Node { ty: None, .. })) => {
            // Untyped JSON (outside the model) carries system values.
            let json = value.as_json();
            match system {
                SystemType::Boolean => json.is_some_and(Json::is_boolean),
                SystemType::String => json.is_some_and(Json::is_string),
                SystemType::Integer => json.is_some_and(Json::is_i64),
                SystemType::Decimal => json.is_some_and(|j| j.is_number() && !j.is_i64()),
                _ => false,
            }
        }
        TypeSpec::System(system) => matches!(
            (system, value),
            (SystemType::Boolean, Value::Boolean(_))
                | (SystemType::String, Value::String(_))
                | (SystemType::Integer, Value::Integer(_))
                | (SystemType::Decimal, Value::Decimal(_))
                | (SystemType::Date, Value::Date(_))
                | (SystemType::DateTime, Value::DateTime(_))
                | (SystemType::Time, Value::Time(_))
                | (SystemType::Quantity, Value::Quantity(_))
        ),
        TypeSpec::AnyQuantity(id) => match value {
            Value::Quantity(_) => true,
            Value::Node(node) => node.ty.is_some_and(|t| m.is_subtype(t, *id)),
            _ => false,
        },
        TypeSpec::Fhir(id) => match value {
            Value::Node(node) => match node_type(node) {
                Some(t) => {
                    if exact && m.kind(*id) == Some(TypeKind::Primitive) {
                        t == *id
                    } else {
                        m.is_subtype(t, *id)
                    }
                }
                None => false,
            },
            _ => false,
        },
    }
}

/// The node's type, inferring primitives of untyped JSON from the JSON kind.
fn node_type(node: &Node<'_>) -> Option<TypeId> {
    if node.ty.is_some() {
        return node.ty;
    }
    let m = model();
    match node.json? {
        Json::Bool(_) => m.type_id("boolean"),
        Json::Number(n) if n.is_i64() => m.type_id("integer"),
        Json::Number(_) => m.type_id("decimal"),
        Json::String(_) => m.type_id("string"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Navigation
// ---------------------------------------------------------------------------

/// The resource type of `json` if it is a resource, else `declared`.
fn refine_type(declared: Option<TypeId>, json: &Json) -> Option<TypeId> {
    if let Some(rt) = json.get("resourceType").and_then(Json::as_str)
        && let Some(t) = model().resource_type(rt)
    {
        return Some(t);
    }
    declared
}

/// Pushes the node(s) for one JSON property: arrays are flattened and the
/// `_name` shadow of primitives is paired up by position.
fn push_property<'a>(
    value: Option<&'a Json>,
    shadow: Option<&'a Json>,
    ty: Option<TypeId>,
    out: &mut Collection<'a>,
) {
    let shadow = shadow.filter(|s| !s.is_null());
    match value {
        Some(Json::Array(items)) => {
            let shadows = shadow.and_then(Json::as_array);
            for (i, item) in items.iter().enumerate() {
                let s = shadows.and_then(|a| a.get(i)).filter(|s| !s.is_null());
                if item.is_null() {
                    if s.is_some() {
                        out.push(Value::Node(Node {
                            json: None,
                            shadow: s,
                            ty,
                        }));
                    }
                    continue;
                }
                out.push(Value::Node(Node {
                    json: Some(item),
                    shadow: s,
                    ty: refine_type(ty, item),
                }));
            }
            if let Some(extra) = shadows.and_then(|a| a.get(items.len()..)) {
                for s in extra.iter().filter(|s| !s.is_null()) {
                    out.push(Value::Node(Node {
                        json: None,
                        shadow: Some(s),
                        ty,
                    }));
                }
            }
        }
        Some(Json::Null) | None => match shadow {
            Some(Json::Array(shadows)) => {
                for s in shadows.iter().filter(|s| !s.is_null()) {
                    out.push(Value::Node(Node {
                        json: None,
                        shadow: Some(s),
                        ty,
                    }));
                }
            }
            Some(s) => out.push(Value::Node(Node {
                json: None,
                shadow: Some(s),
                ty,
            })),
            None => {}
        },
        Some(v) => out.push(Value::Node(Node {
            json: Some(v),
            shadow,
            ty: refine_type(ty, v),
        })),
    }
}

fn starts_uppercase(name: &str) -> bool {
    name.chars().next().is_some_and(char::is_uppercase)
}

/// `item.name`: appends the children called `name` (or `item` itself when
/// `name` is a type name it conforms to, as in `Patient.name`).
pub(crate) fn navigate<'a>(
    item: &Value<'a>,
    name: &str,
    out: &mut Collection<'a>,
    strict: bool,
) -> Result<(), EvalError> {
    match item {
        Value::Node(node) => navigate_node(node, name, out, strict),
        Value::TypeInfo(info) => {
            match name {
                "namespace" => out.push(Value::String(info.namespace.into())),
                "name" => out.push(Value::String(info.name.clone())),
                _ => {}
            }
            Ok(())
        }
        Value::Quantity(q) => {
            match name {
                "value" => out.push(Value::Decimal(q.value)),
                "unit" | "code" => out.push(Value::String(q.unit.clone())),
                _ => {}
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn navigate_node<'a>(
    node: &Node<'a>,
    name: &str,
    out: &mut Collection<'a>,
    strict: bool,
) -> Result<(), EvalError> {
    let m = model();
    if starts_uppercase(name) {
        // A type name at the start of a path filters the focus by type.
        let declared = node
            .json
            .and_then(|j| j.get("resourceType"))
            .and_then(Json::as_str);
        let matches = declared == Some(name)
            || match (node.ty, m.type_id(name)) {
                (Some(t), Some(wanted)) => m.is_subtype(t, wanted),
                _ => false,
            };
        if matches {
            out.push(Value::Node(*node));
            return Ok(());
        }
        if strict && m.type_id(name).is_some() {
            return Err(EvalError::new(
                EvalErrorKind::Semantic,
                format!(
                    "'{name}' does not match the type of the focus ({})",
                    node.type_name().unwrap_or("unknown")
                ),
            ));
        }
    }
    let map = match node.json {
        Some(Json::Object(map)) => map,
        _ => {
            // Primitives expose `id` and `extension` from their shadow.
            if let Some(Json::Object(shadow)) = node.shadow {
                let element = m
                    .type_id("Element")
                    .and_then(|e| m.def(e))
                    .and_then(|d| d.element(name));
                if let Some(element) = element {
                    push_property(shadow.get(name), None, element.types.first().copied(), out);
                }
            }
            return Ok(());
        }
    };
    // `_name` shadows are rare; avoid building their keys when there are none.
    let has_shadows = map.keys().any(|k| k.starts_with('_'));
    let shadow_of = |key: &str| {
        if has_shadows {
            map.get(&format!("_{key}"))
        } else {
            None
        }
    };
    if let Some((type_id, def)) = node.ty.and_then(|t| m.def(t).map(|d| (t, d))) {
        match def.element(name) {
            Some(element) if !element.choice => {
                let ty = element.types.first().copied();
                let is_primitive = ty.and_then(|t| m.kind(t)) == Some(TypeKind::Primitive);
                let shadow = if is_primitive { shadow_of(name) } else { None };
                push_property(map.get(name), shadow, ty, out);
                return Ok(());
            }
            Some(_) => {
                for (key, value) in map {
                    let raw = key.strip_prefix('_').unwrap_or(key);
                    if raw.len() <= name.len() || !raw.starts_with(name) {
                        continue;
                    }
                    if let Some((element, ty)) = def.element_for_key(raw) {
                        if element.name != name {
                            continue;
                        }
                        if key.starts_with('_') {
                            if !map.contains_key(raw) {
                                push_property(None, Some(value), Some(ty), out);
                            }
                        } else {
                            push_property(Some(value), shadow_of(key), Some(ty), out);
                        }
                    }
                }
                return Ok(());
            }
            None if def.element_for_key(name).is_some_and(|(e, _)| e.choice) => {
                // `valueQuantity` instead of `value` is not legal FHIRPath:
                // an error in strict mode, tolerated (typed) otherwise.
                if strict {
                    let base = def.element_for_key(name).map_or(name, |(e, _)| e.name);
                    return Err(EvalError::new(
                        EvalErrorKind::Semantic,
                        format!(
                            "'{name}' is a choice-type JSON property; navigate '{base}' (optionally with ofType())"
                        ),
                    ));
                }
                let ty = def.element_for_key(name).map(|(_, t)| t);
                let is_primitive = ty.and_then(|t| m.kind(t)) == Some(TypeKind::Primitive);
                let shadow = if is_primitive { shadow_of(name) } else { None };
                push_property(map.get(name), shadow, ty, out);
                return Ok(());
            }
            None if strict && def.kind != TypeKind::Primitive => {
                return Err(EvalError::new(
                    EvalErrorKind::Semantic,
                    format!("'{name}' is not an element of {}", m.public_name(type_id)),
                ));
            }
            None => {}
        }
    }
    // Untyped (or unknown) element: exact property, else a choice property
    // whose suffix is a data type name.
    if map.contains_key(name) || map.contains_key(&format!("_{name}")) {
        push_property(map.get(name), shadow_of(name), None, out);
        return Ok(());
    }
    for (key, value) in map {
        if let Some(suffix) = key.strip_prefix(name)
            && let Some(ty) = m.type_for_suffix(suffix)
        {
            push_property(Some(value), shadow_of(key), Some(ty), out);
        }
    }
    Ok(())
}

/// `children()`: every child element of `item`, in document order.
pub(crate) fn children<'a>(item: &Value<'a>, out: &mut Collection<'a>) {
    let Value::Node(node) = item else { return };
    let m = model();
    let def = node.ty.and_then(|t| m.def(t));
    match node.json {
        Some(Json::Object(map)) => {
            for (key, value) in map {
                if key == "resourceType" {
                    continue;
                }
                if let Some(raw) = key.strip_prefix('_') {
                    if !map.contains_key(raw) {
                        let ty = def.and_then(|d| d.element_for_key(raw)).map(|(_, t)| t);
                        push_property(None, Some(value), ty, out);
                    }
                    continue;
                }
                let ty = def.and_then(|d| d.element_for_key(key)).map(|(_, t)| t);
                let shadow = match value {
                    Json::Object(_) => None,
                    _ => map.get(&format!("_{key}")),
                };
                push_property(Some(value), shadow, ty, out);
            }
        }
        _ => {
            if let Some(Json::Object(shadow)) = node.shadow {
                let element = m.type_id("Element").and_then(|e| m.def(e));
                for (key, value) in shadow {
                    let ty = element.and_then(|d| d.element_for_key(key)).map(|(_, t)| t);
                    push_property(Some(value), None, ty, out);
                }
            }
        }
    }
}
