//! Access to the recorded real `/metrics` captures in
//! `$ROIMON_FIXTURES/inference` (never copied into the repository), with
//! the fixture-directory rule shared with roimon-price's tests.

#![allow(dead_code)]

#[path = "../../../roimon-price/tests/common/fixtures.rs"]
mod fixtures;
pub use fixtures::fixtures_dir;

/// Every recorded capture, by file name.
pub const ALL: [&str; 7] = [
    "vllm-0.4.3-v0-opt-125m.prom",
    "vllm-v1-engine-label-deepseek-v4-flash-subset.prom",
    "tgi-3.3.5-openhermes-mistral-7b-subset.prom",
    "triton-2.38.0-t4-example-models-subset.prom",
    "sglang-docs-llama-3.1-8b.prom",
    "nim-llm-1.0.0-llama-3.1-8b-instruct.prom",
    "llamacpp-ik_llama-fork-pr695-paste.prom",
];

/// The bytes of a recorded capture, or `None` when fixture tests skip.
pub fn recorded(name: &str) -> Option<Vec<u8>> {
    let path = fixtures_dir()?.join("inference").join(name);
    Some(std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "ROIMON_FIXTURES is set but {} is unreadable: {e}",
            path.display()
        )
    }))
}
