//! Tests of attribution by owner: rows per (GPU, owner), owner changes,
//! GPUs shared by processes of several owners.

use super::*;

#[test]
fn an_owner_change_starts_a_new_row_and_the_old_one_stops_growing() {
    let base = cfg(ShareKey::Equal);
    let mut e = Engine::new(with_owner(base.clone(), "GPU-a", "vision"), None);
    e.ingest(
        tick(0.0),
        &report(vec![gpu("GPU-a", Some(0.0), 100.0), host(0.0)]),
    );
    e.ingest(
        tick(4.0),
        &report(vec![gpu("GPU-a", Some(400.0), 100.0), host(400.0)]),
    );
    let saved = e.counters().clone();
    let vision = RowKey::new(
        "GPU-a",
        &Owner {
            team: "vision".into(),
            workload: "w".into(),
        },
    );
    let before = saved.rows[&vision].clone();
    assert!(before.cost_total() > 0.0);
    assert_rows_add_up(&saved);

    // Restart 10 s later with the GPU moved to `nlp`.
    let mut e2 = Engine::new(with_owner(base, "GPU-a", "nlp"), Some(saved));
    let t = |s: f64| Tick {
        wall: t0() + Duration::milliseconds((s * 1000.0) as i64),
        mono: s - 14.0,
    };
    e2.ingest(
        t(14.0),
        &report(vec![gpu("GPU-a", Some(500.0), 100.0), host(500.0)]),
    );
    e2.ingest(
        t(16.0),
        &report(vec![gpu("GPU-a", Some(700.0), 100.0), host(700.0)]),
    );
    let c = e2.counters();
    // The old row did not move; the new one holds everything since.
    assert_eq!(c.rows[&vision], before);
    let nlp = RowKey::new(
        "GPU-a",
        &Owner {
            team: "nlp".into(),
            workload: "w".into(),
        },
    );
    // Downtime (10 s) and 2 s running: 12 s of capex at 0.01/s.
    assert!((c.rows[&nlp].cost[&Component::Capex].total() - 0.12).abs() < 1e-12);
    // 200 J GPU + 200 J host, × PUE 1.5, at 0.20/kWh.
    let energy = 400.0 * 1.5 / 3.6e6 * 0.20;
    assert!((c.rows[&nlp].cost[&Component::Energy].total() - energy).abs() < 1e-15);
    assert!((c.rows[&nlp].facility_energy_joules.total() - 600.0).abs() < 1e-9);
    assert_rows_add_up(c);
    assert_eq!(e2.take_downtime(), Some(10.0));
    assert_eq!(e2.take_downtime(), None);
}

#[test]
fn a_new_row_exists_with_every_component_at_zero_from_the_first_tick() {
    let mut c = cfg(ShareKey::Equal);
    c.fixed = FixedCosts::default();
    let mut e = Engine::new(c, None);
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    let row = only_row(e.counters(), "GPU-a");
    for comp in Component::ALL {
        assert_eq!(row.cost[&comp].total(), 0.0);
    }
    assert_eq!(row.credit[&Component::Energy].total(), 0.0);
}

#[test]
fn a_gpu_shared_by_two_owners_splits_every_figure_by_their_shares() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    // Same owner twice merges; a zero share is dropped; 3 : 1 after scaling.
    e.set_attribution(
        "GPU-a",
        vec![
            share("vision", 1.0, "rule:cv"),
            share("nlp", 0.5, "rule:lm"),
            share("vision", 0.5, "rule:cv"),
            share("idle", 0.0, "idle"),
        ],
    );
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 300.0)]));
    e.ingest(tick(4.0), &report(vec![gpu("GPU-a", Some(1200.0), 300.0)]));
    let c = e.counters();
    let row = |team: &str| &c.rows[&RowKey::new("GPU-a", &share(team, 1.0, "").owner)];
    let (v, n) = (row("vision"), row("nlp"));
    // 1200 J × PUE 1.5 = 1800 J at 0.20/kWh, 3/4 and 1/4.
    let energy = 1800.0 / 3.6e6 * 0.20;
    assert!((v.cost[&Component::Energy].total() - 0.75 * energy).abs() < 1e-15);
    assert!((n.cost[&Component::Energy].total() - 0.25 * energy).abs() < 1e-15);
    assert!((v.facility_energy_joules.total() - 1350.0).abs() < 1e-9);
    assert!((n.facility_energy_joules.total() - 450.0).abs() < 1e-9);
    // Fixed costs (4 s at 0.01/s capex) split the same way.
    assert!((v.cost[&Component::Capex].total() - 0.03).abs() < 1e-12);
    assert!((n.cost[&Component::Capex].total() - 0.01).abs() < 1e-12);
    assert_eq!(v.attributed_by, "rule:cv");
    assert_eq!(n.attributed_by, "rule:lm");
    // The owner of record is not booked while processes own the GPU.
    assert!(
        !c.rows
            .contains_key(&RowKey::new("GPU-a", &e.owner_of("GPU-a")))
    );
    assert_rows_add_up(c);
    assert_eq!(c.validate(t0() + Duration::hours(1)), Ok(()));
    // An empty list returns the GPU to its owner of record.
    e.set_attribution("GPU-a", vec![]);
    e.ingest(tick(5.0), &report(vec![gpu("GPU-a", Some(1500.0), 300.0)]));
    let rec = &e.counters().rows[&RowKey::new("GPU-a", &e.owner_of("GPU-a"))];
    assert!(rec.cost[&Component::Energy].total() > 0.0);
    assert_eq!(rec.attributed_by, BY_GPU_OWNER);
}

#[test]
fn a_job_moving_between_gpus_takes_its_cost_with_it() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    let idle = || share("idle", 1.0, "idle");
    e.set_attribution("GPU-a", vec![share("vision", 1.0, "rule:cv")]);
    e.set_attribution("GPU-b", vec![idle()]);
    let both =
        |a: f64, b: f64| report(vec![gpu("GPU-a", Some(a), 1.0), gpu("GPU-b", Some(b), 1.0)]);
    e.ingest(tick(0.0), &both(0.0, 0.0));
    e.ingest(tick(1.0), &both(100.0, 10.0));
    e.set_attribution("GPU-a", vec![idle()]);
    e.set_attribution("GPU-b", vec![share("vision", 1.0, "rule:cv")]);
    e.ingest(tick(2.0), &both(110.0, 210.0));
    let c = e.counters();
    let fe = |uuid: &str, team: &str| {
        c.rows[&RowKey::new(uuid, &share(team, 1.0, "").owner)]
            .facility_energy_joules
            .total()
    };
    assert!((fe("GPU-a", "vision") - 150.0).abs() < 1e-9);
    assert!((fe("GPU-b", "vision") - 300.0).abs() < 1e-9);
    assert!((fe("GPU-a", "idle") - 15.0).abs() < 1e-9);
    assert!((fe("GPU-b", "idle") - 15.0).abs() < 1e-9);
    assert_rows_add_up(c);
}

#[test]
fn gpu_seconds_are_the_covered_seconds_times_each_owners_share() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    e.set_attribution(
        "GPU-a",
        vec![share("nlp", 1.0, "rule:a"), share("vision", 3.0, "rule:b")],
    );
    // 0 s: the first sample covers nothing; 0 → 4 s: 4 s covered.
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    e.ingest(tick(4.0), &report(vec![gpu("GPU-a", Some(400.0), 100.0)]));
    // 4 → 14 s is a gap (max_gap 5 s): not covered, so not counted; the
    // meter starts afresh at 14 s and 14 → 16 s is covered again.
    e.ingest(tick(14.0), &report(vec![gpu("GPU-a", Some(1400.0), 100.0)]));
    e.ingest(tick(16.0), &report(vec![gpu("GPU-a", Some(1600.0), 100.0)]));
    let c = e.counters();
    let secs = |team: &str| {
        c.rows[&RowKey::new(
            "GPU-a",
            &Owner {
                team: team.into(),
                workload: "w".into(),
            },
        )]
            .gpu_seconds
            .total()
    };
    // 6 s covered: nlp 1/4 of them, vision 3/4.
    assert!((secs("nlp") - 1.5).abs() < 1e-12, "{}", secs("nlp"));
    assert!((secs("vision") - 4.5).abs() < 1e-12, "{}", secs("vision"));
    assert_eq!(c.unaccounted_seconds["GPU-a"].total(), 10.0);
    assert_eq!(c.gpu_models["GPU-a"], "Test GPU");
}

#[test]
fn a_checkpoint_without_gpu_seconds_or_models_resumes_at_zero() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    e.ingest(tick(2.0), &report(vec![gpu("GPU-a", Some(200.0), 100.0)]));
    let mut json: serde_json::Value = serde_json::to_value(e.counters()).unwrap();
    json.as_object_mut().unwrap().remove("gpu_models");
    for pair in json["rows"].as_array_mut().unwrap() {
        pair[1].as_object_mut().unwrap().remove("gpu_seconds");
    }
    let old: Counters = serde_json::from_value(json).unwrap();
    assert!(old.gpu_models.is_empty());
    assert_eq!(only_row(&old, "GPU-a").gpu_seconds.total(), 0.0);
    assert!(only_row(&old, "GPU-a").gpu_energy_joules.total() > 0.0);
    assert_eq!(only_row(e.counters(), "GPU-a").gpu_seconds.total(), 2.0);
}
