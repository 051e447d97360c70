//! The auth crate's tests, through its public API.

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod issuer;
mod mapping;
mod rotation;
mod support;
mod verify;
