//! End-to-end tests of the `discreet` binary: it runs as a child process, over HTTP and on
//! the command line, exactly as an operator runs it.

mod bench_scale;
mod browser;
mod cli;
mod import_jsonl;
mod incident;
mod items;
mod postgres;
mod restart;
mod serving;
mod support;
