//! What roimon writes to InfluxDB (documented in `docs/influxdb.md`): per
//! sample, `roimon_gpu`, `roimon_node` and `roimon_value` points stamped
//! with the sample's wall time; per closed ledger hour, `roimon_ledger`
//! points stamped with the hour's start, so a hour sent again overwrites
//! itself. Counters are written as totals (like `_total` on `/metrics`), so
//! a lost point loses resolution, never money.

use crate::line::Point;
use roimon_core::units::Accumulator;
use roimon_core::{Component, Snapshot};

/// The sample measurements' names: a GPU's readings (tagged with its
/// owner of record).
pub const GPU: &str = "roimon_gpu";
/// Money, energy and emissions per (GPU, owner at accrual) row.
pub const GPU_COST: &str = "roimon_gpu_cost";
/// Node totals, price.
pub const NODE: &str = "roimon_node";
/// Value per owner and source.
pub const VALUE: &str = "roimon_value";
/// Closed ledger hours.
pub const LEDGER: &str = "roimon_ledger";

fn ns(at: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    at.timestamp_nanos_opt()
}

/// The points of one published snapshot, stamped with its sample time
/// (none before the first sample). `node` is the host name tag.
pub fn sample_points(s: &Snapshot, node: &str) -> Vec<Point> {
    let Some(ts) = s.at.and_then(ns) else {
        return Vec::new();
    };
    let c = &s.counters;
    let currency = s.price.currency.as_str();
    let mut out = Vec::with_capacity(s.gpus.len() + 2 + c.value.len());
    for (uuid, g) in &s.gpus {
        let r = &g.reading;
        let mut p = Point::new(GPU, ts)
            .tag("node", node)
            .tag("gpu_uuid", uuid)
            .tag("gpu", r.index.to_string())
            .tag("team", &g.owner.team)
            .tag("workload", &g.owner.workload)
            .tag("currency", currency);
        if let Some(w) = r.power {
            p = p.float("power_watts", w.0);
        }
        if let Some(e) = c.gpu_energy_joules.get(uuid) {
            p = p.float("energy_joules_total", e.total());
        }
        if let Some(u) = r.utilization {
            p = p.float("utilization_ratio", u);
        }
        if let Some(m) = r.memory_used_bytes {
            p = p.int("memory_used_bytes", i64::try_from(m).unwrap_or(i64::MAX));
        }
        if let Some(t) = r.temperature_celsius {
            p = p.float("temperature_celsius", t);
        }
        out.push(p);
    }
    // Money per row (GPU and the owner it accrued to), as on /metrics
    // (`roimon_gpu_cost_total`): with attribution by process a GPU's money
    // goes to the owners of what runs on it, not to its owner of record, so
    // the rows, not the GPU points, carry it. Rows of GPUs present now
    // (and of a GPU-less node); rows of a GPU gone keep their last point.
    for (key, row) in &c.rows {
        if !s.gpus.contains_key(&key.gpu_uuid) && key.gpu_uuid != roimon_core::engine::NO_GPU {
            continue;
        }
        let mut p = Point::new(GPU_COST, ts)
            .tag("node", node)
            .tag("gpu_uuid", &key.gpu_uuid)
            .tag("team", &key.team)
            .tag("workload", &key.workload)
            .tag("currency", currency);
        for k in Component::ALL {
            let v = row.cost.get(&k).map_or(0.0, Accumulator::total);
            p = p.float(format!("cost_{}_total", k.as_str()), v);
        }
        p = p
            .float("cost_total", row.cost_total())
            .float("credit_total", row.credit_total())
            .float("emissions_grams_total", row.emissions_grams.total())
            .float(
                "facility_energy_joules_total",
                row.facility_energy_joules.total(),
            );
        out.push(p);
    }

    let mut n = Point::new(NODE, ts)
        .tag("node", node)
        .tag("currency", currency)
        .tag("price_source", &s.price.source)
        .float("power_watts", s.facility_power_watts)
        .float(
            "facility_energy_joules_total",
            c.facility_energy_joules.total(),
        )
        .float("price_per_kwh", s.price.price_per_kwh)
        .float("pue", s.pue);
    if let Some(h) = s.host.as_ref().and_then(|h| h.power) {
        n = n.float("host_power_watts", h.0);
    }
    // `+ 0.0`: an empty sum is -0.0.
    let host_j = c
        .host_energy_joules
        .values()
        .map(Accumulator::total)
        .sum::<f64>()
        + 0.0;
    let gpu_j = c
        .gpu_energy_joules
        .values()
        .map(Accumulator::total)
        .sum::<f64>()
        + 0.0;
    let gpu_w = s
        .gpus
        .values()
        .filter_map(|g| g.reading.power)
        .map(|w| w.0)
        .sum::<f64>()
        + 0.0;
    n = n
        .float("gpu_power_watts", gpu_w)
        .float("gpu_energy_joules_total", gpu_j)
        .float("host_energy_joules_total", host_j);
    let mut cost = 0.0;
    for k in Component::ALL {
        let v = c.cost.get(&k).map_or(0.0, Accumulator::total);
        cost += v;
        n = n.float(format!("cost_{}_total", k.as_str()), v);
    }
    let credit = c.credit.values().map(Accumulator::total).sum::<f64>() + 0.0;
    n = n
        .float("cost_total", cost)
        .float("credit_total", credit)
        .float("value_total", c.value_total.total())
        .float("emissions_grams_total", c.emissions_grams.total());
    if let Some(cv) = &s.carbon {
        n = n.float("carbon_grams_per_kwh", cv.grams_per_kwh);
    }
    out.push(n);

    for (k, row) in &c.value {
        let (mut input, mut output, mut requests) = (0.0, 0.0, 0.0);
        for m in row.models.values() {
            input += m.input_tokens.total();
            output += m.output_tokens.total();
            requests += m.requests.total();
        }
        out.push(
            Point::new(VALUE, ts)
                .tag("node", node)
                .tag("team", &k.team)
                .tag("workload", &k.workload)
                .tag("source", &k.source)
                .tag("currency", currency)
                .float("value_total", row.value.total())
                .float("tokens_input_total", input)
                .float("tokens_output_total", output)
                .float("tokens_total", input + output)
                .float("requests_total", requests),
        );
    }
    out
}

/// One closed ledger hour of one (node, GPU, team, workload): the input
/// the ledger hands to the writer. Written as a `roimon_ledger` point at
/// the hour's start, so sending the same hour again (a restart, a
/// correction) overwrites it instead of adding to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourRow {
    /// The hour's start, seconds since the Unix epoch (UTC).
    pub hour_start: i64,
    /// Node (host name).
    pub node: String,
    /// GPU UUID (`none` for what no GPU carries).
    pub gpu_uuid: String,
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
    /// The ledger row's kind: `hour`, `opening` or `correction` (a tag, so
    /// a correction of an hour is its own series and does not overwrite
    /// the hour it corrects).
    pub kind: String,
    /// Currency of every money field.
    pub currency: String,
    /// GPU (IT) energy, kWh.
    pub energy_kwh: f64,
    /// Facility energy (× PUE), kWh.
    pub facility_energy_kwh: f64,
    /// Cost by component.
    pub cost_energy: f64,
    /// Hardware amortisation.
    pub cost_capex: f64,
    /// Maintenance.
    pub cost_maintenance: f64,
    /// Staff.
    pub cost_staff: f64,
    /// Carbon price × emissions.
    pub cost_carbon: f64,
    /// Sum of the components.
    pub cost_total: f64,
    /// Money received for energy at negative prices.
    pub credit: f64,
    /// Emissions, kg CO2e.
    pub emissions_kg: f64,
    /// Value produced.
    pub value: f64,
    /// Tokens (input + output).
    pub tokens: f64,
    /// Requests.
    pub requests: f64,
}

impl HourRow {
    /// The `roimon_ledger` point.
    pub fn point(&self) -> Point {
        Point::new(LEDGER, self.hour_start.saturating_mul(1_000_000_000))
            .tag("node", &self.node)
            .tag("gpu_uuid", &self.gpu_uuid)
            .tag("team", &self.team)
            .tag("workload", &self.workload)
            .tag("kind", &self.kind)
            .tag("currency", &self.currency)
            .float("energy_kwh", self.energy_kwh)
            .float("facility_energy_kwh", self.facility_energy_kwh)
            .float("cost_energy", self.cost_energy)
            .float("cost_capex", self.cost_capex)
            .float("cost_maintenance", self.cost_maintenance)
            .float("cost_staff", self.cost_staff)
            .float("cost_carbon", self.cost_carbon)
            .float("cost_total", self.cost_total)
            .float("credit", self.credit)
            .float("emissions_kg", self.emissions_kg)
            .float("value", self.value)
            .float("tokens", self.tokens)
            .float("requests", self.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use roimon_core::*;

    fn engine() -> (Engine, chrono::DateTime<Utc>) {
        let cfg = EngineConfig {
            currency: "EUR".into(),
            pue: 1.5,
            tariff: Tariff::Static(PricePerKwh(0.2)),
            price_source: "static".into(),
            fixed: FixedCosts {
                capex_per_sec: 0.01,
                maintenance_per_sec: 0.0,
                staff_per_sec: 0.0,
            },
            share_key: ShareKey::Equal,
            owners: [(
                "GPU-a".to_string(),
                Owner {
                    team: "search team".into(),
                    workload: "llm,chat".into(),
                },
            )]
            .into(),
            max_gap: Seconds(5.0),
        };
        let mut e = Engine::new(cfg, None);
        e.register_collector("nvml");
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for (t, j) in [(0, 0.0), (2, 600.0)] {
            let r = Reading::Gpu(GpuReading {
                index: 0,
                uuid: "GPU-a".into(),
                name: "H100".into(),
                power: Some(Watts(300.0)),
                energy_counter: Some(Joules(j)),
                utilization: Some(0.5),
                memory_used_bytes: Some(1024),
                memory_total_bytes: Some(4096),
                temperature_celsius: Some(60.0),
                power_limit: None,
                processes: None,
            });
            e.ingest(
                Tick {
                    wall: t0 + chrono::Duration::seconds(t),
                    mono: t as f64,
                },
                &[Report {
                    collector: "nvml",
                    outcome: Ok(vec![r]),
                }],
            );
        }
        (e, t0 + chrono::Duration::seconds(2))
    }

    #[test]
    fn a_snapshot_becomes_gpu_and_node_points_at_its_sample_time() {
        let (e, at) = engine();
        let s = e.snapshot();
        let pts = sample_points(&s, "node-1");
        let ts = at.timestamp_nanos_opt().unwrap();
        assert!(pts.iter().all(|p| p.timestamp_ns == ts));
        let lines: Vec<String> = pts.iter().filter_map(Point::to_line).collect();
        let gpu = lines.iter().find(|l| l.starts_with("roimon_gpu,")).unwrap();
        assert!(
            gpu.starts_with(
                "roimon_gpu,currency=EUR,gpu=0,gpu_uuid=GPU-a,node=node-1,team=search\\ team,workload=llm\\,chat "
            ),
            "{gpu}"
        );
        assert!(
            gpu.contains(" power_watts=300.0,energy_joules_total=600.0,"),
            "{gpu}"
        );
        let node = lines
            .iter()
            .find(|l| l.starts_with("roimon_node,"))
            .unwrap();
        assert!(node.contains("price_per_kwh=0.2"), "{node}");
        assert!(node.contains("cost_capex_total=0.02"), "{node}");
        // No -0.0 from empty sums (no host, no credit here).
        assert!(!node.contains("=-0.0"), "{node}");
        // The rows' cost and the node's add up (one GPU, one owner).
        let row = lines
            .iter()
            .find(|l| l.starts_with("roimon_gpu_cost,"))
            .unwrap();
        assert!(
            row.starts_with(
                "roimon_gpu_cost,currency=EUR,gpu_uuid=GPU-a,node=node-1,team=search\\ team,workload=llm\\,chat "
            ),
            "{row}"
        );
        assert!(!gpu.contains("cost_total="), "{gpu}");
        let field = |l: &str, k: &str| -> f64 {
            let at = l
                .find(&format!(" {k}="))
                .or_else(|| l.find(&format!(",{k}=")))
                .unwrap();
            let v = &l[at + k.len() + 2..];
            v[..v.find([',', ' ']).unwrap()].parse().unwrap()
        };
        assert!((field(row, "cost_total") - field(node, "cost_total")).abs() < 1e-12);
        assert!(field(node, "cost_total") > 0.02);
    }

    #[test]
    fn no_points_before_the_first_sample() {
        let cfg = engine().0.config().clone();
        let e = Engine::new(cfg, None);
        assert!(sample_points(&e.snapshot(), "n").is_empty());
    }

    #[test]
    fn an_hour_row_is_stamped_with_the_hour_start() {
        let r = HourRow {
            hour_start: 1_764_590_400,
            node: "n1".into(),
            gpu_uuid: "GPU-a".into(),
            team: "search".into(),
            workload: "chat".into(),
            kind: "hour".into(),
            currency: "EUR".into(),
            cost_energy: 1.25,
            cost_total: 1.25,
            tokens: 1000.0,
            ..Default::default()
        };
        let l = r.point().to_line().unwrap();
        assert!(
            l.starts_with("roimon_ledger,currency=EUR,gpu_uuid=GPU-a,kind=hour,node=n1,team=search,workload=chat energy_kwh=0.0,"),
            "{l}"
        );
        assert!(l.contains(",cost_energy=1.25,") && l.contains(",tokens=1000.0,"));
        assert!(l.ends_with(" 1764590400000000000"), "{l}");
    }
}
