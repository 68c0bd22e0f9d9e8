//! Replicate: one simulated run repeated under R independent seeds, in parallel and
//! deterministically, each headline figure as a mean with a 95% confidence interval.
//!
//! - **Seeds.** Replication 0 runs under the scenario's own seed, so its report is the plain
//!   run's, byte for byte; replication i ≥ 1 runs under the i-th output of SplitMix64 seeded
//!   with it, kept to 53 bits ([`seed`]). Each seed gives its own plan and platform draws (the
//!   streams of [`crate::workload::stream`] are derived from it), so replications are
//!   independent, and replication i is exactly the plain run under `--seed` its seed.
//! - **Determinism.** Replications run on a pool of worker threads ([`parallel_map`]); each
//!   result is stored at its replication's index and everything is aggregated in index order,
//!   so the output is the same bytes whatever the number of threads and their scheduling.
//! - **Figures.** The headline figures ([`HEADLINE`]), the `--precision-on` figures and every
//!   threshold's metric, named as threshold metrics (see [`crate::threshold`]). A figure's
//!   interval is over its per-replication values: for a percentile, over the replications'
//!   own percentiles (batch means, one batch per replication), not a percentile of the
//!   pooled samples. See [`crate::interval`] for the interval itself.
//! - **Precision.** With a [`Precision`], replications are added until every chosen figure's
//!   relative half-width is at most the target, or the cap is reached: the run stops at the
//!   smallest count n ≥ the minimum at which the target holds, checked at every n in turn
//!   (replications are computed in parallel batches, and the ones past that n are
//!   discarded, so the count does not depend on the batch size).
//! - **The report.** The report of replication 0 stays the report (every consumer of the
//!   plain shape keeps working); its `replications` block holds the intervals, and its
//!   thresholds are checked on the means.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::interval::{Interval, CONFIDENCE};
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::Report;
use crate::scenario::Scenario;
use crate::threshold::Threshold;

/// The headline figures every replicated run reports, as threshold metric names: the
/// monthly bill, connect p50/p99, admission wait p99, message p50/p99, and the rejection and
/// abandonment rates.
pub const HEADLINE: [&str; 8] = [
    "monthly_cost_usd",
    "connect.p50",
    "connect.p99",
    "admission_wait.p99",
    "message.p50",
    "message.p99",
    "rejection_rate",
    "abandon_rate",
];

/// The figures `--precision` applies to unless `--precision-on` says otherwise: the bill and
/// the message p99 (the rates are often near zero, where a relative width means little).
pub const DEFAULT_PRECISION_ON: [&str; 2] = ["monthly_cost_usd", "message.p99"];

/// The minimum number of replications with `--precision` unless `--replications` says.
pub const DEFAULT_MIN_WITH_PRECISION: usize = 5;

/// The smallest minimum `--precision` accepts: stopping on the spread of two samples (one
/// degree of freedom) stops early on lucky pairs.
pub const MIN_WITH_PRECISION: usize = 3;

/// The default cap on replications with `--precision`.
pub const DEFAULT_MAX_REPLICATIONS: usize = 100;

/// The most replications `--replications` or `--max-replications` may ask for (far past
/// where another one narrows an interval; the simulations' own cost is checked too).
pub const MAX_REPLICATIONS: usize = 10_000;

/// The most threads `--jobs` may ask for (each thread has a stack; the output does not
/// depend on the number).
pub const MAX_JOBS: usize = 1024;

/// The seed of replication `i` of a run whose scenario seed is `base`: `base` itself for
/// replication 0, else the i-th output of SplitMix64 seeded with `base`, kept to its low 53
/// bits so that every JSON reader (JavaScript's numbers are doubles) reads it exactly.
pub fn seed(base: u64, i: u64) -> u64 {
    if i == 0 {
        return base;
    }
    let mut z = base.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & ((1 << 53) - 1)
}

/// Keep adding replications until the chosen figures are this precise.
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    /// The target relative half-width of the 95% interval (e.g. 0.05).
    pub target: f64,
    /// The figures it applies to (threshold metric names).
    pub on: Vec<String>,
    /// The most replications to run.
    pub max: usize,
}

/// How many replications to run, and on how many threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Replications to run; with `precision`, the minimum.
    pub replications: usize,
    /// Add replications until this precision (or its cap) is reached.
    pub precision: Option<Precision>,
    /// Worker threads (the output does not depend on it).
    pub jobs: usize,
}

impl Default for Plan {
    /// One replication (the plain run), on the machine's cores.
    fn default() -> Plan {
        Plan {
            replications: 1,
            precision: None,
            jobs: available_jobs(),
        }
    }
}

impl Plan {
    /// A plan from command-line values, checked: `replications` (default 1, or
    /// [`DEFAULT_MIN_WITH_PRECISION`] with a precision), `precision` (a relative half-width
    /// in (0, 1)), the figures it applies to and its cap, and the thread count (default: the
    /// machine's cores).
    pub fn new(
        replications: Option<usize>,
        precision: Option<f64>,
        precision_on: Option<Vec<String>>,
        max_replications: Option<usize>,
        jobs: Option<usize>,
    ) -> crate::Result<Plan> {
        let usage = |m: String| crate::Error::Usage(m);
        for (flag, n) in [
            ("--replications", replications),
            ("--max-replications", max_replications),
        ] {
            if let Some(n) = n.filter(|&n| n > MAX_REPLICATIONS) {
                return Err(usage(format!(
                    "{flag} {n}: at most {MAX_REPLICATIONS} replications"
                )));
            }
        }
        let jobs = match jobs {
            Some(0) => return Err(usage("--jobs: at least 1 thread".into())),
            Some(j) if j > MAX_JOBS => {
                return Err(usage(format!("--jobs {j}: at most {MAX_JOBS} threads")))
            }
            Some(j) => j,
            None => available_jobs(),
        };
        let Some(target) = precision else {
            if precision_on.is_some() || max_replications.is_some() {
                return Err(usage(
                    "--precision-on and --max-replications need --precision".into(),
                ));
            }
            let replications = replications.unwrap_or(1);
            if replications == 0 {
                return Err(usage("--replications: at least 1".into()));
            }
            return Ok(Plan {
                replications,
                precision: None,
                jobs,
            });
        };
        if !(target.is_finite() && target > 0.0 && target < 1.0) {
            return Err(usage(format!(
                "--precision {target}: a relative half-width between 0 and 1 (e.g. 0.05)"
            )));
        }
        let min = replications.unwrap_or(DEFAULT_MIN_WITH_PRECISION);
        if min < MIN_WITH_PRECISION {
            return Err(usage(format!(
                "--replications {min} with --precision: at least {MIN_WITH_PRECISION} (the minimum before the precision is checked)"
            )));
        }
        let max = max_replications.unwrap_or(DEFAULT_MAX_REPLICATIONS.max(min));
        if max < min {
            return Err(usage(format!(
                "--max-replications {max} is below the minimum of {min} replications"
            )));
        }
        let on = precision_on
            .unwrap_or_else(|| DEFAULT_PRECISION_ON.iter().map(|s| s.to_string()).collect());
        if on.is_empty() {
            return Err(usage("--precision-on: name at least one figure".into()));
        }
        for m in &on {
            crate::threshold::check_metric(m).map_err(|e| usage(format!("--precision-on {e}")))?;
        }
        Ok(Plan {
            replications: min,
            precision: Some(Precision { target, on, max }),
            jobs,
        })
    }

    /// Whether the plan is the plain run (one replication, no precision target).
    pub fn is_single(&self) -> bool {
        self.replications == 1 && self.precision.is_none()
    }
}

/// The machine's cores (1 if unknown).
pub fn available_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f(0)`, …, `f(n − 1)` on `jobs` threads, returned in index order (each thread takes the
/// next index in turn; which thread ran which index does not show in the result).
pub fn parallel_map<T: Send>(jobs: usize, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = jobs.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(n).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break done;
                        }
                        done.push((i, f(i)));
                    }
                })
            })
            .collect();
        for h in handles {
            let done = h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, v) in done {
                slots[i] = Some(v);
            }
        }
    });
    slots
        .into_iter()
        .map(|s| s.expect("every index ran"))
        .collect()
}

/// A replicated run's intervals: the `replications` block of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replications {
    /// Replications run (the values of every figure are this many, in seed order).
    pub count: usize,
    /// The seed of each replication; the first is the scenario's (the report's own).
    pub seeds: Vec<u64>,
    /// The confidence level of the intervals (0.95).
    pub confidence: f64,
    /// How the seeds and intervals were obtained.
    pub method: String,
    /// With `--precision`: the target and whether it was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<PrecisionOutcome>,
    /// Each figure by its threshold metric name.
    pub figures: BTreeMap<String, Figure>,
}

/// What `--precision` asked and got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrecisionOutcome {
    /// The target relative half-width.
    pub target: f64,
    /// The figures it applied to.
    pub on: Vec<String>,
    /// The minimum replications before it was checked.
    pub min: usize,
    /// The cap.
    pub max: usize,
    /// Whether every figure in `on` met the target (false: stopped at the cap).
    pub met: bool,
}

/// One figure over the replications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Mean and interval over the replications that had a value.
    #[serde(flatten)]
    pub interval: Interval,
    /// The value of each replication, in seed order (null where it had none, e.g. a
    /// percentile of an empty histogram).
    pub values: Vec<Option<f64>>,
}

impl Figure {
    /// The figure of these per-replication values.
    pub fn of(values: Vec<Option<f64>>) -> Figure {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        Figure {
            interval: Interval::of(&present),
            values,
        }
    }
}

impl Replications {
    /// A figure's mean, if any replication had a value.
    pub fn mean(&self, metric: &str) -> Option<f64> {
        self.figures.get(metric).and_then(|f| f.interval.mean)
    }

    /// The figures in reading order: the headline figures, then any others by name.
    pub fn ordered(&self) -> Vec<(&str, &Figure)> {
        let mut out: Vec<(&str, &Figure)> = HEADLINE
            .iter()
            .filter_map(|&m| self.figures.get(m).map(|f| (m, f)))
            .collect();
        out.extend(
            self.figures
                .iter()
                .filter(|(m, _)| !HEADLINE.contains(&m.as_str()))
                .map(|(m, f)| (m.as_str(), f)),
        );
        out
    }
}

/// Simulate `scenario` under `strategy` as `plan` says: the plain report for one
/// replication, else replication 0's report with a `replications` block.
pub fn simulate_report(
    scenario: &Scenario,
    strategy: Strategy,
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    plan: &Plan,
) -> crate::Result<Report> {
    let mut reports = compare(scenario, &[strategy], pricing, extra_thresholds, plan)?;
    Ok(reports.remove(0))
}

/// One replication's figures (and, for replication 0, its report).
struct Sample {
    report: Option<Report>,
    values: Vec<Option<f64>>,
}

/// Simulate `scenario` under each strategy as `plan` says (see [`simulate_report`]): one
/// replication each on a thread per strategy, or every replication of every strategy on one
/// pool of `plan.jobs` threads.
pub fn compare(
    scenario: &Scenario,
    strategies: &[Strategy],
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    plan: &Plan,
) -> crate::Result<Vec<Report>> {
    // The strategies run at once: refuse together what this machine cannot finish.
    crate::des::check_footprint(scenario, strategies)?;
    if plan.is_single() {
        // A thread per strategy, as ever: the few strategies of a comparison, run at once.
        return parallel_map(strategies.len(), strategies.len(), |k| {
            crate::des::simulate_report(scenario, strategies[k], pricing, extra_thresholds)
        })
        .into_iter()
        .collect();
    }
    let names = figure_names(scenario, extra_thresholds, plan);
    let min = plan.replications;
    let max = plan.precision.as_ref().map_or(min, |p| p.max);
    let n = strategies.len();
    // Every replication of every strategy, at most: refused when they could not finish;
    // and no more of them at once than fit in memory.
    let fs: Vec<_> = strategies
        .iter()
        .map(|&k| crate::footprint::Footprint::of(scenario, k))
        .collect();
    let flag = if plan.precision.is_some() {
        "--max-replications"
    } else {
        "--replications"
    };
    crate::footprint::check_total_work(
        &fs,
        max,
        &format!("{flag} {max}: {max} replications of {n} run(s)"),
        &format!("lower {flag}"),
    )
    .map_err(crate::Error::Usage)?;
    let jobs = crate::footprint::threads_within_memory(&fs, plan.jobs);
    let mut samples: Vec<Vec<Sample>> = (0..n).map(|_| Vec::new()).collect();
    let mut met: Vec<Option<bool>> = vec![None; n];
    let mut want = vec![min; n];
    loop {
        let tasks: Vec<(usize, usize)> = (0..n)
            .filter(|&k| met[k].is_none())
            .flat_map(|k| (samples[k].len()..want[k]).map(move |i| (k, i)))
            .collect();
        if tasks.is_empty() {
            break;
        }
        let results = parallel_map(jobs, tasks.len(), |t| {
            let (k, i) = tasks[t];
            replication(
                scenario,
                strategies[k],
                pricing,
                extra_thresholds,
                i,
                &names,
            )
        });
        let before: Vec<usize> = samples.iter().map(Vec::len).collect();
        for (&(k, _), r) in tasks.iter().zip(results) {
            samples[k].push(r?);
        }
        for k in 0..n {
            if met[k].is_some() {
                continue;
            }
            let len = samples[k].len();
            met[k] = match &plan.precision {
                None => Some(true),
                Some(p) => {
                    let first = (before[k] + 1).max(min);
                    match (first..=len).find(|&m| precise(&samples[k][..m], &names, p)) {
                        Some(m) => {
                            samples[k].truncate(m);
                            Some(true)
                        }
                        None if len >= max => Some(false),
                        None => None,
                    }
                }
            };
        }
        // Keep every thread busy: share one round of `jobs` replications among the
        // strategies still running (the batch size changes the work wasted past the
        // stopping point, never the result).
        let active = met.iter().filter(|m| m.is_none()).count();
        if active > 0 {
            let batch = jobs.div_ceil(active).max(1);
            for k in (0..n).filter(|&k| met[k].is_none()) {
                want[k] = (samples[k].len() + batch).min(max);
            }
        }
    }
    samples
        .into_iter()
        .zip(met)
        .map(|(s, met)| {
            assemble(
                scenario,
                extra_thresholds,
                plan,
                &names,
                s,
                met.unwrap_or(false),
            )
        })
        .collect()
}

/// Run replication `i` and keep its figures (and its report if it is replication 0).
fn replication(
    scenario: &Scenario,
    strategy: Strategy,
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    i: usize,
    names: &[String],
) -> crate::Result<Sample> {
    let mut s = scenario.clone();
    s.seed = seed(scenario.seed, i as u64);
    let report = crate::des::simulate_report(&s, strategy, pricing, extra_thresholds)?;
    let values = names
        .iter()
        .map(|m| report.metric(m, &s.limits).filter(|v| v.is_finite()))
        .collect();
    Ok(Sample {
        report: (i == 0).then_some(report),
        values,
    })
}

/// The figures a replicated run reports: the headline ones, the precision's, and every
/// threshold's metric (its check uses the mean), each once, in that order.
fn figure_names(scenario: &Scenario, extra_thresholds: &[Threshold], plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = HEADLINE.iter().map(|s| s.to_string()).collect();
    let mut add = |m: &str| {
        if !names.iter().any(|n| n == m) {
            names.push(m.to_string());
        }
    };
    for m in plan.precision.iter().flat_map(|p| &p.on) {
        add(m);
    }
    for t in scenario.threshold_checks().iter().chain(extra_thresholds) {
        add(&t.metric);
    }
    names
}

/// Whether the first replications meet the precision on every chosen figure. A figure no
/// replication has a value of (nothing to estimate) does not hold the run back.
fn precise(samples: &[Sample], names: &[String], p: &Precision) -> bool {
    p.on.iter().all(|m| {
        let k = names
            .iter()
            .position(|n| n == m)
            .expect("chosen figures are named");
        let values: Vec<f64> = samples.iter().filter_map(|s| s.values[k]).collect();
        values.is_empty() || Interval::of(&values).meets(p.target)
    })
}

fn assemble(
    scenario: &Scenario,
    extra_thresholds: &[Threshold],
    plan: &Plan,
    names: &[String],
    mut samples: Vec<Sample>,
    met: bool,
) -> crate::Result<Report> {
    let count = samples.len();
    let mut report = samples[0]
        .report
        .take()
        .expect("replication 0 keeps its report");
    let figures = names
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let values = samples.iter().map(|s| s.values[k]).collect();
            (m.clone(), Figure::of(values))
        })
        .collect();
    let block = Replications {
        count,
        seeds: (0..count as u64).map(|i| seed(scenario.seed, i)).collect(),
        confidence: CONFIDENCE,
        method: method(plan),
        precision: plan.precision.as_ref().map(|p| PrecisionOutcome {
            target: p.target,
            on: p.on.clone(),
            min: plan.replications,
            max: p.max,
            met,
        }),
        figures,
    };
    if count > 1 {
        report.check_thresholds_with(scenario, extra_thresholds, |m| block.mean(m));
    }
    report.replications = Some(block);
    Ok(report)
}

fn method(plan: &Plan) -> String {
    let mut m = String::from(
        "Independent replications: replication 0 under the scenario's seed (the report around \
         this block is replication 0's), replication i ≥ 1 under the i-th output of SplitMix64 \
         seeded with it, to 53 bits (replication i is the plain run under --seed its seed); \
         each figure is the mean of its per-replication values with a 95% \
         Student-t confidence interval, mean ± t(0.975, n − 1) · s / √n (a percentile's \
         interval is over the replications' own percentiles, batch-means style, not a \
         percentile of the pooled samples); thresholds are checked on the means",
    );
    if let Some(p) = &plan.precision {
        m.push_str(&format!(
            "; replications were added until the relative half-width of {} was at most {} (checked at every count from {} on, at most {} replications)",
            p.on.join(", "),
            p.target,
            plan.replications,
            p.max
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_zero_keeps_the_seed_and_the_others_are_distinct() {
        assert_eq!(seed(42, 0), 42);
        let seeds: Vec<u64> = (0..1000).map(|i| seed(42, i)).collect();
        let mut sorted = seeds.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seeds.len());
        // Neighbouring scenario seeds do not share replications.
        assert!(!(1..100).any(|i| seeds.contains(&seed(43, i))));
        // The known first output of SplitMix64 from 0 (its reference implementation), to 53
        // bits.
        assert_eq!(seed(0, 1), 0xE220_A839_7B1D_CDAF & ((1 << 53) - 1));
        assert!(seeds.iter().all(|&s| s < 1 << 53));
    }

    #[test]
    fn parallel_map_returns_results_in_index_order_on_any_thread_count() {
        let square = |i: usize| i * i;
        let one = parallel_map(1, 50, square);
        for jobs in [2, 3, 8, 100] {
            assert_eq!(parallel_map(jobs, 50, square), one);
        }
        assert!(parallel_map(4, 0, square).is_empty());
    }

    #[test]
    fn plans_refuse_what_cannot_be_run() {
        let p = Plan::new(None, None, None, None, Some(2)).unwrap();
        assert!(p.is_single());
        let p = Plan::new(None, Some(0.05), None, None, Some(2)).unwrap();
        assert_eq!(p.replications, DEFAULT_MIN_WITH_PRECISION);
        let prec = p.precision.unwrap();
        assert_eq!((prec.max, prec.on.len()), (DEFAULT_MAX_REPLICATIONS, 2));
        for (r, prec, on, max, jobs, needle) in [
            (Some(0), None, None, None, None, "--replications"),
            (None, Some(0.0), None, None, None, "--precision"),
            (None, Some(1.5), None, None, None, "--precision"),
            (Some(2), Some(0.1), None, None, None, "at least 3"),
            (
                Some(5),
                Some(0.1),
                None,
                Some(4),
                None,
                "--max-replications",
            ),
            (None, None, None, Some(10), None, "need --precision"),
            (
                None,
                Some(0.1),
                Some(vec!["mesage.p99".into()]),
                None,
                None,
                "mesage",
            ),
            (None, None, None, None, Some(0), "--jobs"),
            (None, None, None, None, Some(MAX_JOBS + 1), "--jobs 1025"),
            (
                Some(99_999_999_999),
                None,
                None,
                None,
                None,
                "--replications",
            ),
            (
                None,
                Some(0.1),
                None,
                Some(MAX_REPLICATIONS + 1),
                None,
                "--max-replications",
            ),
        ] {
            let err = Plan::new(r, prec, on, max, jobs).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
