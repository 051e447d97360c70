//! Integration tests for the `fhirpath` crate, in a single test binary:
//!
//! * `official` — the official FHIRPath R4 test suite (the acceptance gate);
//! * `api` — behaviour of the public API that the suite does not cover
//!   (resolve, strict mode, clock, limits, …);
//! * `bench` — an ignored micro benchmark over the R4 SearchParameters;
//! * `model_gen` — an ignored developer tool regenerating the type model.
//!
//! The modules are `#[cfg(test)]` so that the workspace's test allowances in
//! `clippy.toml` (unwrap, expect, panic, indexing) cover their helpers too.

#[cfg(test)]
mod api;
#[cfg(test)]
mod bench;
#[cfg(test)]
mod model_gen;
#[cfg(test)]
mod official;
#[cfg(test)]
mod xml;
