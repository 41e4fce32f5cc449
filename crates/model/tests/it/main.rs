//! Integration tests of the model crate (one test binary): exact unlearning, order
//! independence, metrics, explanations.

mod bounded;
mod explanations;
mod memory;
mod metrics;
mod sparse_ease;
mod streams;
mod unlearning;

#[global_allocator]
static ALLOCATOR: memory::PerThreadCounter = memory::PerThreadCounter;
