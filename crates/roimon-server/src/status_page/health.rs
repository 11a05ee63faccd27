//! The page's first section: can the figures be trusted? Readiness, the
//! sampled collectors, the price and carbon feeds (basis and age of the data
//! in force), the value targets (up or down, last success, why they fail)
//! and the checkpoint, with every failure in words. Also the words an owner
//! gets in place of an ROI when its value is not measured.

use super::Inputs;
use super::fmt::{age, esc, time_el, when};
use chrono::{DateTime, Utc};
use roimon_daemon::published::{SourceHealth, TargetOwners};

/// The health section.
pub fn section(i: &Inputs) -> String {
    let problems = problems(i);
    let verdict = if problems.is_empty() {
        "<p class=\"verdict\" id=\"verdict\">All sources healthy; the daemon is ready.</p>"
            .to_string()
    } else {
        let items: String = problems
            .iter()
            .map(|p| format!("<li class=\"bad\">{}</li>", esc(p)))
            .collect();
        format!(
            "<p class=\"verdict bad\" id=\"verdict\">{} problem{}</p><ul class=\"problems\">{items}</ul>",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        )
    };
    format!(
        "<section id=\"health\"><h2>Health</h2>{verdict}{}{}{}{}</section>",
        collectors(i),
        feeds(i),
        targets(i),
        checkpoint(i)
    )
}

/// Every failure, in words (unescaped).
pub fn problems(i: &Inputs) -> Vec<String> {
    let s = i.snap;
    let mut out = Vec::new();
    if !i.live {
        out.push("the sampler has not published recently: the figures below are stale".into());
    }
    if let Some(why) = &i.not_ready {
        out.push(format!("not ready (/readyz): {why}"));
    }
    for (name, c) in &s.collectors {
        if i.board.feeds.contains_key(name) {
            continue;
        }
        if c.reported && !c.up && !c.unavailable {
            out.push(format!("collector {name} is down: its last sample failed"));
        }
    }
    if s.price.basis != roimon_core::Basis::Source {
        out.push(format!(
            "price: the schedule does not cover now; costed at the {} price",
            s.price.basis.label().replace('_', " ")
        ));
    }
    for (name, h) in &i.board.feeds {
        if let Some(since) = h.failing_since.filter(|_| !h.up) {
            out.push(format!(
                "{name} feed failing since {}: {}",
                when(h.last_success.unwrap_or(since), i.today()),
                h.error.as_deref().unwrap_or("no answer")
            ));
        }
    }
    for (label, h) in &i.board.targets {
        if let Some(words) = target_down(label, h, i.today(), true) {
            out.push(words);
        }
    }
    if i.checkpoint_failures > 0 {
        out.push(format!(
            "checkpoint failing ({} in a row): the figures shown are the last ones on disk",
            i.checkpoint_failures
        ));
    }
    if !s.unmatched_owners.is_empty() {
        out.push(format!(
            "gpu.owners names GPUs this node does not have (their cost goes to unallocated): {}",
            s.unmatched_owners.join(", ")
        ));
    }
    out
}

/// A value target that fails, in words: "value not measured since
/// 21:00:00 UTC: target vllm-chat refused connection", and with `detail`
/// the error as the daemon logged it in brackets (`None` while it answers
/// or before its first scrape).
pub fn target_down(
    label: &str,
    h: &SourceHealth,
    today: DateTime<Utc>,
    detail: bool,
) -> Option<String> {
    let since = h.failing_since.filter(|_| !h.up)?;
    let error = h.error.as_deref().unwrap_or("no answer");
    let since = match h.last_success {
        Some(ok) => when(ok, today),
        None => format!("{} (never answered)", when(since, today)),
    };
    let mut words = format!(
        "value not measured since {since}: target {label} {}",
        short(error)
    );
    if detail {
        words.push_str(&format!(" ({error})"));
    }
    Some(words)
}

/// What a scrape error comes to, in a few words.
fn short(error: &str) -> String {
    if error.contains("connection refused") {
        "refused connection".into()
    } else if error.contains("(timed out)") {
        "did not answer in time".into()
    } else if error.contains("closed the connection") {
        "closed the connection".into()
    } else if error.contains("DNS lookup failed") {
        "has a host name that does not resolve".into()
    } else if let Some(status) = error
        .split("status ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .filter(|c| c.starts_with(|ch: char| ch.is_ascii_digit()))
    {
        format!("answered HTTP {status}")
    } else if error.contains("cannot read") {
        "sent metrics that cannot be read".into()
    } else {
        "failed".into()
    }
}

/// Why `team/workload` has no ROI to show, if it has none, and whether
/// that is a failure: a value target measuring it is down (a failure), or
/// nothing measures its value (not one).
pub fn unmeasured(i: &Inputs, team: &str, workload: &str) -> Option<(String, bool)> {
    let s = i.snap;
    let mut measured_by_target = false;
    for (label, owners) in &i.board.target_owners {
        let theirs = match owners {
            TargetOwners::Owner(o) => o.team == team && o.workload == workload,
            TargetOwners::Gpus(uuids) => uuids.iter().any(|u| {
                s.gpus
                    .get(u)
                    .is_some_and(|g| g.owner.team == team && g.owner.workload == workload)
            }),
        };
        if !theirs {
            continue;
        }
        measured_by_target = true;
        if let Some(h) = i.board.targets.get(label)
            && let Some(words) = target_down(label, h, i.today(), false)
        {
            return Some((words, true));
        }
    }
    let has_value = s
        .counters
        .value
        .keys()
        .any(|k| k.team == team && k.workload == workload);
    (!measured_by_target && !has_value).then(|| {
        (
            "value not measured: no value source for this owner".to_string(),
            false,
        )
    })
}

fn collectors(i: &Inputs) -> String {
    let mut rows = String::new();
    for (name, c) in &i.snap.collectors {
        if i.board.feeds.contains_key(name) {
            continue;
        }
        let errors = i
            .snap
            .counters
            .collector_errors
            .get(name)
            .copied()
            .unwrap_or(0);
        let state = if c.unavailable {
            "<span class=\"mute\">not present on this machine</span>".to_string()
        } else if !c.reported {
            "<span class=\"warn\">waiting for its first sample</span>".to_string()
        } else if c.up {
            "<span class=\"ok\">up</span>".to_string()
        } else {
            "<span class=\"bad\">down: last sample failed</span>".to_string()
        };
        rows.push_str(&format!(
            "<tr data-collector=\"{}\" data-up=\"{}\"><td>{}</td><td>{state}</td><td class=\"n\">{errors}</td></tr>",
            esc(name),
            c.up,
            esc(name)
        ));
    }
    format!(
        "<h3>Collectors</h3><div class=\"scroll\"><table><tr><th>collector</th><th>state</th><th class=\"n\">errors so far</th></tr>{rows}</table></div>"
    )
}

fn feed_state(h: Option<&SourceHealth>, today: DateTime<Utc>) -> String {
    match h {
        None => "<span class=\"mute\">configured (nothing to fetch)</span>".into(),
        Some(h) if h.up => format!(
            "<span class=\"ok\">up</span>{}",
            h.last_success.map_or(String::new(), |t| format!(
                ", last fetch {}",
                time_el(t, today)
            ))
        ),
        Some(h) if h.failing_since.is_none() => {
            "<span class=\"warn\">waiting for its first fetch</span>".into()
        }
        Some(h) => format!(
            "<span class=\"bad\">failing</span>: {}{}",
            esc(h.error.as_deref().unwrap_or("no answer")),
            h.last_success
                .map_or(" (never fetched)".to_string(), |t| format!(
                    "; last success {}",
                    time_el(t, today)
                ))
        ),
    }
}

fn feeds(i: &Inputs) -> String {
    let s = i.snap;
    let today = i.today();
    let p = &s.price;
    let known = p.known_until.map_or(String::new(), |t| {
        format!("; schedule known until {}", time_el(t, today))
    });
    let mut rows = format!(
        "<tr data-feed=\"price\"><td>price</td><td class=\"n\">{:.4} {}/kWh</td><td>{} ({}){known}</td><td class=\"n\">{}</td><td>{}</td></tr>",
        p.price_per_kwh,
        esc(&p.currency),
        esc(p.basis.label()),
        esc(&p.source),
        age(p.age_seconds),
        feed_state(i.board.feeds.get("price"), today)
    );
    if let Some(c) = &s.carbon {
        rows.push_str(&format!(
            "<tr data-feed=\"carbon\"><td>carbon</td><td class=\"n\">{:.1} g/kWh</td><td>{} ({})</td><td class=\"n\">{}</td><td>{}</td></tr>",
            c.grams_per_kwh,
            esc(c.basis.label()),
            esc(&c.source),
            age(c.age_seconds),
            feed_state(i.board.feeds.get("carbon"), today)
        ));
    }
    for (name, h) in &i.board.feeds {
        if name == "price" || name == "carbon" {
            continue;
        }
        rows.push_str(&format!(
            "<tr data-feed=\"{n}\"><td>{n}</td><td></td><td></td><td></td><td>{}</td></tr>",
            feed_state(Some(h), today),
            n = esc(name)
        ));
    }
    format!(
        "<h3>Price and carbon</h3><div class=\"scroll\"><table><tr><th>feed</th><th class=\"n\">in force</th><th>basis (source)</th><th class=\"n\">age of data</th><th>state</th></tr>{rows}</table></div>"
    )
}

fn targets(i: &Inputs) -> String {
    if i.board.targets.is_empty() {
        return "<h3>Value targets</h3><p class=\"mute\">No value target is scraped (value comes by push to /api/v2/write, or not at all).</p>".into();
    }
    let today = i.today();
    let mut rows = String::new();
    for (label, h) in &i.board.targets {
        let owners = match i.board.target_owners.get(label) {
            Some(TargetOwners::Owner(o)) => format!("{}/{}", o.team, o.workload),
            Some(TargetOwners::Gpus(g)) => format!("owners of {}", g.join(", ")),
            None => String::new(),
        };
        let (up, state) = match target_down(label, h, today, true) {
            Some(words) => (
                "false",
                format!("<span class=\"bad\">down</span>: {}", esc(&words)),
            ),
            None if h.up => ("true", "<span class=\"ok\">up</span>".to_string()),
            None => (
                "false",
                "<span class=\"warn\">waiting for its first scrape</span>".to_string(),
            ),
        };
        let last = h
            .last_success
            .map_or("never".to_string(), |t| time_el(t, today));
        rows.push_str(&format!(
            "<tr data-target=\"{}\" data-up=\"{up}\"><td>{}</td><td>{}</td><td>{state}</td><td>{last}</td></tr>",
            esc(label),
            esc(label),
            esc(&owners)
        ));
    }
    format!(
        "<h3>Value targets</h3><div class=\"scroll\"><table><tr><th>target</th><th>measures</th><th>state</th><th>last success</th></tr>{rows}</table></div>"
    )
}

fn checkpoint(i: &Inputs) -> String {
    let c = &i.snap.counters;
    let today = i.today();
    let last = c
        .last_wall
        .map_or("none yet".to_string(), |t| time_el(t, today));
    let state = if i.checkpoint_failures == 0 {
        "<span class=\"ok\">writing</span>".to_string()
    } else {
        format!(
            "<span class=\"bad\">failing ({} in a row)</span>",
            i.checkpoint_failures
        )
    };
    let ready = match &i.not_ready {
        None => "<span class=\"ok\">ready</span>".to_string(),
        Some(why) => format!("<span class=\"bad\">not ready</span>: {}", esc(why)),
    };
    format!(
        "<h3>Checkpoint and readiness</h3><p>Checkpoint {state}; the figures below are booked up to {last} ({} failed writes so far). /readyz: {ready}.</p>",
        c.checkpoint_errors
    )
}
