//! Empirical curves: every point of a sweep, under every strategy, also *driven* over real
//! WebSockets on a fresh local workerd (`dosim sweep … --drive --local`), so that the
//! measured bill, message p99 and rejection rate stand beside the simulated curve and its
//! confidence band.
//!
//! # What is driven
//!
//! Each point's scenario is the one the simulation ran: the sweep's scaled scenario
//! ([`crate::sweep::point_scenarios`]: rooms, limits and any `--vary`/`--set` key as the
//! sweep made them, a calibration applied if one was given). [`crate::drive::drive`] runs
//! it with `--local` — a fresh workerd on 127.0.0.1 per point and strategy, one after the
//! other — for `--drive-duration` of real time from the busiest hour of the daily profile
//! (the drive's default window), optionally compressed by `--speedup`. The drive's report
//! gives the figures kept here ([`Measured`]): its monthly bill, *projected* from that short
//! window onto a 30-day month as `drive` projects it (usage per occupied second and per
//! session, [`crate::projection`]), with Worker CPU and object busy time measured from
//! workerd's CPU; the per-recipient message p99 from each message's intended send time;
//! the share of the window's arriving sessions that were rejected.
//!
//! So the two sides differ in how they are obtained, and the outputs say so: the simulated
//! figures cover the point's whole window (a month, a day…) on Cloudflare's model, where
//! objects run in parallel; the measured ones cover D seconds of the busiest hour on one
//! local workerd, which runs the Worker and every object on one thread (`sim/REPORT.md`,
//! "Local workerd"). A measured bill above the band at high load is that thread's queueing
//! and workerd's CPU, not necessarily Cloudflare's.
//!
//! # Time budget
//!
//! Drives take real time: [`Plan::new`] estimates each (a start-up allowance of
//! [`STARTUP_SECONDS`], covering workerd's start, the stats and CPU probes, the grace and
//! the departures, plus the ramp that connects the sessions in progress — 2 s, or one
//! second per 500 expected concurrent users — plus the window) and refuses, before anything
//! is simulated, a plan whose total exceeds the budget (`--drive-budget`, default
//! [`DEFAULT_BUDGET_SECONDS`]), saying the estimate and how to cut it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::drive::{DriveError, DriveRun, RunStatus};
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::Report;
use crate::scenario::Scenario;
use crate::sweep::Sweep;
use crate::threshold::Threshold;

/// Seconds allowed per drive besides its window and ramp: workerd's start and the Worker
/// probes (about 0.5 s on this project's 2-core machine), the grace for deliveries in flight
/// (at most 2 s) and the departures.
pub const STARTUP_SECONDS: f64 = 3.0;
/// The default `--drive-budget`, seconds: 10 minutes.
pub const DEFAULT_BUDGET_SECONDS: f64 = 600.0;

/// What `sweep --drive` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The drive's options: `local` must be set; `strategy` and the progress label are set
    /// per run.
    pub drive: crate::drive::Options,
    /// The most time the drives may take, by estimate.
    pub budget: Duration,
}

/// The drives of a sweep, checked and estimated before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    scenarios: Vec<Scenario>,
    strategies: Vec<Strategy>,
    opts: Options,
    /// The estimated time of every drive, seconds, points in order, strategies within.
    pub estimates: Vec<f64>,
}

/// What one drive of a sweep point measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The monthly bill projected from the driven window, USD (null when the run covered none
    /// of its window, e.g. stopped during the ramp).
    pub monthly_total_usd: Option<f64>,
    /// Per-recipient message delivery p99 from the intended send time, ms (null: no
    /// delivery).
    pub message_p99_ms: Option<f64>,
    /// Connect p99 (every connect, the carried sessions' included), ms.
    pub connect_p99_ms: Option<f64>,
    /// Rejected over arrived, of the sessions arriving in the window (null: none arrived).
    pub rejection_rate: Option<f64>,
    /// Queued sessions that gave up, over arrived (null: none arrived).
    pub abandon_rate: Option<f64>,
    /// Sessions arriving in the window (the rates' denominator).
    pub sessions_arrived: u64,
    /// Sessions in progress at the window's start, connected during the ramp.
    pub sessions_carried: u64,
    /// "Durable Object is overloaded" answers.
    pub overload_errors: u64,
    /// Scenario time at the window's start (`day 0 21:00:00`).
    pub from: String,
    /// Real length of the window, seconds.
    pub duration_seconds: f64,
    /// Scenario seconds per real second.
    pub speedup: f64,
    /// Scenario seconds the run covered (less than planned if it stopped early).
    pub covered_scenario_seconds: f64,
    /// `complete`, or why the run stopped early.
    pub status: String,
    /// Whether the driver's counts matched the Worker's own stats (null: not reconciled).
    pub reconciled: Option<bool>,
    /// The drive's warnings (few arrivals, sockets…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Wall-clock time of the drive, workerd's start to its stop, seconds.
    pub elapsed_seconds: f64,
}

impl Measured {
    /// The figures of a drive's report, and how long it took.
    pub fn of(run: &DriveRun, elapsed: Duration) -> Measured {
        let r: &Report = &run.report;
        let share = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let d = r.drive.as_ref();
        Measured {
            monthly_total_usd: r.projected().then(|| r.bill.total_f64()),
            message_p99_ms: r.latency_ms.message.p99,
            connect_p99_ms: r.latency_ms.connect.p99,
            rejection_rate: share(r.sessions.rejected, r.sessions.arrived),
            abandon_rate: share(r.sessions.abandoned, r.sessions.arrived),
            sessions_arrived: r.sessions.arrived,
            sessions_carried: d.map_or(0, |d| d.carried.started),
            overload_errors: r.usage.overload_errors,
            from: d.map_or(String::new(), |d| d.time.from.clone()),
            duration_seconds: d.map_or(0.0, |d| d.time.duration_seconds),
            speedup: d.map_or(1.0, |d| d.time.speedup),
            covered_scenario_seconds: d.map_or(0.0, |d| d.time.covered_scenario_seconds),
            status: match &run.status {
                RunStatus::Complete => "complete".into(),
                RunStatus::TargetDown(why) => format!("stopped early: {why}"),
                RunStatus::Interrupted(why) => format!("interrupted: {why}"),
            },
            reconciled: d.and_then(|d| d.reconciliation.as_ref()).map(|r| r.ok),
            warnings: d.map_or(Vec::new(), |d| d.warnings.clone()),
            elapsed_seconds: elapsed.as_secs_f64(),
        }
    }
}

/// How a sweep's points were driven (the `drive` block of a sweep's JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriveDesign {
    /// How the measured figures were obtained, in words.
    pub method: String,
    /// How the simulated figures beside them were obtained (calibrated or not), in words.
    pub simulated: String,
    /// Real length of each drive's window, seconds.
    pub duration_seconds: f64,
    /// Scenario seconds per real second.
    pub speedup: f64,
    /// The drives: points × strategies.
    pub drives: usize,
    /// The time budget, seconds.
    pub budget_seconds: f64,
    /// The estimated time of all drives, seconds.
    pub estimate_seconds: f64,
    /// The time they took, seconds.
    pub elapsed_seconds: f64,
}

/// A drive starting or finished, for a progress display.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Drive `index` (from 1) of `total` starts.
    Start {
        /// From 1.
        index: usize,
        /// Drives in all.
        total: usize,
        /// The point's load, sessions per day.
        load: f64,
        /// The strategy.
        strategy: Strategy,
        /// Its estimated time, seconds.
        estimate_seconds: f64,
    },
    /// Drive `index` finished.
    Done {
        /// From 1.
        index: usize,
        /// Drives in all.
        total: usize,
        /// What it measured.
        measured: &'a Measured,
    },
}

impl Plan {
    /// Check that every point can be driven on the local Worker (its limits, the strategy)
    /// and that the drives fit the budget; refused with [`DriveError::Usage`] (exit code 2)
    /// otherwise, naming the point, or the estimate and how to cut it.
    pub fn new(
        scenarios: Vec<Scenario>,
        strategies: &[Strategy],
        opts: Options,
    ) -> Result<Plan, DriveError> {
        if !opts.drive.local {
            return Err(DriveError::Usage(
                "sweep --drive needs --local: each point is driven on a fresh local workerd (127.0.0.1); to measure a deployed Worker, run `dosim drive --target URL` at one load at a time".into(),
            ));
        }
        let d = &opts.drive;
        if d.duration.is_zero() {
            return Err(DriveError::Usage(
                "--drive-duration must be longer than 0".into(),
            ));
        }
        if !(d.speedup.is_finite() && d.speedup > 0.0 && d.speedup <= 1e6) {
            return Err(DriveError::Usage(format!(
                "--speedup {}: expected a number above 0 and at most 1000000",
                d.speedup
            )));
        }
        for &k in strategies {
            if let Strategy::Sharded(n) = k {
                if n > 1024 {
                    return Err(DriveError::Usage(format!(
                        "--drive: the local Worker serves sharded:1 to sharded:1024, not sharded:{n}"
                    )));
                }
            }
        }
        let mut estimates = Vec::new();
        for s in &scenarios {
            crate::drive::local::LocalSettings::for_scenario(s).map_err(|e| match e {
                DriveError::Usage(m) => DriveError::Usage(format!(
                    "--drive at {} sessions/day: {m}",
                    crate::report::human_count(load_of(s).round())
                )),
                other => other,
            })?;
            let each = estimate(s, d.duration, d.ramp);
            estimates.extend(strategies.iter().map(|_| each));
        }
        let total: f64 = estimates.iter().sum();
        let budget = opts.budget.as_secs_f64();
        if total > budget {
            let each = d.duration.as_secs_f64();
            let fits = (budget / (total / estimates.len().max(1) as f64)).floor() as usize;
            return Err(DriveError::Usage(format!(
                "--drive: {n} drives ({points} points × {k} strategies) need about {t} ({each:.0} s window + ramp + ~{STARTUP_SECONDS:.0} s start-up each), more than --drive-budget {b} (about {fits} of them would fit): give fewer loads or strategies, a shorter --drive-duration, or a larger --drive-budget",
                n = estimates.len(),
                points = scenarios.len(),
                k = strategies.len(),
                t = seconds(total),
                b = seconds(budget),
            )));
        }
        Ok(Plan {
            scenarios,
            strategies: strategies.to_vec(),
            opts,
            estimates,
        })
    }

    /// The estimated time of every drive together, seconds.
    pub fn estimate_seconds(&self) -> f64 {
        self.estimates.iter().sum()
    }

    /// Drive every point under every strategy, in turn, and put what each measured into
    /// `sweep`'s points (which must be the sweep of the same points and strategies) with a
    /// [`DriveDesign`]. A run interrupted by Ctrl-C ends the sequence (the points after it
    /// have no `measured`); a run whose target went away is recorded as such and the next
    /// one starts on a fresh workerd. Returns the runs' worst status (an interrupted one
    /// first).
    pub fn drive(
        &self,
        sweep: &mut Sweep,
        pricing: &PriceTable,
        extra_thresholds: &[Threshold],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<RunStatus, DriveError> {
        let n = self.strategies.len();
        let total = self.scenarios.len() * n;
        let started = Instant::now();
        let mut worst = RunStatus::Complete;
        'points: for (p, s) in self.scenarios.iter().enumerate() {
            for (k, &strategy) in self.strategies.iter().enumerate() {
                let index = p * n + k + 1;
                on_event(Event::Start {
                    index,
                    total,
                    load: load_of(s),
                    strategy,
                    estimate_seconds: self.estimates[index - 1],
                });
                let t = Instant::now();
                let run = crate::drive::drive(
                    s,
                    pricing,
                    extra_thresholds,
                    &crate::drive::Options {
                        strategy,
                        progress_label: Some(format!(
                            "{} sessions/day · {strategy} ({index}/{total})",
                            crate::report::human_count(load_of(s).round())
                        )),
                        ..self.opts.drive.clone()
                    },
                )?;
                let measured = Measured::of(&run, t.elapsed());
                on_event(Event::Done {
                    index,
                    total,
                    measured: &measured,
                });
                if let Some(point) = sweep.points.get_mut(index - 1) {
                    point.measured = Some(measured);
                }
                match run.status {
                    RunStatus::Complete => {}
                    RunStatus::Interrupted(_) => {
                        worst = run.status;
                        break 'points;
                    }
                    RunStatus::TargetDown(_) => {
                        if worst == RunStatus::Complete {
                            worst = run.status;
                        }
                    }
                }
            }
        }
        let d = &self.opts.drive;
        sweep.drive = Some(DriveDesign {
            method: method(d.duration, d.speedup),
            simulated: simulated(self.scenarios.first()),
            duration_seconds: d.duration.as_secs_f64(),
            speedup: d.speedup,
            drives: total,
            budget_seconds: self.opts.budget.as_secs_f64(),
            estimate_seconds: self.estimate_seconds(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
        });
        Ok(worst)
    }
}

/// The estimated wall-clock time of one drive of `s`, seconds: start-up, ramp and window.
pub fn estimate(s: &Scenario, duration: Duration, ramp: Option<Duration>) -> f64 {
    let carried = crate::vary::concurrent_users(s).ceil().max(0.0) as usize;
    STARTUP_SECONDS + crate::drive::ramp_for(carried, ramp).as_secs_f64() + duration.as_secs_f64()
}

/// How the measured figures were obtained, in words.
pub fn method(duration: Duration, speedup: f64) -> String {
    let d = duration.as_secs_f64();
    let speed = if speedup == 1.0 {
        "at the scenario's real rates".to_string()
    } else {
        format!(
            "compressed ×{speedup} ({} of scenario time)",
            crate::footprint::duration(d * speedup)
        )
    };
    format!(
        "each point's scaled scenario driven over real WebSockets on a fresh local workerd (127.0.0.1) per strategy, one after another, for a window of {d:.0} s of real time from the busiest hour of the daily profile, {speed}; the monthly bill projected from that window onto a 30-day month as `dosim drive` projects it (Worker CPU and object busy time measured from workerd's CPU), message p99 per recipient from the intended send time, rejections over the sessions arriving in the window; local workerd runs the Worker and every object on one thread, with no network between them and the driver"
    )
}

/// How the simulated figures were obtained: calibrated (from which files) or as the scenario
/// gives them.
pub fn simulated(s: Option<&Scenario>) -> String {
    let mut files: Vec<String> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    if let Some(s) = s {
        for (key, source) in &s.platform.calibrated {
            keys.push(key);
            if let crate::meter::Source::Calibrated { file, .. } = source {
                let f = file.display().to_string();
                if !files.contains(&f) {
                    files.push(f);
                }
            }
        }
    }
    if keys.is_empty() {
        "discrete-event simulation of each point's whole window on Cloudflare's model (objects in parallel, the scenario's network latencies), with the service times the scenario gives (no calibration)".into()
    } else {
        format!(
            "discrete-event simulation of each point's whole window on Cloudflare's model (objects in parallel, the scenario's network latencies), calibrated from {} ({})",
            files.join(", "),
            keys.join(", ")
        )
    }
}

/// A time in seconds for a reader: `100 s (2 min)`, or `40 s` below 90 s.
pub fn seconds(t: f64) -> String {
    let t = t.ceil();
    if t < 90.0 {
        format!("{t:.0} s")
    } else {
        format!("{t:.0} s ({})", crate::footprint::duration(t))
    }
}

fn load_of(s: &Scenario) -> f64 {
    s.arrivals
        .sessions_per_day
        .unwrap_or(s.arrivals.mean_rate() * 86_400.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(spd: f64) -> Scenario {
        Scenario::parse(
            &format!(
                "name = \"t\"\n[window]\nlength = \"1d\"\n[arrivals]\nsessions_per_day = {spd}\n"
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    fn opts(local: bool, secs: u64, budget: u64) -> Options {
        Options {
            drive: crate::drive::Options {
                local,
                duration: Duration::from_secs(secs),
                ..crate::drive::Options::default()
            },
            budget: Duration::from_secs(budget),
        }
    }

    #[test]
    fn a_plan_over_its_budget_is_refused_with_the_estimate() {
        let points = vec![scenario(500.0), scenario(1000.0)];
        let strategies = [Strategy::Single, Strategy::PerRoom];
        let ok = Plan::new(points.clone(), &strategies, opts(true, 20, 600)).unwrap();
        // 4 drives of 20 s + a 2 s ramp + 3 s start-up.
        assert_eq!(ok.estimates, vec![25.0; 4]);
        let err = Plan::new(points.clone(), &strategies, opts(true, 20, 60))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4 drives (2 points × 2 strategies)"), "{err}");
        assert!(
            err.contains("about 100 s (2 min)") && err.contains("--drive-budget 60 s"),
            "{err}"
        );
        assert!(err.contains("about 2 of them would fit"), "{err}");
        let err = Plan::new(points, &strategies, opts(false, 20, 600))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs --local"), "{err}");
    }

    #[test]
    fn the_simulated_side_says_whether_it_is_calibrated() {
        assert!(simulated(Some(&scenario(500.0))).contains("no calibration"));
        let mut s = scenario(500.0);
        s.platform.calibrated.insert(
            "platform.service.connect".into(),
            crate::meter::Source::Calibrated {
                file: "cal.toml".into(),
                what: "fit".into(),
            },
        );
        let text = simulated(Some(&s));
        assert!(
            text.contains("calibrated from cal.toml (platform.service.connect)"),
            "{text}"
        );
    }
}
