//! Footprint: what a simulation of a scenario will need — rooms and objects, time-series
//! samples, arrivals, messages, events, concurrent sessions, memory and time — estimated
//! before it starts, so that a run this machine cannot finish is refused up front (exit 2,
//! naming the key, the estimate and the limit) instead of exhausting memory or running for
//! hours, and a large run is announced.
//!
//! The estimate is deliberately simple and errs high. Its inputs are expected values from
//! the scenario (Little's law for concurrent sessions at the busiest hour's arrival rate;
//! seats, queues and the window cap it) and per-item sizes measured on the simulator itself
//! (the constants below say how). It holds whatever builds the run: [`crate::scenario`]
//! checks every scenario it parses under the scenario's own strategy, and
//! [`crate::des::compare`] (so `compare`, `sweep` and `simulate`) checks the strategies it is
//! about to run in parallel, together.

use crate::model::strategy::Strategy;
use crate::scenario::{Patience, RoomChoice, Scenario, NS_PER_SEC};

/// Bytes per room in the simulator, whatever the strategy: its name, object index, claimed
/// seats, admission state. Measured: 69 B a room with `single` (peak RSS of 10^6 and 10^7
/// rooms and no other load: 74 MB and 694 MB), before each room slot gained its seated list
/// (a 24-byte header).
pub const BYTES_PER_ROOM: f64 = 94.0;
/// Bytes per room object (its FIFO server and billing state). Measured: 171 B a room with
/// `per-room` (176 MB and 1.71 GB for 10^6 and 10^7 rooms), minus the 69 B of the room.
pub const BYTES_PER_OBJECT: f64 = 105.0;
/// Bytes per concurrent session: its slot, random stream, admission place, place in its
/// room's seated list and pending events. Measured: 700 B (peak RSS 70 MiB at 100,000 and
/// 671 MiB at 1,000,000 concurrent users under `per-room`, rooms of 8 filled in order;
/// `cargo bench --bench scale`).
pub const BYTES_PER_SESSION: f64 = 700.0;
/// Bytes per time-series sample, the report and its JSON included. Measured: 24 B in memory,
/// 75 B with `--json` (a day at 10 ms: 209 MB and 651 MB peak RSS).
pub const BYTES_PER_SAMPLE: f64 = 80.0;
/// Memory of a run before any of the above (binary, histograms, buffers).
pub const BASE_BYTES: f64 = 16.0 * MIB;
/// Planning speed of the simulator, in steps (events or per-recipient deliveries) a second on
/// one core.
/// Measured between 20 M/s on a quiet machine and 5 M/s with the other core busy (`cargo bench
/// --bench scale`: 145 M events and deliveries in 7.4 s quiet, 30 s loaded).
pub const WORK_PER_SECOND: f64 = 1e7;

/// Most simulation steps (see [`Footprint::work`]) one run may need: about 3 hours at [`WORK_PER_SECOND`] (a month
/// at 100,000 concurrent users, seated 8 to a room and writing every 30 s, is 7 × 10^10).
pub const MAX_WORK: f64 = 1e11;
/// Most time-series samples one run may hold (a 30-day window at 1 s is 2.6 M).
pub const MAX_SAMPLES: f64 = 1e7;
/// Runs needing at least this much work get a note up front (about 2 minutes).
pub const NOTE_WORK: f64 = 1e9;
/// Runs needing at least this much memory get a note up front.
pub const NOTE_BYTES: f64 = 1.0 * GIB;
/// Memory limit when the machine's own size is unknown.
pub const DEFAULT_MEMORY_LIMIT: f64 = 16.0 * GIB;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// Work of setting up one room or object, in events: 10^8 rooms take 42 s to set up (issue 6),
/// about 4 events' time each at [`WORK_PER_SECOND`].
const SETUP_WORK: f64 = 4.0;
/// Simulation events one session causes at most: arrival, connect at the object, the answer,
/// end, close, the lobby's join and leave RPCs, patience.
const EVENTS_PER_SESSION: f64 = 8.0;

/// What one simulation of a scenario under one strategy is expected to need.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// The strategy.
    pub strategy: Strategy,
    /// Rooms.
    pub rooms: f64,
    /// Room objects the simulator allocates.
    pub objects: f64,
    /// Time-series samples.
    pub samples: f64,
    /// Expected arrivals over the window.
    pub arrivals: f64,
    /// Arrivals per second in the busiest hour of the daily profile.
    pub peak_arrival_rate: f64,
    /// Concurrent sessions at the busiest hour (seated, queued and connecting; every arrival
    /// of the window when `backlog`).
    pub peak_sessions: f64,
    /// Expected chat messages over the window.
    pub messages: f64,
    /// Mean recipients of one message (an upper bound for `fill` and `skewed`).
    pub recipients: f64,
    /// Expected per-recipient deliveries.
    pub deliveries: f64,
    /// Expected simulation events.
    pub events: f64,
    /// Share of time the busiest object (or the lobby) is busy at the busiest hour.
    pub peak_utilisation: f64,
    /// The busiest object cannot keep up and no overload rule refuses work, so every arriving
    /// session may still be waiting at the end of the window.
    pub backlog: bool,
    /// Bytes of the rooms and objects.
    pub room_bytes: f64,
    /// Bytes of the concurrent sessions.
    pub session_bytes: f64,
    /// Bytes of the time series.
    pub sample_bytes: f64,
}

impl Footprint {
    /// The estimate for `s` under `strategy`.
    pub fn of(s: &Scenario, strategy: Strategy) -> Footprint {
        let window_s = s.window.length.0 as f64 / NS_PER_SEC as f64;
        let secs = |ns: f64| ns.min(1e18) / NS_PER_SEC as f64;
        let rooms = f64::from(s.rooms.count);
        let cap = f64::from(s.limits.max_connections_per_room);
        let objects = match strategy {
            Strategy::Single => 1.0,
            Strategy::PerRoom => rooms,
            // Objects are indexed by hash modulo N, so the simulator sizes for N.
            Strategy::Sharded(n) => f64::from(n.max(1)),
        };
        let samples = (s.window.length.0 / s.window.timeseries_interval.0.max(1)) as f64;

        let rate = s.arrivals.mean_rate();
        let weights = s.arrivals.profile.weights();
        let peak_arrival_rate = rate * weights.iter().copied().fold(0.0, f64::max);
        let arrivals = expected_arrivals(rate, &weights, s.window.length.0);

        // Seats: rooms × capacity, within the global limits.
        let mut seats = rooms * cap;
        if let Some(m) = s.limits.max_total_connections {
            seats = seats.min(f64::from(m));
        }
        if let Some(m) = s.limits.max_active_rooms {
            seats = seats.min(f64::from(m) * cap);
        }
        let length_s = secs(s.sessions.length.mean_ns()).min(window_s);
        let demand = peak_arrival_rate * length_s; // Little's law
                                                   // Poisson fluctuation above the mean: 4 standard deviations.
        let seated = (demand + 4.0 * demand.sqrt()).min(seats);
        let queued = if s.limits.queue_limit > 0 && demand > seats {
            let waits = match &s.sessions.patience {
                Patience::Unlimited => window_s,
                Patience::Limited(d) => secs(d.mean_ns()).min(window_s),
            };
            (rooms * f64::from(s.limits.queue_limit)).min(peak_arrival_rate * waits)
        } else {
            0.0
        };
        let net = &s.network;
        let hop_s = secs(net.client_edge.mean_ns() + net.edge_object.mean_ns())
            + secs(net.jitter.mean_ns());
        let svc = &s.platform.service;
        let lobby = strategy != Strategy::Single
            && (s.limits.max_active_rooms.is_some() || s.limits.max_total_connections.is_some());
        let mut connect_s =
            2.0 * hop_s + secs(svc.connect.mean_ns()) + s.platform.worker_cpu_ms_per_connect / 1e3;
        if lobby {
            connect_s += 2.0 * secs(net.object_object.mean_ns()) + secs(svc.rpc.mean_ns());
        }
        let connecting = peak_arrival_rate * connect_s;

        let interval_s = secs(s.sessions.message_interval.mean_ns()).max(1e-3);
        let messages = (arrivals * length_s).min(seats * window_s) / interval_s;
        let occupancy = match s.rooms.choice {
            RoomChoice::Uniform => 1.0 + (cap - 1.0).min(seated / rooms.max(1.0)),
            RoomChoice::Fill | RoomChoice::Skewed => cap.min(seated.max(1.0)),
        };
        let recipients = (occupancy - 1.0).max(0.0);
        let deliveries = messages * recipients;
        let events = arrivals * EVENTS_PER_SESSION + messages;

        // Utilisation of the busiest object at the busiest hour: the whole load on the objects
        // that hold the seated users (rooms hold up to `cap`).
        let message_s = secs(svc.message.mean_ns()) + recipients * secs(svc.per_recipient.0 as f64);
        let load = peak_arrival_rate * (secs(svc.connect.mean_ns()) + secs(svc.close.mean_ns()))
            + seated / interval_s * message_s;
        let busy_rooms = (seated / cap.max(1.0)).max(1.0);
        let busy_objects = match strategy {
            Strategy::Single => 1.0,
            Strategy::PerRoom => busy_rooms,
            Strategy::Sharded(n) => busy_rooms.min(f64::from(n.max(1))),
        };
        let mut peak_utilisation = load / busy_objects;
        if lobby {
            let rpc = peak_arrival_rate * 2.0 * secs(svc.rpc.mean_ns());
            peak_utilisation = peak_utilisation.max(rpc);
        }
        let overload = &s.platform.overload;
        let backlog = peak_utilisation >= 1.0
            && overload.max_queue_delay.is_none()
            && overload.max_queue_depth.is_none();
        // No more sessions at once than arrive in the whole window (with the same margin):
        // a connect slower than the window (a network of days) is not a crowd.
        let mut peak_sessions =
            (seated + queued + connecting).min(arrivals + 4.0 * arrivals.sqrt());
        if backlog {
            peak_sessions = peak_sessions.max(arrivals);
        }
        Footprint {
            strategy,
            rooms,
            objects,
            samples,
            arrivals,
            peak_arrival_rate,
            peak_sessions,
            messages,
            recipients,
            deliveries,
            events,
            peak_utilisation,
            backlog,
            room_bytes: rooms * BYTES_PER_ROOM + objects * BYTES_PER_OBJECT,
            session_bytes: peak_sessions * BYTES_PER_SESSION,
            sample_bytes: samples * BYTES_PER_SAMPLE,
        }
    }

    /// Simulation steps: events, per-recipient deliveries, and setting up the rooms and
    /// objects.
    pub fn work(&self) -> f64 {
        self.events + self.deliveries + (self.rooms + self.objects) * SETUP_WORK
    }

    /// Expected peak memory in bytes.
    pub fn memory_bytes(&self) -> f64 {
        BASE_BYTES + self.room_bytes + self.session_bytes + self.sample_bytes
    }

    /// Expected time on one core, in seconds, at [`WORK_PER_SECOND`].
    pub fn seconds(&self) -> f64 {
        self.work() / WORK_PER_SECOND
    }

    /// The key whose value makes the memory what it is, and what to do about it.
    fn memory_blame(&self, s: &Scenario) -> (&'static str, String) {
        let parts = [self.room_bytes, self.session_bytes, self.sample_bytes];
        let largest = parts.iter().copied().fold(0.0, f64::max);
        if largest == self.sample_bytes {
            return (
                "window.timeseries_interval",
                format!(
                    "{} time-series samples take {}; use a wider interval",
                    count(self.samples),
                    bytes(self.sample_bytes)
                ),
            );
        }
        if largest == self.room_bytes {
            if self.objects * BYTES_PER_OBJECT > self.rooms * BYTES_PER_ROOM
                && self.strategy != Strategy::PerRoom
            {
                return (
                    "platform.strategy",
                    format!(
                        "{} objects take {} ({} B each); use fewer shards",
                        count(self.objects),
                        bytes(self.objects * BYTES_PER_OBJECT),
                        BYTES_PER_OBJECT
                    ),
                );
            }
            return (
                "rooms.count",
                format!(
                    "{} rooms take {} ({} B a room{}); use fewer rooms",
                    count(self.rooms),
                    bytes(self.room_bytes),
                    BYTES_PER_ROOM,
                    if self.strategy == Strategy::PerRoom {
                        format!(" and {BYTES_PER_OBJECT} B for its object under per-room")
                    } else {
                        String::new()
                    }
                ),
            );
        }
        if self.backlog {
            return (
                "platform.overload.max_queue_delay",
                format!(
                    "the busiest object is busy {:.0}% of the time at the busiest hour and no overload rule refuses work (\"unlimited\"), so every arriving session may still be waiting: up to {} sessions, {} ({} B each); set max_queue_delay or max_queue_depth, or lower the load",
                    self.peak_utilisation * 100.0,
                    count(self.peak_sessions),
                    bytes(self.session_bytes),
                    BYTES_PER_SESSION
                ),
            );
        }
        (
            arrival_key(s),
            format!(
                "about {} concurrent sessions at the busiest hour ({:.3}/s arriving × the mean session length, within the seats and queues) take {} ({} B each); lower the arrival rate, shorten sessions or limit seats",
                count(self.peak_sessions),
                self.peak_arrival_rate,
                bytes(self.session_bytes),
                BYTES_PER_SESSION
            ),
        )
    }

    /// One line saying what the run will take.
    pub fn summary(&self) -> String {
        format!(
            "{}: ~{} steps, ~{} on one core, ~{} of memory",
            self.strategy,
            count(self.work()),
            duration(self.seconds()),
            bytes(self.memory_bytes())
        )
    }
}

/// The arrival key the scenario uses.
fn arrival_key(s: &Scenario) -> &'static str {
    if s.arrivals.rate_per_second.is_some() {
        "arrivals.rate_per_second"
    } else {
        "arrivals.sessions_per_day"
    }
}

/// Expected arrivals in `[0, window_ns)` for a mean `rate` and normalised hourly weights.
fn expected_arrivals(rate: f64, weights: &[f64; 24], window_ns: u64) -> f64 {
    const HOUR_NS: u64 = 3600 * NS_PER_SEC;
    let days = window_ns / (24 * HOUR_NS);
    let mut sum = rate * 86_400.0 * days as f64;
    let mut t = days * 24 * HOUR_NS;
    while t < window_ns {
        let hour = t / HOUR_NS;
        let next = ((hour + 1) * HOUR_NS).min(window_ns);
        sum += rate * weights[(hour % 24) as usize] * (next - t) as f64 / NS_PER_SEC as f64;
        t = next;
    }
    sum
}

/// The memory this machine allows one invocation: two thirds of its RAM (from
/// `/proc/meminfo`), or [`DEFAULT_MEMORY_LIMIT`] when that is unknown.
pub fn memory_limit() -> f64 {
    physical_memory().map_or(DEFAULT_MEMORY_LIMIT, |m| m * 2.0 / 3.0)
}

fn physical_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

/// Check that the runs of `s` under `strategies`, all at once (as `compare` runs them), can
/// finish on this machine; the footprints, or the key to blame and why not.
pub fn check(
    s: &Scenario,
    strategies: &[Strategy],
) -> std::result::Result<Vec<Footprint>, (String, String)> {
    check_within(s, strategies, memory_limit())
}

/// [`check`] against a memory limit of `limit` bytes.
fn check_within(
    s: &Scenario,
    strategies: &[Strategy],
    limit: f64,
) -> std::result::Result<Vec<Footprint>, (String, String)> {
    let fs: Vec<Footprint> = strategies.iter().map(|&st| Footprint::of(s, st)).collect();
    let Some(first) = fs.first() else {
        return Ok(fs);
    };
    if exceeds(first.samples, MAX_SAMPLES) {
        let at_least = s.window.length.0.div_ceil(MAX_SAMPLES as u64);
        return Err((
            "window.timeseries_interval".into(),
            format!(
                "a {} window at {} is {} time-series samples, more than the limit of {} a run; use an interval of at least {}",
                s.window.length,
                s.window.timeseries_interval,
                count(first.samples),
                count(MAX_SAMPLES),
                crate::scenario::Dur(at_least)
            ),
        ));
    }
    for f in &fs {
        if exceeds(f.work(), MAX_WORK) {
            let (key, what) =
                if f.arrivals * EVENTS_PER_SESSION >= f.messages * (1.0 + f.recipients) {
                    (
                        arrival_key(s),
                        "lower the arrival rate or shorten window.length",
                    )
                } else {
                    (
                        "sessions.message_interval",
                        "send messages less often, lower the arrival rate or shorten window.length",
                    )
                };
            return Err((
                key.into(),
                format!(
                    "under {}, the {} window needs about {} simulation steps ({} arrivals of up to {EVENTS_PER_SESSION} events each, {} messages delivered to {:.1} recipients each): ~{} at ~{} steps a second, more than the limit of {} steps; {what}",
                    f.strategy,
                    s.window.length,
                    count(f.work()),
                    count(f.arrivals),
                    count(f.messages),
                    f.recipients,
                    duration(f.seconds()),
                    count(WORK_PER_SECOND),
                    count(MAX_WORK)
                ),
            ));
        }
    }
    let total: f64 = fs.iter().map(Footprint::memory_bytes).sum();
    if exceeds(total, limit) {
        let worst = fs
            .iter()
            .max_by(|a, b| a.memory_bytes().total_cmp(&b.memory_bytes()))
            .expect("not empty");
        let (key, why) = worst.memory_blame(s);
        let runs = if fs.len() > 1 {
            format!("{} runs at once ({}) need", fs.len(), names(&fs))
        } else {
            format!("under {} the run needs", worst.strategy)
        };
        return Err((
            key.into(),
            format!(
                "{runs} about {} of memory, more than this machine's limit of {} (two thirds of its RAM): {why}",
                bytes(total),
                bytes(limit)
            ),
        ));
    }
    Ok(fs)
}

/// Refuse `fs` each run `times` times (replications, the points of a sweep) when together
/// they need more than [`MAX_WORK`] steps: `what` says what runs, `fix` what to do.
pub fn check_total_work(
    fs: &[Footprint],
    times: usize,
    what: &str,
    fix: &str,
) -> std::result::Result<(), String> {
    let work = fs.iter().map(Footprint::work).sum::<f64>() * times as f64;
    if exceeds(work, MAX_WORK) {
        return Err(format!(
            "{what} need about {} simulation steps: ~{} at ~{} steps a second, more than the limit of {} steps; {fix}",
            count(work),
            duration(work / WORK_PER_SECOND),
            count(WORK_PER_SECOND),
            count(MAX_WORK)
        ));
    }
    Ok(())
}

/// How many of the runs `fs` may go at once on `jobs` threads within this machine's memory
/// limit: `jobs`, or fewer when that many of the largest would need more (at least 1: each
/// run alone was checked). The output never depends on the number of threads.
pub fn threads_within_memory(fs: &[Footprint], jobs: usize) -> usize {
    threads_within(fs, jobs, memory_limit())
}

fn threads_within(fs: &[Footprint], jobs: usize, limit: f64) -> usize {
    let largest = fs.iter().map(Footprint::memory_bytes).fold(0.0, f64::max);
    if largest <= 0.0 {
        return jobs.max(1);
    }
    let fit = (limit / largest).floor();
    if fit >= jobs as f64 {
        jobs.max(1)
    } else {
        (fit as usize).max(1)
    }
}

/// Whether an estimate is above its limit; a NaN estimate is, too.
pub fn exceeds(estimate: f64, limit: f64) -> bool {
    estimate.is_nan() || estimate > limit
}

/// The strategies of `fs`, the first few by name.
fn names(fs: &[Footprint]) -> String {
    const LISTED: usize = 8;
    let mut s = fs
        .iter()
        .take(LISTED)
        .map(|f| f.strategy.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if fs.len() > LISTED {
        s += &format!(" and {} more", fs.len() - LISTED);
    }
    s
}

/// A line to print before a large run (none for an ordinary one).
pub fn note(fs: &[Footprint]) -> Option<String> {
    let work: f64 = fs.iter().map(Footprint::work).sum();
    let memory: f64 = fs.iter().map(Footprint::memory_bytes).sum();
    if work < NOTE_WORK && memory < NOTE_BYTES {
        return None;
    }
    let each: Vec<String> = fs.iter().map(Footprint::summary).collect();
    Some(format!(
        "a large run (estimated before it starts; steps are events, deliveries and room set-up, ~{} a second): {}",
        count(WORK_PER_SECOND),
        each.join("; ")
    ))
}

/// A count for messages: "950", "12,345", "3.4 million", "1.2e15".
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    match x {
        x if x < 1e6 => crate::report::human_count(x.round()),
        x if x < 1e9 => format!("{:.1} million", x / 1e6),
        x if x < 1e12 => format!("{:.1} billion", x / 1e9),
        x if x < 1e15 => format!("{:.1} trillion", x / 1e12),
        x => format!("{x:.1e}"),
    }
}

/// Bytes for messages: "640 KiB", "3.2 GiB", "2.1e20 B".
pub fn bytes(x: f64) -> String {
    const KIB: f64 = 1024.0;
    let tib = 1024.0 * GIB;
    match x {
        x if x < MIB => format!("{:.0} KiB", x / KIB),
        x if x < GIB => format!("{:.0} MiB", x / MIB),
        x if x < tib => format!("{:.1} GiB", x / GIB),
        x if x < 1024.0 * 1024.0 * tib => format!("{:.0} TiB", x / tib),
        x => format!("{x:.1e} B"),
    }
}

/// Seconds for messages: "40 s", "12 min", "3.1 h", "4.2 days", "3.0e9 years".
pub fn duration(s: f64) -> String {
    match s {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s if s < 2.0 * 86_400.0 => format!("{:.1} h", s / 3600.0),
        s if s < 730.0 * 86_400.0 => format!("{:.1} days", s / 86_400.0),
        s if s < 1e4 * 365.0 * 86_400.0 => format!("{:.0} years", s / (365.0 * 86_400.0)),
        s => format!("{:.1e} years", s / (365.0 * 86_400.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(format!("{name}.toml"));
        Scenario::from_file(&path).unwrap()
    }

    #[test]
    fn the_estimate_brackets_what_shipped_scenarios_do() {
        // Arrivals are expected values (Poisson: within 5%); the rest errs high, within 3×.
        for name in ["seed-phase0", "seed-scale", "single-saturates", "reference"] {
            let s = shipped(name);
            let strategy = s.platform.strategy;
            let f = Footprint::of(&s, strategy);
            let o = crate::des::simulate(&s, strategy);
            let within = |what: &str, estimate: f64, actual: f64, low: f64, high: f64| {
                assert!(
                    estimate >= low * actual && estimate <= high * actual,
                    "{name} {what}: estimated {estimate}, simulated {actual}"
                );
            };
            within(
                "arrivals",
                f.arrivals,
                o.sessions.arrived as f64,
                0.95,
                1.05,
            );
            within("messages", f.messages, o.messages_sent as f64, 0.9, 3.0);
            within("events", f.events, o.events as f64, 0.9, 3.0);
            within("deliveries", f.deliveries, o.deliveries as f64, 0.9, 3.0);
            within(
                "peak sessions",
                f.peak_sessions,
                o.usage.peak_connections as f64,
                1.0,
                3.0,
            );
            assert!(!f.backlog, "{name}");
            assert!(
                f.memory_bytes() < NOTE_BYTES && f.work() < NOTE_WORK,
                "{name}"
            );
        }
    }

    #[test]
    fn an_object_that_cannot_keep_up_with_no_overload_rule_keeps_every_arrival() {
        let mut s = shipped("single-saturates");
        let f = Footprint::of(&s, Strategy::Single);
        assert!(f.peak_utilisation > 1.0 && !f.backlog, "{f:?}");
        s.platform.overload.max_queue_delay = None;
        let f = Footprint::of(&s, Strategy::Single);
        assert!(f.backlog);
        assert_eq!(f.peak_sessions, f.arrivals);
        // Spread over one object per room, none is overloaded.
        assert!(!Footprint::of(&s, Strategy::PerRoom).backlog);
    }

    #[test]
    fn expected_arrivals_follow_the_profile_over_partial_days() {
        let mut w = [0.0; 24];
        w[0] = 24.0; // every arrival in hour 0
        let hour = 3600 * NS_PER_SEC;
        assert_eq!(expected_arrivals(1.0, &w, hour / 2), 24.0 * 1800.0);
        assert_eq!(expected_arrivals(1.0, &w, 5 * hour), 24.0 * 3600.0);
        assert_eq!(expected_arrivals(1.0, &w, 49 * hour), 3.0 * 86_400.0);
    }

    #[test]
    fn a_connect_slower_than_the_window_does_not_count_more_sessions_than_arrive() {
        // Connects of days (a lognormal network median of a year): the sessions still
        // connecting were counted as rate × connect time, 55 million for 15,000 arrivals.
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/seed-phase0.toml");
        let text = std::fs::read_to_string(&path).unwrap()
            + "[network]\nclient_edge = { dist = \"lognormal\", median = \"366d\", sigma = 5 }\n";
        let s = Scenario::parse(&text, &path).unwrap();
        let f = Footprint::of(&s, Strategy::Single);
        assert!(
            f.peak_sessions <= f.arrivals + 4.0 * f.arrivals.sqrt(),
            "{f:?}"
        );
        assert!(check(&s, &[Strategy::Single]).is_ok());
    }

    #[test]
    fn replications_and_sweep_points_are_checked_together() {
        let s = shipped("seed-phase0");
        let fs = [Footprint::of(&s, Strategy::Single)];
        assert!(check_total_work(&fs, 1, "x", "y").is_ok());
        let times = (MAX_WORK / fs[0].work()) as usize + 1;
        let err = check_total_work(&fs, times, "many runs", "run fewer").unwrap_err();
        assert!(
            err.starts_with("many runs need about") && err.ends_with("; run fewer"),
            "{err}"
        );
        // Threads: as many as asked when they fit, fewer when not, never none.
        let m = fs[0].memory_bytes();
        assert_eq!(threads_within(&fs, 8, 100.0 * m), 8);
        assert_eq!(threads_within(&fs, 8, 3.5 * m), 3);
        assert_eq!(threads_within(&fs, 8, 0.5 * m), 1);
        assert_eq!(threads_within(&[], 4, m), 4);
    }

    #[test]
    fn a_refusal_of_many_strategies_names_a_few() {
        // 3,000 strategies at once were all named in the message.
        let s = shipped("seed-phase0");
        let strategies: Vec<Strategy> = (1..=3000).map(Strategy::Sharded).collect();
        let (_, message) = check_within(&s, &strategies, 1.0 * GIB).unwrap_err();
        assert!(
            message.starts_with(
                "3000 runs at once (sharded:1, sharded:2, sharded:3, sharded:4, sharded:5, sharded:6, sharded:7, sharded:8 and 2992 more) need"
            ),
            "{message}"
        );
    }

    #[test]
    fn runs_in_parallel_share_the_memory_limit() {
        // 10^7 rooms: 0.9 GiB under single, 1.9 GiB under per-room (its objects).
        let text = "name = \"x\"\n[arrivals]\nsessions_per_day = 500\n[rooms]\ncount = 10000000\n";
        let s = Scenario::parse(text, std::path::Path::new("t.toml")).unwrap();
        let limit = 2.0 * GIB;
        let fs = check_within(&s, &[Strategy::Single], limit).unwrap();
        assert_eq!(note(&fs), None, "under 1 GiB and 10^9 steps: no note");
        let fs = check_within(&s, &[Strategy::PerRoom], limit).unwrap();
        let note = note(&fs).expect("a note for a run over 1 GiB");
        assert!(
            note.contains("per-room: ~") && note.contains("1.9 GiB of memory"),
            "{note}"
        );
        let (key, message) =
            check_within(&s, &[Strategy::Single, Strategy::PerRoom], limit).unwrap_err();
        assert_eq!(key, "rooms.count");
        assert!(
            message.starts_with("2 runs at once (single, per-room) need about 2.8 GiB"),
            "{message}"
        );
        // Far beyond any machine under sharding: the shards' objects are to blame.
        let (key, _) = check_within(&s, &[Strategy::Sharded(1_000_000_000)], limit).unwrap_err();
        assert_eq!(key, "platform.strategy");
    }

    #[test]
    fn messages_say_sizes_in_words() {
        assert_eq!(count(950.0), "950");
        assert_eq!(count(3.4e6), "3.4 million");
        assert_eq!(count(1.2e20), "1.2e20");
        assert_eq!(bytes(3.2 * GIB), "3.2 GiB");
        assert_eq!(duration(40.0), "40 s");
        assert_eq!(duration(3.0 * 3600.0), "3.0 h");
    }
}
