//! The vault's one integration test binary.

mod conformance;
mod postgres;
mod sqlite;
