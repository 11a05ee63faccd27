//! Tests of the checkpointed counters: legacy migration, validation
//! naming every bad figure, and repair.

use super::*;

#[test]
fn legacy_checkpoints_move_to_the_owner_configured_at_upgrade_once() {
    // A checkpoint as written before rows were keyed by owner.
    let legacy = r#"{"currency":"EUR","last_wall":"2026-03-02T12:00:00Z",
        "cost":{"energy":{"sum":3.0},"capex":{"sum":2.0}},
        "gpu_cost":{"GPU-a":{"energy":{"sum":1.0},"capex":{"sum":1.5}},"GPU-b":{"energy":{"sum":2.0},"capex":{"sum":0.5}}},
        "credit":{"energy":{"sum":0.25}},
        "gpu_credit":{"GPU-b":{"energy":{"sum":0.25}}},
        "emissions_grams":{"sum":9.0},
        "facility_energy_joules":{"sum":900.0},
        "gpu_emissions_grams":{"GPU-a":{"sum":4.0},"GPU-b":{"sum":5.0}}}"#;
    let mut c: Counters = serde_json::from_str(legacy).unwrap();
    let cfg = cfg(ShareKey::Equal);
    let owner_of = |u: &str| {
        cfg.owners
            .get(u)
            .cloned()
            .unwrap_or_else(Owner::unallocated)
    };
    assert_eq!(c.migrate_legacy(owner_of), 2);
    let a = &c.rows[&RowKey::new(
        "GPU-a",
        &Owner {
            team: "search".into(),
            workload: "llm".into(),
        },
    )];
    assert_eq!(a.cost[&Component::Capex].total(), 1.5);
    assert_eq!(a.emissions_grams.total(), 4.0);
    let b = &c.rows[&RowKey::new("GPU-b", &Owner::unallocated())];
    assert_eq!(b.credit[&Component::Energy].total(), 0.25);
    assert_eq!(b.cost_total(), 2.5);
    // Facility energy was not kept per GPU: shared by energy cost (1:2).
    assert_eq!(a.facility_energy_joules.total(), 300.0);
    assert_eq!(b.facility_energy_joules.total(), 600.0);
    assert_eq!(c.validate(t0() + Duration::hours(1)), Ok(()));
    // Node totals untouched; rows add up to them.
    assert_eq!(c.cost[&Component::Energy].total(), 3.0);
    let rows: f64 = c.rows.values().map(Row::cost_total).sum();
    assert_eq!(rows, 5.0);
    // Written back without the legacy maps: a second load migrates nothing.
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains("gpu_cost"), "{json}");
    let mut again: Counters = serde_json::from_str(&json).unwrap();
    assert_eq!(again.migrate_legacy(owner_of), 0);
    assert_eq!(again, c);
}

#[test]
fn impossible_checkpoints_are_refused_naming_the_field() {
    let now = t0();
    let ok = Counters {
        currency: "EUR".into(),
        last_wall: Some(now - Duration::hours(1)),
        created: Some(now - Duration::days(3)),
        ..Default::default()
    };
    assert_eq!(ok.validate(now), Ok(()));
    let mut c = ok.clone();
    c.last_wall = Some(DateTime::<Utc>::from_timestamp(0, 0).unwrap());
    assert_eq!(c.validate(now).unwrap_err().field, "last_wall");
    // A last tick in the future is a clock corrected while roimon was
    // stopped, not a broken checkpoint: the daemon goes on from now.
    let mut c = ok.clone();
    c.last_wall = Some(now + Duration::days(2));
    assert_eq!(c.validate(now), Ok(()));
    let mut c = ok.clone();
    c.last_wall = Some(now - Duration::days(4));
    assert!(
        c.validate(now)
            .unwrap_err()
            .problem
            .contains("before the state was created")
    );
    let mut c = ok.clone();
    c.cost
        .insert(Component::Capex, Accumulator::from_total(-1.0));
    assert_eq!(c.validate(now).unwrap_err().field, "cost.capex");
    let mut c = ok.clone();
    c.facility_energy_joules = Accumulator::from_total(f64::INFINITY);
    assert_eq!(c.validate(now).unwrap_err().field, "facility_energy_joules");
    // Rows that do not add up to the node totals.
    let mut c = ok.clone();
    c.cost
        .insert(Component::Capex, Accumulator::from_total(2.0));
    let mut row = Row::default();
    row.cost
        .insert(Component::Capex, Accumulator::from_total(1.0));
    c.rows
        .insert(RowKey::new("GPU-y", &Owner::unallocated()), row);
    let e = c.validate(now).unwrap_err();
    assert_eq!(e.field, "cost.capex");
    assert!(e.problem.contains("add up"), "{e}");
    let mut c = ok;
    let mut row = Row::default();
    row.cost
        .insert(Component::Energy, Accumulator::from_total(f64::NAN));
    c.rows
        .insert(RowKey::new("GPU-x", &Owner::unallocated()), row);
    assert_eq!(
        c.validate(now).unwrap_err().field,
        "rows[GPU-x/unallocated/unallocated].cost.energy"
    );
}

#[test]
fn every_figure_is_checked_and_named() {
    let now = t0();
    let ok = Counters {
        currency: "EUR".into(),
        last_wall: Some(now - Duration::hours(1)),
        created: Some(now - Duration::days(3)),
        ..Default::default()
    };
    let key = RowKey::new("GPU-x", &Owner::unallocated());
    type Spoil<'a> = Box<dyn Fn(&mut Counters) + 'a>;
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "rows[GPU-x/unallocated/unallocated].gpu_energy_joules",
            Box::new(|c| {
                c.rows.entry(key.clone()).or_default().gpu_energy_joules =
                    Accumulator::from_total(-3.0)
            }),
        ),
        (
            "rows[GPU-x/unallocated/unallocated].host_energy_joules",
            Box::new(|c| {
                c.rows.entry(key.clone()).or_default().host_energy_joules =
                    Accumulator::from_total(f64::INFINITY)
            }),
        ),
        (
            "priced_seconds.source",
            Box::new(|c| {
                c.priced_seconds
                    .insert("source".into(), Accumulator::from_total(f64::NAN));
            }),
        ),
        (
            "value_total",
            Box::new(|c| c.value_total = Accumulator::from_total(1e300)),
        ),
        (
            "value[t/w/push].models.m.output_tokens",
            Box::new(|c| {
                let r = c
                    .value
                    .entry(ValueKey {
                        team: "t".into(),
                        workload: "w".into(),
                        source: "push".into(),
                    })
                    .or_default();
                r.models.entry("m".into()).or_default().output_tokens =
                    Accumulator::from_total(-1.0);
            }),
        ),
        (
            "kpis[0](t/w/precision).score",
            Box::new(|c| {
                let k = Kpi {
                    team: "t".into(),
                    workload: "w".into(),
                    indicator: "precision".into(),
                    score: f64::NAN,
                    at: None,
                };
                c.kpis.insert(k.key(), k);
            }),
        ),
        (
            "windows.1h.baseline_roi",
            Box::new(|c| {
                c.windows.by_label.insert(
                    "1h".into(),
                    crate::window::WindowState {
                        seconds: 3600,
                        marks: Vec::new(),
                        baseline_roi: Some(f64::INFINITY),
                        ..Default::default()
                    },
                );
            }),
        ),
        (
            "windows.1h.owner_baselines[search/llm].roi",
            Box::new(|c| {
                c.windows.by_label.insert(
                    "1h".into(),
                    crate::window::WindowState {
                        seconds: 3600,
                        owner_baselines: vec![crate::window::OwnerBaseline {
                            owner: Owner {
                                team: "search".into(),
                                workload: "llm".into(),
                            },
                            roi: f64::NAN,
                            since: t0(),
                        }],
                        ..Default::default()
                    },
                );
            }),
        ),
        (
            "windows.1h.marks[0].value",
            Box::new(|c| {
                let t = crate::window::Totals {
                    value: f64::NEG_INFINITY,
                    ..Default::default()
                };
                c.windows.by_label.insert(
                    "1h".into(),
                    crate::window::WindowState {
                        seconds: 3600,
                        marks: vec![(t0(), t)],
                        ..Default::default()
                    },
                );
            }),
        ),
    ];
    for (field, spoil) in &cases {
        let mut c = ok.clone();
        spoil(&mut c);
        let e = c.validate(now).unwrap_err();
        assert_eq!(e.field, *field, "{e}");
        // Repair makes it resumable, says what it changed, and keeps
        // the sound figures.
        let said = c.repair(now);
        assert!(said.iter().any(|l| l.starts_with(field)), "{said:?}");
        assert_eq!(c.validate(now), Ok(()), "{field}");
        assert_eq!(c.currency, "EUR");
    }
}

#[test]
fn repair_sets_node_totals_to_their_rows_and_keeps_sound_figures() {
    let now = t0();
    let mut c = Counters {
        currency: "EUR".into(),
        last_wall: Some(now),
        ..Default::default()
    };
    let mut good = Row::default();
    good.cost
        .insert(Component::Capex, Accumulator::from_total(2.0));
    let mut bad = Row::default();
    bad.cost
        .insert(Component::Capex, Accumulator::from_total(f64::INFINITY));
    c.rows
        .insert(RowKey::new("GPU-a", &Owner::unallocated()), good);
    c.rows
        .insert(RowKey::new("GPU-b", &Owner::unallocated()), bad);
    c.cost
        .insert(Component::Capex, Accumulator::from_total(f64::INFINITY));
    assert_eq!(c.validate(now).unwrap_err().field, "cost.capex");
    let said = c.repair(now);
    assert_eq!(c.validate(now), Ok(()));
    assert_eq!(c.cost[&Component::Capex].total(), 2.0);
    assert!(
        said.iter()
            .any(|l| l.starts_with("rows[GPU-b/unallocated/unallocated].cost.capex")),
        "{said:?}"
    );
    // Nothing to repair: nothing said, nothing changed.
    let before = c.clone();
    assert!(c.repair(now).is_empty());
    assert_eq!(c, before);
    // A last tick far in the future is refused and repaired.
    c.last_wall = Some(now + Duration::days(400));
    assert_eq!(c.validate(now).unwrap_err().field, "last_wall");
    assert!(c.repair(now)[0].starts_with("last_wall"));
    assert_eq!(c.validate(now), Ok(()));
}

#[test]
fn a_bad_gpu_seconds_figure_is_named_and_repaired() {
    let now = t0();
    let mut c = Counters {
        currency: "EUR".into(),
        last_wall: Some(now),
        ..Default::default()
    };
    let row = Row {
        gpu_seconds: Accumulator::from_total(f64::NAN),
        ..Default::default()
    };
    c.rows
        .insert(RowKey::new("GPU-a", &Owner::unallocated()), row);
    assert_eq!(
        c.validate(now).unwrap_err().field,
        "rows[GPU-a/unallocated/unallocated].gpu_seconds"
    );
    let said = c.repair(now);
    assert!(
        said[0].starts_with("rows[GPU-a/unallocated/unallocated].gpu_seconds"),
        "{said:?}"
    );
    assert_eq!(c.validate(now), Ok(()));
}
