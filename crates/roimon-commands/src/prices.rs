//! `roimon prices`: fetch the configured price source once and print the
//! normalised schedule for a window, as a table or as JSON, so an operator can
//! see exactly what roimon will price energy at before running it.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use roimon_config::{Config, ConfigError};
use roimon_feeds::FetchError;
use roimon_feeds::price::{Fetcher, window};
use roimon_price::PriceSlot;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn parse_when(s: &str, key: &str) -> Result<DateTime<Utc>, ConfigError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    Err(ConfigError {
        file: "command line".into(),
        line: None,
        key: Some(key.into()),
        message: format!("not an RFC 3339 time or YYYY-MM-DD date: {s:?}"),
    })
}

/// One printed slot.
#[derive(Debug, serde::Serialize)]
struct Row {
    start: String,
    end: String,
    price_per_kwh: f64,
    currency: String,
}

/// Run the command.
pub fn main(config: Option<&Path>, json: bool, from: Option<&str>, to: Option<&str>) -> ExitCode {
    let cfg = match config.map_or_else(|| Ok(Config::builtin()), Config::load) {
        Ok(c) => c,
        Err(e) => return crate::config_error(&e),
    };
    let (dfrom, dto) = window(Utc::now(), cfg.price.days_ahead);
    let dfrom = dfrom + chrono::Duration::days(1);
    let from = match from.map(|s| parse_when(s, "--from")).transpose() {
        Ok(t) => t.unwrap_or(dfrom),
        Err(e) => return crate::config_error(&e),
    };
    let to = match to.map(|s| parse_when(s, "--to")).transpose() {
        Ok(t) => t.unwrap_or(dto),
        Err(e) => return crate::config_error(&e),
    };
    if to <= from {
        eprintln!("error: --to must be after --from");
        return ExitCode::from(2);
    }
    let currency = cfg.price.currency.clone();
    let slots: Vec<PriceSlot> = if cfg.price.source.is_fetched() {
        match fetch(&cfg, from, to) {
            Ok(s) => s,
            Err(FetchError::NoData(m)) => {
                eprintln!(
                    "error: {} has no prices for {} .. {}: {m}",
                    cfg.price.source.label(),
                    from.to_rfc3339_opts(SecondsFormat::Secs, true),
                    to.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                return ExitCode::from(1);
            }
            Err(FetchError::Local(m)) => {
                // A token that cannot be read is a configuration problem.
                eprintln!("error: {m}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", cfg.price.source.label());
                return ExitCode::from(1);
            }
        }
    } else {
        cfg.engine_config()
            .tariff
            .segments(from, to)
            .into_iter()
            .map(|s| PriceSlot {
                start: s.start,
                end: s.end,
                market_per_kwh: s.price.0,
                price_per_kwh: s.price.0,
            })
            .collect()
    };
    if slots.is_empty() {
        eprintln!(
            "error: {} has no prices for {} .. {}",
            cfg.price.source.label(),
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            to.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        return ExitCode::from(1);
    }
    let rows: Vec<Row> = slots
        .iter()
        .map(|s| Row {
            start: s.start.to_rfc3339_opts(SecondsFormat::Secs, true),
            end: s.end.to_rfc3339_opts(SecondsFormat::Secs, true),
            price_per_kwh: s.price_per_kwh,
            currency: currency.clone(),
        })
        .collect();
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(t) => crate::outln!("{t}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        crate::outln!(
            "{:<21} {:<21} {:>14} {:>14}",
            "start (UTC)",
            "end (UTC)",
            format!("{currency}/kWh"),
            "market/kWh"
        );
        for s in &slots {
            crate::outln!(
                "{:<21} {:<21} {:>14.6} {:>14.6}",
                s.start.to_rfc3339_opts(SecondsFormat::Secs, true),
                s.end.to_rfc3339_opts(SecondsFormat::Secs, true),
                s.price_per_kwh,
                s.market_per_kwh
            );
        }
    }
    ExitCode::SUCCESS
}

fn fetch(
    cfg: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<PriceSlot>, FetchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Local(format!("runtime: {e}")))?;
    let fetcher = Fetcher::new(
        &cfg.price,
        Duration::from_secs_f64(cfg.price.retry_initial_secs),
    )?;
    let sched = rt.block_on(fetcher.fetch(from, to))?;
    // Clip to the window, as static and time-of-use output is.
    let slots: Vec<PriceSlot> = sched
        .window(from, to)
        .into_iter()
        .map(|s| PriceSlot {
            start: s.start.max(from),
            end: s.end.min(to),
            ..s
        })
        .collect();
    if slots.is_empty() {
        return Err(FetchError::NoData(format!(
            "the source answered with {} slots, none in the window",
            sched.slots.len()
        )));
    }
    Ok(slots)
}
