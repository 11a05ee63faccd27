//! Where the recorded real-world fixtures are, shared by the test suites of
//! roimon-price and roimon (included by path): under CI a missing or wrong
//! `ROIMON_FIXTURES` fails, locally a skip says so once per run.

/// The recorded real-world fixtures (`$ROIMON_FIXTURES`, laid out as in
/// `shared/fixtures`), or `None` when a test that needs them must skip.
///
/// - Set, but not a directory with a `prices/` folder: a failure, always.
/// - Unset under CI (`CI=true`): a failure; CI must run every fixture test.
/// - Unset elsewhere: `None`, and one line on stderr per test run (per
///   nextest run id; per test binary under `cargo test`) saying that
///   fixture tests skip and how to run them.
pub fn fixtures_dir() -> Option<std::path::PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match std::env::var_os("ROIMON_FIXTURES") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            assert!(
                dir.join("prices").is_dir(),
                "ROIMON_FIXTURES={} has no prices/ folder: point it at shared/fixtures",
                dir.display()
            );
            Some(dir)
        }
        None if ci => panic!(
            "ROIMON_FIXTURES is unset under CI=true: fixture tests may not skip in CI \
             (.ci/run sets it to ../shared/fixtures)"
        ),
        None => {
            say_skip_once();
            None
        }
    }
}

/// Print the skip line once per run: the first test process of a nextest
/// run creates a marker named after the run id; under `cargo test` (no run
/// id) once per test binary.
fn say_skip_once() {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    let first = match std::env::var("NEXTEST_RUN_ID") {
        Ok(run) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("fixtures-skip-{run}")),
            )
            .is_ok(),
        Err(_) => {
            let mut first = false;
            ONCE.call_once(|| first = true);
            first
        }
    };
    if first {
        // nextest keeps a passing test's output to itself: under it, write to
        // the terminal when there is one. `cargo test` captures only the print
        // macros, so a direct write to stderr shows.
        let tty = std::env::var_os("NEXTEST_RUN_ID").and_then(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/tty")
                .ok()
        });
        let mut out: Box<dyn Write> = match tty {
            Some(t) => Box::new(t),
            None => Box::new(std::io::stderr()),
        };
        let _ = writeln!(
            out,
            "SKIP fixture tests of {}: ROIMON_FIXTURES is unset (export ROIMON_FIXTURES=../shared/fixtures to run them; under CI=true this fails)",
            env!("CARGO_PKG_NAME")
        );
    }
}
