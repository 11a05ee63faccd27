//! Tests of the status page's rendering: a failing value target reads as
//! failing in words (never as a −100 % ROI), the page's exact figures are
//! the summary's, every outside string is escaped, and the page stands on
//! its own (no script, no external asset, refreshing itself).

use super::*;
use chrono::TimeZone;
use roimon_core::{Engine, GpuReading, Joules, Owner, Reading, Report, Tick, Watts};
use roimon_daemon::published::{SourceHealth, TargetOwners};

const G0: &str = "GPU-0";
const G1: &str = "GPU-1";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 20, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn gpu(index: u32, uuid: &str, joules: f64, watts: f64, util: f64) -> Reading {
    Reading::Gpu(GpuReading {
        index,
        uuid: uuid.into(),
        name: "NVIDIA <H100> \"SXM\"".into(),
        power: Some(Watts(watts)),
        energy_counter: Some(Joules(joules)),
        utilization: Some(util),
        memory_used_bytes: None,
        memory_total_bytes: None,
        temperature_celsius: None,
        power_limit: None,
        processes: None,
    })
}

/// A node of two GPUs (owners `search/chat` and `ads/<rank>`) that ran
/// for an hour, with value booked for `search/chat` at the start only.
fn snapshot(team0: &str) -> Snapshot {
    let cfg = roimon_config::Config::builtin();
    let mut ec = cfg.engine_config();
    // A tick a minute, every one of them counted.
    ec.max_gap = roimon_core::Seconds(120.0);
    ec.owners.insert(
        G0.into(),
        Owner {
            team: team0.into(),
            workload: "chat".into(),
        },
    );
    ec.owners.insert(
        G1.into(),
        Owner {
            team: "ads".into(),
            workload: "<rank>".into(),
        },
    );
    let mut e = Engine::new(ec, None);
    for i in 0..=60 {
        let secs = i * 60;
        let tick = Tick {
            wall: t(secs),
            mono: secs as f64,
        };
        let j = secs as f64;
        let readings = vec![
            gpu(0, G0, 400.0 * j, 400.0, 0.9),
            gpu(1, G1, 150.0 * j, 150.0, 0.01),
        ];
        e.ingest(
            tick,
            &[Report {
                collector: "gpu",
                outcome: Ok(readings),
            }],
        );
        if i == 1 {
            let owner = Owner {
                team: team0.into(),
                workload: "chat".into(),
            };
            e.book_value(&[(owner, 1.0)], "vllm-chat", 0.02, &[]);
        }
    }
    e.snapshot()
}

/// vllm-chat measures search/chat; it answered at 20:10 and fails since.
fn failing_board(team0: &str) -> Board {
    let mut b = Board::default();
    b.targets.insert(
        "vllm-chat".into(),
        SourceHealth {
            up: false,
            last_success: Some(t(600)),
            failing_since: Some(t(615)),
            error: Some("cannot connect to 127.0.0.1:9: connection refused".into()),
        },
    );
    b.target_owners.insert(
        "vllm-chat".into(),
        TargetOwners::Owner(Owner {
            team: team0.into(),
            workload: "chat".into(),
        }),
    );
    b
}

fn page(s: &Snapshot, board: &Board) -> String {
    let mtd = BTreeMap::new();
    render(&Inputs {
        snap: s,
        version: "0.1.0",
        not_ready: None,
        live: true,
        checkpoint_failures: 0,
        board,
        history: &[],
        month_to_date: &mtd,
        statements: &[],
        plan: String::new(),
        cheapest: None,
    })
}

/// The `data-NAME` figure of the element whose opening tag holds `anchor`
/// (the first `data-NAME` after it).
fn figure(html: &str, anchor: &str, name: &str) -> Option<f64> {
    let at = html.find(anchor)?;
    let rest = &html[at..];
    let row_end = rest.find("</tr>").unwrap_or(rest.len());
    let key = format!("data-{name}=\"");
    let i = rest[..row_end].find(&key)? + key.len();
    let v = &rest[i..];
    v[..v.find('"')?].parse().ok()
}

#[test]
fn a_failing_target_reads_as_failing_in_words_not_as_minus_100_percent() {
    let s = snapshot("search");
    // The day's window gives the owner a loss: cost, and value that
    // stopped coming when the target went down.
    let day = s.windows.iter().find(|w| w.seconds == 86_400).unwrap();
    let roi = day
        .owners
        .iter()
        .find(|o| o.team == "search")
        .and_then(|o| o.roi)
        .unwrap();
    assert!(roi < -0.5, "{roi}");
    let html = page(&s, &failing_board("search"));
    let words = "value not measured since 20:10:00 UTC: target vllm-chat refused connection";
    let detail = "(cannot connect to 127.0.0.1:9: connection refused)";
    // In the health section (first), with the error, and in place of the
    // owner's ROI.
    let health = html.find("id=\"health\"").unwrap();
    let first = html.find(words).expect(&html);
    assert!(first > health && first < html.find("id=\"now\"").unwrap());
    assert_eq!(html.matches(words).count(), 3, "problems, target, owner");
    assert_eq!(
        html.matches(&format!("{words} {detail}")).count(),
        2,
        "problems, target"
    );
    let row = &html[html.find("data-team=\"search\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(words) && row.contains("data-unmeasured"),
        "{row}"
    );
    assert!(!row.contains("data-roi"), "{row}");
    assert!(!html.contains(&fmt::signed_pct(roi)), "{html}");
    assert!(html.contains("class=\"verdict bad\""));
    // An owner nothing measures says so too, without calling it a failure.
    let ads = &html[html.find("data-team=\"ads\"").unwrap()..];
    let ads = &ads[..ads.find("</tr>").unwrap()];
    assert!(
        ads.contains(
            "<td class=\"mute why\" data-unmeasured=\"true\">value not measured: no value source"
        ),
        "{ads}"
    );
    // Once it answers again, the ROI is shown.
    let mut up = failing_board("search");
    up.targets.get_mut("vllm-chat").unwrap().up = true;
    up.targets.get_mut("vllm-chat").unwrap().failing_since = None;
    let html = page(&s, &up);
    assert!(!html.contains("value not measured since"), "{html}");
    assert_eq!(figure(&html, "data-team=\"search\"", "roi"), Some(roi));
}

#[test]
fn the_page_figures_are_the_summary_figures() {
    let s = snapshot("search");
    let html = page(&s, &Board::default());
    let j = crate::router::summary_json(&s);
    assert_eq!(
        html.matches("data-at=\"").count(),
        1,
        "the snapshot's time, once"
    );
    let body_at = &html[html.find("data-at=\"").unwrap() + 9..];
    assert_eq!(
        Some(&body_at[..body_at.find('"').unwrap()]),
        j["at"].as_str(),
        "the summary's `at`, as it writes it"
    );
    let gpus = j["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2);
    for g in gpus {
        let anchor = format!("data-gpu-uuid=\"{}\"", g["gpu_uuid"].as_str().unwrap());
        for (attr, key) in [
            ("power-watts", "power_watts"),
            ("utilization-ratio", "utilization_ratio"),
            ("cost-rate-per-hour", "cost_rate_per_hour"),
            ("energy-joules", "energy_joules"),
            ("cost", "cost"),
        ] {
            let want = g[key].as_f64().unwrap();
            assert_eq!(figure(&html, &anchor, attr), Some(want), "{anchor} {attr}");
        }
        assert!(g["cost"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        figure(&html, "id=\"cost-rate\"", "cost-rate-per-hour"),
        j["cost_rate_per_hour"]["total"].as_f64()
    );
    assert_eq!(
        figure(&html, "id=\"cost-total\"", "cost"),
        j["totals"]["cost"]["total"].as_f64()
    );
    let day = j["roi"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["seconds"] == 86_400)
        .unwrap();
    for o in day["owners"].as_array().unwrap() {
        let anchor = format!(
            "data-team=\"{}\" data-workload=\"{}\"",
            esc(o["team"].as_str().unwrap()),
            esc(o["workload"].as_str().unwrap())
        );
        assert_eq!(figure(&html, &anchor, "value"), o["value"].as_f64());
        assert_eq!(figure(&html, &anchor, "cost"), o["cost"].as_f64());
    }
    // The idle GPU (1 % busy) is flagged, the busy one not.
    assert!(html.contains("data-gpu-uuid=\"GPU-1\" data-idle=\"true\""));
    assert!(html.contains("data-gpu-uuid=\"GPU-0\" data-idle=\"false\""));
}

#[test]
fn every_outside_string_is_escaped() {
    let s = snapshot("<script>alert(1)</script>");
    let mut b = failing_board("<script>alert(1)</script>");
    b.targets.get_mut("vllm-chat").unwrap().error = Some("<img src=x onerror=alert(2)>".into());
    let html = page(&s, &b);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<rank>") && html.contains("&lt;rank&gt;"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;/chat"));
    assert!(html.contains("NVIDIA &lt;H100&gt; &quot;SXM&quot;"));
}

#[test]
fn the_page_stands_alone_refreshes_itself_and_charts_the_last_hour() {
    let s = snapshot("search");
    let b = Board::default();
    let points: Vec<Point> = (0..360)
        .map(|i| Point {
            at: t(i * 10),
            power_watts: 500.0 + i as f64,
            cost_per_hour: 0.2,
        })
        .collect();
    let mtd = BTreeMap::new();
    let html = render(&Inputs {
        snap: &s,
        version: "0.1.0",
        not_ready: Some("waiting for every enabled collector to report once".into()),
        live: true,
        checkpoint_failures: 2,
        board: &b,
        history: &points,
        month_to_date: &mtd,
        statements: &[("/api/v1/report?a=1&b=2".into(), "search — 2026-03".into())],
        plan: String::new(),
        cheapest: None,
    });
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    assert!(!html.contains("href=\"http"), "no external asset or link");
    assert!(html.contains("data-points=\"360\""));
    assert!(html.contains("not ready (/readyz): waiting for every enabled collector"));
    assert!(html.contains("checkpoint failing (2 in a row)"));
    assert!(html.contains("href=\"/api/v1/report?a=1&amp;b=2\""));
    for link in ["/api/v1/summary", "/metrics", "/healthz", "/readyz"] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
    }
    // Health comes before money.
    assert!(html.find("id=\"health\"").unwrap() < html.find("id=\"gpus\"").unwrap());
}

#[test]
fn the_cheapest_hour_and_four_hours_of_the_known_schedule_are_shown_or_why_not() {
    use roimon_commands::plan::window::{Known, cheapest_windows};
    use roimon_planner::window::Slot;
    let s = snapshot("search");
    let b = Board::default();
    let mtd = BTreeMap::new();
    let now = t(0);
    // 0.30 for 8 h, then 0.10 for 4 h from 22:00 to 02:00, then 0.30.
    let h = |n: i64| (now + chrono::Duration::hours(n)).timestamp();
    let known = Known {
        currency: "EUR".into(),
        prices: vec![
            Slot {
                start: h(0),
                end: h(2),
                value: 0.30,
            },
            Slot {
                start: h(2),
                end: h(6),
                value: 0.10,
            },
            Slot {
                start: h(6),
                end: h(24),
                value: 0.30,
            },
        ],
        carbon: None,
    };
    let windows = cheapest_windows(&known, now);
    assert_eq!(windows.len(), 2);
    let with = |c| {
        render(&Inputs {
            snap: &s,
            version: "0.1.0",
            not_ready: None,
            live: true,
            checkpoint_failures: 0,
            board: &b,
            history: &[],
            month_to_date: &mtd,
            statements: &[],
            plan: String::new(),
            cheapest: c,
        })
    };
    let html = with(Some(Ok(windows)));
    let section = &html[html.find("id=\"cheapest\"").expect(&html)..];
    let one = &section[section.find("data-hours=\"1\"").unwrap()..];
    assert!(
        one.starts_with(
            "data-hours=\"1\"><td>1 h</td><td><time datetime=\"2026-03-02T22:00:00.000Z\">"
        ),
        "{one}"
    );
    assert!(
        one.contains("0.1000 EUR/kWh") && one.contains("0.2000 EUR less than starting now"),
        "{one}"
    );
    let four = &section[section.find("data-hours=\"4\"").unwrap()..];
    assert!(
        four.contains("datetime=\"2026-03-03T02:00:00.000Z\""),
        "ends at 02:00: {four}"
    );
    let html = with(Some(Err(
        "no entsoe price schedule is kept in <dir> yet".into()
    )));
    assert!(html.contains(
        "No known price schedule to look in: no entsoe price schedule is kept in &lt;dir&gt; yet"
    ));
    assert!(!with(None).contains("id=\"cheapest\""));
}

#[test]
fn a_failing_target_says_what_went_wrong_in_a_few_words() {
    let h = |error: &str| SourceHealth {
        up: false,
        last_success: None,
        failing_since: Some(t(0)),
        error: Some(error.into()),
    };
    let words = |e: &str| health::target_down("v", &h(e), t(0), false).unwrap();
    assert_eq!(
        words("127.0.0.1:9 did not answer within 5 s (timed out)"),
        "value not measured since 20:00:00 UTC (never answered): target v did not answer in time"
    );
    assert!(
        words("status 503 Service Unavailable: busy")
            .ends_with("target v answered HTTP 503 Service Unavailable")
    );
    assert!(
        words("cannot read x's metrics: line 3")
            .ends_with("target v sent metrics that cannot be read")
    );
    assert!(words("something else").ends_with("target v failed"));
    // While it answers, or before its first scrape: nothing to say.
    let mut ok = h("x");
    ok.up = true;
    assert_eq!(health::target_down("v", &ok, t(0), true), None);
    assert_eq!(
        health::target_down("v", &SourceHealth::default(), t(0), true),
        None
    );
}
