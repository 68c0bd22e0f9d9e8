//! Shard: one of N processes that drive the same seeded plan together (`--shard I/N`).
//!
//! The unit of a split is the room **object** (the Durable Object that hosts a room): shard
//! `I` drives every session whose room's object `o` has `o mod N = I`. So whole rooms stay
//! together (every member of a room is in one process, on one clock), and so do whole
//! objects, which is what makes the usage add up exactly: the object time billed under
//! `accept()` is the union of one object's open sockets, which only the process that holds
//! all of them can measure. `single` has one object for every room and cannot be split; a
//! `sharded:K` strategy can be split into at most K shards, `per-room` into at most one per
//! room.
//!
//! Rooms chosen by "fill" (the lowest room with a free seat) depend on who else is in the
//! rooms at arrival, which one shard cannot see. With `--shard`, "fill" is therefore
//! resolved when the plan is built, from the plan's own times: the sessions in progress at
//! `from` fill the rooms first, in arrival order (as the ramp connects them); then each
//! arriving session takes the lowest room with a seat not claimed by a session whose
//! planned end is still to come. Every shard resolves the same rooms, and the N shards
//! together are exactly the plan `--shard 0/1` drives in one process (a drive without
//! `--shard` resolves "fill" at run time instead, from the seats it sees).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;
use std::str::FromStr;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::cpu::{CpuClock, WorkerProbe};
use super::plan::{DrivePlan, Planned, ProjectionBasis};
use super::run::{PhaseTimes, Samples};
use super::state::{Hists, Measured};
use super::stats::Stats;
use crate::model::strategy::Strategy;
use crate::scenario::Scenario;
use crate::workload::{room_name, RoomPick};

/// The most shards a plan can be split into.
pub const MAX_SHARDS: u32 = 100_000;

/// Shard `index` of `count` (`--shard I/N`, I from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u32,
    /// How many shards drive the plan together.
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = |why: &str| {
            format!("--shard {s:?}: {why} (expected I/N, e.g. 0/4: shard 0 of 4, I from 0 to N-1)")
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| bad("I is not a whole number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if count > MAX_SHARDS {
            return Err(bad(&format!("N must be at most {MAX_SHARDS}")));
        }
        if index >= count {
            return Err(bad("I must be below N"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard drives the sessions of room object `object`.
    pub fn holds_object(self, object: u32) -> bool {
        object % self.count == self.index
    }

    /// Check that `strategy`'s objects can be split `count` ways.
    pub fn check(self, s: &Scenario, strategy: Strategy) -> Result<(), String> {
        if self.count == 1 {
            return Ok(());
        }
        let objects = strategy.object_count(s.rooms.count);
        if strategy == Strategy::Single {
            return Err(format!(
                "--shard {self}: the single strategy hosts every room on one object, whose usage (its sockets' union in time) only one process can measure; use --shard 0/1, or a per-room or sharded:K strategy"
            ));
        }
        if self.count > objects {
            return Err(format!(
                "--shard {self}: {strategy} has {objects} room object(s) for {} room(s), and a shard holds whole objects: N must be at most {objects}",
                s.rooms.count
            ));
        }
        Ok(())
    }
}

/// The format of a shard's record ([`crate::report::drive::ShardRecord`]).
pub const FORMAT: u32 = 1;

/// The canonical form of a scenario (its JSON, after the command line's overrides) and its
/// SHA-256 in hex: shards of one plan have the same.
pub fn canonical(s: &Scenario) -> (serde_json::Value, String) {
    let value = serde_json::to_value(s).expect("a scenario serializes");
    let text = serde_json::to_string(&value).expect("JSON serializes");
    let digest = sha2::Sha256::digest(text.as_bytes());
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    (value, hex)
}

/// Everything a shard counted, for the merge: the inputs of the drive's report builder
/// besides the plan (which the merge rebuilds from the scenario) and the histograms (in the
/// shard's log).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Raw {
    pub measured: Measured,
    pub samples: Samples,
    pub times: PhaseTimes,
    pub worker_probe: WorkerProbe,
    pub clock: Option<CpuClock>,
    pub lobby_mode: bool,
    /// `complete`, `target_down` or `interrupted`.
    pub status: String,
    pub stopped: Option<String>,
    pub stopped_during: Option<String>,
    /// The Worker's stats read before the run (before `--start-at`).
    pub stats_before: Option<Stats>,
    /// Unix ms when `stats_before` was read.
    pub stats_before_unix_ms: Option<f64>,
    /// The Worker's stats read after the shard's departures (every shard's traffic in them
    /// once the last shard has read them).
    #[serde(default)]
    pub stats_after: Option<Stats>,
    /// Unix ms when `stats_after` was read.
    #[serde(default)]
    pub stats_after_unix_ms: Option<f64>,
    /// Sockets were closed without waiting for the Worker (after an interrupt): why.
    #[serde(default)]
    pub not_comparable: Option<String>,
    pub warnings: Vec<String>,
    pub nofile: Option<u64>,
    /// `--read-batch`.
    #[serde(default)]
    pub read_batch: Duration,
    /// `--realtime`.
    #[serde(default)]
    pub realtime: bool,
    pub started_at_unix_ms: f64,
    pub target: String,
}

/// The tags of the histograms in a shard's log are the names of [`Hists::named`]; values
/// are microseconds (the log's max column in milliseconds).
pub(crate) fn write_hlog(h: &Hists, started: SystemTime, length: Duration, what: &str) -> String {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    let mut out = Vec::new();
    let mut ser = hdrhistogram::serialization::V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment(&format!("dosim {} {what}", env!("CARGO_PKG_VERSION")))
        .add_comment("values in microseconds; one interval per tag covering the whole run")
        .with_start_time(started)
        .with_base_time(started)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut ser)
        .expect("writing to memory");
    for (name, l) in h.named() {
        w.write_histogram(l.histogram(), Duration::ZERO, length, Tag::new(name))
            .expect("a histogram serializes into memory");
    }
    String::from_utf8(out).expect("an interval log is text")
}

/// The histograms of a shard's log, added up by tag. Errors say what is wrong with it.
pub(crate) fn read_hlog(text: &[u8]) -> Result<Hists, String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut h = Hists::default();
    let mut tags = 0;
    for (k, entry) in IntervalLogIterator::new(text).enumerate() {
        let entry = entry.map_err(|e| {
            format!(
                "entry {}: not an HdrHistogram interval log line ({e:?})",
                k + 1
            )
        })?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let tag = i.tag().map(|t| t.as_str()).unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .map_err(|e| format!("histogram {tag:?}: bad base64 ({e})"))?;
        let hist: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .map_err(|e| format!("histogram {tag:?}: cannot be decoded ({e:?})"))?;
        let l = h
            .by_name(tag)
            .ok_or_else(|| format!("histogram tag {tag:?} is not one of dosim's"))?;
        l.add_histogram(&hist)
            .map_err(|e| format!("histogram {tag:?}: {e}"))?;
        tags += 1;
    }
    if tags == 0 {
        return Err("holds no histogram".into());
    }
    Ok(h)
}

/// Resolve every "fill" room choice of the plan from the plan's own times (see the module
/// documentation), so that the room of each session is known before the run.
pub fn resolve_fill(plan: &mut DrivePlan, rooms: u32, capacity: u32) {
    let rooms_n = rooms.max(1);
    let mut claimed = vec![0u32; rooms_n as usize];
    let mut space: BTreeSet<u32> = (0..rooms_n).collect();
    let mut releases: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let pick = |p: &mut Planned, claimed: &mut Vec<u32>, space: &mut BTreeSet<u32>| {
        let room = match p.plan.room {
            RoomPick::Room(r) => r,
            RoomPick::Fill { fallback } => space.first().copied().unwrap_or(fallback),
        };
        p.plan.room = RoomPick::Room(room);
        let c = &mut claimed[room as usize];
        *c += 1;
        if *c >= capacity {
            space.remove(&room);
        }
        room
    };
    let release = |room: u32, claimed: &mut Vec<u32>, space: &mut BTreeSet<u32>| {
        let c = &mut claimed[room as usize];
        *c = c.saturating_sub(1);
        if *c < capacity {
            space.insert(room);
        }
    };
    for p in &mut plan.carried {
        let room = pick(p, &mut claimed, &mut space);
        let end = p.carried.as_ref().map_or(0, |c| c.end_ns);
        releases.push(Reverse((end, room)));
    }
    for p in &mut plan.arrivals {
        while let Some(&Reverse((end, room))) = releases.peek() {
            if end > p.plan.arrival_ns {
                break;
            }
            releases.pop();
            release(room, &mut claimed, &mut space);
        }
        let room = pick(p, &mut claimed, &mut space);
        releases.push(Reverse((
            p.plan.arrival_ns.saturating_add(p.plan.length_ns),
            room,
        )));
    }
}

/// The room of a planned session once "fill" is resolved.
fn room_of(p: &Planned) -> u32 {
    match p.plan.room {
        RoomPick::Room(r) => r,
        RoomPick::Fill { fallback } => fallback,
    }
}

/// Keep only `shard`'s sessions of a plan whose rooms are resolved, and recompute the
/// projection basis of what is left (the shard's own report projects from its part).
pub fn split(plan: &mut DrivePlan, s: &Scenario, strategy: Strategy, shard: Shard) {
    let holds = |p: &Planned| {
        let room = room_of(p);
        shard.holds_object(strategy.object_of(room, &room_name(room)))
    };
    plan.carried.retain(holds);
    plan.arrivals.retain(holds);
    let (from, until) = (plan.time.from_ns, plan.time.until_ns());
    plan.projection = ProjectionBasis::of(
        s,
        plan.carried
            .iter()
            .chain(&plan.arrivals)
            .map(super::plan::span_of),
        from,
        until,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::plan::PlanOptions;
    use crate::workload::Workload;
    use std::path::Path;
    use std::time::Duration;

    const ROOMS: &str = r#"
name = "t"
seed = 5
[window]
length = "1d"
[arrivals]
sessions_per_day = 100000
[rooms]
count = 200
[limits]
max_connections_per_room = 4
[sessions]
length = { dist = "exponential", mean = "5m" }
message_interval = { dist = "exponential", mean = "20s" }
"#;

    fn plan(s: &Scenario) -> DrivePlan {
        let w = Workload::new(s);
        let mut p = DrivePlan::build(
            s,
            &w,
            &PlanOptions {
                from_ns: Some(3600 * 1_000_000_000),
                duration: Duration::from_secs(60),
                speedup: 5.0,
            },
        )
        .unwrap();
        resolve_fill(&mut p, s.rooms.count, s.limits.max_connections_per_room);
        p
    }

    #[test]
    fn shards_are_parsed_and_bad_ones_refused() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "1", "-1/3", "1/2/3", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("--shard"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_shards_together_are_the_whole_plan_with_whole_objects() {
        let s = Scenario::parse(ROOMS, Path::new("t.toml")).unwrap();
        let whole = plan(&s);
        assert!(whole.carried.len() > 10 && whole.arrivals.len() > 100);
        for strategy in [Strategy::PerRoom, Strategy::Sharded(7)] {
            let n = 4;
            let mut seen: Vec<(u64, u32, u32)> = Vec::new();
            let mut session_seconds = 0.0;
            for i in 0..n {
                let shard = Shard { index: i, count: n };
                shard.check(&s, strategy).unwrap();
                let mut p = plan(&s);
                split(&mut p, &s, strategy, shard);
                session_seconds += p.projection.window_session_seconds;
                for x in p.carried.iter().chain(&p.arrivals) {
                    let room = room_of(x);
                    let object = strategy.object_of(room, &room_name(room));
                    assert_eq!(object % n, i);
                    seen.push((x.plan.id, room, i));
                }
            }
            seen.sort();
            let mut all: Vec<(u64, u32)> = whole
                .carried
                .iter()
                .chain(&whole.arrivals)
                .map(|x| (x.plan.id, room_of(x)))
                .collect();
            all.sort();
            let got: Vec<(u64, u32)> = seen.iter().map(|&(id, r, _)| (id, r)).collect();
            assert_eq!(got, all, "{strategy}");
            let ws = whole.projection.window_session_seconds;
            assert!(
                (session_seconds - ws).abs() < 1e-6 * ws,
                "{session_seconds} {ws}"
            );
        }
    }

    #[test]
    fn fill_is_resolved_to_the_lowest_free_room_and_respects_capacity() {
        let s = Scenario::parse(ROOMS, Path::new("t.toml")).unwrap();
        let p = plan(&s);
        // Every carried session is in progress at once: they pack from room 0, 4 a room.
        for (k, x) in p.carried.iter().enumerate() {
            if k < 4 * 200 {
                assert_eq!(room_of(x), (k / 4) as u32);
            }
        }
    }

    #[test]
    fn unsplittable_strategies_are_refused() {
        let s = Scenario::parse(ROOMS, Path::new("t.toml")).unwrap();
        let two = Shard { index: 0, count: 2 };
        assert!(two.check(&s, Strategy::Single).is_err());
        assert!(Shard { index: 0, count: 1 }
            .check(&s, Strategy::Single)
            .is_ok());
        assert!(Shard { index: 0, count: 8 }
            .check(&s, Strategy::Sharded(4))
            .is_err());
        assert!(Shard {
            index: 0,
            count: 201
        }
        .check(&s, Strategy::PerRoom)
        .is_err());
    }

    #[test]
    fn a_shard_log_reads_back_to_the_same_histograms() {
        let mut h = Hists::default();
        for i in 1..2000u64 {
            h.message.record_ns(i * 7_919);
            h.connect.record_ns(i * 1_000_003);
        }
        let text = write_hlog(&h, std::time::UNIX_EPOCH, Duration::from_secs(60), "test");
        assert!(text.contains("Tag=message,"), "{text}");
        let back = read_hlog(text.as_bytes()).unwrap();
        assert_eq!(back.message.histogram(), h.message.histogram());
        assert_eq!(back.connect.histogram(), h.connect.histogram());
        assert_eq!(back.send_lag.count(), 0);
        assert!(read_hlog(b"not a log\n").is_err());
    }

    #[test]
    fn source_addresses_and_start_times_are_checked() {
        use crate::drive::client::SourceAddrs;
        let a = SourceAddrs::parse(&["127.0.0.2-127.0.0.5".into(), "127.0.0.9".into()])
            .unwrap()
            .unwrap();
        assert_eq!(a.len(), 5);
        assert!(SourceAddrs::parse(&[]).unwrap().is_none());
        for bad in [
            "127.0.0.5-127.0.0.2",
            "x",
            "127.0.0.1-::1",
            "10.0.0.0-10.2.0.0",
        ] {
            assert!(SourceAddrs::parse(&[bad.into()]).is_err(), "{bad}");
        }
        // Loopback addresses can be sources; an address of another machine cannot (it ran
        // until the first connect failed), nor IPv6 towards a local workerd on 127.0.0.1.
        assert_eq!(a.check_usable(true), Ok(()));
        let err = SourceAddrs::parse(&["192.0.2.1".into()])
            .unwrap()
            .unwrap()
            .check_usable(false)
            .unwrap_err();
        assert!(err.contains("--source-addr 192.0.2.1"), "{err}");
        let v6 = SourceAddrs::parse(&["::1".into()]).unwrap().unwrap();
        assert!(v6.check_usable(true).unwrap_err().contains("IPv4"));
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let check = |at: u64| {
            crate::drive::check_start_at(std::time::UNIX_EPOCH + Duration::from_secs(at), now)
        };
        assert!(check(1_000_000).is_ok());
        assert!(check(1_000_000 - 3).is_ok());
        assert!(check(1_000_000 + 600).is_ok());
        assert!(check(1_000_000 - 60).unwrap_err().contains("ago"));
        assert!(check(1_000_000 + 7200).unwrap_err().contains("future"));
    }
}
