//! Access to the recorded real-world responses in `$ROIMON_FIXTURES/prices`
//! (set by `.ci/run`; never copied into the repository) and to our own
//! hand-written fixtures in `tests/data`.

#![allow(dead_code)]

use std::path::PathBuf;

/// The body of a recorded response, or `None` (after saying so on stderr)
/// when `ROIMON_FIXTURES` is unset. A set variable pointing at a missing file
/// is a failure, not a skip.
pub fn recorded(name: &str) -> Option<String> {
    let Some(dir) = std::env::var_os("ROIMON_FIXTURES") else {
        eprintln!("SKIP {name}: ROIMON_FIXTURES is unset (.ci/run sets it to ../shared/fixtures)");
        return None;
    };
    let path = PathBuf::from(dir).join("prices").join(name);
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
