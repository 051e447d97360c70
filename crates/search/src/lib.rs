//! FHIR R4 search for sharedcare: the registry of search parameters, index
//! extraction at write time, and parsing of search queries.
//!
//! The crate turns the official R4 SearchParameters into the two halves of
//! search that the `store` crate evaluates (see `store::search`):
//!
//! - **Writing**: [`extract`] evaluates every applicable parameter's
//!   FHIRPath expression on a resource and returns its [`IndexRow`]s;
//!   [`patient_compartment`] picks the Patient the resource belongs to.
//! - **Reading**: [`parse`] turns `name=value` search parameters into
//!   [`Filter`]s and [`ResultParams`] (sort, paging, includes…).
//!
//! Both sides normalise values the same way ([`normalize`] for strings, the
//! implicit ranges of dates and numbers), so the store compares normalised
//! values only.
//!
//! The crate does no IO, reads no clock (the caller passes "now" to
//! [`parse`]) and is synchronous. The registry is compiled once, on first
//! use ([`registry`]).
//!
//! [`IndexRow`]: store::search::IndexRow
//! [`Filter`]: store::search::Filter

mod extract;
mod normalize;
mod number;
mod query;
mod registry;
mod time;
mod values;

pub use extract::{ExtractIssue, extract, extract_with_issues, patient_compartment, patient_of};
pub use normalize::normalize;
pub use query::{
    Include, MAX_CHAIN_STEPS, MAX_DEPTH, ParsedSearch, ResultParams, Summary, Total,
    is_result_parameter, parse,
};
pub use registry::{Component, ParamDef, ParamKind, Registry, Support, registry};

/// The inclusive range of microseconds (UTC) that a FHIR date, dateTime or
/// instant denotes (`2015` → all of 2015), or `None` if `s` is not one.
/// A value with a time but no zone is read as UTC.
pub fn parse_date_range(s: &str) -> Option<(store::Micros, store::Micros)> {
    time::parse_range(s)
}

/// Why a search could not be parsed. Each variant names the parameter as the
/// client wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The searched type is not an R4 resource type.
    #[error("unknown resource type {0}")]
    UnknownResourceType(String),
    /// No such search parameter for the type (or, in a chain, for any of the
    /// possible target types).
    #[error("unknown search parameter {0}")]
    UnknownParameter(String),
    /// A modifier that does not exist or does not apply to the parameter's type.
    #[error("search parameter {param}: modifier :{modifier} is unknown or not valid here")]
    InvalidModifier { param: String, modifier: String },
    /// A malformed value.
    #[error("search parameter {param}: {reason}")]
    InvalidValue { param: String, reason: String },
    /// A chain (`a.b`) or reverse chain (`_has:…`) that cannot be followed.
    #[error("search parameter {param}: {reason}")]
    InvalidChain { param: String, reason: String },
    /// A parameter that exists but that this server does not support
    /// (skipped in lenient mode).
    #[error("search parameter {param} is not supported: {reason}")]
    UnsupportedParameter { param: String, reason: String },
    /// A feature of a supported parameter that this server does not support
    /// (a modifier needing terminology services, a chain too deep…).
    #[error("search parameter {param}: {reason}")]
    Unsupported { param: String, reason: String },
}
