//! A fast allocation to start the integer programme from: cover the floors
//! at the cheapest cost per token, add GPUs while one pays, then move single
//! GPUs (add, remove, move between workloads or types) while that improves.
//! It gives the branch and bound an incumbent from the start (so a time
//! limit always returns a good plan) and polishes what the search returns.

use crate::model::Instance;
use crate::solve::{Col, Goal, Limits};
use std::time::Instant;

/// Per-hour weights of a goal in maximising form: α per token/s, β per GPU.
fn weights(goal: Goal, col: &Col) -> (f64, f64) {
    match goal {
        Goal::Profit => (col.a - col.c, col.b),
        Goal::Cost | Goal::Feasible => (-col.c, col.b),
        Goal::Param(q) => (col.a - q * col.c, q * col.b),
        Goal::Watts => (-col.jpt, col.idle),
    }
}

/// The search state: GPUs and tokens per column, per-hour totals.
struct State<'a> {
    inst: &'a Instance,
    cols: &'a [Col],
    limits: &'a Limits,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    /// Columns of each workload, best α first.
    by_w: Vec<Vec<usize>>,
    n: Vec<u32>,
    s: Vec<f64>,
    used: Vec<u64>,
}

/// Per-hour value, cost and IT watts of some columns' (n, s).
#[derive(Clone, Copy, Default)]
struct Sums {
    obj: f64,
    value: f64,
    cost: f64,
    watts: f64,
}

impl Sums {
    fn add(&mut self, col: &Col, alpha: f64, beta: f64, n: u32, s: f64, sign: f64) {
        let nf = f64::from(n);
        self.obj += sign * (alpha * s - beta * nf);
        self.value += sign * col.a * s;
        self.cost += sign * (col.b * nf + col.c * s);
        self.watts += sign * (col.idle * nf + col.jpt * s);
    }
}

impl<'a> State<'a> {
    fn new(inst: &'a Instance, cols: &'a [Col], limits: &'a Limits, goal: Goal) -> Self {
        let (alpha, beta): (Vec<f64>, Vec<f64>) = cols.iter().map(|c| weights(goal, c)).unzip();
        let mut by_w = vec![Vec::new(); inst.workloads.len()];
        for (k, c) in cols.iter().enumerate() {
            by_w[c.w].push(k);
        }
        for ks in &mut by_w {
            ks.sort_by(|&x, &y| alpha[y].total_cmp(&alpha[x]).then(x.cmp(&y)));
        }
        Self {
            inst,
            cols,
            limits,
            alpha,
            beta,
            by_w,
            n: vec![0; cols.len()],
            s: vec![0.0; cols.len()],
            used: vec![0; inst.gpus.len()],
        }
    }

    fn floor(&self, w: usize) -> f64 {
        let wl = &self.inst.workloads[w];
        if self.limits.floors[w] {
            wl.min_served * wl.demand
        } else {
            0.0
        }
    }

    /// Serves workload `w` best for its GPUs `n`: tokens on the columns of
    /// highest α first, up to demand while α > 0 and up to the floor always.
    /// Returns the tokens per column (in `by_w[w]` order) and the sums.
    fn serve(&self, w: usize, n: &dyn Fn(usize) -> u32) -> (Vec<f64>, Sums, bool) {
        let demand = self.inst.workloads[w].demand;
        let floor = self.floor(w);
        let mut served = 0.0;
        let mut out = Vec::with_capacity(self.by_w[w].len());
        let mut sums = Sums::default();
        for &k in &self.by_w[w] {
            let col = &self.cols[k];
            let cap = col.tps * f64::from(n(k));
            let want = if self.alpha[k] > 0.0 {
                demand - served
            } else {
                (floor - served).max(0.0)
            };
            let take = cap.min(want).max(0.0);
            served += take;
            out.push(take);
            sums.add(col, self.alpha[k], self.beta[k], n(k), take, 1.0);
        }
        let ok = served >= floor * (1.0 - 1e-12);
        (out, sums, ok)
    }

    fn sums_of(&self, w: usize) -> Sums {
        let mut s = Sums::default();
        for &k in &self.by_w[w] {
            s.add(
                &self.cols[k],
                self.alpha[k],
                self.beta[k],
                self.n[k],
                self.s[k],
                1.0,
            );
        }
        s
    }

    fn totals(&self) -> Sums {
        let mut t = Sums::default();
        for w in 0..self.inst.workloads.len() {
            let s = self.sums_of(w);
            t.obj += s.obj;
            t.value += s.value;
            t.cost += s.cost;
            t.watts += s.watts;
        }
        t
    }

    fn limits_hold(&self, t: &Sums) -> bool {
        let inst = self.inst;
        let slack = 1e-9 * t.value.abs().max(t.cost.abs()).max(1.0);
        if let Some(b) = self.limits.budget {
            if t.cost > b / inst.hours + slack {
                return false;
            }
        }
        if let Some(p) = self.limits.power_cap_kw {
            if t.watts > p * 1000.0 / inst.pue * (1.0 + 1e-12) {
                return false;
            }
        }
        if let (Some(e), Some(carbon)) = (self.limits.emissions_cap_kg, inst.carbon_g_per_kwh) {
            if carbon > 0.0 && t.watts > e * 1e6 / (inst.hours * inst.pue * carbon) * (1.0 + 1e-12)
            {
                return false;
            }
        }
        if let Some(r) = self.limits.min_roi {
            if t.value - (1.0 + r) * t.cost < -slack {
                return false;
            }
        }
        if let Some(q) = self.limits.ratio_floor {
            if t.value - q * t.cost < -slack {
                return false;
            }
        }
        true
    }

    /// Evaluates changing GPUs by `delta` (column, ±1) pairs: `None` when
    /// it breaks a bound, the inventory, a floor or a limit; else the gain
    /// in the objective, the new totals and the re-served workloads.
    #[allow(clippy::type_complexity)]
    fn eval_move(
        &self,
        delta: &[(usize, i64)],
        total: &Sums,
        check_limits: bool,
    ) -> Option<(f64, Sums, Vec<(usize, Vec<f64>)>)> {
        for &(k, d) in delta {
            let nk = i64::from(self.n[k]) + d;
            if nk < 0 || nk > i64::from(self.cols[k].ub) {
                return None;
            }
        }
        let mut used: Vec<(usize, i64)> = Vec::with_capacity(2);
        for &(k, d) in delta {
            let g = self.cols[k].g;
            if let Some(e) = used.iter_mut().find(|(x, _)| *x == g) {
                e.1 += d;
            } else {
                used.push((g, d));
            }
        }
        for &(g, d) in &used {
            let after = i64::try_from(self.used[g]).unwrap_or(i64::MAX) + d;
            if after > i64::from(self.inst.gpus[g].count) {
                return None;
            }
        }
        let n_of = |k: usize| -> u32 {
            let d: i64 = delta.iter().filter(|(x, _)| *x == k).map(|(_, d)| d).sum();
            u32::try_from(i64::from(self.n[k]) + d).unwrap_or(0)
        };
        let mut new_total = *total;
        let mut served = Vec::with_capacity(2);
        for (i, &(k, _)) in delta.iter().enumerate() {
            let w = self.cols[k].w;
            if delta[..i].iter().any(|&(x, _)| self.cols[x].w == w) {
                continue;
            }
            let old = self.sums_of(w);
            let (s, new, ok) = self.serve(w, &n_of);
            if !ok {
                return None;
            }
            new_total.obj += new.obj - old.obj;
            new_total.value += new.value - old.value;
            new_total.cost += new.cost - old.cost;
            new_total.watts += new.watts - old.watts;
            served.push((w, s));
        }
        if check_limits && !self.limits_hold(&new_total) {
            return None;
        }
        Some((new_total.obj - total.obj, new_total, served))
    }

    fn apply(
        &mut self,
        delta: &[(usize, i64)],
        total: &mut Sums,
        new_total: Sums,
        served: Vec<(usize, Vec<f64>)>,
    ) {
        for &(k, d) in delta {
            self.n[k] = u32::try_from(i64::from(self.n[k]) + d).unwrap_or(0);
            let g = self.cols[k].g;
            self.used[g] = u64::try_from(i64::try_from(self.used[g]).unwrap_or(0) + d).unwrap_or(0);
        }
        for (w, s) in served {
            for (i, &k) in self.by_w[w].iter().enumerate() {
                self.s[k] = s[i];
            }
        }
        *total = new_total;
    }

    /// Applies `delta` when it improves the objective; says whether it did.
    fn try_move(&mut self, delta: &[(usize, i64)], total: &mut Sums) -> bool {
        let eps = 1e-9 * total.obj.abs().max(1.0);
        match self.eval_move(delta, total, true) {
            Some((gain, new_total, served)) if gain > eps => {
                self.apply(delta, total, new_total, served);
                true
            }
            _ => false,
        }
    }

    /// Covers every floor, cheapest cost per token first.
    /// Not bounded by the deadline: it is linear in the GPUs the floors
    /// need, and without it a short time limit could leave no plan at all.
    fn cover_floors(&mut self, total: &mut Sums) -> bool {
        let mut ws: Vec<usize> = (0..self.inst.workloads.len())
            .filter(|&w| self.floor(w) > 0.0)
            .collect();
        ws.sort_by(|&x, &y| self.floor(y).total_cmp(&self.floor(x)).then(x.cmp(&y)));
        for w in ws {
            loop {
                let served: f64 = self.by_w[w].iter().map(|&k| self.s[k]).sum();
                if served >= self.floor(w) * (1.0 - 1e-12) {
                    break;
                }
                // Cheapest column with a GPU left, per token it adds.
                let mut best: Option<(f64, usize)> = None;
                for &k in &self.by_w[w] {
                    let col = &self.cols[k];
                    if self.n[k] >= col.ub
                        || self.used[col.g] >= u64::from(self.inst.gpus[col.g].count)
                    {
                        continue;
                    }
                    let per_token = self.beta[k] / col.tps - self.alpha[k];
                    if best.is_none_or(|(b, _)| per_token < b) {
                        best = Some((per_token, k));
                    }
                }
                let Some((_, k)) = best else {
                    return false;
                };
                // Forced: the floor is not met yet, so `serve` says not ok;
                // apply directly.
                self.n[k] += 1;
                self.used[self.cols[k].g] += 1;
                let n = self.n.clone();
                let (s, _, _) = self.serve(w, &|k| n[k]);
                for (i, &kk) in self.by_w[w].iter().enumerate() {
                    self.s[kk] = s[i];
                }
            }
        }
        *total = self.totals();
        true
    }

    /// Single-GPU moves until none improves (or `rounds` run out).
    fn improve(&mut self, total: &mut Sums, rounds: usize, deadline: Instant) {
        let m = self.cols.len();
        // Columns per GPU type, for moves between workloads.
        let mut by_g = vec![Vec::new(); self.inst.gpus.len()];
        for (k, c) in self.cols.iter().enumerate() {
            by_g[c.g].push(k);
        }
        for _ in 0..rounds {
            let mut improved = false;
            // Add the best GPU repeatedly (the greedy part).
            loop {
                if Instant::now() >= deadline {
                    return;
                }
                let eps = 1e-9 * total.obj.abs().max(1.0);
                let mut best: Option<(f64, usize)> = None;
                for k in 0..m {
                    if let Some((gain, _, _)) = self.eval_move(&[(k, 1)], total, true) {
                        if gain > eps && best.is_none_or(|(b, _)| gain > b) {
                            best = Some((gain, k));
                        }
                    }
                }
                let Some((_, k)) = best else { break };
                if self.try_move(&[(k, 1)], total) {
                    improved = true;
                } else {
                    break;
                }
            }
            for k in 0..m {
                if k % 1024 == 0 && Instant::now() >= deadline {
                    return;
                }
                if self.n[k] > 0 && self.try_move(&[(k, -1)], total) {
                    improved = true;
                }
            }
            // Move one GPU of a type from one workload to another.
            for ks in &by_g {
                for &from in ks {
                    if self.n[from] == 0 {
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return;
                    }
                    for &to in ks {
                        if to != from
                            && self.n[from] > 0
                            && self.try_move(&[(from, -1), (to, 1)], total)
                        {
                            improved = true;
                        }
                    }
                }
            }
            // Move one GPU of a workload from one type to another.
            for w in 0..self.by_w.len() {
                if w % 64 == 0 && Instant::now() >= deadline {
                    return;
                }
                let ks = self.by_w[w].clone();
                for &from in &ks {
                    for &to in &ks {
                        if to != from
                            && self.n[from] > 0
                            && self.try_move(&[(from, -1), (to, 1)], total)
                        {
                            improved = true;
                        }
                    }
                }
            }
            if !improved || Instant::now() >= deadline {
                break;
            }
        }
    }
}

/// An allocation (GPUs and tokens/s per column) meeting every constraint
/// of `limits`, good for `goal`, or `None` when the heuristic finds none.
/// `start` seeds the search (e.g. what the branch and bound returned).
pub(crate) fn allocate(
    inst: &Instance,
    cols: &[Col],
    limits: &Limits,
    goal: Goal,
    start: Option<(&[u32], &[f64])>,
    deadline: Instant,
) -> Option<Vec<(u32, f64)>> {
    let mut st = State::new(inst, cols, limits, goal);
    let mut total = Sums::default();
    if let Some((n, _)) = start {
        for (k, &nk) in n.iter().enumerate() {
            let g = cols[k].g;
            let room = u64::from(inst.gpus[g].count).saturating_sub(st.used[g]);
            let nk = u64::from(nk.min(cols[k].ub)).min(room);
            st.n[k] = u32::try_from(nk).unwrap_or(0);
            st.used[g] += nk;
        }
        for w in 0..inst.workloads.len() {
            let nn = st.n.clone();
            let (s, _, _) = st.serve(w, &|k| nn[k]);
            for (i, &k) in st.by_w[w].iter().enumerate() {
                st.s[k] = s[i];
            }
        }
    }
    if !st.cover_floors(&mut total) {
        return None;
    }
    if !st.limits_hold(&total) {
        // Shed GPUs that cost the most per unit of objective until the
        // limits hold (floors kept), then go on from there.
        loop {
            let mut best: Option<(f64, usize)> = None;
            for k in 0..cols.len() {
                if st.n[k] == 0 {
                    continue;
                }
                if let Some((gain, _, _)) = st.eval_move(&[(k, -1)], &total, false) {
                    if best.is_none_or(|(b, _)| gain > b) {
                        best = Some((gain, k));
                    }
                }
            }
            let (_, k) = best?;
            st.n[k] -= 1;
            st.used[cols[k].g] -= 1;
            let w = cols[k].w;
            let nn = st.n.clone();
            let (s, _, _) = st.serve(w, &|k| nn[k]);
            for (i, &kk) in st.by_w[w].iter().enumerate() {
                st.s[kk] = s[i];
            }
            total = st.totals();
            if st.limits_hold(&total) {
                break;
            }
        }
    }
    st.improve(&mut total, 50, deadline);
    Some(st.n.iter().copied().zip(st.s.iter().copied()).collect())
}

/// The goal's objective per hour of an allocation (n, s per column).
pub(crate) fn objective(cols: &[Col], goal: Goal, x: &[(u32, f64)]) -> f64 {
    cols.iter()
        .zip(x)
        .map(|(c, &(n, s))| {
            let (a, b) = weights(goal, c);
            a * s - b * f64::from(n)
        })
        .sum()
}
