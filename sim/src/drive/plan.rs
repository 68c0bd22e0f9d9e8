//! Plan: which stretch of the scenario's seeded plan a real run executes, and on which clock.
//!
//! A scenario describes days or a month; a real run lasts a minute. The driver executes the
//! plan's stretch `[from, from + duration × speedup)` of scenario time:
//!
//! - **sessions in progress at `from`** (they arrived before `from` and their planned end,
//!   `arrival + length`, is after it) are *carried*: they connect during a short ramp before
//!   the measured window, so that rooms start at the plan's occupancy instead of empty. Their
//!   own random stream has already drawn the message times before `from`, so their next
//!   message is the plan's own;
//! - **sessions arriving in the stretch** start at their planned times, whether or not
//!   earlier ones have finished (an open workload);
//! - **speed-up `K`**: plan time runs `K` times faster than real time. Arrival gaps, session
//!   lengths, message intervals and patience are all divided by `K`, so the number of users
//!   in the rooms is the plan's while every rate is `K` times the plan's.
//!
//! The default `from` is the start of the busiest hour of the daily profile; among equally
//! busy hours, the one with the most planned sessions in progress (so that a profile with a
//! flat evening peak is driven at the end of its ramp-up, with warm rooms), searched over
//! the first two days of the window.

use std::time::Duration;

use crate::scenario::{Scenario, MONTH_SECONDS, NS_PER_SEC};
use crate::workload::{SessionPlan, Workload};

const HOUR_NS: u64 = 3600 * NS_PER_SEC;

/// Bytes a planned session takes while the plan is built (measured: 1.06 GB of RSS for 9
/// million arrivals planned, the vector's growth included).
pub const BYTES_PER_PLANNED: f64 = 128.0;

/// Refuse a plan of about `sessions` sessions that would need more than `limit` bytes.
fn check_plan_size(sessions: f64, span_ns: u64, limit: f64) -> Result<(), String> {
    let need = sessions * BYTES_PER_PLANNED;
    if crate::footprint::exceeds(need, limit) {
        return Err(format!(
            "--duration × --speedup covers {} of scenario time, in which about {} sessions arrive or are in progress: planning them needs about {}, more than this machine's limit of {} (two thirds of its RAM); use a shorter --duration or a smaller --speedup",
            crate::scenario::Dur(span_ns),
            crate::footprint::count(sessions),
            crate::footprint::bytes(need),
            crate::footprint::bytes(limit)
        ));
    }
    Ok(())
}

/// The map between plan time (ns from the start of the scenario window) and real time
/// (from `t0`, the start of the measured window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeMap {
    /// Plan time at `t0`.
    pub from_ns: u64,
    /// Plan time covered: `duration × speedup`.
    pub span_ns: u64,
    /// Plan seconds per real second.
    pub speedup: f64,
    /// Real length of the measured window.
    pub duration: Duration,
}

impl TimeMap {
    /// Real time after `t0` at which plan time `plan_ns` happens (0 for times before
    /// `from`).
    pub fn real_at(&self, plan_ns: u64) -> Duration {
        self.real_len(plan_ns.saturating_sub(self.from_ns))
    }

    /// Plan time at real time `since_t0` after `t0`.
    pub fn plan_at(&self, since_t0: Duration) -> u64 {
        self.from_ns.saturating_add(self.plan_len(since_t0))
    }

    /// A real duration in plan nanoseconds.
    pub fn plan_len(&self, real: Duration) -> u64 {
        (real.as_nanos() as f64 * self.speedup) as u64
    }

    /// A plan duration in real time.
    pub fn real_len(&self, plan_ns: u64) -> Duration {
        Duration::from_nanos((plan_ns as f64 / self.speedup) as u64)
    }

    /// The end of the covered plan stretch.
    pub fn until_ns(&self) -> u64 {
        self.from_ns.saturating_add(self.span_ns)
    }
}

/// A session in progress at `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// Planned end, `arrival + length` (ns of plan time).
    pub end_ns: u64,
    /// Its next planned message at or after `from`, if before its end.
    pub next_message_ns: Option<u64>,
}

/// One session the run executes.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan's session (its rng positioned for its next message interval).
    pub plan: SessionPlan,
    /// Set for sessions in progress at `from`.
    pub carried: Option<Carried>,
}

/// The quantities the monthly projection is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionBasis {
    /// Planned session-seconds inside the covered stretch (sessions' `[arrival, arrival +
    /// length)` intersected with it).
    pub window_session_seconds: f64,
    /// Expected session-seconds in a 30-day month: mean arrival rate × 30 days × mean
    /// session length.
    pub month_session_seconds: f64,
    /// Planned arrivals in the stretch.
    pub window_arrivals: u64,
    /// Expected arrivals in the stretch (from the daily profile).
    pub expected_window_arrivals: f64,
    /// Expected arrivals in a 30-day month.
    pub month_arrivals: f64,
}

impl ProjectionBasis {
    /// The basis of the stretch `[from_ns, until_ns)` of plan time, from the planned
    /// `[arrival, end)` of every session that can overlap it.
    pub fn of(
        s: &Scenario,
        spans: impl IntoIterator<Item = (u64, u64)>,
        from_ns: u64,
        until_ns: u64,
    ) -> ProjectionBasis {
        let mut session_ns: u128 = 0;
        let mut arrivals = 0;
        for (arrival, end) in spans {
            session_ns += u128::from(end.min(until_ns).saturating_sub(arrival.max(from_ns)));
            if (from_ns..until_ns).contains(&arrival) {
                arrivals += 1;
            }
        }
        let mean_rate = s.arrivals.mean_rate();
        let mean_length_s = s.sessions.length.mean_ns() / NS_PER_SEC as f64;
        ProjectionBasis {
            window_session_seconds: session_ns as f64 / NS_PER_SEC as f64,
            month_session_seconds: mean_rate * MONTH_SECONDS as f64 * mean_length_s,
            window_arrivals: arrivals,
            expected_window_arrivals: expected_arrivals(s, from_ns, until_ns),
            month_arrivals: mean_rate * MONTH_SECONDS as f64,
        }
    }

    /// The factor from the window to a month, if the window holds any planned session time.
    pub fn factor(&self) -> Option<f64> {
        (self.window_session_seconds > 0.0)
            .then(|| self.month_session_seconds / self.window_session_seconds)
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Start of the stretch in plan time (None: the default choice).
    pub from_ns: Option<u64>,
    /// Real length of the measured window.
    pub duration: Duration,
    /// Plan seconds per real second.
    pub speedup: f64,
}

/// The part of the plan a run executes.
#[derive(Debug, Clone)]
pub struct DrivePlan {
    /// The clock mapping.
    pub time: TimeMap,
    /// How `from` was chosen, in words.
    pub from_reason: String,
    /// Sessions in progress at `from`, in arrival order.
    pub carried: Vec<Planned>,
    /// Sessions arriving in the stretch, in arrival order.
    pub arrivals: Vec<Planned>,
    /// For the monthly projection.
    pub projection: ProjectionBasis,
}

/// The planned `[arrival, end)` of a session.
pub fn span_of(p: &Planned) -> (u64, u64) {
    (
        p.plan.arrival_ns,
        p.plan.arrival_ns.saturating_add(p.plan.length_ns),
    )
}

/// `"day 1 19:00:00"` for a plan time.
pub fn clock_label(ns: u64) -> String {
    let s = ns / NS_PER_SEC;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    format!("day {d} {h:02}:{m:02}:{sec:02}")
}

impl DrivePlan {
    /// Choose the stretch and collect its sessions. Errors are about the options.
    pub fn build(s: &Scenario, w: &Workload, o: &PlanOptions) -> Result<DrivePlan, String> {
        if !(o.speedup.is_finite() && o.speedup > 0.0 && o.speedup <= 1e6) {
            return Err(format!(
                "--speedup must be a number above 0 and at most 1000000, found {}",
                crate::error::Shown(o.speedup)
            ));
        }
        if o.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        let window = s.window.length.0;
        let span_ns = (o.duration.as_nanos() as f64 * o.speedup) as u64;
        if span_ns > window {
            return Err(format!(
                "--duration × --speedup covers {} of scenario time, longer than the scenario window ({})",
                crate::scenario::Dur(span_ns),
                s.window.length
            ));
        }
        let (from_ns, from_reason) = match o.from_ns {
            Some(f) => {
                if f.saturating_add(span_ns) > window {
                    return Err(format!(
                        "--from {} + {} of scenario time runs past the end of the scenario window ({})",
                        crate::scenario::Dur(f),
                        crate::scenario::Dur(span_ns),
                        s.window.length
                    ));
                }
                (f, format!("given (--from), {}", clock_label(f)))
            }
            None => default_from(s, w, span_ns),
        };
        let time = TimeMap {
            from_ns,
            span_ns,
            speedup: o.speedup,
            duration: o.duration,
        };
        let until = time.until_ns();
        // The sessions arriving in the stretch and those in progress at its start (about the
        // arrivals of one mean session length before it) are all held at once.
        let before = (s.sessions.length.mean_ns().min(from_ns as f64)) as u64;
        let sessions = expected_arrivals(s, from_ns - before, until);
        check_plan_size(sessions, span_ns, crate::footprint::memory_limit())?;
        let mut carried = Vec::new();
        let mut arrivals = Vec::new();
        for mut p in w.sessions_between(0, until) {
            let end = p.arrival_ns.saturating_add(p.length_ns);
            if p.arrival_ns < from_ns {
                if end <= from_ns {
                    continue;
                }
                // The plan's own message times, from an (assumed immediate) admission at
                // arrival, drawn up to `from`.
                let mut t = w.next_message(&mut p.rng, p.arrival_ns);
                while t < from_ns {
                    t = w.next_message(&mut p.rng, t);
                }
                carried.push(Planned {
                    carried: Some(Carried {
                        end_ns: end,
                        next_message_ns: (t < end).then_some(t),
                    }),
                    plan: p,
                });
            } else {
                arrivals.push(Planned {
                    plan: p,
                    carried: None,
                });
            }
        }
        let projection = ProjectionBasis::of(
            s,
            carried.iter().chain(&arrivals).map(span_of),
            from_ns,
            until,
        );
        Ok(DrivePlan {
            time,
            from_reason,
            carried,
            arrivals,
            projection,
        })
    }
}

/// Expected arrivals in `[a, b)` from the hourly rates.
fn expected_arrivals(s: &Scenario, a: u64, b: u64) -> f64 {
    let rates = hourly_rates(s);
    let mut t = a;
    let mut sum = 0.0;
    while t < b {
        let hour = t / HOUR_NS;
        let next = ((hour + 1) * HOUR_NS).min(b);
        sum += rates[(hour % 24) as usize] * (next - t) as f64 / NS_PER_SEC as f64;
        t = next;
    }
    sum
}

fn hourly_rates(s: &Scenario) -> [f64; 24] {
    let rate = s.arrivals.mean_rate();
    let mut out = s.arrivals.profile.weights();
    for r in &mut out {
        *r *= rate;
    }
    out
}

/// The default start: see the module documentation.
fn default_from(s: &Scenario, w: &Workload, span_ns: u64) -> (u64, String) {
    let window = s.window.length.0;
    let search_end = window.min(2 * 86_400 * NS_PER_SEC);
    let last_start = window - span_ns;
    let hours = search_end.div_ceil(HOUR_NS).max(1) as usize;
    let candidates: Vec<usize> = (0..hours)
        .filter(|&h| (h as u64) * HOUR_NS <= last_start)
        .collect();
    if candidates.is_empty() {
        return (0, "the start of the scenario window".into());
    }
    // Planned sessions in progress at each hour start: a difference array over hours.
    let mut diff = vec![0i64; hours + 1];
    for p in w.sessions_between(0, search_end) {
        let end = p.arrival_ns.saturating_add(p.length_ns);
        // Hour starts t with arrival < t < end.
        let first = (p.arrival_ns / HOUR_NS + 1) as usize;
        let last_excl = (end.div_ceil(HOUR_NS) as usize).min(hours);
        if first < last_excl {
            diff[first] += 1;
            diff[last_excl] -= 1;
        }
    }
    let mut in_progress = vec![0i64; hours];
    let mut run = 0;
    for h in 0..hours {
        run += diff[h];
        in_progress[h] = run;
    }
    let rates = hourly_rates(s);
    let best = candidates
        .iter()
        .copied()
        .max_by(|&a, &b| {
            rates[a % 24]
                .total_cmp(&rates[b % 24])
                .then(in_progress[a].cmp(&in_progress[b]))
                // the earliest of equals
                .then(b.cmp(&a))
        })
        .expect("candidates is not empty");
    let mean = s.arrivals.mean_rate();
    let share = if mean > 0.0 {
        rates[best % 24] / mean
    } else {
        0.0
    };
    (
        best as u64 * HOUR_NS,
        format!(
            "default: the start of the busiest hour of the daily profile ({:02}:00, {:.2}× the daily mean arrival rate), and among equally busy hours the one with the most planned sessions in progress ({}): {}",
            best % 24,
            share,
            in_progress[best],
            clock_label(best as u64 * HOUR_NS)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(text, Path::new("t.toml")).unwrap()
    }

    const EVENING: &str = r#"
name = "t"
seed = 3
[window]
length = "2d"
[arrivals]
sessions_per_day = 2400
profile = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
[sessions]
length = { dist = "exponential", mean = "30m" }
message_interval = { dist = "exponential", mean = "30s" }
"#;

    #[test]
    fn default_from_is_the_warmest_of_the_busiest_hours() {
        let s = scenario(EVENING);
        let w = Workload::new(&s);
        let p = DrivePlan::build(
            &s,
            &w,
            &PlanOptions {
                from_ns: None,
                duration: Duration::from_secs(60),
                speedup: 1.0,
            },
        )
        .unwrap();
        // Busiest hours are 19..24; the most sessions are in progress at a later one.
        let hour = p.time.from_ns / HOUR_NS % 24;
        assert!((20..24).contains(&hour), "{hour}: {}", p.from_reason);
        // ~480 arrivals/h × 0.5 h mean length ≈ 240 in progress.
        assert!(p.carried.len() > 150, "{}", p.carried.len());
        for c in &p.carried {
            let k = c.carried.as_ref().unwrap();
            assert!(c.plan.arrival_ns < p.time.from_ns && k.end_ns > p.time.from_ns);
            if let Some(m) = k.next_message_ns {
                assert!(m >= p.time.from_ns && m < k.end_ns);
            }
        }
        for a in &p.arrivals {
            assert!(a.plan.arrival_ns >= p.time.from_ns && a.plan.arrival_ns < p.time.until_ns());
        }
    }

    #[test]
    fn the_window_matches_the_full_plan_and_projects_to_the_month() {
        let s = scenario(EVENING);
        let w = Workload::new(&s);
        let from = 21 * HOUR_NS;
        let p = DrivePlan::build(
            &s,
            &w,
            &PlanOptions {
                from_ns: Some(from),
                duration: Duration::from_secs(60),
                speedup: 10.0,
            },
        )
        .unwrap();
        assert_eq!(p.time.span_ns, 600 * NS_PER_SEC);
        let all: Vec<_> = w
            .sessions()
            .filter(|x| x.arrival_ns >= from && x.arrival_ns < from + 600 * NS_PER_SEC)
            .map(|x| x.id)
            .collect();
        let got: Vec<_> = p.arrivals.iter().map(|x| x.plan.id).collect();
        assert_eq!(got, all);
        // 2400/day × 30 × 1800 s.
        assert!((p.projection.month_session_seconds - 2400.0 * 30.0 * 1800.0).abs() < 1.0);
        // ~240 users for 600 s.
        let ws = p.projection.window_session_seconds;
        assert!(ws > 100_000.0 && ws < 200_000.0, "{ws}");
        let f = p.projection.factor().unwrap();
        assert!(f > 500.0 && f < 1500.0, "{f}");
        // 480/h over 10 minutes.
        assert!((p.projection.expected_window_arrivals - 80.0).abs() < 1e-6);
        // The basis of the first 100 s alone (a run stopped early) is the plan's own for a
        // window of that length.
        let spans: Vec<_> = p.carried.iter().chain(&p.arrivals).map(span_of).collect();
        let part = ProjectionBasis::of(&s, spans, from, from + 100 * NS_PER_SEC);
        let short = DrivePlan::build(
            &s,
            &w,
            &PlanOptions {
                from_ns: Some(from),
                duration: Duration::from_secs(10),
                speedup: 10.0,
            },
        )
        .unwrap();
        assert_eq!(part, short.projection);
        assert!(part.window_session_seconds < ws / 3.0);
    }

    #[test]
    fn bad_options_are_refused() {
        let s = scenario(EVENING);
        let w = Workload::new(&s);
        let opts = |from: Option<u64>, secs: u64, k: f64| PlanOptions {
            from_ns: from,
            duration: Duration::from_secs(secs),
            speedup: k,
        };
        assert!(DrivePlan::build(&s, &w, &opts(None, 60, 0.0)).is_err());
        // Too large a speed-up says what the range is (not "above 0").
        let err = DrivePlan::build(&s, &w, &opts(None, 60, 1e308)).unwrap_err();
        assert!(err.contains("at most 1000000"), "{err}");
        // A stretch whose sessions would not fit in memory is refused before any is planned
        // (9 million took 1 GB; nothing stopped 100 times as many).
        assert!(check_plan_size(1e6, NS_PER_SEC, 1e9).is_ok());
        let err = check_plan_size(1e8, NS_PER_SEC, 1e9).unwrap_err();
        assert!(
            err.contains("100.0 million sessions") && err.contains("--speedup"),
            "{err}"
        );
        assert!(DrivePlan::build(&s, &w, &opts(None, 0, 1.0)).is_err());
        assert!(DrivePlan::build(&s, &w, &opts(None, 3 * 86_400, 1.0)).is_err());
        assert!(
            DrivePlan::build(&s, &w, &opts(Some(2 * 86_400 * NS_PER_SEC - 1), 60, 1.0)).is_err()
        );
    }

    #[test]
    fn the_time_map_round_trips() {
        let t = TimeMap {
            from_ns: 10 * NS_PER_SEC,
            span_ns: 600 * NS_PER_SEC,
            speedup: 10.0,
            duration: Duration::from_secs(60),
        };
        assert_eq!(t.real_at(20 * NS_PER_SEC), Duration::from_secs(1));
        assert_eq!(t.plan_at(Duration::from_secs(1)), 20 * NS_PER_SEC);
        assert_eq!(t.real_at(0), Duration::ZERO);
        assert_eq!(
            clock_label(86_400 * NS_PER_SEC + 19 * HOUR_NS + 61 * NS_PER_SEC),
            "day 1 19:01:01"
        );
    }
}
