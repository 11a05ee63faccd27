//! Rolling windows over the counters (5 m … 30 d): cost, value, energy,
//! tokens and requests over each window, for the node and for each owner,
//! with bounded memory whatever the window. Each window keeps the cumulative
//! totals at most `BUCKETS + 2` bucket boundaries (`window / BUCKETS` apart);
//! a window's figures are the totals now minus the totals at the latest
//! boundary at or before `now − window`, so they are exact over the span
//! they report (`span_secs`: between the window and one bucket more). The
//! state is part of the checkpoint, so windows survive a restart (the
//! downtime adds fixed cost and no value to the windows that span it; a
//! window shorter than a gap reports the shorter span after it instead of
//! reaching back across it). A trailing baseline of each window's ROI (an
//! EWMA with a time constant of one day or four buckets, whichever is
//! longer, sampled at bucket boundaries where the window covers its own
//! length) says whether ROI fell against its own history; each owner has
//! one of its own ROI, fed the same way, and both say how much history
//! they rest on (`baseline_span_secs`: from the start of the first window
//! that fed them to now), so an alert can tell a day's baseline from an
//! hour's.
//!
//! The windows are part of the counters they measure, so they never read
//! those counters: the engine hands them [`Totals`] (see
//! `Counters::totals`), the few cumulative figures they need.

use crate::cost::Component;
use crate::owner::Owner;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Boundaries per window.
pub const BUCKETS: i64 = 30;
/// Time constant of the ROI baseline.
pub const BASELINE_SECS: f64 = 86_400.0;

/// Cumulative totals at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Cost by component (gross).
    pub cost: BTreeMap<Component, f64>,
    /// Credit (energy at negative prices).
    pub credit: f64,
    /// Value produced.
    pub value: f64,
    /// Facility energy, J.
    pub facility_joules: f64,
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: f64,
    /// Output (generated) tokens.
    pub output_tokens: f64,
    /// Successful requests.
    pub requests: f64,
    /// (owner, value, net cost) per owner.
    pub owners: Vec<(Owner, f64, f64)>,
    /// Each owner's gross cost by component and credit, for its weighted
    /// cost (absent in checkpoints written before per-owner scores: such
    /// a mark gives no per-owner weighted figures until it leaves the
    /// window).
    pub owner_costs: Vec<OwnerCost>,
}

/// One owner's cumulative cost by component and credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerCost {
    /// Owner.
    pub owner: Owner,
    /// Gross cost by component.
    #[serde(default)]
    pub cost: BTreeMap<Component, f64>,
    /// Credit (energy at negative prices).
    #[serde(default)]
    pub credit: f64,
}

/// Σ vⱼCⱼ − v_energy·credit: the weighted cost of `cost` (missing weights
/// are 1).
fn weighted_cost_of(weights: &RoiWeights, cost: &BTreeMap<Component, f64>, credit: f64) -> f64 {
    cost.iter()
        .map(|(c, v)| weights.cost.get(c).copied().unwrap_or(1.0) * v)
        .sum::<f64>()
        - credit * weights.cost.get(&Component::Energy).copied().unwrap_or(1.0)
}

/// P = Σ wᵢPᵢ, when `scores` has every weighted indicator.
fn benefit_score_of(weights: &RoiWeights, scores: Option<&BTreeMap<String, f64>>) -> Option<f64> {
    let scores = scores?;
    (!weights.benefit.is_empty() && weights.benefit.keys().all(|k| scores.contains_key(k))).then(
        || {
            weights
                .benefit
                .iter()
                .map(|(k, w)| w * scores[k])
                .sum::<f64>()
        },
    )
}

/// Weighted efficiency per hour of the window: P / (C / hours), with
/// `span_secs` the span C was spent over, so windows of any length compare
/// (a steady node scores the same over 5 m and 30 d). None without P, with
/// C ≤ 0 or with no span.
pub fn efficiency_per_hour(p: Option<f64>, weighted_cost: f64, span_secs: f64) -> Option<f64> {
    let hours = span_secs / 3600.0;
    p.filter(|_| weighted_cost > 0.0 && hours > 0.0)
        .map(|p| p / (weighted_cost / hours))
}

impl Totals {
    /// Money actually spent: gross cost minus credit, unweighted.
    pub fn money(&self) -> f64 {
        self.cost.values().sum::<f64>() - self.credit
    }

    fn minus(&self, base: &Totals) -> Totals {
        let owner_base = |o: &Owner| {
            base.owners
                .iter()
                .find(|(b, _, _)| b == o)
                .map_or((0.0, 0.0), |(_, v, m)| (*v, *m))
        };
        Totals {
            cost: self
                .cost
                .iter()
                .map(|(k, v)| (*k, v - base.cost.get(k).copied().unwrap_or(0.0)))
                .collect(),
            credit: self.credit - base.credit,
            value: self.value - base.value,
            facility_joules: self.facility_joules - base.facility_joules,
            input_tokens: self.input_tokens - base.input_tokens,
            output_tokens: self.output_tokens - base.output_tokens,
            requests: self.requests - base.requests,
            owners: self
                .owners
                .iter()
                .map(|(o, v, m)| {
                    let (bv, bm) = owner_base(o);
                    (o.clone(), v - bv, m - bm)
                })
                .collect(),
            owner_costs: self
                .owner_costs
                .iter()
                .filter_map(|oc| {
                    let b = base.owner_costs.iter().find(|b| b.owner == oc.owner);
                    // A base that knew the owner but not its components (an
                    // older checkpoint): its weighted cost is unknown.
                    if b.is_none() && base.owners.iter().any(|(o, _, _)| *o == oc.owner) {
                        return None;
                    }
                    Some(OwnerCost {
                        owner: oc.owner.clone(),
                        cost: oc
                            .cost
                            .iter()
                            .map(|(k, v)| {
                                (
                                    *k,
                                    v - b.and_then(|b| b.cost.get(k)).copied().unwrap_or(0.0),
                                )
                            })
                            .collect(),
                        credit: oc.credit - b.map_or(0.0, |b| b.credit),
                    })
                })
                .collect(),
        }
    }
}

/// One window's retained boundaries and baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowState {
    /// Window length, seconds.
    pub seconds: i64,
    /// (time, cumulative totals) at bucket boundaries, oldest first.
    pub marks: Vec<(DateTime<Utc>, Totals)>,
    /// EWMA of the window's financial ROI (None until first defined).
    pub baseline_roi: Option<f64>,
    /// Start of the first window that fed `baseline_roi` (None before, or
    /// from a checkpoint written before spans: then set at the next
    /// sample, an underestimate).
    pub baseline_since: Option<DateTime<Utc>>,
    /// Each owner's baseline of its own ROI over this window.
    pub owner_baselines: Vec<OwnerBaseline>,
}

/// One owner's trailing baseline of its ROI over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerBaseline {
    /// Owner.
    pub owner: Owner,
    /// EWMA of the owner's financial ROI over the window.
    pub roi: f64,
    /// Start of the first window that fed it.
    pub since: DateTime<Utc>,
}

/// The EWMA step: `b` moved by `alpha` towards `r`.
fn ewma(b: f64, r: f64, alpha: f64) -> f64 {
    b + alpha * (r - b)
}

/// Every configured window, by label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Windows {
    /// Label (`5m`, `1h`, …) → state.
    pub by_label: BTreeMap<String, WindowState>,
}

/// Financial ROI (V − M)/M, when money was spent.
pub fn roi(value: f64, money: f64) -> Option<f64> {
    (money > 0.0).then(|| (value - money) / money)
}

impl Windows {
    /// Keep exactly the windows `spec` names (label, seconds); state of
    /// windows that stay is kept.
    pub fn configure(&mut self, spec: &[(String, i64)]) {
        self.by_label
            .retain(|l, st| spec.iter().any(|(sl, secs)| sl == l && *secs == st.seconds));
        for (label, secs) in spec {
            self.by_label
                .entry(label.clone())
                .or_insert_with(|| WindowState {
                    seconds: *secs,
                    ..Default::default()
                });
        }
    }

    /// Whether some window has a bucket boundary due at `now`, after
    /// dropping marks a clock set back left in the future. One comparison
    /// per window: the caller builds the [`Totals`] for
    /// [`Windows::observe`] only when this says they are needed.
    pub fn due(&mut self, now: DateTime<Utc>) -> bool {
        // A clock set back: marks "in the future" describe nothing that
        // has happened yet; drop them.
        for w in self.by_label.values_mut() {
            w.marks.retain(|(t, _)| *t <= now);
        }
        self.by_label.values().any(|w| {
            let g = Duration::seconds((w.seconds / BUCKETS).max(1));
            w.marks.last().is_none_or(|(t, _)| now >= *t + g)
        })
    }

    /// Record `totals`, the cumulative totals at `now`, where a bucket
    /// boundary has passed. `has_value`: whether any value source exists
    /// (without one no ROI feeds the baselines). O(1) amortised per call
    /// when the totals are built only where [`Windows::due`] says so.
    pub fn observe(&mut self, now: DateTime<Utc>, totals: &Totals, has_value: bool) {
        if !self.due(now) {
            return;
        }
        for w in self.by_label.values_mut() {
            let g = (w.seconds / BUCKETS).max(1);
            let step = Duration::seconds(g);
            if w.marks.last().is_some_and(|(t, _)| now < *t + step) {
                continue;
            }
            // The window's ROI at this boundary feeds the baseline, when
            // the window covers about its own length.
            if let Some(base) = base_mark(&w.marks, now, w.seconds, g)
                .filter(|_| has_value)
                .filter(|(t, _)| (now - *t).num_seconds() <= w.seconds + g)
                .filter(|(t, _)| (now - *t).num_seconds() >= w.seconds)
            {
                let d = totals.minus(&base.1);
                let alpha = g as f64 / BASELINE_SECS.max(4.0 * g as f64);
                let start = base.0;
                if let Some(r) = roi(d.value, d.money()) {
                    w.baseline_roi = Some(match w.baseline_roi {
                        Some(b) => ewma(b, r, alpha),
                        None => r,
                    });
                    w.baseline_since.get_or_insert(start);
                }
                for (o, v, m) in &d.owners {
                    let Some(r) = roi(*v, *m) else { continue };
                    match w.owner_baselines.iter_mut().find(|b| b.owner == *o) {
                        Some(b) => b.roi = ewma(b.roi, r, alpha),
                        None => w.owner_baselines.push(OwnerBaseline {
                            owner: o.clone(),
                            roi: r,
                            since: start,
                        }),
                    }
                }
            }
            w.marks.push((now, totals.clone()));
            // Keep one boundary at or before now − window, and no more.
            let cut = now - Duration::seconds(w.seconds);
            while w.marks.len() > 1 && w.marks[1].0 <= cut {
                w.marks.remove(0);
            }
            let max = (BUCKETS + 2) as usize;
            if w.marks.len() > max {
                let extra = w.marks.len() - max;
                w.marks.drain(..extra);
            }
        }
    }
}

/// The mark a window's figures start from: the latest at or before
/// `now − window`, if it is within one bucket of it; otherwise (history
/// younger than the window, or a gap such as roimon being stopped) the
/// oldest mark after that, so the window reports the shorter span it
/// really covers instead of reaching back across the gap.
fn base_mark(
    marks: &[(DateTime<Utc>, Totals)],
    now: DateTime<Utc>,
    seconds: i64,
    step: i64,
) -> Option<&(DateTime<Utc>, Totals)> {
    let cut = now - Duration::seconds(seconds);
    let far = cut - Duration::seconds(step);
    let past = marks.iter().filter(|(t, _)| *t <= now);
    match past.clone().rev().find(|(t, _)| *t <= cut) {
        Some(m) if m.0 >= far => Some(m),
        found => past.clone().find(|(t, _)| *t > far).or(found),
    }
}

/// One owner over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnerWindow {
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
    /// Value produced.
    pub value: f64,
    /// Money spent (cost minus credit).
    pub cost: f64,
    /// (V − M)/M.
    pub roi: Option<f64>,
    /// Trailing baseline of `roi` (the owner's own EWMA).
    pub baseline_roi: Option<f64>,
    /// Seconds of history `baseline_roi` rests on: from the start of the
    /// first window that fed it to now.
    pub baseline_span_secs: Option<f64>,
    /// The owner's benefit score P = Σ wᵢPᵢ from its own scores (None
    /// without weights or without a score for every weighted indicator).
    pub benefit_score: Option<f64>,
    /// The owner's weighted cost C = Σ vⱼCⱼ over the window (None where a
    /// mark from before per-owner costs leaves it unknown).
    pub weighted_cost: Option<f64>,
    /// P / (C / hours of the window's span): benefit per weighted currency
    /// unit per hour.
    pub weighted_efficiency: Option<f64>,
}

/// A window as exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    /// Label.
    pub window: String,
    /// Configured length, seconds.
    pub seconds: i64,
    /// The span the figures cover exactly, seconds (shorter while history
    /// is younger than the window).
    pub span_secs: f64,
    /// Value produced, V.
    pub value: f64,
    /// Money spent, M (cost minus credit, unweighted).
    pub cost: f64,
    /// Cost by component.
    pub cost_by_component: BTreeMap<Component, f64>,
    /// Financial ROI (V − M)/M.
    pub roi: Option<f64>,
    /// Trailing baseline of `roi`.
    pub baseline_roi: Option<f64>,
    /// Seconds of history `baseline_roi` rests on: from the start of the
    /// first window that fed it to now.
    pub baseline_span_secs: Option<f64>,
    /// Benefit score P = Σ wᵢPᵢ (None without weights or scores).
    pub benefit_score: Option<f64>,
    /// Weighted cost C = Σ vⱼCⱼ over the window.
    pub weighted_cost: f64,
    /// P / (C / hours of `span_secs`): benefit score per weighted currency
    /// unit per hour of the window, so windows of any length compare.
    pub weighted_efficiency: Option<f64>,
    /// Facility energy, J.
    pub facility_joules: f64,
    /// Input and output tokens.
    pub tokens: f64,
    /// Successful requests.
    pub requests: f64,
    /// Money per million tokens.
    pub cost_per_million_tokens: Option<f64>,
    /// Tokens per joule of facility energy.
    pub tokens_per_joule: Option<f64>,
    /// Money per request.
    pub cost_per_request: Option<f64>,
    /// Per owner.
    pub owners: Vec<OwnerWindow>,
}

/// The ROI model's weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoiWeights {
    /// Benefit indicator → weight (empty: no weighted efficiency).
    pub benefit: BTreeMap<String, f64>,
    /// Cost component → weight (missing: 1).
    pub cost: BTreeMap<Component, f64>,
}

impl Windows {
    /// Every window's figures at `now` from `totals`, the cumulative
    /// totals now, with `scores` the node's benefit indicator scores Pᵢ
    /// and `owner_scores` each owner's own. `has_value`: whether any value source exists; without one there is
    /// no return to speak of, so no ROI (a node that serves nothing
    /// measured is not "losing everything").
    pub fn views(
        &self,
        now: DateTime<Utc>,
        totals: &Totals,
        has_value: bool,
        weights: &RoiWeights,
        scores: &BTreeMap<String, f64>,
        owner_scores: &BTreeMap<Owner, BTreeMap<String, f64>>,
    ) -> Vec<WindowView> {
        let roi = |v: f64, m: f64| if has_value { roi(v, m) } else { None };
        let span_since = |since: DateTime<Utc>| {
            ((now - since).num_milliseconds() as f64 / 1000.0).max(0.0) + 0.0
        };
        let mut out: Vec<WindowView> = self
            .by_label
            .iter()
            .map(|(label, w)| {
                let g = (w.seconds / BUCKETS).max(1);
                let (span, d) = match base_mark(&w.marks, now, w.seconds, g) {
                    Some((t, base)) => (
                        (now - *t).num_milliseconds() as f64 / 1000.0,
                        totals.minus(base),
                    ),
                    None => (0.0, Totals::default()),
                };
                let money = d.money();
                let weighted_cost = weighted_cost_of(weights, &d.cost, d.credit);
                let benefit_score = benefit_score_of(weights, Some(scores));
                let tokens = d.input_tokens + d.output_tokens;
                WindowView {
                    window: label.clone(),
                    seconds: w.seconds,
                    span_secs: span,
                    value: d.value + 0.0,
                    cost: money + 0.0,
                    cost_by_component: d.cost.clone(),
                    roi: roi(d.value, money),
                    baseline_roi: w.baseline_roi,
                    baseline_span_secs: w.baseline_roi.and(w.baseline_since).map(span_since),
                    weighted_efficiency: efficiency_per_hour(benefit_score, weighted_cost, span),
                    benefit_score,
                    weighted_cost: weighted_cost + 0.0,
                    facility_joules: d.facility_joules + 0.0,
                    tokens: tokens + 0.0,
                    requests: d.requests + 0.0,
                    cost_per_million_tokens: (tokens > 0.0).then(|| money / tokens * 1e6),
                    tokens_per_joule: (d.facility_joules > 0.0 && tokens > 0.0)
                        .then(|| tokens / d.facility_joules),
                    cost_per_request: (d.requests > 0.0).then(|| money / d.requests),
                    owners: d
                        .owners
                        .iter()
                        .map(|(o, v, m)| {
                            let p = benefit_score_of(weights, owner_scores.get(o));
                            let c = d
                                .owner_costs
                                .iter()
                                .find(|oc| oc.owner == *o)
                                .map(|oc| weighted_cost_of(weights, &oc.cost, oc.credit) + 0.0);
                            let b = w
                                .owner_baselines
                                .iter()
                                .find(|b| b.owner == *o)
                                .filter(|_| has_value);
                            OwnerWindow {
                                team: o.team.clone(),
                                workload: o.workload.clone(),
                                value: *v + 0.0,
                                cost: *m + 0.0,
                                roi: roi(*v, *m),
                                baseline_roi: b.map(|b| b.roi),
                                baseline_span_secs: b.map(|b| span_since(b.since)),
                                benefit_score: p,
                                weighted_cost: c,
                                weighted_efficiency: c
                                    .and_then(|c| efficiency_per_hour(p, c, span)),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        out.sort_by_key(|v| v.seconds);
        out
    }
}

/// Parse a window label: `30s`, `5m`, `1h`, `24h`, `7d`, `4w`.
pub fn parse_window(label: &str) -> Option<i64> {
    let (num, unit) = label.split_at(label.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    /// The totals of counters with `cost` of capex and `value` booked,
    /// with one value source (else there is no ROI to speak of).
    fn totals(cost: f64, value: f64) -> Totals {
        Totals {
            cost: [(Component::Capex, cost)].into(),
            value,
            owners: vec![(
                Owner {
                    team: "t".into(),
                    workload: "w".into(),
                },
                0.0,
                0.0,
            )],
            ..Default::default()
        }
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_window("5m"), Some(300));
        assert_eq!(parse_window("24h"), Some(86_400));
        assert_eq!(parse_window("30d"), Some(2_592_000));
        assert_eq!(parse_window("0m"), None);
        assert_eq!(parse_window("5"), None);
        assert_eq!(parse_window("m"), None);
        assert_eq!(parse_window("5y"), None);
    }

    #[test]
    fn a_window_is_exact_over_the_span_it_reports_and_memory_is_bounded() {
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        // Cost 1 per second, value 2 per second, ticks every 7 s for 10 h.
        for s in (0..36_000).step_by(7) {
            w.observe(t(s), &totals(s as f64, 2.0 * s as f64), true);
        }
        let now = 35_994;
        let v = &w.views(
            t(now),
            &totals(now as f64, 2.0 * now as f64),
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )[0];
        assert!(
            v.span_secs >= 3600.0 && v.span_secs < 3600.0 + 120.0 + 7.0,
            "{}",
            v.span_secs
        );
        assert_eq!(v.cost, v.span_secs);
        assert_eq!(v.value, 2.0 * v.span_secs);
        assert_eq!(v.roi, Some(1.0), "{v:?}");
        assert!(w.by_label["1h"].marks.len() <= (BUCKETS + 2) as usize);
        // A steady ROI of 1 makes a baseline of 1.
        assert!((w.by_label["1h"].baseline_roi.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_young_window_reports_its_shorter_span_and_a_restart_keeps_history() {
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600), ("5m".into(), 300)]);
        w.observe(t(0), &totals(0.0, 0.0), true);
        w.observe(t(600), &totals(600.0, 0.0), true);
        // Round trip through JSON (the checkpoint), then 100 s of downtime
        // whose fixed cost arrives with the first tick after the restart.
        let json = serde_json::to_string(&w).unwrap();
        let mut w: Windows = serde_json::from_str(&json).unwrap();
        w.observe(t(700), &totals(700.0, 0.0), true);
        // Right after the restart the 5m window does not reach back across
        // the gap in its marks: it reports the shorter span after it.
        let views = w.views(
            t(700),
            &totals(700.0, 0.0),
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(views[0].window, "5m");
        assert_eq!((views[0].span_secs, views[0].cost), (100.0, 100.0));
        w.observe(t(1000), &totals(1000.0, 0.0), true);
        let views = w.views(
            t(1000),
            &totals(1000.0, 0.0),
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        let (five, hour) = (&views[0], &views[1]);
        assert_eq!((five.span_secs, five.cost), (300.0, 300.0));
        // The hour is younger than an hour: its whole history.
        assert_eq!((hour.span_secs, hour.cost), (1000.0, 1000.0));
        // No value, money spent: ROI −1.
        assert_eq!(hour.roi, Some(-1.0));
    }

    #[test]
    fn a_clock_set_back_drops_marks_from_the_future_and_spans_stay_positive() {
        let mut w = Windows::default();
        w.configure(&[("5m".into(), 300)]);
        for s in (0..1000).step_by(10) {
            w.observe(t(s), &totals(s as f64, s as f64 * 2.0), true);
        }
        // The clock jumps back 500 s.
        w.observe(t(490), &totals(1000.0, 2000.0), true);
        assert!(w.by_label["5m"].marks.iter().all(|(m, _)| *m <= t(490)));
        let v = &w.views(
            t(495),
            &totals(1005.0, 2010.0),
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )[0];
        assert!(
            v.span_secs >= 0.0 && v.span_secs <= 310.0,
            "{}",
            v.span_secs
        );
        assert!(v.cost >= 0.0);
    }

    #[test]
    fn weighted_efficiency_uses_weighted_cost_and_roi_unweighted_money() {
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        let mut c0 = Totals::default();
        c0.cost.insert(Component::Energy, 0.0);
        c0.cost.insert(Component::Staff, 0.0);
        w.observe(t(0), &c0, false);
        let mut c1 = totals(0.0, 0.0);
        c1.cost.clear();
        c1.cost.insert(Component::Energy, 50.0);
        c1.cost.insert(Component::Staff, 5000.0);
        c1.value = 2000.0;
        let weights = RoiWeights {
            benefit: [("precision".to_string(), 0.5), ("growth".to_string(), 0.5)].into(),
            cost: [(Component::Energy, 0.25), (Component::Staff, 0.25)].into(),
        };
        let scores: BTreeMap<String, f64> =
            [("precision".to_string(), 0.9), ("growth".to_string(), 0.7)].into();
        let v = &w.views(t(3600), &c1, true, &weights, &scores, &BTreeMap::new())[0];
        assert_eq!(v.benefit_score, Some(0.8));
        assert_eq!(v.weighted_cost, 1262.5);
        assert_eq!(v.weighted_efficiency, Some(0.8 / 1262.5));
        assert_eq!(v.cost, 5050.0);
        assert_eq!(v.roi, Some((2000.0 - 5050.0) / 5050.0));
        // A missing score: no weighted efficiency, ROI unaffected.
        let partial: BTreeMap<String, f64> = [("precision".to_string(), 0.9)].into();
        let v = &w.views(t(3600), &c1, true, &weights, &partial, &BTreeMap::new())[0];
        assert_eq!(v.weighted_efficiency, None);
        assert!(v.roi.is_some());
        // No value source at all: no ROI (not −1).
        c1.owners.clear();
        let v = &w.views(t(3600), &c1, false, &weights, &scores, &BTreeMap::new())[0];
        assert_eq!(v.roi, None);
    }

    fn owner(team: &str) -> Owner {
        Owner {
            team: team.into(),
            workload: "w".into(),
        }
    }

    /// Cumulative totals after `s` seconds of a steady node: capex 1 per
    /// second, all of it owner `a`'s.
    fn steady(s: f64) -> Totals {
        Totals {
            cost: [(Component::Capex, s)].into(),
            owners: vec![(owner("a"), 0.0, s)],
            owner_costs: vec![OwnerCost {
                owner: owner("a"),
                cost: [(Component::Capex, s)].into(),
                credit: 0.0,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn weighted_efficiency_is_per_hour_so_windows_of_any_length_compare() {
        let mut w = Windows::default();
        w.configure(&[("5m".into(), 300), ("1h".into(), 3600)]);
        for s in (0..=7200).step_by(10) {
            w.observe(t(s), &steady(s as f64), false);
        }
        let weights = RoiWeights {
            benefit: [("precision".to_string(), 1.0)].into(),
            cost: BTreeMap::new(),
        };
        let scores: BTreeMap<String, f64> = [("precision".to_string(), 0.9)].into();
        let owner_scores: BTreeMap<Owner, BTreeMap<String, f64>> =
            [(owner("a"), [("precision".to_string(), 0.5)].into())].into();
        let v = w.views(
            t(7200),
            &steady(7200.0),
            false,
            &weights,
            &scores,
            &owner_scores,
        );
        let (five, hour) = (&v[0], &v[1]);
        assert_eq!((five.span_secs, hour.span_secs), (300.0, 3600.0));
        // C is 300 over 5 m and 3600 over 1 h: 3600 per hour in both.
        assert_eq!(five.weighted_cost, 300.0);
        assert_eq!(five.weighted_efficiency, Some(0.9 / 3600.0));
        assert_eq!(hour.weighted_efficiency, Some(0.9 / 3600.0));
        // Per owner: its own score over its own cost, per hour.
        for win in [five, hour] {
            let a = &win.owners[0];
            assert_eq!(a.benefit_score, Some(0.5));
            assert_eq!(a.weighted_cost, Some(win.span_secs));
            assert_eq!(a.weighted_efficiency, Some(0.5 / 3600.0));
        }
        // An owner without a score for every weighted indicator: none.
        let v = w.views(
            t(7200),
            &steady(7200.0),
            false,
            &weights,
            &scores,
            &BTreeMap::new(),
        );
        assert_eq!(v[0].owners[0].weighted_efficiency, None);
        assert_eq!(v[0].weighted_efficiency, Some(0.9 / 3600.0));
    }

    #[test]
    fn a_mark_from_before_owner_costs_leaves_the_owner_weighted_cost_unknown() {
        let mut w = Windows::default();
        w.configure(&[("5m".into(), 300)]);
        let mut old = steady(0.0);
        old.owner_costs.clear();
        w.observe(t(0), &old, false);
        // A checkpoint of the older format has no `owner_costs` at all.
        let text = serde_json::to_string(&w)
            .unwrap()
            .replace(",\"owner_costs\":[]", "");
        assert!(!text.contains("owner_costs"), "{text}");
        let mut w: Windows = serde_json::from_str(&text).unwrap();
        w.observe(t(300), &steady(300.0), false);
        let weights = RoiWeights {
            benefit: [("precision".to_string(), 1.0)].into(),
            cost: BTreeMap::new(),
        };
        let owner_scores: BTreeMap<Owner, BTreeMap<String, f64>> =
            [(owner("a"), [("precision".to_string(), 0.5)].into())].into();
        let v = &w.views(
            t(300),
            &steady(300.0),
            false,
            &weights,
            &BTreeMap::new(),
            &owner_scores,
        )[0];
        assert_eq!(v.owners[0].cost, 300.0);
        assert_eq!(v.owners[0].weighted_cost, None);
        assert_eq!(v.owners[0].weighted_efficiency, None);
    }

    /// Two owners' cumulative totals at `s` seconds: each costs 1 per
    /// second; `a` makes `va` and `b` 0.5 per second.
    fn two(s: f64, va: f64) -> Totals {
        Totals {
            cost: [(Component::Capex, 2.0 * s)].into(),
            value: va + 0.5 * s,
            owners: vec![(owner("a"), va, s), (owner("b"), 0.5 * s, s)],
            ..Default::default()
        }
    }

    #[test]
    fn each_owner_has_a_baseline_of_its_own_roi_with_the_span_it_rests_on() {
        let mut w = Windows::default();
        w.configure(&[("5m".into(), 300)]);
        // `a` makes 2 per second until 300 s, then nothing.
        let va = |s: i64| 2.0 * s.min(300) as f64;
        let view = |w: &Windows, s: i64| {
            w.views(
                t(s),
                &two(s as f64, va(s)),
                true,
                &RoiWeights::default(),
                &BTreeMap::new(),
                &BTreeMap::new(),
            )
            .remove(0)
        };
        for s in (0..300).step_by(10) {
            w.observe(t(s), &two(s as f64, va(s)), true);
        }
        // Before the window covers its own length: no baseline.
        let v = view(&w, 290);
        assert_eq!(
            (v.owners[0].baseline_roi, v.baseline_span_secs),
            (None, None)
        );
        // The first window of 300 s feeds it: a's ROI 1, b's -0.5, the
        // node's (600 + 150 - 600) / 600 = 0.25; they rest on 300 s.
        w.observe(t(300), &two(300.0, va(300)), true);
        let v = view(&w, 300);
        let (a, b) = (&v.owners[0], &v.owners[1]);
        assert_eq!((a.roi, a.baseline_roi), (Some(1.0), Some(1.0)));
        assert_eq!((b.roi, b.baseline_roi), (Some(-0.5), Some(-0.5)));
        assert_eq!(v.baseline_roi, Some(0.25));
        assert_eq!(a.baseline_span_secs, Some(300.0));
        assert_eq!(v.baseline_span_secs, Some(300.0));
        // 10 s later a has made nothing: over [10, 310] it made 580 for a
        // cost of 300, ROI 280/300; its baseline moves by 10/86400 of the
        // difference, b's stays.
        w.observe(t(310), &two(310.0, va(310)), true);
        let v = view(&w, 315);
        let (a, b) = (&v.owners[0], &v.owners[1]);
        let alpha = 10.0 / 86_400.0;
        assert_eq!(a.baseline_roi, Some(1.0 + alpha * (280.0 / 300.0 - 1.0)));
        assert_eq!(b.baseline_roi, Some(-0.5));
        assert_eq!(a.baseline_span_secs, Some(315.0));
        // Round trip through the checkpoint keeps them.
        let back: Windows = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        // Without any value source there is no baseline to show.
        let v = w.views(
            t(315),
            &two(315.0, va(315)),
            false,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(v[0].owners[0].baseline_roi, None);
    }

    #[test]
    fn labels_parse_in_every_unit() {
        assert_eq!(parse_window("30s"), Some(30));
        assert_eq!(parse_window("5m"), Some(5 * 60));
        assert_eq!(parse_window("2h"), Some(2 * 3600));
        assert_eq!(parse_window("7d"), Some(7 * 86_400));
        // 4 weeks = 28 days = 2 419 200 s.
        assert_eq!(parse_window("4w"), Some(2_419_200));
        assert_eq!(parse_window("-5m"), None);
        assert_eq!(parse_window("5mm"), None);
    }

    /// Base and now totals of a one-hour window whose differences are
    /// round figures: cost energy 30 + capex 18 - credit 2 = money 46,
    /// value 69, facility 2944 J, tokens 480 + 256 = 736, 23 requests;
    /// owner `a` has all of it, owner `b` (new in the window) value 9 and
    /// money 3 of energy.
    fn hour_pair() -> (Totals, Totals) {
        let base = Totals {
            cost: [(Component::Energy, 10.0), (Component::Capex, 5.0)].into(),
            credit: 1.0,
            value: 20.0,
            facility_joules: 1000.0,
            input_tokens: 100.0,
            output_tokens: 50.0,
            requests: 4.0,
            owners: vec![(owner("a"), 20.0, 14.0)],
            owner_costs: vec![OwnerCost {
                owner: owner("a"),
                cost: [(Component::Energy, 10.0), (Component::Capex, 5.0)].into(),
                credit: 1.0,
            }],
        };
        let now = Totals {
            cost: [(Component::Energy, 40.0), (Component::Capex, 23.0)].into(),
            credit: 3.0,
            value: 89.0,
            facility_joules: 3944.0,
            input_tokens: 580.0,
            output_tokens: 306.0,
            requests: 27.0,
            owners: vec![(owner("a"), 89.0, 60.0), (owner("b"), 9.0, 3.0)],
            owner_costs: vec![
                OwnerCost {
                    owner: owner("a"),
                    cost: [(Component::Energy, 40.0), (Component::Capex, 23.0)].into(),
                    credit: 3.0,
                },
                OwnerCost {
                    owner: owner("b"),
                    cost: [(Component::Energy, 3.0)].into(),
                    credit: 0.0,
                },
            ],
        };
        (base, now)
    }

    #[test]
    fn a_window_view_holds_hand_computed_figures() {
        let (base, now) = hour_pair();
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        w.observe(t(0), &base, true);
        // Energy weighs 0.5, capex 1 (missing); benefit 2 * score.
        let weights = RoiWeights {
            benefit: [("q".to_string(), 2.0)].into(),
            cost: [(Component::Energy, 0.5)].into(),
        };
        let scores: BTreeMap<String, f64> = [("q".to_string(), 0.5)].into();
        let owner_scores: BTreeMap<Owner, BTreeMap<String, f64>> =
            [(owner("a"), [("q".to_string(), 0.25)].into())].into();
        let v = &w.views(t(3600), &now, true, &weights, &scores, &owner_scores)[0];
        assert_eq!((v.window.as_str(), v.seconds), ("1h", 3600));
        assert_eq!(v.span_secs, 3600.0);
        assert_eq!(
            v.cost_by_component,
            [(Component::Energy, 30.0), (Component::Capex, 18.0)].into()
        );
        // 30 + 18 - 2 = 46; value 89 - 20 = 69; ROI (69 - 46) / 46 = 0.5.
        assert_eq!((v.cost, v.value, v.roi), (46.0, 69.0, Some(0.5)));
        // Weighted cost 0.5 * 30 + 1 * 18 - 0.5 * 2 = 32; P = 2 * 0.5 = 1;
        // per hour of a 1 h span: 1 / (32 / 1) = 0.031 25.
        assert_eq!(v.weighted_cost, 32.0);
        assert_eq!(v.benefit_score, Some(1.0));
        assert_eq!(v.weighted_efficiency, Some(0.031_25));
        assert_eq!(v.facility_joules, 2944.0);
        // 480 + 256 = 736 tokens, 23 requests.
        assert_eq!((v.tokens, v.requests), (736.0, 23.0));
        // 46 / 736 * 1e6 = 62 500 per million tokens; 736 / 2944 = 0.25
        // tokens per joule; 46 / 23 = 2 per request.
        assert_eq!(v.cost_per_million_tokens, Some(62_500.0));
        assert_eq!(v.tokens_per_joule, Some(0.25));
        assert_eq!(v.cost_per_request, Some(2.0));
        // Owner a: value 89 - 20 = 69, money 60 - 14 = 46, ROI 0.5; its
        // weighted cost 0.5 * 30 + 18 - 0.5 * 2 = 32, P = 2 * 0.25 = 0.5,
        // efficiency 0.5 / 32 = 0.015 625.
        let a = &v.owners[0];
        assert_eq!((a.team.as_str(), a.value, a.cost), ("a", 69.0, 46.0));
        assert_eq!(a.roi, Some(0.5));
        assert_eq!(a.benefit_score, Some(0.5));
        assert_eq!(a.weighted_cost, Some(32.0));
        assert_eq!(a.weighted_efficiency, Some(0.015_625));
        // Owner b, unknown at the base: all of its totals, value 9, money
        // 3, ROI (9 - 3) / 3 = 2; weighted cost 0.5 * 3 = 1.5; no scores.
        let b = &v.owners[1];
        assert_eq!((b.team.as_str(), b.value, b.cost), ("b", 9.0, 3.0));
        assert_eq!(b.roi, Some(2.0));
        assert_eq!(b.weighted_cost, Some(1.5));
        assert_eq!((b.benefit_score, b.weighted_efficiency), (None, None));
    }

    #[test]
    fn per_unit_figures_need_something_to_divide_by() {
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        w.observe(t(0), &Totals::default(), true);
        // Money 10, no tokens, no requests, no energy: no per-unit figure.
        let now = totals(10.0, 0.0);
        let v = &w.views(
            t(3600),
            &now,
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )[0];
        assert_eq!(v.cost, 10.0);
        assert_eq!(v.cost_per_million_tokens, None);
        assert_eq!(v.tokens_per_joule, None);
        assert_eq!(v.cost_per_request, None);
        // Tokens but no energy: no tokens per joule.
        let mut now = totals(10.0, 0.0);
        now.output_tokens = 100.0;
        let v = &w.views(
            t(3600),
            &now,
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )[0];
        // 10 / 100 * 1e6 = 100 000 per million tokens.
        assert_eq!(v.cost_per_million_tokens, Some(100_000.0));
        assert_eq!(v.tokens_per_joule, None);
        // Energy but no tokens: none either.
        let mut now = totals(10.0, 0.0);
        now.facility_joules = 500.0;
        let v = &w.views(
            t(3600),
            &now,
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )[0];
        assert_eq!(v.tokens_per_joule, None);
        // Nothing spent: no ROI, no weighted efficiency (zero cost).
        assert_eq!(roi(5.0, 0.0), None);
        assert_eq!(roi(5.0, -1.0), None);
        // (3 - 2) / 2 = 0.5.
        assert_eq!(roi(3.0, 2.0), Some(0.5));
        assert_eq!(efficiency_per_hour(Some(1.0), 0.0, 3600.0), None);
        assert_eq!(efficiency_per_hour(Some(1.0), 2.0, 0.0), None);
        assert_eq!(efficiency_per_hour(None, 2.0, 3600.0), None);
        // 1 over 2 per 1800 s (half an hour): 1 / (2 / 0.5) = 0.25.
        assert_eq!(efficiency_per_hour(Some(1.0), 2.0, 1800.0), Some(0.25));
    }

    #[test]
    fn zero_figures_are_shown_as_zero_not_minus_zero() {
        // Totals that moved from +0 to -0 (a figure that was never booked
        // and a restored -0): the difference is -0, shown as 0.
        let base = Totals::default();
        let now = Totals {
            value: -0.0,
            facility_joules: -0.0,
            input_tokens: -0.0,
            output_tokens: -0.0,
            requests: -0.0,
            owners: vec![(owner("a"), -0.0, -0.0)],
            owner_costs: vec![OwnerCost {
                owner: owner("a"),
                cost: BTreeMap::new(),
                credit: 0.0,
            }],
            ..Default::default()
        };
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        w.observe(t(0), &base, true);
        let v = &w.views(
            t(3600),
            &now,
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )[0];
        let shown = |x: f64| format!("{x}");
        assert_eq!(shown(v.value), "0");
        assert_eq!(shown(v.cost), "0");
        assert_eq!(shown(v.weighted_cost), "0");
        assert_eq!(shown(v.facility_joules), "0");
        assert_eq!(shown(v.tokens), "0");
        assert_eq!(shown(v.requests), "0");
        let a = &v.owners[0];
        assert_eq!(shown(a.value), "0");
        assert_eq!(shown(a.cost), "0");
        assert_eq!(shown(a.weighted_cost.unwrap()), "0");
    }

    #[test]
    fn reconfiguring_keeps_the_windows_that_stay_and_resets_changed_ones() {
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        w.observe(t(0), &totals(1.0, 0.0), true);
        // 1h stays as it was; 5m is new and empty.
        w.configure(&[("1h".into(), 3600), ("5m".into(), 300)]);
        assert_eq!(w.by_label["1h"].marks.len(), 1);
        assert!(w.by_label["5m"].marks.is_empty());
        assert_eq!(w.by_label["5m"].seconds, 300);
        // "1h" now 7200 s: a new window under the old label; 5m goes.
        w.configure(&[("1h".into(), 7200)]);
        assert_eq!(w.by_label.len(), 1);
        assert_eq!(w.by_label["1h"].seconds, 7200);
        assert!(w.by_label["1h"].marks.is_empty());
    }

    #[test]
    fn a_boundary_is_due_one_bucket_after_the_last_mark() {
        let mut w = Windows::default();
        // 1 h / 30 buckets = a boundary every 120 s.
        w.configure(&[("1h".into(), 3600)]);
        assert!(w.due(t(0)), "no mark yet");
        w.observe(t(0), &Totals::default(), false);
        assert!(!w.due(t(60)));
        assert!(!w.due(t(119)));
        assert!(w.due(t(120)));
        // A clock set back before the mark drops it: due again.
        assert!(w.due(t(-10)));
        assert!(w.by_label["1h"].marks.is_empty());
    }

    #[test]
    fn a_window_keeps_one_mark_at_or_before_its_start_and_at_most_32() {
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600), ("100s".into(), 100)]);
        for s in (0..=7200).step_by(3) {
            w.observe(t(s), &steady(s as f64), false);
        }
        // 1h: a boundary every 120 s (0, 120, ... 7200, the 3 s ticks
        // land on them since 120 = 40 * 3); the latest at or before
        // 7200 - 3600 = 3600 is 3600 itself: 3600, 3720, ... 7200 = 31.
        let marks = &w.by_label["1h"].marks;
        assert_eq!(marks.len(), 31);
        assert_eq!(marks[0].0, t(3600));
        // 100s: 100 / 30 = 3 s buckets; 7101..7200 hold 34 marks after
        // 7098 (the one at or before 7100), 35 in all: cut to 32, the
        // newest 32 (7107, 7110, ... 7200).
        let marks = &w.by_label["100s"].marks;
        assert_eq!(marks.len(), 32);
        assert_eq!(marks[0].0, t(7107));
    }

    #[test]
    fn the_window_start_is_the_latest_mark_within_a_bucket_of_it_else_the_next() {
        let marks: Vec<(DateTime<Utc>, Totals)> = [0, 200, 250, 500, 3800]
            .iter()
            .map(|s| (t(*s), Totals::default()))
            .collect();
        let start = |now: i64| base_mark(&marks, t(now), 3600, 120).map(|m| m.0);
        // now 3700: start 100, a bucket before it 20 below: 0 is within.
        assert_eq!(start(3700), Some(t(0)));
        // now 3900: start 300, bucket from 180: the latest at or before
        // 300 is 250 (not 200, the first after 180).
        assert_eq!(start(3900), Some(t(250)));
        // now 4000: start 400, bucket from 280: 250 is older (a gap), so
        // the first mark after 280, 500.
        assert_eq!(start(4000), Some(t(500)));
        // now 100 (history younger than the window): the oldest mark not
        // in the future.
        assert_eq!(start(100), Some(t(0)));
        // Only an old mark and nothing after the bucket: the old one.
        let old = [(t(0), Totals::default())];
        assert_eq!(base_mark(&old, t(4000), 3600, 120).map(|m| m.0), Some(t(0)));
        assert!(base_mark(&[], t(4000), 3600, 120).is_none());
    }

    #[test]
    fn views_start_from_the_mark_their_bucket_picks() {
        // Marks at 0, 200, 250, 500 and 3800 s of a 1 h window (120 s
        // buckets), each with capex equal to its time in seconds.
        let mut w = Windows::default();
        w.configure(&[("1h".into(), 3600)]);
        w.by_label.get_mut("1h").unwrap().marks = [0, 200, 250, 500, 3800]
            .iter()
            .map(|s| (t(*s), totals(*s as f64, 0.0)))
            .collect();
        let view = |now: i64| {
            let v = w.views(
                t(now),
                &totals(now as f64, 0.0),
                true,
                &RoiWeights::default(),
                &BTreeMap::new(),
                &BTreeMap::new(),
            );
            (v[0].span_secs, v[0].cost)
        };
        // now 3900: from 250, 3650 s and 3650 of capex.
        assert_eq!(view(3900), (3650.0, 3650.0));
        // now 4000: 250 is more than a bucket before 400: from 500.
        assert_eq!(view(4000), (3500.0, 3500.0));
        // No benefit weights: no benefit score.
        let v = w.views(
            t(4000),
            &totals(4000.0, 0.0),
            true,
            &RoiWeights::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(v[0].benefit_score, None);
    }

    #[test]
    fn the_roi_baseline_is_an_ewma_fed_where_the_window_covers_its_length() {
        // 30 d window: buckets of 86 400 s; time constant max(1 d, 4
        // buckets) = 345 600 s; alpha = 86 400 / 345 600 = 0.25.
        let d30 = 2_592_000;
        let mut w = Windows::default();
        w.configure(&[("30d".into(), d30)]);
        w.observe(t(0), &totals(0.0, 0.0), true);
        // At 30 d: cost 100, value 200, ROI (200 - 100) / 100 = 1; the
        // first ROI is the baseline.
        w.observe(t(d30), &totals(100.0, 200.0), true);
        assert_eq!(w.by_label["30d"].baseline_roi, Some(1.0));
        // One bucket later, from the same mark (31 d = window + one
        // bucket): cost 200, value 0, ROI -1; 1 + 0.25 * (-1 - 1) = 0.5.
        w.observe(t(d30 + 86_400), &totals(200.0, 0.0), true);
        assert_eq!(w.by_label["30d"].baseline_roi, Some(0.5));
        // Without a value source, no ROI feeds the baseline.
        let mut w = Windows::default();
        w.configure(&[("30d".into(), d30)]);
        w.observe(t(0), &totals(0.0, 0.0), false);
        w.observe(t(d30), &totals(100.0, 200.0), false);
        assert_eq!(w.by_label["30d"].baseline_roi, None);
        // A mark more than a bucket older than the window (roimon was
        // stopped for two days): not a window's worth, no baseline.
        let mut w = Windows::default();
        w.configure(&[("30d".into(), d30)]);
        w.observe(t(0), &totals(0.0, 0.0), true);
        w.observe(t(d30 + 2 * 86_400), &totals(100.0, 200.0), true);
        assert_eq!(w.by_label["30d"].baseline_roi, None);
        // Less than the window: none either.
        let mut w = Windows::default();
        w.configure(&[("30d".into(), d30)]);
        w.observe(t(0), &totals(0.0, 0.0), true);
        w.observe(t(d30 - 86_400), &totals(100.0, 200.0), true);
        assert_eq!(w.by_label["30d"].baseline_roi, None);
    }

    #[test]
    fn more_marks_than_the_cap_are_cut_to_the_newest_32_at_the_next_boundary() {
        // A 100 s window (3 s buckets) restored with 39 marks 3 s apart,
        // 100, 103, ... 214 (a checkpoint kept with more buckets).
        let mut w = Windows::default();
        w.configure(&[("100s".into(), 100)]);
        w.by_label.get_mut("100s").unwrap().marks = (0..39)
            .map(|i| (t(100 + 3 * i), Totals::default()))
            .collect();
        // At 217: 40 marks; the latest at or before 217 - 100 = 117 is 115,
        // so 115, 118, ... 217 remain (35), cut to the newest 32: 124 on.
        w.observe(t(217), &Totals::default(), false);
        let marks = &w.by_label["100s"].marks;
        assert_eq!(marks.len(), 32);
        assert_eq!(marks[0].0, t(124));
        assert_eq!(marks[31].0, t(217));
    }
}
