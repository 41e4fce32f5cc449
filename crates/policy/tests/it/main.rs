//! The one integration test binary of discreet-policy (linking is the slow part): loading
//! policies from files, the error of each kind of invalid file, the built-in retail policy
//! against API.md, and the records of processing it renders.

mod builtin;
mod docs;
mod invalid;
mod loading;
mod records;

use std::path::PathBuf;

/// A file beside these tests, e.g. `invalid/syntax.toml`.
pub fn test_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it")
        .join(relative)
}

/// The text of a file beside these tests.
pub fn read_test_file(relative: &str) -> String {
    match std::fs::read_to_string(test_file(relative)) {
        Ok(text) => text,
        Err(error) => panic!("cannot read test file {relative}: {error}"),
    }
}
