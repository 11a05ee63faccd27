//! The cheapest (or cleanest) start of a deferrable job in a known schedule:
//! a flat-power job of `kwh` over `hours`, started on a slot boundary or at
//! `after`, lying wholly inside known slots and ending by `before`. Times are
//! unix seconds (UTC instants), so days of 23 or 25 local hours need no
//! special case; the search uses prefix sums and binary search, and the
//! figures reported are summed slot by slot.

use std::fmt;

/// One slot of a schedule: `[start, end)` in unix seconds with a value per
/// kWh (a price, or grams CO2e for carbon intensity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Start, unix seconds.
    pub start: i64,
    /// End (exclusive), unix seconds.
    pub end: i64,
    /// Price per kWh, or g CO2e per kWh.
    pub value: f64,
}

/// What the start minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    /// The job's cost (price schedule).
    #[default]
    Cost,
    /// The job's emissions (carbon intensity schedule).
    Carbon,
}

impl By {
    /// `cost` or `carbon`.
    pub fn as_str(self) -> &'static str {
        match self {
            By::Cost => "cost",
            By::Carbon => "carbon",
        }
    }
}

/// The job and where it may run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    /// Duration (h), in (0, 168] for the CLI and the endpoint.
    pub hours: f64,
    /// Energy over the whole run (kWh), drawn at a flat kwh / hours kW.
    pub kwh: f64,
    /// The earliest start, unix seconds ("now" by default).
    pub after: i64,
    /// The latest end, unix seconds; `None`: the end of the schedule.
    pub before: Option<i64>,
    /// What is minimised.
    pub by: By,
}

/// The chosen start and its figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Start, unix seconds.
    pub start: i64,
    /// End, unix seconds (start + hours).
    pub end: i64,
    /// The job's energy (kWh).
    pub energy_kwh: f64,
    /// Its cost at the chosen start.
    pub cost: f64,
    /// cost / energy_kwh.
    pub avg_price_per_kwh: f64,
    /// Its emissions at the chosen start (kg), when the carbon schedule
    /// covers the window.
    pub emissions_kg: Option<f64>,
    /// The cost when started at `after`; `None` when the schedule does not
    /// cover that run.
    pub cost_now: Option<f64>,
    /// The highest cost over every candidate start.
    pub cost_worst: f64,
    /// cost_now − cost.
    pub saving_vs_now: Option<f64>,
    /// Emissions when started at `after` (kg), when known.
    pub emissions_now_kg: Option<f64>,
    /// The highest emissions over every candidate start (kg), when known.
    pub emissions_worst_kg: Option<f64>,
    /// How many starts were compared.
    pub candidates: usize,
}

/// Why no window fits (or the job is not a job).
#[derive(Debug, Clone, PartialEq)]
pub enum WindowError {
    /// hours or kwh not a finite number > 0, or shorter than a second.
    BadJob(String),
    /// `before` is not after `after`.
    EmptySpan {
        /// The earliest start.
        after: i64,
        /// The latest end.
        before: i64,
    },
    /// The job is longer than the time between `after` and `before`.
    LongerThanSpan {
        /// Requested hours.
        hours: f64,
        /// The earliest start.
        after: i64,
        /// The latest end.
        before: i64,
    },
    /// The schedule holds no slot.
    NoSchedule(&'static str),
    /// The schedule ends too early for the job.
    EndsTooEarly {
        /// Which schedule (`price`, `carbon`).
        what: &'static str,
        /// Where it ends.
        ends: i64,
        /// Where the earliest run would have to end.
        need: i64,
    },
    /// The schedule starts too late for the job to end by `before`.
    StartsTooLate {
        /// Which schedule.
        what: &'static str,
        /// Where it starts.
        starts: i64,
        /// The latest start that ends by `before`.
        latest_start: i64,
    },
    /// Every candidate run crosses a gap in the known slots.
    Gaps {
        /// Which schedule.
        what: &'static str,
        /// Hours requested.
        hours: f64,
        /// The longest stretch without a gap inside the span (h).
        longest_hours: f64,
        /// The earliest start.
        after: i64,
        /// The latest end.
        before: i64,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::BadJob(m) => write!(f, "{m}"),
            WindowError::EmptySpan { after, before } => write!(
                f,
                "--before {} is not after --after {}",
                rfc3339(*before),
                rfc3339(*after)
            ),
            WindowError::LongerThanSpan {
                hours,
                after,
                before,
            } => write!(
                f,
                "a job of {hours} h is longer than the span from {} to {} ({} h)",
                rfc3339(*after),
                rfc3339(*before),
                hours_between(*after, *before)
            ),
            WindowError::NoSchedule(what) => write!(f, "no {what} schedule is known"),
            WindowError::EndsTooEarly { what, ends, need } => write!(
                f,
                "the {what} schedule ends at {}; the job needs it until at least {}",
                rfc3339(*ends),
                rfc3339(*need)
            ),
            WindowError::StartsTooLate {
                what,
                starts,
                latest_start,
            } => write!(
                f,
                "the {what} schedule starts at {}, after the latest start {} that ends by --before",
                rfc3339(*starts),
                rfc3339(*latest_start)
            ),
            WindowError::Gaps {
                what,
                hours,
                longest_hours,
                after,
                before,
            } => write!(
                f,
                "the {what} schedule has gaps: between {} and {} its longest stretch without one is {longest_hours} h, the job needs {hours} h",
                rfc3339(*after),
                rfc3339(*before)
            ),
        }
    }
}

impl std::error::Error for WindowError {}

fn hours_between(a: i64, b: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let s = (b - a) as f64;
    s / 3600.0
}

/// A UTC instant as RFC 3339 (`2026-03-29T01:00:00Z`), without a clock
/// library (days to civil date, Howard Hinnant's algorithm).
pub fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A schedule prepared for integrals: slots sorted and non-overlapping,
/// the running integral of value × seconds at each slot's start, and the
/// end of the gap-free run each slot belongs to.
#[derive(Debug)]
struct Integral<'a> {
    slots: &'a [Slot],
    /// prefix[i] = Σ_{j<i} value_j · (end_j − start_j).
    prefix: Vec<f64>,
    /// The end of the gap-free run of slot i.
    run_end: Vec<i64>,
    /// The start of the gap-free run of slot i.
    run_start: Vec<i64>,
}

impl<'a> Integral<'a> {
    fn new(what: &'static str, slots: &'a [Slot]) -> Result<Self, WindowError> {
        if slots.is_empty() {
            return Err(WindowError::NoSchedule(what));
        }
        for (i, s) in slots.iter().enumerate() {
            if s.end <= s.start || !s.value.is_finite() {
                return Err(WindowError::BadJob(format!(
                    "the {what} schedule's slot {i} is empty or its value is not a number"
                )));
            }
            if i > 0 && slots[i - 1].end > s.start {
                return Err(WindowError::BadJob(format!(
                    "the {what} schedule's slots {} and {i} overlap or are out of order",
                    i - 1
                )));
            }
        }
        let mut prefix = Vec::with_capacity(slots.len() + 1);
        let mut acc = 0.0;
        prefix.push(acc);
        for s in slots {
            #[allow(clippy::cast_precision_loss)]
            let len = (s.end - s.start) as f64;
            acc += s.value * len;
            prefix.push(acc);
        }
        let mut run_start = vec![0; slots.len()];
        for i in 0..slots.len() {
            run_start[i] = if i > 0 && slots[i - 1].end == slots[i].start {
                run_start[i - 1]
            } else {
                slots[i].start
            };
        }
        let mut run_end = vec![0; slots.len()];
        for i in (0..slots.len()).rev() {
            run_end[i] = if i + 1 < slots.len() && slots[i + 1].start == slots[i].end {
                run_end[i + 1]
            } else {
                slots[i].end
            };
        }
        Ok(Self {
            slots,
            prefix,
            run_end,
            run_start,
        })
    }

    fn first(&self) -> i64 {
        self.slots[0].start
    }

    fn last(&self) -> i64 {
        self.slots[self.slots.len() - 1].end
    }

    /// The slot holding instant `t` (start ≤ t < end).
    fn slot_at(&self, t: i64) -> Option<usize> {
        let k = self
            .slots
            .partition_point(|s| s.start <= t)
            .checked_sub(1)?;
        (t < self.slots[k].end).then_some(k)
    }

    /// Whether `[s, e)` lies wholly inside one gap-free run.
    fn covers(&self, s: i64, e: i64) -> bool {
        self.slot_at(s).is_some_and(|k| e <= self.run_end[k])
    }

    /// ∫ value dt over `[s, e)` (value × seconds) by the prefix sums;
    /// `[s, e)` must be covered.
    fn fast(&self, s: i64, e: i64) -> f64 {
        let at = |t: i64, k: usize| {
            let sl = &self.slots[k];
            #[allow(clippy::cast_precision_loss)]
            let into = (t - sl.start) as f64;
            self.prefix[k] + sl.value * into
        };
        let ks = self.slots.partition_point(|x| x.start <= s) - 1;
        let ke = self.slots.partition_point(|x| x.start < e) - 1;
        at(e, ke) - at(s, ks)
    }

    /// The same integral, summed slot by slot (what is reported).
    fn exact(&self, s: i64, e: i64) -> f64 {
        let mut k = self.slots.partition_point(|x| x.end <= s);
        let mut sum = 0.0;
        while k < self.slots.len() && self.slots[k].start < e {
            let sl = &self.slots[k];
            #[allow(clippy::cast_precision_loss)]
            let len = (e.min(sl.end) - s.max(sl.start)) as f64;
            sum += sl.value * len;
            k += 1;
        }
        sum
    }

    /// The longest gap-free stretch inside `[a, b)` (seconds).
    fn longest_within(&self, a: i64, b: i64) -> i64 {
        let mut best = 0;
        for i in 0..self.slots.len() {
            let lo = self.run_start[i].max(a);
            let hi = self.run_end[i].min(b);
            best = best.max(hi - lo);
        }
        best
    }
}

/// The longest job the CLI and the endpoint accept (h): a week.
pub const MAX_HOURS: f64 = 168.0;

/// Find the start that minimises the job's cost (or emissions) in `prices`
/// (and `carbon`, needed for [`By::Carbon`] and for emissions).
///
/// Candidate starts are `job.after` and every slot boundary in
/// `(after, before − hours]` (of the price schedule, and of the carbon
/// schedule too when minimising emissions); a run must lie wholly inside
/// known slots of the schedules it is judged by. Ties go to the earliest
/// start.
pub fn cheapest(
    prices: &[Slot],
    carbon: Option<&[Slot]>,
    job: &Job,
) -> Result<Window, WindowError> {
    let dur = job_seconds(job)?;
    let price = Integral::new("price", prices)?;
    let carbon = match carbon {
        Some(c) if !c.is_empty() => Some(Integral::new("carbon", c)?),
        _ => None,
    };
    if job.by == By::Carbon && carbon.is_none() {
        return Err(WindowError::NoSchedule("carbon intensity"));
    }
    // The schedules the run must lie in.
    let mut judged: Vec<(&'static str, &Integral<'_>)> = vec![("price", &price)];
    if let (By::Carbon, Some(c)) = (job.by, &carbon) {
        judged.push(("carbon", c));
    }
    let before = check_span(&judged, job, dur)?;
    let latest = before - dur;
    let cands = candidates(&judged, job.after, latest);
    let fits = |s: i64| judged.iter().all(|(_, i)| i.covers(s, s + dur));
    let objective = match job.by {
        By::Cost => &price,
        By::Carbon => carbon.as_ref().unwrap_or(&price),
    };
    // The objective integral of each covered start, by prefix sums.
    let scored: Vec<(i64, f64)> = cands
        .iter()
        .filter(|s| fits(**s))
        .map(|&s| (s, objective.fast(s, s + dur)))
        .collect();
    if scored.is_empty() {
        let (what, longest) = judged
            .iter()
            .map(|(w, i)| (*w, i.longest_within(job.after, before)))
            .min_by_key(|x| x.1)
            .unwrap_or(("price", 0));
        return Err(WindowError::Gaps {
            what,
            hours: job.hours,
            longest_hours: hours_between(0, longest),
            after: job.after,
            before,
        });
    }
    // The best by prefix sums; the near-ties (rounding of the running sums)
    // are summed slot by slot and the earliest exact minimum wins.
    let min = scored.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    let scale = scored.iter().map(|x| x.1.abs()).fold(1.0, f64::max);
    let tol = scale * 1e-12;
    let near: Vec<(i64, f64)> = scored
        .iter()
        .filter(|x| x.1 <= min + tol)
        .map(|&(s, _)| (s, objective.exact(s, s + dur)))
        .collect();
    let exact_min = near.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    let start = near
        .iter()
        .find(|x| x.1 <= exact_min + tol)
        .map_or(scored[0].0, |x| x.0);
    // Flat power kwh / hours kW: a second of it is kwh / dur kWh.
    #[allow(clippy::cast_precision_loss)]
    let per_sec = job.kwh / dur as f64;
    let money = |s: i64| price.exact(s, s + dur) * per_sec;
    let carbon_over = |s: i64| carbon.as_ref().filter(|c| c.covers(s, s + dur));
    let grams = |s: i64| carbon_over(s).map(|c| c.exact(s, s + dur) * per_sec / 1000.0);
    let cost = money(start);
    let cost_now = price
        .covers(job.after, job.after + dur)
        .then(|| money(job.after));
    // The worst starts found by the prefix sums, reported summed slot by slot.
    let argmax = |f: &dyn Fn(i64) -> Option<f64>| {
        let mut w: Option<(i64, f64)> = None;
        for &(s, _) in &scored {
            if let Some(v) = f(s) {
                if w.is_none_or(|x| v > x.1) {
                    w = Some((s, v));
                }
            }
        }
        w.map(|x| x.0)
    };
    let worst_cost_start = argmax(&|s| Some(price.fast(s, s + dur))).unwrap_or(start);
    let worst_carbon_start = argmax(&|s| carbon_over(s).map(|c| c.fast(s, s + dur)));
    Ok(Window {
        start,
        end: start + dur,
        energy_kwh: job.kwh,
        cost,
        avg_price_per_kwh: cost / job.kwh,
        emissions_kg: grams(start),
        cost_now,
        cost_worst: money(worst_cost_start).max(cost),
        saving_vs_now: cost_now.map(|c| c - cost),
        emissions_now_kg: grams(job.after),
        emissions_worst_kg: worst_carbon_start
            .and_then(grams)
            .map(|w| grams(start).map_or(w, |b| w.max(b))),
        candidates: scored.len(),
    })
}

/// The job's length in whole seconds, once its hours and energy are sane.
fn job_seconds(job: &Job) -> Result<i64, WindowError> {
    if !(job.hours.is_finite() && job.hours > 0.0) {
        return Err(WindowError::BadJob(format!(
            "hours must be a number > 0, got {}",
            job.hours
        )));
    }
    if !(job.kwh.is_finite() && job.kwh > 0.0) {
        return Err(WindowError::BadJob(format!(
            "kwh must be a number > 0, got {}",
            job.kwh
        )));
    }
    #[allow(clippy::cast_possible_truncation)]
    let dur = (job.hours * 3600.0).round() as i64;
    if dur < 1 {
        return Err(WindowError::BadJob(format!(
            "hours must be at least one second, got {}",
            job.hours
        )));
    }
    Ok(dur)
}

/// The end of the span the run must lie in, once the schedules it is
/// judged by cover a run of `dur` seconds somewhere in it.
fn check_span(
    judged: &[(&'static str, &Integral<'_>)],
    job: &Job,
    dur: i64,
) -> Result<i64, WindowError> {
    let known_end = judged.iter().map(|(_, i)| i.last()).min().unwrap_or(0);
    let before = job.before.unwrap_or(known_end);
    if before <= job.after && job.before.is_none() {
        // No --before: the schedule itself ends before the earliest start.
        let (what, ends) = judged
            .iter()
            .map(|(w, i)| (*w, i.last()))
            .min_by_key(|x| x.1)
            .unwrap_or(("price", known_end));
        return Err(WindowError::EndsTooEarly {
            what,
            ends,
            need: job.after + dur,
        });
    }
    if before <= job.after {
        return Err(WindowError::EmptySpan {
            after: job.after,
            before,
        });
    }
    if job.after + dur > before {
        if job.before.is_none() {
            let (what, ends) = judged
                .iter()
                .map(|(w, i)| (*w, i.last()))
                .min_by_key(|x| x.1)
                .unwrap_or(("price", known_end));
            return Err(WindowError::EndsTooEarly {
                what,
                ends,
                need: job.after + dur,
            });
        }
        return Err(WindowError::LongerThanSpan {
            hours: job.hours,
            after: job.after,
            before,
        });
    }
    let latest = before - dur;
    for (what, i) in judged {
        if i.last() < job.after + dur {
            return Err(WindowError::EndsTooEarly {
                what,
                ends: i.last(),
                need: job.after + dur,
            });
        }
        if i.first() > latest {
            return Err(WindowError::StartsTooLate {
                what,
                starts: i.first(),
                latest_start: latest,
            });
        }
    }
    Ok(before)
}

/// Candidate starts: `after`, and every slot boundary in (after, latest].
fn candidates(judged: &[(&'static str, &Integral<'_>)], after: i64, latest: i64) -> Vec<i64> {
    let mut cands: Vec<i64> = vec![after];
    for (_, i) in judged {
        let lo = i.slots.partition_point(|s| s.end <= after);
        for s in &i.slots[lo..] {
            for t in [s.start, s.end] {
                if t > after && t <= latest {
                    cands.push(t);
                }
            }
            if s.start > latest {
                break;
            }
        }
    }
    cands.sort_unstable();
    cands.dedup();
    cands
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use chrono_tz::Europe::Berlin;

    /// Hourly slots from `start` with these prices.
    fn hourly(start: i64, prices: &[f64]) -> Vec<Slot> {
        slots(start, 3600, prices)
    }

    fn slots(start: i64, len: i64, prices: &[f64]) -> Vec<Slot> {
        prices
            .iter()
            .enumerate()
            .map(|(i, &p)| Slot {
                start: start + len * i as i64,
                end: start + len * (i as i64 + 1),
                value: p,
            })
            .collect()
    }

    fn job(hours: f64, kwh: f64, after: i64) -> Job {
        Job {
            hours,
            kwh,
            after,
            before: None,
            by: By::Cost,
        }
    }

    /// The local midnights of a Berlin day, as UTC instants.
    fn berlin_day(y: i32, m: u32, d: u32) -> (i64, i64) {
        let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let at = |d: NaiveDate| {
            Berlin
                .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
                .single()
                .unwrap()
                .timestamp()
        };
        (at(day), at(day.succ_opt().unwrap()))
    }

    /// Brute force: every candidate's cost summed second-exactly by slots.
    fn brute(prices: &[Slot], j: &Job) -> Option<(i64, f64)> {
        let dur = (j.hours * 3600.0).round() as i64;
        let before = j.before.unwrap_or(prices.last().unwrap().end);
        let mut cands = vec![j.after];
        for s in prices {
            for t in [s.start, s.end] {
                if t > j.after && t + dur <= before {
                    cands.push(t);
                }
            }
        }
        let cost = |s: i64| -> Option<f64> {
            let mut t = s;
            let mut sum = 0.0;
            while t < s + dur {
                let sl = prices.iter().find(|x| x.start <= t && t < x.end)?;
                let e = sl.end.min(s + dur);
                sum += sl.value * (e - t) as f64;
                t = e;
            }
            Some(sum * j.kwh / dur as f64)
        };
        let all: Vec<(i64, f64)> = cands
            .into_iter()
            .filter_map(|s| cost(s).map(|c| (s, c)))
            .collect();
        let min = all.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        all.into_iter()
            .filter(|x| x.1 <= min + 1e-9)
            .min_by_key(|x| x.0)
    }

    #[test]
    fn formats_utc_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_774_746_000), "2026-03-29T01:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    /// 2026-03-29 in Berlin has 23 hours: 23 hourly UTC slots. The dip is
    /// at local 03:00–05:00 (CEST), i.e. 01:00–03:00 UTC.
    #[test]
    fn a_23_hour_dst_day_finds_the_dip_at_the_right_instant() {
        let (d0, d1) = berlin_day(2026, 3, 29);
        assert_eq!((d1 - d0) / 3600, 23);
        let mut p = vec![0.30; 23];
        // Slot i starts at local hour: 0,1,3,4,… (02:00 does not exist).
        p[2] = 0.05; // local 03:00 CEST = 01:00 UTC
        p[3] = 0.06; // local 04:00 CEST = 02:00 UTC
        let s = hourly(d0, &p);
        let w = cheapest(&s, None, &job(2.0, 10.0, d0)).unwrap();
        let expect = Berlin
            .with_ymd_and_hms(2026, 3, 29, 3, 0, 0)
            .single()
            .unwrap()
            .timestamp();
        assert_eq!(w.start, expect);
        assert_eq!(rfc3339(w.start), "2026-03-29T01:00:00Z");
        assert_eq!(w.end, expect + 7200);
        // 5 kW for an hour at each price.
        assert!((w.cost - 5.0 * (0.05 + 0.06)).abs() < 1e-12, "{w:?}");
        assert!((w.cost_now.unwrap() - 3.0).abs() < 1e-12);
        assert!((w.cost_worst - 3.0).abs() < 1e-12);
        assert!((w.saving_vs_now.unwrap() - (3.0 - 0.55)).abs() < 1e-12);
        assert!((w.avg_price_per_kwh - 0.055).abs() < 1e-12);
        // A job as long as the day fits exactly; an hour longer does not.
        assert!(cheapest(&s, None, &job(23.0, 1.0, d0)).is_ok());
        let e = cheapest(&s, None, &job(24.0, 1.0, d0)).unwrap_err();
        assert!(
            matches!(e, WindowError::EndsTooEarly { ends, .. } if ends == d1),
            "{e}"
        );
        assert!(e.to_string().contains("2026-03-29T22:00:00Z"), "{e}");
    }

    /// 2026-10-25 in Berlin has 25 hours: local 02:00 comes twice. The
    /// cheapest hour is the second 02:00 (CET, 01:00 UTC).
    #[test]
    fn a_25_hour_dst_day_tells_the_two_local_two_oclocks_apart() {
        let (d0, d1) = berlin_day(2026, 10, 25);
        assert_eq!((d1 - d0) / 3600, 25);
        let mut p = vec![0.20; 25];
        p[2] = 0.10; // the first 02:00 (CEST) = 00:00 UTC
        p[3] = 0.01; // the second 02:00 (CET) = 01:00 UTC
        let s = hourly(d0, &p);
        let w = cheapest(&s, None, &job(1.0, 2.0, d0)).unwrap();
        assert_eq!(rfc3339(w.start), "2026-10-25T01:00:00Z");
        assert!((w.cost - 0.02).abs() < 1e-15);
        // The last hour of the day ends at the next local midnight.
        let w = cheapest(&s, None, &job(25.0, 25.0, d0)).unwrap();
        assert_eq!((w.start, w.end), (d0, d1));
        let sum: f64 = p.iter().sum();
        assert!((w.cost - sum).abs() < 1e-12);
        for h in [1.0, 2.5, 7.0, 24.0] {
            let j = job(h, 3.0, d0 + 900);
            let w = cheapest(&s, None, &j).unwrap();
            let (bs, bc) = brute(&s, &j).unwrap();
            assert_eq!(w.start, bs, "{h}");
            assert!((w.cost - bc).abs() < 1e-12, "{h}");
        }
    }

    /// Quarter-hour slots: a 1 h job spans four of them and may start on
    /// any quarter; `after` mid-slot is a candidate of its own.
    #[test]
    fn fifteen_minute_slots_start_on_any_quarter() {
        let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
        let mut p = vec![0.4; 96];
        for (i, v) in [0.1, 0.1, 0.1, 0.1, 0.1].iter().enumerate() {
            p[37 + i] = *v; // 09:15 .. 10:30
        }
        let s = slots(t0, 900, &p);
        let w = cheapest(&s, None, &job(1.0, 4.0, t0)).unwrap();
        assert_eq!(rfc3339(w.start), "2026-01-01T09:15:00Z");
        assert!((w.cost - 0.4).abs() < 1e-12, "{w:?}");
        // After 09:20 the run from 09:20 (five minutes at 0.1 before 09:30 …)
        // 09:20–10:20 is all 0.1; it beats 09:30–10:30 only by being earlier.
        let after = t0 + 9 * 3600 + 20 * 60;
        let w = cheapest(&s, None, &job(1.0, 4.0, after)).unwrap();
        assert_eq!(w.start, after);
        assert_eq!(w.cost_now, Some(w.cost));
        assert_eq!(w.saving_vs_now, Some(0.0));
        assert!((w.cost - 0.4).abs() < 1e-12);
        // 75 minutes: exactly the dip.
        let w = cheapest(&s, None, &job(1.25, 5.0, t0)).unwrap();
        assert_eq!(rfc3339(w.start), "2026-01-01T09:15:00Z");
        assert!((w.cost - 0.5).abs() < 1e-12);
        // Against brute force on a jagged day.
        let jag: Vec<f64> = (0..96)
            .map(|i| ((i * 37) % 23) as f64 / 10.0 - 0.5)
            .collect();
        let s = slots(t0, 900, &jag);
        for (h, off) in [(0.25, 0), (1.0, 0), (3.5, 450), (6.0, 60), (23.75, 0)] {
            let j = job(h, 7.0, t0 + off);
            let w = cheapest(&s, None, &j).unwrap();
            let (bs, bc) = brute(&s, &j).unwrap();
            assert_eq!(w.start, bs, "{h} h from +{off}");
            assert!((w.cost - bc).abs() < 1e-9, "{h}: {} vs {bc}", w.cost);
        }
    }

    #[test]
    fn before_bounds_the_end_and_gaps_are_never_crossed() {
        let t0 = 1_767_225_600;
        let mut s = hourly(t0, &[0.5, 0.4, 0.3, 0.2, 0.1, 0.05]);
        // Ending by 04:00 leaves 02:00–04:00.
        let mut j = job(2.0, 2.0, t0);
        j.before = Some(t0 + 4 * 3600);
        let w = cheapest(&s, None, &j).unwrap();
        assert_eq!(w.start, t0 + 2 * 3600);
        assert!((w.cost - 0.5).abs() < 1e-12);
        // A gap at 04:00–05:00: the cheap hours after it are one hour long.
        s.remove(4);
        let w = cheapest(&s, None, &job(2.0, 2.0, t0)).unwrap();
        assert_eq!(w.start, t0 + 2 * 3600, "{w:?}");
        // No two-hour stretch after 03:00.
        let e = cheapest(&s, None, &job(2.0, 2.0, t0 + 3 * 3600)).unwrap_err();
        assert!(matches!(e, WindowError::Gaps { .. }), "{e}");
        assert!(e.to_string().contains("1 h"), "{e}");
        // Longer than the span.
        let mut j = job(3.0, 1.0, t0);
        j.before = Some(t0 + 2 * 3600);
        let e = cheapest(&s, None, &j).unwrap_err();
        assert!(e.to_string().contains("longer than the span"), "{e}");
        // A schedule that ends too early names its end and the need.
        let e = cheapest(&s, None, &job(2.0, 1.0, t0 + 5 * 3600)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the price schedule ends at 2026-01-01T06:00:00Z; the job needs it until at least 2026-01-01T07:00:00Z"
        );
        // A schedule wholly in the past, no --before: its end is named,
        // not a --before nobody passed.
        let e = cheapest(&s, None, &job(1.5, 1.0, t0 + 9 * 3600)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the price schedule ends at 2026-01-01T06:00:00Z; the job needs it until at least 2026-01-01T10:30:00Z"
        );
        // A schedule that starts after the latest start.
        let mut j = job(1.0, 1.0, t0 - 10 * 3600);
        j.before = Some(t0 - 3600);
        let e = cheapest(&s, None, &j).unwrap_err();
        assert!(matches!(e, WindowError::StartsTooLate { .. }), "{e}");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(cheapest(&s, None, &job(bad, 1.0, t0)).is_err());
            assert!(cheapest(&s, None, &job(1.0, bad, t0)).is_err());
        }
        assert_eq!(
            cheapest(&[], None, &job(1.0, 1.0, t0)).unwrap_err(),
            WindowError::NoSchedule("price")
        );
    }

    #[test]
    fn by_carbon_minimises_emissions_and_reports_both() {
        let t0 = 1_767_225_600;
        let prices = hourly(t0, &[0.1, 0.2, 0.3, 0.4]);
        // Half-hourly intensity, cleanest at 02:00–03:00.
        let carbon = slots(
            t0,
            1800,
            &[400.0, 400.0, 300.0, 300.0, 50.0, 60.0, 500.0, 500.0],
        );
        let mut j = job(1.0, 10.0, t0);
        let w = cheapest(&prices, Some(&carbon), &j).unwrap();
        assert_eq!(w.start, t0);
        assert!((w.emissions_kg.unwrap() - 4.0).abs() < 1e-12);
        j.by = By::Carbon;
        let w = cheapest(&prices, Some(&carbon), &j).unwrap();
        assert_eq!(w.start, t0 + 2 * 3600);
        assert!((w.emissions_kg.unwrap() - 0.55).abs() < 1e-12);
        assert!((w.cost - 3.0).abs() < 1e-12);
        assert!((w.emissions_now_kg.unwrap() - 4.0).abs() < 1e-12);
        assert!((w.emissions_worst_kg.unwrap() - 5.0).abs() < 1e-12);
        assert!((w.cost_now.unwrap() - 1.0).abs() < 1e-12);
        assert!((w.saving_vs_now.unwrap() + 2.0).abs() < 1e-12);
        // Starting on a carbon boundary inside a price slot: 02:30.
        let carbon = slots(
            t0,
            1800,
            &[400.0, 400.0, 300.0, 300.0, 500.0, 10.0, 10.0, 500.0],
        );
        let w = cheapest(&prices, Some(&carbon), &j).unwrap();
        assert_eq!(rfc3339(w.start), "2026-01-01T02:30:00Z");
        assert!((w.cost - 3.5).abs() < 1e-12);
        j.by = By::Carbon;
        assert_eq!(
            cheapest(&prices, None, &j).unwrap_err(),
            WindowError::NoSchedule("carbon intensity")
        );
    }

    /// A week of quarter hours, every job length: the same start as the
    /// brute force (the figures to a rounding).
    #[test]
    fn a_week_of_quarter_hours_agrees_with_brute_force() {
        let t0 = 1_767_225_600;
        let n = 7 * 96;
        let p: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 1009) as f64 / 1000.0 - 0.2)
            .collect();
        let s = slots(t0, 900, &p);
        for h in [0.5, 2.0, 4.0, 12.0, 24.0] {
            let j = job(h, 1.0, t0 + 123);
            let w = cheapest(&s, None, &j).unwrap();
            let (bs, bc) = brute(&s, &j).unwrap();
            assert_eq!(w.start, bs, "{h}");
            assert!((w.cost - bc).abs() < 1e-9);
        }
    }
}
