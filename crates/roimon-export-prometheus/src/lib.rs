//! The Prometheus exporter: a pure function from a core `Snapshot` to metric
//! families (names and units as in the contract), encoded by the `prometheus`
//! crate's text encoder. It reads snapshots; it never drives the loop.

use prometheus::Encoder;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use roimon_core::Component;
use roimon_core::engine::{NO_GPU, Snapshot};

/// Facts about the process that are not in the snapshot.
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    /// roimon's version.
    pub version: String,
    /// Checkpoint writes that failed in a row, now (0 when the last one
    /// succeeded). Live: the error counter only moves once a write lands.
    pub checkpoint_failures_in_a_row: u32,
    /// The InfluxDB stream's figures, when it is configured.
    pub influx: Option<InfluxStats>,
    /// The HTTP listener's connection figures, when it serves.
    pub http: Option<HttpFigures>,
    /// The web configuration's figures (TLS, basic auth), when one is in use.
    pub web: Option<WebFigures>,
    /// The push endpoint's figures, when it is configured.
    pub push: Option<PushFigures>,
    /// The daemon's planner runs, when `[plan]` names a file.
    pub plan: Option<PlanFigures>,
}

/// The daemon's planner runs (`[plan]`) as the exporter sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanFigures {
    /// Runs that found a plan.
    pub ok: u64,
    /// Runs whose allocation file has no feasible plan.
    pub infeasible: u64,
    /// Runs that failed: the file, a coefficient, the ledger or a panic.
    pub error: u64,
}

/// The HTTP listener's connections as the exporter sees them (plain figures,
/// filled in by the daemon's accept loop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpFigures {
    /// Connections open now.
    pub open: u64,
    /// Connections refused at capacity (every connection busy).
    pub refused: u64,
    /// Idle connections closed to admit a new one.
    pub evicted: u64,
    /// Connections closed for not sending a request header in time.
    pub header_timeout: u64,
    /// Keep-alive connections closed for idling too long.
    pub idle_timeout: u64,
    /// TLS handshakes that failed or were not done before the header deadline.
    pub tls_handshake: u64,
}

/// The web configuration (`--web.config.file`) and its authentication as
/// the exporter sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WebFigures {
    /// Reloads of the file or its certificates that failed.
    pub reload_errors: u64,
    /// Unix time of the last good (re)load (0 before the first).
    pub last_reload_success_unix: f64,
    /// Requests refused for carrying no credentials (401).
    pub refused_no_credentials: u64,
    /// Requests refused for a wrong user or password (401).
    pub refused_wrong_credentials: u64,
    /// Requests refused because too many password checks were waiting (429).
    pub refused_auth_busy: u64,
    /// Requests refused over `rate_limit` (429).
    pub refused_rate_limit: u64,
}

/// `POST /api/v2/write` as the exporter sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushFigures {
    /// Points booked.
    pub accepted: u64,
    /// Points already counted (a client's retry), dropped.
    pub duplicates: u64,
    /// Requests refused for a bad line (400).
    pub bad_request: u64,
    /// Requests refused for an owner this node does not know (400).
    pub unknown_owner: u64,
    /// Requests refused for going over a cap of owners or KPIs (400).
    pub over_cap: u64,
    /// Requests refused as too large (413).
    pub too_large: u64,
    /// Requests refused without the token (401).
    pub unauthorized: u64,
    /// Unauthenticated requests refused on a non-loopback listener (403).
    pub forbidden: u64,
    /// Requests refused with too many in flight (429).
    pub busy: u64,
}

/// The InfluxDB stream as the exporter sees it (plain figures, filled in by
/// the daemon).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InfluxStats {
    /// Whether the last write attempt succeeded.
    pub up: bool,
    /// Bytes of the disk buffer on disk.
    pub buffer_bytes: u64,
    /// Points in the buffer not yet acknowledged by the server.
    pub buffer_points: u64,
    /// The buffer's bound, bytes.
    pub buffer_capacity_bytes: u64,
    /// Points the server acknowledged.
    pub points_written: u64,
    /// Points dropped because the buffer was full.
    pub dropped_buffer_full: u64,
    /// Points the server refused (400/422, or 413 for a single point).
    pub dropped_rejected: u64,
    /// Points lost to a torn or corrupt buffer record.
    pub dropped_corrupt: u64,
    /// Write requests that failed and will be tried again.
    pub retries: u64,
    /// Unix time of the last acknowledged write (`None`: none yet).
    pub last_success_unix: Option<f64>,
}

/// The key of the host in `unaccounted_seconds`.
const HOST: &str = "host";

struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(kind);
        Family(f)
    }
    fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::GAUGE)
    }
    fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::COUNTER)
    }
    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut m = Metric::default();
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).to_string());
                    l.set_value((*v).to_string());
                    l
                })
                .collect(),
        );
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
    }
    fn push_opt(&mut self, labels: &[(&str, &str)], value: Option<f64>) {
        if let Some(v) = value {
            self.push(labels, v);
        }
    }
}

/// Every metric family of a snapshot, in a stable order. Families without a
/// sample are left out (the text format has no empty families).
// Allowed long: one linear table of the exposition's metric families, each
// declared with its help text and filled where it stands, in the order the
// golden exposition test fixes. Split into pieces, that order and the help
// texts would be spread over many functions and harder to check against it.
#[allow(clippy::too_many_lines)]
pub fn families(s: &Snapshot, p: &ProcessInfo) -> Vec<MetricFamily> {
    let mut out: Vec<Family> = Vec::with_capacity(32);
    let currency = s.price.currency.as_str();

    let mut f = Family::gauge("roimon_build_info", "roimon build information; always 1.");
    f.push(&[("version", &p.version)], 1.0);
    out.push(f);

    let mut info = Family::gauge("roimon_gpu_info", "GPU identity and owner; always 1.");
    let mut power = Family::gauge("roimon_gpu_power_watts", "GPU power draw in watts.");
    let mut energy = Family::counter(
        "roimon_gpu_energy_joules_total",
        "GPU energy observed by roimon in joules (NVML energy counter deltas, or power integrated).",
    );
    let mut util = Family::gauge("roimon_gpu_utilization_ratio", "GPU utilisation, 0..1.");
    let mut mem = Family::gauge(
        "roimon_gpu_memory_used_bytes",
        "GPU memory in use in bytes.",
    );
    let mut mem_total = Family::gauge("roimon_gpu_memory_total_bytes", "GPU memory in bytes.");
    let mut temp = Family::gauge(
        "roimon_gpu_temperature_celsius",
        "GPU core temperature in degrees Celsius.",
    );
    let mut limit = Family::gauge(
        "roimon_gpu_power_limit_watts",
        "Enforced GPU power limit in watts.",
    );
    let mut resets = Family::counter(
        "roimon_gpu_energy_resets_total",
        "Times the GPU's energy counter went backwards (driver reload).",
    );
    let mut gpu_up = Family::gauge(
        "roimon_gpu_up",
        "1 when the GPU answered in the last sample, 0 when it is lost (fell off the bus, NVML error).",
    );
    let mut procs = Family::gauge(
        "roimon_gpu_processes",
        "Processes running on the GPU (compute and graphics, all MIG instances) at the last sample; absent where NVML does not list them or attribution.mode = \"static\".",
    );
    let mut idx_buf = String::new();
    for (uuid, g) in &s.gpus {
        let r = &g.reading;
        idx_buf.clear();
        idx_buf.push_str(&r.index.to_string());
        let id: [(&str, &str); 2] = [("gpu", &idx_buf), ("gpu_uuid", uuid)];
        info.push(
            &[
                ("gpu", &idx_buf),
                ("gpu_uuid", uuid),
                ("model", &r.name),
                ("team", &g.owner.team),
                ("workload", &g.owner.workload),
            ],
            1.0,
        );
        if g.present {
            power.push_opt(&id, r.power.map(|w| w.0));
            util.push_opt(&id, r.utilization);
            mem.push_opt(&id, r.memory_used_bytes.map(|b| b as f64));
            mem_total.push_opt(&id, r.memory_total_bytes.map(|b| b as f64));
            temp.push_opt(&id, r.temperature_celsius);
            limit.push_opt(&id, r.power_limit.map(|w| w.0));
            if let Some(p) = &r.processes {
                let mut pids: Vec<u32> = p.running.iter().map(|p| p.pid).collect();
                pids.sort_unstable();
                pids.dedup();
                procs.push(&id, pids.len() as f64);
            }
        }
        let e = s
            .counters
            .gpu_energy_joules
            .get(uuid)
            .map_or(0.0, |a| a.total());
        energy.push(&id, e);
        resets.push(
            &id,
            s.counters.counter_resets.get(uuid).copied().unwrap_or(0) as f64,
        );
        gpu_up.push(&id, if g.present { 1.0 } else { 0.0 });
    }
    let mut unmatched = Family::gauge(
        "roimon_gpu_owner_unmatched",
        "1 for each configured gpu.owners UUID that matches no GPU NVML reports (a typo or placeholder: that cost goes to unallocated).",
    );
    for u in &s.unmatched_owners {
        unmatched.push(&[("gpu_uuid", u)], 1.0);
    }
    let mut attr_unmatched = Family::counter(
        "roimon_attribution_unmatched_total",
        "Processes seen on a GPU that matched no [[attribution.rules]] (each counted once when first seen); their share went to the GPU's owner of record.",
    );
    attr_unmatched.push(&[], s.counters.attribution_unmatched as f64);
    out.extend([
        info,
        power,
        energy,
        util,
        mem,
        mem_total,
        temp,
        limit,
        resets,
        gpu_up,
        unmatched,
        procs,
        attr_unmatched,
    ]);

    let mut cpu = Family::gauge(
        "roimon_host_cpu_utilization_ratio",
        "Host CPU utilisation, 0..1.",
    );
    let mut hmem = Family::gauge(
        "roimon_host_memory_used_bytes",
        "Host memory in use in bytes.",
    );
    let mut hpower = Family::gauge(
        "roimon_host_power_watts",
        "Host power in watts, by source (rapl, model).",
    );
    if let Some(h) = &s.host {
        cpu.push_opt(&[], h.cpu_utilization);
        hmem.push_opt(&[], h.memory_used_bytes.map(|b| b as f64));
        hpower.push_opt(&[("source", h.source.as_str())], h.power.map(|w| w.0));
    }
    let mut henergy = Family::counter(
        "roimon_host_energy_joules_total",
        "Host energy observed by roimon in joules, by source.",
    );
    for (src, acc) in &s.counters.host_energy_joules {
        henergy.push(&[("source", src.as_str())], acc.total());
    }
    let mut hresets = Family::counter(
        "roimon_host_energy_resets_total",
        "Times the host energy counter reset (a jump no host draws, e.g. a RAPL reset read as a wrap), by source.",
    );
    for src in s.counters.host_energy_joules.keys() {
        hresets.push(
            &[("source", src.as_str())],
            s.counters
                .host_counter_resets
                .get(src)
                .copied()
                .unwrap_or(0) as f64,
        );
    }
    let mut hun = Family::counter(
        "roimon_host_unaccounted_seconds_total",
        "Seconds with no usable host energy reading; not filled in.",
    );
    if s.host.is_some() || s.counters.unaccounted_seconds.contains_key(HOST) {
        hun.push(
            &[],
            s.counters
                .unaccounted_seconds
                .get(HOST)
                .map_or(0.0, |a| a.total()),
        );
    }
    out.extend([cpu, hmem, hpower, henergy, hresets, hun]);

    let mut fe = Family::counter(
        "roimon_facility_energy_joules_total",
        "Facility energy in joules: (GPU + host energy) x PUE.",
    );
    fe.push(&[], s.counters.facility_energy_joules.total());
    let mut fp = Family::gauge(
        "roimon_facility_power_watts",
        "Facility power over the last interval in watts.",
    );
    fp.push(&[], s.facility_power_watts);
    let mut pue = Family::gauge(
        "roimon_facility_pue",
        "Power usage effectiveness applied to IT energy.",
    );
    pue.push(&[], s.pue);
    out.extend([fe, fp, pue]);

    let mut price = Family::gauge(
        "roimon_electricity_price_per_kwh",
        "Electricity price in force, currency major units per kWh.",
    );
    price.push(
        &[
            ("basis", s.price.basis.label()),
            ("currency", currency),
            ("source", &s.price.source),
        ],
        s.price.price_per_kwh,
    );
    let mut age = Family::gauge(
        "roimon_electricity_price_age_seconds",
        "Seconds since the price schedule in force was fetched; 0 for configured prices.",
    );
    age.push(&[("source", &s.price.source)], s.price.age_seconds);
    out.extend([price, age]);
    if let Some(until) = s.price.known_until {
        let mut known = Family::gauge(
            "roimon_electricity_price_known_until_timestamp_seconds",
            "End of the last price slot the fetched schedule holds, Unix seconds.",
        );
        known.push(&[("source", &s.price.source)], until.timestamp() as f64);
        out.push(known);
    }

    let mut cost = Family::counter(
        "roimon_cost_total",
        "Node cost accrued since the state began, currency major units, by component.",
    );
    for c in Component::ALL {
        let v = s.counters.cost.get(&c).map_or(0.0, |a| a.total());
        cost.push(&[("component", c.as_str()), ("currency", currency)], v);
    }
    out.push(cost);
    let mut gcost = Family::counter(
        "roimon_gpu_cost_total",
        "Cost attributed to a GPU and the owner it had when the cost accrued, currency major units; sums to roimon_cost_total.",
    );
    let mut gcredit = Family::counter(
        "roimon_gpu_credit_total",
        "Credit (energy drawn at negative prices) attributed to a GPU and the owner it had when it accrued; sums to roimon_credit_total.",
    );
    let mut genergy = Family::counter(
        "roimon_gpu_facility_energy_joules_total",
        "Facility energy attributed to a GPU and the owner it had (own energy and its share of the host's, x PUE), joules; sums to roimon_facility_energy_joules_total.",
    );
    for (key, row) in &s.counters.rows {
        let who = [
            ("gpu_uuid", key.gpu_uuid.as_str()),
            ("team", key.team.as_str()),
            ("workload", key.workload.as_str()),
        ];
        for (c, acc) in &row.cost {
            gcost.push(
                &[
                    who[0],
                    who[1],
                    who[2],
                    ("component", c.as_str()),
                    ("currency", currency),
                ],
                acc.total(),
            );
        }
        for (c, acc) in &row.credit {
            gcredit.push(
                &[
                    who[0],
                    who[1],
                    who[2],
                    ("component", c.as_str()),
                    ("currency", currency),
                ],
                acc.total(),
            );
        }
        genergy.push(&who, row.facility_energy_joules.total());
    }
    out.push(gcost);
    // Node credit exists from the start (at 0) for energy, like its rows.
    let mut credit = Family::counter(
        "roimon_credit_total",
        "Money received for energy drawn at negative prices, currency major units; net cost = cost - credit.",
    );
    credit.push(
        &[
            ("component", Component::Energy.as_str()),
            ("currency", currency),
        ],
        s.counters
            .credit
            .get(&Component::Energy)
            .map_or(0.0, |a| a.total()),
    );
    for (c, acc) in &s.counters.credit {
        if *c != Component::Energy {
            credit.push(
                &[("component", c.as_str()), ("currency", currency)],
                acc.total(),
            );
        }
    }
    out.extend([credit, gcredit, genergy]);

    if s.carbon.is_some() || s.counters.emissions_grams.total() > 0.0 {
        if let Some(c) = &s.carbon {
            let mut g = Family::gauge(
                "roimon_grid_carbon_intensity_grams_per_kwh",
                "Grid carbon intensity in force, grams CO2e per kWh; basis says whether a slot covers now.",
            );
            g.push(
                &[("basis", c.basis.label()), ("source", &c.source)],
                c.grams_per_kwh,
            );
            let mut age = Family::gauge(
                "roimon_grid_carbon_intensity_age_seconds",
                "Seconds since the carbon intensity in force was fetched; 0 for a configured figure.",
            );
            age.push(&[("source", &c.source)], c.age_seconds);
            out.extend([g, age]);
        }
        let mut em = Family::counter(
            "roimon_emissions_grams_total",
            "Emissions of the facility energy (IT energy x PUE x grid intensity), grams CO2e.",
        );
        em.push(&[], s.counters.emissions_grams.total());
        let mut gem = Family::counter(
            "roimon_gpu_emissions_grams_total",
            "Emissions attributed to a GPU and its owner, grams CO2e; sums to roimon_emissions_grams_total.",
        );
        for (key, row) in &s.counters.rows {
            gem.push(
                &[
                    ("gpu_uuid", &key.gpu_uuid),
                    ("team", &key.team),
                    ("workload", &key.workload),
                ],
                row.emissions_grams.total(),
            );
        }
        out.extend([em, gem]);
    }

    // Value: counters that aggregate across a fleet; ratios come from
    // recording rules (Σvalue/Σcost), never from averaging node ratios.
    let mut value = Family::counter(
        "roimon_value_total",
        "Money produced (inference tokens and requests priced, or pushed revenue), currency major units, by owner and source.",
    );
    let mut tokens = Family::counter(
        "roimon_tokens_total",
        "Tokens served by owner and model; direction input (prompt, cached included) or output (generated).",
    );
    let mut requests = Family::counter(
        "roimon_requests_total",
        "Successful inference requests by owner and model.",
    );
    let mut by_model: std::collections::BTreeMap<(&str, &str, &str), (f64, f64, f64)> =
        std::collections::BTreeMap::new();
    for (k, r) in &s.counters.value {
        value.push(
            &[
                ("team", &k.team),
                ("workload", &k.workload),
                ("source", &k.source),
                ("currency", currency),
            ],
            r.value.total(),
        );
        for (m, c) in &r.models {
            let e = by_model
                .entry((k.team.as_str(), k.workload.as_str(), m.as_str()))
                .or_default();
            e.0 += c.input_tokens.total();
            e.1 += c.output_tokens.total();
            e.2 += c.requests.total();
        }
    }
    for ((team, workload, model), (i, o, r)) in by_model {
        let who = [("team", team), ("workload", workload), ("model", model)];
        tokens.push(&[who[0], who[1], who[2], ("direction", "input")], i);
        tokens.push(&[who[0], who[1], who[2], ("direction", "output")], o);
        requests.push(&who, r);
    }
    let mut tup = Family::gauge(
        "roimon_value_target_up",
        "1 when the last scrape of the inference server succeeded.",
    );
    let mut terr = Family::counter(
        "roimon_value_target_errors_total",
        "Failed scrapes of the inference server (unreachable, bad status, unparsable, stale).",
    );
    for (t, ok) in &s.targets {
        tup.push(&[("target", t)], if *ok { 1.0 } else { 0.0 });
    }
    let names: std::collections::BTreeSet<&String> = s
        .targets
        .keys()
        .chain(s.counters.target_errors.keys())
        .collect();
    for t in names {
        terr.push(
            &[("target", t)],
            s.counters.target_errors.get(t).copied().unwrap_or(0) as f64,
        );
    }
    let mut rej = Family::counter(
        "roimon_value_rejected_total",
        "Scraped figures not booked, by inference server and reason: tokens_rate and requests_rate (a series' delta above the target's plausible rate), reset_storm (a reset while the server restarts too often), too_many_models (a model beyond max_models), label_too_long (a label over 128 bytes), too_many_series.",
    );
    for (t, by_reason) in &s.counters.value_rejected {
        for (why, n) in by_reason {
            rej.push(&[("target", t), ("reason", why)], *n as f64);
        }
    }
    out.extend([value, tokens, requests, tup, terr, rej]);

    let mut wv = Family::gauge(
        "roimon_window_value",
        "The node's value over the rolling window, currency major units.",
    );
    let mut wc = Family::gauge(
        "roimon_window_cost",
        "The node's money cost over the rolling window (unweighted, net of credit), currency major units.",
    );
    let mut wroi = Family::gauge(
        "roimon_roi_ratio",
        "The node's financial ROI over the window, (V - M) / M with M the unweighted money cost; absent without any value source or while M is 0.",
    );
    let mut wbase = Family::gauge(
        "roimon_roi_baseline_ratio",
        "Trailing baseline of roimon_roi_ratio (an EWMA with a time constant of one day or four buckets, whichever is longer, sampled where the window covers its own length).",
    );
    let mut weff = Family::gauge(
        "roimon_weighted_efficiency",
        "The node's weighted efficiency over the window, per hour of the window: P / (C / hours), with P the mean score of the node's own owners (those with cost on this node) and C the weighted cost over the span the window covers (benefit score per weighted currency unit per hour, so windows of any length compare); absent without scores for every weighted indicator.",
    );
    let mut oeff = Family::gauge(
        "roimon_owner_weighted_efficiency",
        "An owner's weighted efficiency over the window, per hour of the window: P / (C / hours) from the owner's own scores and its own weighted cost on this node (benefit score per weighted currency unit per hour); absent without a score for every weighted indicator or without cost.",
    );
    for w in &s.windows {
        let l = [("window", w.window.as_str())];
        wv.push(&[l[0], ("currency", currency)], w.value);
        wc.push(&[l[0], ("currency", currency)], w.cost);
        wroi.push_opt(&l, w.roi);
        wbase.push_opt(&l, w.baseline_roi);
        weff.push_opt(&l, w.weighted_efficiency);
        for o in &w.owners {
            oeff.push_opt(
                &[
                    l[0],
                    ("team", o.team.as_str()),
                    ("workload", o.workload.as_str()),
                ],
                o.weighted_efficiency,
            );
        }
    }
    out.extend([wv, wc, wroi, wbase, weff, oeff]);
    out.extend(owner_window_families(s));

    let mut bm = Family::gauge(
        "roimon_budget_monthly",
        "The configured monthly budget of a team (workload=\"\": team-wide) or workload, currency major units.",
    );
    let mut bs = Family::gauge(
        "roimon_budget_spent",
        "Net cost (cost - credit) booked in the ledger this calendar month so far (report.timezone), open hour included, currency major units.",
    );
    let mut bf = Family::gauge(
        "roimon_budget_forecast",
        "Month-end spend if the run rate of the last 24 h of the ledger holds: spent + rate x seconds left in the month, currency major units.",
    );
    for b in &s.budgets {
        let l = [
            ("team", b.team.as_str()),
            ("workload", b.workload.as_str()),
            ("currency", b.currency.as_str()),
        ];
        bm.push(&l, b.monthly);
        bs.push(&l, b.spent);
        bf.push(&l, b.forecast);
    }
    out.extend([bm, bs, bf]);
    if !s.budgets.is_empty() {
        let mut basis = Family::gauge(
            "roimon_budget_forecast_basis_seconds",
            "Seconds of ledger spend the budgets' run rate (and so roimon_budget_forecast) rests on: the state's age, up to the last 24 h.",
        );
        basis.push_opt(&[], s.budget_basis_seconds);
        out.push(basis);
    }

    let mut up = Family::gauge(
        "roimon_collector_up",
        "1 when the collector's last sample succeeded.",
    );
    let mut errs = Family::counter(
        "roimon_collector_errors_total",
        "Failed samples (or failed devices) by collector.",
    );
    for (name, h) in &s.collectors {
        up.push(&[("collector", name)], if h.up { 1.0 } else { 0.0 });
    }
    // Every collector ever counted keeps its error series (a counter never
    // disappears, e.g. right after a restart before the collector reports).
    let names: std::collections::BTreeSet<&String> = s
        .collectors
        .keys()
        .chain(s.counters.collector_errors.keys())
        .collect();
    for name in names {
        errs.push(
            &[("collector", name)],
            s.counters.collector_errors.get(name).copied().unwrap_or(0) as f64,
        );
    }
    let mut dropped = Family::counter(
        "roimon_feed_slots_dropped_total",
        "Fetched price or carbon slots dropped for lying outside the time a schedule may cover (older than the kept week, or more than a day past the fetch window), by feed.",
    );
    let feeds: std::collections::BTreeSet<&str> = s
        .collectors
        .keys()
        .map(String::as_str)
        .filter(|n| *n == "price" || *n == "carbon")
        .chain(s.counters.slots_dropped.keys().map(String::as_str))
        .collect();
    for feed in feeds {
        dropped.push(
            &[("collector", feed)],
            s.counters.slots_dropped.get(feed).copied().unwrap_or(0) as f64,
        );
    }
    out.extend([up, errs, dropped]);

    let mut un = Family::counter(
        "roimon_unaccounted_seconds_total",
        "Seconds with no usable GPU reading, by GPU UUID; not filled in (the host has roimon_host_unaccounted_seconds_total).",
    );
    for uuid in s.gpus.keys() {
        let v = s
            .counters
            .unaccounted_seconds
            .get(uuid)
            .map_or(0.0, |a| a.total());
        un.push(&[("gpu_uuid", uuid)], v);
    }
    for (k, acc) in &s.counters.unaccounted_seconds {
        if !s.gpus.contains_key(k) && k != NO_GPU && k != HOST {
            un.push(&[("gpu_uuid", k)], acc.total());
        }
    }
    out.push(un);

    let mut ck = Family::counter(
        "roimon_checkpoint_errors_total",
        "Failed writes of the state checkpoint since the state began, as on disk (a failure is counted once a later write lands; see roimon_checkpoint_consecutive_failures for now).",
    );
    ck.push(&[], s.counters.checkpoint_errors as f64);
    let mut streak = Family::gauge(
        "roimon_checkpoint_consecutive_failures",
        "Checkpoint writes that failed in a row, now; 0 when the last one succeeded. Counters on /metrics stay at the last values on disk meanwhile.",
    );
    streak.push(&[], f64::from(p.checkpoint_failures_in_a_row));
    let mut resets = Family::counter(
        "roimon_state_resets_total",
        "Times this state dir was started over from zero deliberately (roimon run --reset-state after its checkpoint was lost), as the ledger's events of kind reset record them.",
    );
    resets.push(&[], s.counters.state_resets as f64);
    out.extend([ck, streak, resets]);
    if let Some(i) = &p.influx {
        out.extend(influx_families(i));
    }
    // The daemon's own doors come last, in the order /metrics always had.
    if let Some(h) = &p.http {
        out.extend(http_families(h));
    }
    if let Some(w) = &p.web {
        out.extend(web_families(w));
    }
    if let Some(q) = &p.push {
        out.extend(push_families(q));
    }
    if let Some(r) = &p.plan {
        out.extend(plan_families(r));
    }

    out.into_iter()
        .map(|f| f.0)
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}

/// The windows' spans, the baselines' spans and each owner's figures over
/// every window. Bounded: owners × windows, with at most 10 windows
/// (`roi.windows`) and the owners the engine keeps (configured GPU owners,
/// scrape targets' owners and attribution rules, pod owners within the pod
/// list's bounds, at most `MAX_PUSHED_OWNERS` pushed ones); an owner with
/// neither value nor cost in a window has no series for it.
fn owner_window_families(s: &roimon_core::engine::Snapshot) -> Vec<Family> {
    let currency = s.price.currency.as_str();
    let mut span = Family::gauge(
        "roimon_window_span_seconds",
        "Seconds the window's figures cover exactly: the window's length (up to one bucket more), less while the daemon's history is younger than the window or after a gap in it.",
    );
    let mut bspan = Family::gauge(
        "roimon_roi_baseline_span_seconds",
        "Seconds of history roimon_roi_baseline_ratio rests on: from the start of the first window that fed it to now; absent without a baseline.",
    );
    let mut ov = Family::gauge(
        "roimon_owner_window_value",
        "An owner's value over the rolling window on this node, currency major units; Σ over owners = roimon_window_value.",
    );
    let mut oc = Family::gauge(
        "roimon_owner_window_cost",
        "An owner's money cost over the rolling window on this node (unweighted, net of credit), currency major units.",
    );
    let mut oroi = Family::gauge(
        "roimon_owner_roi_ratio",
        "An owner's financial ROI over the window on this node, (V - M) / M; absent while M is 0 and for an owner without a value source of its own (its value is not measured).",
    );
    let mut obase = Family::gauge(
        "roimon_owner_roi_baseline_ratio",
        "Trailing baseline of roimon_owner_roi_ratio (an EWMA like roimon_roi_baseline_ratio's).",
    );
    let mut obspan = Family::gauge(
        "roimon_owner_roi_baseline_span_seconds",
        "Seconds of history roimon_owner_roi_baseline_ratio rests on: from the start of the first window that fed it to now.",
    );
    for w in &s.windows {
        let l = ("window", w.window.as_str());
        span.push(&[l], w.span_secs);
        bspan.push_opt(&[l], w.baseline_span_secs);
        for o in &w.owners {
            if o.value == 0.0 && o.cost == 0.0 {
                continue;
            }
            let who = [
                l,
                ("team", o.team.as_str()),
                ("workload", o.workload.as_str()),
            ];
            ov.push(&[who[0], who[1], who[2], ("currency", currency)], o.value);
            oc.push(&[who[0], who[1], who[2], ("currency", currency)], o.cost);
            oroi.push_opt(&who, o.roi);
            obase.push_opt(&who, o.baseline_roi);
            obspan.push_opt(&who, o.baseline_span_secs);
        }
    }
    vec![span, bspan, ov, oc, oroi, obase, obspan]
}

fn influx_families(i: &InfluxStats) -> Vec<Family> {
    let mut up = Family::gauge(
        "roimon_influxdb_up",
        "1 when the last InfluxDB write attempt succeeded, else 0 (the data stays in the buffer).",
    );
    up.push(&[], if i.up { 1.0 } else { 0.0 });
    let mut bytes = Family::gauge(
        "roimon_influxdb_buffer_bytes",
        "Bytes of the InfluxDB disk buffer on disk.",
    );
    bytes.push(&[], i.buffer_bytes as f64);
    let mut points = Family::gauge(
        "roimon_influxdb_buffer_points",
        "Points in the InfluxDB disk buffer not yet acknowledged by the server.",
    );
    points.push(&[], i.buffer_points as f64);
    let mut cap = Family::gauge(
        "roimon_influxdb_buffer_capacity_bytes",
        "Bound of the InfluxDB disk buffer in bytes; past it the oldest data is dropped.",
    );
    cap.push(&[], i.buffer_capacity_bytes as f64);
    let mut written = Family::counter(
        "roimon_influxdb_points_written_total",
        "Points the InfluxDB server acknowledged since roimon started.",
    );
    written.push(&[], i.points_written as f64);
    let mut dropped = Family::counter(
        "roimon_influxdb_points_dropped_total",
        "Points that will never reach InfluxDB since roimon started, by reason: buffer_full (oldest data dropped), rejected (the server refused them: 400/422, or 413 for one point), corrupt (a damaged buffer record, or a segment file deleted behind roimon).",
    );
    for (reason, v) in [
        ("buffer_full", i.dropped_buffer_full),
        ("rejected", i.dropped_rejected),
        ("corrupt", i.dropped_corrupt),
    ] {
        dropped.push(&[("reason", reason)], v as f64);
    }
    let mut retries = Family::counter(
        "roimon_influxdb_retries_total",
        "InfluxDB write requests that failed and are tried again (backoff, Retry-After, or a bad token).",
    );
    retries.push(&[], i.retries as f64);
    let mut last = Family::gauge(
        "roimon_influxdb_last_success_timestamp_seconds",
        "Unix time of the last write InfluxDB acknowledged (absent before the first).",
    );
    last.push_opt(&[], i.last_success_unix);
    vec![up, bytes, points, cap, written, dropped, retries, last]
}

fn http_families(h: &HttpFigures) -> Vec<Family> {
    let mut open = Family::gauge("roimon_http_connections", "Open HTTP connections.");
    open.push(&[], h.open as f64);
    let mut dropped = Family::counter(
        "roimon_http_connections_dropped_total",
        "HTTP connections roimon closed to protect itself: refused (at capacity, every connection busy), evicted (oldest idle connection closed to admit a new one), header_timeout, idle_timeout, tls_handshake (failed or not done before the header deadline).",
    );
    for (reason, v) in [
        ("refused", h.refused),
        ("evicted", h.evicted),
        ("header_timeout", h.header_timeout),
        ("idle_timeout", h.idle_timeout),
        ("tls_handshake", h.tls_handshake),
    ] {
        dropped.push(&[("reason", reason)], v as f64);
    }
    vec![open, dropped]
}

fn web_families(w: &WebFigures) -> Vec<Family> {
    let mut errors = Family::counter(
        "roimon_web_config_reload_errors_total",
        "Reloads of the web configuration file (--web.config.file) or its certificates that failed; the configuration in force before stays.",
    );
    errors.push(&[], w.reload_errors as f64);
    let mut last = Family::gauge(
        "roimon_web_config_last_reload_success_timestamp_seconds",
        "When the web configuration in force was loaded.",
    );
    last.push(&[], w.last_reload_success_unix);
    let mut refused = Family::counter(
        "roimon_http_requests_refused_total",
        "HTTP requests refused by the web configuration: no credentials (401), wrong user or password (401), too many password checks waiting (429), rate_limit (429).",
    );
    for (reason, v) in [
        ("no_credentials", w.refused_no_credentials),
        ("wrong_credentials", w.refused_wrong_credentials),
        ("auth_busy", w.refused_auth_busy),
        ("rate_limit", w.refused_rate_limit),
    ] {
        refused.push(&[("reason", reason)], v as f64);
    }
    vec![errors, last, refused]
}

fn push_families(q: &PushFigures) -> Vec<Family> {
    let mut points = Family::counter(
        "roimon_push_points_total",
        "Points received on /api/v2/write: accepted (booked) or duplicate (already counted, e.g. a client's retry).",
    );
    points.push(&[("result", "accepted")], q.accepted as f64);
    points.push(&[("result", "duplicate")], q.duplicates as f64);
    let mut rejected = Family::counter(
        "roimon_push_rejected_total",
        "Requests to /api/v2/write refused, nothing of them booked: a bad line (400), an owner this node does not know (400), over a cap of owners or KPIs (400), too large (413), without the token (401), unauthenticated on a non-loopback listener (403) or too many in flight (429).",
    );
    for (reason, v) in [
        ("bad_request", q.bad_request),
        ("unknown_owner", q.unknown_owner),
        ("over_cap", q.over_cap),
        ("too_large", q.too_large),
        ("unauthorized", q.unauthorized),
        ("forbidden", q.forbidden),
        ("busy", q.busy),
    ] {
        rejected.push(&[("reason", reason)], v as f64);
    }
    vec![points, rejected]
}

fn plan_families(r: &PlanFigures) -> Vec<Family> {
    let mut runs = Family::counter(
        "roimon_plan_runs_total",
        "Runs of the daemon's planner ([plan]): ok (a plan found), infeasible (no plan meets the file's constraints), error (the file, a measured coefficient, the ledger or the solver failed; the last good plan is served as stale).",
    );
    for (result, v) in [
        ("ok", r.ok),
        ("infeasible", r.infeasible),
        ("error", r.error),
    ] {
        runs.push(&[("result", result)], v as f64);
    }
    vec![runs]
}

/// The Prometheus text exposition (format 0.0.4) of a snapshot.
pub fn encode(s: &Snapshot, p: &ProcessInfo) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 * 1024);
    // Encoding our own well-formed families into a Vec cannot fail.
    let _ = prometheus::TextEncoder::new().encode(&families(s, p), &mut buf);
    buf
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
