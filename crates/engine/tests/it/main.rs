//! The engine's one integration test binary: each test guards a privacy invariant of
//! DESIGN.md through the engine's public API over a real (SQLite) vault.

mod canary;
mod cluster;
mod consent;
mod dashboard;
mod export;
mod import;
mod incidents;
mod ingest;
mod items;
mod learner;
mod retention;
mod rights;
mod support;
