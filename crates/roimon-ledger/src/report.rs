//! Reports from the ledger: rows of an hour span grouped by owner, GPU,
//! node, cost component and calendar period (days and months in a
//! configured time zone), with a totals row, as a table, CSV or JSON in
//! the columns of the outside contract. Also the time arguments' syntax.
//! CSV text cells are neutralised against formula injection (OWASP) so a
//! spreadsheet never runs a team or workload name; CSV numbers are plain
//! decimals of fixed precision (money and kWh 6 decimals, kg 3, counts
//! whole), rounded only when written, so totals are sums of unrounded
//! figures. A period still running ends at the time of the report and
//! says so (`complete` in JSON, "to date" in the table).

use crate::figures::{self, Figures, N};
use crate::store::{Error, Ledger, Result};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::params;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Output columns after the period and grouping columns, before `currency`.
pub const COLUMNS: [&str; 12] = [
    "energy_kwh",
    "facility_energy_kwh",
    "cost_energy",
    "cost_capex",
    "cost_maintenance",
    "cost_staff",
    "cost_carbon",
    "cost_total",
    "credit",
    "emissions_kg",
    "value",
    "tokens",
];

/// Columns appended after `currency` (the contract's columns keep their
/// order): requests served, net cost (`cost_total − credit`) and the
/// financial ROI `(value − net_cost) / net_cost` (empty without a positive
/// net cost).
pub const APPENDED: [&str; 3] = ["requests", "net_cost", "roi"];

/// Index of `requests` in [`Out`] (after the [`COLUMNS`]).
pub const REQUESTS: usize = 12;

/// One output row's figures: the [`COLUMNS`] in order, then requests.
pub type Out = [f64; 13];

/// Decimals each [`COLUMNS`] figure, then requests, is written with in
/// CSV: money and kWh 6, kg 3, counts 0.
const DECIMALS: [usize; 13] = [6, 6, 6, 6, 6, 6, 6, 6, 6, 3, 6, 0, 0];

/// Decimals of `net_cost` and `roi` in CSV.
const NET_DECIMALS: usize = 6;

/// Net cost of a row: `cost_total − credit`.
pub fn net_cost(o: &Out) -> f64 {
    o[7] - o[8] + 0.0
}

/// Financial ROI of a row, `(value − net_cost) / net_cost`; `None` when
/// the net cost is not positive (as the windows' ROI).
pub fn roi(o: &Out) -> Option<f64> {
    let net = net_cost(o);
    (net > 0.0).then(|| (o[10] - net) / net + 0.0)
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dim {
    /// Team.
    Team,
    /// Workload.
    Workload,
    /// GPU UUID.
    Gpu,
    /// Cost component (energy, capex, maintenance, staff, carbon, value).
    Component,
    /// Node.
    Node,
    /// UTC hour (shown in the report's zone).
    Hour,
    /// Local day.
    Day,
    /// Local month.
    Month,
}

impl Dim {
    /// Every dimension with its name.
    pub const ALL: [(Dim, &'static str); 8] = [
        (Dim::Team, "team"),
        (Dim::Workload, "workload"),
        (Dim::Gpu, "gpu"),
        (Dim::Component, "component"),
        (Dim::Node, "node"),
        (Dim::Hour, "hour"),
        (Dim::Day, "day"),
        (Dim::Month, "month"),
    ];

    /// The column name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(d, _)| *d == self)
            .map_or("", |(_, n)| n)
    }

    /// Parse `team,workload,…`; an unknown or repeated name is an error
    /// naming it.
    pub fn parse_list(s: &str) -> std::result::Result<Vec<Dim>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d = Self::ALL
                .iter()
                .find(|(_, n)| *n == part)
                .map(|(d, _)| *d)
                .ok_or_else(|| {
                    format!(
                        "unknown --by {part:?}: use team, workload, gpu, component, node, hour, day, month"
                    )
                })?;
            if out.contains(&d) {
                return Err(format!("--by names {part:?} twice"));
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON object.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            o => Err(format!("unknown format {o:?}: use table, csv or json")),
        }
    }
}

/// What to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Span start (inclusive): hours starting at or after it.
    pub from: DateTime<Utc>,
    /// Span end (exclusive): hours starting before it.
    pub to: DateTime<Utc>,
    /// Grouping, in column order.
    pub by: Vec<Dim>,
    /// Zone of days and months (and of the times printed).
    pub tz: Tz,
    /// Only this team's rows (a team's statement).
    pub team: Option<String>,
}

/// (period start, period end, grouping values).
type GroupKey = (DateTime<Utc>, DateTime<Utc>, Vec<String>);

/// One output row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Period start.
    pub period_start: DateTime<Utc>,
    /// Period end.
    pub period_end: DateTime<Utc>,
    /// Grouping values, in `by` order.
    pub dims: Vec<String>,
    /// Figures.
    pub out: Out,
}

/// A report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The query.
    pub query: Query,
    /// Currency of every money column.
    pub currency: String,
    /// Rows, by period then grouping values.
    pub rows: Vec<Row>,
    /// Σ of the rows.
    pub totals: Out,
    /// Summed ledger rows read (one per hour and grouping value).
    pub ledger_rows: u64,
    /// The ledger's node name (of its latest row; empty for an empty ledger).
    pub node: String,
    /// When the report was made (whole seconds).
    pub as_of: DateTime<Utc>,
    /// Whether the span had ended by then; a running one ends at `as_of`.
    pub complete: bool,
}

/// The output figures of ledger figures.
pub fn out_of(f: &Figures) -> Out {
    let v = &f.0;
    let costs = &v[figures::COST..figures::COST + 5];
    [
        (v[figures::GPU_ENERGY] + v[figures::HOST_ENERGY]) / 3.6e6,
        v[figures::FACILITY_ENERGY] / 3.6e6,
        costs[0],
        costs[1],
        costs[2],
        costs[3],
        costs[4],
        costs.iter().sum::<f64>() + 0.0,
        v[figures::CREDIT],
        v[figures::EMISSIONS] / 1000.0,
        v[figures::VALUE],
        v[figures::INPUT_TOKENS] + v[figures::OUTPUT_TOKENS],
        v[figures::REQUESTS],
    ]
}

/// The component rows of `out`: each cost on its own row; energy, facility
/// energy and credit on `energy`; emissions on `carbon`; value, tokens
/// and requests on `value`. They add up to `out`.
fn by_component(out: &Out) -> Vec<(&'static str, Out)> {
    let mut rows = Vec::new();
    let pick = |idx: &[usize]| {
        let mut o = [0.0; 13];
        for i in idx {
            o[*i] = out[*i];
        }
        o
    };
    let mut energy = pick(&[0, 1, 2, 8]);
    energy[7] = out[2];
    rows.push(("energy", energy));
    for (name, i) in [("capex", 3), ("maintenance", 4), ("staff", 5)] {
        let mut o = pick(&[i]);
        o[7] = out[i];
        rows.push((name, o));
    }
    let mut carbon = pick(&[6, 9]);
    carbon[7] = out[6];
    rows.push(("carbon", carbon));
    rows.push(("value", pick(&[10, 11, 12])));
    rows.retain(|(_, o)| o.iter().any(|v| *v != 0.0));
    rows
}

/// `tz`'s wall time `naive` as an instant (the earlier of an ambiguous
/// one; a time skipped by DST moves on to the first that exists).
fn local(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut n = naive;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&n).earliest() {
            return t.with_timezone(&Utc);
        }
        n += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&naive)
}

/// Start of the local month holding `t`, and of the next.
pub fn month_bounds(t: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let l = t.with_timezone(&tz);
    let first = NaiveDate::from_ymd_opt(l.year(), l.month(), 1).unwrap_or_default();
    let next = if l.month() == 12 {
        NaiveDate::from_ymd_opt(l.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(l.year(), l.month() + 1, 1)
    }
    .unwrap_or_default();
    (
        local(tz, first.and_hms_opt(0, 0, 0).unwrap_or_default()),
        local(tz, next.and_hms_opt(0, 0, 0).unwrap_or_default()),
    )
}

fn day_bounds(t: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let d = t.with_timezone(&tz).date_naive();
    let next = d.succ_opt().unwrap_or(d);
    (
        local(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default()),
        local(tz, next.and_hms_opt(0, 0, 0).unwrap_or_default()),
    )
}

/// Print a time in the report's zone (`Z` for UTC).
pub fn show(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parse a time argument: RFC 3339 (also with the `+` of its offset turned
/// into a space by URL decoding), a wall time without offset (in `tz`), a
/// date `YYYY-MM-DD` (its midnight in `tz`), or a month `YYYY-MM` (its first
/// midnight in `tz`).
pub fn parse_time(s: &str, tz: Tz) -> std::result::Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // A `+hh:mm` offset pasted into a URL unescaped arrives as a space.
    if s.len() > 20 && s.is_char_boundary(19) && s.is_char_boundary(20) && s.as_bytes()[19] == b' '
    {
        let fixed = format!("{}+{}", &s[..19], &s[20..]);
        if let Ok(t) = DateTime::parse_from_rfc3339(&fixed) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    // A wall time without an offset is in `tz`.
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(local(tz, n));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(local(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d") {
        return Ok(local(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    Err(format!(
        "{s:?} is not a time: use RFC 3339 (2026-12-01T00:00:00Z), a date (2026-12-01) or a month (2026-12)"
    ))
}

/// The span of a month `YYYY-MM` in `tz`.
pub fn month_span(s: &str, tz: Tz) -> std::result::Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let d = NaiveDate::parse_from_str(&format!("{}-01", s.trim()), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a month like 2026-11"))?;
    let start = local(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default());
    Ok(month_bounds(start, tz))
}

impl Ledger {
    /// The teams with rows whose hour starts in `[from, to)`, sorted.
    pub fn teams(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<String>> {
        let err = |e: rusqlite::Error| Error {
            path: self.path().to_path_buf(),
            message: e.to_string(),
        };
        let mut st = self
            .connection()
            .prepare_cached(
                "SELECT DISTINCT team FROM ledger WHERE hour_start >= ?1 AND hour_start < ?2 ORDER BY team",
            )
            .map_err(err)?;
        let rows = st
            .query_map(params![from.timestamp(), to.timestamp()], |r| {
                r.get::<_, String>(0)
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)
    }

    /// Why `q`'s `team` cannot be reported: a team without rows in the
    /// span (a typo would otherwise give an all-zero statement), with the
    /// teams that the span has. `None` when it has rows (or no team asked).
    pub fn unknown_team(&self, q: &Query) -> Result<Option<String>> {
        let Some(team) = &q.team else {
            return Ok(None);
        };
        let teams = self.teams(q.from, q.to)?;
        if teams.contains(team) {
            return Ok(None);
        }
        let span = format!("{} to {}", show(q.from, q.tz), show(q.to, q.tz));
        Ok(Some(if teams.is_empty() {
            format!("unknown team {team:?}: the ledger has no rows from {span}")
        } else {
            format!(
                "unknown team {team:?}: the teams from {span} are {}",
                teams.join(", ")
            )
        }))
    }

    /// Run a report over the rows whose hour starts in `[from, to)`, as of
    /// now.
    pub fn report(&self, q: &Query) -> Result<Report> {
        self.report_at(q, Utc::now())
    }

    /// Run a report as of `now`: a span (and each row's period) that ends
    /// after `now` ends at `now` instead, and the report is not complete.
    pub fn report_at(&self, q: &Query, now: DateTime<Utc>) -> Result<Report> {
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let complete = q.to <= now;
        let err = |m: String| Error {
            path: self.path().to_path_buf(),
            message: m,
        };
        if q.to <= q.from {
            return Err(err(format!(
                "--to ({}) must be after --from ({})",
                show(q.to, q.tz),
                show(q.from, q.tz)
            )));
        }
        let sql = group_sql(q);
        let mut st = self
            .connection()
            .prepare_cached(&sql)
            .map_err(|e| err(e.to_string()))?;
        let time_dim =
            q.by.iter()
                .copied()
                .filter(|d| matches!(d, Dim::Hour | Dim::Day | Dim::Month))
                .min_by_key(|d| match d {
                    Dim::Hour => 0,
                    Dim::Day => 1,
                    _ => 2,
                });
        let mut groups: BTreeMap<GroupKey, Figures> = BTreeMap::new();
        let mut currencies: Vec<String> = Vec::new();
        let mut totals = Figures::default();
        let mut n = 0u64;
        let mut rows = st
            .query(params![q.from.timestamp(), q.to.timestamp(), q.team])
            .map_err(|e| err(e.to_string()))?;
        // Month and day bounds are the same for every hour of a day: cache.
        let mut bounds_cache: BTreeMap<(i64, u8), (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        while let Some(r) = rows.next().map_err(|e| err(e.to_string()))? {
            n += 1;
            let get = |i: usize| -> rusqlite::Result<String> { r.get(i) };
            let hour: i64 = r.get(0).map_err(|e| err(e.to_string()))?;
            let currency = get(5).map_err(|e| err(e.to_string()))?;
            if !currencies.contains(&currency) {
                currencies.push(currency);
            }
            let mut f = Figures::default();
            for i in 0..N {
                f.0[i] = r.get(6 + i).map_err(|e| err(e.to_string()))?;
            }
            totals.add(&f);
            let t = DateTime::from_timestamp(hour, 0).unwrap_or_default();
            let hour_key = hour;
            let mut bounds = |kind: u8| {
                *bounds_cache.entry((hour_key, kind)).or_insert_with(|| {
                    if kind == 0 {
                        day_bounds(t, q.tz)
                    } else {
                        month_bounds(t, q.tz)
                    }
                })
            };
            let (ps, pe) = match time_dim {
                Some(Dim::Hour) => (t, t + chrono::Duration::hours(1)),
                Some(Dim::Day) => bounds(0),
                Some(_) => bounds(1),
                None => (q.from, q.to),
            };
            let mut dims = Vec::with_capacity(q.by.len());
            for d in &q.by {
                dims.push(match d {
                    Dim::Team => get(3).map_err(|e| err(e.to_string()))?,
                    Dim::Workload => get(4).map_err(|e| err(e.to_string()))?,
                    Dim::Gpu => get(2).map_err(|e| err(e.to_string()))?,
                    Dim::Node => get(1).map_err(|e| err(e.to_string()))?,
                    Dim::Component => String::new(),
                    Dim::Hour => show(t, q.tz),
                    Dim::Day => t.with_timezone(&q.tz).format("%Y-%m-%d").to_string(),
                    Dim::Month => t.with_timezone(&q.tz).format("%Y-%m").to_string(),
                });
            }
            groups
                .entry((ps.max(q.from), pe.min(q.to), dims))
                .or_default()
                .add(&f);
        }
        let currency = self.one_currency(currencies)?;
        let node = self.latest_node();
        let out_rows = report_rows(groups, q, now);
        Ok(Report {
            query: q.clone(),
            currency,
            rows: out_rows,
            totals: out_of(&totals),
            ledger_rows: n,
            node,
            as_of: now,
            complete,
        })
    }

    /// The one currency of a report's rows; with no rows, the checkpoint's.
    fn one_currency(&self, mut currencies: Vec<String>) -> Result<String> {
        if currencies.len() > 1 {
            return Err(Error {
                path: self.path().to_path_buf(),
                message: format!(
                    "the ledger holds several currencies in this span ({}); report the spans of each separately",
                    currencies.join(", ")
                ),
            });
        }
        Ok(match currencies.pop() {
            Some(c) => c,
            None => self
                .connection()
                .query_row(
                    "SELECT json_extract(counters, '$.currency') FROM checkpoint WHERE id = 1",
                    [],
                    |r| r.get::<_, Option<String>>(0),
                )
                .ok()
                .flatten()
                .unwrap_or_default(),
        })
    }

    /// The node of the newest ledger row ("" on an empty ledger).
    fn latest_node(&self) -> String {
        self.connection()
            .query_row(
                "SELECT node FROM ledger ORDER BY hour_start DESC, id DESC LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap_or_default()
    }
}

/// The query summing in SQL over what the grouping does not tell apart (an
/// hour's GPUs when grouping by team, …): fewer rows to bucket here.
fn group_sql(q: &Query) -> String {
    let col = |d: Dim, c: &'static str| if q.by.contains(&d) { c } else { "''" };
    format!(
        "SELECT hour_start, {}, {}, {}, {}, currency, {} FROM ledger \
         WHERE hour_start >= ?1 AND hour_start < ?2 AND (?3 IS NULL OR team = ?3) \
         GROUP BY 1, 2, 3, 4, 5, 6",
        col(Dim::Node, "node"),
        col(Dim::Gpu, "gpu_uuid"),
        col(Dim::Team, "team"),
        col(Dim::Workload, "workload"),
        figures::FIELDS
            .iter()
            .map(|f| format!("TOTAL({f})"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The report's rows, one per group (per group and component when grouping
/// by component); a period still running ends now.
fn report_rows(groups: BTreeMap<GroupKey, Figures>, q: &Query, now: DateTime<Utc>) -> Vec<Row> {
    let comp_at = q.by.iter().position(|d| *d == Dim::Component);
    // A period still running ends now (never before it starts).
    let clip = |ps: DateTime<Utc>, pe: DateTime<Utc>| pe.min(now.max(ps));
    let mut out_rows = Vec::with_capacity(groups.len());
    for ((ps, pe, dims), f) in groups {
        let out = out_of(&f);
        match comp_at {
            None => out_rows.push(Row {
                period_start: ps,
                period_end: clip(ps, pe),
                dims,
                out,
            }),
            Some(i) => {
                for (name, o) in by_component(&out) {
                    let mut d = dims.clone();
                    d[i] = name.to_string();
                    out_rows.push(Row {
                        period_start: ps,
                        period_end: clip(ps, pe),
                        dims: d,
                        out: o,
                    });
                }
            }
        }
    }
    out_rows
}

/// A CSV text cell: one that a spreadsheet would read as a formula (it
/// begins with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a
/// leading `'`, as OWASP recommends against CSV injection; then a cell
/// holding a comma, quote, CR or LF is quoted with its quotes doubled
/// (RFC 4180). Only for text: numbers the report writes go out as they are.
pub fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `s` fit for a file name: every character but `A-Z a-z 0-9 . _ -`
/// replaced by `_` (also what an HTTP header may carry quoted).
pub fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `v` as a plain decimal with `decimals` digits after the point: never an
/// exponent, no binary noise (`2.4000000000000004` → `2.400000`), no `-`
/// on a value that rounds to zero. Not finite: an empty cell.
pub fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

impl Report {
    /// The header: period, grouping columns, figures, currency, then the
    /// [`APPENDED`] columns.
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["period_start".to_string(), "period_end".to_string()];
        h.extend(self.query.by.iter().map(|d| d.name().to_string()));
        h.extend(COLUMNS.iter().map(|c| c.to_string()));
        h.push("currency".into());
        h.extend(APPENDED.iter().map(|c| c.to_string()));
        h
    }

    /// End of the report's span: `to`, or the time of the report while
    /// the span is still running.
    pub fn period_end(&self) -> DateTime<Utc> {
        if self.complete {
            self.query.to
        } else {
            self.as_of.max(self.query.from)
        }
    }

    /// The report's period as a file name part: `2026-12` for a whole
    /// month of the report's zone, `2026-12-01_2026-12-15` for whole days
    /// (the end exclusive, as `--to`), else both instants as printed, each
    /// made [`file_safe`] (`2026-12-01T06_00_00Z_2026-12-01T18_00_00Z`).
    pub fn period_name(&self) -> String {
        let (from, to, tz) = (self.query.from, self.query.to, self.query.tz);
        let local_from = from.with_timezone(&tz);
        if month_bounds(from, tz) == (from, to) {
            return local_from.format("%Y-%m").to_string();
        }
        let midnight = |t: DateTime<Utc>| day_bounds(t, tz).0 == t;
        if midnight(from) && midnight(to) {
            let local_to = to.with_timezone(&tz);
            return format!(
                "{}_{}",
                local_from.format("%Y-%m-%d"),
                local_to.format("%Y-%m-%d")
            );
        }
        format!(
            "{}_{}",
            file_safe(&show(from, tz)),
            file_safe(&show(to, tz))
        )
    }

    /// The file name a CSV download of this report gets:
    /// `roimon-<node>-<period>.csv`, only `A-Z a-z 0-9 . _ -` in it (a node
    /// name of the empty ledger is `unknown`).
    pub fn file_name(&self) -> String {
        let node = if self.node.is_empty() {
            "unknown"
        } else {
            &self.node
        };
        format!(
            "roimon-{}-{}.csv",
            file_safe(node),
            file_safe(&self.period_name())
        )
    }

    /// CSV: header, rows, then `TOTAL`. Text cells go through [`csv_text`];
    /// numbers are [`fixed`] (money and kWh 6 decimals, kg 3, tokens and
    /// requests whole); the totals are the unrounded sums, rounded once.
    pub fn to_csv(&self) -> String {
        let tz = self.query.tz;
        let mut s = self.header().join(",");
        s.push('\n');
        let mut line = |start: String, end: String, dims: &[String], out: &Out| {
            let mut cells = vec![csv_text(&start), csv_text(&end)];
            cells.extend(dims.iter().map(|d| csv_text(d)));
            cells.extend(
                out[..COLUMNS.len()]
                    .iter()
                    .zip(DECIMALS)
                    .map(|(v, d)| fixed(*v, d)),
            );
            cells.push(csv_text(&self.currency));
            cells.push(fixed(out[REQUESTS], DECIMALS[REQUESTS]));
            cells.push(fixed(net_cost(out), NET_DECIMALS));
            cells.push(roi(out).map_or(String::new(), |r| fixed(r, NET_DECIMALS)));
            s.push_str(&cells.join(","));
            s.push('\n');
        };
        for r in &self.rows {
            line(
                show(r.period_start, tz),
                show(r.period_end, tz),
                &r.dims,
                &r.out,
            );
        }
        let blank = vec![String::new(); self.query.by.len()];
        line("TOTAL".into(), String::new(), &blank, &self.totals);
        s
    }

    fn json_row(
        &self,
        start: String,
        end: String,
        dims: &[String],
        out: &Out,
    ) -> serde_json::Value {
        let z = |v: f64| serde_json::json!(if v == 0.0 { 0.0 } else { v });
        let mut m = serde_json::Map::new();
        m.insert("period_start".into(), start.into());
        m.insert("period_end".into(), end.into());
        for (d, v) in self.query.by.iter().zip(dims) {
            m.insert(d.name().into(), v.clone().into());
        }
        for (c, v) in COLUMNS.iter().zip(out) {
            m.insert((*c).into(), z(*v));
        }
        m.insert("currency".into(), self.currency.clone().into());
        m.insert("requests".into(), z(out[REQUESTS]));
        m.insert("net_cost".into(), z(net_cost(out)));
        m.insert("roi".into(), roi(out).map_or(serde_json::Value::Null, z));
        serde_json::Value::Object(m)
    }

    /// JSON: `{"currency", "from", "to", "period_end", "complete",
    /// "timezone", "by", "rows", "totals"}`, numbers at full precision.
    /// `to` is the span asked for; `period_end` is `to`, or the time of the
    /// report while the span runs (`complete` false).
    pub fn to_json(&self) -> serde_json::Value {
        let tz = self.query.tz;
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                self.json_row(
                    show(r.period_start, tz),
                    show(r.period_end, tz),
                    &r.dims,
                    &r.out,
                )
            })
            .collect();
        let blank = vec![String::new(); self.query.by.len()];
        let mut totals = self.json_row(
            show(self.query.from, tz),
            show(self.period_end(), tz),
            &blank,
            &self.totals,
        );
        if let Some(m) = totals.as_object_mut() {
            for d in &self.query.by {
                m.remove(d.name());
            }
        }
        serde_json::json!({
            "currency": self.currency,
            "from": show(self.query.from, tz),
            "to": show(self.query.to, tz),
            "period_end": show(self.period_end(), tz),
            "complete": self.complete,
            "timezone": tz.name(),
            "by": self.query.by.iter().map(|d| d.name()).collect::<Vec<_>>(),
            "rows": rows,
            "totals": totals,
        })
    }

    /// An aligned text table for people; a span still running ends with a
    /// line saying the figures are to date.
    pub fn to_table(&self) -> String {
        let tz = self.query.tz;
        let header = self.header();
        let mut lines: Vec<Vec<String>> = vec![header];
        let currency = self.currency.clone();
        let fmt = |out: &Out| -> Vec<String> {
            let mut cells: Vec<String> = out[..COLUMNS.len()]
                .iter()
                .enumerate()
                .map(|(i, v)| fixed(*v, if i == 11 { 0 } else { 4 }))
                .collect();
            cells.push(currency.clone());
            cells.push(fixed(out[REQUESTS], 0));
            cells.push(fixed(net_cost(out), 4));
            cells.push(roi(out).map_or(String::new(), |r| fixed(r, 4)));
            cells
        };
        for r in &self.rows {
            let mut l = vec![show(r.period_start, tz), show(r.period_end, tz)];
            l.extend(r.dims.iter().cloned());
            l.extend(fmt(&r.out));
            lines.push(l);
        }
        let mut l = vec!["TOTAL".to_string(), String::new()];
        l.extend(std::iter::repeat_n(String::new(), self.query.by.len()));
        l.extend(fmt(&self.totals));
        lines.push(l);
        let cols = lines[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric_from = 2 + self.query.by.len();
        let currency_at = numeric_from + COLUMNS.len();
        let mut s = String::new();
        for l in &lines {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    if c >= numeric_from && c != currency_at {
                        format!("{v:>w$}", w = widths[c])
                    } else {
                        format!("{v:<w$}", w = widths[c])
                    }
                })
                .collect();
            let _ = writeln!(s, "{}", cells.join("  ").trim_end());
        }
        if !self.complete {
            let _ = writeln!(
                s,
                "to date: {} to {} (the period runs to {})",
                show(self.query.from, tz),
                show(self.period_end(), tz),
                show(self.query.to, tz)
            );
        }
        s
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => self.to_csv(),
            Format::Json => {
                let mut s = self.to_json().to_string();
                s.push('\n');
                s
            }
            Format::Table => self.to_table(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(by: Vec<Dim>, from: &str, to: &str, tz: Tz, rows: Vec<(Vec<&str>, Out)>) -> Report {
        let t = |s: &str| parse_time(s, tz).unwrap();
        let (from, to) = (t(from), t(to));
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(dims, out)| Row {
                period_start: from,
                period_end: to,
                dims: dims.into_iter().map(String::from).collect(),
                out,
            })
            .collect();
        let mut totals = [0.0; 13];
        for r in &rows {
            for (t, v) in totals.iter_mut().zip(r.out) {
                *t += v;
            }
        }
        Report {
            query: Query {
                from,
                to,
                by,
                tz,
                team: None,
            },
            currency: "EUR".into(),
            rows,
            totals,
            ledger_rows: 1,
            node: "node-7".into(),
            as_of: to,
            complete: true,
        }
    }

    #[test]
    fn text_cells_that_a_spreadsheet_would_run_are_neutralised() {
        for (cell, want) in [
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            // Neutralised, then quoted: it holds a CR.
            ("\rx", "\"'\rx\""),
            // Quoted after neutralising, quotes doubled.
            (
                "=HYPERLINK(\"http://x\",\"a\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"a\"\")\"",
            ),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("search", "search"),
            ("team-a", "team-a"),
            ("", ""),
        ] {
            assert_eq!(csv_text(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn csv_neutralises_text_and_leaves_negative_numbers_alone() {
        let mut credit = [0.0; 13];
        credit[8] = -0.0123;
        credit[10] = -1.5;
        let mut plain = [0.0; 13];
        plain[7] = 2.25;
        let r = report(
            vec![Dim::Team, Dim::Workload],
            "2026-12",
            "2027-01",
            chrono_tz::UTC,
            vec![(vec!["=1+2", "-w"], credit), (vec!["@team", "a,b"], plain)],
        );
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[1],
            "2026-12-01T00:00:00Z,2027-01-01T00:00:00Z,'=1+2,'-w,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,-0.012300,0.000,-1.500000,0,EUR,0,0.012300,-122.951220"
        );
        assert_eq!(
            lines[2],
            "2026-12-01T00:00:00Z,2027-01-01T00:00:00Z,'@team,\"a,b\",0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,2.250000,0.000000,0.000,0.000000,0,EUR,0,2.250000,-1.000000"
        );
        assert_eq!(
            lines[3],
            "TOTAL,,,,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,2.250000,-0.012300,0.000,-1.500000,0,EUR,0,2.262300,-1.663042"
        );
    }

    #[test]
    fn numbers_are_plain_decimals_of_fixed_precision() {
        for (v, d, want) in [
            (2.4000000000000004, 6, "2.400000"),
            (0.14259581760178214, 6, "0.142596"),
            (1e-9, 6, "0.000000"),
            (-1e-9, 6, "0.000000"),
            (-0.0, 6, "0.000000"),
            (12345678901.5, 6, "12345678901.500000"),
            (1e21, 0, "1000000000000000000000"),
            (0.0004, 3, "0.000"),
            (0.0005001, 3, "0.001"),
            (-2.5, 6, "-2.500000"),
            (f64::NAN, 6, ""),
        ] {
            assert_eq!(fixed(v, d), want, "{v:e} with {d} decimals");
        }
    }

    #[test]
    fn csv_cells_have_fixed_decimals_and_no_exponent_even_when_tiny_or_huge() {
        let mut tiny = [1e-9; 13];
        tiny[REQUESTS] = 3.0;
        let mut huge = [12345678901.5; 13];
        huge[11] = 2e20;
        huge[REQUESTS] = 1e17;
        let r = report(
            vec![Dim::Team],
            "2026-12",
            "2027-01",
            chrono_tz::UTC,
            vec![(vec!["tiny"], tiny), (vec!["huge"], huge)],
        );
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        for l in &lines[1..] {
            assert!(!l.split(',').skip(3).any(|c| c.contains('e')), "{csv}");
        }
        let tiny_cells: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(
            tiny_cells[3..],
            [
                "0.000000", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000",
                "0.000000", "0.000000", "0.000", "0.000000", "0", "EUR", "3", "0.000000", ""
            ],
            "{csv}"
        );
        let huge_cells: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(huge_cells[3], "12345678901.500000", "{csv}");
        assert_eq!(huge_cells[12], "12345678901.500", "{csv}");
        assert_eq!(huge_cells[14], "200000000000000000000", "{csv}");
        assert_eq!(huge_cells[16], "100000000000000000", "{csv}");
        // cost_total − credit = 0: no ROI.
        assert_eq!(huge_cells[17], "0.000000", "{csv}");
        assert_eq!(huge_cells[18], "", "{csv}");
    }

    #[test]
    fn totals_are_the_unrounded_sums_rounded_once() {
        // Three rows of 0.4 µEUR each show 0.000000; their sum shows 0.000001.
        let mut small = [0.0; 13];
        small[2] = 0.0000004;
        small[7] = 0.0000004;
        // 0.1 + 0.2 is 0.30000000000000004 in binary: written 0.300000.
        let mut a = [0.0; 13];
        a[10] = 0.1;
        let mut b = [0.0; 13];
        b[10] = 0.2;
        let r = report(
            vec![Dim::Workload],
            "2026-12",
            "2027-01",
            chrono_tz::UTC,
            vec![
                (vec!["x"], small),
                (vec!["y"], small),
                (vec!["z"], small),
                (vec!["a"], a),
                (vec!["b"], b),
            ],
        );
        let csv = r.to_csv();
        let total: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
        assert_eq!(total[0], "TOTAL");
        assert_eq!(total[5], "0.000001", "cost_energy: {csv}");
        assert_eq!(total[10], "0.000001", "cost_total: {csv}");
        assert_eq!(total[13], "0.300000", "value: {csv}");
        assert_eq!(total[17], "0.000001", "net_cost: {csv}");
        for l in csv.lines().skip(1).take(3) {
            assert_eq!(l.split(',').nth(10), Some("0.000000"), "{csv}");
        }
    }

    #[test]
    fn requests_net_cost_and_roi_follow_currency_in_csv_json_and_table() {
        let mut o = [0.0; 13];
        o[7] = 10.0; // cost_total
        o[8] = 2.0; // credit
        o[10] = 12.0; // value
        o[11] = 1000.0; // tokens
        o[REQUESTS] = 42.0;
        let r = report(
            vec![Dim::Team],
            "2026-12",
            "2027-01",
            chrono_tz::UTC,
            vec![(vec!["search"], o)],
        );
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "period_start,period_end,team,energy_kwh,facility_energy_kwh,cost_energy,cost_capex,cost_maintenance,cost_staff,cost_carbon,cost_total,credit,emissions_kg,value,tokens,currency,requests,net_cost,roi"
        );
        assert!(
            lines[1].ends_with(",12.000000,1000,EUR,42,8.000000,0.500000"),
            "{csv}"
        );
        let j = r.to_json();
        assert_eq!(j["rows"][0]["requests"], 42.0);
        assert_eq!(j["rows"][0]["net_cost"], 8.0);
        assert_eq!(j["rows"][0]["roi"], 0.5);
        assert_eq!(j["totals"]["roi"], 0.5);
        assert_eq!(j["complete"], true);
        assert_eq!(j["period_end"], "2027-01-01T00:00:00Z");
        let t = r.to_table();
        assert!(
            t.lines()
                .next()
                .unwrap()
                .ends_with("currency  requests  net_cost     roi"),
            "{t}"
        );
        assert!(t.contains("EUR             42    8.0000  0.5000"), "{t}");
        assert!(!t.contains("to date"), "{t}");
        // Without net cost the ROI is empty (null in JSON).
        let r = report(
            vec![],
            "2026-12",
            "2027-01",
            chrono_tz::UTC,
            vec![(vec![], [0.0; 13])],
        );
        assert!(
            r.to_csv()
                .lines()
                .nth(1)
                .unwrap()
                .ends_with(",EUR,0,0.000000,")
        );
        assert!(r.to_json()["totals"]["roi"].is_null());
    }

    #[test]
    fn a_running_period_ends_now_and_says_it_is_to_date() {
        let mut r = report(vec![], "2026-12", "2027-01", chrono_tz::UTC, vec![]);
        r.as_of = parse_time("2026-12-06T23:10:00Z", chrono_tz::UTC).unwrap();
        r.complete = false;
        let j = r.to_json();
        assert_eq!(j["complete"], false);
        assert_eq!(j["period_end"], "2026-12-06T23:10:00Z");
        assert_eq!(j["to"], "2027-01-01T00:00:00Z");
        assert_eq!(j["totals"]["period_end"], "2026-12-06T23:10:00Z");
        let t = r.to_table();
        assert!(
            t.ends_with(
                "to date: 2026-12-01T00:00:00Z to 2026-12-06T23:10:00Z (the period runs to 2027-01-01T00:00:00Z)\n"
            ),
            "{t}"
        );
    }

    #[test]
    fn the_file_name_names_node_and_period_in_safe_characters() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let month = report(vec![], "2026-12", "2027-01", berlin, vec![]);
        assert_eq!(month.period_name(), "2026-12");
        assert_eq!(month.file_name(), "roimon-node-7-2026-12.csv");
        let days = report(vec![], "2026-12-01", "2026-12-15", berlin, vec![]);
        assert_eq!(days.file_name(), "roimon-node-7-2026-12-01_2026-12-15.csv");
        let span = report(
            vec![],
            "2026-12-01T06:00:00Z",
            "2026-12-01T18:30:00Z",
            berlin,
            vec![],
        );
        assert_eq!(
            span.file_name(),
            "roimon-node-7-2026-12-01T07_00_00_01_00_2026-12-01T19_30_00_01_00.csv"
        );
        let mut odd = month.clone();
        odd.node = "gpu \"7\"\r\n/../x;é".into();
        assert_eq!(odd.file_name(), "roimon-gpu__7____.._x__-2026-12.csv");
        odd.node.clear();
        assert_eq!(odd.file_name(), "roimon-unknown-2026-12.csv");
    }
}
