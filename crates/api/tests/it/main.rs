//! In-process API tests (tower `oneshot`), run against every backend:
//! SQLite always, PostgreSQL when `SHAREDCARE_TEST_DATABASE_URL` is set.
//! Expected results are written from the FHIR R4 http.html specification.

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod audit;
mod bundles;
mod harness;
mod rest;
mod search;
mod shared_data;
