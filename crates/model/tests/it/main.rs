//! Integration tests of the model crate (one test binary): exact unlearning, order
//! independence, metrics, explanations.

mod bounded;
mod explanations;
mod metrics;
mod streams;
mod unlearning;
