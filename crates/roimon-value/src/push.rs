//! Pushed value (`POST /api/v2/write`): InfluxDB v2 line protocol, read with
//! InfluxData's own parser, into money points (`roimon_value`) and KPI
//! score points (`roimon_kpi`). A batch is all or nothing: the whole body is
//! checked before anything is returned, and the first bad line is named.
//! [`Dedup`] makes a client's retry of an identical point count once.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

/// The money measurement.
pub const VALUE_MEASUREMENT: &str = "roimon_value";
/// The KPI score measurement.
pub const KPI_MEASUREMENT: &str = "roimon_kpi";

/// The unit of the timestamps in a body (the `precision` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
        }
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ns" => Precision::Ns,
            "us" => Precision::Us,
            "ms" => Precision::Ms,
            "s" => Precision::S,
            _ => return Err(format!("unknown precision `{s}` (ns, us, ms or s)")),
        })
    }
}

/// What a batch is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRules {
    /// The price currency: a `currency` tag must equal it.
    pub currency: String,
    /// Oldest accepted timestamp, seconds before `now`.
    pub max_past_secs: u64,
    /// Newest accepted timestamp, seconds after `now`.
    pub max_future_secs: u64,
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
    /// Most points in one body.
    pub max_points: usize,
    /// Largest `amount` of one point, in the price currency.
    pub max_amount: f64,
    /// Longest tag key or value and KPI name, in bytes.
    pub max_tag_bytes: usize,
    /// The KPI names a point may carry (`None`: any name).
    pub kpi_names: Option<BTreeSet<String>>,
    /// The owners a point may name (`None`: any owner).
    pub owners: Option<KnownOwners>,
}

/// The owners a node knows: exact (team, workload) pairs and whole teams
/// (`team/*`, or a budget without a workload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownOwners {
    /// Exact (team, workload) pairs.
    pub pairs: BTreeSet<(String, String)>,
    /// Teams whose every workload is known.
    pub teams: BTreeSet<String>,
}

impl KnownOwners {
    /// Add `team/workload`, or `team/*` (every workload of the team).
    pub fn add(&mut self, team: &str, workload: &str) {
        if workload == "*" {
            self.teams.insert(team.to_owned());
        } else {
            self.pairs.insert((team.to_owned(), workload.to_owned()));
        }
    }

    /// Whether `team/workload` is known.
    pub fn admits(&self, team: &str, workload: &str) -> bool {
        self.teams.contains(team) || self.pairs.contains(&(team.to_owned(), workload.to_owned()))
    }

    /// The known owners as `team/workload` and `team/*`, at most `max`
    /// named (then `… and N more`).
    pub fn describe(&self, max: usize) -> String {
        let all: Vec<String> = self
            .teams
            .iter()
            .map(|t| format!("{t}/*"))
            .chain(self.pairs.iter().map(|(t, w)| format!("{t}/{w}")))
            .collect();
        if all.is_empty() {
            return "none".into();
        }
        let mut s = all.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
        if all.len() > max {
            s.push_str(&format!(" and {} more", all.len() - max));
        }
        s
    }
}

/// The workload a point without a `workload` tag is booked to.
pub const NO_WORKLOAD: &str = "unallocated";

/// Check a tag key or value, KPI name or label from outside: at most
/// `max` bytes, no control characters. `what` names it in the error.
pub fn check_name(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max {
        return Err(format!(
            "{what} is {} bytes long, over the {max}-byte limit",
            v.len()
        ));
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} holds the control character {:?}; names are printable text",
            c
        ));
    }
    Ok(())
}

impl PushRules {
    /// Defaults for `currency`: 7 days back, 10 minutes ahead, 4 MiB,
    /// 50,000 points, amounts up to 1e9, names up to 128 bytes, any KPI
    /// name and any owner.
    pub fn new(currency: impl Into<String>) -> Self {
        PushRules {
            currency: currency.into(),
            max_past_secs: 7 * 86_400,
            max_future_secs: 600,
            max_body_bytes: 4 << 20,
            max_points: 50_000,
            max_amount: 1e9,
            max_tag_bytes: 128,
            kpi_names: None,
            owners: None,
        }
    }
}

/// Why a batch was refused (nothing of it is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The body is over [`PushRules::max_body_bytes`] (HTTP 413).
    #[error("body of {len} bytes is over the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    /// The first bad line (1-based) and why (HTTP 400).
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    /// The first line naming an owner this node does not know (HTTP 400).
    #[error("line {line}: {reason}")]
    UnknownOwner { line: usize, reason: String },
}

impl PushError {
    /// The line named, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            PushError::TooLarge { .. } => None,
            PushError::Line { line, .. } | PushError::UnknownOwner { line, .. } => Some(*line),
        }
    }
}

/// What a point carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PointData {
    /// `roimon_value amount=…`: money produced, in the price currency.
    Value { amount: f64 },
    /// `roimon_kpi name=score,…`: benefit indicator scores.
    Kpi { scores: BTreeMap<String, f64> },
}

/// One accepted point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedPoint {
    pub team: String,
    /// `""` when the point has no `workload` tag.
    pub workload: String,
    /// Nanoseconds since the Unix epoch (`now` when the line had none).
    pub at_ns: i64,
    pub data: PointData,
    /// The 1-based line it came from.
    pub line: usize,
    /// Identity for [`Dedup`]: measurement, every tag, every field, time.
    pub key: PointKey,
}

/// A 128-bit digest of a point's identity (two 64-bit multiply-rotate
/// lanes over 8-byte words); fixed here, so stable across versions and
/// restarts (it is saved with [`Dedup`]). Not for adversaries: a client can
/// only collide its own points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PointKey(pub [u64; 2]);

struct Digest(u64, u64);

impl Digest {
    fn new() -> Self {
        Digest(0x6c62_272e_07bb_0142, 0x62b8_2175_6295_c58d)
    }
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
        self.1 = (self.1 ^ w.rotate_left(32))
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            .rotate_left(31);
    }
    /// Bytes, then their length, so ("ab","c") != ("a","bc").
    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w));
        self.word(b.len() as u64);
    }
    fn key(&self) -> PointKey {
        let f = |mut x: u64| {
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            x ^ (x >> 33)
        };
        PointKey([
            f(self.0 ^ self.1.rotate_left(17)),
            f(self.1 ^ self.0.rotate_left(41)),
        ])
    }
}

/// Parse and check a whole body. Blank lines and `#` comments are skipped;
/// a line without a timestamp is stamped `now_ns`. Any bad line refuses
/// the batch, naming the first one.
pub fn parse_batch(
    body: &[u8],
    precision: Precision,
    now_ns: i64,
    rules: &PushRules,
) -> Result<Vec<PushedPoint>, PushError> {
    if body.len() > rules.max_body_bytes {
        return Err(PushError::TooLarge {
            len: body.len(),
            max: rules.max_body_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| PushError::Line {
        line: 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: format!("not UTF-8 (byte offset {})", e.valid_up_to()),
    })?;
    let oldest = now_ns.saturating_sub((rules.max_past_secs as i64).saturating_mul(1_000_000_000));
    let newest =
        now_ns.saturating_add((rules.max_future_secs as i64).saturating_mul(1_000_000_000));
    let window = Window {
        precision,
        now_ns,
        oldest,
        newest,
    };
    let mut out = Vec::new();
    let mut line = 1;
    for piece in influxdb_line_protocol::split_lines(text) {
        let this = line;
        line += 1 + piece.bytes().filter(|&b| b == b'\n').count();
        let l = piece.strip_suffix('\r').unwrap_or(piece);
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if out.len() >= rules.max_points {
            return Err(PushError::Line {
                line: this,
                reason: format!(
                    "more than {} points in one body (the cap)",
                    rules.max_points
                ),
            });
        }
        let p = point(t, this, &window, rules).map_err(|e| match e {
            Refused::Bad(reason) => PushError::Line { line: this, reason },
            Refused::Owner(reason) => PushError::UnknownOwner { line: this, reason },
        })?;
        out.push(p);
    }
    Ok(out)
}

struct Window {
    precision: Precision,
    now_ns: i64,
    oldest: i64,
    newest: i64,
}

enum Refused {
    Bad(String),
    Owner(String),
}

impl From<String> for Refused {
    fn from(s: String) -> Self {
        Refused::Bad(s)
    }
}

fn point(l: &str, line: usize, w: &Window, rules: &PushRules) -> Result<PushedPoint, Refused> {
    let parsed = influxdb_line_protocol::parse_lines(l)
        .next()
        .ok_or_else(|| "empty line".to_owned())?
        .map_err(|e| format!("not line protocol: {e}"))?;
    let measurement = parsed.series.measurement.as_str();
    let is_value = match measurement {
        VALUE_MEASUREMENT => true,
        KPI_MEASUREMENT => false,
        other => {
            return Err(format!(
                "measurement `{other}`: only `{VALUE_MEASUREMENT}` and `{KPI_MEASUREMENT}` are accepted"
            ).into());
        }
    };
    let mut h = Digest::new();
    h.bytes(measurement.as_bytes());
    let mut team = None;
    let mut workload = String::new();
    let mut tags: Vec<(&str, &str)> = parsed
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    tags.sort_unstable();
    if let Some(d) = tags.windows(2).find(|d| d[0].0 == d[1].0) {
        return Err(format!("tag `{}` twice", d[0].0).into());
    }
    for &(k, v) in &tags {
        check_name(&format!("tag key `{}`", short(k)), k, rules.max_tag_bytes)?;
        check_name(&format!("tag `{}`", short(k)), v, rules.max_tag_bytes)?;
        match k {
            "team" => team = Some(v.to_owned()),
            "workload" => workload = v.to_owned(),
            "currency" if is_value && v != rules.currency => {
                return Err(format!(
                    "currency `{v}` is not the configured currency `{}`",
                    rules.currency
                )
                .into());
            }
            "currency" if is_value => {}
            "currency" => {
                return Err(format!(
                    "`currency` tag on `{KPI_MEASUREMENT}` (scores have no currency)"
                )
                .into());
            }
            _ => {}
        }
        h.bytes(k.as_bytes());
        h.bytes(v.as_bytes());
    }
    let team = team
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "missing `team` tag".to_owned())?;

    let fields = number_fields(&parsed, rules)?;
    for &(k, x) in &fields {
        h.bytes(k.as_bytes());
        h.bytes(&x.to_bits().to_le_bytes());
    }

    let at_ns = match parsed.timestamp {
        None => w.now_ns,
        Some(t) => t
            .checked_mul(w.precision.nanos())
            .ok_or_else(|| format!("timestamp {t} overflows in precision {:?}", w.precision))?,
    };
    if at_ns < w.oldest || at_ns > w.newest {
        let secs = (at_ns as i128 - w.now_ns as i128) / 1_000_000_000;
        return Err(format!(
            "timestamp {} is {} s from now, outside the accepted window ({} s back, {} s ahead); is `precision` right?",
            parsed.timestamp.unwrap_or_default(),
            secs,
            rules.max_past_secs,
            rules.max_future_secs
        ).into());
    }
    h.bytes(&at_ns.to_le_bytes());

    let data = point_data(is_value, &fields, rules)?;
    check_owner(rules, &team, &workload)?;
    Ok(PushedPoint {
        team,
        workload,
        at_ns,
        data,
        line,
        key: h.key(),
    })
}

/// The fields of a point: numbers only, finite, each name once, in name order.
fn number_fields<'a>(
    parsed: &'a influxdb_line_protocol::ParsedLine<'_>,
    rules: &PushRules,
) -> Result<Vec<(&'a str, f64)>, Refused> {
    let mut fields: Vec<(&str, f64)> = Vec::with_capacity(parsed.field_set.len());
    for (k, v) in &parsed.field_set {
        use influxdb_line_protocol::FieldValue as F;
        let x = match v {
            F::F64(x) => *x,
            F::I64(x) => *x as f64,
            F::U64(x) => *x as f64,
            // Any other kind is not a figure.
            F::String(_) | F::Boolean(_) => {
                return Err(format!("field `{}` is not a number", k.as_str()).into());
            }
        };
        check_name(
            &format!("field name `{}`", short(k.as_str())),
            k.as_str(),
            rules.max_tag_bytes,
        )?;
        if !x.is_finite() {
            return Err(format!("field `{}` is {x}, not a finite number", k.as_str()).into());
        }
        fields.push((k.as_str(), x));
    }
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(d) = fields.windows(2).find(|d| d[0].0 == d[1].0) {
        return Err(format!("field `{}` twice", d[0].0).into());
    }
    Ok(fields)
}

/// What a point says: one amount of value, or KPI scores in [0, 1].
fn point_data(
    is_value: bool,
    fields: &[(&str, f64)],
    rules: &PushRules,
) -> Result<PointData, Refused> {
    if is_value {
        let [(name, amount)] = fields[..] else {
            return Err(format!("`{VALUE_MEASUREMENT}` takes exactly one field, `amount`").into());
        };
        if name != "amount" {
            return Err(format!(
                "field `{name}`: `{VALUE_MEASUREMENT}` takes exactly one field, `amount`"
            )
            .into());
        }
        if amount < 0.0 {
            return Err(format!("amount {amount} is negative").into());
        }
        if amount > rules.max_amount {
            return Err(format!(
                "amount {amount} is over the {} cap for one point (push.max_amount)",
                rules.max_amount
            )
            .into());
        }
        Ok(PointData::Value { amount })
    } else {
        for &(k, x) in fields {
            if !(0.0..=1.0).contains(&x) {
                return Err(format!(
                    "KPI `{k}` = {x}: scores lie between 0 and 1, as in [[value.kpis]]"
                )
                .into());
            }
            if let Some(known) = &rules.kpi_names
                && !known.contains(k)
            {
                let names: Vec<&str> = known.iter().map(String::as_str).take(16).collect();
                return Err(format!(
                    "KPI `{k}` is not a benefit indicator this node knows (roi.benefit_weights, [[value.kpis]]: {}); set push.allow_new_kpis = true to accept new names",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                )
                .into());
            }
        }
        Ok(PointData::Kpi {
            scores: fields.iter().map(|&(k, x)| (k.to_owned(), x)).collect(),
        })
    }
}

/// Refuses an owner this node does not know, when it checks owners.
fn check_owner(rules: &PushRules, team: &str, workload: &str) -> Result<(), Refused> {
    if let Some(known) = &rules.owners {
        let wl = if workload.is_empty() {
            NO_WORKLOAD
        } else {
            workload
        };
        if !known.admits(team, wl) {
            let hint = if workload.is_empty() {
                " (the point has no `workload` tag)"
            } else {
                ""
            };
            return Err(Refused::Owner(format!(
                "owner `{team}/{wl}`{hint} is not known to this node (known: {}); add it to push.allowed_owners or set push.allow_unknown_owners = true",
                known.describe(8)
            )));
        }
    }
    Ok(())
}

/// Remembers the points applied recently so an identical point sent again
/// (a retry) counts once. Bounded by entries and by age; lookups are O(1).
/// Keep the age at least [`PushRules::max_past_secs`], so that every retry
/// the push window still accepts is recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "DedupRepr", into = "DedupRepr")]
pub struct Dedup {
    max_entries: usize,
    max_age_ns: i64,
    /// Keys in the order applied, with when (ns) they were applied.
    order: VecDeque<(PointKey, i64)>,
    set: HashSet<PointKey>,
    /// Changes since the last [`Dedup::take_changes`], in order (kept only
    /// once [`Dedup::journal`] turned it on), for a store that saves the
    /// window incrementally.
    changes: Option<Vec<Change>>,
}

/// A change to the window, for an incremental store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Remembered, applied at this time (ns).
    Add(PointKey, i64),
    /// Forgotten (expired or evicted).
    Remove(PointKey),
}

#[derive(Serialize, Deserialize)]
struct DedupRepr {
    max_entries: usize,
    max_age_ns: i64,
    entries: Vec<(PointKey, i64)>,
}

impl From<DedupRepr> for Dedup {
    fn from(r: DedupRepr) -> Self {
        let mut d = Dedup::new(r.max_entries, r.max_age_ns);
        for (k, at) in r.entries {
            d.remember(k, at);
        }
        d
    }
}

impl From<Dedup> for DedupRepr {
    fn from(d: Dedup) -> Self {
        DedupRepr {
            max_entries: d.max_entries,
            max_age_ns: d.max_age_ns,
            entries: d.order.into_iter().collect(),
        }
    }
}

/// The outcome of applying a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// Points seen for the first time, in body order.
    pub points: Vec<PushedPoint>,
    /// Points dropped as already applied.
    pub duplicates: usize,
}

impl Dedup {
    /// Remember at most `max_entries` points for at most `max_age_ns`.
    pub fn new(max_entries: usize, max_age_ns: i64) -> Self {
        Dedup {
            max_entries,
            max_age_ns,
            order: VecDeque::new(),
            set: HashSet::new(),
            changes: None,
        }
    }

    /// A window holding `entries` (key, applied at ns), oldest first, as an
    /// incremental store gave them back.
    pub fn load(
        max_entries: usize,
        max_age_ns: i64,
        entries: impl IntoIterator<Item = (PointKey, i64)>,
    ) -> Self {
        let mut d = Dedup::new(max_entries, max_age_ns);
        for (k, at) in entries {
            d.remember(k, at);
        }
        d
    }

    /// Keep every change from now on until taken (an incremental store).
    /// With `everything`, the entries held now count as added.
    pub fn journal(&mut self, everything: bool) {
        let mut v = Vec::new();
        if everything {
            v.extend(self.order.iter().map(|&(k, at)| Change::Add(k, at)));
        }
        self.changes = Some(v);
    }

    /// The changes since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Put back changes a store could not write (they go before any made
    /// since), so the next write carries them.
    pub fn restore_changes(&mut self, mut earlier: Vec<Change>) {
        if let Some(c) = &mut self.changes {
            earlier.append(c);
            *c = earlier;
        }
    }

    fn note(&mut self, c: Change) {
        if let Some(v) = &mut self.changes {
            v.push(c);
        }
    }

    /// Points remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `key` was applied within the window.
    pub fn contains(&self, key: &PointKey) -> bool {
        self.set.contains(key)
    }

    /// Apply new limits (a changed configuration) to a window loaded from
    /// the state: the oldest entries go first if it is now smaller.
    pub fn set_limits(&mut self, max_entries: usize, max_age_ns: i64, now_ns: i64) {
        self.max_entries = max_entries;
        self.max_age_ns = max_age_ns;
        self.expire(now_ns);
    }

    fn expire(&mut self, now_ns: i64) {
        let oldest = now_ns.saturating_sub(self.max_age_ns);
        while let Some(&(k, at)) = self.order.front() {
            if at >= oldest && self.order.len() <= self.max_entries {
                break;
            }
            self.order.pop_front();
            self.set.remove(&k);
            self.note(Change::Remove(k));
        }
    }

    fn remember(&mut self, key: PointKey, now_ns: i64) -> bool {
        if self.max_entries == 0 || !self.set.insert(key) {
            return self.max_entries == 0;
        }
        self.order.push_back((key, now_ns));
        self.note(Change::Add(key, now_ns));
        if self.order.len() > self.max_entries
            && let Some((k, _)) = self.order.pop_front()
        {
            self.set.remove(&k);
            self.note(Change::Remove(k));
        }
        true
    }

    /// Keep the points not applied before (nor earlier in `points`) and
    /// remember them.
    pub fn admit(&mut self, points: Vec<PushedPoint>, now_ns: i64) -> Applied {
        self.expire(now_ns);
        let mut out = Applied::default();
        for p in points {
            if self.remember(p.key, now_ns) {
                out.points.push(p);
            } else {
                out.duplicates += 1;
            }
        }
        out
    }
}

/// Parse and check a whole body, then drop what `dedup` has seen: either
/// the error of the first bad line (and `dedup` untouched) or the new points.
pub fn apply(
    body: &[u8],
    precision: Precision,
    now_ns: i64,
    rules: &PushRules,
    dedup: &mut Dedup,
) -> Result<Applied, PushError> {
    let points = parse_batch(body, precision, now_ns, rules)?;
    Ok(dedup.admit(points, now_ns))
}

/// The first 32 characters of a name, for an error message.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(32).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 32 {
        out.push('…');
    }
    out
}

impl fmt::Display for PointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.0[0], self.0[1])
    }
}
