//! The roimon binary: command line, logging, and the wiring of collectors,
//! engine, sampler thread, checkpoint and HTTP listener. Exit codes: 0 ok,
//! 2 usage or config error, 1 runtime failure.

use roimon_commands::{config_error, ledger, plan, prices, report, scenario};
use roimon_daemon::{checkpoint, inbox, influx_stream, published, sampler, sdnotify, simulated};
use roimon_server::{listener, plan_daemon, push, router, web_config};

use clap::{Args, Parser, Subcommand};
use config::{Config, ConfigError, GpuSource, HostPower, LogFormat};
use roimon_config as config;
use roimon_core::{Collector, Engine};
use sampler::{Absent, Opener, Sampler, Supervised};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// roimon: what a GPU node costs and what it returns, from measurements.
#[derive(Debug, Parser)]
#[command(
    name = "roimon",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(RunArgs),
    /// Validate a configuration file; exit 0, or 2 naming file, line and key.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Fetch the configured price source once and print the normalised
    /// schedule (start, end, price per kWh, currency). Exit 1 when the source
    /// has no data for the window.
    Prices {
        /// Configuration file (default: the built-in configuration).
        #[arg(long, env = "ROIMON_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON: an array of {"start", "end", "price_per_kwh", "currency"}.
        #[arg(long)]
        json: bool,
        /// Window start: RFC 3339 or YYYY-MM-DD (UTC); default: today 00:00 UTC.
        #[arg(long)]
        from: Option<String>,
        /// Window end: RFC 3339 or YYYY-MM-DD (UTC); default: the end of the last day ahead.
        #[arg(long)]
        to: Option<String>,
    },
    /// Cost, energy and value attribution from the ledger (also of a
    /// running daemon); --verify checks that the ledger's sums equal the
    /// counters (exit 1 if not).
    Report(report::ReportArgs),
    /// Ledger maintenance: `roimon ledger repair` resets impossible figures
    /// in the stored counters with a visible correction row.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Plan: an allocation of GPU types to workloads (integer programme),
    /// a selection among scenarios (a scenario file with `[select]`), or
    /// `plan window`, the cheapest start of a deferrable job. Exit 0 found,
    /// 1 infeasible or no window fits, 2 a file, flag or coefficient error.
    Plan(plan::PlanArgs),
    /// One-shot ROI of a scenario file (weighted model and financial ROI).
    Roi {
        /// The scenario file.
        #[arg(long)]
        scenario: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Order of the scenarios (rank 1 first).
        #[arg(long, value_enum, default_value_t)]
        rank_by: scenario::RankBy,
    },
}

#[derive(Debug, Args, Default)]
struct RunArgs {
    /// Configuration file (default: the built-in configuration).
    #[arg(long, env = "ROIMON_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:9464 (config: server.listen).
    #[arg(long)]
    listen: Option<String>,
    /// State directory (config: state.dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Load NVML from this file (config: gpu.nvml_library).
    #[arg(long, env = "ROIMON_NVML_LIBRARY")]
    nvml_library: Option<PathBuf>,
    /// Log format: text or json (config: log.format).
    #[arg(long)]
    log_format: Option<String>,
    /// TLS and basic auth from a web configuration file in the Prometheus
    /// exporter-toolkit format (config: server.web_config_file).
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Start over from zero when the state dir has run before but holds no
    /// readable checkpoint (a lost or unreadable ledger): recorded in the
    /// ledger as an event of kind reset and in roimon_state_resets_total.
    /// Ignored when the checkpoint is readable.
    #[arg(long)]
    reset_state: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => match Config::load(&file) {
            Ok(cfg) => {
                if let Some(w) = &cfg.server.web_config_file {
                    if let Err(e) = web_config::load(w) {
                        return config_error(&e);
                    }
                    roimon_commands::outln!("{}: ok", w.display());
                }
                roimon_commands::outln!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Some(Command::Roi {
            scenario,
            json,
            rank_by,
        }) => scenario::main(&scenario, json, rank_by),
        Some(Command::Prices {
            config,
            json,
            from,
            to,
        }) => prices::main(config.as_deref(), json, from.as_deref(), to.as_deref()),
        Some(Command::Report(args)) => report::main(args),
        Some(Command::Plan(args)) => plan::main(args),
        Some(Command::Ledger(cmd)) => ledger::main(cmd),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn load_config(args: &RunArgs) -> Result<Config, ConfigError> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::builtin(),
    };
    let flag = |key: &str, message: String| ConfigError {
        file: "command line".into(),
        line: None,
        key: Some(key.into()),
        message,
    };
    if let Some(l) = &args.listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            return Err(flag(
                "--listen",
                format!("not an address like 127.0.0.1:9464: {l:?}"),
            ));
        }
        cfg.server.listen = l.clone();
    }
    if let Some(d) = &args.state_dir {
        if d.as_os_str().is_empty() {
            return Err(flag(
                "--state-dir",
                "must not be empty (counters would be written to the working directory)".into(),
            ));
        }
        cfg.state.dir = d.clone();
    }
    if let Some(p) = &args.nvml_library {
        cfg.gpu.nvml_library = Some(p.clone());
    }
    if let Some(p) = &args.web_config_file {
        cfg.server.web_config_file = Some(p.clone());
    }
    if let Some(f) = &args.log_format {
        cfg.log.format = match f.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(flag(
                    "--log-format",
                    format!("must be text or json, got {other:?}"),
                ));
            }
        };
    }
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        // Colours only for a person at a terminal: a log file or journal
        // gets plain text, without ANSI escapes.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn collectors(cfg: &Config) -> Vec<Supervised> {
    let mut out = Vec::new();
    match cfg.gpu.source {
        GpuSource::None => {}
        GpuSource::Simulated => {
            let n = cfg.gpu.simulated_count.unwrap_or(4);
            tracing::warn!(
                gpus = n,
                "gpu.source = \"simulated\": reporting SIMULATED GPUs, not measurements"
            );
            let open: Opener = Box::new(move || {
                Ok(Box::new(simulated::SimulatedGpus::new(n)) as Box<dyn Collector>)
            });
            out.push(Supervised::new("nvml", open, Absent::Error));
        }
        source @ (GpuSource::Auto | GpuSource::Nvml) => {
            let lib = cfg.gpu.nvml_library.clone();
            let processes = cfg.attribution.mode != config::AttributionMode::Static;
            let open: Opener = Box::new(move || {
                let mut c = roimon_collect_gpu::NvmlCollector::open(lib.as_deref())?;
                c.set_processes(processes);
                Ok(Box::new(c) as Box<dyn Collector>)
            });
            // `auto` says "no NVML here" once at INFO, but not when a library
            // was named explicitly: failing to load that is a WARN.
            let absent = match (source, &cfg.gpu.nvml_library) {
                (GpuSource::Auto, None) => Absent::Info,
                (GpuSource::Auto, Some(_)) => Absent::Warn,
                _ => Absent::Error,
            };
            out.push(Supervised::new("nvml", open, absent));
        }
    }
    if cfg.host.enabled {
        let hc = roimon_collect_host::HostConfig {
            rapl_root: cfg.host.rapl_root.clone(),
            power: match cfg.host.power {
                HostPower::Auto => roimon_collect_host::HostPowerMode::Auto,
                HostPower::Rapl => roimon_collect_host::HostPowerMode::Rapl,
                HostPower::Model => roimon_collect_host::HostPowerMode::Model,
            },
            idle_watts: cfg.host.idle_watts,
            max_watts: cfg.host.max_watts,
        };
        let open: Opener = Box::new(move || {
            Ok(Box::new(roimon_collect_host::HostCollector::new(hc.clone())) as Box<dyn Collector>)
        });
        out.push(Supervised::new("host", open, Absent::Error));
    }
    out
}

fn run(args: RunArgs) -> ExitCode {
    let cfg = match load_config(&args) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    // Checked before anything starts: a broken file is a configuration error.
    let web = match cfg
        .server
        .web_config_file
        .as_deref()
        .map(web_config::WebConfig::open)
    {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => return config_error(&e),
    };
    init_logging(&cfg);
    match run_daemon(cfg, web, args.reset_state) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "roimon stopped");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_daemon(
    cfg: Config,
    web: Option<Arc<web_config::WebConfig>>,
    reset_state: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let meta = roimon_ledger::Meta {
        node: cfg.node.name(),
        price_source: cfg.price.source.label().to_string(),
    };
    let mut checkpoint = checkpoint::Checkpoint::open_with(&cfg.state.dir, reset_state)?;
    checkpoint.set_retention_days(cfg.ledger.retention_days);
    let engine_cfg = cfg.engine_config();
    let resumed = checkpoint.resume(reset_state, &engine_cfg, &meta)?;
    let fresh = resumed.is_none();
    let mut engine = Engine::new(engine_cfg, resumed);
    let mut book = checkpoint.book(engine.counters());
    if fresh {
        // A new state dir holds a checkpoint from the start: a state dir
        // with a lock but no checkpoint is one that lost it.
        checkpoint
            .save(engine.counters(), &book, &meta)
            .with_context(|| {
                format!(
                    "writing the first checkpoint in {}",
                    cfg.state.dir.display()
                )
            })?;
        book.written();
    }
    engine.set_roi(
        &cfg.roi.window_spec(),
        cfg.roi.weights(),
        configured_kpis(&cfg),
    );
    // Declared before the first snapshot, so the first scrape already lists
    // every collector (and its error counter).
    let supervised = collectors(&cfg);
    for c in &supervised {
        engine.register_collector(c.name());
    }
    // A sampler that has not published for 10 intervals (at least 30 s) is
    // stalled or dead: /healthz says so.
    let stale_after = Duration::from_secs_f64((cfg.sampling.interval_secs * 10.0).max(30.0));
    let state = Arc::new(router::AppState::new(
        engine.snapshot(),
        VERSION,
        stale_after,
    ));
    state.set_window(plan::window::Source::new(&cfg));
    state.set_report(router::ReportSource {
        path: cfg.state.dir.join(roimon_ledger::FILE),
        tz: cfg.report.tz(),
    });
    let listen: std::net::SocketAddr = cfg.server.listen.parse().context("server.listen")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr().context("listener address")?;

    if cfg.carbon.source != config::CarbonSource::None {
        engine.set_carbon(Some(roimon_feeds::carbon::engine_carbon(
            &cfg.carbon,
            None,
            None,
        )));
    }
    if cfg.price.source.is_fetched() {
        // Until a schedule arrives, the age of "the data in force" is the
        // time since start: a fresh node without network shows a growing age.
        let initial = engine.config().tariff.clone();
        engine.set_tariff(initial, Some(chrono::Utc::now()));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_feeds(&cfg, &rt, &tx);
    // Value: inference servers scraped, and pushes on /api/v2/write.
    start_value_targets(&cfg, &mut engine, &state, &rt, &tx);
    state.set_push(push::Push::from_config(
        &cfg,
        &engine.config().currency,
        &tx,
        bound,
        &web,
    )?);
    if let (Some(w), Some(p)) = (&web, state.push()) {
        // With a push token the write endpoint authenticates by it; without
        // one it is behind basic auth like every other path.
        *w.exempt.write().unwrap_or_else(|e| e.into_inner()) = web_config::Exempt {
            healthz: cfg.server.healthz_without_auth,
            push: p.token.is_some(),
        };
    }
    drop(tx);
    // The InfluxDB stream reads published snapshots on its own thread; the
    // handle stays alive for the daemon's life (closed ledger hours go in
    // through it).
    let _influx = start_influx(&cfg, &state)?;
    let inbox = Some(rx);
    let attribution =
        roimon_attribution::Attributor::new(&cfg.attribution, cfg.engine_config().owners);
    let sampler = Sampler {
        engine,
        inbox,
        collectors: supervised,
        interval: Duration::from_secs_f64(cfg.sampling.interval_secs),
        collector_timeout: Duration::from_secs_f64(cfg.sampling.collector_timeout()),
        checkpoint_every: Duration::from_secs_f64(cfg.state.checkpoint_interval_secs),
        checkpoint,
        publication: state.published().clone(),
        max_downtime: Duration::from_secs_f64(cfg.state.max_downtime_secs),
        notify: sdnotify::Notifier::from_env(),
        push_dedup: (
            cfg.push.dedup_max_points,
            (cfg.push.dedup_window_secs * 1e9) as i64,
        ),
        book,
        meta,
        budgets: budgets(&cfg),
        report_tz: cfg.report.tz(),
        attribution,
    };
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    // The sampler ending on its own (a panic in the loop) stops the daemon:
    // serving stale numbers for ever would be worse than a restart.
    let fatal = Arc::new(tokio::sync::Notify::new());
    let fatal_tx = fatal.clone();
    let sampler_thread = std::thread::Builder::new()
        .name("roimon-sampler".into())
        .spawn(move || {
            let r = sampler.run(stop_rx);
            if let Err(e) = &r {
                tracing::error!(error = %e, "sampler stopped");
            }
            fatal_tx.notify_one();
            r
        })
        .context("starting the sampler thread")?;
    // The planner re-plans on its own thread; dropping `_planner` (when
    // the daemon returns) ends it between runs.
    let _planner = match &cfg.plan.file {
        Some(file) => {
            let p = Arc::new(plan_daemon::PlanState::new(file.clone()));
            state.set_plan(p.clone());
            Some(
                plan_daemon::start(&cfg.plan, file.clone(), cfg.state.dir.clone(), p)
                    .context("starting the planner thread")?,
            )
        }
        None => None,
    };
    tracing::info!(listen = %bound, version = VERSION, state_dir = %cfg.state.dir.display(), "roimon running");

    let served = serve_until_stopped(&rt, listener, state, &cfg, web, fatal, stop_tx);
    let joined = sampler_thread.join();
    served.context("HTTP server")?;
    match joined {
        Err(_) => anyhow::bail!("the sampler thread panicked; the last checkpoint stands"),
        Ok(Err(e)) => anyhow::bail!("{e}"),
        Ok(Ok(_)) => Ok(()),
    }
}

/// The InfluxDB stream, if configured: it reads published snapshots on its
/// own thread, and the closed ledger hours go in through it.
fn start_influx(
    cfg: &Config,
    state: &router::AppState,
) -> anyhow::Result<Option<influx_stream::Handle>> {
    Ok(match &cfg.influxdb {
        Some(i) => {
            // One node name for the ledger and the stream.
            let mut i = i.clone();
            i.node.get_or_insert_with(|| cfg.node.name());
            let h = influx_stream::start(&i, &cfg.state.dir, state.published().clone())?;
            state.set_influx(h.stats.clone());
            influx_stream::copy_ledger_hours(h.clone(), cfg.state.dir.join(roimon_ledger::FILE))?;
            Some(h)
        }
        None => None,
    })
}

/// The monthly budgets of the configuration, as the ledger checks them.
fn budgets(cfg: &Config) -> Vec<roimon_ledger::Budget> {
    cfg.budget
        .iter()
        .map(|b| roimon_ledger::Budget {
            team: b.team.clone(),
            workload: b.workload.clone(),
            monthly: b.monthly,
        })
        .collect()
}

/// The KPI scores the configuration states, for the ROI windows.
fn configured_kpis(cfg: &Config) -> Vec<roimon_core::Kpi> {
    cfg.value
        .kpis
        .iter()
        .map(|k| roimon_core::Kpi {
            team: k.team.clone(),
            workload: k.workload.clone(),
            indicator: k.name.clone(),
            score: k.value,
            at: None,
        })
        .collect()
}

/// The price, carbon-intensity and pod feeds the configuration asks for,
/// each a task on the runtime sending to the sampler's inbox.
fn spawn_feeds(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    tx: &std::sync::mpsc::Sender<inbox::Event>,
) {
    if cfg.price.source.is_fetched() {
        rt.spawn(roimon_feeds::price::run(
            cfg.price.clone(),
            cfg.state.dir.clone(),
            Duration::from_secs_f64(cfg.price.retry_initial_secs),
            tx.clone(),
        ));
    }
    if matches!(
        cfg.carbon.source,
        config::CarbonSource::Electricitymaps | config::CarbonSource::Uk
    ) {
        rt.spawn(roimon_feeds::carbon::run(
            cfg.carbon.clone(),
            cfg.state.dir.clone(),
            tx.clone(),
        ));
    }
    if cfg.attribution.pods_url.is_some() && cfg.attribution.mode != config::AttributionMode::Static
    {
        rt.spawn(roimon_feeds::pods::run(cfg.attribution.clone(), tx.clone()));
    }
}

/// Each value scrape target: declared (so the first scrape lists it and its
/// rejection counters) and scraped by its own task.
fn start_value_targets(
    cfg: &Config,
    engine: &mut Engine,
    state: &router::AppState,
    rt: &tokio::runtime::Runtime,
    tx: &std::sync::mpsc::Sender<inbox::Event>,
) {
    for t in &cfg.value.scrape {
        let label = t.label();
        for u in &t.gpu_uuids {
            if !cfg.gpu.owners.iter().any(|o| &o.gpu_uuid == u) {
                tracing::warn!(target_name = %label, gpu_uuid = %u, "a value target names a GPU that gpu.owners does not (UUIDs are case-sensitive): its share of the value goes to unallocated");
            }
        }
        engine.register_target(&label);
        state.published().health().declare_target(
            &label,
            match &t.team {
                Some(team) => published::TargetOwners::Owner(roimon_core::Owner {
                    team: team.clone(),
                    workload: t
                        .workload
                        .clone()
                        .unwrap_or_else(|| roimon_core::engine::UNALLOCATED.into()),
                }),
                None => published::TargetOwners::Gpus(t.gpu_uuids.clone()),
            },
        );
        for why in roimon_value::Rejection::ALL {
            engine.note_value_rejected(&label, why.as_str(), 0);
        }
        let state = engine
            .extension(&inbox::value_state_key(&label))
            .map(String::from);
        let bounds = cfg.value.bounds(t);
        rt.spawn(roimon_feeds::value::run(
            t.clone(),
            bounds,
            state,
            tx.clone(),
        ));
    }
}

/// Serves HTTP until SIGTERM/SIGINT or the sampler's end, then tells the
/// sampler to stop.
fn serve_until_stopped(
    rt: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    state: Arc<router::AppState>,
    cfg: &Config,
    web: Option<Arc<web_config::WebConfig>>,
    fatal: Arc<tokio::sync::Notify>,
    stop_tx: std::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    let limits = listener::Limits::from(&cfg.server);
    // On SIGTERM/SIGINT the sampler is told to stop at once (last sample,
    // checkpoint), while HTTP drains; a client that holds its connection open
    // gets at most DRAIN to finish, so systemd's stop timeout is never hit.
    const DRAIN: Duration = Duration::from_secs(5);
    let signalled = Arc::new(tokio::sync::Notify::new());
    let notify = signalled.clone();
    rt.block_on(async move {
        let (app, connections) = (router::router(state.clone()), state.http_stats().clone());
        let server = listener::serve(listener, app, connections, limits, web, async move {
            tokio::select! {
                () = shutdown_signal() => tracing::info!("shutting down: flushing and checkpointing"),
                () = fatal.notified() => tracing::error!("the sampler stopped; shutting down"),
            }
            let _ = stop_tx.send(());
            notify.notify_one();
        });
        tokio::select! {
            r = server => r,
            () = async {
                signalled.notified().await;
                tokio::time::sleep(DRAIN).await;
            } => {
                tracing::warn!(drain_secs = DRAIN.as_secs(), "HTTP clients still connected; closing them");
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops roimon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
