//! Which inference server a `/metrics` body came from, and what it says it
//! served per model: prompt tokens (and the cached part of them where the
//! server reports it), generated tokens, successful requests, and its
//! process start time. Metric names per server are those of the recorded
//! captures in `shared/fixtures/inference` (see its SOURCES.md) and, for
//! TensorRT-LLM, of its upstream metrics collector.

use crate::prom::{Exposition, Sample};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The server a scrape target runs (the `kind` config key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// Recognise the server by its metric names at every scrape.
    Auto,
    /// vLLM, V0 and V1 engines (`vllm:*`, label `model_name`, V1 adds `engine`).
    Vllm,
    /// Hugging Face text-generation-inference (`tgi_*`, no model label).
    Tgi,
    /// NVIDIA Triton (`nv_inference_*`, labels `model`, `version`): requests only.
    Triton,
    /// SGLang (`sglang:*`, label `model_name`): tokens, no request counter.
    Sglang,
    /// llama.cpp `llama-server --metrics` (`llamacpp:*`, no labels): tokens only.
    Llamacpp,
    /// NVIDIA NIM for LLMs (vLLM's names without a prefix).
    Nim,
    /// TensorRT-LLM: `trtllm-serve` (`trtllm_*`), or the Triton backend
    /// (`nv_trt_llm_*`, which has no token counters).
    Trtllm,
}

impl ServerKind {
    /// Every kind, in config spelling order.
    pub const ALL: [ServerKind; 8] = [
        ServerKind::Auto,
        ServerKind::Vllm,
        ServerKind::Tgi,
        ServerKind::Triton,
        ServerKind::Sglang,
        ServerKind::Llamacpp,
        ServerKind::Nim,
        ServerKind::Trtllm,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Auto => "auto",
            ServerKind::Vllm => "vllm",
            ServerKind::Tgi => "tgi",
            ServerKind::Triton => "triton",
            ServerKind::Sglang => "sglang",
            ServerKind::Llamacpp => "llamacpp",
            ServerKind::Nim => "nim",
            ServerKind::Trtllm => "trtllm",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ServerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown server kind `{s}` (auto, vllm, tgi, triton, sglang, llamacpp, nim, trtllm)"
                )
            })
    }
}

/// What one model's counters read at one scrape. `None`: the server does
/// not report that figure (Triton has no tokens, SGLang and llama.cpp no
/// request counter) or has not created the series yet.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelCounters {
    /// Prompt tokens, **including** the cached ones.
    pub input_tokens: Option<f64>,
    /// The part of `input_tokens` served from a prefix cache, where the
    /// server reports it separately.
    pub cached_input_tokens: Option<f64>,
    /// Generated tokens.
    pub output_tokens: Option<f64>,
    /// Successfully finished requests.
    pub requests: Option<f64>,
}

/// One scrape read: the server it is and the counters of each model.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// The recognised (or configured) kind; never `Auto`.
    pub kind: ServerKind,
    /// Counters per model name (`default_model` where the server has no
    /// model label).
    pub models: BTreeMap<String, ModelCounters>,
    /// `process_start_time_seconds`, if the server exports it.
    pub process_start_time: Option<f64>,
    /// Every series summed into `models`, by identity (metric and labels):
    /// (model, field, value). Counter resets are found per series, as
    /// Prometheus' `increase()` does, so one engine or model version
    /// restarting does not make the others' history count again.
    pub series: BTreeMap<String, (String, CounterField, f64)>,
    /// Series left out for a label value over [`MAX_LABEL_BYTES`] or an
    /// identity over [`MAX_SERIES_ID_BYTES`]: never booked, only counted.
    pub refused_long_labels: u64,
}

/// Longest label value (model name included) a counted series may carry.
pub const MAX_LABEL_BYTES: usize = 128;
/// Longest series identity (metric name and every label) counted.
pub const MAX_SERIES_ID_BYTES: usize = 512;

/// Whether a series' labels are short enough to be kept.
fn short_labels(s: &Sample) -> bool {
    s.labels
        .iter()
        .all(|(k, v)| k.len() <= MAX_LABEL_BYTES && v.len() <= MAX_LABEL_BYTES)
        && s.name.len()
            + s.labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
            + 2
            <= MAX_SERIES_ID_BYTES
}

/// Which figure of a model a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CounterField {
    /// Prompt tokens (cached included).
    Input,
    /// Cached prompt tokens.
    Cached,
    /// Generated tokens.
    Output,
    /// Successful requests.
    Requests,
}

fn series_id(s: &Sample) -> String {
    let mut id = s.name.clone();
    id.push('{');
    for (k, v) in &s.labels {
        id.push_str(k);
        id.push('=');
        id.push_str(v);
        id.push(',');
    }
    id.push('}');
    id
}

fn public(f: Field) -> CounterField {
    match f {
        Field::Input => CounterField::Input,
        Field::Cached => CounterField::Cached,
        Field::Output => CounterField::Output,
        Field::Requests => CounterField::Requests,
    }
}

impl Scrape {
    /// Whether the server reports token counts at all.
    pub fn reports_tokens(&self) -> bool {
        self.models
            .values()
            .any(|m| m.input_tokens.is_some() || m.output_tokens.is_some())
    }
}

/// Why a body could not be read as a server's counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// `kind = "auto"` and no known server's metric names are in the body.
    #[error(
        "no known inference server's metrics in the body (looked for vllm:, sglang:, llamacpp:, tgi_, trtllm_, nv_trt_llm_, prompt_tokens_total, nv_inference_)"
    )]
    Unrecognised,
    /// The configured kind's metric names are not in the body.
    #[error("none of {kind}'s metrics in the body (looked for {looked_for}); is `kind` right?")]
    NotThatKind {
        kind: ServerKind,
        looked_for: &'static str,
    },
    /// A counter the figures come from is negative or not finite.
    #[error("line {line}: counter `{name}` is {value}, not a finite count >= 0")]
    BadCounter {
        line: usize,
        name: String,
        value: String,
    },
}

/// Recognise the server by the names in a body; `None` if no known one.
/// Order matters: a Triton running the vLLM or TensorRT-LLM backend also
/// exports `nv_inference_*`, so the engines' own names are tried first.
pub fn detect(e: &Exposition) -> Option<ServerKind> {
    if e.has_prefix("vllm:") {
        Some(ServerKind::Vllm)
    } else if e.has_prefix("sglang:") {
        Some(ServerKind::Sglang)
    } else if e.has_prefix("llamacpp:") {
        Some(ServerKind::Llamacpp)
    } else if e.has_prefix("tgi_") {
        Some(ServerKind::Tgi)
    } else if e.has_prefix("trtllm_") || e.has_prefix("trtllm:") || e.has_prefix("nv_trt_llm_") {
        Some(ServerKind::Trtllm)
    } else if NIM.iter().any(|n| e.has_sample(n)) {
        Some(ServerKind::Nim)
    } else if e.has_prefix("nv_inference_") {
        Some(ServerKind::Triton)
    } else {
        None
    }
}

const NIM: [&str; 3] = [
    "prompt_tokens_total",
    "generation_tokens_total",
    "request_success_total",
];

/// `finished_reason` values that are not a success: vLLM V1 (and
/// TensorRT-LLM, which copies it) count aborted and failed requests in
/// `request_success_total` too.
const NOT_SUCCESS: [&str; 2] = ["abort", "error"];

/// Which figure a metric feeds.
#[derive(Clone, Copy)]
enum Field {
    Input,
    Cached,
    Output,
    Requests,
}

/// A metric to sum per model into a field, with an optional label filter.
struct Source {
    metric: &'static str,
    field: Field,
    /// Only series whose label has this value.
    only: Option<(&'static str, &'static str)>,
    /// Skip series whose `finished_reason` is abort or error.
    successes_only: bool,
}

const fn src(metric: &'static str, field: Field) -> Source {
    Source {
        metric,
        field,
        only: None,
        successes_only: false,
    }
}

const fn requests(metric: &'static str) -> Source {
    Source {
        metric,
        field: Field::Requests,
        only: None,
        successes_only: true,
    }
}

const VLLM: &[Source] = &[
    src("vllm:prompt_tokens_total", Field::Input),
    Source {
        metric: "vllm:prompt_tokens_by_source_total",
        field: Field::Cached,
        only: Some(("source", "local_cache_hit")),
        successes_only: false,
    },
    src("vllm:generation_tokens_total", Field::Output),
    requests("vllm:request_success_total"),
];
/// Older V1 builds have `prompt_tokens_cached_total` but no by-source split.
const VLLM_CACHED_FALLBACK: &str = "vllm:prompt_tokens_cached_total";
const TGI: &[Source] = &[
    src("tgi_request_input_length_sum", Field::Input),
    src("tgi_request_generated_tokens_sum", Field::Output),
    src("tgi_request_success", Field::Requests),
];
const TRITON: &[Source] = &[src("nv_inference_request_success", Field::Requests)];
const SGLANG: &[Source] = &[
    src("sglang:prompt_tokens_total", Field::Input),
    src("sglang:cached_tokens_total", Field::Cached),
    src("sglang:generation_tokens_total", Field::Output),
];
const LLAMACPP: &[Source] = &[
    src("llamacpp:prompt_tokens_total", Field::Input),
    src("llamacpp:tokens_predicted_total", Field::Output),
];
const NIM_SOURCES: &[Source] = &[
    src("prompt_tokens_total", Field::Input),
    src("generation_tokens_total", Field::Output),
    requests("request_success_total"),
];
const TRTLLM: &[Source] = &[
    src("trtllm_prompt_tokens_total", Field::Input),
    src("trtllm_generation_tokens_total", Field::Output),
    requests("trtllm_request_success_total"),
    src("trtllm:prompt_tokens_total", Field::Input),
    src("trtllm:generation_tokens_total", Field::Output),
    requests("trtllm:request_success_total"),
    // The Triton backend has only Triton's request counter.
    src("nv_inference_request_success", Field::Requests),
];

fn sources(kind: ServerKind) -> (&'static [Source], &'static str) {
    match kind {
        ServerKind::Vllm | ServerKind::Auto => (VLLM, "vllm:*_total"),
        ServerKind::Tgi => (TGI, "tgi_request_*"),
        ServerKind::Triton => (TRITON, "nv_inference_request_success"),
        ServerKind::Sglang => (SGLANG, "sglang:*_tokens_total"),
        ServerKind::Llamacpp => (LLAMACPP, "llamacpp:*_total"),
        ServerKind::Nim => (
            NIM_SOURCES,
            "prompt_tokens_total, generation_tokens_total, request_success_total",
        ),
        ServerKind::Trtllm => (
            TRTLLM,
            "trtllm_*_total, trtllm:*_total, nv_inference_request_success",
        ),
    }
}

/// The model a series belongs to: `model_name` (vLLM, SGLang, NIM,
/// TensorRT-LLM), else `model` (Triton and its backends), else
/// `default_model` (TGI and llama.cpp have no model label).
fn model_of<'a>(s: &'a Sample, default_model: &'a str) -> &'a str {
    s.label("model_name")
        .or_else(|| s.label("model"))
        .unwrap_or(default_model)
}

fn check(s: &Sample) -> Result<f64, ExtractError> {
    if s.value.is_finite() && s.value >= 0.0 {
        Ok(s.value)
    } else {
        Err(ExtractError::BadCounter {
            line: s.line,
            name: s.name.clone(),
            value: s.value.to_string(),
        })
    }
}

/// Sums per model stay finite: two counters near `f64::MAX` add to
/// `f64::MAX`, not to infinity.
fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some((slot.unwrap_or(0.0) + v).min(f64::MAX));
}

fn field(m: &mut ModelCounters, f: Field) -> &mut Option<f64> {
    match f {
        Field::Input => &mut m.input_tokens,
        Field::Cached => &mut m.cached_input_tokens,
        Field::Output => &mut m.output_tokens,
        Field::Requests => &mut m.requests,
    }
}

/// Read a parsed body as `kind`'s counters (`Auto`: recognise it first).
/// Series are summed per model over every other label (vLLM V1's
/// `engine`, Triton's `version`, `finished_reason`). `default_model` names
/// the model of servers without a model label (`""` or a configured name).
pub fn extract(
    e: &Exposition,
    kind: ServerKind,
    default_model: &str,
) -> Result<Scrape, ExtractError> {
    let kind = match kind {
        ServerKind::Auto => detect(e).ok_or(ExtractError::Unrecognised)?,
        k => k,
    };
    let (srcs, looked_for) = sources(kind);
    let mut models: BTreeMap<String, ModelCounters> = BTreeMap::new();
    let mut series = BTreeMap::new();
    let mut found = false;
    let mut cached_found = false;
    let mut refused_long_labels = 0;
    for source in srcs {
        for s in e.samples_named(source.metric) {
            found = true;
            if let Some((k, v)) = source.only
                && s.label(k) != Some(v)
            {
                continue;
            }
            if source.successes_only
                && s.label("finished_reason")
                    .is_some_and(|r| NOT_SUCCESS.contains(&r))
            {
                continue;
            }
            let v = check(s)?;
            if !short_labels(s) {
                refused_long_labels += 1;
                continue;
            }
            let model = model_of(s, default_model).to_owned();
            series.insert(series_id(s), (model.clone(), public(source.field), v));
            let m = models.entry(model).or_default();
            add(field(m, source.field), v);
            cached_found |= matches!(source.field, Field::Cached);
        }
    }
    if kind == ServerKind::Vllm && !cached_found {
        for s in e.samples_named(VLLM_CACHED_FALLBACK) {
            let v = check(s)?;
            if !short_labels(s) {
                refused_long_labels += 1;
                continue;
            }
            let model = model_of(s, default_model).to_owned();
            series.insert(series_id(s), (model.clone(), CounterField::Cached, v));
            let m = models.entry(model).or_default();
            add(&mut m.cached_input_tokens, v);
        }
    }
    if !found {
        return Err(ExtractError::NotThatKind { kind, looked_for });
    }
    let process_start_time = e
        .samples_named("process_start_time_seconds")
        .map(|s| s.value)
        .find(|v| v.is_finite());
    Ok(Scrape {
        kind,
        models,
        process_start_time,
        series,
        refused_long_labels,
    })
}
