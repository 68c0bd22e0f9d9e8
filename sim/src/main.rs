//! The `dosim` command: parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};

use dosim::model::strategy::Strategy;
use dosim::pricing::PriceTable;
use dosim::report::{comparison_csv, comparison_markdown, render_comparison, Report};
use dosim::scenario::{Dur, Scenario};
use dosim::threshold::{NoData, Threshold};
use dosim::usage::UsageFile;

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
    #[command(after_help = SIMULATE_EXAMPLES)]
    Simulate {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Strategy: single, per-room or sharded:N (default: the scenario's).
        #[arg(long)]
        strategy: Option<Strategy>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        replicate: Replicate,
        /// Write the full report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Simulate one scenario under several strategies, side by side.
    #[command(after_help = COMPARE_EXAMPLES)]
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
        #[command(flatten)]
        replicate: Replicate,
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
    #[command(after_help = SWEEP_EXAMPLES)]
    Sweep {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Comma-separated loads, in mean sessions per day (the daily profile is kept): short
        /// for --vary arrivals.sessions_per_day=LIST.
        #[arg(long, value_delimiter = ',', required_unless_present = "vary")]
        sessions_per_day: Vec<f64>,
        /// Vary a scenario key over SPEC: a list (50,500,5000) or a range A..B:N[:lin|log]
        /// (50..100000:12:log); durations (50us..5ms:4:log) and booleans (true,false) too.
        /// `concurrent_users=SPEC` sets the load as users at the busiest hour (Little's
        /// law). Repeatable: several make a grid, the first is the charts' x axis.
        #[arg(long, value_name = "KEY=SPEC")]
        vary: Vec<String>,
        /// Set a scenario key to one TOML value at every point (after --scale), e.g.
        /// limits.max_active_rooms=unlimited. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// How rooms and limits follow the load: rooms (the default: users per room as in
        /// the scenario, limits fixed), limits, rooms,limits or none.
        #[arg(long, value_name = "WHAT")]
        scale: Option<dosim::vary::Scale>,
        /// The window each point simulates, projected onto the month: scenario (the
        /// default), busiest-day, week or month.
        #[arg(long, value_name = "WINDOW", default_value = "scenario")]
        window: dosim::vary::WindowChoice,
        /// With a --window shorter than the scenario's: also simulate the middle point over
        /// the scenario's whole window and report the projection's error.
        #[arg(long)]
        check_window: bool,
        /// Comma-separated strategies.
        #[arg(
            long,
            default_value = "single,per-room,sharded:4",
            value_delimiter = ','
        )]
        strategies: Vec<Strategy>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        replicate: Replicate,
        /// Write every point as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write every point as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write the cost curve as an SVG chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Write a Markdown report here, with its charts beside it as SVG (NAME-cost.svg,
        /// NAME-cost-per-user.svg, NAME-p99.svg, NAME-refused.svg).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Also drive every point under every strategy over real WebSockets on a fresh local
        /// workerd (needs --local), after the simulation, one drive after another: the
        /// measured monthly bill, message p99 and rejections beside the simulated curve and
        /// its 95% band (5 replications unless --replications or --precision says).
        #[arg(long)]
        drive: bool,
        /// With --drive: run the Worker on a local workerd (127.0.0.1), a fresh one per drive.
        #[arg(long, requires = "drive")]
        local: bool,
        /// With --drive: the Worker's folder (default: workers/ found from here).
        #[arg(long, requires = "drive")]
        workers: Option<PathBuf>,
        /// With --drive: real length of each drive's window, from the busiest hour.
        #[arg(
            long,
            requires = "drive",
            default_value = "20s",
            value_name = "DURATION"
        )]
        drive_duration: Dur,
        /// With --drive: scenario seconds per real second (compresses the plan's times).
        #[arg(long, requires = "drive", default_value_t = 1.0)]
        speedup: f64,
        /// With --drive: refuse (before simulating) a sweep whose drives are estimated to
        /// take longer than this (points × strategies × (window + ramp + ~3 s)).
        #[arg(
            long,
            requires = "drive",
            default_value = "10m",
            value_name = "DURATION"
        )]
        drive_budget: Dur,
        /// No progress bar (it is only shown when standard error is a terminal).
        #[arg(long)]
        quiet: bool,
    },
    /// Drive a scenario over real WebSockets at the Worker: a running one (--target) or a
    /// local workerd started for the run (--local); measured latency, usage and a monthly bill.
    #[command(after_help = DRIVE_EXAMPLES)]
    #[command(group(clap::ArgGroup::new("endpoint").args(["target", "local"]).required(true)))]
    Drive {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// The Worker's WebSocket endpoint: ws://HOST:PORT, or wss://HOST[:PORT] over TLS
        /// (port 443, e.g. a workers.dev deployment); an optional path prefix may follow.
        #[arg(long, conflicts_with = "local")]
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
        /// Drive only shard I of N of the same seeded plan (I from 0; whole room objects per
        /// shard); merge the shards' reports with `dosim merge`.
        #[arg(long, value_name = "I/N", conflicts_with = "strategies")]
        shard: Option<dosim::drive::shard::Shard>,
        /// Start the ramp at this Unix time in seconds (e.g. `$(( $(date +%s) + 30 ))`), so
        /// that shards start together; refused more than 5 s in the past or 1 h ahead.
        #[arg(long, value_name = "UNIX_TIME")]
        start_at: Option<f64>,
        /// A local source address for the connections, or an IPv4 range such as
        /// 127.0.0.2-127.0.0.50 (repeatable): connections take them in turn, lifting the
        /// per-address port limit.
        #[arg(long, value_name = "ADDR|A-B")]
        source_addr: Vec<String>,
        /// How long received frames may wait to be read: the driver then wakes once per batch,
        /// not once per frame, and takes each frame's arrival time from the kernel's receive
        /// stamp, so the wait is not measured; 0s reads each frame as it arrives.
        #[arg(long, default_value = "1ms", value_name = "DURATION")]
        read_batch: Dur,
        /// Run the driver on a thread of its own under SCHED_FIFO (real-time priority 10), so
        /// that the wake-up for a send preempts other work on its core (the target's, on a
        /// shared machine): a send lag of tens of microseconds where the target competes for
        /// the cores. Needs CAP_SYS_NICE or `ulimit -r` of at least 10 (exit 2 otherwise).
        #[arg(long)]
        realtime: bool,
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
    /// Merge the reports of the N shards of one sharded drive (`drive --shard I/N --json`)
    /// into the report one process driving the whole plan writes: histograms added exactly,
    /// counts summed, then projection, thresholds, reconciliation and bill once.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge {
        /// Every shard's JSON report (its HdrHistogram log, `.hlog`, beside it).
        #[arg(required = true, value_name = "SHARD_REPORT")]
        reports: Vec<PathBuf>,
        /// Price table (default: the shards').
        #[arg(long)]
        pricing: Option<String>,
        /// Extra threshold, for example "message.p99 < 250" (repeatable), besides the
        /// shards' own.
        #[arg(long = "threshold")]
        thresholds: Vec<String>,
        /// Exit 1 when the merged counts and the Worker's stats differ.
        #[arg(long)]
        require_reconciled: bool,
        /// Write the merged report as JSON here, and its histograms as an HdrHistogram
        /// interval log beside it (`.hlog`).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the headline figures as Markdown here (the table `compare` writes).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write the headline figures as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Fit the simulator's per-event service times and the Worker's CPU from a ladder of
    /// short drives (room sizes, message rates, strategies with and without the lobby), and
    /// write a calibration file scenarios can reference (platform.calibration or
    /// --calibration).
    #[command(after_help = CALIBRATE_EXAMPLES)]
    #[command(group(clap::ArgGroup::new("endpoint").args(["target", "local"]).required(true)))]
    Calibrate {
        /// A fresh local workerd (127.0.0.1) per run: CPU-derived figures.
        #[arg(long)]
        local: bool,
        /// A running Worker (ws://, wss://): figures from latency differences alone.
        #[arg(long, conflicts_with = "local")]
        target: Option<String>,
        /// Extra root certificates (PEM) for a wss:// target.
        #[arg(long, value_name = "PATH")]
        ca_cert: Option<PathBuf>,
        /// The Worker's folder for --local (default: workers/ found from here).
        #[arg(long)]
        workers: Option<PathBuf>,
        /// Strategies of the ladder (single has no lobby; per-room and sharded:N use it).
        #[arg(
            long,
            default_value = "single,per-room,sharded:4",
            value_delimiter = ','
        )]
        strategies: Vec<Strategy>,
        /// The tiny ladder (3 runs per strategy: 2 room sizes, 2 rates, 2 s windows): under a minute.
        #[arg(long)]
        quick: bool,
        /// Where to write the calibration file.
        #[arg(long, default_value = "calibration.toml")]
        out: PathBuf,
    },
    /// Run the same window of the same seeded plan simulated (as local workerd runs it) and
    /// driven against a local workerd, and compare counts, latencies, usage and the bill.
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Drive a local workerd (the only target validate supports).
        #[arg(long, required = true)]
        local: bool,
        /// The Worker's folder (default: workers/ found from here).
        #[arg(long)]
        workers: Option<PathBuf>,
        /// Strategies, comma-separated (default: the scenario's).
        #[arg(long, value_delimiter = ',')]
        strategies: Vec<Strategy>,
        /// Scenario time at the window's start (default: the busiest hour).
        #[arg(long)]
        from: Option<Dur>,
        /// Real length of the window of each drive.
        #[arg(long, default_value = "20s")]
        duration: Dur,
        /// Scenario seconds per real second.
        #[arg(long, default_value_t = 1.0)]
        speedup: f64,
        /// Ramp connecting the carried sessions (default: as `drive`).
        #[arg(long)]
        ramp: Option<Dur>,
        /// Drives per strategy, each on a fresh workerd.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Simulated replications (a 95% interval from 2).
        #[arg(long, default_value_t = 8)]
        replications: usize,
        #[command(flatten)]
        common: Common,
        /// Write the validations as JSON here (an array, one per strategy).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the validations as Markdown here.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Price a month of usage: a TOML file with the keys of a report's `monthly_usage` block
    /// (see scenarios/usage/example.toml).
    #[command(after_help = COST_EXAMPLES)]
    Cost {
        /// Usage file (TOML): billable keys at the top level, absent = 0; a report's run
        /// figures (peaks, method, factor) are read and ignored.
        usage: PathBuf,
        /// Price table (see `dosim pricing`).
        #[arg(long, default_value = PriceTable::DEFAULT)]
        pricing: String,
        /// Write the bill as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// List the price tables with their source and dates.
    #[command(after_help = PRICING_EXAMPLES)]
    Pricing,
}

// Every subcommand's --help ends with examples that run as written from the repository root
// (`cargo run --release --` in place of `dosim`); a test runs them (drive's: their arguments).
const SIMULATE_EXAMPLES: &str = "\
Examples:
  # The design document's Phase 0 under its own strategy; the full summary
  dosim simulate scenarios/seed-phase0.toml

  # One object per room with standard accept() sockets, 8 independent replications (each
  # headline figure as a mean with a 95% confidence interval); the whole report as JSON too
  dosim simulate scenarios/seed-phase0.toml --strategy per-room --hibernation false --replications 8 --json report.json

  # A launch-day peak on 8 objects, with an extra k6-style threshold (exit 99 if it fails)
  dosim simulate scenarios/single-saturates.toml --strategy sharded:8 --threshold \"message.p99 < 250\"";

const VALIDATE_EXAMPLES: &str = "\
Examples:
  # The shipped CI scenario under its strategy: 3 drives vs 8 simulated replications
  dosim validate scenarios/validate-small.toml --local

  # Phase 0 under every strategy, 20 s windows, reports as JSON and Markdown
  dosim validate scenarios/seed-phase0.toml --local --strategies single,per-room,sharded:4 --json v.json --markdown v.md

  # Near saturation: seed-scale's busiest hour 10 times faster, 2 drives
  dosim validate scenarios/seed-scale.toml --local --strategies single --speedup 10 --repeats 2";

const COMPARE_EXAMPLES: &str = "\
Examples:
  # single, per-room and sharded:4 side by side on Phase 0
  dosim compare scenarios/seed-phase0.toml

  # Other strategies, written as Markdown tables and CSV as well
  dosim compare scenarios/seed-scale.toml --strategies single,per-room,sharded:8 --markdown compare.md --csv compare.csv

  # Standard accept() sockets under an older price table, with replications until the bill
  # and the message p99 are known within ±5% (95% confidence; at most 20 per strategy)
  dosim compare scenarios/seed-phase0.toml --hibernation false --pricing cloudflare-2024-04 --precision 0.05 --max-replications 20";

const SWEEP_EXAMPLES: &str = "\
Examples:
  # Phase 0 at half, once and twice its load, under single, per-room and sharded:4
  dosim sweep scenarios/seed-phase0.toml --sessions-per-day 250,500,1000

  # Any numeric key, several making a grid: 3 loads log-spaced from 250 to 1,000 sessions a
  # day, with 50 and 100 rooms; an SVG chart and CSV, without the progress bar
  dosim sweep scenarios/seed-phase0.toml --vary arrivals.sessions_per_day=250..1000:3:log --vary rooms.count=50,100 --svg curve.svg --csv curve.csv --quiet

  # Measured points beside the curve: every point under every strategy driven 20 s against a
  # fresh local workerd (needs Node.js and npm the first time), with calibrated service times
  dosim sweep scenarios/seed-scale.toml --sessions-per-day 2000,8000 --strategies per-room,sharded:4 --calibration scenarios/calibration-local.toml --drive --local --markdown curve.md";

const DRIVE_EXAMPLES: &str = "\
Examples:
  # One minute of the busiest hour against a local workerd (needs Node.js and npm the first time)
  dosim drive scenarios/seed-scale.toml --local --strategy per-room --duration 60s --json drive.json

  # Several strategies in turn, a fresh workerd each, then side by side as `compare` prints
  dosim drive scenarios/seed-phase0.toml --local --strategies single,sharded:4 --duration 20s --markdown drives.md

  # A deployed Worker over TLS; the stats token lets dosim reconcile with its counters
  DOSIM_STATS_TOKEN=secret dosim drive scenarios/seed-scale.toml --target wss://dosim.example.workers.dev --strategy sharded:4";

const MERGE_EXAMPLES: &str = "\
Examples:
  # Four shards drove one plan together, e.g. on four machines, each with the same
  #   dosim drive SCENARIO --target wss://HOST --strategy per-room --shard I/4 --start-at T --json shard-I.json
  dosim merge shard-0.json shard-1.json shard-2.json shard-3.json --json merged.json

  # Under another price table, with a threshold, and the table as Markdown
  dosim merge shard-0.json shard-1.json --pricing cloudflare-2024-04 --threshold \"message.p99 < 250\" --markdown merged.md";

const CALIBRATE_EXAMPLES: &str = "\
Examples:
  # The full ladder against local workerd (18 short runs, a few minutes); then use it with
  # `dosim simulate SCENARIO --calibration calibration.toml` (or platform.calibration)
  dosim calibrate --local --out calibration.toml

  # The tiny ladder (4 runs, well under a minute) under single and per-room
  dosim calibrate --local --quick --strategies single,per-room --out quick.toml

  # A running Worker, from latencies alone (no CPU measured: a latency-derived file)
  dosim calibrate --target ws://127.0.0.1:8787 --quick --out latency.toml";

const COST_EXAMPLES: &str = "\
Examples:
  # A month of usage (the keys of a report's `monthly_usage` block; absent keys are zero)
  dosim cost scenarios/usage/example.toml

  # Under another price table, the bill as JSON too
  dosim cost scenarios/usage/example.toml --pricing cloudflare-2026-01 --json bill.json";

const PRICING_EXAMPLES: &str = "\
Examples:
  # Every price table, its source and the dates it applies to
  dosim pricing

  # Then price a comparison under one of them
  dosim compare scenarios/seed-phase0.toml --pricing cloudflare-2024-04";

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
    /// What a threshold whose metric has no value in the run (no samples) counts as:
    /// pass (the default, or the scenario's thresholds.no_data) or fail.
    #[arg(long, value_name = "pass|fail")]
    no_data: Option<NoData>,
    /// Override the scenario's WebSocket API: true = Hibernation API, false = accept().
    #[arg(long)]
    hibernation: Option<bool>,
    /// A calibration file (`dosim calibrate`): its figures replace the scenario's
    /// worker_cpu_ms_per_connect and platform.service keys (and platform.calibration's).
    #[arg(long, value_name = "PATH")]
    calibration: Option<PathBuf>,
}

/// Replications and confidence intervals (simulate, compare, sweep).
#[derive(clap::Args)]
struct Replicate {
    /// Run R independent replications (seeds derived from the scenario's) and report each
    /// headline figure as a mean with a 95% confidence interval; with --precision, the
    /// minimum (default 5). 1 (the default) is the plain run.
    #[arg(long, value_name = "R")]
    replications: Option<usize>,
    /// Add replications until the 95% interval's half-width of the --precision-on figures is
    /// at most this share of their mean, e.g. 0.05 (or --max-replications is reached).
    #[arg(long, value_name = "SHARE")]
    precision: Option<f64>,
    /// The figures --precision applies to, comma-separated threshold metrics (default:
    /// monthly_cost_usd,message.p99).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "METRICS",
        requires = "precision"
    )]
    precision_on: Option<Vec<String>>,
    /// The most replications --precision may run (default 100).
    #[arg(long, value_name = "N", requires = "precision")]
    max_replications: Option<usize>,
    /// Threads for the replications (default: the machine's cores); the output is the same
    /// whatever the number.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

impl Replicate {
    fn plan(&self) -> anyhow::Result<dosim::replicate::Plan> {
        Ok(dosim::replicate::Plan::new(
            self.replications,
            self.precision,
            self.precision_on.clone(),
            self.max_replications,
            self.jobs,
        )?)
    }
}

/// Replications of each simulated point of `sweep --drive` when none are asked for: enough
/// for a 95% band beside the measured points.
const DRIVE_REPLICATIONS: usize = 5;

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
                    .is_some_and(dosim::drive::DriveError::is_bad_input)
                || err
                    .downcast_ref::<dosim::drive::merge::MergeError>()
                    .is_some_and(dosim::drive::merge::MergeError::is_bad_input);
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
            replicate,
            json,
        } => {
            check_outputs(&[("--json", json.as_deref())])?;
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            let plan = replicate.plan()?;
            let strategy = strategy.unwrap_or(scenario.platform.strategy);
            announce(&scenario, &[strategy], "");
            let report =
                dosim::replicate::simulate_report(&scenario, strategy, &pricing, &extra, &plan)?;
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
            replicate,
            json,
            csv,
            markdown,
        } => {
            check_outputs(&[
                ("--json", json.as_deref()),
                ("--csv", csv.as_deref()),
                ("--markdown", markdown.as_deref()),
            ])?;
            check_distinct(&strategies)?;
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            announce(&scenario, &strategies, "");
            let plan = replicate.plan()?;
            let reports =
                dosim::replicate::compare(&scenario, &strategies, &pricing, &extra, &plan)?;
            print_comparison(&scenario, &reports, json, csv, markdown)?;
            Ok(threshold_exit(&reports))
        }
        Command::Sweep {
            scenario,
            sessions_per_day,
            vary,
            set,
            scale,
            window,
            check_window,
            strategies,
            common,
            replicate,
            json,
            csv,
            svg,
            markdown,
            quiet,
            drive,
            local,
            workers,
            drive_duration,
            speedup,
            drive_budget,
        } => {
            check_outputs(&[
                ("--json", json.as_deref()),
                ("--csv", csv.as_deref()),
                ("--svg", svg.as_deref()),
                ("--markdown", markdown.as_deref()),
            ])?;
            check_distinct(&strategies)?;
            if drive && !local {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        "sweep --drive needs --local: each point is driven on a fresh local \
                         workerd (127.0.0.1); to measure a deployed Worker, run `dosim drive \
                         --target URL` at one load at a time",
                    )
                    .exit();
            }
            let (scenario, pricing, extra) = load(&scenario, &common)?;
            let mut axes = Vec::new();
            if !sessions_per_day.is_empty() {
                axes.push(dosim::vary::Axis::sessions_per_day(&sessions_per_day)?);
            }
            for v in &vary {
                axes.push(dosim::vary::Axis::parse(v)?);
            }
            let fixed = set
                .iter()
                .map(|f| dosim::vary::Fixed::parse(f))
                .collect::<Result<Vec<_>, _>>()?;
            let design = dosim::sweep::Design {
                axes,
                fixed,
                scale: scale.unwrap_or_default(),
                window,
                check_window,
                record: markdown.is_some(),
            };
            // Refuse a grid too large before making it.
            dosim::vary::check_axes(&design.axes)?;
            dosim::vary::check_fixed(&design.fixed, &design.axes)?;
            for values in dosim::vary::grid(&design.axes) {
                if let Ok(s) = dosim::vary::apply_with(
                    &scenario,
                    &design.fixed,
                    &design.axes,
                    &values,
                    design.scale,
                    window,
                ) {
                    let at: Vec<String> = values.iter().map(ToString::to_string).collect();
                    announce(&s, &strategies, &format!("at {}: ", at.join(", ")));
                }
            }
            let mut replicate = replicate;
            if drive && replicate.replications.is_none() && replicate.precision.is_none() {
                // The measured points need the simulated band to stand beside.
                replicate.replications = Some(DRIVE_REPLICATIONS);
            }
            let plan = replicate.plan()?;
            // The drives are checked and estimated before anything is simulated.
            let drives = if drive {
                dosim::drive::local::find_workers_dir(workers.as_deref())?;
                let d = dosim::empirical::Plan::new(
                    dosim::sweep::point_scenarios(&scenario, &design, &strategies)?,
                    &strategies,
                    dosim::empirical::Options {
                        drive: dosim::drive::Options {
                            local,
                            workers,
                            duration: Duration::from_nanos(drive_duration.0),
                            speedup,
                            progress: !quiet,
                            ..dosim::drive::Options::default()
                        },
                        budget: Duration::from_nanos(drive_budget.0),
                    },
                )?;
                if !quiet {
                    eprintln!(
                        "sweep --drive: {} drives after the simulation, estimated {} (--drive-budget {})",
                        d.estimates.len(),
                        dosim::empirical::seconds(d.estimate_seconds()),
                        dosim::empirical::seconds(drive_budget.0 as f64 / 1e9)
                    );
                }
                Some(d)
            } else {
                None
            };
            let bar = sweep_progress_bar(quiet);
            let sweep = dosim::sweep::run(
                &scenario,
                &design,
                &strategies,
                &pricing,
                &extra,
                &plan,
                &|p| {
                    if let Some(bar) = &bar {
                        bar.set_length(p.total as u64);
                        bar.set_position(p.done as u64);
                        if let Some(load) = p.load {
                            bar.set_message(format!(
                                "now {} sessions/day",
                                dosim::report::human_count(load)
                            ));
                        }
                    }
                },
            );
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let mut sweep = sweep?;
            let mut status = dosim::drive::RunStatus::Complete;
            if let Some(d) = &drives {
                status = d.drive(&mut sweep, &pricing, &extra, &mut |e| {
                    if quiet {
                        return;
                    }
                    match e {
                        dosim::empirical::Event::Start {
                            index,
                            total,
                            load,
                            strategy,
                            estimate_seconds,
                        } => eprintln!(
                            "sweep --drive {index}/{total}: {} sessions/day · {strategy} on a fresh local workerd (~{})",
                            dosim::report::human_count(load.round()),
                            dosim::footprint::duration(estimate_seconds)
                        ),
                        dosim::empirical::Event::Done {
                            index,
                            total,
                            measured: m,
                        } => eprintln!(
                            "sweep --drive {index}/{total}: {} in {:.1} s: measured {}/month, message p99 {}, {} of {} arriving sessions rejected",
                            m.status,
                            m.elapsed_seconds,
                            m.monthly_total_usd.map_or("no bill".into(), |v| format!("${v:.2}")),
                            m.message_p99_ms.map_or("-".into(), |v| format!("{v:.1} ms")),
                            m.rejection_rate.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                            m.sessions_arrived
                        ),
                    }
                })?;
            }
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
            if let Some(path) = markdown {
                let stem = path
                    .file_stem()
                    .map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
                let dir = path.parent().unwrap_or(Path::new(""));
                let charts = sweep.charts()?;
                for (name, svg) in &charts {
                    write(&dir.join(format!("{stem}-{name}.svg")), svg)?;
                }
                write(&path, &sweep.to_markdown(&stem, &scenario))?;
            }
            Ok(match status {
                dosim::drive::RunStatus::Complete => ExitCode::SUCCESS,
                dosim::drive::RunStatus::TargetDown(why) => {
                    eprintln!("error: a drive stopped early: {why}");
                    ExitCode::from(dosim::drive::EXIT_INCOMPLETE)
                }
                dosim::drive::RunStatus::Interrupted(why) => {
                    eprintln!("error: the drives were interrupted: {why}");
                    ExitCode::from(dosim::drive::EXIT_INTERRUPTED)
                }
            })
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
            shard,
            start_at,
            source_addr,
            read_batch,
            realtime,
            quiet,
            common,
            json,
        } => {
            check_outputs(&[
                ("--json", json.as_deref()),
                ("--csv", csv.as_deref()),
                ("--markdown", markdown.as_deref()),
            ])?;
            check_distinct(&strategies)?;
            if target.is_none() && !local {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        "say what to drive: --target ws://HOST:PORT (or wss://HOST) for a running \
                         Worker, or --local to start one on a local workerd",
                    )
                    .exit();
            }
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
                progress_label: None,
                require_reconciled,
                shard,
                start_at: start_at
                    .map(dosim::drive::start_at_from_unix)
                    .transpose()
                    .map_err(dosim::drive::DriveError::Usage)?,
                source_addrs: dosim::drive::client::SourceAddrs::parse(&source_addr)
                    .map_err(dosim::drive::DriveError::Usage)?,
                read_batch: Duration::from_nanos(read_batch.0),
                realtime,
            };
            if strategies.is_empty() {
                let mut run = dosim::drive::drive(&scenario, &pricing, &extra, &opts)?;
                print!("{}", run.report.render_text());
                // A shard's histograms: an HdrHistogram interval log beside its JSON report.
                if let (Some(log), Some(path)) = (run.hlog.take(), json.as_ref()) {
                    let hlog = path.with_extension("hlog");
                    write(&hlog, &log)?;
                    if let Some(rec) = run.report.drive.as_mut().and_then(|d| d.shard.as_mut()) {
                        rec.hlog = hlog.file_name().map(|n| n.to_string_lossy().into_owned());
                    }
                }
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
        Command::Merge {
            reports,
            pricing,
            thresholds,
            require_reconciled,
            json,
            markdown,
            csv,
        } => {
            let extra_thresholds = thresholds
                .iter()
                .map(|t| t.parse::<Threshold>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| dosim::Error::Usage(format!("--threshold {e}")))?;
            let opts = dosim::drive::merge::MergeOptions {
                pricing,
                extra_thresholds,
                require_reconciled,
            };
            let mut run = dosim::drive::merge::merge(&reports, &opts)?;
            print!("{}", run.report.render_text());
            if let Some(path) = json {
                write(&path, &run.report.to_json())?;
                if let Some(log) = run.hlog.take() {
                    write(&path.with_extension("hlog"), &log)?;
                }
            }
            if let Some(path) = markdown {
                write(
                    &path,
                    &comparison_markdown(std::slice::from_ref(&run.report)),
                )?;
            }
            if let Some(path) = csv {
                write(&path, &comparison_csv(std::slice::from_ref(&run.report)))?;
            }
            let code = drive_exit(&run, false);
            // A shard that stopped early (whatever stopped it) makes the merge incomplete.
            Ok(match run.status {
                dosim::drive::RunStatus::Interrupted(_) => {
                    ExitCode::from(dosim::drive::EXIT_INCOMPLETE)
                }
                _ => code,
            })
        }
        Command::Calibrate {
            local,
            target,
            ca_cert,
            workers,
            strategies,
            quick,
            out,
        } => {
            check_outputs(&[("--out", Some(&out))])?;
            check_distinct(&strategies)?;
            let opts = dosim::calibration::ladder::Options {
                local,
                target,
                ca_cert,
                workers,
                stats_token: None,
                strategies,
                quick,
            };
            let cal = dosim::calibration::ladder::calibrate(&opts, &mut |i, n, p| {
                eprintln!(
                    "calibrate: run {i}/{n}: {} rooms of {}, a message per {} ms per member, {} s",
                    p.strategy,
                    p.room_size,
                    p.message_interval_ms,
                    p.window.as_secs()
                )
            })?;
            print!("{}", dosim::calibration::summary(&cal));
            write(&out, &cal.to_toml())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            scenario,
            local: _,
            workers,
            strategies,
            from,
            duration,
            speedup,
            ramp,
            repeats,
            replications,
            common,
            json,
            markdown,
        } => {
            check_outputs(&[
                ("--json", json.as_deref()),
                ("--markdown", markdown.as_deref()),
            ])?;
            check_distinct(&strategies)?;
            let (scenario, pricing, _) = load(&scenario, &common)?;
            let strategies = if strategies.is_empty() {
                vec![scenario.platform.strategy]
            } else {
                strategies
            };
            let opts = dosim::validate::Options {
                drive: dosim::drive::Options {
                    local: true,
                    workers,
                    from: from.map(|d| Duration::from_nanos(d.0)),
                    duration: Duration::from_nanos(duration.0),
                    speedup,
                    ramp: ramp.map(|d| Duration::from_nanos(d.0)),
                    ..dosim::validate::Options::default().drive
                },
                repeats,
                replications,
            };
            let vs = dosim::validate::validate_each(&scenario, &strategies, &pricing, &opts)?;
            for v in &vs {
                print!("{}", v.render_text());
            }
            if let Some(path) = json {
                write(&path, &(serde_json::to_string_pretty(&vs)? + "\n"))?;
            }
            if let Some(path) = markdown {
                write(
                    &path,
                    &vs.iter().map(|v| v.render_markdown()).collect::<String>(),
                )?;
            }
            Ok(if vs.iter().all(|v| v.pass) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(dosim::drive::EXIT_THRESHOLD)
            })
        }
        Command::Cost {
            usage,
            pricing,
            json,
        } => {
            let table = PriceTable::builtin(&pricing).map_err(dosim::Error::from)?;
            let file = UsageFile::read(&usage)?;
            if !file.ignored.is_empty() {
                eprintln!(
                    "note: {}: not billed, read as report figures: {}",
                    usage.display(),
                    file.ignored.join(", ")
                );
            }
            let bill = dosim::pricing::price(&file.usage, &table).map_err(dosim::Error::from)?;
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
    if let Some(n) = common.no_data {
        scenario.thresholds.no_data = n;
    }
    if let Some(path) = &common.calibration {
        scenario.apply_calibration(&dosim::calibration::Calibration::from_file(path)?)?;
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

/// A progress bar on standard error for a sweep, unless asked for quiet or standard error
/// is not a terminal (a pipe, a file, CI), so that it never mixes into captured output.
fn sweep_progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} sweep {bar:16} {pos}/{len} points · {elapsed}, ~{eta} left · {msg}",
        )
        .expect("valid template"),
    );
    // Ticks keep the elapsed time moving while one load (several points) runs.
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
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

/// Refuse a strategy given twice in `--strategies` (it would run, and show, twice).
fn check_distinct(strategies: &[Strategy]) -> anyhow::Result<()> {
    for (i, s) in strategies.iter().enumerate() {
        if strategies[..i].contains(s) {
            return Err(dosim::Error::Usage(format!("--strategies: {s} is given twice")).into());
        }
    }
    Ok(())
}

/// Refuse, before anything runs, an output file that could not be written once the run is
/// over (its work would be lost): its folder must exist and it must not be a folder.
fn check_outputs(outputs: &[(&str, Option<&Path>)]) -> anyhow::Result<()> {
    for &(flag, path) in outputs {
        let Some(path) = path else { continue };
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let why = if path.is_dir() {
            "is a folder"
        } else if !folder.is_dir() {
            "its folder does not exist"
        } else {
            continue;
        };
        return Err(dosim::Error::Usage(format!(
            "{flag} {}: {why}; the run's output could not be written there",
            path.display()
        ))
        .into());
    }
    Ok(())
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
        write(&path, &comparison_markdown(reports))?;
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
