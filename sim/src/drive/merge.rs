//! Merge: the reports of the N shards of one sharded drive (`dosim drive --shard I/N`, see
//! [`super::shard`]) into the report one process driving the whole plan writes.
//!
//! Each shard's report carries its record (`drive.shard`: which plan, and everything it
//! counted) and names its HdrHistogram interval log (`.hlog`, beside the report). The merge
//!
//! 1. reads every report and its log, and refuses (a [`MergeError`], exit code 2, naming the
//!    file) a file that cannot be read or is not a shard's report, a shard given twice, a
//!    shard missing from `0..N`, and a shard of another plan (seed, scenario digest,
//!    strategy, N, window or speed-up differ);
//! 2. adds the histograms exactly (HdrHistogram addition: the same counts at the same values
//!    as one process would have recorded) and the counts (`Measured::absorb`: sessions,
//!    messages, deliveries, faults, the meter's books per object);
//! 3. rebuilds the whole plan from the scenario in the records (the shards' plans together
//!    are exactly that plan, their "fill" rooms resolved from the plan's times), and builds
//!    the report with the drive's own builder: the per-event costs, the meter's usage, the
//!    monthly projection, the thresholds and the bill, once, over the sum;
//! 4. reconciles the sum with the Worker's stats once. The Worker's counters are global (they
//!    hold every shard's traffic), so one read before every shard's traffic and one after
//!    all of it are needed: the **earliest** read before (each shard reads the stats before
//!    its own traffic starts, so the earliest precedes every shard's traffic) and the
//!    **latest** read after (each shard reads them after its own departures, so the latest
//!    follows every shard's). "Earliest" and "latest" are by each shard's wall clock: the
//!    shards' machines must agree on the time, as `--start-at` already requires. Without
//!    both reads from every shard (no token, a target gone), there is no reconciliation and
//!    a warning says which shard lacked them.
//!
//! What does not add up exactly, and how it is merged: the phases' real lengths are the
//! longest shard's (the shards run side by side); the driver's CPU, memory and sockets are
//! the sums over the processes; peaks and the time series' gauges are the sums of the
//! shards' (an upper bound of the whole run's: shards peak at different moments); the window
//! covered is the shortest shard's; a run stopped early is the first such shard's status.
//! The target's CPU is only read with `--local`, which a split plan cannot use: a merged
//! report of several shards bills the Worker's CPU and the objects' busy time as modelled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::client::Target;
use super::cpu::WorkerProbe;
use super::plan::{DrivePlan, PlanOptions};
use super::report::{build_report, Build, PlanSummary};
use super::run::{PhaseTimes, Samples};
use super::shard::{self, Raw, Shard};
use super::state::{Hists, Measured};
use super::{After, DriveError, DriveRun, RunStatus};
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::drive::{MergedShard, ShardRecord};
use crate::scenario::Scenario;
use crate::threshold::Threshold;
use crate::workload::Workload;

/// What can go wrong in a merge. Every variant but [`MergeError::Report`] is the input's
/// fault (exit code 2) and names the file.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no shard report given: dosim merge SHARD.json... (one report per shard of dosim drive --shard I/N --json SHARD.json)")]
    Empty,
    /// A report (or its log) cannot be read.
    #[error("{path}: cannot be read: {cause}", path = .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a `source()`, so that it is printed once).
        cause: std::io::Error,
    },
    /// A file that is not a shard's report (not JSON, no `drive.shard` record, another
    /// format).
    #[error("{path}: not a shard's report of dosim drive --shard I/N --json: {why}", path = .path.display())]
    NotAShard {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A shard's HdrHistogram log is missing or broken.
    #[error("{path}: its histogram log {log}: {why}", path = .path.display(), log = .log.display())]
    Log {
        /// The report that names the log.
        path: PathBuf,
        /// The log.
        log: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The same shard twice.
    #[error("{path}: shard {shard} is given twice (also {first}): each shard's counts must be added once", path = .path.display(), first = .first.display())]
    Duplicate {
        /// The second file with the shard.
        path: PathBuf,
        /// The first.
        first: PathBuf,
        /// The shard.
        shard: Shard,
    },
    /// Shards of `0..N` are missing.
    #[error("{} (given: {given}): the merge needs every shard of the plan", missing_phrase(.missing, *.unlisted, *.count))]
    Missing {
        /// The first missing indices (at most [`MISSING_LISTED`]).
        missing: Vec<u32>,
        /// How many more are missing, not listed.
        unlisted: u64,
        /// N.
        count: u32,
        /// The files given, each with its shard.
        given: String,
    },
    /// A shard of another plan than the first file's.
    #[error("{path}: {what} {theirs}, where {first} has {ours}: not a shard of the same plan", path = .path.display(), first = .first.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What differs (`seed`, `scenario digest`, `strategy`, ...).
        what: &'static str,
        /// Its value there.
        theirs: String,
        /// The first file given.
        first: PathBuf,
        /// Its value in the first file.
        ours: String,
    },
    /// Building the merged report failed.
    #[error(transparent)]
    Report(#[from] DriveError),
}

/// How many missing shards an error lists by index (the rest are counted).
pub const MISSING_LISTED: usize = 10;

fn missing_phrase(missing: &[u32], unlisted: u64, count: u32) -> String {
    let mut list = missing
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if unlisted > 0 {
        list += &format!(" and {} more", crate::report::human_count(unlisted as f64));
    }
    if missing.len() == 1 && unlisted == 0 {
        format!("shard {list} of {count} is missing")
    } else {
        format!("shards {list} of {count} are missing")
    }
}

impl MergeError {
    /// True when the error is the user's input (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            MergeError::Report(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

/// Options of a merge (the command line's `dosim merge`).
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Price the merged usage under this table instead of the shards' own.
    pub pricing: Option<String>,
    /// Thresholds besides the shards' own `--threshold`s.
    pub extra_thresholds: Vec<Threshold>,
    /// Exit non-zero when the reconciliation finds a difference.
    pub require_reconciled: bool,
}

/// One shard's report, read.
struct Loaded {
    path: PathBuf,
    record: ShardRecord,
    shard: Shard,
    raw: Raw,
    hists: Hists,
    /// `drive.carried.planned` and `drive.arrivals.planned`.
    planned: (u64, u64),
    /// `drive.driver.peak_rss_bytes`: the shard process's own, read when it built its report.
    peak_rss: Option<u64>,
}

/// Merge the reports of every shard of one plan into one report (its HdrHistogram log of
/// the added histograms in [`DriveRun::hlog`]).
pub fn merge(paths: &[PathBuf], opts: &MergeOptions) -> Result<DriveRun, MergeError> {
    if paths.is_empty() {
        return Err(MergeError::Empty);
    }
    let mut shards = paths
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    check_same_plan(&shards, opts.pricing.is_some())?;
    shards.sort_by_key(|s| s.shard.index);
    check_complete(&shards)?;
    build(&shards, opts)
}

/// Read one shard's report and its log.
fn load(path: &Path) -> Result<Loaded, MergeError> {
    let not = |why: String| MergeError::NotAShard {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|cause| MergeError::Unreadable {
        path: path.to_path_buf(),
        cause,
    })?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| not(format!("not a JSON document ({e})")))?;
    let drive = doc
        .get("drive")
        .filter(|d| d.is_object())
        .ok_or_else(|| not("no drive block (a report of dosim simulate?)".into()))?;
    let rec = drive
        .get("shard")
        .filter(|r| r.is_object())
        .ok_or_else(|| {
            not(if drive.get("merged_from").is_some() {
                "it is a merged report already (drive.merged_from)".into()
            } else {
                "no drive.shard record (a drive without --shard)".into()
            })
        })?;
    let record: ShardRecord = serde_json::from_value(rec.clone())
        .map_err(|e| not(format!("drive.shard cannot be read ({e})")))?;
    if record.format != shard::FORMAT {
        return Err(not(format!(
            "drive.shard.format is {}, where this dosim reads {} (merge with the dosim that drove the shards)",
            record.format,
            shard::FORMAT
        )));
    }
    if record.count == 0 || record.index >= record.count {
        return Err(not(format!(
            "drive.shard is {}/{}: not a shard",
            record.index, record.count
        )));
    }
    let shard = Shard {
        index: record.index,
        count: record.count,
    };
    let raw: Raw = serde_json::from_value(record.raw.clone()).map_err(|e| {
        not(format!(
            "drive.shard.raw cannot be read ({e}): written by another version of dosim?"
        ))
    })?;
    let planned = |group: &str| drive[group]["planned"].as_u64();
    let planned = planned("carried")
        .zip(planned("arrivals"))
        .ok_or_else(|| not("no drive.carried.planned or drive.arrivals.planned".into()))?;
    let Some(log) = record.hlog.as_deref() else {
        return Err(not(
            "drive.shard.hlog is null: the shard's histogram log was not written".into(),
        ));
    };
    let log = path.parent().unwrap_or(Path::new("")).join(log);
    let log_err = |why: String| MergeError::Log {
        path: path.to_path_buf(),
        log: log.clone(),
        why,
    };
    let text = std::fs::read(&log).map_err(|e| log_err(format!("cannot be read: {e}")))?;
    let hists = shard::read_hlog(&text).map_err(log_err)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        record,
        shard,
        raw,
        hists,
        planned,
        peak_rss: drive["driver"]["peak_rss_bytes"].as_u64(),
    })
}

/// Every shard is of the first file's plan: same N, seed, scenario, strategy, window and
/// speed-up (and price table, unless the merge prices under its own).
fn check_same_plan(shards: &[Loaded], own_pricing: bool) -> Result<(), MergeError> {
    let first = &shards[0];
    // A record's scenario must be the one its digest says (an edited report is refused).
    for s in shards {
        let digest = scenario_of(s)?.1;
        if digest != s.record.scenario_digest {
            return Err(MergeError::NotAShard {
                path: s.path.clone(),
                why: "drive.shard.scenario does not match drive.shard.scenario_digest".into(),
            });
        }
    }
    let fields = |r: &ShardRecord| -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("N (shards of the plan)", r.count.to_string()),
            ("seed", r.seed.to_string()),
            ("scenario digest", r.scenario_digest.clone()),
            ("strategy", r.strategy.clone()),
            ("window start (from_ns)", r.from_ns.to_string()),
            ("window length (duration_ns)", r.duration_ns.to_string()),
            ("speed-up", r.speedup.to_string()),
        ];
        if !own_pricing {
            v.push((
                "price table (give merge --pricing to price them alike)",
                r.pricing.clone(),
            ));
        }
        v
    };
    let ours = fields(&first.record);
    for s in &shards[1..] {
        for ((what, a), (_, b)) in ours.iter().zip(fields(&s.record)) {
            if *a != b {
                return Err(MergeError::Foreign {
                    path: s.path.clone(),
                    what,
                    theirs: b,
                    first: first.path.clone(),
                    ours: a.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Every index of `0..N` once (the shards sorted by index).
fn check_complete(shards: &[Loaded]) -> Result<(), MergeError> {
    for w in shards.windows(2) {
        if w[0].shard == w[1].shard {
            return Err(MergeError::Duplicate {
                path: w[1].path.clone(),
                first: w[0].path.clone(),
                shard: w[1].shard,
            });
        }
    }
    // N comes from a file: list the first missing indices and count the rest, without
    // walking all of 0..N (N may be up to 2^32).
    let count = shards[0].shard.count;
    let given: std::collections::BTreeSet<u32> = shards
        .iter()
        .map(|s| s.shard.index)
        .filter(|&i| i < count)
        .collect();
    let total = u64::from(count) - given.len() as u64;
    let missing: Vec<u32> = (0..count)
        .filter(|i| !given.contains(i))
        .take(MISSING_LISTED)
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = shards
            .iter()
            .map(|s| format!("{} ({})", s.path.display(), s.shard))
            .collect();
        return Err(MergeError::Missing {
            unlisted: total - missing.len() as u64,
            missing,
            count,
            given: given.join(", "),
        });
    }
    Ok(())
}

/// The scenario of a record and its digest.
fn scenario_of(s: &Loaded) -> Result<(Scenario, String), MergeError> {
    let scenario: Scenario =
        serde_json::from_value(s.record.scenario.clone()).map_err(|e| MergeError::NotAShard {
            path: s.path.clone(),
            why: format!("drive.shard.scenario is not a scenario ({e})"),
        })?;
    let digest = shard::canonical(&scenario).1;
    Ok((scenario, digest))
}

/// The whole plan the shards split, "fill" resolved as each shard resolved it; its start
/// chosen as the shards' was (the default's reason kept when it is the default).
fn whole_plan(s: &Scenario, r: &ShardRecord) -> Result<DrivePlan, String> {
    let w = Workload::new(s);
    let opts = |from_ns| PlanOptions {
        from_ns,
        duration: Duration::from_nanos(r.duration_ns),
        speedup: r.speedup,
    };
    let mut plan = DrivePlan::build(s, &w, &opts(None))?;
    if plan.time.from_ns != r.from_ns {
        plan = DrivePlan::build(s, &w, &opts(Some(r.from_ns)))?;
    }
    shard::resolve_fill(&mut plan, s.rooms.count, s.limits.max_connections_per_room);
    Ok(plan)
}

/// The merged report.
fn build(shards: &[Loaded], opts: &MergeOptions) -> Result<DriveRun, MergeError> {
    let first = &shards[0];
    let n = first.shard.count;
    // What the first file's record cannot give.
    let bad_first = |why: String| MergeError::NotAShard {
        path: first.path.clone(),
        why,
    };
    let (scenario, _) = scenario_of(first)?;
    let strategy: Strategy = first
        .record
        .strategy
        .parse()
        .map_err(|e| bad_first(format!("drive.shard.strategy: {e}")))?;
    let pricing = PriceTable::builtin(opts.pricing.as_deref().unwrap_or(&first.record.pricing))
        .map_err(|e| DriveError::Other(e.into()))?;
    let mut thresholds: Vec<Threshold> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for s in shards {
        for t in &s.record.thresholds {
            if !seen.contains(&t.as_str()) {
                seen.push(t);
                thresholds.push(t.parse().map_err(|e| MergeError::NotAShard {
                    path: s.path.clone(),
                    why: format!("drive.shard.thresholds: {e}"),
                })?);
            }
        }
    }
    thresholds.extend(opts.extra_thresholds.iter().cloned());
    let plan = whole_plan(&scenario, &first.record)
        .map_err(|e| bad_first(format!("the plan cannot be rebuilt: {e}")))?;
    let planned = shards
        .iter()
        .fold((0, 0), |(c, a), s| (c + s.planned.0, a + s.planned.1));
    let whole = (plan.carried.len() as u64, plan.arrivals.len() as u64);
    if planned != whole {
        return Err(bad_first(format!(
            "the shards planned {} carried and {} arriving sessions, where their plan has {} and {}: driven by another version of dosim?",
            planned.0, planned.1, whole.0, whole.1
        )));
    }
    let summary = PlanSummary::of(&plan);
    let m = measured(shards)?;
    let times = phase_times(shards);
    let samples = samples(shards);
    let (status, stopped_during) = status(shards);
    let target_text = &first.raw.target;
    let target = Target::parse(target_text)
        .map_err(|e| bad_first(format!("drive.shard.raw.target: {e}")))?;
    let mut warnings = warnings(shards, &plan);
    let reconciliation = reconciliation(shards, strategy, &m, &mut warnings);
    let started_at_unix_ms = shards
        .iter()
        .map(|s| s.raw.started_at_unix_ms)
        .fold(f64::INFINITY, f64::min);
    // A merge of one shard (`--shard 0/1`) keeps what its process measured of the target.
    let (clock, worker_probe) = if n == 1 {
        (first.raw.clock, first.raw.worker_probe.clone())
    } else {
        (None, WorkerProbe::default())
    };
    let mut report = build_report(Build {
        scenario: &scenario,
        strategy,
        pricing: &pricing,
        extra_thresholds: &thresholds,
        m: &m,
        plan: &summary,
        times: &times,
        samples: &samples,
        clock,
        worker_probe: &worker_probe,
        status: &status,
        stopped_during,
        target: &target,
        local: None,
        reconciliation,
        lobby_mode: first.raw.lobby_mode,
        nofile: shards.iter().filter_map(|s| s.raw.nofile).min(),
        read_batch: first.raw.read_batch,
        realtime: shards.iter().all(|s| s.raw.realtime),
        warnings,
        started_at_unix_ms,
    })?;
    report.provenance.method.push_str(&format!(
        "; driven by {} and merged (dosim merge)",
        crate::report::counted(u64::from(n), "shard process", "shard processes")
    ));
    report.provenance.notes.push(format!(
        "merged from {}: counts and the meter's books added, histograms added exactly (HdrHistogram), the plan rebuilt whole; projection, thresholds and bill computed once over the sum; reconciled once with the Worker's stats (the earliest read before, the latest after); peaks, the time series' gauges and the driver's own cost are sums over the shard processes",
        crate::report::counted(u64::from(n), "shard", "shards")
    ));
    if let Some(d) = report.drive.as_mut() {
        // The builder read this process's peak memory: the shard processes' instead.
        d.driver.peak_rss_bytes = shards.iter().map(|s| s.peak_rss).sum();
        d.merged_from = shards
            .iter()
            .map(|s| MergedShard {
                shard: s.shard.to_string(),
                report: s.path.display().to_string(),
                status: s.raw.status.clone(),
                started_at_unix_ms: s.raw.started_at_unix_ms.round(),
            })
            .collect();
    }
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(started_at_unix_ms / 1000.0);
    let length = times.ramp + times.window + times.grace + times.cut;
    let hlog = shard::write_hlog(
        &m.hists,
        started,
        length,
        &format!("drive merged from {n} shards"),
    );
    Ok(DriveRun {
        report,
        status,
        require_reconciled: opts.require_reconciled,
        hlog: Some(hlog),
    })
}

/// The shards' counts and histograms added up.
fn measured(shards: &[Loaded]) -> Result<Measured, MergeError> {
    let mut m = shards[0].raw.measured.clone();
    m.hists = shards[0].hists.clone();
    for s in &shards[1..] {
        m.absorb(&s.raw.measured)
            .map_err(|why| MergeError::NotAShard {
                path: s.path.clone(),
                why,
            })?;
        for (name, l) in s.hists.named() {
            m.hists
                .by_name(name)
                .expect("a name of Hists::named")
                .merge(l);
        }
    }
    Ok(m)
}

/// The phases' real lengths: the longest shard's (they ran side by side).
fn phase_times(shards: &[Loaded]) -> PhaseTimes {
    let mut t = PhaseTimes::default();
    for s in shards {
        let u = &s.raw.times;
        t.ramp = t.ramp.max(u.ramp);
        t.window = t.window.max(u.window);
        t.grace = t.grace.max(u.grace);
        t.cut = t.cut.max(u.cut);
        t.grace_limit = t.grace_limit.max(u.grace_limit);
        t.carried_unanswered += u.carried_unanswered;
    }
    t
}

/// The driver's samples summed over the processes (each reading present in every shard);
/// the target's CPU only for a single shard (a split plan cannot read it).
fn samples(shards: &[Loaded]) -> Samples {
    fn sum<T: Copy + std::ops::Add<Output = T>, const K: usize>(
        each: impl Iterator<Item = [Option<T>; K]>,
    ) -> [Option<T>; K] {
        let mut out: Option<[Option<T>; K]> = None;
        for x in each {
            out = Some(match out {
                None => x,
                Some(mut acc) => {
                    for (a, b) in acc.iter_mut().zip(x) {
                        *a = a.zip(b).map(|(a, b)| a + b);
                    }
                    acc
                }
            });
        }
        out.unwrap_or([None; K])
    }
    let raw = || shards.iter().map(|s| &s.raw.samples);
    Samples {
        target_cpu: if shards.len() == 1 {
            shards[0].raw.samples.target_cpu
        } else {
            [None; 4]
        },
        driver_cpu: sum(raw().map(|s| s.driver_cpu)),
        driver_cpu_kernel: sum(raw().map(|s| s.driver_cpu_kernel)),
        driver_rss: sum(raw().map(|s| s.driver_rss)),
        sockets_at_t0: raw().map(|s| s.sockets_at_t0).sum(),
        sockets_at_cut: raw().map(|s| s.sockets_at_cut).sum(),
    }
}

/// Complete when every shard completed; else the first shard that stopped early, named.
fn status(shards: &[Loaded]) -> (RunStatus, Option<String>) {
    for s in shards {
        let why = || {
            format!(
                "shard {} ({}): {}",
                s.shard,
                s.path.display(),
                s.raw.stopped.as_deref().unwrap_or("stopped early")
            )
        };
        match s.raw.status.as_str() {
            "complete" => {}
            "interrupted" => return (RunStatus::Interrupted(why()), s.raw.stopped_during.clone()),
            _ => return (RunStatus::TargetDown(why()), s.raw.stopped_during.clone()),
        }
    }
    (RunStatus::Complete, None)
}

/// The shards' own warnings, each once with the shards that gave it (their "few arrivals"
/// said again of the whole plan), and what the merge itself notices.
fn warnings(shards: &[Loaded], plan: &DrivePlan) -> Vec<String> {
    let mut by_text: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    // The merge reconciles when every shard read the stats, and then checks the lobby's rows.
    let reconciled = shards
        .iter()
        .all(|s| s.raw.stats_before.is_some() && s.raw.stats_after.is_some());
    for s in shards {
        for w in &s.raw.warnings {
            if w.contains(super::FEW_ARRIVALS) || (reconciled && w.starts_with(super::LOBBY_ROWS)) {
                continue;
            }
            let who = by_text.entry(w).or_default();
            if who.is_empty() {
                order.push(w);
            }
            who.push(s.shard.to_string());
        }
    }
    let n = shards.len();
    let mut out: Vec<String> = order
        .into_iter()
        .map(|w| {
            let who = &by_text[w];
            if who.len() == n {
                format!("every shard: {w}")
            } else {
                format!(
                    "{} {}: {w}",
                    if who.len() == 1 { "shard" } else { "shards" },
                    who.join(", ")
                )
            }
        })
        .collect();
    out.extend(super::few_arrivals(plan.projection.window_arrivals));
    let first = &shards[0];
    let differ = |what: &str, f: &dyn Fn(&Loaded) -> String| {
        let values: Vec<String> = shards
            .iter()
            .map(|s| format!("{} {}", s.shard, f(s)))
            .collect();
        shards
            .iter()
            .any(|s| f(s) != f(first))
            .then(|| format!("the shards {what}: {}", values.join(", ")))
    };
    out.extend(differ("drove different targets", &|s| s.raw.target.clone()));
    out.extend(differ("were given different --start-at times", &|s| {
        s.record
            .start_at_unix
            .map_or("none".into(), |t| format!("{t:.3}"))
    }));
    out
}

/// The sum reconciled with the Worker's stats: the earliest read before and the latest
/// read after (see the module documentation); none, with a warning, unless every shard
/// read both.
fn reconciliation(
    shards: &[Loaded],
    strategy: Strategy,
    m: &Measured,
    warnings: &mut Vec<String>,
) -> Option<super::reconcile::Reconciliation> {
    let lacking: Vec<String> = shards
        .iter()
        .filter(|s| s.raw.stats_before.is_none() || s.raw.stats_after.is_none())
        .map(|s| s.shard.to_string())
        .collect();
    if !lacking.is_empty() {
        warnings.push(format!(
            "no reconciliation with the Worker's stats: {} {} not read them before and after the run (no token, or the target went away: see the shard's warnings)",
            if lacking.len() == 1 { "shard" } else { "shards" },
            if lacking.len() == 1 {
                format!("{} has", lacking[0])
            } else {
                format!("{} have", lacking.join(", "))
            }
        ));
        return None;
    }
    let at = |s: &&Loaded, f: fn(&Raw) -> Option<f64>| f(&s.raw).unwrap_or(0.0);
    let earliest = shards.iter().min_by(|a, b| {
        at(a, |r| r.stats_before_unix_ms).total_cmp(&at(b, |r| r.stats_before_unix_ms))
    })?;
    let latest = shards.iter().max_by(|a, b| {
        at(a, |r| r.stats_after_unix_ms).total_cmp(&at(b, |r| r.stats_after_unix_ms))
    })?;
    let reasons: Vec<String> = shards
        .iter()
        .filter_map(|s| {
            s.raw
                .not_comparable
                .as_ref()
                .map(|w| format!("shard {}: {w}", s.shard))
        })
        .collect();
    let after = After {
        stats: latest.raw.stats_after.clone()?,
        unix_ms: latest.raw.stats_after_unix_ms.unwrap_or(0.0),
        not_comparable: (!reasons.is_empty()).then(|| reasons.join("; ")),
    };
    let mut r = super::reconcile_with(
        strategy,
        earliest.raw.stats_before.as_ref(),
        &after,
        m,
        warnings,
    );
    r.source = format!(
        "{} (merged: the earliest read before, shard {}'s, and the latest read after, shard {}'s)",
        r.source, earliest.shard, latest.shard
    );
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values split over shards and merged give exactly the histogram of all of them in one.
    #[test]
    fn histograms_split_over_shards_add_up_to_the_whole_exactly() {
        let mut whole = Hists::default();
        let mut parts = vec![Hists::default(); 4];
        for i in 1..20_000u64 {
            // Values spread over several orders of magnitude, a few buckets shared.
            let ns = (i * i * 7_919) % 3_000_000_000 + 1_000;
            whole.message.record_ns(ns);
            parts[(i % 4) as usize].message.record_ns(ns);
            whole.connect.record_ns(ns / 3 + 1_000);
            parts[(i * 7 % 4) as usize]
                .connect
                .record_ns(ns / 3 + 1_000);
        }
        let logs: Vec<String> = parts
            .iter()
            .map(|h| shard::write_hlog(h, SystemTime::UNIX_EPOCH, Duration::from_secs(9), "t"))
            .collect();
        let mut sum = shard::read_hlog(logs[0].as_bytes()).unwrap();
        for log in &logs[1..] {
            for (name, l) in shard::read_hlog(log.as_bytes()).unwrap().named() {
                sum.by_name(name).unwrap().merge(l);
            }
        }
        for ((name, a), (_, b)) in sum.named().into_iter().zip(whole.named()) {
            assert_eq!(a.histogram(), b.histogram(), "{name}");
            let pairs = |h: &hdrhistogram::Histogram<u64>| -> Vec<(u64, u64)> {
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            };
            assert_eq!(pairs(a.histogram()), pairs(b.histogram()), "{name}");
            assert_eq!(a.summary(), b.summary(), "{name}");
        }
        assert_eq!(sum.message.count(), 19_999);
        // A shard left out is seen.
        let three = shard::read_hlog(logs[1].as_bytes()).unwrap();
        assert_ne!(three.message.histogram(), whole.message.histogram());
    }

    fn shard(index: u32, count: u32, raw: Raw) -> Loaded {
        Loaded {
            path: PathBuf::from(format!("s{index}.json")),
            record: ShardRecord::default(),
            shard: Shard { index, count },
            raw,
            hists: Hists::default(),
            planned: (0, 0),
            peak_rss: None,
        }
    }

    /// A Worker stats document told apart by its strategy field.
    fn stats(tag: &str) -> super::super::stats::Stats {
        super::super::stats::Stats {
            strategy: tag.into(),
            ..Default::default()
        }
    }

    #[test]
    fn statuses_phases_samples_and_the_stats_reads_are_merged_as_documented() {
        let ms = Duration::from_millis;
        let raw = |status: &str, ramp: u64, before: f64, after: f64| Raw {
            status: status.into(),
            stopped: (status != "complete").then(|| "Ctrl-C".to_string()),
            stopped_during: (status != "complete").then(|| "window".to_string()),
            times: PhaseTimes {
                ramp: ms(ramp),
                window: ms(4000),
                grace: ms(10 * ramp),
                cut: ms(5),
                carried_unanswered: 1,
                grace_limit: ms(2000),
            },
            samples: Samples {
                target_cpu: [Some(ms(1)); 4],
                driver_cpu: [Some(ms(1)), Some(ms(2)), Some(ms(ramp))],
                driver_cpu_kernel: [Some(ms(1)), Some(ms(1)), Some(ms(2))],
                driver_rss: [Some(100), None],
                sockets_at_t0: 10,
                sockets_at_cut: 3,
            },
            stats_before: Some(stats(&format!("before {before}"))),
            stats_before_unix_ms: Some(before),
            stats_after: Some(stats(&format!("after {after}"))),
            stats_after_unix_ms: Some(after),
            ..Raw::default()
        };
        let shards = vec![
            shard(0, 3, raw("complete", 2000, 1_000.0, 9_000.0)),
            shard(1, 3, raw("interrupted", 2100, 900.0, 9_500.0)),
            shard(2, 3, raw("target_down", 1900, 950.0, 9_200.0)),
        ];
        // The first shard that stopped early, named with its file.
        let (status, during) = status(&shards);
        assert_eq!(
            status,
            RunStatus::Interrupted("shard 1/3 (s1.json): Ctrl-C".into())
        );
        assert_eq!(during.as_deref(), Some("window"));
        assert_eq!(super::status(&shards[..1]).0, RunStatus::Complete);
        // Phases: the longest shard's; unanswered sessions: the sum.
        let t = phase_times(&shards);
        assert_eq!((t.ramp, t.grace, t.window), (ms(2100), ms(21000), ms(4000)));
        assert_eq!(t.carried_unanswered, 3);
        // The driver's samples summed over the processes; the target's CPU only for one.
        let s = samples(&shards);
        assert_eq!(s.driver_cpu, [Some(ms(3)), Some(ms(6)), Some(ms(6000))]);
        assert_eq!(s.driver_rss, [Some(300), None]);
        assert_eq!((s.sockets_at_t0, s.sockets_at_cut), (30, 9));
        assert_eq!(s.target_cpu, [None; 4]);
        assert_eq!(samples(&shards[..1]).target_cpu, [Some(ms(1)); 4]);
        // The earliest read before (shard 1's) and the latest after (shard 1's too).
        let mut warnings = Vec::new();
        let r = reconciliation(
            &shards,
            Strategy::PerRoom,
            &Measured::default(),
            &mut warnings,
        )
        .unwrap();
        assert!(
            r.source.contains(
                "the earliest read before, shard 1/3's, and the latest read after, shard 1/3's"
            ),
            "{}",
            r.source
        );
        let mut later = shards;
        later[2].raw.stats_after_unix_ms = Some(9_600.0);
        let r = reconciliation(
            &later,
            Strategy::PerRoom,
            &Measured::default(),
            &mut warnings,
        )
        .unwrap();
        assert!(
            r.source.contains("latest read after, shard 2/3's"),
            "{}",
            r.source
        );
        // A shard without a read: no reconciliation, and the shard named.
        later[0].raw.stats_after = None;
        assert!(reconciliation(
            &later,
            Strategy::PerRoom,
            &Measured::default(),
            &mut warnings
        )
        .is_none());
        assert!(
            warnings
                .last()
                .unwrap()
                .contains("shard 0/3 has not read them"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_scenario_survives_its_record() {
        let s = Scenario::parse(
            "name = \"t\"\nseed = 3\n[window]\nlength = \"1d\"\n[arrivals]\nsessions_per_day = 1000\n[rooms]\ncount = 10\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let (value, digest) = shard::canonical(&s);
        let mut back: Scenario = serde_json::from_value(value).unwrap();
        // Everything but the file it was read from (not serialized).
        assert!(back.path.as_os_str().is_empty());
        back.path = s.path.clone();
        assert_eq!(back, s);
        assert_eq!(shard::canonical(&back).1, digest);
    }

    #[test]
    fn errors_name_what_is_missing() {
        let e = MergeError::Missing {
            missing: vec![1, 3],
            unlisted: 0,
            count: 4,
            given: "a.json (0/4), c.json (2/4)".into(),
        };
        assert_eq!(
            e.to_string(),
            "shards 1, 3 of 4 are missing (given: a.json (0/4), c.json (2/4)): the merge needs every shard of the plan"
        );
        assert!(e.is_bad_input());
    }

    #[test]
    fn a_plan_of_billions_of_shards_is_refused_listing_a_few() {
        // N = 2^32 − 1 walked 0..N for the missing ones (and held them all): it hung.
        let shards = [shard(0, u32::MAX, Raw::default())];
        let err = check_complete(&shards).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "shards 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 4,294,967,284 more of 4294967295 are missing"
            ),
            "{err}"
        );
    }
}
