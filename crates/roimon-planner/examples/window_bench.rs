//! How fast the cheapest window is found over a week of 15-minute slots
//! (the target: ≤ 10 ms): prints the median, p99 and worst of repeated
//! searches for several job lengths. Run with
//! `cargo run --release -p roimon-planner --example window_bench`.

use roimon_planner::window::{By, Job, Slot, cheapest};
use std::time::Instant;

fn main() {
    let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
    let n = 7 * 96;
    let slots: Vec<Slot> = (0..n)
        .map(|i: i64| Slot {
            start: t0 + 900 * i,
            end: t0 + 900 * (i + 1),
            value: ((i * 7919) % 1009) as f64 / 1000.0 - 0.2,
        })
        .collect();
    let carbon: Vec<Slot> = (0..7 * 24)
        .map(|i: i64| Slot {
            start: t0 + 3600 * i,
            end: t0 + 3600 * (i + 1),
            value: 100.0 + ((i * 31) % 17) as f64 * 20.0,
        })
        .collect();
    println!("a week of 15-minute price slots ({n}), hourly carbon (168)");
    for (hours, by) in [
        (1.0, By::Cost),
        (4.0, By::Cost),
        (24.0, By::Cost),
        (96.0, By::Cost),
        (4.0, By::Carbon),
    ] {
        let job = Job {
            hours,
            kwh: 10.0,
            after: t0 + 7,
            before: None,
            by,
        };
        let mut times = Vec::new();
        let mut w = None;
        for _ in 0..200 {
            let at = Instant::now();
            w = Some(cheapest(&slots, Some(&carbon), &job).expect("a window"));
            times.push(at.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let w = w.expect("ran");
        println!(
            "hours {hours:>5} by {:<6} candidates {:>4}: median {:.3} ms, p99 {:.3} ms, worst {:.3} ms",
            by.as_str(),
            w.candidates,
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1]
        );
    }
}
