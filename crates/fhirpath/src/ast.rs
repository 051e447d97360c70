//! The compiled form of a FHIRPath expression.
//!
//! Function names, arities and type specifiers are resolved at compile time,
//! and regular expressions given as string literals are compiled once, so
//! evaluation never re-parses anything.
//!
//! Invariant: every [`Expr`] records its tree depth, and the parser refuses to
//! build trees deeper than [`MAX_DEPTH`]; this bounds the recursion of the
//! evaluator (and of `Drop`) for any input.

use crate::model::TypeId;
use crate::value::Value;

/// Maximum depth of a compiled expression tree.
pub const MAX_DEPTH: u32 = 128;

/// A compiled FHIRPath expression. Create with [`crate::compile`].
#[derive(Clone, Debug)]
pub struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) depth: u32,
}

/// Expression node kinds.
#[derive(Clone, Debug)]
pub(crate) enum ExprKind {
    /// `{}`
    Empty,
    /// A literal value.
    Literal(Value<'static>),
    /// `$this`
    This,
    /// `$index`
    Index,
    /// `$total`
    Total,
    /// `%name`
    Variable(String),
    /// `target.name`, or `name` applied to `$this` when `target` is `None`.
    Member {
        target: Option<Box<Expr>>,
        name: String,
    },
    /// `target.func(args)`, or `func(args)` applied to `$this`.
    Call {
        target: Option<Box<Expr>>,
        func: Func,
        args: Vec<Expr>,
        regex: Option<Box<regex::Regex>>,
    },
    /// `target[index]`
    Indexer { target: Box<Expr>, index: Box<Expr> },
    /// Unary `-` (`negate == true`) or `+`.
    Unary { negate: bool, operand: Box<Expr> },
    /// A binary operator other than `|`.
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `a | b | c …` (flattened).
    Union(Vec<Expr>),
    /// `is`/`as` operators and the `is()`, `as()`, `ofType()` functions.
    TypeOp {
        operand: Option<Box<Expr>>,
        op: TypeOpKind,
        spec: TypeSpec,
    },
}

/// Binary operators (except union, which is n-ary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Equiv,
    Ne,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// The type operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeOpKind {
    /// `x is T` and `x.is(T)`.
    Is,
    /// `x as T`: filters by type (lenient about collections, as the R4
    /// SearchParameter expressions require).
    AsOperator,
    /// `x.as(T)`: singleton input required.
    AsFunction,
    /// `x.ofType(T)`.
    OfType,
}

/// The FHIRPath system (primitive) types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemType {
    Boolean,
    String,
    Integer,
    Decimal,
    Date,
    DateTime,
    Time,
    Quantity,
}

impl SystemType {
    pub(crate) fn from_name(name: &str) -> Option<SystemType> {
        Some(match name {
            "Boolean" => SystemType::Boolean,
            "String" => SystemType::String,
            "Integer" => SystemType::Integer,
            "Decimal" => SystemType::Decimal,
            "Date" => SystemType::Date,
            "DateTime" => SystemType::DateTime,
            "Time" => SystemType::Time,
            "Quantity" => SystemType::Quantity,
            _ => return None,
        })
    }
}

/// A resolved type specifier.
#[derive(Clone, Debug)]
pub(crate) enum TypeSpec {
    /// `System.X` (or an unqualified system type name).
    System(SystemType),
    /// A FHIR model type.
    Fhir(TypeId),
    /// Unqualified `Quantity`: matches both `System.Quantity` and FHIR
    /// `Quantity` (and its profiles such as `Age`).
    AnyQuantity(TypeId),
    /// A `System.` name that does not exist: matches nothing.
    Nothing,
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Empty,
    Exists,
    All,
    AllTrue,
    AnyTrue,
    AllFalse,
    AnyFalse,
    SubsetOf,
    SupersetOf,
    Count,
    Distinct,
    IsDistinct,
    Where,
    Select,
    Repeat,
    Single,
    First,
    Last,
    Tail,
    Skip,
    Take,
    Intersect,
    Exclude,
    Union,
    Combine,
    Iif,
    ToBoolean,
    ConvertsToBoolean,
    ToInteger,
    ConvertsToInteger,
    ToDecimal,
    ConvertsToDecimal,
    ToString,
    ConvertsToString,
    ToDate,
    ConvertsToDate,
    ToDateTime,
    ConvertsToDateTime,
    ToTime,
    ConvertsToTime,
    ToQuantity,
    ConvertsToQuantity,
    IndexOf,
    LastIndexOf,
    Substring,
    StartsWith,
    EndsWith,
    Contains,
    Upper,
    Lower,
    Replace,
    Matches,
    MatchesFull,
    ReplaceMatches,
    Length,
    ToChars,
    Trim,
    Split,
    Join,
    Encode,
    Decode,
    Escape,
    Unescape,
    Abs,
    Ceiling,
    Exp,
    Floor,
    Ln,
    Log,
    Power,
    Round,
    Sqrt,
    Truncate,
    Children,
    Descendants,
    Trace,
    Now,
    TimeOfDay,
    Today,
    Aggregate,
    Sort,
    LowBoundary,
    HighBoundary,
    Precision,
    Comparable,
    Type,
    Not,
    HasValue,
    GetValue,
    Extension,
    Resolve,
    ConformsTo,
    MemberOf,
    HtmlChecks,
    Sum,
    Min,
    Max,
    Avg,
    YearOf,
    MonthOf,
    DayOf,
    HourOf,
    MinuteOf,
    SecondOf,
    MillisecondOf,
    TimezoneOffsetOf,
    DateOf,
    TimeOf,
}

/// Name, function, minimum and maximum argument count.
const FUNCTIONS: &[(&str, Func, usize, usize)] = &[
    ("empty", Func::Empty, 0, 0),
    ("exists", Func::Exists, 0, 1),
    ("all", Func::All, 1, 1),
    ("allTrue", Func::AllTrue, 0, 0),
    ("anyTrue", Func::AnyTrue, 0, 0),
    ("allFalse", Func::AllFalse, 0, 0),
    ("anyFalse", Func::AnyFalse, 0, 0),
    ("subsetOf", Func::SubsetOf, 1, 1),
    ("supersetOf", Func::SupersetOf, 1, 1),
    ("count", Func::Count, 0, 0),
    ("distinct", Func::Distinct, 0, 0),
    ("isDistinct", Func::IsDistinct, 0, 0),
    ("where", Func::Where, 1, 1),
    ("select", Func::Select, 1, 1),
    ("repeat", Func::Repeat, 1, 1),
    ("single", Func::Single, 0, 0),
    ("first", Func::First, 0, 0),
    ("last", Func::Last, 0, 0),
    ("tail", Func::Tail, 0, 0),
    ("skip", Func::Skip, 1, 1),
    ("take", Func::Take, 1, 1),
    ("intersect", Func::Intersect, 1, 1),
    ("exclude", Func::Exclude, 1, 1),
    ("union", Func::Union, 1, 1),
    ("combine", Func::Combine, 1, 1),
    ("iif", Func::Iif, 2, 3),
    ("toBoolean", Func::ToBoolean, 0, 0),
    ("convertsToBoolean", Func::ConvertsToBoolean, 0, 0),
    ("toInteger", Func::ToInteger, 0, 0),
    ("convertsToInteger", Func::ConvertsToInteger, 0, 0),
    ("toDecimal", Func::ToDecimal, 0, 0),
    ("convertsToDecimal", Func::ConvertsToDecimal, 0, 0),
    ("toString", Func::ToString, 0, 0),
    ("convertsToString", Func::ConvertsToString, 0, 0),
    ("toDate", Func::ToDate, 0, 0),
    ("convertsToDate", Func::ConvertsToDate, 0, 0),
    ("toDateTime", Func::ToDateTime, 0, 0),
    ("convertsToDateTime", Func::ConvertsToDateTime, 0, 0),
    ("toTime", Func::ToTime, 0, 0),
    ("convertsToTime", Func::ConvertsToTime, 0, 0),
    ("toQuantity", Func::ToQuantity, 0, 1),
    ("convertsToQuantity", Func::ConvertsToQuantity, 0, 1),
    ("indexOf", Func::IndexOf, 1, 1),
    ("lastIndexOf", Func::LastIndexOf, 1, 1),
    ("substring", Func::Substring, 1, 2),
    ("startsWith", Func::StartsWith, 1, 1),
    ("endsWith", Func::EndsWith, 1, 1),
    ("contains", Func::Contains, 1, 1),
    ("upper", Func::Upper, 0, 0),
    ("lower", Func::Lower, 0, 0),
    ("replace", Func::Replace, 2, 2),
    ("matches", Func::Matches, 1, 2),
    ("matchesFull", Func::MatchesFull, 1, 2),
    ("replaceMatches", Func::ReplaceMatches, 2, 3),
    ("length", Func::Length, 0, 0),
    ("toChars", Func::ToChars, 0, 0),
    ("trim", Func::Trim, 0, 0),
    ("split", Func::Split, 1, 1),
    ("join", Func::Join, 0, 1),
    ("encode", Func::Encode, 1, 1),
    ("decode", Func::Decode, 1, 1),
    ("escape", Func::Escape, 1, 1),
    ("unescape", Func::Unescape, 1, 1),
    ("abs", Func::Abs, 0, 0),
    ("ceiling", Func::Ceiling, 0, 0),
    ("exp", Func::Exp, 0, 0),
    ("floor", Func::Floor, 0, 0),
    ("ln", Func::Ln, 0, 0),
    ("log", Func::Log, 1, 1),
    ("power", Func::Power, 1, 1),
    ("round", Func::Round, 0, 1),
    ("sqrt", Func::Sqrt, 0, 0),
    ("truncate", Func::Truncate, 0, 0),
    ("children", Func::Children, 0, 0),
    ("descendants", Func::Descendants, 0, 0),
    ("trace", Func::Trace, 1, 2),
    ("now", Func::Now, 0, 0),
    ("timeOfDay", Func::TimeOfDay, 0, 0),
    ("today", Func::Today, 0, 0),
    ("aggregate", Func::Aggregate, 1, 2),
    ("sort", Func::Sort, 0, usize::MAX),
    ("lowBoundary", Func::LowBoundary, 0, 1),
    ("highBoundary", Func::HighBoundary, 0, 1),
    ("precision", Func::Precision, 0, 0),
    ("comparable", Func::Comparable, 1, 1),
    ("type", Func::Type, 0, 0),
    ("not", Func::Not, 0, 0),
    ("hasValue", Func::HasValue, 0, 0),
    ("getValue", Func::GetValue, 0, 0),
    ("extension", Func::Extension, 1, 1),
    ("resolve", Func::Resolve, 0, 0),
    ("conformsTo", Func::ConformsTo, 1, 1),
    ("memberOf", Func::MemberOf, 1, 1),
    ("htmlChecks", Func::HtmlChecks, 0, 0),
    ("htmlChecks2", Func::HtmlChecks, 0, 0),
    ("sum", Func::Sum, 0, 0),
    ("min", Func::Min, 0, 0),
    ("max", Func::Max, 0, 0),
    ("avg", Func::Avg, 0, 0),
    ("yearOf", Func::YearOf, 0, 0),
    ("monthOf", Func::MonthOf, 0, 0),
    ("dayOf", Func::DayOf, 0, 0),
    ("hourOf", Func::HourOf, 0, 0),
    ("minuteOf", Func::MinuteOf, 0, 0),
    ("secondOf", Func::SecondOf, 0, 0),
    ("millisecondOf", Func::MillisecondOf, 0, 0),
    ("timezoneOffsetOf", Func::TimezoneOffsetOf, 0, 0),
    ("dateOf", Func::DateOf, 0, 0),
    ("timeOf", Func::TimeOf, 0, 0),
    // FHIRPath 2.1 `Long` is represented by this engine's 64-bit Integer.
    ("toLong", Func::ToInteger, 0, 0),
    ("convertsToLong", Func::ConvertsToInteger, 0, 0),
];

/// Looks a function up by name: `(function, min args, max args)`.
pub(crate) fn lookup_function(name: &str) -> Option<(Func, usize, usize)> {
    FUNCTIONS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, f, min, max)| (f, min, max))
}

impl Expr {
    /// Builds a node, computing its depth from its children.
    pub(crate) fn new(kind: ExprKind) -> Expr {
        let child_depth = match &kind {
            ExprKind::Member { target, .. } => target.as_ref().map_or(0, |t| t.depth),
            ExprKind::Call { target, args, .. } => {
                let t = target.as_ref().map_or(0, |t| t.depth);
                args.iter().map(|a| a.depth).max().unwrap_or(0).max(t)
            }
            ExprKind::Indexer { target, index } => target.depth.max(index.depth),
            ExprKind::Unary { operand, .. } => operand.depth,
            ExprKind::Binary { left, right, .. } => left.depth.max(right.depth),
            ExprKind::Union(items) => items.iter().map(|a| a.depth).max().unwrap_or(0),
            ExprKind::TypeOp { operand, .. } => operand.as_ref().map_or(0, |t| t.depth),
            _ => 0,
        };
        Expr {
            kind,
            depth: child_depth + 1,
        }
    }
}
