//! The allocation file resolved: every number checked with its dotted key,
//! measured coefficients asked of the caller with their window and samples
//! kept, and a coefficient the ledger lacks named.

use roimon_planner::{CoefKey, Measured, PlanFile, ResolveError, resolve};

const FILE: &str = r#"
hours = 720.0
currency = "EUR"
objective = "profit"
min_roi = 0.1
budget = 50000.0
power_cap_kw = 40.0
[energy]
price_per_kwh = "measured"
pue = 1.3
carbon_g_per_kwh = 350.0
[[gpu]]
type = "H100"
count = 16
cost_per_hour = 2.10
idle_watts = 70.0
[[gpu]]
type = "L4"
count = 8
cost_per_hour = "measured"
idle_watts = 16.0
[[workload]]
name = "search/chat"
demand_tokens_per_second = "measured"
min_served = 0.95
value_per_million_tokens = 1.20
  [workload.on.H100]
  tokens_per_second = 9000.0
  joules_per_token = "measured"
  [workload.on.L4]
  tokens_per_second = "measured"
  joules_per_token = 0.3
"#;

fn parse(s: &str) -> PlanFile {
    toml::from_str(s).unwrap()
}

fn ledger(k: &CoefKey) -> Result<Measured, String> {
    let value = match k {
        CoefKey::PricePerKwh => 0.25,
        CoefKey::GpuCostPerHour { gpu } if gpu == "L4" => 0.6,
        CoefKey::Demand { workload } if workload == "search/chat" => 50000.0,
        CoefKey::JoulesPerToken {
            gpu, idle_watts, ..
        } if gpu == "H100" && *idle_watts == 70.0 => 0.12,
        CoefKey::TokensPerSecond { gpu, .. } if gpu == "L4" => 1500.0,
        other => return Err(format!("no rows for {}", other.name())),
    };
    Ok(Measured {
        value,
        window: "2026-11-30T00:00:00Z/2026-12-07T00:00:00Z".into(),
        samples: 42,
        p10: Some(value * 0.9),
        p90: Some(value * 1.1),
    })
}

fn invalid_key(s: &str) -> String {
    match resolve(&parse(s), &mut ledger) {
        Err(ResolveError::Invalid { key, .. }) => key,
        other => panic!("expected an invalid key, got {other:?}"),
    }
}

#[test]
fn measured_coefficients_come_from_the_ledger_with_window_and_samples() {
    let i = resolve(&parse(FILE), &mut ledger).unwrap();
    assert_eq!(i.price_per_kwh, 0.25);
    assert_eq!(i.gpus[1].cost_per_hour, 0.6);
    assert_eq!(i.workloads[0].demand, 50000.0);
    assert_eq!(i.workloads[0].on[0].joules_per_token, 0.12);
    assert_eq!(i.workloads[0].on[1].tokens_per_second, 1500.0);
    let c = i
        .coefficients
        .iter()
        .find(|c| c.name == "workload.search/chat.on.L4.tokens_per_second")
        .unwrap();
    assert_eq!(c.source, "ledger");
    assert_eq!(c.samples, Some(42));
    assert!(c.window.as_deref().unwrap().starts_with("2026-11-30"));
    let f = i
        .coefficients
        .iter()
        .find(|c| c.name == "gpu.H100.cost_per_hour")
        .unwrap();
    assert_eq!(
        (f.source.as_str(), f.window.clone(), f.samples),
        ("file", None, None)
    );
    assert_eq!(i.spread["energy.price_per_kwh"], (0.225, 0.275));
    assert!(!i.spread.contains_key("gpu.H100.cost_per_hour"));
}

#[test]
fn a_coefficient_without_data_is_named() {
    let s = FILE.replace(
        "value_per_million_tokens = 1.20",
        "value_per_million_tokens = \"measured\"",
    );
    match resolve(&parse(&s), &mut ledger) {
        Err(ResolveError::Unmeasured { name, message }) => {
            assert_eq!(name, "workload.search/chat.value_per_million_tokens");
            assert!(message.contains("no rows"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_numbers_name_their_key() {
    let cases = [
        ("hours = 720.0", "hours = 0.0", "hours"),
        ("pue = 1.3", "pue = 0.9", "energy.pue"),
        (
            "min_served = 0.95",
            "min_served = 1.5",
            "workload[0].min_served",
        ),
        ("budget = 50000.0", "budget = -1.0", "budget"),
        ("power_cap_kw = 40.0", "power_cap_kw = 0.0", "power_cap_kw"),
        ("min_roi = 0.1", "min_roi = -2.0", "min_roi"),
        ("min_roi = 0.1", "min_roi = nan", "min_roi"),
        (
            "cost_per_hour = 2.10",
            "cost_per_hour = -2.10",
            "gpu[0].cost_per_hour",
        ),
        ("idle_watts = 70.0", "idle_watts = inf", "gpu[0].idle_watts"),
        (
            "tokens_per_second = 9000.0",
            "tokens_per_second = -1.0",
            "workload[0].on.H100.tokens_per_second",
        ),
        (
            "joules_per_token = 0.3",
            "joules_per_token = -0.3",
            "workload[0].on.L4.joules_per_token",
        ),
        (
            "carbon_g_per_kwh = 350.0",
            "carbon_g_per_kwh = -1.0",
            "energy.carbon_g_per_kwh",
        ),
        (
            "[workload.on.L4]",
            "[workload.on.A100]",
            "workload[0].on.A100",
        ),
        ("type = \"L4\"", "type = \"H100\"", "gpu[1].type"),
    ];
    for (from, to, key) in cases {
        assert!(FILE.contains(from), "{from}");
        assert_eq!(invalid_key(&FILE.replacen(from, to, 1)), key, "{to}");
    }
    // A measured value out of range names the key and the window.
    let mut neg = |k: &CoefKey| -> Result<Measured, String> {
        let mut m = ledger(k)?;
        if matches!(k, CoefKey::PricePerKwh) {
            m.value = -0.1;
        }
        Ok(m)
    };
    match resolve(&parse(FILE), &mut neg) {
        Err(ResolveError::Invalid { key, message }) => {
            assert_eq!(key, "energy.price_per_kwh");
            assert!(message.contains("2026-11-30"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_workloads_and_oversized_files_are_refused() {
    let mut s = FILE.to_string();
    let w = &FILE[FILE.find("[[workload]]").unwrap()..];
    s.push_str(w);
    assert_eq!(invalid_key(&s), "workload[1].name");
    let mut big = FILE[..FILE.find("[[gpu]]").unwrap()].to_string();
    for k in 0..65 {
        big.push_str(&format!(
            "[[gpu]]\ntype = \"T{k}\"\ncount = 1\ncost_per_hour = 1.0\nidle_watts = 1.0\n"
        ));
    }
    assert_eq!(invalid_key(&big), "gpu");
}
