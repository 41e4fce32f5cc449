//! The evaluation protocol of DESIGN.md as a library: read a UCI Online Retail file, keep
//! the protocol's purchases, split them in time, choose settings on the month before the
//! cutoff, then measure every model once on the test period — quality (NDCG@10, Recall@20,
//! coverage@10), build time and memory, recommend and forget latency. It reads the data
//! file and writes only a split asked for; it never touches a vault or a key, and it never
//! looks at the test period while choosing settings.
//!
//! - [`retail_csv`]: the UCI file reader (plain or gzipped CSV).
//! - [`split`]: protocol purchases and the temporal split.
//! - [`synthetic`]: a deterministic synthetic shop of any size, and its split.
//! - [`tune`]: settings chosen on the validation month.
//! - [`quality`]: a model's quality on a split; the rows of the results table.
//! - [`latency`]: recommend and forget latency; [`percentile`], the one percentile rule.
//! - [`memory`]: the counting allocator behind the memory figures.

pub mod latency;
pub mod memory;
pub mod quality;
pub mod retail_csv;
pub mod split;
pub mod synthetic;
pub mod tune;

pub use latency::percentile;

/// What a long evaluation reports while it works, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Work on a step (or a part of it) begins; the text says what is being done.
    Doing(String),
    /// A step is done.
    StepDone,
}
