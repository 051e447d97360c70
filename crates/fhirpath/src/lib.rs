//! A FHIRPath engine (normative N1 release, as used by FHIR R4) over
//! `serde_json` FHIR resources.
//!
//! Expressions are compiled once into an [`Expr`] and can then be evaluated
//! any number of times, cheaply, against different resources:
//!
//! ```
//! use fhirpath::{compile, evaluate, Env};
//!
//! let expr = compile("Patient.name.where(use = 'official').given").unwrap();
//! let patient = serde_json::json!({
//!     "resourceType": "Patient",
//!     "name": [{"use": "official", "given": ["Peter", "James"]}]
//! });
//! let env = Env::new();
//! let given: Vec<String> = evaluate(&expr, &patient, &env)
//!     .unwrap()
//!     .iter()
//!     .map(|v| v.to_string())
//!     .collect();
//! assert_eq!(given, ["Peter", "James"]);
//! ```
//!
//! # Design
//!
//! * **Values** ([`Value`]) are either FHIRPath system values or [`Node`]s,
//!   references into the evaluated JSON carrying the FHIR type assigned by the
//!   embedded R4 type model (`src/model/r4.txt`). Choice elements are found
//!   through the model (`Observation.value` finds `valueQuantity` and types
//!   it `Quantity`), so `is`, `as` and `ofType` work on FHIR types.
//! * **Numbers** use an exact decimal ([`Decimal`]) that keeps the number of
//!   significant fractional digits.
//! * **Dates and times** ([`Date`], [`DateTime`], [`Time`]) keep their
//!   precision; comparisons across precisions yield empty, as specified.
//! * **Quantities** ([`Quantity`]) compare through a small UCUM converter
//!   and the calendar-duration keywords.
//! * **The clock** comes from the [`Env`] (`now()`/`today()` never read the
//!   wall clock), as do variables (`%ucum`, `%vs-…`, user variables), the
//!   reference resolver used by `resolve()`, and strict mode.
//!
//! # Validation
//!
//! [`compile`] rejects syntax errors, unknown functions, wrong arities,
//! unknown type names and invalid literal regular expressions. [`check`]
//! additionally validates an expression's paths against the model for a
//! given context type (for example when a SearchParameter is registered),
//! and strict mode ([`Env::with_strict`]) checks element names while
//! navigating.
//!
//! # Leniencies and deviations
//!
//! Where the specification leaves room, or where the R4 SearchParameters
//! and the reference implementations rely on it, the engine is lenient when
//! not in strict mode:
//!
//! * The `as` *operator* filters a collection by type instead of requiring
//!   a singleton (`(ActivityDefinition.useContext.value as Quantity)`); the
//!   `as()` *function* keeps the singleton rule.
//! * A `where`/`exists`/`all` criterion yielding several items counts as
//!   true instead of raising the singleton error.
//! * Navigating by a choice element's JSON name (`Observation.valueQuantity`)
//!   returns the typed value; [`check`] and strict mode report it.
//! * A primitive element that has only extensions (a `null` value with a
//!   `_name` entry) is a node (`hasValue()` is false, `extension()` works)
//!   but counts as empty for operators and value functions.
//! * The FHIRPath 2.1 additions exercised by the suite are implemented
//!   (`lowBoundary`, `highBoundary`, `precision`, `comparable`, `sort`,
//!   `split`, `join`, `encode`, `decode`, `escape`, `unescape`, `trim`,
//!   `yearOf()`…, regex flags, `L` literals as 64-bit integers); `defineVariable`
//!   and `%factory` are not.
//! * `memberOf()` (terminology) is not supported and raises an error;
//!   `conformsTo()` only knows the core resource profiles.

mod ast;
mod check;
mod decimal;
mod env;
mod error;
mod eval;
mod functions;
mod lexer;
mod model;
mod parser;
mod quantity;
mod temporal;
mod value;

pub use ast::Expr;
pub use check::check;
pub use decimal::Decimal;
pub use env::{Env, ResourceResolver, Tracer};
pub use error::{EvalError, EvalErrorKind, ParseError};
pub use eval::{evaluate, evaluate_with_context};
pub use parser::compile;
pub use quantity::Quantity;
pub use temporal::{CalendarUnit, Date, DateTime, Precision, Time, TimeZone};
pub use value::{Node, TypeInfo, Value};
