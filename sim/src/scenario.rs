//! Scenario: the TOML file that describes a rooms workload and the platform it runs on.
//!
//! Every key, its unit and its default is documented in `scenarios/reference.toml`; this
//! module parses and validates. Unknown keys are errors, and every error names the file, the
//! line and the key, so that a typo never silently becomes a default. Validation ends with
//! [`crate::footprint`]: a scenario this machine cannot simulate is refused like a typo.
//! Numbers a run adds up are bounded here (durations at most 366 days, finite rates and row
//! counts), so the simulator's integer nanoseconds cannot overflow.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, InputError, Result};
use crate::model::strategy::Strategy;
use crate::threshold::Threshold;

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;
/// The longest window, and the longest value of any duration drawn during a run (session
/// lengths, intervals, service times, latencies): 366 days.
pub const MAX_DURATION: Dur = Dur(366 * 86_400 * NS_PER_SEC);
/// The largest `worker_cpu_ms_per_connect`: Cloudflare's largest CPU limit, 5 minutes.
pub const MAX_WORKER_CPU_MS: f64 = 300_000.0;
/// The largest storage row count per message, join or lobby change.
pub const MAX_ROWS: f64 = 1e6;
/// The largest WebSocket message a Durable Object receives (Cloudflare's limit, 32 MiB).
pub const MAX_MESSAGE_BYTES: u32 = 32 << 20;
/// The length of a billing month used for projections: 30 days, as Cloudflare's examples use.
pub const MONTH_SECONDS: u64 = 30 * 86_400;

/// A span of time, stored in integer nanoseconds. Written in files as `"250ms"`, `"30s"`,
/// `"1.5h"`, `"30d"` (units: ns, us, ms, s, m or min, h, d), or several such parts added,
/// `"1d19h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub u64);

impl Dur {
    /// From seconds; NaN and negative values give 0, values beyond `u64` ns the largest.
    pub fn from_secs_f64(s: f64) -> Dur {
        let ns = s * NS_PER_SEC as f64;
        Dur(if ns.is_nan() || ns <= 0.0 {
            0
        } else {
            ns.round() as u64 // saturates
        })
    }
    /// In seconds.
    pub fn secs(self) -> f64 {
        self.0 as f64 / NS_PER_SEC as f64
    }
    /// In milliseconds.
    pub fn millis(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let expected = || {
            format!("expected a duration like \"250ms\", \"30s\", \"1.5h\" or \"30d\", found {s:?}")
        };
        // One or more NUMBER UNIT parts, added: "30s", "1.5h", "1d19h", "1h 30m".
        let number = |c: char| c.is_ascii_digit() || c == '.';
        let mut rest = t;
        let mut ns = 0.0;
        if rest.is_empty() {
            return Err(expected());
        }
        while !rest.is_empty() {
            let split = rest.find(|c: char| !number(c)).ok_or_else(expected)?;
            let (num, after) = rest.split_at(split);
            let (unit, next) = after.split_at(after.find(number).unwrap_or(after.len()));
            let value: f64 = num.parse().map_err(|_| expected())?;
            let scale = match unit.trim() {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" | "min" => 60e9,
                "h" => 3600e9,
                "d" => 86_400e9,
                _ => return Err(expected()),
            };
            ns += value * scale;
            rest = next;
        }
        if !ns.is_finite() || ns > u64::MAX as f64 / 4.0 {
            return Err(format!(
                "{s:?} is too long a duration (at most {} days)",
                (u64::MAX / 4 / (86_400 * NS_PER_SEC))
            ));
        }
        Ok(Dur(ns.round() as u64))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let units: [(u64, &str); 6] = [
            (86_400 * NS_PER_SEC, "d"),
            (3600 * NS_PER_SEC, "h"),
            (60 * NS_PER_SEC, "m"),
            (NS_PER_SEC, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
        ];
        for (size, name) in units {
            if ns >= size && ns % size == 0 {
                return write!(f, "{}{name}", ns / size);
            }
        }
        if ns >= 1_000_000 {
            write!(f, "{}ms", ns as f64 / 1e6)
        } else {
            write!(f, "{ns}ns")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A distribution of durations, as written in a scenario:
/// `{ dist = "constant", value = "30m" }`, `{ dist = "exponential", mean = "30s" }`,
/// `{ dist = "lognormal", median = "20ms", sigma = 0.5 }` (or `p99 = "80ms"` instead of
/// sigma), `{ dist = "uniform", min = "1m", max = "5m" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum DistSpec {
    /// Always the same value.
    Constant {
        /// The value.
        value: Dur,
    },
    /// Exponential with this mean (memoryless; Poisson inter-arrival times).
    Exponential {
        /// The mean.
        mean: Dur,
    },
    /// Log-normal with this median and either a shape `sigma` or a 99th percentile.
    Lognormal {
        /// The median (e^mu).
        median: Dur,
        /// The shape parameter (standard deviation of the logarithm).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sigma: Option<f64>,
        /// The 99th percentile, an alternative to `sigma`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        p99: Option<Dur>,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// Lower bound.
        min: Dur,
        /// Upper bound.
        max: Dur,
    },
}

impl DistSpec {
    /// A constant distribution.
    pub fn constant(d: Dur) -> DistSpec {
        DistSpec::Constant { value: d }
    }

    /// The lognormal shape, from sigma or from the 99th percentile.
    pub fn lognormal_sigma(median: Dur, sigma: Option<f64>, p99: Option<Dur>) -> f64 {
        match (sigma, p99) {
            (Some(s), _) => s,
            (None, Some(p)) if median.0 > 0 && p.0 > 0 => {
                (p.0 as f64 / median.0 as f64).ln() / 2.326_347_874
            }
            _ => 0.0,
        }
    }

    /// The largest duration written in the spec (value, mean, median, p99, min or max).
    pub fn largest_parameter(&self) -> Dur {
        match *self {
            DistSpec::Constant { value } => value,
            DistSpec::Exponential { mean } => mean,
            DistSpec::Lognormal { median, p99, .. } => p99.map_or(median, |p| p.max(median)),
            DistSpec::Uniform { min, max } => min.max(max),
        }
    }

    /// The mean, in nanoseconds.
    pub fn mean_ns(&self) -> f64 {
        match *self {
            DistSpec::Constant { value } => value.0 as f64,
            DistSpec::Exponential { mean } => mean.0 as f64,
            DistSpec::Lognormal { median, sigma, p99 } => {
                let s = Self::lognormal_sigma(median, sigma, p99);
                median.0 as f64 * (s * s / 2.0).exp()
            }
            DistSpec::Uniform { min, max } => (min.0 as f64 + max.0 as f64) / 2.0,
        }
    }

    /// Checks serde cannot express (a lognormal's shape, a uniform's bounds).
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        match *self {
            DistSpec::Lognormal { median, sigma, p99 } => match (sigma, p99) {
                (Some(_), Some(_)) => Err("give either sigma or p99, not both".into()),
                (None, None) => Err("lognormal needs sigma or p99".into()),
                (Some(s), None) if !(s.is_finite() && (0.0..=5.0).contains(&s)) => Err(format!(
                    "sigma must be between 0 and 5, found {}",
                    crate::error::Shown(s)
                )),
                (None, Some(p)) if p < median => Err("p99 must be at least the median".into()),
                _ => Ok(()),
            },
            DistSpec::Uniform { min, max } if max < min => Err("max must be at least min".into()),
            _ => Ok(()),
        }
    }
}

/// Patience of a queued user: a distribution, or `"unlimited"`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patience {
    /// Waits forever (until the session would have ended anyway is not modelled: forever).
    #[default]
    Unlimited,
    /// Gives up after a time drawn from this distribution.
    Limited(DistSpec),
}

impl<'de> Deserialize<'de> for Patience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Dist(DistSpec),
        }
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected \"unlimited\", a duration like \"2m\", or a distribution table",
            )
        })? {
            Raw::Word(w) if w == "unlimited" => Ok(Patience::Unlimited),
            Raw::Word(w) => w
                .parse::<Dur>()
                .map(|d| Patience::Limited(DistSpec::constant(d)))
                .map_err(de::Error::custom),
            Raw::Dist(spec) => Ok(Patience::Limited(spec)),
        }
    }
}

impl Serialize for Patience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Patience::Unlimited => s.serialize_str("unlimited"),
            Patience::Limited(spec) => spec.serialize(s),
        }
    }
}

/// How arrivals are spread over the day.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Profile {
    /// The same rate all day.
    #[default]
    Flat,
    /// Weight 1 from 09:00 to 18:00 and 0.1 otherwise (a workday).
    BusinessHours,
    /// Weight 0.2 until 17:00, 1 from 17:00 to 24:00 (a consumer evening peak).
    Evening,
    /// 24 hourly weights, hour 0 first; only their ratios matter.
    Hourly(Vec<f64>),
}

impl Profile {
    /// The 24 hourly weights, normalised to a mean of 1 (so each is at most 24).
    ///
    /// Any finite, non-negative weights that are not all zero can be normalised. When their
    /// sum overflows (24 × 1e308) or their mean is not a normal `f64` (5e-324 / 24 underflows
    /// to 0, and a subnormal mean is imprecise), they are first divided by the largest; a
    /// weight below ~1e-308 of the largest then becomes 0, a share of the day's arrivals no
    /// run can show. Otherwise they are divided by their mean directly.
    pub fn weights(&self) -> [f64; 24] {
        let mut out = [0.0; 24];
        match self {
            Profile::Flat => out = [1.0; 24],
            Profile::BusinessHours => {
                for (h, o) in out.iter_mut().enumerate() {
                    *o = if (9..18).contains(&h) { 1.0 } else { 0.1 };
                }
            }
            Profile::Evening => {
                for (h, o) in out.iter_mut().enumerate() {
                    *o = if h >= 17 { 1.0 } else { 0.2 };
                }
            }
            Profile::Hourly(w) => {
                for (o, &x) in out.iter_mut().zip(w) {
                    *o = if x.is_finite() && x > 0.0 { x } else { 0.0 };
                }
            }
        }
        let mean = out.iter().sum::<f64>() / 24.0;
        if !mean.is_normal() {
            let max = out.iter().copied().fold(0.0, f64::max);
            if max <= 0.0 {
                return [1.0; 24]; // not a validated profile; flat is the safe reading
            }
            for o in &mut out {
                *o /= max;
            }
            let mean = out.iter().sum::<f64>() / 24.0;
            for o in &mut out {
                *o /= mean;
            }
            return out;
        }
        for o in &mut out {
            *o /= mean;
        }
        out
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Weights(Vec<f64>),
        }
        let err = || {
            de::Error::custom(
                "expected \"flat\", \"business-hours\", \"evening\" or a list of 24 hourly weights",
            )
        };
        match Raw::deserialize(d).map_err(|_| err())? {
            Raw::Word(w) => match w.as_str() {
                "flat" => Ok(Profile::Flat),
                "business-hours" => Ok(Profile::BusinessHours),
                "evening" => Ok(Profile::Evening),
                _ => Err(err()),
            },
            Raw::Weights(w) => {
                if w.len() != 24 {
                    return Err(de::Error::custom(format!(
                        "expected 24 hourly weights, found {}",
                        w.len()
                    )));
                }
                if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().all(|&x| x == 0.0) {
                    return Err(de::Error::custom(
                        "hourly weights must be finite, non-negative and not all zero",
                    ));
                }
                Ok(Profile::Hourly(w))
            }
        }
    }
}

impl Serialize for Profile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Profile::Flat => s.serialize_str("flat"),
            Profile::BusinessHours => s.serialize_str("business-hours"),
            Profile::Evening => s.serialize_str("evening"),
            Profile::Hourly(w) => w.serialize(s),
        }
    }
}

/// How an arriving user picks a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomChoice {
    /// The lowest-numbered room that still has a free seat (counting users on their way in);
    /// if every room is full, a uniformly random room.
    #[default]
    Fill,
    /// Uniformly at random.
    Uniform,
    /// Zipf-skewed popularity: room k (1-based) with weight 1/k^s.
    Skewed,
}

/// `[window]`: what is simulated and how it becomes a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Window {
    /// Simulated time.
    pub length: Dur,
    /// Width of one time-series bucket.
    pub timeseries_interval: Dur,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            length: Dur(86_400 * NS_PER_SEC),
            timeseries_interval: Dur(60 * NS_PER_SEC),
        }
    }
}

/// `[arrivals]`: when sessions start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Arrivals {
    /// Mean sessions per day (over the daily profile). This or `rate_per_second` is required:
    /// the load has no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_per_day: Option<f64>,
    /// Alternatively, the mean arrival rate in sessions per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// Shape of the day.
    pub profile: Profile,
}

impl Arrivals {
    /// Mean arrivals per second over a day.
    pub fn mean_rate(&self) -> f64 {
        self.rate_per_second
            .or(self.sessions_per_day.map(|d| d / 86_400.0))
            .unwrap_or(0.0)
    }
}

/// `[sessions]`: what one user does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sessions {
    /// Time in the room once admitted.
    pub length: DistSpec,
    /// How long a queued user waits before giving up.
    pub patience: Patience,
    /// Time between two messages of one admitted user (the first comes one interval after
    /// admission).
    pub message_interval: DistSpec,
    /// Bytes per chat message (payload).
    pub message_bytes: u32,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            length: DistSpec::Exponential {
                mean: Dur(30 * 60 * NS_PER_SEC),
            },
            patience: Patience::Unlimited,
            message_interval: DistSpec::Exponential {
                mean: Dur(30 * NS_PER_SEC),
            },
            message_bytes: 200,
        }
    }
}

/// `[rooms]`: the rooms users can pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rooms {
    /// How many rooms exist.
    pub count: u32,
    /// How a user picks one.
    pub choice: RoomChoice,
    /// Zipf exponent for `choice = "skewed"`.
    pub skew: f64,
}

impl Default for Rooms {
    fn default() -> Self {
        Rooms {
            count: 10,
            choice: RoomChoice::Fill,
            skew: 1.0,
        }
    }
}

/// `[limits]`: the design document's limits and the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSpec {
    /// Seats per room.
    pub max_connections_per_room: u32,
    /// Rooms active at once (`None` = `"unlimited"`, the default).
    #[serde(with = "unlimited_count")]
    pub max_active_rooms: Option<u32>,
    /// Users seated at once over all rooms (`None` = `"unlimited"`, the default).
    #[serde(with = "unlimited_count")]
    pub max_total_connections: Option<u32>,
    /// Users that may wait in one room's queue; 0 = no queue.
    pub queue_limit: u32,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            max_connections_per_room: 8,
            max_active_rooms: None,
            max_total_connections: None,
            queue_limit: 0,
        }
    }
}

/// `[persistence]`: optional storage of chat messages in the object's SQLite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Persistence {
    /// SQLite rows written per inbound message.
    pub rows_written_per_message: f64,
    /// SQLite rows read per admitted join (for example, recent history).
    pub rows_read_per_join: f64,
    /// Bytes stored per written row.
    pub row_bytes: u32,
    /// How long rows are kept (absent = forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Dur>,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            rows_written_per_message: 0.0,
            rows_read_per_join: 0.0,
            row_bytes: 256,
            retention: None,
        }
    }
}

/// `[platform.service]`: time an object spends on one event of each kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Service {
    /// Accepting a WebSocket and deciding admission.
    pub connect: DistSpec,
    /// Handling one inbound chat message (before fan-out).
    pub message: DistSpec,
    /// Extra time per recipient of a message's fan-out.
    pub per_recipient: Dur,
    /// The lobby handling one RPC (join, leave, abandon).
    pub rpc: DistSpec,
    /// A room object handling a close.
    pub close: DistSpec,
}

impl Default for Service {
    fn default() -> Self {
        let us = |n: u64| Dur(n * 1_000);
        Service {
            connect: DistSpec::constant(us(500)),
            message: DistSpec::constant(us(100)),
            per_recipient: us(10),
            rpc: DistSpec::constant(us(200)),
            close: DistSpec::constant(us(50)),
        }
    }
}

/// `[platform.overload]`: when an object refuses work ("Durable Object is overloaded").
///
/// Cloudflare fails requests to an object whose queue is too long or too slow without
/// publishing the thresholds; the default models that with a 5 s delay rule and no depth
/// rule. `"unlimited"` turns a rule off (an ideal FIFO server: textbook queueing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overload {
    /// Requests already in the object (waiting or in service) at which a new one fails
    /// (`None` = `"unlimited"`, the default).
    #[serde(with = "unlimited_count")]
    pub max_queue_depth: Option<u32>,
    /// Queueing delay beyond which a new request fails (`None` = `"unlimited"`; default 5 s).
    #[serde(with = "unlimited_dur")]
    pub max_queue_delay: Option<Dur>,
}

impl Default for Overload {
    fn default() -> Self {
        Overload {
            max_queue_depth: None,
            max_queue_delay: Some(Dur(5 * NS_PER_SEC)),
        }
    }
}

/// `Option<u32>` written as a whole number or `"unlimited"` (`None`).
mod unlimited_count {
    use serde::de::{self, Deserializer};
    use serde::{Deserialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u32(*n),
            None => s.serialize_str("unlimited"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Word(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Count(n)) => Ok(Some(n)),
            Ok(Raw::Word(w)) if w == "unlimited" => Ok(None),
            _ => Err(de::Error::custom(format!(
                "expected a whole number from 0 to {} or \"unlimited\"",
                u32::MAX
            ))),
        }
    }
}

/// `Option<Dur>` written as a duration or `"unlimited"` (`None`).
mod unlimited_dur {
    use serde::de::{self, Deserializer};
    use serde::{Deserialize, Serializer};

    use super::Dur;

    pub fn serialize<S: Serializer>(v: &Option<Dur>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.collect_str(d),
            None => s.serialize_str("unlimited"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dur>, D::Error> {
        let expected = "expected a duration like \"5s\" or \"unlimited\"";
        let w = String::deserialize(d).map_err(|_| de::Error::custom(expected))?;
        if w == "unlimited" {
            return Ok(None);
        }
        w.parse::<Dur>()
            .map(Some)
            .map_err(|e| de::Error::custom(format!("{e}, or \"unlimited\"")))
    }
}

/// `[platform]`: how the rooms are hosted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Platform {
    /// Room-to-object mapping: `single`, `per-room` or `sharded:N`.
    pub strategy: Strategy,
    /// WebSocket Hibernation API (true) or standard `accept()` (false).
    pub hibernation: bool,
    /// Time an idle non-hibernating object stays in memory after its last socket closed
    /// (absent = 10 s with hibernation, 100 s without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_tail: Option<Dur>,
    /// Worker CPU milliseconds per WebSocket upgrade.
    pub worker_cpu_ms_per_connect: f64,
    /// WebSockets one object can hold; a connect beyond it is refused
    /// (`object_socket_limit`). Cloudflare documents 32,768 for hibernatable sockets.
    pub max_sockets_per_object: u32,
    /// Storage rows the lobby writes per change of its state (an admitted or queued join, a
    /// departure, a promotion), so that its global view survives its own eviction; the
    /// project's Worker writes one (a key per user, deleted when the user leaves).
    pub lobby_rows_written_per_change: f64,
    /// Service times.
    pub service: Service,
    /// Overload rule.
    pub overload: Overload,
    /// A calibration file (`dosim calibrate` writes them), relative to the scenario file:
    /// its figures replace `worker_cpu_ms_per_connect` and the `service` keys it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PathBuf>,
    /// Which platform keys a calibration replaced, and from where (not a key; see
    /// [`Scenario::apply_calibration`]).
    #[serde(skip)]
    pub calibrated: std::collections::BTreeMap<String, crate::meter::Source>,
    /// Who serves the objects: Cloudflare (each object its own server) or a local workerd
    /// (one thread for everything).
    #[serde(skip_serializing_if = "Runtime::is_cloudflare")]
    pub runtime: Runtime,
}

/// `platform.runtime`: how the objects' servers are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// Cloudflare: every object (room objects, the lobby) is its own single-threaded FIFO
    /// server; the Worker's CPU queues behind nothing.
    #[default]
    Cloudflare,
    /// A local workerd: the Worker, every object and the lobby share one single-threaded FIFO
    /// server (workerd runs one event loop for all of them), and the Worker's CPU per
    /// upgrade queues on it too.
    LocalWorkerd,
}

impl Runtime {
    /// True for the default.
    pub fn is_cloudflare(&self) -> bool {
        *self == Runtime::Cloudflare
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            strategy: Strategy::Single,
            hibernation: true,
            idle_tail: None,
            worker_cpu_ms_per_connect: 1.0,
            max_sockets_per_object: 32_768,
            lobby_rows_written_per_change: 1.0,
            service: Service::default(),
            overload: Overload::default(),
            calibration: None,
            calibrated: Default::default(),
            runtime: Runtime::Cloudflare,
        }
    }
}

impl Platform {
    /// The idle tail in force.
    pub fn idle_tail(&self) -> Dur {
        self.idle_tail.unwrap_or(if self.hibernation {
            Dur(10 * NS_PER_SEC)
        } else {
            Dur(100 * NS_PER_SEC)
        })
    }
}

/// `[network]`: one-way latencies. `client_edge` and `edge_object` are drawn once per session
/// (a user's place on the network), `jitter` per message and direction, `object_object` per
/// RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// A preset: `"loopback"` sets every latency to what one machine's loopback shows (client
    /// ↔ Worker [`Network::LOOPBACK_ONE_WAY`] constant, object ↔ object and jitter 0), for
    /// comparing with a local drive; the other keys may then not be given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<NetworkModel>,
    /// Client to Cloudflare edge (and back), one way.
    pub client_edge: DistSpec,
    /// Edge to the object's location, one way (objects live where they were created).
    pub edge_object: DistSpec,
    /// Object to object (room object to lobby), one way, drawn per RPC.
    pub object_object: DistSpec,
    /// Extra latency added to every traversal of a user's path (per message, per direction).
    pub jitter: DistSpec,
}

impl Default for Network {
    fn default() -> Self {
        let ms = |n: u64| Dur(n * 1_000_000);
        Network {
            model: None,
            client_edge: DistSpec::Lognormal {
                median: ms(20),
                sigma: Some(0.5),
                p99: None,
            },
            edge_object: DistSpec::Lognormal {
                median: ms(10),
                sigma: Some(0.8),
                p99: None,
            },
            object_object: DistSpec::Lognormal {
                median: ms(5),
                sigma: Some(0.5),
                p99: None,
            },
            jitter: DistSpec::Exponential { mean: ms(2) },
        }
    }
}

/// `[reference]`: a hand estimate to show beside the simulated bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The estimate's monthly total in dollars.
    pub total_usd: f64,
    /// Where it comes from.
    pub source: String,
    /// The price table that prices the estimate's own figures (if any), e.g. `seed-2024-12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `[thresholds]`: pass/fail checks (k6-style). Any failure makes the run exit with 99; a
/// check without data does not, unless `no_data = "fail"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Expressions such as `"message.p99 < 250"` (see [`crate::threshold`]).
    pub checks: Vec<String>,
    /// Monthly budget in dollars; adds the check `monthly_cost_usd < budget_alert_share × budget`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// Share of the budget that raises the alert.
    pub budget_alert_share: f64,
    /// Share of a configured connection limit that raises the alert; adds
    /// `connection_limit_share < this` when `max_total_connections` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_alert_share: Option<f64>,
    /// What a check whose metric has no value counts as (`--no-data` overrides it).
    pub no_data: crate::threshold::NoData,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            checks: Vec::new(),
            budget_usd: None,
            budget_alert_share: 0.8,
            connection_alert_share: None,
            no_data: crate::threshold::NoData::Pass,
        }
    }
}

/// `network.model`: a preset of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkModel {
    /// One machine's loopback: see [`Network::model`].
    Loopback,
}

impl Network {
    /// One-way client ↔ Worker latency of the loopback preset: 0.1 ms, measured on this
    /// project's machine (a WebSocket frame through the kernel's loopback and both stacks).
    pub const LOOPBACK_ONE_WAY: Dur = Dur(100_000);

    /// The loopback preset's latencies.
    pub fn loopback() -> Network {
        let zero = DistSpec::constant(Dur(0));
        Network {
            model: Some(NetworkModel::Loopback),
            client_edge: DistSpec::constant(Network::LOOPBACK_ONE_WAY),
            edge_object: zero.clone(),
            object_object: zero.clone(),
            jitter: zero,
        }
    }

    /// Apply the preset, if any: an error names a latency key given beside it.
    fn apply_model(&mut self) -> std::result::Result<(), (String, String)> {
        if self.model != Some(NetworkModel::Loopback) {
            return Ok(());
        }
        let d = Network::default();
        for (key, given, default) in [
            ("client_edge", &self.client_edge, &d.client_edge),
            ("edge_object", &self.edge_object, &d.edge_object),
            ("object_object", &self.object_object, &d.object_object),
            ("jitter", &self.jitter, &d.jitter),
        ] {
            if given != default {
                return Err((
                    format!("network.{key}"),
                    "network.model = \"loopback\" sets every latency; remove this key or the model"
                        .into(),
                ));
            }
        }
        *self = Network::loopback();
        Ok(())
    }
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What the scenario models.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Price table name (see `dosim pricing`).
    #[serde(default = "default_pricing")]
    pub pricing: String,
    /// See [`Window`].
    #[serde(default)]
    pub window: Window,
    /// See [`Arrivals`].
    #[serde(default)]
    pub arrivals: Arrivals,
    /// See [`Sessions`].
    #[serde(default)]
    pub sessions: Sessions,
    /// See [`Rooms`].
    #[serde(default)]
    pub rooms: Rooms,
    /// See [`LimitsSpec`].
    #[serde(default)]
    pub limits: LimitsSpec,
    /// See [`Persistence`].
    #[serde(default)]
    pub persistence: Persistence,
    /// See [`Platform`].
    #[serde(default)]
    pub platform: Platform,
    /// See [`Network`].
    #[serde(default)]
    pub network: Network,
    /// See [`Reference`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// See [`Thresholds`].
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Where the scenario was read from (not a key).
    #[serde(skip)]
    pub path: PathBuf,
}

fn default_seed() -> u64 {
    1
}

fn default_pricing() -> String {
    crate::pricing::PriceTable::DEFAULT.to_string()
}

impl Scenario {
    /// Read and validate a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario> {
        let text = crate::error::read_text(path)?;
        Scenario::parse(&text, path)
    }

    /// Parse and validate scenario text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
        let mut scenario: Scenario = parse_toml(text, path)?;
        scenario.path = path.to_path_buf();
        scenario
            .network
            .apply_model()
            .and_then(|()| scenario.validate())
            .map_err(|(key, message)| locate(text, path, &key, message))?;
        if let Some(file) = scenario.platform.calibration.clone() {
            let file = path.parent().unwrap_or(Path::new("")).join(file);
            let cal = crate::calibration::Calibration::from_file(&file).map_err(|e| match e {
                Error::Io { path: p, cause } => locate(
                    text,
                    path,
                    "platform.calibration",
                    format!("cannot read the calibration file {}: {cause}", p.display()),
                ),
                other => other,
            })?;
            scenario.apply_calibration(&cal)?;
        }
        Ok(scenario)
    }

    /// Replace the platform figures `cal` has (`worker_cpu_ms_per_connect` and the
    /// `platform.service` keys) with its calibrated ones, and record which, so that reports
    /// and usage sources say they are calibrated and from which file. The one place a
    /// calibration is applied: `platform.calibration` in a scenario and `--calibration` on
    /// the command line both come here (a later call wins key by key). Errors if the result
    /// no longer validates.
    pub fn apply_calibration(&mut self, cal: &crate::calibration::Calibration) -> Result<()> {
        cal.apply_to(&mut self.platform);
        self.check()
    }

    /// Validate again after a change (a sweep's scaled load and rooms): the same rules, and
    /// the same error, as [`Scenario::parse`].
    pub fn check(&self) -> Result<()> {
        self.validate()
            .map_err(|(key, message)| self.error_at(&key, message))
    }

    /// An [`InputError`] about `key` of this scenario, at its line when the file can still
    /// be read.
    pub fn error_at(&self, key: &str, message: String) -> Error {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        locate(&text, &self.path, key, message)
    }

    /// The admission limits in the model's terms.
    pub fn admission_limits(&self) -> crate::model::admission::Limits {
        crate::model::admission::Limits {
            room_capacity: self.limits.max_connections_per_room,
            max_active_rooms: self.limits.max_active_rooms,
            max_total_connections: self.limits.max_total_connections,
            queue_limit: self.limits.queue_limit,
        }
    }

    /// Every threshold in force: the scenario's checks plus those implied by the budget and
    /// the connection alert share.
    pub fn threshold_checks(&self) -> Vec<Threshold> {
        let mut out: Vec<Threshold> = self
            .thresholds
            .checks
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        if let Some(budget) = self.thresholds.budget_usd {
            out.push(Threshold::budget(
                budget,
                self.thresholds.budget_alert_share,
            ));
        }
        if let (Some(share), Some(_)) = (
            self.thresholds.connection_alert_share,
            self.limits.max_total_connections,
        ) {
            out.push(Threshold::connection_share(share));
        }
        out
    }

    /// Semantic checks serde cannot express; the error names the key.
    fn validate(&self) -> std::result::Result<(), (String, String)> {
        let bad = |key: &str, msg: String| Err((key.to_string(), msg));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".into());
        }
        if self.window.length.0 == 0 {
            return bad("window.length", "must be longer than 0".into());
        }
        if self.window.length > MAX_DURATION {
            return bad("window.length", format!("must be at most {MAX_DURATION}"));
        }
        if self.window.timeseries_interval.0 == 0 {
            return bad("window.timeseries_interval", "must be longer than 0".into());
        }
        let a = &self.arrivals;
        match (a.sessions_per_day, a.rate_per_second) {
            (Some(_), Some(_)) => {
                return bad(
                    "arrivals.rate_per_second",
                    "give either sessions_per_day or rate_per_second, not both".into(),
                )
            }
            (None, None) => {
                return bad(
                    "arrivals",
                    "needs the load, sessions_per_day or rate_per_second (it has no default)"
                        .into(),
                )
            }
            (Some(x), None) if !(x.is_finite() && x > 0.0) => {
                return bad(
                    "arrivals.sessions_per_day",
                    format!("must be > 0, found {}", crate::error::Shown(x)),
                )
            }
            (None, Some(x)) if !(x.is_finite() && x > 0.0) => {
                return bad(
                    "arrivals.rate_per_second",
                    format!("must be > 0, found {}", crate::error::Shown(x)),
                )
            }
            _ => {}
        }
        if !self
            .arrivals
            .profile
            .weights()
            .iter()
            .all(|w| w.is_finite())
        {
            return bad(
                "arrivals.profile",
                "these hourly weights cannot be normalised".into(),
            );
        }
        let dists = [
            ("sessions.length", &self.sessions.length),
            ("sessions.message_interval", &self.sessions.message_interval),
            ("platform.service.connect", &self.platform.service.connect),
            ("platform.service.message", &self.platform.service.message),
            ("platform.service.rpc", &self.platform.service.rpc),
            ("platform.service.close", &self.platform.service.close),
            ("network.client_edge", &self.network.client_edge),
            ("network.edge_object", &self.network.edge_object),
            ("network.object_object", &self.network.object_object),
            ("network.jitter", &self.network.jitter),
        ];
        for (key, d) in dists {
            d.validate().map_err(|m| (key.to_string(), m))?;
        }
        if let Patience::Limited(d) = &self.sessions.patience {
            d.validate()
                .map_err(|m| ("sessions.patience".to_string(), m))?;
        }
        // Bounded so that sums of a few draws and the window can never overflow u64 ns.
        let mut durations: Vec<(&str, Dur)> = dists
            .iter()
            .map(|(key, d)| (*key, d.largest_parameter()))
            .collect();
        if let Patience::Limited(d) = &self.sessions.patience {
            durations.push(("sessions.patience", d.largest_parameter()));
        }
        durations.push((
            "platform.service.per_recipient",
            self.platform.service.per_recipient,
        ));
        if let Some(t) = self.platform.idle_tail {
            durations.push(("platform.idle_tail", t));
        }
        for (key, d) in durations {
            if d > MAX_DURATION {
                return bad(
                    key,
                    format!("{d} is longer than the longest window, {MAX_DURATION}"),
                );
            }
        }
        if self.sessions.message_interval.mean_ns() < 1e6 {
            return bad(
                "sessions.message_interval",
                "mean must be at least 1ms".into(),
            );
        }
        if self.sessions.message_bytes > MAX_MESSAGE_BYTES {
            return bad(
                "sessions.message_bytes",
                format!(
                    "{} bytes is more than Cloudflare accepts in one WebSocket message \
                     ({MAX_MESSAGE_BYTES} bytes, 32 MiB)",
                    self.sessions.message_bytes
                ),
            );
        }
        if self.rooms.count == 0 {
            return bad("rooms.count", "must be at least 1".into());
        }
        if !(self.rooms.skew.is_finite() && self.rooms.skew >= 0.0) {
            return bad("rooms.skew", "must be >= 0".into());
        }
        if self.limits.max_connections_per_room == 0 {
            return bad(
                "limits.max_connections_per_room",
                "must be at least 1".into(),
            );
        }
        if self.platform.max_sockets_per_object == 0 {
            return bad(
                "platform.max_sockets_per_object",
                "must be at least 1".into(),
            );
        }
        let lobby_rows = self.platform.lobby_rows_written_per_change;
        if !(lobby_rows.is_finite() && (0.0..=MAX_ROWS).contains(&lobby_rows)) {
            return bad(
                "platform.lobby_rows_written_per_change",
                format!(
                    "must be from 0 to {MAX_ROWS}, found {}",
                    crate::error::Shown(lobby_rows)
                ),
            );
        }
        let cpu = self.platform.worker_cpu_ms_per_connect;
        if !(cpu.is_finite() && (0.0..=MAX_WORKER_CPU_MS).contains(&cpu)) {
            return bad(
                "platform.worker_cpu_ms_per_connect",
                format!("must be from 0 to {MAX_WORKER_CPU_MS} (Cloudflare's largest CPU limit, 5 minutes), found {}", crate::error::Shown(cpu)),
            );
        }
        if self.platform.overload.max_queue_depth == Some(0) {
            return bad(
                "platform.overload.max_queue_depth",
                "must be at least 1 (0 would refuse every request), or \"unlimited\"".into(),
            );
        }
        if let Strategy::Sharded(0) = self.platform.strategy {
            return bad("platform.strategy", "sharded:N needs N >= 1".into());
        }
        let p = &self.persistence;
        for (key, rows) in [
            (
                "persistence.rows_written_per_message",
                p.rows_written_per_message,
            ),
            ("persistence.rows_read_per_join", p.rows_read_per_join),
        ] {
            if !(rows.is_finite() && (0.0..=MAX_ROWS).contains(&rows)) {
                return bad(
                    key,
                    format!(
                        "must be from 0 to {MAX_ROWS}, found {}",
                        crate::error::Shown(rows)
                    ),
                );
            }
        }
        if let Err(e) = crate::pricing::PriceTable::builtin(&self.pricing) {
            return bad("pricing", e.to_string());
        }
        if let Some(r) = &self.reference {
            if let Some(name) = &r.pricing {
                if let Err(e) = crate::pricing::PriceTable::builtin(name) {
                    return bad("reference.pricing", e.to_string());
                }
            }
        }
        for c in &self.thresholds.checks {
            if let Err(e) = c.parse::<Threshold>() {
                return bad("thresholds.checks", e);
            }
        }
        let t = &self.thresholds;
        if !(t.budget_alert_share > 0.0 && t.budget_alert_share <= 1.0) {
            return bad("thresholds.budget_alert_share", "must be in (0, 1]".into());
        }
        if let Some(b) = t.budget_usd {
            if !(b.is_finite() && b > 0.0) {
                return bad(
                    "thresholds.budget_usd",
                    format!(
                        "must be a positive number of dollars, found {}",
                        crate::error::Shown(b)
                    ),
                );
            }
        }
        if let Some(c) = t.connection_alert_share {
            if !(c > 0.0 && c <= 1.0) {
                return bad(
                    "thresholds.connection_alert_share",
                    format!("must be in (0, 1], found {}", crate::error::Shown(c)),
                );
            }
        }
        if let Some(r) = &self.reference {
            if !(r.total_usd.is_finite() && r.total_usd >= 0.0) {
                return bad(
                    "reference.total_usd",
                    format!(
                        "must be a number of dollars >= 0, found {}",
                        crate::error::Shown(r.total_usd)
                    ),
                );
            }
        }
        // Last, once every value is in range: can this machine run it?
        crate::footprint::check(self, &[self.platform.strategy])?;
        Ok(())
    }
}

/// Parse TOML into `T`, turning any error into an [`InputError`] with file, line and key.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = err.into_inner();
        let start = inner.span().map(|s| s.start);
        let message = toml_message(text, inner.message(), start);
        let (line, column) = start.map(|s| line_col(text, s)).unwrap_or((0, 0));
        let mut e = InputError {
            file: path.to_path_buf(),
            line,
            column,
            key,
            message,
        };
        // serde's "unknown field" error points at the table, not the key: find the key.
        if let Some(field) = unknown_field(&e.message) {
            // serde_path_to_error's path may or may not already end with the unknown key.
            let full = if e.key.is_empty() {
                field.to_string()
            } else if e.key.rsplit('.').next() == Some(field) {
                e.key.clone()
            } else {
                format!("{}.{field}", e.key)
            };
            if let Some((l, c)) = key_position(text, &full) {
                e.line = l;
                e.column = c;
            }
            e.key = full;
        } else if e.line == 0 {
            if let Some((l, c)) = key_position(text, &e.key) {
                e.line = l;
                e.column = c;
            }
        } else if e.key.is_empty() {
            // A value the TOML reader refused before any key was read (an integer past
            // i64): the key written on its line, under its table header.
            e.key = start
                .and_then(|at| key_written_at(text, at))
                .unwrap_or_default();
        }
        if e.message == "number too large to fit in target type" {
            e.message = format!(
                "an integer above {}, the largest a TOML file can hold",
                i64::MAX
            );
        }
        Error::Input(e)
    })
}

/// A one-line message for a TOML or serde error at byte `start`: the parser's own words
/// (several lines joined), except where it has none or names the wrong thing, as for a key
/// with nothing after its `=` (it says "invalid string", or nothing at the end of the file).
fn toml_message(text: &str, raw: &str, start: Option<usize>) -> String {
    if let Some(at) = start.filter(|&at| at <= text.len() && text.is_char_boundary(at)) {
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let rest = text[at..].lines().next().unwrap_or("").trim();
        if text[line_start..at].trim_end().ends_with('=')
            && (rest.is_empty() || rest.starts_with('#'))
        {
            return "missing value after `=` (a value is a number, a \"string\", true or false, a [list] or an { inline = \"table\" })".into();
        }
    }
    let joined: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if joined.is_empty() {
        "not valid TOML here".into()
    } else {
        joined.join("; ")
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(&rest[..rest.find('`')?])
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The dotted key whose value is at byte `at` of `text`: the bare key before the `=` on its
/// line, under the nearest `[table]` header above it (none for an inline table's value).
fn key_written_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = before[line_start..].split_once('=')?;
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.split('.').all(|p| {
                let p = p.trim();
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
    };
    if !bare(key) {
        return None;
    }
    let header = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim_start_matches('[');
        Some(inner.trim().to_string())
    });
    Some(match header {
        Some(h) if !h.is_empty() => format!("{h}.{key}"),
        _ => key.to_string(),
    })
}

/// Where a dotted key is written in the file (the key itself, or its value).
fn key_position(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(text.to_string()).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let parts: Vec<&str> = dotted.split('.').filter(|p| !p.is_empty()).collect();
    let mut span = None;
    for (i, part) in parts.iter().enumerate() {
        let (key, item) = table.get_key_value(part)?;
        span = key.span().or_else(|| item.span()).or(span);
        if i + 1 < parts.len() {
            table = item.as_table_like()?;
        }
    }
    span.map(|s| line_col(text, s.start))
}

/// An [`InputError`] for a semantic problem at `key` of the TOML `text` read from `path`.
pub fn locate(text: &str, path: &Path, key: &str, message: String) -> Error {
    let (line, column) = key_position(text, key).unwrap_or((0, 0));
    Error::Input(InputError {
        file: path.to_path_buf(),
        line,
        column,
        key: key.to_string(),
        message,
    })
}
