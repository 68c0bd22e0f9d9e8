//! Meter: the one place where platform events become billable [`Usage`], and where every
//! figure says where it came from.
//!
//! Both modes feed it. The simulator ([`crate::des`]) feeds it event by event as it simulates;
//! the driver ([`crate::drive`]) feeds it what it counted over real sockets (and the socket
//! openings and closings as they happen). The events are the platform's:
//!
//! | event | usage |
//! |---|---|
//! | [`Meter::worker_request`] | 1 Worker request, its CPU ([`EventCosts::worker_cpu_ms`]) |
//! | [`Meter::connect`] | 1 WebSocket connect accepted by an object |
//! | [`Meter::message_in`], [`Meter::delivered`] | 1 inbound message; its outbound frames, one per recipient |
//! | [`Meter::message_stored`] | `persistence.rows_written_per_message` rows written, stored until the retention or the window's end |
//! | [`Meter::close`] | a close handled by a room object |
//! | [`Meter::lobby_rpc`], [`Meter::lobby_changes`] | 1 Durable Object request; `platform.lobby_rows_written_per_change` rows per change of the lobby's state |
//! | [`Meter::joined`] | `persistence.rows_read_per_join` rows read |
//! | [`Meter::busy`] | an object's service time for one event (the simulator draws it) |
//! | [`Meter::socket_opened`], [`Meter::socket_closed`] | per object, the time any socket is open (billed under `accept()`) and the idle tail after the last one |
//!
//! The meter counts; it applies no rate until [`Meter::usage`] is asked for the usage under
//! a set of [`EventCosts`] (the Worker's CPU per request and each event's busy time in an
//! object). Each cost has a [`Source`]: modelled from the scenario, measured in this run
//! (a local drive measures workerd's CPU), or read from a calibration file. So a usage
//! line's source ([`Meter::sources`]) follows from its inputs: a line is `measured` when
//! every input was measured, and `modelled` as soon as one came from the scenario.
//!
//! Per event the meter does plain integer additions (storage adds one multiply-add), with no
//! allocation and no string work: it sits in the simulator's hot loop.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::scenario::{Scenario, MONTH_SECONDS, NS_PER_SEC};
use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// Where inputs come from

/// Where one input of the meter comes from: a count, a cost per event, a rate.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Counted by the simulation (how).
    Simulated(String),
    /// Counted or measured in this run (how).
    Measured(String),
    /// From the scenario: the key it was read from, and why it was not measured where a run
    /// could have measured it.
    Modelled {
        /// The scenario key (`platform.worker_cpu_ms_per_connect`, …).
        key: String,
        /// Why no measurement stands in for it (`None`: nothing could measure it).
        why: Option<String>,
    },
    /// From a calibration file (`dosim calibrate` writes them).
    Calibrated {
        /// The file.
        file: PathBuf,
        /// What in it (the fit, its runs).
        what: String,
    },
}

/// The kind of a [`Source`]. Ordered by precedence: a figure is as good as its weakest
/// input, so one with a modelled input is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceKind {
    /// Counted or measured in this run.
    Measured,
    /// Counted by the simulation.
    Simulated,
    /// From a calibration file.
    Calibrated,
    /// From the scenario.
    Modelled,
}

impl SourceKind {
    /// `measured`, `simulated`, `calibrated` or `modelled`.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Measured => "measured",
            SourceKind::Simulated => "simulated",
            SourceKind::Calibrated => "calibrated",
            SourceKind::Modelled => "modelled",
        }
    }
}

impl Source {
    /// A scenario key, nothing measuring it.
    pub fn scenario(key: &str) -> Source {
        Source::Modelled {
            key: key.to_string(),
            why: None,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::Simulated(_) => SourceKind::Simulated,
            Source::Measured(_) => SourceKind::Measured,
            Source::Modelled { .. } => SourceKind::Modelled,
            Source::Calibrated { .. } => SourceKind::Calibrated,
        }
    }

    /// What it is, in words (without the kind).
    pub fn describe(&self) -> String {
        match self {
            Source::Simulated(how) | Source::Measured(how) => how.clone(),
            Source::Modelled { key, why: None } => format!("the scenario's {key}"),
            Source::Modelled { key, why: Some(w) } => format!("the scenario's {key}: {w}"),
            Source::Calibrated { file, what } => format!("{what}, from {}", file.display()),
        }
    }

    /// `kind (what)`.
    fn tagged(&self) -> String {
        format!("{} ({})", self.kind().label(), self.describe())
    }
}

/// One per-event figure and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// The value (the unit is the field's: ms of CPU, or seconds of busy time).
    pub value: f64,
    /// Where it came from.
    pub source: Source,
}

impl Cost {
    /// `value` from `source`.
    pub fn new(value: f64, source: Source) -> Cost {
        Cost { value, source }
    }
}

/// What one event costs: the Worker's CPU per request, and the time an object is busy
/// handling each kind of event (the Hibernation API bills an object while it handles
/// events). The scenario gives them ([`EventCosts::from_scenario`]); a local drive measures
/// them from workerd's CPU; a calibration file (`dosim calibrate`) fills this same struct,
/// each cost with a [`Source::Calibrated`] source.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCosts {
    /// Worker CPU per Worker request, in ms.
    pub worker_cpu_ms: Cost,
    /// Object busy time per accepted connect, in seconds.
    pub connect: Cost,
    /// Object busy time per inbound message before its fan-out, in seconds.
    pub message: Cost,
    /// Object busy time per recipient of a message's fan-out, in seconds.
    pub per_recipient: Cost,
    /// Object busy time per close, in seconds.
    pub close: Cost,
    /// Lobby busy time per RPC, in seconds.
    pub rpc: Cost,
}

impl EventCosts {
    /// The scenario's figures: `platform.worker_cpu_ms_per_connect` and the means of the
    /// `platform.service` distributions. `why` says why nothing measured them (for a drive).
    /// Keys a calibration replaced ([`crate::scenario::Scenario::apply_calibration`]) are
    /// [`Source::Calibrated`], naming the file.
    pub fn from_scenario(s: &Scenario, why: Option<&str>) -> EventCosts {
        let p = &s.platform;
        // A key a calibration replaced is calibrated, from its file; the others modelled.
        let src = |key: &str| {
            let base = key.split(' ').next().unwrap_or(key);
            p.calibrated.get(base).cloned().unwrap_or(Source::Modelled {
                key: key.to_string(),
                why: why.map(str::to_string),
            })
        };
        let mean = |d: &crate::scenario::DistSpec| d.mean_ns() / NS_PER_SEC as f64;
        EventCosts {
            worker_cpu_ms: Cost::new(
                p.worker_cpu_ms_per_connect,
                src("platform.worker_cpu_ms_per_connect"),
            ),
            connect: Cost::new(
                mean(&p.service.connect),
                src("platform.service.connect (its mean)"),
            ),
            message: Cost::new(
                mean(&p.service.message),
                src("platform.service.message (its mean)"),
            ),
            per_recipient: Cost::new(
                p.service.per_recipient.secs(),
                src("platform.service.per_recipient"),
            ),
            close: Cost::new(
                mean(&p.service.close),
                src("platform.service.close (its mean)"),
            ),
            rpc: Cost::new(mean(&p.service.rpc), src("platform.service.rpc (its mean)")),
        }
    }
}

/// How the feeder obtained each count (the simulator simulates them; the driver counts what
/// it saw, and derives the lobby's work from it as the Worker does).
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    /// Worker requests.
    pub worker_requests: Source,
    /// Accepted connects.
    pub connects: Source,
    /// Inbound messages.
    pub messages_in: Source,
    /// Outbound frames (recipients).
    pub messages_out: Source,
    /// Closes.
    pub closes: Source,
    /// Lobby RPCs and changes of its state.
    pub lobby: Source,
    /// Joins (rows read).
    pub joins: Source,
    /// Socket time per object (opened and closed).
    pub object_time: Source,
}

impl Counted {
    /// Everything counted by the simulation.
    pub fn simulated() -> Counted {
        let s = |how: &str| Source::Simulated(how.to_string());
        Counted {
            worker_requests: s("one per arrival"),
            connects: s("connects the room objects accepted"),
            messages_in: s("messages that reached their room object"),
            messages_out: s("recipients of the messages served"),
            closes: s("closes the room objects handled"),
            lobby: s("1 RPC per join, leave and promotion"),
            joins: s("admitted joins"),
            object_time: s("per object, the time any socket was connected"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The meter

/// The kinds of work an object does for one event (its busy time is billed under the
/// Hibernation API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Accepting a WebSocket and deciding admission.
    Connect = 0,
    /// An inbound message and its fan-out.
    Message = 1,
    /// A close.
    Close = 2,
    /// A lobby RPC (in the lobby).
    Rpc = 3,
}

/// How the meter knows object busy time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BusyBasis {
    /// The feeder reports each event's service time ([`Meter::busy`]): the simulator, which
    /// draws them from the scenario's distributions.
    Drawn,
    /// Events counted × [`EventCosts`] per event: the driver, which cannot see inside an
    /// object.
    #[default]
    PerEvent,
}

/// Storage rates: always the scenario's (the project's Worker stores no messages).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// `persistence.rows_written_per_message`.
    pub rows_written_per_message: f64,
    /// `persistence.rows_read_per_join`.
    pub rows_read_per_join: f64,
    /// `platform.lobby_rows_written_per_change`.
    pub lobby_rows_per_change: f64,
    /// `persistence.row_bytes`.
    pub row_bytes: u32,
    /// `persistence.retention`, in ns (None = forever).
    pub retention_ns: Option<u64>,
}

impl Storage {
    /// The scenario's.
    pub fn of(s: &Scenario) -> Storage {
        Storage {
            rows_written_per_message: s.persistence.rows_written_per_message,
            rows_read_per_join: s.persistence.rows_read_per_join,
            lobby_rows_per_change: s.platform.lobby_rows_written_per_change,
            row_bytes: s.persistence.row_bytes,
            retention_ns: s.persistence.retention.map(|d| d.0),
        }
    }
}

/// What a meter is set up with: what it counts and the rules that do not depend on costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Room-hosting objects (their socket clocks).
    pub objects: u32,
    /// The window's end, ns from its start: rows are stored until then at most.
    pub end_ns: u64,
    /// `platform.idle_tail`, in ns.
    pub idle_tail_ns: u64,
    /// The Hibernation API (busy time billed) or `accept()` (socket time billed).
    pub hibernation: bool,
    /// Joins go through a lobby object.
    pub lobby: bool,
    /// How busy time is known.
    pub busy: BusyBasis,
    /// Storage rates.
    pub storage: Storage,
}

impl Setup {
    /// A meter of `scenario`'s window: `objects` room-hosting objects, a lobby or not.
    pub fn of(scenario: &Scenario, objects: u32, lobby: bool, busy: BusyBasis) -> Setup {
        Setup {
            objects,
            end_ns: scenario.window.length.0,
            idle_tail_ns: scenario.platform.idle_tail().0,
            hibernation: scenario.platform.hibernation,
            lobby,
            busy,
            storage: Storage::of(scenario),
        }
    }
}

/// Counts of events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Worker requests.
    pub worker_requests: u64,
    /// WebSocket connects accepted by objects.
    pub connects: u64,
    /// Inbound messages (billed).
    pub messages_in: u64,
    /// Outbound frames: recipients of the messages served.
    pub messages_out: u64,
    /// Closes handled by room objects.
    pub closes: u64,
    /// Lobby RPCs.
    pub lobby_rpcs: u64,
    /// Changes of the lobby's state (each writes its rows).
    pub lobby_changes: u64,
    /// Admitted joins (each reads its rows).
    pub joins: u64,
}

/// One object's sockets and what they cost under `accept()`: the time at least one socket is
/// connected, and the idle time in memory after the last one closed, up to the idle tail.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct SocketClock {
    sockets: u32,
    since: u64,
    idle_since: Option<u64>,
    socket_ns: u64,
    tail_ns: u64,
}

impl SocketClock {
    fn open(&mut self, now: u64, tail: u64) -> bool {
        self.sockets += 1;
        if self.sockets > 1 {
            return false;
        }
        if let Some(idle) = self.idle_since.take() {
            self.tail_ns += now.saturating_sub(idle).min(tail);
        }
        self.since = now;
        true
    }

    fn close(&mut self, now: u64) -> bool {
        if self.sockets == 0 {
            return false;
        }
        self.sockets -= 1;
        if self.sockets > 0 {
            return false;
        }
        self.socket_ns += now.saturating_sub(self.since);
        self.idle_since = Some(now);
        true
    }

    fn finish(&mut self, end: u64, tail: u64) {
        if self.sockets > 0 {
            self.socket_ns += end.saturating_sub(self.since);
            self.since = end;
        } else if let Some(idle) = self.idle_since.take() {
            self.tail_ns += end.saturating_sub(idle).min(tail);
        }
    }
}

/// The meter of one window. Build it with [`Meter::new`], feed it events, close its books
/// with [`Meter::close_books`], then read [`Meter::usage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meter {
    setup: Setup,
    /// GB per row per ns of a 30-day month.
    gb_months_per_row_ns: f64,
    counts: Counts,
    messages_stored: u64,
    stored_gb_months: f64,
    /// u128: millions of objects, each busy or holding sockets up to the whole window,
    /// overflow u64 nanoseconds.
    busy_ns: [u128; 4],
    clocks: Vec<SocketClock>,
    socket_ns: u128,
    tail_ns: u128,
    closed: bool,
}

/// The usage a meter yields under a set of costs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metered {
    /// The billable usage.
    pub usage: Usage,
    /// Of `usage.sqlite_rows_written`, the lobby's.
    pub lobby_rows_written: f64,
    /// The part of `usage` that follows sessions rather than occupancy — Worker requests and
    /// CPU, connects, lobby RPCs and rows (in `sqlite_rows_written`), and the busy time of
    /// connects, closes and RPCs — which a drive projects per session.
    pub per_session: Usage,
}

impl Default for Meter {
    /// A meter of nothing: no object, an empty window.
    fn default() -> Meter {
        Meter::new(Setup::default())
    }
}

impl Meter {
    /// A meter with nothing counted.
    pub fn new(setup: Setup) -> Meter {
        let gb_months_per_row_ns =
            f64::from(setup.storage.row_bytes) / 1e9 / (MONTH_SECONDS as f64 * NS_PER_SEC as f64);
        Meter {
            clocks: vec![SocketClock::default(); setup.objects as usize],
            setup,
            gb_months_per_row_ns,
            counts: Counts::default(),
            messages_stored: 0,
            stored_gb_months: 0.0,
            busy_ns: [0; 4],
            socket_ns: 0,
            tail_ns: 0,
            closed: false,
        }
    }

    /// What it was set up with.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// Whether joins go through a lobby, when the feeder learns it late (a drive asks the
    /// Worker). Call it before feeding lobby changes.
    pub fn set_lobby(&mut self, lobby: bool) {
        self.setup.lobby = lobby;
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    // -- events --------------------------------------------------------------------------------

    /// A Worker request (a WebSocket upgrade reaching the Worker).
    #[inline]
    pub fn worker_request(&mut self) {
        self.counts.worker_requests += 1;
    }

    /// A WebSocket connect accepted by a room object.
    #[inline]
    pub fn connect(&mut self) {
        self.counts.connects += 1;
    }

    /// An inbound message reached its room object (billed whether or not it is served).
    #[inline]
    pub fn message_in(&mut self) {
        self.counts.messages_in += 1;
    }

    /// A message was fanned out to `recipients`.
    #[inline]
    pub fn delivered(&mut self, recipients: u64) {
        self.counts.messages_out += recipients;
    }

    /// A message's rows were written at `at_ns` (from the window's start): they are stored
    /// until the retention or the window's end, whichever comes first.
    #[inline]
    pub fn message_stored(&mut self, at_ns: u64) {
        let rows = self.setup.storage.rows_written_per_message;
        if rows <= 0.0 {
            return;
        }
        self.messages_stored += 1;
        let left = self.setup.end_ns.saturating_sub(at_ns);
        let kept = self
            .setup
            .storage
            .retention_ns
            .map_or(left, |r| r.min(left));
        self.stored_gb_months += rows * self.gb_months_per_row_ns * kept as f64;
    }

    /// A room object handled a close.
    #[inline]
    pub fn close(&mut self) {
        self.counts.closes += 1;
    }

    /// A lobby RPC (join, leave, promotion).
    #[inline]
    pub fn lobby_rpc(&mut self) {
        self.counts.lobby_rpcs += 1;
    }

    /// `n` changes of the lobby's state (a join admitted or queued, a departure, a
    /// promotion); nothing without a lobby.
    #[inline]
    pub fn lobby_changes(&mut self, n: u64) {
        if self.setup.lobby {
            self.counts.lobby_changes += n;
        }
    }

    /// A join was admitted (its rows are read).
    #[inline]
    pub fn joined(&mut self) {
        self.counts.joins += 1;
    }

    /// An object spent `ns` on one event of kind `work` ([`BusyBasis::Drawn`]).
    #[inline]
    pub fn busy(&mut self, work: Work, ns: u64) {
        self.busy_ns[work as usize] += u128::from(ns);
    }

    /// A socket to `object` opened at `at_ns`; true if it is the object's only one.
    #[inline]
    pub fn socket_opened(&mut self, object: u32, at_ns: u64) -> bool {
        let tail = self.setup.idle_tail_ns;
        self.clocks[object as usize].open(at_ns, tail)
    }

    /// A socket to `object` closed at `at_ns`; true if it was the object's last one. A close
    /// with no socket open, or after the books were closed, counts nothing.
    #[inline]
    pub fn socket_closed(&mut self, object: u32, at_ns: u64) -> bool {
        !self.closed && self.clocks[object as usize].close(at_ns)
    }

    /// Sockets open to `object`.
    #[inline]
    pub fn sockets(&self, object: u32) -> u32 {
        self.clocks[object as usize].sockets
    }

    /// Add counts of events at once (a feeder that counted them itself).
    pub fn add(&mut self, c: Counts) {
        let n = &mut self.counts;
        n.worker_requests += c.worker_requests;
        n.connects += c.connects;
        n.messages_in += c.messages_in;
        n.messages_out += c.messages_out;
        n.closes += c.closes;
        n.lobby_rpcs += c.lobby_rpcs;
        if self.setup.lobby {
            n.lobby_changes += c.lobby_changes;
        }
        n.joins += c.joins;
    }

    /// Close the books at `end_ns` (the window's end, or earlier when a drive stopped):
    /// sockets still open count until then, and rows stored afterwards are kept until then.
    /// Returns the objects that had a socket in the window. Idempotent.
    pub fn close_books(&mut self, end_ns: u64) -> u64 {
        if self.closed {
            return self.clocks.iter().filter(|c| c.used()).count() as u64;
        }
        self.closed = true;
        self.setup.end_ns = end_ns;
        let tail = self.setup.idle_tail_ns;
        let mut used = 0;
        for c in &mut self.clocks {
            used += u64::from(c.used());
            c.finish(end_ns, tail);
            self.socket_ns += u128::from(c.socket_ns);
            self.tail_ns += u128::from(c.tail_ns);
        }
        used
    }

    /// Add the meter of another process that metered other objects of the same window
    /// (a shard of a drive): both must have closed their books. The objects' clocks add up,
    /// as do the counts, the busy and socket time and the stored rows. `None` when the
    /// meters are not of the same setup or a book is still open.
    pub fn absorb(&mut self, o: &Meter) -> Option<()> {
        let same = self.setup.objects == o.setup.objects
            && self.setup.hibernation == o.setup.hibernation
            && self.setup.idle_tail_ns == o.setup.idle_tail_ns;
        if !(same && self.closed && o.closed) {
            return None;
        }
        self.setup.end_ns = self.setup.end_ns.min(o.setup.end_ns);
        let (n, c) = (&mut self.counts, &o.counts);
        n.worker_requests += c.worker_requests;
        n.connects += c.connects;
        n.messages_in += c.messages_in;
        n.messages_out += c.messages_out;
        n.closes += c.closes;
        n.lobby_rpcs += c.lobby_rpcs;
        n.lobby_changes += c.lobby_changes;
        n.joins += c.joins;
        self.messages_stored += o.messages_stored;
        self.stored_gb_months += o.stored_gb_months;
        for (a, b) in self.busy_ns.iter_mut().zip(o.busy_ns) {
            *a += b;
        }
        for (a, b) in self.clocks.iter_mut().zip(&o.clocks) {
            a.sockets += b.sockets;
            a.socket_ns += b.socket_ns;
            a.tail_ns += b.tail_ns;
            a.idle_since = a.idle_since.or(b.idle_since);
        }
        self.socket_ns += o.socket_ns;
        self.tail_ns += o.tail_ns;
        Some(())
    }

    // -- usage ---------------------------------------------------------------------------------

    /// Busy seconds by kind of work, known either way.
    fn busy_seconds(&self, c: &EventCosts) -> [f64; 4] {
        let n = &self.counts;
        match self.setup.busy {
            BusyBasis::Drawn => self.busy_ns.map(|ns| ns as f64 / NS_PER_SEC as f64),
            BusyBasis::PerEvent => [
                n.connects as f64 * c.connect.value,
                n.messages_in as f64 * c.message.value
                    + n.messages_out as f64 * c.per_recipient.value,
                n.closes as f64 * c.close.value,
                n.lobby_rpcs as f64 * c.rpc.value,
            ],
        }
    }

    /// Billed object-seconds: the whole, and the part that follows sessions.
    fn active_seconds(&self, c: &EventCosts) -> (f64, f64) {
        let s = NS_PER_SEC as f64;
        let [connect, message, close, rpc] = self.busy_seconds(c);
        let sockets = self.socket_ns as f64 / s;
        match (self.setup.busy, self.setup.hibernation) {
            // Sums of integer ns, divided once (as exact as the simulator's clock).
            (BusyBasis::Drawn, true) => (
                self.busy_ns.iter().sum::<u128>() as f64 / s,
                connect + close + rpc,
            ),
            (BusyBasis::Drawn, false) => (
                (self.socket_ns + self.busy_ns[Work::Rpc as usize]) as f64 / s,
                rpc,
            ),
            (BusyBasis::PerEvent, true) => (connect + message + close + rpc, connect + close + rpc),
            (BusyBasis::PerEvent, false) => (sockets + rpc, rpc),
        }
    }

    /// The usage of what was counted, under `costs`.
    pub fn usage(&self, costs: &EventCosts) -> Metered {
        let n = &self.counts;
        let st = &self.setup.storage;
        let (active, session_active) = self.active_seconds(costs);
        let lobby_rows = n.lobby_changes as f64 * st.lobby_rows_per_change;
        let cpu = n.worker_requests as f64 * costs.worker_cpu_ms.value;
        let usage = Usage {
            worker_requests: n.worker_requests as f64,
            worker_cpu_ms: cpu,
            do_requests: n.lobby_rpcs as f64,
            do_websocket_connects: n.connects as f64,
            do_websocket_messages_in: n.messages_in as f64,
            do_websocket_messages_out: n.messages_out as f64,
            do_active_seconds: active,
            do_idle_tail_seconds: if self.setup.hibernation {
                0.0
            } else {
                self.tail_ns as f64 / NS_PER_SEC as f64
            },
            sqlite_rows_read: n.joins as f64 * st.rows_read_per_join,
            sqlite_rows_written: self.messages_stored as f64 * st.rows_written_per_message
                + lobby_rows,
            sqlite_stored_gb_months: self.stored_gb_months,
        };
        let per_session = Usage {
            worker_requests: usage.worker_requests,
            worker_cpu_ms: usage.worker_cpu_ms,
            do_requests: usage.do_requests,
            do_websocket_connects: usage.do_websocket_connects,
            do_active_seconds: session_active,
            sqlite_rows_written: lobby_rows,
            ..Usage::default()
        };
        Metered {
            usage,
            lobby_rows_written: lobby_rows,
            per_session,
        }
    }
}

impl SocketClock {
    fn used(&self) -> bool {
        self.sockets > 0 || self.socket_ns > 0 || self.tail_ns > 0 || self.idle_since.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

/// A usage line's source from its inputs: the weakest input's kind, the formula, then each
/// input and where it came from.
fn line(formula: &str, inputs: &[(&str, &Source)]) -> String {
    let kind = inputs
        .iter()
        .map(|(_, s)| s.kind())
        .max()
        .unwrap_or(SourceKind::Measured);
    if let [(_, only)] = inputs {
        if formula.is_empty() {
            return format!("{}: {}", kind.label(), only.describe());
        }
    }
    let mut o = format!("{}: {formula}", kind.label());
    for (i, (name, s)) in inputs.iter().enumerate() {
        let _ = write!(
            o,
            "{}{name}: {}",
            if i == 0 { " — " } else { "; " },
            s.tagged()
        );
    }
    o
}

/// Milliseconds for a reader, to the ns: `0.412 ms`, `1 ms`.
fn ms(seconds: f64) -> String {
    let text = format!("{:.6}", seconds * 1e3);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} ms")
}

impl Meter {
    /// For each usage line ([`Usage::KEYS`]), where its figure came from: `measured: …`,
    /// `modelled: …` (some input is the scenario's), `simulated: …` or `calibrated: …`,
    /// with the formula and every input's source. `counted` says how the feeder counted.
    pub fn sources(&self, costs: &EventCosts, counted: &Counted) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.request_sources(&mut out, costs, counted);
        out.insert(
            "do_active_seconds".into(),
            self.active_source(costs, counted),
        );
        out.insert(
            "do_idle_tail_seconds".into(),
            if self.setup.hibernation {
                "0 under hibernation".to_string()
            } else {
                line(
                    "gaps between a room object's last socket and its next, capped at the idle tail",
                    &[
                        ("gaps", &counted.object_time),
                        ("idle tail", &Source::scenario("platform.idle_tail")),
                    ],
                )
            },
        );
        self.storage_sources(&mut out, counted);
        out
    }

    /// Requests, CPU, connects and messages.
    fn request_sources(
        &self,
        out: &mut BTreeMap<String, String>,
        costs: &EventCosts,
        counted: &Counted,
    ) {
        let mut put = |k: &str, v: String| {
            out.insert(k.to_string(), v);
        };
        put(
            "worker_requests",
            line("", &[("", &counted.worker_requests)]),
        );
        put(
            "worker_cpu_ms",
            line(
                &format!(
                    "worker_requests × {} of Worker CPU each",
                    ms(costs.worker_cpu_ms.value / 1e3)
                ),
                &[
                    ("worker_requests", &counted.worker_requests),
                    ("CPU per request", &costs.worker_cpu_ms.source),
                ],
            ),
        );
        put(
            "do_requests",
            if self.setup.lobby {
                line("", &[("", &counted.lobby)])
            } else {
                "0: no lobby in this strategy and configuration".to_string()
            },
        );
        put(
            "do_websocket_connects",
            line("", &[("", &counted.connects)]),
        );
        put(
            "do_websocket_messages_in",
            line("", &[("", &counted.messages_in)]),
        );
        put(
            "do_websocket_messages_out",
            line("", &[("", &counted.messages_out)]),
        );
    }

    /// Rows read, written and stored (always the scenario's rates).
    fn storage_sources(&self, out: &mut BTreeMap<String, String>, counted: &Counted) {
        let (n, st) = (&self.counts, &self.setup.storage);
        let per_join = Source::scenario("persistence.rows_read_per_join");
        let per_message = Source::scenario("persistence.rows_written_per_message");
        let per_change = Source::scenario("platform.lobby_rows_written_per_change");
        out.insert(
            "sqlite_rows_read".into(),
            line(
                &format!("{} joins × {} rows", n.joins, st.rows_read_per_join),
                &[("joins", &counted.joins), ("rows per join", &per_join)],
            ),
        );
        let messages = format!(
            "{} messages × {} rows",
            self.messages_stored, st.rows_written_per_message
        );
        let mut inputs = vec![
            ("messages", &counted.messages_in),
            ("rows per message", &per_message),
        ];
        let written = if self.setup.lobby {
            inputs.extend([
                ("lobby changes", &counted.lobby),
                ("rows per change", &per_change),
            ]);
            format!(
                "{messages}, plus {} changes of the lobby's state × {} rows",
                n.lobby_changes, st.lobby_rows_per_change
            )
        } else {
            messages
        };
        out.insert("sqlite_rows_written".into(), line(&written, &inputs));
        out.insert(
            "sqlite_stored_gb_months".into(),
            line(
                "each message's rows × persistence.row_bytes, for the time they are kept within the window (until persistence.retention or the window's end), ÷ a 30-day month",
                &[
                    ("messages", &counted.messages_in),
                    ("rows and bytes", &per_message),
                ],
            ),
        );
    }

    fn active_source(&self, c: &EventCosts, counted: &Counted) -> String {
        let n = &self.counts;
        let lobby = self.setup.lobby;
        let rpc_term = |o: &mut String| {
            if lobby {
                let _ = write!(o, " + {} lobby RPCs × {}", n.lobby_rpcs, ms(c.rpc.value));
            }
        };
        let mut inputs: Vec<(&str, &Source)> = Vec::new();
        let mut formula = String::new();
        match (self.setup.busy, self.setup.hibernation) {
            (BusyBasis::Drawn, true) => {
                return "modelled: the service times of the events the objects served, drawn from the scenario's platform.service distributions (the Hibernation API bills handling time)".to_string();
            }
            (BusyBasis::Drawn, false) => {
                return "simulated: per object, the time any socket was connected (accept() bills the whole time), plus the lobby's RPCs' service times drawn from platform.service.rpc".to_string();
            }
            (BusyBasis::PerEvent, true) => {
                let _ = write!(
                    formula,
                    "busy time per event × events (the Hibernation API bills handling time): {} connects × {} + {} messages × {} + {} recipients × {} + {} closes × {}",
                    n.connects,
                    ms(c.connect.value),
                    n.messages_in,
                    ms(c.message.value),
                    n.messages_out,
                    ms(c.per_recipient.value),
                    n.closes,
                    ms(c.close.value)
                );
                rpc_term(&mut formula);
                inputs.extend([
                    ("connects", &counted.connects),
                    ("messages", &counted.messages_in),
                    ("recipients", &counted.messages_out),
                    ("closes", &counted.closes),
                    ("per connect", &c.connect.source),
                    ("per message", &c.message.source),
                    ("per recipient", &c.per_recipient.source),
                    ("per close", &c.close.source),
                ]);
            }
            (BusyBasis::PerEvent, false) => {
                formula.push_str(
                    "per object, the time any socket to it was open (accept() bills the whole time)",
                );
                rpc_term(&mut formula);
                inputs.push(("socket time", &counted.object_time));
            }
        }
        if lobby {
            inputs.push(("lobby RPCs", &counted.lobby));
            inputs.push(("per lobby RPC", &c.rpc.source));
        }
        line(&formula, &inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        Scenario::parse(
            &format!("name = \"m\"\n[window]\nlength = \"1h\"\n[arrivals]\nsessions_per_day = 100\n{extra}"),
            std::path::Path::new("m.toml"),
        )
        .unwrap()
    }

    fn meter(s: &Scenario, lobby: bool, busy: BusyBasis) -> Meter {
        Meter::new(Setup::of(s, 2, lobby, busy))
    }

    fn measured(v: f64) -> Cost {
        Cost::new(v, Source::Measured("by a test".into()))
    }

    #[test]
    fn each_event_kind_becomes_its_usage() {
        let s = scenario(
            "[platform]\nworker_cpu_ms_per_connect = 2.0\nlobby_rows_written_per_change = 3.0\n\
             [persistence]\nrows_written_per_message = 2.0\nrows_read_per_join = 5.0\n",
        );
        let costs = EventCosts::from_scenario(&s, None);
        let mut m = meter(&s, true, BusyBasis::PerEvent);
        let u0 = m.usage(&costs).usage;
        assert_eq!(u0, Usage::default());
        m.worker_request();
        m.worker_request();
        assert_eq!(m.usage(&costs).usage.worker_requests, 2.0);
        assert_eq!(m.usage(&costs).usage.worker_cpu_ms, 4.0);
        m.connect();
        m.joined();
        m.message_in();
        m.delivered(3);
        m.message_stored(0);
        m.close();
        m.lobby_rpc();
        m.lobby_changes(2);
        let u = m.usage(&costs).usage;
        assert_eq!(u.do_websocket_connects, 1.0);
        assert_eq!(u.do_websocket_messages_in, 1.0);
        assert_eq!(u.do_websocket_messages_out, 3.0);
        assert_eq!(u.do_requests, 1.0);
        assert_eq!(u.sqlite_rows_read, 5.0);
        assert_eq!(u.sqlite_rows_written, 2.0 + 2.0 * 3.0);
        assert_eq!(m.usage(&costs).lobby_rows_written, 6.0);
        // Default service times: connect 0.5 ms, message 0.1 ms, 10 µs per recipient, close
        // 50 µs, rpc 0.2 ms; hibernation bills them all.
        let busy = 0.0005 + 0.0001 + 3.0 * 0.00001 + 0.00005 + 0.0002;
        assert!((u.do_active_seconds - busy).abs() < 1e-12, "{u:?}");
        // Two rows of 256 bytes, kept the whole hour of a 30-day month.
        let gb = 2.0 * 256.0 / 1e9 * 3600.0 / MONTH_SECONDS as f64;
        assert!((u.sqlite_stored_gb_months - gb).abs() < 1e-18, "{u:?}");
        // Without a lobby, its changes are not counted.
        let mut m = meter(&s, false, BusyBasis::PerEvent);
        m.lobby_changes(4);
        assert_eq!(m.usage(&costs).usage.sqlite_rows_written, 0.0);
    }

    #[test]
    fn rows_are_kept_until_the_retention_or_the_end() {
        let s = scenario("[persistence]\nrows_written_per_message = 1.0\nretention = \"10m\"\n");
        let costs = EventCosts::from_scenario(&s, None);
        let mut m = meter(&s, false, BusyBasis::Drawn);
        m.message_stored(0); // kept 10 min (the retention)
        m.message_stored(3_540 * NS_PER_SEC); // kept 1 min (the window's end)
        let per_row_s = 256.0 / 1e9 / MONTH_SECONDS as f64;
        let u = m.usage(&costs).usage;
        assert!((u.sqlite_stored_gb_months - per_row_s * 660.0).abs() < 1e-18);
        assert_eq!(u.sqlite_rows_written, 2.0);
    }

    #[test]
    fn object_time_follows_the_websocket_api() {
        let accept = scenario("[platform]\nhibernation = false\nidle_tail = \"50ns\"\n");
        let costs = EventCosts::from_scenario(&accept, None);
        let mut m = meter(&accept, false, BusyBasis::Drawn);
        assert!(m.socket_opened(0, 100));
        assert!(!m.socket_opened(0, 150));
        assert_eq!(m.sockets(0), 2);
        assert!(!m.socket_closed(0, 200));
        assert!(m.socket_closed(0, 300));
        assert!(m.socket_opened(0, 320)); // an idle gap of 20
        assert!(m.socket_closed(0, 400));
        assert!(!m.socket_closed(1, 400), "no socket open: nothing");
        m.busy(Work::Message, 7); // not billed under accept()
        m.busy(Work::Rpc, 3); // the lobby is
        assert_eq!(m.close_books(1000), 1);
        let u = m.usage(&costs).usage;
        assert_eq!(u.do_active_seconds, (200 + 80 + 3) as f64 / 1e9);
        assert_eq!(u.do_idle_tail_seconds, (20 + 50) as f64 / 1e9);
        // Hibernation bills what the objects handled, never socket time or the tail.
        let hib = scenario("");
        let mut m = meter(&hib, false, BusyBasis::Drawn);
        m.socket_opened(1, 0);
        m.busy(Work::Connect, 5);
        m.busy(Work::Message, 7);
        m.busy(Work::Rpc, 3);
        m.close_books(1000);
        let met = m.usage(&costs);
        assert_eq!(met.usage.do_active_seconds, 15.0 / 1e9);
        assert_eq!(met.usage.do_idle_tail_seconds, 0.0);
        assert_eq!(met.per_session.do_active_seconds, 8.0 / 1e9);
    }

    #[test]
    fn the_part_that_follows_sessions_is_reported_apart() {
        let s = scenario("");
        let costs = EventCosts::from_scenario(&s, None);
        let mut m = meter(&s, true, BusyBasis::PerEvent);
        m.add(Counts {
            worker_requests: 3,
            connects: 2,
            messages_in: 10,
            messages_out: 30,
            closes: 2,
            lobby_rpcs: 4,
            lobby_changes: 4,
            joins: 2,
        });
        let p = m.usage(&costs).per_session;
        assert_eq!(p.worker_requests, 3.0);
        assert_eq!(p.do_websocket_connects, 2.0);
        assert_eq!(p.do_requests, 4.0);
        assert_eq!(p.sqlite_rows_written, 4.0);
        assert_eq!(p.do_websocket_messages_in, 0.0, "messages follow occupancy");
        let expected = 2.0 * 0.0005 + 2.0 * 0.00005 + 4.0 * 0.0002;
        assert!((p.do_active_seconds - expected).abs() < 1e-12);
    }

    #[test]
    fn sources_follow_the_inputs() {
        let s = scenario("");
        let counted = Counted {
            worker_requests: Source::Measured("upgrades".into()),
            connects: Source::Measured("upgrades answered 101".into()),
            messages_in: Source::Measured("messages written".into()),
            messages_out: Source::Measured("frames received".into()),
            closes: Source::Measured("departures".into()),
            lobby: Source::Measured("1 RPC per join".into()),
            joins: Source::Measured("seatings".into()),
            object_time: Source::Measured("driver sockets".into()),
        };
        let m = meter(&s, true, BusyBasis::PerEvent);
        // Everything from the scenario: the cost lines are modelled, and say why.
        let modelled = EventCosts::from_scenario(&s, Some("nothing measured on the server"));
        let src = m.sources(&modelled, &counted);
        assert_eq!(src.len(), Usage::KEYS.len());
        assert!(Usage::KEYS.iter().all(|k| src.contains_key(*k)));
        for key in ["worker_cpu_ms", "do_active_seconds"] {
            assert!(src[key].starts_with("modelled: "), "{key}: {}", src[key]);
            assert!(
                src[key].contains("nothing measured on the server"),
                "{}",
                src[key]
            );
        }
        assert!(src["worker_cpu_ms"].contains("platform.worker_cpu_ms_per_connect"));
        assert!(src["worker_requests"].starts_with("measured: upgrades"));
        assert!(src["sqlite_rows_read"].starts_with("modelled: "));
        // Measured costs: measured lines; one modelled input makes a line modelled again.
        let mut costs = EventCosts {
            worker_cpu_ms: measured(0.4),
            connect: measured(0.0005),
            message: measured(0.0001),
            per_recipient: measured(0.0),
            close: measured(0.0002),
            rpc: measured(0.0),
        };
        let src = m.sources(&costs, &counted);
        for key in ["worker_cpu_ms", "do_active_seconds"] {
            assert!(src[key].starts_with("measured: "), "{key}: {}", src[key]);
        }
        assert!(
            src["worker_cpu_ms"].contains("× 0.4 ms of Worker CPU"),
            "{}",
            src["worker_cpu_ms"]
        );
        assert!(
            src["do_active_seconds"].contains("× 0.5 ms"),
            "{}",
            src["do_active_seconds"]
        );
        costs.close = EventCosts::from_scenario(&s, None).close;
        let src = m.sources(&costs, &counted);
        assert!(src["do_active_seconds"].starts_with("modelled: "));
        assert!(src["do_active_seconds"]
            .contains("per close: modelled (the scenario's platform.service.close"));
        costs.close = Cost::new(
            0.0002,
            Source::Calibrated {
                file: "cal.toml".into(),
                what: "close fit".into(),
            },
        );
        let src = m.sources(&costs, &counted);
        assert!(
            src["do_active_seconds"].starts_with("calibrated: "),
            "{}",
            src["do_active_seconds"]
        );
        assert!(src["do_active_seconds"].contains("close fit, from cal.toml"));
        // Without a lobby there is nothing to bill as requests.
        let src = meter(&s, false, BusyBasis::PerEvent).sources(&costs, &counted);
        assert!(src["do_requests"].starts_with("0: no lobby"));
        assert!(!src["do_active_seconds"].contains("lobby"));
    }

    #[test]
    fn a_simulated_meter_says_so() {
        let s = scenario("[platform]\nhibernation = false\n");
        let m = meter(&s, false, BusyBasis::Drawn);
        let src = m.sources(&EventCosts::from_scenario(&s, None), &Counted::simulated());
        assert!(src["do_websocket_connects"].starts_with("simulated: "));
        assert!(src["do_active_seconds"].starts_with("simulated: "));
        assert!(src["worker_cpu_ms"].starts_with("modelled: "));
    }
}
