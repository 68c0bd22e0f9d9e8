//! Benchmark of the simulator at scale: up to 1,000,000 concurrent users under `per-room`, and how its
//! peak memory grows — with concurrent sessions, not with events processed.
//!
//! Not a criterion benchmark: one run takes seconds to a minute, so it is timed once per
//! configuration, each in a child process so that peak memory (VmHWM) is that run's own.
//! Run with `cargo bench --bench scale`; it prints a Markdown table.

use std::process::Command;
use std::time::Instant;

use dosim::des::simulate;
use dosim::model::strategy::Strategy;
use dosim::scenario::Scenario;

/// `users` concurrent users in steady state: sessions last exactly 1 h and arrive at
/// users/3600 per second, so after the first hour (the ramp) the building holds `users`.
fn scenario(users: u64, window: &str) -> Scenario {
    let text = format!(
        r#"
name = "scale-{users}"
seed = 1
[window]
length = "{window}"
timeseries_interval = "1m"
[arrivals]
rate_per_second = {rate}
[sessions]
length = {{ dist = "constant", value = "1h" }}
message_interval = {{ dist = "exponential", mean = "30s" }}
[rooms]
count = {rooms}
choice = "fill"
[limits]
max_connections_per_room = 8
[platform]
strategy = "per-room"
"#,
        rate = users as f64 / 3600.0,
        rooms = users / 8 + users / 80,
    );
    Scenario::parse(&text, std::path::Path::new("scale.toml")).expect("valid")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) this process has used so far, from /proc/self/stat (in the
/// kernel's USER_HZ ticks, 100 a second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) close with ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    (f.get(11).copied().unwrap_or(f64::NAN) + f.get(12).copied().unwrap_or(f64::NAN)) / 100.0
}

fn child(users: u64, window: &str) {
    let s = scenario(users, window);
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let o = simulate(&s, Strategy::PerRoom);
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "| {users} | {window} | {} | {} | {} | {:.1} | {:.1} | {:.2} M/s | {:.0} |",
        o.usage.peak_connections,
        o.events,
        o.deliveries,
        secs,
        cpu,
        o.events as f64 / secs / 1e6,
        peak_rss_mib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args[i + 1].parse().expect("users"), &args[i + 2]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("scale: bench");
        return;
    }
    println!("| concurrent users (steady) | window | peak seated | events | deliveries | wall s | CPU s | events/s (wall) | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    // Same concurrency, twice the events: memory should stay flat. Twice the concurrency:
    // memory should roughly double (above the fixed baseline).
    for (users, window) in [
        (25_000, "2h"),
        (25_000, "4h"),
        (50_000, "2h"),
        (100_000, "2h"),
        // Issue 8's target: an hour at 1,000,000 concurrent users (after the ramp hour).
        (1_000_000, "2h"),
    ] {
        let status = Command::new(&args[0])
            .args(["--child", &users.to_string(), window])
            .status()
            .expect("run the child");
        assert!(status.success());
    }
}
