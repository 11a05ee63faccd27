//! Access to the recorded real-world responses in `$ROIMON_FIXTURES/prices`
//! (set by `.ci/run`; never copied into the repository) and to our own
//! hand-written fixtures in `tests/data`.

#![allow(dead_code)]

use std::path::PathBuf;

/// The body of a recorded response, or `None` when fixture tests skip (see
/// [`fixtures_dir`]). A missing file in a set fixture folder is a failure.
pub fn recorded(name: &str) -> Option<String> {
    let path = fixtures_dir()?.join("prices").join(name);
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "ROIMON_FIXTURES is set but {} is unreadable: {e}",
            path.display()
        )
    }))
}

/// One of our own fixtures, written in the publisher's documented format.
pub fn own(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

mod fixtures;
#[allow(unused_imports)]
pub use fixtures::fixtures_dir;
