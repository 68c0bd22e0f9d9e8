//! Benchmark of the simulator at scale: 100,000 concurrent users under `per-room`, and how its
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

fn child(users: u64, window: &str) {
    let s = scenario(users, window);
    let start = Instant::now();
    let o = simulate(&s, Strategy::PerRoom);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| {users} | {window} | {} | {} | {} | {:.1} | {:.2} M/s | {:.0} |",
        o.usage.peak_connections,
        o.events,
        o.deliveries,
        secs,
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
    println!("| concurrent users (steady) | window | peak seated | events | deliveries | wall s | events/s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    // Same concurrency, twice the events: memory should stay flat. Twice the concurrency:
    // memory should roughly double (above the fixed baseline).
    for (users, window) in [
        (25_000, "2h"),
        (25_000, "4h"),
        (50_000, "2h"),
        (100_000, "2h"),
    ] {
        let status = Command::new(&args[0])
            .args(["--child", &users.to_string(), window])
            .status()
            .expect("run the child");
        assert!(status.success());
    }
}
