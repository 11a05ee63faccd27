//! Booking a pushed batch in the sampler: the whole batch is checked
//! against the caps (distinct pushed owners, KPIs per owner, finite totals)
//! before anything of it is booked, duplicates are dropped through the dedup
//! window kept with the counters, then value is booked and scores put in
//! force. The push endpoint (in the server) only parses and hands batches
//! over through the inbox.

use crate::inbox::Refusal;
use roimon_value::{Dedup, PointData, PushedPoint};

/// Where the push dedup window is kept with the counters.
pub const DEDUP_KEY: &str = "push.dedup";

/// Most distinct (team, workload) owners pushed value may create: every
/// owner is a row, series and window entry for good.
pub const MAX_PUSHED_OWNERS: usize = 1000;

/// Most KPI indicators one owner may have pushed.
pub const MAX_KPIS_PER_OWNER: usize = 32;

/// The owner a point books to.
fn owner_of(p: &PushedPoint) -> roimon_core::Owner {
    roimon_core::Owner {
        team: p.team.clone(),
        workload: if p.workload.is_empty() {
            roimon_value::NO_WORKLOAD.into()
        } else {
            p.workload.clone()
        },
    }
}

/// Check a whole batch against what is booked already, before anything of
/// it is: the cap of distinct pushed owners, the cap of KPIs per owner,
/// and that no counter would stop being a finite number. `Err` refuses the
/// batch whole.
fn check(engine: &roimon_core::Engine, points: &[PushedPoint]) -> Result<(), Refusal> {
    use std::collections::{BTreeMap, BTreeSet};
    let c = engine.counters();
    let mut owners: BTreeSet<(String, String)> = c
        .value
        .keys()
        .filter(|k| k.source == "push")
        .map(|k| (k.team.clone(), k.workload.clone()))
        .chain(c.kpis.keys().map(|(t, w, _)| (t.clone(), w.clone())))
        .collect();
    let known = owners.len();
    let mut new_kpis: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    let mut total = c.value_total;
    let mut per_owner: BTreeMap<(String, String), roimon_core::units::Accumulator> =
        BTreeMap::new();
    for p in points {
        let o = owner_of(p);
        let key = (o.team.clone(), o.workload.clone());
        if owners.insert(key.clone()) && owners.len() > MAX_PUSHED_OWNERS {
            return Err(Refusal::Invalid {
                reason: "over_cap",
                message: format!(
                    "line {}: owner `{}/{}` would be pushed owner number {} of at most {MAX_PUSHED_OWNERS} (each owner is a series for good; {known} exist); nothing of this batch was written",
                    p.line,
                    o.team,
                    o.workload,
                    owners.len()
                ),
                line: Some(p.line),
            });
        }
        match &p.data {
            PointData::Value { amount } => {
                let row = per_owner.entry(key).or_insert_with(|| {
                    c.value
                        .get(&roimon_core::ValueKey {
                            team: o.team.clone(),
                            workload: o.workload.clone(),
                            source: "push".into(),
                        })
                        .map(|r| r.value)
                        .unwrap_or_default()
                });
                if !(total.add(*amount) && row.add(*amount)) {
                    return Err(Refusal::Invalid {
                        reason: "bad_request",
                        message: format!(
                            "line {}: amount {amount} would take the value total beyond a finite number; nothing of this batch was written",
                            p.line
                        ),
                        line: Some(p.line),
                    });
                }
            }
            PointData::Kpi { scores } => {
                let set = new_kpis.entry(key).or_default();
                for name in scores.keys() {
                    if !engine.has_kpi(&o.team, &o.workload, name) {
                        set.insert(name);
                    }
                }
                let n = engine.kpi_count(&o.team, &o.workload) + set.len();
                if n > MAX_KPIS_PER_OWNER {
                    return Err(Refusal::Invalid {
                        reason: "over_cap",
                        message: format!(
                            "line {}: owner `{}/{}` would have {n} KPIs, over the cap of {MAX_KPIS_PER_OWNER} per owner; nothing of this batch was written",
                            p.line, o.team, o.workload
                        ),
                        line: Some(p.line),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Apply a batch in the sampler: check it whole against the caps (any
/// breach refuses it, and nothing of it is booked or remembered), drop
/// duplicates (the window is kept with the counters), book value and put
/// scores in force. Returns (counted, duplicates). Only booked points
/// enter the dedup window, so a refused batch's retry is never taken for
/// a duplicate.
pub fn apply(
    engine: &mut roimon_core::Engine,
    dedup: &mut Dedup,
    job_points: Vec<PushedPoint>,
    now_ns: i64,
) -> Result<(usize, usize), Refusal> {
    let given = job_points.len();
    let fresh: Vec<PushedPoint> = {
        let mut seen = std::collections::HashSet::new();
        job_points
            .into_iter()
            .filter(|p| !dedup.contains(&p.key) && seen.insert(p.key))
            .collect()
    };
    check(engine, &fresh)?;
    let applied = dedup.admit(fresh, now_ns);
    debug_assert_eq!(applied.duplicates, 0);
    let mut n = 0;
    for p in applied.points {
        let owner = owner_of(&p);
        match p.data {
            PointData::Value { amount } => {
                // Checked above: every booking stays finite.
                if engine.book_value(&[(owner, 1.0)], "push", amount, &[]) {
                    n += 1;
                }
            }
            PointData::Kpi { scores } => {
                n += 1;
                let at = chrono::DateTime::from_timestamp_nanos(p.at_ns);
                for (indicator, score) in scores {
                    engine.set_kpi(roimon_core::Kpi {
                        team: owner.team.clone(),
                        workload: owner.workload.clone(),
                        indicator,
                        score,
                        at: Some(at),
                    });
                }
            }
        }
    }
    Ok((n, given - n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roimon_value::{Precision, PushRules};

    pub(super) fn engine() -> roimon_core::Engine {
        roimon_core::Engine::new(
            roimon_core::EngineConfig {
                currency: "EUR".into(),
                pue: 1.0,
                tariff: roimon_core::Tariff::Static(roimon_core::PricePerKwh(0.2)),
                price_source: "static".into(),
                fixed: Default::default(),
                share_key: Default::default(),
                owners: Default::default(),
                max_gap: roimon_core::Seconds(5.0),
            },
            None,
        )
    }

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn parse(body: &str) -> Vec<PushedPoint> {
        let mut rules = PushRules::new("EUR");
        rules.max_points = 100_000;
        rules.max_amount = f64::MAX;
        roimon_value::parse_batch(body.as_bytes(), Precision::Ns, NOW, &rules).unwrap()
    }

    #[test]
    fn over_the_owner_cap_the_whole_batch_is_refused_and_its_retry_is_not_a_duplicate() {
        let mut e = engine();
        let mut dedup = Dedup::new(100_000, 86_400_000_000_000);
        let first: String = (0..MAX_PUSHED_OWNERS - 2)
            .map(|i| format!("roimon_value,team=t{i},workload=w amount=1 {NOW}\n"))
            .collect();
        assert_eq!(
            apply(&mut e, &mut dedup, parse(&first), NOW),
            Ok((MAX_PUSHED_OWNERS - 2, 0))
        );
        // Five new owners where two fit: nothing of it is booked.
        let second: String = (0..5)
            .map(|i| format!("roimon_value,team=new{i},workload=w amount=2 {NOW}\n"))
            .collect();
        let before = e.counters().value_total.total();
        let r = apply(&mut e, &mut dedup, parse(&second), NOW);
        let Err(Refusal::Invalid {
            reason,
            message,
            line,
        }) = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(reason, "over_cap");
        assert_eq!(line, Some(3), "{message}");
        assert!(message.contains("1000"), "{message}");
        assert_eq!(e.counters().value_total.total(), before);
        assert_eq!(e.counters().value.len(), MAX_PUSHED_OWNERS - 2);
        // The first two points were not remembered: sent alone they book.
        let retry: String = (0..2)
            .map(|i| format!("roimon_value,team=new{i},workload=w amount=2 {NOW}\n"))
            .collect();
        assert_eq!(apply(&mut e, &mut dedup, parse(&retry), NOW), Ok((2, 0)));
        assert_eq!(e.counters().value_total.total(), before + 4.0);
        // And a true retry is a duplicate.
        assert_eq!(apply(&mut e, &mut dedup, parse(&retry), NOW), Ok((0, 2)));
    }

    #[test]
    fn a_batch_that_would_overflow_the_total_is_refused_whole() {
        let mut e = engine();
        let mut dedup = Dedup::new(1000, 86_400_000_000_000);
        let body = format!(
            "roimon_value,team=x,workload=y amount=1 {NOW}\nroimon_value,team=x,workload=y amount=1.7e308 {}\nroimon_value,team=x,workload=z amount=1.7e308 {}\n",
            NOW + 1,
            NOW + 2
        );
        let r = apply(&mut e, &mut dedup, parse(&body), NOW);
        assert!(
            matches!(&r, Err(Refusal::Invalid { line: Some(3), .. })),
            "{r:?}"
        );
        assert_eq!(e.counters().value_total.total(), 0.0);
        assert!(dedup.is_empty());
    }

    #[test]
    fn kpis_per_owner_are_capped_and_updates_of_known_ones_always_fit() {
        let mut e = engine();
        let mut dedup = Dedup::new(100_000, 86_400_000_000_000);
        let fields = |from: usize, to: usize, v: &str| {
            (from..to)
                .map(|i| format!("k{i}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let body = format!(
            "roimon_kpi,team=a,workload=b {} {NOW}\n",
            fields(0, MAX_KPIS_PER_OWNER, "0.5")
        );
        assert_eq!(apply(&mut e, &mut dedup, parse(&body), NOW), Ok((1, 0)));
        assert_eq!(e.kpi_count("a", "b"), MAX_KPIS_PER_OWNER);
        let more = format!("roimon_kpi,team=a,workload=b k999=0.1 {}\n", NOW + 1);
        assert!(matches!(
            apply(&mut e, &mut dedup, parse(&more), NOW),
            Err(Refusal::Invalid {
                reason: "over_cap",
                ..
            })
        ));
        let update = format!(
            "roimon_kpi,team=a,workload=b {} {}\n",
            fields(0, MAX_KPIS_PER_OWNER, "0.25"),
            NOW + 2
        );
        assert_eq!(apply(&mut e, &mut dedup, parse(&update), NOW), Ok((1, 0)));
        // The owner's own score (a/b has no cost on this node, so it does
        // not count in the node's scores).
        let ab = roimon_core::Owner {
            team: "a".into(),
            workload: "b".into(),
        };
        assert_eq!(e.owner_scores()[&ab].get("k0"), Some(&0.25));
        assert_eq!(e.scores().get("k0"), None);
    }
}

#[cfg(test)]
mod props {
    //! Random batches through the whole door (parse, check, dedup, book):
    //! value booked = Σ amounts of the batches answered as booked, never a
    //! non-finite figure, and a batch is answered as booked exactly when
    //! its points were booked.
    use super::*;
    use proptest::prelude::*;
    use roimon_value::{Precision, PushRules};

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn rules() -> PushRules {
        let mut r = PushRules::new("EUR");
        let mut k = roimon_value::KnownOwners::default();
        k.add("a", "x");
        k.add("b", "y");
        k.add("c", "*");
        r.owners = Some(k);
        r.kpi_names = Some(["precision".to_string()].into());
        r
    }

    /// One line; `i` makes it unique (its timestamp).
    fn line() -> impl Strategy<Value = (u8, f64, usize)> {
        (
            0u8..8,
            prop_oneof![0.0f64..1e6, Just(1.7e308), Just(1e9), Just(2e9)],
            0usize..3,
        )
    }

    fn render((kind, amount, owner): (u8, f64, usize), i: i64) -> String {
        let (team, wl) = [("a", "x"), ("b", "y"), ("c", "anything")][owner];
        let t = NOW - i * 1_000;
        match kind {
            0..=3 => format!("roimon_value,team={team},workload={wl} amount={amount:e} {t}"),
            4 => format!("roimon_value,team=zz,workload={wl} amount=1 {t}"),
            5 => format!("roimon_kpi,team={team},workload={wl} precision=0.5 {t}"),
            6 => format!("roimon_kpi,team={team},workload={wl} precision=1.5 {t}"),
            _ => format!("roimon_value,team={team} amount=1 {t}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn value_booked_is_the_sum_of_what_was_acknowledged(
            batches in prop::collection::vec((prop::collection::vec(line(), 1..6), any::<bool>()), 1..24)
        ) {
            let mut e = super::tests::engine();
            let mut dedup = Dedup::new(100_000, 86_400_000_000_000);
            let rules = rules();
            let mut expected = 0.0f64;
            let mut i = 0i64;
            let mut sent: Vec<(String, bool)> = Vec::new();
            for (lines, retry) in batches {
                let (body, retry_of_booked) = if retry && !sent.is_empty() {
                    let (b, booked) = sent[sent.len() - 1].clone();
                    (b, Some(booked))
                } else {
                    let body: Vec<String> = lines.iter().map(|&l| { i += 1; render(l, i) }).collect();
                    (body.join("\n"), None)
                };
                let before = e.counters().value_total.total();
                let booked = match roimon_value::parse_batch(body.as_bytes(), Precision::Ns, NOW, &rules) {
                    Err(_) => false,
                    Ok(points) => {
                        let amounts: f64 = points.iter().map(|p| match p.data {
                            PointData::Value { amount } => amount,
                            PointData::Kpi { .. } => 0.0,
                        }).sum();
                        match apply(&mut e, &mut dedup, points, NOW) {
                            Ok((n, dups)) => {
                                if retry_of_booked == Some(true) {
                                    prop_assert_eq!(n, 0, "a retry of a booked batch books nothing");
                                    prop_assert!(dups > 0);
                                } else {
                                    expected += amounts;
                                }
                                true
                            }
                            Err(_) => {
                                prop_assert_eq!(e.counters().value_total.total(), before, "refused: nothing booked");
                                false
                            }
                        }
                    }
                };
                let total = e.counters().value_total.total();
                prop_assert!(total.is_finite());
                prop_assert!((total - expected).abs() <= 1e-9 * expected.max(1.0), "{} vs {}", total, expected);
                let rows: f64 = e.counters().value.values().map(|r| r.value.total()).sum();
                prop_assert!((rows - total).abs() <= 1e-9 * total.max(1.0));
                if retry_of_booked.is_none() {
                    sent.push((body, booked));
                } else if booked {
                    let last = sent.len() - 1;
                    sent[last].1 = true;
                }
            }
        }
    }
}
