//! `roimon plan FILE` on an allocation file: parse it (errors name
//! file:line:key), resolve its coefficients (given, or measured through
//! [`super::measure_hook`]), solve the contract's model under the time limit
//! and print the plan as a table or as the contract's JSON.

use super::{MeasureArgs, PlanArgs, analysis};
use roimon_config::{ConfigError, locate, parse_toml};
use roimon_planner::{PlanFile, ResolveError, SolveOptions};
use std::process::ExitCode;
use std::time::Duration;

/// The line of a dotted key such as `workload[2].on.H100.tokens_per_second`:
/// the key's own line when found, else its sub-table's header, else the
/// array table's `[[…]]` line.
pub fn locate_key(src: &str, key: &str) -> Option<usize> {
    if let Some(l) = locate(src, key) {
        return Some(l);
    }
    let (head, rest) = key.split_once('.')?;
    let (name, index) = head.strip_suffix(']')?.split_once('[')?;
    let index: usize = index.parse().ok()?;
    let lines: Vec<&str> = src.lines().collect();
    let array = format!("[[{name}]]");
    let mut seen = 0usize;
    let mut start = None;
    for (n, l) in lines.iter().enumerate() {
        if l.trim().replace(' ', "") == array {
            if seen == index {
                start = Some(n);
                break;
            }
            seen += 1;
        }
    }
    let start = start?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim().replace(' ', "") == array)
        .map_or(lines.len(), |p| start + 1 + p);
    let (table, leaf) = rest.rsplit_once('.').unwrap_or(("", rest));
    let header = format!("[{name}.{table}]");
    let mut in_table = table.is_empty();
    let mut header_line = None;
    for (n, l) in lines.iter().enumerate().take(end).skip(start + 1) {
        let t = l.trim();
        if t.starts_with('[') {
            in_table = t.replace([' ', '"'], "") == header;
            if in_table {
                header_line = Some(n + 1);
            }
            continue;
        }
        if in_table
            && t.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == leaf)
        {
            return Some(n + 1);
        }
    }
    header_line.or(Some(start + 1))
}

/// Plan the allocation file text `src` read from `file`.
pub fn main(src: &str, file: &str, args: &PlanArgs, measure: &MeasureArgs) -> ExitCode {
    let asked = match args.analysis.check() {
        Ok(a) => a,
        Err((key, message)) => return super::flag_error(key, message),
    };
    let pf: PlanFile = match parse_toml(src, file) {
        Ok(p) => p,
        Err(e) => return crate::config_error(&e),
    };
    let mut m = super::measure_hook::measurer(measure, &pf.currency);
    let inst = match roimon_planner::resolve(&pf, &mut *m) {
        Ok(i) => i,
        Err(ResolveError::Invalid { key, message }) => {
            return crate::config_error(&ConfigError {
                file: file.to_string(),
                line: locate_key(src, &key),
                key: Some(key),
                message,
            });
        }
        Err(ResolveError::Unmeasured { name, message }) => {
            eprintln!("error: {file}: coefficient {name}: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err((key, message)) = analysis::check_instance(&asked, &inst) {
        return super::flag_error(key, message);
    }
    let opts = SolveOptions {
        time_limit: Duration::from_secs_f64(args.time_limit),
        ..SolveOptions::default()
    };
    match roimon_planner::solve(&inst, &opts) {
        Ok(plan) => {
            let days = analysis::daily_prices(&inst, measure);
            let found = match analysis::run(&asked, &inst, &plan, &opts, days.as_deref()) {
                Ok(f) => f,
                Err((message, code)) => {
                    eprintln!("error: {file}: {message}");
                    return ExitCode::from(code);
                }
            };
            if let Err(message) = analysis::write_svg(&asked, &inst, &plan, &found) {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
            if args.json {
                let mut doc = roimon_planner::to_json(&inst, &plan);
                analysis::insert_json(&mut doc, &inst, &found);
                crate::outln!("{doc}");
            } else {
                crate::out!("{}", roimon_planner::to_table(&inst, &plan));
                crate::out!("{}", analysis::tables(&inst, &found));
            }
            ExitCode::SUCCESS
        }
        Err(inf) => {
            if args.json {
                crate::outln!("{}", roimon_planner::infeasible_json(&inst, &inf));
            }
            eprintln!("error: {file}: {inf}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::locate_key;

    #[test]
    fn keys_inside_array_sub_tables_find_their_line() {
        let src = "hours = 1.0\n[[workload]]\nname = \"a\"\n  [workload.on.H100]\n  tokens_per_second = 1.0\n[[workload]]\nname = \"b\"\n  [workload.on.H100]\n  tokens_per_second = -1.0\n  joules_per_token = 0.1\n";
        assert_eq!(
            locate_key(src, "workload[1].on.H100.tokens_per_second"),
            Some(9)
        );
        assert_eq!(
            locate_key(src, "workload[0].on.H100.tokens_per_second"),
            Some(5)
        );
        assert_eq!(
            locate_key(src, "workload[1].on.A100.tokens_per_second"),
            Some(6)
        );
        assert_eq!(locate_key(src, "workload[1].name"), Some(7));
        assert_eq!(locate_key(src, "hours"), Some(1));
    }
}
