//! The Prometheus reader survives any input: arbitrary bytes, text close to
//! the format, and the recorded captures mutated (truncated, spliced, bytes
//! flipped, inserted or deleted) never panic, and every refusal names a
//! line that exists in the body (or says the body is too large). Whatever
//! parses also extracts without panicking.

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roimon_value::{Limits, PromError, ServerKind, extract, prom};

/// Cases per strategy per run.
const CASES: u32 = 256;

fn lines_in(body: &[u8]) -> usize {
    1 + body.iter().filter(|&&b| b == b'\n').count()
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_series: 5_000,
    };
    match prom::parse(body, limits) {
        Ok(e) => {
            for kind in ServerKind::ALL {
                let _ = extract(&e, kind, "");
            }
        }
        Err(PromError::TooLarge { .. }) => prop_assert!(body.len() > limits.max_body_bytes),
        Err(e @ PromError::Line { line, .. }) => {
            prop_assert!(
                line >= 1 && line <= lines_in(body),
                "{e} for a body of {} lines",
                lines_in(body)
            );
            let prefix = format!("line {line}: ");
            prop_assert!(e.to_string().starts_with(&prefix));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..1024)) {
        check(&body)?;
    }

    #[test]
    fn text_near_the_format(body in "((# (HELP|TYPE) )?[a-z_:]{0,6}(\\{[a-z]{0,3}=\"[a-z\\\\\"n]{0,4}\"(,[a-z]{1,3}=\"\")?,?\\}?)? ?([0-9.eE+-]{0,6}|[+-]?Inf|NaN)( [0-9-]{0,4})?( (counter|gauge|histogram|summary|untyped|x))?\r?\n){0,12}") {
        check(body.as_bytes())?;
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Flip(usize, u8),
    /// Append this capture's tail again (duplicate families and series).
    Splice(usize),
}

fn mutate(body: &[u8], m: &Mutation) -> Vec<u8> {
    let n = body.len().max(1);
    let mut b = body.to_vec();
    match m {
        Mutation::Truncate(at) => b.truncate(at % n),
        Mutation::Delete(at, len) => {
            let at = at % n;
            let end = (at + len).min(b.len());
            b.drain(at.min(end)..end);
        }
        Mutation::Insert(at, bytes) => {
            let at = (at % n).min(b.len());
            b.splice(at..at, bytes.iter().copied());
        }
        Mutation::Flip(at, x) => {
            if let Some(c) = b.get_mut(at % n) {
                *c ^= x | 1;
            }
        }
        Mutation::Splice(at) => {
            let tail = body[(at % n).min(body.len())..].to_vec();
            b.extend_from_slice(&tail);
        }
    }
    b
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(a, l)| Mutation::Delete(a, l)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop::sample::select(b"{}=\",\\ \n\r#0e+.-xInfNa".to_vec()),
                1..8
            )
        )
            .prop_map(|(a, v)| Mutation::Insert(a, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, x)| Mutation::Flip(a, x)),
        any::<usize>().prop_map(Mutation::Splice),
    ]
}

#[test]
fn mutated_captures() {
    for name in common::ALL {
        let Some(body) = common::recorded(name) else {
            return;
        };
        let mut runner = TestRunner::new(Config {
            cases: CASES / 4,
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(mutation(), 1..4), |ms| {
                let mut b = body.clone();
                for m in &ms {
                    b = mutate(&b, m);
                }
                check(&b)
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_duplicated_capture_names_the_first_repeated_series() {
    let Some(body) = common::recorded("llamacpp-ik_llama-fork-pr695-paste.prom") else {
        return;
    };
    let text = String::from_utf8(body).unwrap();
    let twice = format!(
        "{text}\n{}",
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let e = prom::parse(twice.as_bytes(), Limits::default()).unwrap_err();
    // 30 lines, a blank 31st, then the first sample again.
    assert_eq!(e.line(), Some(32), "{e}");
    assert!(
        e.to_string()
            .contains("duplicate series `llamacpp:prompt_tokens_total`"),
        "{e}"
    );
}
