//! Whether checkpointed counters can be resumed: every figure checked and
//! named ([`Counters::validate`], [`Counters::bad_figures`]), and the repair
//! that makes counters with bad figures resumable ([`Counters::repair`]).

use super::{ABSURD, Counters, FUTURE_LIMIT_DAYS, InvalidCounters};
use crate::cost::Component;
use crate::units::Accumulator;
use chrono::{DateTime, Duration, Utc};

impl Counters {
    /// Visit every summed figure with its field name (a JSON path, as
    /// [`InvalidCounters::field`] names it): node totals, rows, value rows,
    /// priced seconds and the legacy per-GPU maps.
    fn each_accumulator(&mut self, f: &mut dyn FnMut(String, &mut Accumulator)) {
        for (k, a) in &mut self.gpu_energy_joules {
            f(format!("gpu_energy_joules.{k}"), a);
        }
        for (k, a) in &mut self.host_energy_joules {
            f(format!("host_energy_joules.{}", k.as_str()), a);
        }
        f(
            "facility_energy_joules".into(),
            &mut self.facility_energy_joules,
        );
        f("emissions_grams".into(), &mut self.emissions_grams);
        for (c, a) in &mut self.cost {
            f(format!("cost.{}", c.as_str()), a);
        }
        for (c, a) in &mut self.credit {
            f(format!("credit.{}", c.as_str()), a);
        }
        for (k, a) in &mut self.unaccounted_seconds {
            f(format!("unaccounted_seconds.{k}"), a);
        }
        for (k, r) in &mut self.rows {
            let at = format!("rows[{}/{}/{}]", k.gpu_uuid, k.team, k.workload);
            for (c, a) in &mut r.cost {
                f(format!("{at}.cost.{}", c.as_str()), a);
            }
            for (c, a) in &mut r.credit {
                f(format!("{at}.credit.{}", c.as_str()), a);
            }
            f(format!("{at}.emissions_grams"), &mut r.emissions_grams);
            f(
                format!("{at}.facility_energy_joules"),
                &mut r.facility_energy_joules,
            );
            f(format!("{at}.gpu_energy_joules"), &mut r.gpu_energy_joules);
            f(
                format!("{at}.host_energy_joules"),
                &mut r.host_energy_joules,
            );
            f(format!("{at}.gpu_seconds"), &mut r.gpu_seconds);
        }
        for (k, m) in &mut self.gpu_cost {
            for (c, a) in m {
                f(format!("gpu_cost.{k}.{}", c.as_str()), a);
            }
        }
        f("value_total".into(), &mut self.value_total);
        for (k, r) in &mut self.value {
            let at = format!("value[{}/{}/{}]", k.team, k.workload, k.source);
            f(format!("{at}.value"), &mut r.value);
            for (m, c) in &mut r.models {
                for (name, a) in [
                    ("input_tokens", &mut c.input_tokens),
                    ("cached_input_tokens", &mut c.cached_input_tokens),
                    ("output_tokens", &mut c.output_tokens),
                    ("requests", &mut c.requests),
                ] {
                    f(format!("{at}.models.{m}.{name}"), a);
                }
            }
        }
        for (k, a) in &mut self.priced_seconds {
            f(format!("priced_seconds.{k}"), a);
        }
        for (k, m) in &mut self.gpu_credit {
            for (c, a) in m {
                f(format!("gpu_credit.{k}.{}", c.as_str()), a);
            }
        }
        for (k, a) in &mut self.gpu_emissions_grams {
            f(format!("gpu_emissions_grams.{k}"), a);
        }
    }

    /// Visit every other figure (signed ones: KPI scores, the rolling
    /// windows' marks and baselines) with its field name.
    fn each_signed(&mut self, f: &mut dyn FnMut(String, &mut f64)) {
        for (i, k) in self.kpis.values_mut().enumerate() {
            f(
                format!("kpis[{i}]({}/{}/{}).score", k.team, k.workload, k.indicator),
                &mut k.score,
            );
        }
        for (label, w) in &mut self.windows.by_label {
            for (i, (_, t)) in w.marks.iter_mut().enumerate() {
                let at = format!("windows.{label}.marks[{i}]");
                for (c, v) in &mut t.cost {
                    f(format!("{at}.cost.{}", c.as_str()), v);
                }
                for (name, v) in [
                    ("credit", &mut t.credit),
                    ("value", &mut t.value),
                    ("facility_joules", &mut t.facility_joules),
                    ("input_tokens", &mut t.input_tokens),
                    ("output_tokens", &mut t.output_tokens),
                    ("requests", &mut t.requests),
                ] {
                    f(format!("{at}.{name}"), v);
                }
                for (o, v, m) in &mut t.owners {
                    f(format!("{at}.owners[{}/{}].value", o.team, o.workload), v);
                    f(format!("{at}.owners[{}/{}].cost", o.team, o.workload), m);
                }
                for oc in &mut t.owner_costs {
                    let o = format!("{at}.owner_costs[{}/{}]", oc.owner.team, oc.owner.workload);
                    for (c, v) in &mut oc.cost {
                        f(format!("{o}.cost.{}", c.as_str()), v);
                    }
                    f(format!("{o}.credit"), &mut oc.credit);
                }
            }
            if let Some(b) = &mut w.baseline_roi {
                f(format!("windows.{label}.baseline_roi"), b);
            }
            for b in &mut w.owner_baselines {
                f(
                    format!(
                        "windows.{label}.owner_baselines[{}/{}].roi",
                        b.owner.team, b.owner.workload
                    ),
                    &mut b.roi,
                );
            }
        }
    }

    /// What is wrong with a summed figure, if anything.
    fn figure_problem(v: f64) -> Option<String> {
        if !v.is_finite() {
            Some(format!("{v} is not a finite number"))
        } else if v < 0.0 {
            Some(format!("{v} is negative; counters never go below zero"))
        } else if v > ABSURD {
            Some(format!(
                "{v} is beyond any real node's total (more than {ABSURD:e})"
            ))
        } else {
            None
        }
    }

    /// What is wrong with a signed figure, if anything.
    fn signed_problem(v: f64) -> Option<String> {
        if !v.is_finite() {
            Some(format!("{v} is not a finite number"))
        } else if v.abs() > ABSURD {
            Some(format!(
                "{v} is beyond any real figure (more than {ABSURD:e} in size)"
            ))
        } else {
            None
        }
    }

    /// Every figure that cannot be true (non-finite, negative where a sum,
    /// or absurd), named, in [`Counters::validate`]'s order.
    pub fn bad_figures(&self) -> Vec<InvalidCounters> {
        let mut out = Vec::new();
        let mut probe = self.clone();
        probe.each_accumulator(&mut |field, a| {
            if let Some(problem) = Self::figure_problem(a.total()) {
                out.push(InvalidCounters { field, problem });
            }
        });
        probe.each_signed(&mut |field, v| {
            if let Some(problem) = Self::signed_problem(*v) {
                out.push(InvalidCounters { field, problem });
            }
        });
        out
    }

    /// Refuse counters that cannot be true: a non-finite, negative or absurd
    /// (beyond [`ABSURD`]) figure anywhere (every total, row, value row,
    /// priced seconds, KPI score and rolling window), rows that do not add
    /// up to the node totals, a last tick before 2020 or before the state
    /// began, or more than [`FUTURE_LIMIT_DAYS`] after `now`. A last tick
    /// less far in the future is not refused: the clock was corrected while
    /// roimon was stopped, and the daemon goes on from now.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), InvalidCounters> {
        if let Some(e) = self.bad_figures().into_iter().next() {
            return Err(e);
        }
        // The rows are the node totals, split: a file where they disagree
        // was edited or corrupted.
        if !self.rows.is_empty() {
            let off = |node: f64, rows: f64| {
                (node - rows).abs() > 1e-6 * node.abs().max(rows.abs()) + 1e-9
            };
            let mismatch = |field: String, node: f64, rows: f64| InvalidCounters {
                field,
                problem: format!("the rows add up to {rows}, the node total is {node}"),
            };
            for c in Component::ALL {
                let node = self.cost.get(&c).map_or(0.0, Accumulator::total);
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.cost.get(&c))
                    .map(Accumulator::total)
                    .sum();
                if off(node, rows) {
                    return Err(mismatch(format!("cost.{}", c.as_str()), node, rows));
                }
                let node = self.credit.get(&c).map_or(0.0, Accumulator::total);
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.credit.get(&c))
                    .map(Accumulator::total)
                    .sum();
                if off(node, rows) {
                    return Err(mismatch(format!("credit.{}", c.as_str()), node, rows));
                }
            }
            let rows: f64 = self.rows.values().map(|r| r.emissions_grams.total()).sum();
            if off(self.emissions_grams.total(), rows) {
                return Err(mismatch(
                    "emissions_grams".into(),
                    self.emissions_grams.total(),
                    rows,
                ));
            }
            let rows: f64 = self
                .rows
                .values()
                .map(|r| r.facility_energy_joules.total())
                .sum();
            if off(self.facility_energy_joules.total(), rows) {
                return Err(mismatch(
                    "facility_energy_joules".into(),
                    self.facility_energy_joules.total(),
                    rows,
                ));
            }
        }
        if let Some(w) = self.last_wall {
            // roimon did not exist before 2020: an older time stamp is a
            // broken clock or a forged file, and would book decades of
            // fixed costs in one tick.
            let floor = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).unwrap_or_default();
            if w < floor {
                return Err(InvalidCounters {
                    field: "last_wall".into(),
                    problem: format!(
                        "{w} is before 2020-01-01; a clock that was wrong when it was written, or a forged file"
                    ),
                });
            }
            if w > now + Duration::days(FUTURE_LIMIT_DAYS) {
                return Err(InvalidCounters {
                    field: "last_wall".into(),
                    problem: format!(
                        "{w} is more than {FUTURE_LIMIT_DAYS} days after now ({now}); not a clock corrected while roimon was stopped but a forged file or a clock that was far off"
                    ),
                });
            }
            if let Some(c) = self.created {
                if w < c {
                    return Err(InvalidCounters {
                        field: "last_wall".into(),
                        problem: format!("{w} is before the state was created ({c})"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Make counters that [`Counters::validate`] refuses for a bad figure
    /// resumable, keeping every sound one: each non-finite, negative or
    /// absurd summed figure is set to 0, a bad KPI score is dropped, a
    /// window with a bad mark starts over, and node totals that no longer
    /// equal their rows are set to the rows' sum. Returns one line per
    /// change (the field, what was wrong, what it is now); empty when
    /// nothing needed it.
    /// Time stamps that cannot be true are mended too: a last tick before
    /// 2020 or too far after `now` is cleared (no downtime is booked for
    /// the stop), a creation time after the last tick is set to it.
    pub fn repair(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        let floor = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).unwrap_or_default();
        if let Some(w) = self.last_wall
            && (w < floor || w > now + Duration::days(FUTURE_LIMIT_DAYS))
        {
            out.push(format!(
                "last_wall: {w} cannot be true (now {now}); cleared, so no downtime is booked for the stop"
            ));
            self.last_wall = None;
        }
        if let Some(c) = self.created
            && (c < floor || self.last_wall.is_some_and(|w| c > w))
        {
            out.push(format!("created: {c} cannot be true; set to the last tick"));
            self.created = self.last_wall;
        }
        self.each_accumulator(&mut |field, a| {
            if let Some(p) = Self::figure_problem(a.total()) {
                out.push(format!("{field}: {p}; set to 0"));
                *a = Accumulator::default();
            }
        });
        let mut bad_signed = Vec::new();
        self.clone().each_signed(&mut |field, v| {
            if let Some(p) = Self::signed_problem(*v) {
                bad_signed.push((field, p));
            }
        });
        let mut drop_kpis = std::collections::BTreeSet::new();
        let mut reset_windows = std::collections::BTreeSet::new();
        for (field, p) in bad_signed {
            if let Some(i) = field
                .strip_prefix("kpis[")
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
            {
                drop_kpis.insert(i);
                out.push(format!("{field}: {p}; the score is dropped"));
            } else if let Some(rest) = field.strip_prefix("windows.") {
                let label = rest
                    .rsplit_once(".marks[")
                    .map(|(l, _)| l)
                    .or_else(|| rest.strip_suffix(".baseline_roi"))
                    .or_else(|| rest.split_once(".owner_baselines[").map(|(l, _)| l))
                    .unwrap_or(rest)
                    .to_string();
                out.push(format!("{field}: {p}; window {label} starts over"));
                reset_windows.insert(label);
            }
        }
        let mut i = 0;
        self.kpis.retain(|_, _| {
            i += 1;
            !drop_kpis.contains(&(i - 1))
        });
        for label in reset_windows {
            if let Some(w) = self.windows.by_label.get_mut(&label) {
                w.marks.clear();
                w.baseline_roi = None;
                w.baseline_since = None;
                w.owner_baselines.clear();
            }
        }
        let off =
            |node: f64, rows: f64| (node - rows).abs() > 1e-6 * node.abs().max(rows.abs()) + 1e-9;
        let mut fix = |field: String, node: &mut Accumulator, rows: f64| {
            if off(node.total(), rows) {
                out.push(format!(
                    "{field}: {} did not equal its rows ({rows}); set to their sum",
                    node.total()
                ));
                *node = Accumulator::from_total(rows);
            }
        };
        if !self.rows.is_empty() {
            for c in Component::ALL {
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.cost.get(&c))
                    .map(Accumulator::total)
                    .sum();
                fix(
                    format!("cost.{}", c.as_str()),
                    self.cost.entry(c).or_default(),
                    rows,
                );
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.credit.get(&c))
                    .map(Accumulator::total)
                    .sum();
                if rows != 0.0 || self.credit.contains_key(&c) {
                    fix(
                        format!("credit.{}", c.as_str()),
                        self.credit.entry(c).or_default(),
                        rows,
                    );
                }
            }
            let rows: f64 = self.rows.values().map(|r| r.emissions_grams.total()).sum();
            fix("emissions_grams".into(), &mut self.emissions_grams, rows);
            let rows: f64 = self
                .rows
                .values()
                .map(|r| r.facility_energy_joules.total())
                .sum();
            fix(
                "facility_energy_joules".into(),
                &mut self.facility_energy_joules,
                rows,
            );
        }
        if !self.value.is_empty() {
            let rows: f64 = self.value.values().map(|r| r.value.total()).sum();
            fix("value_total".into(), &mut self.value_total, rows);
        }
        out
    }
}
