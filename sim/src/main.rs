//! The `dosim` command: parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use dosim::model::strategy::Strategy;
use dosim::pricing::PriceTable;
use dosim::report::{comparison_csv, render_comparison, Report};
use dosim::scenario::{Dur, Scenario};
use dosim::threshold::Threshold;
use dosim::usage::Usage;

/// Which sharding design to run for real-time rooms on Cloudflare Durable Objects, what it
/// costs per month, and what latency users see.
#[derive(Parser)]
#[command(name = "dosim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a scenario under one strategy (discrete-event simulation, no network).
    Simulate {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Strategy: single, per-room or sharded:N (default: the scenario's).
        #[arg(long)]
        strategy: Option<Strategy>,
        #[command(flatten)]
        common: Common,
        /// Write the full report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Simulate one scenario under several strategies, side by side.
    Compare {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Comma-separated strategies.
        #[arg(
            long,
            default_value = "single,per-room,sharded:4",
            value_delimiter = ','
        )]
        strategies: Vec<Strategy>,
        #[command(flatten)]
        common: Common,
        /// Write every report as one JSON document here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the headline figures as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write the comparison table as Markdown here.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Simulate one scenario at several loads under several strategies: the cost curve.
    Sweep {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Comma-separated loads, in mean sessions per day (the daily profile is kept).
        #[arg(long, value_delimiter = ',', required = true)]
        sessions_per_day: Vec<f64>,
        /// Comma-separated strategies.
        #[arg(
            long,
            default_value = "single,per-room,sharded:4",
            value_delimiter = ','
        )]
        strategies: Vec<Strategy>,
        #[command(flatten)]
        common: Common,
        /// Write every point as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write every point as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write the cost curve as an SVG chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Drive a scenario over real WebSockets at the Worker: a running one (--target) or a
    /// local workerd started for the run (--local); measured latency, usage and a monthly bill.
    Drive {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// The Worker's WebSocket endpoint: ws://HOST:PORT, or wss://HOST[:PORT] over TLS
        /// (port 443, e.g. a workers.dev deployment); an optional path prefix may follow.
        #[arg(long, required_unless_present = "local", conflicts_with = "local")]
        target: Option<String>,
        /// A PEM file of extra root certificates to trust for a wss:// target (a private CA,
        /// mkcert, a corporate proxy), besides the bundled Mozilla roots.
        #[arg(long, value_name = "PATH")]
        ca_cert: Option<PathBuf>,
        /// Build the Worker if needed and run it on a local workerd (127.0.0.1) for the run.
        #[arg(long)]
        local: bool,
        /// The Worker's folder for --local (default: workers/ found from here).
        #[arg(long)]
        workers: Option<PathBuf>,
        /// Strategy: single, per-room or sharded:N (default: the scenario's).
        #[arg(long, conflicts_with = "strategies")]
        strategy: Option<Strategy>,
        /// Several strategies, comma-separated: one run each, in turn (each --local run on a
        /// fresh workerd), then a side-by-side table as `compare` prints.
        #[arg(long, value_delimiter = ',')]
        strategies: Vec<Strategy>,
        /// With --strategies: write the side-by-side table as CSV here.
        #[arg(long, requires = "strategies")]
        csv: Option<PathBuf>,
        /// With --strategies: write the side-by-side table as Markdown here.
        #[arg(long, requires = "strategies")]
        markdown: Option<PathBuf>,
        /// Scenario time at the start of the window, e.g. "21h" or "1d19h" (default: the
        /// busiest hour of the daily profile).
        #[arg(long)]
        from: Option<Dur>,
        /// Real length of the measured window.
        #[arg(long, default_value = "60s")]
        duration: Dur,
        /// Scenario seconds per real second (compresses every plan time).
        #[arg(long, default_value_t = 1.0)]
        speedup: f64,
        /// Ramp connecting the sessions in progress at --from (default: 2 s, longer for many).
        #[arg(long)]
        ramp: Option<Dur>,
        /// Wait this long after the window for deliveries in flight.
        #[arg(long, default_value = "2s")]
        grace: Dur,
        /// Connect, answer and leave timeout.
        #[arg(long, default_value = "10s")]
        timeout: Dur,
        /// Bearer token of the Worker's stats endpoint, for reconciliation (default:
        /// $DOSIM_STATS_TOKEN; --local makes its own).
        #[arg(long)]
        stats_token: Option<String>,
        /// Exit 1 when the driver's counts and the Worker's stats differ.
        #[arg(long)]
        require_reconciled: bool,
        /// No live progress line.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        common: Common,
        /// Write the full report as JSON here (also when the run stops early); with
        /// --strategies, every report in one document as `compare` writes it.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Price a month of usage (a TOML file with the keys of a report's `usage` block).
    Cost {
        /// Usage file (TOML); absent keys are zero.
        usage: PathBuf,
        /// Price table (see `dosim pricing`).
        #[arg(long, default_value = PriceTable::DEFAULT)]
        pricing: String,
        /// Write the bill as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// List the price tables with their source and dates.
    Pricing,
}

#[derive(clap::Args)]
struct Common {
    /// Price table (default: the scenario's).
    #[arg(long)]
    pricing: Option<String>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Extra threshold, for example "message.p99 < 250" (repeatable).
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// Override the scenario's WebSocket API: true = Hibernation API, false = accept().
    #[arg(long)]
    hibernation: Option<bool>,
}

/// Exit code for bad input (scenario, usage file, arguments).
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when a threshold failed (as k6 does).
const EXIT_THRESHOLD: u8 = 99;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            let bad_input = err
                .downcast_ref::<dosim::Error>()
                .is_some_and(dosim::Error::is_bad_input)
                || err
                    .downcast_ref::<dosim::drive::DriveError>()
                    .is_some_and(dosim::drive::DriveError::is_bad_input);
            ExitCode::from(if bad_input { EXIT_BAD_INPUT } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Simulate {
            scenario,
            strategy,
            common,
            json,
        } => {
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            let strategy = strategy.unwrap_or(scenario.platform.strategy);
            announce(&scenario, &[strategy], "");
            let report = dosim::des::simulate_report(&scenario, strategy, &pricing, &extra)?;
            print!("{}", report.render_text());
            if let Some(path) = json {
                write(&path, &report.to_json())?;
            }
            Ok(threshold_exit(&[report]))
        }
        Command::Compare {
            scenario,
            strategies,
            common,
            json,
            csv,
            markdown,
        } => {
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            announce(&scenario, &strategies, "");
            let reports = dosim::des::compare(&scenario, &strategies, &pricing, &extra)?;
            print_comparison(&scenario, &reports, json, csv, markdown)?;
            Ok(threshold_exit(&reports))
        }
        Command::Sweep {
            scenario,
            sessions_per_day,
            strategies,
            common,
            json,
            csv,
            svg,
        } => {
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            for &load in &sessions_per_day {
                if let Ok(s) = dosim::sweep::scale(&scenario, load) {
                    announce(&s, &strategies, &format!("at {load} sessions/day: "));
                }
            }
            let sweep =
                dosim::sweep::run(&scenario, &sessions_per_day, &strategies, &pricing, &extra)?;
            print!("{}", sweep.render_text());
            if let Some(path) = json {
                write(&path, &(serde_json::to_string_pretty(&sweep)? + "\n"))?;
            }
            if let Some(path) = csv {
                write(&path, &sweep.to_csv())?;
            }
            if let Some(path) = svg {
                write(&path, &sweep.to_svg()?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Drive {
            scenario,
            target,
            ca_cert,
            local,
            workers,
            strategy,
            strategies,
            csv,
            markdown,
            from,
            duration,
            speedup,
            ramp,
            grace,
            timeout,
            stats_token,
            require_reconciled,
            quiet,
            common,
            json,
        } => {
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            let opts = dosim::drive::Options {
                target,
                ca_cert,
                local,
                workers,
                strategy: strategy.unwrap_or(scenario.platform.strategy),
                from: from.map(|d| Duration::from_nanos(d.0)),
                duration: Duration::from_nanos(duration.0),
                speedup,
                ramp: ramp.map(|d| Duration::from_nanos(d.0)),
                grace: Duration::from_nanos(grace.0),
                stats_token,
                connect_timeout: Duration::from_nanos(timeout.0),
                progress: !quiet,
                require_reconciled,
            };
            if strategies.is_empty() {
                let run = dosim::drive::drive(&scenario, &pricing, &extra, &opts)?;
                print!("{}", run.report.render_text());
                if let Some(path) = json {
                    write(&path, &run.report.to_json())?;
                }
                return Ok(drive_exit(&run, false));
            }
            let runs = dosim::drive::drive_each(&scenario, &pricing, &extra, &opts, &strategies)?;
            for run in &runs {
                if let Some(d) = &run.report.drive {
                    println!("{}:{}", run.report.strategy, d.render_text());
                }
            }
            let reports: Vec<Report> = runs.iter().map(|r| r.report.clone()).collect();
            print_comparison(&scenario, &reports, json, csv, markdown)?;
            // The first failure that is not a threshold (an early stop, a difference from the
            // Worker's stats) wins; else a failed threshold; else success.
            let codes: Vec<ExitCode> = runs.iter().map(|r| drive_exit(r, true)).collect();
            let worst = runs
                .iter()
                .zip(&codes)
                .find(|(r, _)| !matches!(r.exit_code(), 0 | EXIT_THRESHOLD))
                .or_else(|| runs.iter().zip(&codes).find(|(r, _)| r.exit_code() != 0))
                .map_or(ExitCode::SUCCESS, |(_, c)| *c);
            Ok(worst)
        }
        Command::Cost {
            usage,
            pricing,
            json,
        } => {
            let table = PriceTable::builtin(&pricing).map_err(dosim::Error::from)?;
            let usage = Usage::from_file(&usage)?;
            let bill = dosim::pricing::price(&usage, &table);
            println!("{} — {}", table.name, table.title);
            print!("{}", bill.render_text());
            if let Some(path) = json {
                write(&path, &(serde_json::to_string_pretty(&bill)? + "\n"))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pricing => {
            for t in PriceTable::all() {
                let to = t.effective_to.as_deref().unwrap_or("now");
                let default = if t.name == PriceTable::DEFAULT {
                    " (default)"
                } else {
                    ""
                };
                println!("{}{default}\n  {}", t.name, t.title);
                println!("  effective {} – {to}", t.effective_from);
                for s in &t.source {
                    println!("  source: {s}");
                }
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(path: &Path, common: &Common) -> anyhow::Result<(Scenario, PriceTable, Vec<Threshold>)> {
    let mut scenario = Scenario::from_file(path)?;
    if let Some(seed) = common.seed {
        scenario.seed = seed;
    }
    if let Some(h) = common.hibernation {
        scenario.platform.hibernation = h;
    }
    let name = common.pricing.as_deref().unwrap_or(&scenario.pricing);
    let pricing = PriceTable::builtin(name).map_err(dosim::Error::from)?;
    let extra = common
        .thresholds
        .iter()
        .map(|t| t.parse::<Threshold>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| dosim::Error::Usage(format!("--threshold {e}")))?;
    Ok((scenario, pricing, extra))
}

/// A line on standard error before a large simulation: what it will take (a run that cannot
/// finish is refused by the library with the same estimate).
fn announce(scenario: &Scenario, strategies: &[Strategy], prefix: &str) {
    if let Ok(footprints) = dosim::footprint::check(scenario, strategies) {
        if let Some(note) = dosim::footprint::note(&footprints) {
            eprintln!("note: {prefix}{note}");
        }
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Print reports side by side, and write them where asked: every report as one JSON
/// document, the headline figures as CSV, the table as Markdown.
fn print_comparison(
    scenario: &Scenario,
    reports: &[Report],
    json: Option<PathBuf>,
    csv: Option<PathBuf>,
    markdown: Option<PathBuf>,
) -> anyhow::Result<()> {
    let table = render_comparison(reports);
    print!("{table}");
    if let Some(path) = json {
        let doc = serde_json::json!({ "scenario": scenario.name, "reports": reports });
        write(&path, &(serde_json::to_string_pretty(&doc)? + "\n"))?;
    }
    if let Some(path) = csv {
        write(&path, &comparison_csv(reports))?;
    }
    if let Some(path) = markdown {
        write(&path, &format!("```text\n{table}```\n"))?;
    }
    Ok(())
}

/// The exit code of one drive, with a line on standard error saying why when it is not 0.
fn drive_exit(run: &dosim::drive::DriveRun, several: bool) -> ExitCode {
    let code = run.exit_code();
    let who = if several {
        format!("{}: ", run.report.strategy)
    } else {
        String::new()
    };
    match &run.status {
        dosim::drive::RunStatus::Complete if code == EXIT_THRESHOLD => {
            eprintln!("{who}some thresholds failed")
        }
        dosim::drive::RunStatus::Complete if code != 0 => {
            eprintln!("{who}error: the driver's counts and the Worker's stats differ")
        }
        dosim::drive::RunStatus::Complete => {}
        dosim::drive::RunStatus::TargetDown(why) | dosim::drive::RunStatus::Interrupted(why) => {
            eprintln!("{who}error: the run stopped early: {why}")
        }
    }
    ExitCode::from(code)
}

fn threshold_exit(reports: &[Report]) -> ExitCode {
    if reports.iter().all(Report::thresholds_pass) {
        ExitCode::SUCCESS
    } else {
        eprintln!("some thresholds failed");
        ExitCode::from(EXIT_THRESHOLD)
    }
}
