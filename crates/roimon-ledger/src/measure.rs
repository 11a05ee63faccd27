//! The planner's coefficients measured from one or more ledgers (a node's
//! own, or several collected from nodes) over a window: the price paid per
//! facility kWh, carbon intensity, an owner's demand (95th percentile of
//! its hourly token rate), value per million tokens, and per GPU model
//! throughput, energy per token above idle and cost per GPU-hour. Each
//! figure carries its window, its sample count and the spread (P10, P90)
//! of its hourly (for the price: daily) samples. The definitions are in
//! `docs/planner.md`, "Coefficients from the ledger".
//!
//! Only closed rows of kind `hour` are samples (the open hour is partial;
//! opening balances, corrections, late and reset rows cover no one hour).
//! Tokens are booked per owner on value rows; they meet GPU-seconds on the
//! cost rows of the same ledger, node and hour.

use crate::store::{Error, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, params};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The newest ledger schema this reader knows (GPU model and GPU-seconds
/// came with version 4; older ledgers still give price, carbon, demand and
/// value).
const SCHEMA: i64 = 4;

/// One measured coefficient.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The coefficient.
    pub value: f64,
    /// The window it was measured over, `"<from>/<to>"` (RFC 3339).
    pub window: String,
    /// Hours behind it (node hours; for demand, hours of the fleet).
    pub samples: u64,
    /// 10th percentile of the hourly (price: daily) samples; `None` with
    /// fewer than two samples.
    pub p10: Option<f64>,
    /// 90th percentile of the same samples.
    pub p90: Option<f64>,
}

/// The figures of one closed hour row that the coefficients need.
#[derive(Debug, Clone)]
struct Row {
    /// Which ledger file (rows meet only rows of the same file).
    file: usize,
    hour: i64,
    node: String,
    gpu_uuid: String,
    team: String,
    workload: String,
    currency: String,
    gpu_joules: f64,
    facility_joules: f64,
    /// Energy cost − credit.
    energy_cost: f64,
    /// Capex + maintenance + staff.
    fixed_cost: f64,
    emissions_grams: f64,
    value: f64,
    /// Input + output tokens.
    tokens: f64,
    gpu_model: Option<String>,
    gpu_seconds: Option<f64>,
}

impl Row {
    fn is_value(&self) -> bool {
        self.gpu_uuid == crate::figures::VALUE_GPU
    }
}

/// The rows of one ledger file, node and hour.
type Group<'a> = Vec<&'a Row>;

/// Closed hour rows of one or more ledgers in `[from, to)`.
#[derive(Debug, Clone)]
pub struct Measure {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rows: Vec<Row>,
}

/// `"<from>/<to>"`, RFC 3339 in UTC.
pub fn window_string(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "{}/{}",
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Whether an owner `team`/`workload` is the planner's workload `name`:
/// `team/workload` names one workload (split at the first `/`), a name
/// without `/` every workload of that team.
pub fn owner_matches(name: &str, team: &str, workload: &str) -> bool {
    match name.split_once('/') {
        Some((t, w)) => t == team && w == workload,
        None => name == team,
    }
}

/// Whether a GPU model name as the GPU reports it (`NVIDIA H100 80GB
/// HBM3`) is of the planner's GPU `type` (`H100`): the type's words
/// (split at spaces, `-` and `_`, case ignored) appear one after the other
/// among the model's words. `H100` matches `NVIDIA H100 80GB HBM3` and
/// `NVIDIA H100 NVL`; `H100 NVL` only the latter; `A100` matches
/// `NVIDIA A100-SXM4-80GB` but not `NVIDIA A10`.
pub fn model_matches(model: &str, gpu_type: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (m, t) = (words(model), words(gpu_type));
    !t.is_empty() && m.windows(t.len()).any(|w| w == t.as_slice())
}

/// The `p`-quantile (0..1) of `v` by linear interpolation between the
/// closest ranks (rank `p · (n − 1)` of the sorted samples); `None` when
/// empty.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = p.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(s[lo] + (s[hi] - s[lo]) * (rank - lo as f64))
}

/// P10 and P90 of samples, when there are at least two.
fn spread(v: &[f64]) -> (Option<f64>, Option<f64>) {
    if v.len() < 2 {
        return (None, None);
    }
    (percentile(v, 0.10), percentile(v, 0.90))
}

fn fail(path: &Path, e: impl std::fmt::Display) -> Error {
    Error {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_file(path: &Path, file: usize, from: i64, to: i64) -> Result<Vec<Row>> {
    if !path.exists() {
        return Err(fail(path, "no ledger here"));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| fail(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| fail(path, e))?;
    if version < 1 {
        return Err(fail(path, "not a roimon ledger (no schema version)"));
    }
    if version > SCHEMA {
        return Err(fail(
            path,
            format!(
                "schema version {version} is newer than this roimon's ({SCHEMA}); use the newer roimon"
            ),
        ));
    }
    // Ledgers written before version 4 know no GPU model or GPU-seconds:
    // their rows are samples of price, carbon, demand and value only.
    let gpu_cols = if version >= 4 {
        "gpu_model, gpu_seconds"
    } else {
        "NULL, NULL"
    };
    let sql = format!(
        "SELECT hour_start, node, gpu_uuid, team, workload, currency, gpu_energy_joules, \
         facility_energy_joules, cost_energy - credit, cost_capex + cost_maintenance + cost_staff, \
         emissions_grams, value, input_tokens + output_tokens, {gpu_cols} FROM ledger \
         WHERE kind = 'hour' AND closed = 1 AND hour_start >= ?1 AND hour_start < ?2 \
         ORDER BY hour_start, id"
    );
    let mut st = conn.prepare(&sql).map_err(|e| fail(path, e))?;
    let rows = st
        .query_map(params![from, to], |r| {
            Ok(Row {
                file,
                hour: r.get(0)?,
                node: r.get(1)?,
                gpu_uuid: r.get(2)?,
                team: r.get(3)?,
                workload: r.get(4)?,
                currency: r.get(5)?,
                gpu_joules: r.get(6)?,
                facility_joules: r.get(7)?,
                energy_cost: r.get(8)?,
                fixed_cost: r.get(9)?,
                emissions_grams: r.get(10)?,
                value: r.get(11)?,
                tokens: r.get(12)?,
                gpu_model: r.get(13)?,
                gpu_seconds: r.get(14)?,
            })
        })
        .map_err(|e| fail(path, e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| fail(path, e))
}

/// What one workload's rows of one node hour on one GPU type add up to.
#[derive(Debug, Clone, Copy, Default)]
struct OnType {
    /// The workload's tokens of the node hour.
    tokens: f64,
    /// Its GPU-seconds on GPUs of the type.
    seconds: f64,
    /// Its GPU-seconds on every GPU.
    all_seconds: f64,
    /// The GPUs' own energy of its rows on the type, J.
    joules: f64,
}

impl OnType {
    /// The node hour's tokens served on the type: split by GPU-seconds
    /// when the workload ran on several models in that hour.
    fn type_tokens(&self) -> f64 {
        if self.all_seconds > 0.0 {
            self.tokens * self.seconds / self.all_seconds
        } else {
            0.0
        }
    }
}

impl Measure {
    /// Read the closed hour rows whose hour starts in `[from, to)` from
    /// every ledger in `paths` (read-only; safe while a daemon writes).
    /// The same node hour in two files (one ledger given twice) is
    /// refused.
    pub fn open(paths: &[PathBuf], from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self> {
        let Some(first) = paths.first() else {
            return Err(fail(Path::new("."), "no ledger given"));
        };
        if from >= to {
            return Err(fail(
                first,
                format!(
                    "the window {} is empty: --from must lie before --to",
                    window_string(from, to)
                ),
            ));
        }
        let mut rows = Vec::new();
        let mut seen: HashMap<(i64, String, String, String, String), usize> = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            for r in read_file(p, i, from.timestamp(), to.timestamp())? {
                let key = (
                    r.hour,
                    r.node.clone(),
                    r.gpu_uuid.clone(),
                    r.team.clone(),
                    r.workload.clone(),
                );
                if let Some(j) = seen.insert(key, i)
                    && j != i
                {
                    return Err(fail(
                        p,
                        format!(
                            "node {} hour {} is also in {}: the same node's ledger given twice?",
                            r.node,
                            DateTime::from_timestamp(r.hour, 0).unwrap_or_default(),
                            paths[j].display()
                        ),
                    ));
                }
                rows.push(r);
            }
        }
        Ok(Self { from, to, rows })
    }

    /// The window, `"<from>/<to>"`.
    pub fn window(&self) -> String {
        window_string(self.from, self.to)
    }

    /// The currencies of the rows in the window.
    pub fn currencies(&self) -> BTreeSet<String> {
        self.rows.iter().map(|r| r.currency.clone()).collect()
    }

    /// The GPU models the rows in the window know.
    pub fn models(&self) -> BTreeSet<String> {
        self.rows
            .iter()
            .filter_map(|r| r.gpu_model.clone())
            .collect()
    }

    /// Why a coefficient has no figure: the window and the reason (the
    /// caller names the coefficient).
    fn no_data(&self, why: &str) -> String {
        format!(
            "no data in the ledger from {} to {} ({why})",
            self.from.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.to.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    fn figure(&self, value: f64, samples: usize, spread_of: &[f64]) -> Figure {
        let (p10, p90) = spread(spread_of);
        Figure {
            value,
            window: self.window(),
            samples: samples as u64,
            p10,
            p90,
        }
    }

    /// Rows by (file, node, hour).
    fn groups(&self) -> BTreeMap<(usize, &str, i64), Group<'_>> {
        let mut g: BTreeMap<(usize, &str, i64), Group<'_>> = BTreeMap::new();
        for r in &self.rows {
            g.entry((r.file, r.node.as_str(), r.hour))
                .or_default()
                .push(r);
        }
        g
    }

    /// Price paid per facility kWh: Σ (energy cost − credit) ÷ Σ facility
    /// kWh. Samples: node hours that drew energy; spread: the daily prices.
    pub fn price_per_kwh(&self) -> std::result::Result<Figure, String> {
        let (mut cost, mut kwh, mut n) = (0.0, 0.0, 0);
        for rows in self.groups().values() {
            let e: f64 = rows.iter().map(|r| r.facility_joules).sum::<f64>() / 3.6e6;
            if e > 0.0 {
                n += 1;
                kwh += e;
                cost += rows.iter().map(|r| r.energy_cost).sum::<f64>();
            }
        }
        if n == 0 {
            return Err(self.no_data("no facility energy was booked"));
        }
        let daily = self.daily_mean_prices(self.from, self.to);
        Ok(self.figure(cost / kwh, n, &daily))
    }

    /// Each UTC day's price paid, Σ (energy cost − credit) ÷ Σ facility
    /// kWh of the rows whose hour starts that day in `[from, to)` (within
    /// this measure's window), in day order; days without energy are left
    /// out.
    pub fn daily_mean_prices(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<f64> {
        let (from, to) = (from.timestamp(), to.timestamp());
        let mut days: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
        for r in self.rows.iter().filter(|r| r.hour >= from && r.hour < to) {
            let d = days.entry(r.hour.div_euclid(86_400)).or_default();
            d.0 += r.energy_cost;
            d.1 += r.facility_joules / 3.6e6;
        }
        days.into_values()
            .filter(|(_, kwh)| *kwh > 0.0)
            .map(|(cost, kwh)| cost / kwh)
            .collect()
    }

    /// Grid carbon intensity as booked, gCO2e per facility kWh: Σ
    /// emissions ÷ Σ facility kWh of the node hours that booked emissions.
    pub fn carbon_g_per_kwh(&self) -> std::result::Result<Figure, String> {
        let (mut grams, mut kwh) = (0.0, 0.0);
        let mut hourly = Vec::new();
        for rows in self.groups().values() {
            let g: f64 = rows.iter().map(|r| r.emissions_grams).sum();
            let e: f64 = rows.iter().map(|r| r.facility_joules).sum::<f64>() / 3.6e6;
            if g > 0.0 && e > 0.0 {
                grams += g;
                kwh += e;
                hourly.push(g / e);
            }
        }
        if hourly.is_empty() {
            return Err(self.no_data("no emissions were booked: is [carbon] configured?"));
        }
        Ok(self.figure(grams / kwh, hourly.len(), &hourly))
    }

    fn owner_rows<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows
            .iter()
            .filter(move |r| owner_matches(name, &r.team, &r.workload))
    }

    fn no_owner(&self, name: &str) -> String {
        let mut owners: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.is_value() && r.tokens > 0.0)
            .map(|r| format!("{}/{}", r.team, r.workload))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if owners.is_empty() {
            owners.push("none".into());
        }
        self.no_data(&format!(
            "{name} served no tokens; owners that did: {}",
            owners.join(", ")
        ))
    }

    /// Demand of workload `name`: the 95th percentile of its hourly token
    /// rate (tokens of the hour, all ledgers together, ÷ 3600 s) over the
    /// hours the ledgers hold (an hour in which it served nothing counts
    /// as 0). Samples: those hours.
    pub fn demand_tokens_per_second(&self, name: &str) -> std::result::Result<Figure, String> {
        let mut hours: BTreeMap<i64, f64> = self.rows.iter().map(|r| (r.hour, 0.0)).collect();
        let mut any = false;
        for r in self.owner_rows(name).filter(|r| r.is_value()) {
            *hours.entry(r.hour).or_default() += r.tokens;
            any |= r.tokens > 0.0;
        }
        if !any {
            return Err(self.no_owner(name));
        }
        let rates: Vec<f64> = hours.values().map(|t| t / 3600.0).collect();
        let p95 = percentile(&rates, 0.95).unwrap_or(0.0);
        Ok(self.figure(p95, rates.len(), &rates))
    }

    /// Value per million tokens of workload `name`: Σ value ÷ Σ tokens ×
    /// 1e6 over its value rows. Samples: its node hours with tokens.
    pub fn value_per_million_tokens(&self, name: &str) -> std::result::Result<Figure, String> {
        let mut groups: BTreeMap<(usize, &str, i64), (f64, f64)> = BTreeMap::new();
        for r in self.owner_rows(name).filter(|r| r.is_value()) {
            let g = groups.entry((r.file, r.node.as_str(), r.hour)).or_default();
            g.0 += r.value;
            g.1 += r.tokens;
        }
        let value: f64 = groups.values().map(|g| g.0).sum();
        let tokens: f64 = groups.values().map(|g| g.1).sum();
        if tokens <= 0.0 {
            return Err(self.no_owner(name));
        }
        let hourly: Vec<f64> = groups
            .values()
            .filter(|g| g.1 > 0.0)
            .map(|g| g.0 / g.1 * 1e6)
            .collect();
        Ok(self.figure(value / tokens * 1e6, hourly.len(), &hourly))
    }

    /// Workload `name` on GPUs of `gpu_type`, per node hour in which it
    /// served tokens and every one of its GPU rows knows its GPU-seconds.
    fn on_type(&self, name: &str, gpu_type: &str) -> Vec<OnType> {
        let mut out = Vec::new();
        for rows in self.groups().values() {
            let mine: Vec<&&Row> = rows
                .iter()
                .filter(|r| owner_matches(name, &r.team, &r.workload))
                .collect();
            let tokens: f64 = mine.iter().filter(|r| r.is_value()).map(|r| r.tokens).sum();
            let gpu_rows: Vec<&&&Row> = mine
                .iter()
                .filter(|r| !r.is_value() && r.gpu_uuid != roimon_core::engine::NO_GPU)
                .collect();
            if tokens <= 0.0 || gpu_rows.iter().any(|r| r.gpu_seconds.is_none()) {
                continue;
            }
            let mut o = OnType {
                tokens,
                ..Default::default()
            };
            for r in gpu_rows {
                let s = r.gpu_seconds.unwrap_or(0.0);
                o.all_seconds += s;
                if r.gpu_model
                    .as_deref()
                    .is_some_and(|m| model_matches(m, gpu_type))
                {
                    o.seconds += s;
                    o.joules += r.gpu_joules;
                }
            }
            if o.seconds > 0.0 {
                out.push(o);
            }
        }
        out
    }

    fn no_type_data(&self, name: &str, gpu_type: &str) -> String {
        let models = self.models();
        let has_type = models.iter().any(|m| model_matches(m, gpu_type));
        let why = if models.is_empty() {
            "its rows know no GPU model: written before the ledger recorded models (schema 4)"
                .to_string()
        } else if !has_type {
            format!(
                "no GPU model matches type {gpu_type}; the models there: {}",
                models.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "no hour in which {name} served tokens on a {gpu_type} with its GPU-seconds known"
            )
        };
        self.no_data(&why)
    }

    /// Throughput of workload `name` per GPU of `gpu_type`, tokens/s: Σ
    /// tokens ÷ Σ GPU-seconds of its rows on GPUs of that model. Tokens
    /// meet GPU-seconds in the rows of the same ledger, node and hour; on a
    /// node hour where the workload ran on several models its tokens are
    /// split by their GPU-seconds.
    pub fn tokens_per_second(
        &self,
        name: &str,
        gpu_type: &str,
    ) -> std::result::Result<Figure, String> {
        let s = self.on_type(name, gpu_type);
        if s.is_empty() {
            return Err(self.no_type_data(name, gpu_type));
        }
        let tokens: f64 = s.iter().map(OnType::type_tokens).sum();
        let secs: f64 = s.iter().map(|o| o.seconds).sum();
        let hourly: Vec<f64> = s.iter().map(|o| o.type_tokens() / o.seconds).collect();
        Ok(self.figure(tokens / secs, s.len(), &hourly))
    }

    /// Energy per token above idle of workload `name` on `gpu_type`, J:
    /// (Σ GPU energy − `idle_watts` × Σ GPU-seconds) ÷ Σ tokens over the
    /// same node hours as [`Measure::tokens_per_second`]. A negative
    /// result (the GPUs drew less than `idle_watts` on average) is refused.
    pub fn joules_per_token(
        &self,
        name: &str,
        gpu_type: &str,
        idle_watts: f64,
    ) -> std::result::Result<Figure, String> {
        let s = self.on_type(name, gpu_type);
        if s.is_empty() {
            return Err(self.no_type_data(name, gpu_type));
        }
        let above = |o: &OnType| o.joules - idle_watts * o.seconds;
        let joules: f64 = s.iter().map(above).sum();
        let tokens: f64 = s.iter().map(OnType::type_tokens).sum();
        if joules < 0.0 {
            let secs: f64 = s.iter().map(|o| o.seconds).sum();
            let watts = s.iter().map(|o| o.joules).sum::<f64>() / secs;
            return Err(format!(
                "the {gpu_type} GPUs of {name} drew {watts:.1} W on average from {} to {}, less than idle_watts = {idle_watts}: energy above idle would be negative; check idle_watts",
                self.from.to_rfc3339_opts(SecondsFormat::Secs, true),
                self.to.to_rfc3339_opts(SecondsFormat::Secs, true)
            ));
        }
        let hourly: Vec<f64> = s.iter().map(|o| above(o) / o.type_tokens()).collect();
        Ok(self.figure(joules / tokens, s.len(), &hourly))
    }

    /// Cost per GPU-hour of `gpu_type`: Σ (capex + maintenance + staff) ÷
    /// Σ GPU-hours of the rows (every owner) on GPUs of that model that
    /// know their GPU-seconds. Samples: node hours with GPU-seconds.
    pub fn cost_per_gpu_hour(&self, gpu_type: &str) -> std::result::Result<Figure, String> {
        let (mut cost, mut secs) = (0.0, 0.0);
        let mut hourly = Vec::new();
        for rows in self.groups().values() {
            let (mut c, mut s) = (0.0, 0.0);
            for r in rows.iter().filter(|r| {
                r.gpu_seconds.is_some()
                    && r.gpu_model
                        .as_deref()
                        .is_some_and(|m| model_matches(m, gpu_type))
            }) {
                c += r.fixed_cost;
                s += r.gpu_seconds.unwrap_or(0.0);
            }
            cost += c;
            secs += s;
            if s > 0.0 {
                hourly.push(c / (s / 3600.0));
            }
        }
        if secs <= 0.0 {
            let models = self.models();
            let why = if models.iter().any(|m| model_matches(m, gpu_type)) {
                format!("no {gpu_type} GPU-seconds were counted")
            } else if models.is_empty() {
                "its rows know no GPU model: written before the ledger recorded models (schema 4)"
                    .into()
            } else {
                format!(
                    "no GPU model matches type {gpu_type}; the models there: {}",
                    models.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(self.no_data(&why));
        }
        Ok(self.figure(cost / (secs / 3600.0), hourly.len(), &hourly))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_from_before_schema_4_still_gives_price_and_demand() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let c = Connection::open(&path).unwrap();
        for sql in &crate::schema::migrations()[..3] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 3).unwrap();
        let insert = "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, \
            closed, currency, price_source, written_at, gpu_energy_joules, \
            facility_energy_joules, cost_energy, cost_capex, value, input_tokens, output_tokens) \
            VALUES (?1, 'n', ?2, 's', 'c', 'hour', 1, 'EUR', 'static', 'x', ?3, ?4, ?5, ?6, ?7, ?8, 0)";
        let h = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        // 2 kWh for 0.5; 7200 tokens for 1.0.
        c.execute(
            insert,
            params![h.timestamp(), "GPU-a", 5.76e6, 7.2e6, 0.5, 3.6, 0.0, 0.0],
        )
        .unwrap();
        c.execute(
            insert,
            params![h.timestamp(), "value", 0.0, 0.0, 0.0, 0.0, 1.0, 7200.0],
        )
        .unwrap();
        drop(c);
        let m = Measure::open(&[path], h, h + chrono::Duration::days(1)).unwrap();
        assert_eq!(m.price_per_kwh().unwrap().value, 0.25);
        assert_eq!(m.demand_tokens_per_second("s/c").unwrap().value, 2.0);
        assert_eq!(
            m.value_per_million_tokens("s/c").unwrap().value,
            1e6 / 7200.0
        );
        let e = m.tokens_per_second("s/c", "H100").unwrap_err();
        assert!(e.contains("know no GPU model"), "{e}");
        assert!(
            m.cost_per_gpu_hour("H100")
                .unwrap_err()
                .contains("know no GPU model")
        );
    }

    #[test]
    fn gpu_types_match_model_names_word_by_word() {
        assert!(model_matches("NVIDIA H100 80GB HBM3", "H100"));
        assert!(model_matches("NVIDIA H100 80GB HBM3", "h100 80gb"));
        assert!(model_matches("NVIDIA H100 NVL", "H100"));
        assert!(!model_matches("NVIDIA H100 80GB HBM3", "H100 NVL"));
        assert!(model_matches("NVIDIA A100-SXM4-80GB", "A100"));
        assert!(model_matches(
            "NVIDIA A100-SXM4-80GB",
            "NVIDIA A100-SXM4-80GB"
        ));
        assert!(!model_matches("NVIDIA A10", "A100"));
        assert!(!model_matches("NVIDIA A100-SXM4-80GB", "A10"));
        assert!(!model_matches("NVIDIA A100", ""));
    }

    #[test]
    fn owners_are_team_slash_workload_or_a_whole_team() {
        assert!(owner_matches("search/chat", "search", "chat"));
        assert!(!owner_matches("search/chat", "search", "embed"));
        assert!(owner_matches("search", "search", "embed"));
        assert!(owner_matches("a/b/c", "a", "b/c"));
    }

    #[test]
    fn percentiles_interpolate_between_the_closest_ranks() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(percentile(&v, 0.5), Some(3.0));
        // rank 0.95 × 4 = 3.8: 4 + 0.8 × (5 − 4).
        assert!((percentile(&v, 0.95).unwrap() - 4.8).abs() < 1e-12);
        assert!((percentile(&v, 0.10).unwrap() - 1.4).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.9), Some(7.0));
        assert_eq!(percentile(&[], 0.9), None);
        assert_eq!(spread(&[7.0]), (None, None));
    }
}
