//! The search crate's integration tests, in one binary.
//!
//! - `registry`: the compiled registry of R4 SearchParameters.
//! - `extract`: index rows of hand-written resources, expected values worked
//!   out by hand from the R4 specification.
//! - `query`: search parameters to filters, expected values worked out by
//!   hand from the R4 search specification (http://hl7.org/fhir/R4/search.html).
//! - `corpus`: extraction over the Synthea bundles of the shared reference
//!   data (skipped when absent), and an ignored throughput timing.
//! - `generate`: the generator of `data/r4-search-parameters.json`, and the
//!   check that the committed file is up to date.

// Test code may panic: clippy.toml allows this inside `#[test]` functions,
// and the helpers shared by the tests need the same allowance.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus;
mod extract;
mod generate;
mod query;
mod registry;
