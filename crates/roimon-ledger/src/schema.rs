//! The ledger's SQLite schema and its migrations. The schema version is
//! `PRAGMA user_version`; migration `n` takes a database from version `n`
//! to `n + 1` in one transaction. Documented for readers in `docs/ledger.md`.

use crate::figures::FIELDS;

/// Each entry moves the schema up one version.
pub fn migrations() -> Vec<String> {
    let figures = |prefix: &str| {
        FIELDS
            .iter()
            .map(|f| format!("{prefix}{f} REAL NOT NULL DEFAULT 0"))
            .collect::<Vec<_>>()
            .join(",\n  ")
    };
    let cost_total = "(cost_energy + cost_capex + cost_maintenance + cost_staff + cost_carbon)";
    let closed_triggers = r#"CREATE TRIGGER ledger_closed_no_update BEFORE UPDATE ON ledger WHEN OLD.closed = 1
BEGIN
  SELECT RAISE(ABORT, 'closed ledger hours are immutable: add a row of kind ''correction'' instead');
END;
CREATE TRIGGER ledger_closed_no_delete BEFORE DELETE ON ledger
  WHEN OLD.closed = 1 AND (SELECT purging FROM ledger_gate) = 0
BEGIN
  SELECT RAISE(ABORT, 'closed ledger hours are immutable: only the retention purge removes them');
END;
"#;
    let readable_with = |extra: &str| {
        format!(
            r#"CREATE VIEW ledger_readable AS
SELECT datetime(hour_start, 'unixepoch') AS hour_utc, node, gpu_uuid, team, workload, kind,
  closed, currency,
  (gpu_energy_joules + host_energy_joules) / 3.6e6 AS energy_kwh,
  facility_energy_joules / 3.6e6 AS facility_energy_kwh,
  {cost_total} AS cost_total, credit, emissions_grams / 1000.0 AS emissions_kg,
  value, input_tokens + output_tokens AS tokens, requests,
  priced_secs_source, priced_secs_fallback, price_source, reason{extra}
FROM ledger;
"#
        )
    };
    let readable = readable_with("");
    let v1 = format!(
        r#"
CREATE TABLE checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  saved_at TEXT NOT NULL,
  counters TEXT NOT NULL,
  book TEXT NOT NULL
);
CREATE TABLE ledger (
  id INTEGER PRIMARY KEY,
  hour_start INTEGER NOT NULL,
  node TEXT NOT NULL,
  gpu_uuid TEXT NOT NULL,
  team TEXT NOT NULL,
  workload TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('hour', 'opening', 'correction')),
  closed INTEGER NOT NULL CHECK (closed IN (0, 1)),
  reason TEXT,
  currency TEXT NOT NULL,
  {fields},
  priced_secs_source REAL NOT NULL DEFAULT 0,
  priced_secs_fallback REAL NOT NULL DEFAULT 0,
  price_source TEXT NOT NULL,
  written_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ledger_hour_key
  ON ledger (hour_start, node, gpu_uuid, team, workload) WHERE kind = 'hour';
CREATE INDEX ledger_by_hour ON ledger (hour_start);
CREATE TABLE ledger_purged (
  node TEXT NOT NULL,
  gpu_uuid TEXT NOT NULL,
  team TEXT NOT NULL,
  workload TEXT NOT NULL,
  {fields},
  purged_before INTEGER NOT NULL,
  PRIMARY KEY (node, gpu_uuid, team, workload)
);
CREATE TABLE ledger_gate (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  purging INTEGER NOT NULL
);
INSERT INTO ledger_gate VALUES (1, 0);
{closed_triggers}CREATE TRIGGER ledger_purged_no_update BEFORE UPDATE ON ledger_purged
  WHEN (SELECT purging FROM ledger_gate) = 0
BEGIN
  SELECT RAISE(ABORT, 'purged totals change only with the retention purge');
END;
CREATE TRIGGER ledger_purged_no_delete BEFORE DELETE ON ledger_purged
BEGIN
  SELECT RAISE(ABORT, 'purged totals are never removed');
END;
{readable}"#,
        fields = figures(""),
    );
    // Version 2: two more row kinds, `late` (money of an hour that was
    // already closed when the wall clock came back to it) and `reset` (the
    // state started over from zero). SQLite cannot change a CHECK in
    // place: the table is copied into one with the new CHECK, row ids kept.
    let v2 = format!(
        r#"
DROP VIEW ledger_readable;
DROP TRIGGER ledger_closed_no_update;
DROP TRIGGER ledger_closed_no_delete;
CREATE TABLE ledger_v2 (
  id INTEGER PRIMARY KEY,
  hour_start INTEGER NOT NULL,
  node TEXT NOT NULL,
  gpu_uuid TEXT NOT NULL,
  team TEXT NOT NULL,
  workload TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('hour', 'opening', 'correction', 'late', 'reset')),
  closed INTEGER NOT NULL CHECK (closed IN (0, 1)),
  reason TEXT,
  currency TEXT NOT NULL,
  {fields},
  priced_secs_source REAL NOT NULL DEFAULT 0,
  priced_secs_fallback REAL NOT NULL DEFAULT 0,
  price_source TEXT NOT NULL,
  written_at TEXT NOT NULL
);
INSERT INTO ledger_v2 SELECT * FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v2 RENAME TO ledger;
CREATE UNIQUE INDEX ledger_hour_key
  ON ledger (hour_start, node, gpu_uuid, team, workload) WHERE kind = 'hour';
CREATE INDEX ledger_by_hour ON ledger (hour_start);
{closed_triggers}{readable}"#,
        fields = figures(""),
    );
    // Version 3: the push duplicate window as rows (one per point booked,
    // written in the checkpoint's transaction), instead of one JSON blob
    // rewritten whole with every checkpoint.
    let v3 = r#"
CREATE TABLE push_seen (
  k0 INTEGER NOT NULL,
  k1 INTEGER NOT NULL,
  at_ns INTEGER NOT NULL,
  PRIMARY KEY (k0, k1)
) WITHOUT ROWID;
CREATE INDEX push_seen_by_time ON push_seen (at_ns);
"#
    .to_string();
    // Version 4: each cost row's GPU model (as the GPU reports it) and
    // GPU-seconds (the seconds its energy readings covered × the owner's
    // share), which the planner's measured coefficients divide by. Added
    // as columns: every row, index and trigger stays as it is; rows
    // written before hold NULL (unknown) in both.
    let v4 = format!(
        r#"
ALTER TABLE ledger ADD COLUMN gpu_model TEXT;
ALTER TABLE ledger ADD COLUMN gpu_seconds REAL;
DROP VIEW ledger_readable;
{}"#,
        readable_with(", gpu_model, gpu_seconds")
    );
    vec![v1, v2, v3, v4]
}
