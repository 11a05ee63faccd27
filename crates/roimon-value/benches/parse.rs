//! Criterion benchmarks: the cost of reading each recorded inference-server
//! capture per scrape (parse, recognise, extract, update the counter
//! state), and pushed line-protocol throughput (parse, check, dedup).
//! Captures come from `$ROIMON_FIXTURES/inference`; without it those
//! benchmarks are skipped.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roimon_value::{
    Dedup, Limits, Precision, PushRules, ServerKind, TargetState, apply, prom, read_scrape,
};
use std::hint::black_box;

const CAPTURES: [&str; 7] = [
    "vllm-0.4.3-v0-opt-125m.prom",
    "vllm-v1-engine-label-deepseek-v4-flash-subset.prom",
    "tgi-3.3.5-openhermes-mistral-7b-subset.prom",
    "triton-2.38.0-t4-example-models-subset.prom",
    "sglang-docs-llama-3.1-8b.prom",
    "nim-llm-1.0.0-llama-3.1-8b-instruct.prom",
    "llamacpp-ik_llama-fork-pr695-paste.prom",
];

fn scrape(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("ROIMON_FIXTURES") else {
        eprintln!("ROIMON_FIXTURES unset: scrape benchmarks skipped");
        return;
    };
    let mut g = c.benchmark_group("scrape");
    for name in CAPTURES {
        let path = std::path::Path::new(&dir).join("inference").join(name);
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("parse", name), &body, |b, body| {
            b.iter(|| prom::parse(black_box(body), Limits::default()).unwrap())
        });
        let mut state = TargetState::new();
        g.bench_with_input(
            BenchmarkId::new("parse+extract+delta", name),
            &body,
            |b, body| {
                b.iter(|| {
                    let s = read_scrape(black_box(body), ServerKind::Auto, "", Limits::default())
                        .unwrap();
                    state.observe(&s)
                })
            },
        );
    }
    g.finish();
}

/// 10,000 lines: value and KPI points over 100 teams, one per second.
fn batch() -> (Vec<u8>, i64) {
    let t0: i64 = 1_764_590_400;
    let mut s = String::new();
    for i in 0..10_000i64 {
        let team = i % 100;
        if i % 2 == 0 {
            s.push_str(&format!(
                "roimon_value,team=team{team},workload=chat,currency=EUR amount={}.25 {}\n",
                i % 1000,
                (t0 + i) * 1_000_000_000
            ));
        } else {
            s.push_str(&format!(
                "roimon_kpi,team=team{team},workload=chat precision=0.95,satisfaction=0.{} {}\n",
                i % 10,
                (t0 + i) * 1_000_000_000
            ));
        }
    }
    (s.into_bytes(), (t0 + 10_000) * 1_000_000_000)
}

fn push(c: &mut Criterion) {
    let (body, now) = batch();
    let rules = PushRules {
        max_body_bytes: 64 << 20,
        ..PushRules::new("EUR")
    };
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("parse+apply 10k lines, new points", |b| {
        b.iter(|| {
            let mut d = Dedup::new(100_000, 7 * 86_400 * 1_000_000_000);
            apply(black_box(&body), Precision::Ns, now, &rules, &mut d).unwrap()
        })
    });
    let text = std::str::from_utf8(&body).unwrap();
    g.bench_function("influxdb-line-protocol parse_lines alone, 10k lines", |b| {
        b.iter(|| {
            influxdb_line_protocol::parse_lines(black_box(text))
                .filter(Result::is_ok)
                .count()
        })
    });
    let mut d = Dedup::new(100_000, 7 * 86_400 * 1_000_000_000);
    apply(&body, Precision::Ns, now, &rules, &mut d).unwrap();
    g.bench_function("parse+apply 10k lines, all retries", |b| {
        b.iter(|| apply(black_box(&body), Precision::Ns, now, &rules, &mut d).unwrap())
    });
    g.finish();
}

criterion_group!(benches, scrape, push);
criterion_main!(benches);
