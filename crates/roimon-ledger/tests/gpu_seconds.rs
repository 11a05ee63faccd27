//! Ledger schema 4: every cost row of a GPU carries the GPU's model and its
//! GPU-seconds in the hour (seconds covered × the owner's share), written
//! by the real checkpoint path; value rows carry neither; reconciliation
//! is unchanged.

mod common;

use common::{A100, H100, at, node_one};
use std::collections::BTreeMap;

type Cols = (Option<String>, Option<f64>);

fn hour_rows(n: &common::Node, hour: i64) -> BTreeMap<(String, String), Cols> {
    let mut st = n
        .ledger
        .connection()
        .prepare(
            "SELECT gpu_uuid, team || '/' || workload, gpu_model, gpu_seconds FROM ledger \
             WHERE kind = 'hour' AND closed = 1 AND hour_start = ?1",
        )
        .unwrap();
    st.query_map([hour], |r| {
        Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?)))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn row(gpu: &str, owner: &str) -> (String, String) {
    (gpu.to_string(), owner.to_string())
}

#[test]
fn hour_rows_hold_each_gpus_model_and_the_owners_gpu_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let n = node_one(&dir.path().join("ledger.sqlite3"));
    // 00:00: six ticks of 600 s, both GPUs wholly search/chat's.
    let h0 = hour_rows(&n, at(1, 0).timestamp());
    assert_eq!(
        h0[&row("GPU-h", "search/chat")],
        (Some(H100.to_string()), Some(3600.0))
    );
    assert_eq!(
        h0[&row("GPU-a", "search/chat")],
        (Some(A100.to_string()), Some(3600.0))
    );
    assert_eq!(h0[&row("value", "search/chat")], (None, None));
    assert_eq!(h0.len(), 3);
    // 01:00: GPU-a shared half and half.
    let h1 = hour_rows(&n, at(1, 1).timestamp());
    assert_eq!(h1[&row("GPU-h", "search/chat")].1, Some(3600.0));
    assert_eq!(
        h1[&row("GPU-a", "search/chat")],
        (Some(A100.to_string()), Some(1800.0))
    );
    assert_eq!(
        h1[&row("GPU-a", "vision/embed")],
        (Some(A100.to_string()), Some(1800.0))
    );
    // The open hour (02:00) holds the 600 s of its one tick so far.
    let open: f64 = n
        .ledger
        .connection()
        .query_row(
            "SELECT SUM(gpu_seconds) FROM ledger WHERE closed = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 1200.0);
    // People see them in the readable view; the books still reconcile.
    let shown: f64 = n
        .ledger
        .connection()
        .query_row(
            "SELECT SUM(gpu_seconds) FROM ledger_readable WHERE gpu_model = ?1",
            [A100],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(shown, 3600.0 + 1800.0 + 1800.0 + 600.0);
    let v = n.ledger.verify().unwrap();
    assert!(v.differences.is_empty(), "{:?}", v.differences);
    assert_eq!(roimon_ledger::schema_version(), 4);
}
