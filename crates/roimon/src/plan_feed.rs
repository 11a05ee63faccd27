//! `[plan] file = …`: the daemon plans the allocation file every hour on
//! the coefficients it measures (the last 7 days of its own ledger), with
//! the analysis (tornado, a 1,000-draw Monte Carlo with seed 0, the carbon
//! front when the carbon intensity is known), and keeps the last result for
//! `GET /api/v1/plan` and the status page's pictures. The planning runs on
//! its own thread: it is CPU work and must not hold the runtime.

use crate::plan_cmd::MeasureArgs;
use crate::plan_cmd::analysis::{self, AnalysisArgs};
use chrono::{DateTime, Utc};
use roimon_planner::{PlanFile, ResolveError, SolveOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the file is planned again.
pub const EVERY: Duration = Duration::from_secs(3600);
/// The solve's time limit (the analysis shares it too).
pub const TIME_LIMIT: Duration = Duration::from_secs(10);
/// Monte Carlo draws of the daemon's plan.
pub const DRAWS: usize = 1000;

/// The last plan: its JSON (the contract's, with the analysis keys), its
/// pictures, and when it was made.
#[derive(Debug, Clone)]
pub struct LastPlan {
    /// `roimon plan FILE --json --sensitivity --monte-carlo 1000 --seed 0
    /// [--pareto carbon]`'s object, plus `"planned_at"`.
    pub json: serde_json::Value,
    /// (file name, SVG) of each picture (none when infeasible).
    pub pictures: Vec<(&'static str, String)>,
}

/// Where the planning thread leaves its last result (an error in words
/// when the file could not be planned at all); None before the first run.
pub type Slot = Arc<RwLock<Option<Result<LastPlan, String>>>>;

/// Plans `file` once at `now`, coefficients measured from `state_dir`'s
/// ledger over the 7 days before `now`.
pub fn plan_once(file: &Path, state_dir: &Path, now: DateTime<Utc>) -> Result<LastPlan, String> {
    let name = file.display().to_string();
    let src = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    let pf: PlanFile = crate::config::parse_toml(&src, &name).map_err(|e| e.to_string())?;
    let measure = MeasureArgs {
        state_dir: Some(state_dir.to_path_buf()),
        ledger: vec![],
        from: now - chrono::Duration::days(7),
        to: now,
    };
    let mut m = crate::plan_cmd::measure_hook::measurer(&measure, &pf.currency);
    let inst = roimon_planner::resolve(&pf, &mut *m).map_err(|e| match e {
        ResolveError::Invalid { key, message } => format!("{name}: key `{key}`: {message}"),
        ResolveError::Unmeasured { name: c, message } => {
            format!("{name}: coefficient {c}: {message}")
        }
    })?;
    let args = AnalysisArgs {
        sensitivity: true,
        swing: None,
        monte_carlo: Some(DRAWS),
        seed: Some(0),
        pareto: inst.carbon_g_per_kwh.map(|_| "carbon".to_string()),
        points: None,
        svg: None,
    };
    let asked = args.check().map_err(|(k, m)| format!("{k}: {m}"))?;
    let opts = SolveOptions {
        time_limit: TIME_LIMIT,
        ..SolveOptions::default()
    };
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (mut json, pictures) = match roimon_planner::solve(&inst, &opts) {
        Err(inf) => (roimon_planner::infeasible_json(&inst, &inf), vec![]),
        Ok(plan) => {
            let days = analysis::daily_prices(&inst, &measure);
            let found = analysis::run(&asked, &inst, &plan, &opts, days.as_deref())
                .map_err(|(m, _)| format!("{name}: {m}"))?;
            let mut doc = roimon_planner::to_json(&inst, &plan);
            analysis::insert_json(&mut doc, &inst, &found);
            (doc, analysis::pictures(&inst, &plan, &found))
        }
    };
    if let Some(o) = json.as_object_mut() {
        o.insert("planned_at".into(), serde_json::json!(stamp));
    }
    Ok(LastPlan { json, pictures })
}

/// Starts the planning thread: plans at once, then every [`EVERY`].
pub fn spawn(file: PathBuf, state_dir: PathBuf, slot: Slot) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("planner".into())
        .spawn(move || {
            loop {
                let result = plan_once(&file, &state_dir, Utc::now());
                match &result {
                    Ok(p) => tracing::info!(
                        file = %file.display(),
                        status = p.json["status"].as_str().unwrap_or("?"),
                        "planned"
                    ),
                    Err(e) => tracing::warn!(file = %file.display(), error = %e, "plan failed"),
                }
                if let Ok(mut s) = slot.write() {
                    *s = Some(result);
                }
                std::thread::sleep(EVERY);
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_file_is_planned_with_its_analysis_and_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan.toml");
        std::fs::write(
            &file,
            "hours = 10.0\ncurrency = \"EUR\"\n[energy]\nprice_per_kwh = 1.0\npue = 1.0\n\
             carbon_g_per_kwh = 500.0\n[[gpu]]\ntype = \"H100\"\ncount = 4\ncost_per_hour = 1.0\n\
             idle_watts = 100.0\n[[workload]]\nname = \"search/chat\"\n\
             demand_tokens_per_second = 1000.0\nvalue_per_million_tokens = 2.0\n\
             [workload.on.H100]\ntokens_per_second = 1000.0\njoules_per_token = 0.4\n",
        )
        .unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = plan_once(&file, dir.path(), now).unwrap();
        // One GPU serves all: 72 − 10 − 5 = 57.
        assert!((p.json["profit"].as_f64().unwrap() - 57.0).abs() < 1e-9);
        assert_eq!(p.json["sensitivity"].as_array().unwrap().len(), 7);
        assert_eq!(p.json["monte_carlo"]["draws"], 1000);
        assert!(p.json["pareto"].is_array());
        assert_eq!(p.json["planned_at"], "2026-12-07T00:00:00Z");
        let names: Vec<&str> = p.pictures.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["tornado.svg", "monte-carlo.svg", "pareto.svg"]);
        // A measured coefficient without the ledger reader: an error in words.
        std::fs::write(
            &file,
            std::fs::read_to_string(&file)
                .unwrap()
                .replace("price_per_kwh = 1.0", "price_per_kwh = \"measured\""),
        )
        .unwrap();
        let e = plan_once(&file, dir.path(), now).unwrap_err();
        assert!(e.contains("energy.price_per_kwh"), "{e}");
    }
}
