//! End-to-end tests: the real `sharedcare` binary on port 0, spoken to over
//! loopback HTTP. SQLite always; PostgreSQL too when
//! `SHAREDCARE_TEST_DATABASE_URL` is set.

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod access;
mod client;
mod consent;
mod crash;
mod import;
mod jwks_url;
mod server;
