//! The fhir crate's integration tests, in one binary.
//!
//! - `validation`: hand-written, table-driven cases from the R4 specification.
//! - `fixtures`: UK Core examples committed under `tests/fixtures/`.
//! - `corpus`: the Synthea bundles and all UK Core examples from the shared
//!   reference data (skipped when it is absent), and a throughput timing.
//! - `generate`: the generator of `data/r4-definitions.json`, and the check
//!   that the committed file is up to date.

// Test code may panic: clippy.toml allows this inside `#[test]` functions,
// and the helpers shared by the tests need the same allowance.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus;
mod fixtures;
mod generate;
mod summary;
mod validation;
