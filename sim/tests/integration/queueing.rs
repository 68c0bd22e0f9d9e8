//! Scenarios that reduce to textbook queueing systems, checked against their closed forms.
//! Tolerances come from the runs themselves: independent replications (different seeds)
//! give a standard error, and a check passes within 4 standard errors plus the histogram's
//! 0.1% quantization.

use dosim::des::simulate;
use dosim::model::strategy::Strategy;
use dosim::scenario::Scenario;

use crate::util::scenario;

/// Mean and standard error of the mean over replications.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn assert_close(what: &str, xs: &[f64], theory: f64) {
    let (mean, se) = mean_se(xs);
    let tolerance = 4.0 * se + 0.002 * theory.abs();
    eprintln!(
        "{what}: simulated {mean:.4} ± {se:.4}, theory {theory:.4}, tolerance {tolerance:.4}"
    );
    assert!(
        (mean - theory).abs() <= tolerance,
        "{what}: simulated {mean:.4} ± {se:.4} (replications {xs:?}), theory {theory:.4}"
    );
}

/// Exactly 100 users, each alone in a room (no fan-out), seated within the first seconds
/// (arrivals at 10/s fill the 100 seats; the rest are rejected) and staying for the whole
/// window, each sending messages at exponential intervals of 1 s: the single object sees a
/// Poisson stream of λ = 100 messages/s (independent network delays of a Poisson process leave
/// it Poisson). Rejected connects take no service time and, arriving as a Poisson stream, see
/// the same waiting-time distribution as messages (PASTA), so they do not bias the histogram.
fn one_queue(service: &str, seed: u64) -> Scenario {
    scenario(&format!(
        r#"
name = "mm1"
seed = {seed}
[window]
length = "1h"
[arrivals]
rate_per_second = 10.0
[sessions]
length = {{ dist = "constant", value = "10d" }}
message_interval = {{ dist = "exponential", mean = "1s" }}
[rooms]
count = 100
choice = "fill"
[limits]
max_connections_per_room = 1
max_total_connections = 100
[platform]
strategy = "single"
worker_cpu_ms_per_connect = 0.0
[platform.service]
connect = {{ dist = "constant", value = "0ns" }}
close = {{ dist = "constant", value = "0ns" }}
message = {service}
per_recipient = "0ns"
[platform.overload]
[network]
client_edge = {{ dist = "constant", value = "0ns" }}
edge_object = {{ dist = "lognormal", median = "10ms", sigma = 0.5 }}
object_object = {{ dist = "constant", value = "0ns" }}
"#
    ))
}

#[test]
fn mm1_waiting_time_matches_theory() {
    // λ = users × 1/s, μ = 1/5ms = 200/s. W_q = ρ/(μ − λ); P(W_q > t) = ρ·e^{−(μ−λ)t}.
    let (mut means, mut p90s, mut users) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 1..=6 {
        let s = one_queue(r#"{ dist = "exponential", mean = "5ms" }"#, seed);
        let o = simulate(&s, Strategy::Single);
        let n = o.usage.peak_connections as f64;
        let lambda = n; // each seated user sends one message a second
        let mu = 200.0;
        let rho = lambda / mu;
        // Normalise each replication by its own theory (the user count varies a little).
        let theory_mean_ms = rho / (mu - lambda) * 1e3;
        let theory_p90_ms = (rho / 0.1).ln() / (mu - lambda) * 1e3;
        let q = o.object_queue.summary();
        means.push(q.mean.unwrap() / theory_mean_ms);
        p90s.push(q.p90.unwrap() / theory_p90_ms);
        users.push(n);
    }
    assert!(users.iter().all(|&n| n == 100.0), "{users:?}");
    assert_close("M/M/1 mean wait / theory", &means, 1.0);
    assert_close("M/M/1 p90 wait / theory", &p90s, 1.0);
}

#[test]
fn md1_waiting_time_matches_pollaczek_khinchine() {
    // Constant service 5 ms: W_q = ρ / (2μ(1 − ρ)).
    let mut ratios = Vec::new();
    for seed in 11..=16 {
        let s = one_queue(r#"{ dist = "constant", value = "5ms" }"#, seed);
        let o = simulate(&s, Strategy::Single);
        let lambda = o.usage.peak_connections as f64;
        let mu = 200.0;
        let rho = lambda / mu;
        let theory_ms = rho / (2.0 * mu * (1.0 - rho)) * 1e3;
        ratios.push(o.object_queue.summary().mean.unwrap() / theory_ms);
    }
    assert_close("M/D/1 mean wait / theory", &ratios, 1.0);
}

/// Poisson arrivals into a building with `c` seats and no queue lose the share of users given
/// by the Erlang B formula, whatever the session length distribution.
#[test]
fn erlang_b_loss_matches_theory() {
    fn erlang_b(c: u32, a: f64) -> f64 {
        let mut b = 1.0;
        for k in 1..=c {
            b = a * b / (f64::from(k) + a * b);
        }
        b
    }
    let mut shares = Vec::new();
    for seed in 21..=26 {
        // λ = 1/s, mean length 10 s → A = 10 erlangs; 10 seats.
        let s = scenario(&format!(
            r#"
name = "erlang"
seed = {seed}
[window]
length = "6h"
[arrivals]
rate_per_second = 1.0
[sessions]
length = {{ dist = "lognormal", median = "8s", sigma = 0.6 }}
message_interval = {{ dist = "constant", value = "1d" }}
[rooms]
count = 1
[limits]
max_connections_per_room = 1000
max_total_connections = 10
[platform]
strategy = "single"
worker_cpu_ms_per_connect = 0.0
[platform.service]
connect = {{ dist = "constant", value = "0ns" }}
close = {{ dist = "constant", value = "0ns" }}
[network]
client_edge = {{ dist = "constant", value = "0ns" }}
edge_object = {{ dist = "constant", value = "0ns" }}
"#
        ));
        let o = simulate(&s, Strategy::Single);
        shares.push(o.sessions.rejected as f64 / o.sessions.arrived as f64);
    }
    // Lognormal(median 8 s, σ 0.6) has mean 8·e^{0.18} s, so A = 9.577 erlangs.
    let a = 8.0 * (0.18f64).exp();
    assert_close("Erlang B blocking", &shares, erlang_b(10, a));
}

/// With no limits, the number of users in rooms is an M/G/∞ system: on average λ × mean length
/// (Little's law).
#[test]
fn concurrency_follows_littles_law() {
    let mut ratios = Vec::new();
    for seed in 31..=36 {
        let s = scenario(&format!(
            r#"
name = "little"
seed = {seed}
[window]
length = "1d"
timeseries_interval = "1m"
[arrivals]
rate_per_second = 0.5
[sessions]
length = {{ dist = "exponential", mean = "10m" }}
message_interval = {{ dist = "constant", value = "1d" }}
[rooms]
count = 1000
choice = "uniform"
[limits]
max_connections_per_room = 1000
"#
        ));
        let o = simulate(&s, Strategy::PerRoom);
        // Skip the first hour (the building starts empty).
        let c = &o.timeseries.connections[60..];
        let mean = c.iter().map(|&x| f64::from(x)).sum::<f64>() / c.len() as f64;
        ratios.push(mean / 300.0);
    }
    assert_close("Little's law L / (λ·W)", &ratios, 1.0);
}

/// M/M/1 at ρ = 0.9 with a 1 s mean service time: W_q = ρ/(μ − λ) = 9 s. Only with the
/// overload rule turned off ("unlimited"): the default 5 s delay rule refuses the requests
/// that would wait longest (issue 6 saw 283,727 overload errors and W_q 1.79 s).
#[test]
fn mm1_at_rho_09_with_no_overload_rule_waits_nine_seconds() {
    let run = |seed: u64, overload: &str| {
        simulate(
            &scenario(&format!(
                r#"
name = "mm1-heavy"
seed = {seed}
[window]
length = "10d"
timeseries_interval = "1d"
[arrivals]
rate_per_second = 0.01
[sessions]
length = {{ dist = "constant", value = "100d" }}
message_interval = {{ dist = "exponential", mean = "10s" }}
[rooms]
count = 9
[limits]
max_connections_per_room = 1
[platform]
strategy = "single"
worker_cpu_ms_per_connect = 0.0
[platform.service]
connect = {{ dist = "constant", value = "0ns" }}
close = {{ dist = "constant", value = "0ns" }}
message = {{ dist = "exponential", mean = "1s" }}
per_recipient = "0ns"
[platform.overload]
{overload}
[network]
client_edge = {{ dist = "constant", value = "0ns" }}
edge_object = {{ dist = "lognormal", median = "10ms", sigma = 0.5 }}
"#
            )),
            Strategy::Single,
        )
    };
    // 9 users × 1 message / 10 s = λ 0.9/s once the 9 seats are taken (in the first ~15 min of
    // the 10 days; rejected connects need no service and see the time-average wait, PASTA).
    let waits: Vec<f64> = (41..=44)
        .map(|seed| {
            let o = run(
                seed,
                "max_queue_depth = \"unlimited\"\nmax_queue_delay = \"unlimited\"",
            );
            assert_eq!(o.usage.overload_errors, 0);
            assert_eq!(o.usage.peak_connections, 9);
            o.object_queue.summary().mean.unwrap() / 1e3
        })
        .collect();
    assert_close("M/M/1 ρ = 0.9 mean wait, s", &waits, 9.0);
    // The default rule (a 5 s delay limit) is what cut the wait short.
    let o = run(41, "");
    assert!(
        o.usage.overload_errors > 1000,
        "{}",
        o.usage.overload_errors
    );
    assert!(o.object_queue.summary().mean.unwrap() / 1e3 < 4.0);
}
