//! State: what the driver knows about the rooms (who is seated where, as the driver saw it)
//! and everything it measured. One mutex guards it; every session of every room records
//! here, on one clock (`Instant`), so a delivery's latency is the difference of two readings
//! of the same clock.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::plan::TimeMap;
use crate::meter::Meter;
use crate::metrics::{Gauges, Latency, TimeSeries};
use crate::workload::RoomPick;

/// Completed message records are kept this long, to recognise duplicates.
const KEEP_DONE: Duration = Duration::from_secs(10);

/// Whether a session was in progress at `from` (carried) or arrived in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Carried,
    Window,
}

/// Where a departing user was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Seated,
    Queued,
}

/// Session outcomes of one kind of session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SessionTally {
    pub started: u64,
    pub failed: u64,
    pub upgraded: u64,
    pub admitted: u64,
    pub queued: u64,
    pub admitted_from_queue: u64,
    pub abandoned: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub still_waiting: u64,
    pub still_connecting: u64,
}

/// Whole-run counts in the Worker's terms (for reconciliation with its stats).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Totals {
    /// Upgrades answered 101 (the Worker's `connects`).
    pub upgrades: u64,
    /// First answers `joined` (`admitted`).
    pub admitted: u64,
    /// First answers `queued` (`queued_joins`).
    pub queued_joins: u64,
    /// Queued users later seated (`promoted`).
    pub promoted: u64,
    /// Seated users who went away, any way (`left`).
    pub left: u64,
    /// Queued users who went away, any way (`abandoned`).
    pub abandoned: u64,
    /// Rejections by reason.
    pub rejections: BTreeMap<String, u64>,
    /// Chat messages written (`messages_in`).
    pub messages_sent: u64,
    /// Chat message frames received (`messages_out`).
    pub deliveries: u64,
    /// `error not_admitted` frames received (`not_admitted`).
    pub not_admitted: u64,
}

/// Counts of events inside the measured window (by the time they happened, or for connects
/// by the session's kind), the basis of the window's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct WindowCounts {
    /// Window sessions' upgrade requests that reached the Worker (any HTTP answer).
    pub worker_requests: u64,
    /// Window sessions' upgrades answered 101.
    pub upgrades: u64,
    /// Admitted joins (first answer or promotion) in the window.
    pub seatings: u64,
    /// Departures (seated or queued) in the window.
    pub departures: u64,
    /// Promotions in the window.
    pub promotions: u64,
    /// Messages sent (all messages are sent in the window).
    pub messages_sent: u64,
    /// Deliveries of those messages.
    pub deliveries: u64,
    /// Messages refused (`not_admitted`) or not written.
    pub messages_failed: u64,
}

/// Per-recipient delivery accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeliveryTally {
    pub expected: u64,
    pub received_expected: u64,
    pub missed_connected: u64,
    pub missed_departing: u64,
    pub unexpected: u64,
    pub duplicated: u64,
    pub unknown: u64,
}

/// What the driver saw per object (for per-object reconciliation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ObjectTally {
    pub upgrades: u64,
    pub messages_sent: u64,
    pub deliveries: u64,
    /// Unix ms of the driver's first upgrade request to the object.
    pub first_request_unix_ms: Option<f64>,
}

/// Latency histograms.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hists {
    /// Every connect, carried ones (during the ramp) included.
    pub connect: Latency,
    /// The connects of sessions arriving in the window.
    pub window_connect: Latency,
    pub admission_wait: Latency,
    pub message: Latency,
    pub message_from_send: Latency,
    pub send_lag: Latency,
    pub arrival_lag: Latency,
    pub upgrade: Latency,
    pub carried_connect: Latency,
}

/// Peaks of the driver's view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Peaks {
    pub connections: u64,
    pub active_rooms: u64,
    pub queue_length: u64,
    pub active_objects: u64,
    pub open_sockets: u64,
}

/// Everything measured. Serialized into a shard's record without the histograms (they go
/// to the shard's HdrHistogram log).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Measured {
    #[serde(skip)]
    pub hists: Hists,
    pub window: SessionTally,
    pub carried: SessionTally,
    pub totals: Totals,
    pub counts: WindowCounts,
    pub deliveries: DeliveryTally,
    pub faults: BTreeMap<String, u64>,
    pub peaks: Peaks,
    pub timeseries: TimeSeries,
    pub per_object: Vec<ObjectTally>,
    /// The window's meter: the sockets' open and close per object (plan time) as they
    /// happen; the rest is fed from the counts when the report is built.
    pub meter: Meter,
    /// Plan time of each message written in the window (its rows are stored from then on),
    /// [`REFUSED`] for one the Worker refused.
    pub message_offsets: Vec<u64>,
    /// Plan time the window covered when its books were closed: the whole stretch, or less
    /// when the run stopped early (0 when the window never began).
    pub covered_ns: u64,
}

fn add_map(a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>) {
    for (k, v) in b {
        *a.entry(k.clone()).or_default() += v;
    }
}

impl SessionTally {
    fn absorb(&mut self, o: &SessionTally) {
        self.started += o.started;
        self.failed += o.failed;
        self.upgraded += o.upgraded;
        self.admitted += o.admitted;
        self.queued += o.queued;
        self.admitted_from_queue += o.admitted_from_queue;
        self.abandoned += o.abandoned;
        self.rejected += o.rejected;
        add_map(&mut self.rejected_by_reason, &o.rejected_by_reason);
        self.still_waiting += o.still_waiting;
        self.still_connecting += o.still_connecting;
    }
}

impl Hists {
    /// The histograms by name (the tags of a shard's HdrHistogram log), in a fixed order.
    pub(crate) fn named(&self) -> [(&'static str, &Latency); 9] {
        [
            ("connect", &self.connect),
            ("window_connect", &self.window_connect),
            ("admission_wait", &self.admission_wait),
            ("message", &self.message),
            ("message_from_send", &self.message_from_send),
            ("send_lag", &self.send_lag),
            ("arrival_lag", &self.arrival_lag),
            ("upgrade", &self.upgrade),
            ("carried_connect", &self.carried_connect),
        ]
    }

    /// The histogram of a tag, to add a log's histogram to.
    pub(crate) fn by_name(&mut self, name: &str) -> Option<&mut Latency> {
        Some(match name {
            "connect" => &mut self.connect,
            "window_connect" => &mut self.window_connect,
            "admission_wait" => &mut self.admission_wait,
            "message" => &mut self.message,
            "message_from_send" => &mut self.message_from_send,
            "send_lag" => &mut self.send_lag,
            "arrival_lag" => &mut self.arrival_lag,
            "upgrade" => &mut self.upgrade,
            "carried_connect" => &mut self.carried_connect,
            _ => return None,
        })
    }
}

impl Measured {
    /// Add what another shard of the same plan measured (other objects, same window):
    /// counts add up exactly; peaks and the time series' gauges are summed (the sum of the
    /// shards' peaks bounds the whole run's peak from above); the window covered is the
    /// shortest shard's. Histograms are added from the shards' logs, not here. `Err` names
    /// what does not fit.
    pub(crate) fn absorb(&mut self, o: &Measured) -> Result<(), String> {
        self.meter
            .absorb(&o.meter)
            .ok_or("the shards' meters differ in set-up (objects, hibernation, idle tail) or were not closed")?;
        self.window.absorb(&o.window);
        self.carried.absorb(&o.carried);
        let (t, u) = (&mut self.totals, &o.totals);
        t.upgrades += u.upgrades;
        t.admitted += u.admitted;
        t.queued_joins += u.queued_joins;
        t.promoted += u.promoted;
        t.left += u.left;
        t.abandoned += u.abandoned;
        add_map(&mut t.rejections, &u.rejections);
        t.messages_sent += u.messages_sent;
        t.deliveries += u.deliveries;
        t.not_admitted += u.not_admitted;
        let (c, d) = (&mut self.counts, &o.counts);
        c.worker_requests += d.worker_requests;
        c.upgrades += d.upgrades;
        c.seatings += d.seatings;
        c.departures += d.departures;
        c.promotions += d.promotions;
        c.messages_sent += d.messages_sent;
        c.deliveries += d.deliveries;
        c.messages_failed += d.messages_failed;
        let (a, b) = (&mut self.deliveries, &o.deliveries);
        a.expected += b.expected;
        a.received_expected += b.received_expected;
        a.missed_connected += b.missed_connected;
        a.missed_departing += b.missed_departing;
        a.unexpected += b.unexpected;
        a.duplicated += b.duplicated;
        a.unknown += b.unknown;
        add_map(&mut self.faults, &o.faults);
        let (p, q) = (&mut self.peaks, &o.peaks);
        p.connections += q.connections;
        p.active_rooms += q.active_rooms;
        p.queue_length += q.queue_length;
        p.active_objects += q.active_objects;
        p.open_sockets += q.open_sockets;
        let (ts, us) = (&mut self.timeseries, &o.timeseries);
        if us.t.len() > ts.t.len() {
            let n = us.t.len();
            ts.t = us.t.clone();
            ts.interval_seconds = us.interval_seconds;
            ts.connections.resize(n, 0);
            ts.active_objects.resize(n, 0);
            ts.queue_length.resize(n, 0);
            ts.active_rooms.resize(n, 0);
        }
        for (a, b) in [
            (&mut ts.connections, &us.connections),
            (&mut ts.active_objects, &us.active_objects),
            (&mut ts.queue_length, &us.queue_length),
            (&mut ts.active_rooms, &us.active_rooms),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        if o.per_object.len() > self.per_object.len() {
            self.per_object
                .resize(o.per_object.len(), ObjectTally::default());
        }
        for (a, b) in self.per_object.iter_mut().zip(&o.per_object) {
            a.upgrades += b.upgrades;
            a.messages_sent += b.messages_sent;
            a.deliveries += b.deliveries;
            a.first_request_unix_ms = match (a.first_request_unix_ms, b.first_request_unix_ms) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        self.message_offsets.extend_from_slice(&o.message_offsets);
        // Plan order, whichever shard wrote a message: the stored rows add up the same way.
        self.message_offsets.sort_unstable();
        self.covered_ns = self.covered_ns.min(o.covered_ns);
        Ok(())
    }
}

/// A message offset that stands for a refused message.
pub(crate) const REFUSED: u64 = u64::MAX;

#[derive(Debug)]
struct Record {
    /// Its index in [`Measured::message_offsets`].
    index: usize,
    intended: Instant,
    sent: Instant,
    expected: Vec<u64>,
    got: Vec<bool>,
    extra: Vec<u64>,
    remaining: u32,
    failed: bool,
}

#[derive(Debug, Default)]
struct RoomLive {
    seated: Vec<u64>,
}

/// The shared state.
#[derive(Debug)]
pub(crate) struct State {
    time: TimeMap,
    t0: Option<Instant>,
    end: Option<Instant>,
    closed_books: bool,
    capacity: u32,
    rooms: Vec<RoomLive>,
    claimed: Vec<u32>,
    rooms_with_space: BTreeSet<u32>,
    active_objects: u32,
    seated_total: u64,
    queued_total: u64,
    active_rooms: u64,
    open_sockets: u64,
    connecting: [u64; 2],
    queued_window: u64,
    records: FxHashMap<(u64, u64), Record>,
    done: VecDeque<(Instant, (u64, u64))>,
    outstanding: u64,
    departed: FxHashMap<u64, Instant>,
    pub m: Measured,
}

impl State {
    /// The state of a run over `rooms` rooms of `capacity` seats; `meter` (set up for the
    /// window, its room-hosting objects) counts the window's usage.
    pub(crate) fn new(time: TimeMap, rooms: u32, capacity: u32, meter: Meter) -> State {
        let objects = meter.setup().objects;
        State {
            time,
            t0: None,
            end: None,
            closed_books: false,
            capacity,
            rooms: (0..rooms).map(|_| RoomLive::default()).collect(),
            claimed: vec![0; rooms as usize],
            rooms_with_space: (0..rooms).collect(),
            active_objects: 0,
            seated_total: 0,
            queued_total: 0,
            active_rooms: 0,
            open_sockets: 0,
            connecting: [0; 2],
            queued_window: 0,
            records: FxHashMap::default(),
            done: VecDeque::new(),
            outstanding: 0,
            departed: FxHashMap::default(),
            m: Measured {
                timeseries: TimeSeries::new(time.plan_len(Duration::from_secs(1)).max(1)),
                per_object: vec![ObjectTally::default(); objects as usize],
                meter,
                ..Measured::default()
            },
        }
    }

    /// Plan ns since `from`, clipped to the covered stretch (0 before `t0`).
    fn plan_offset(&self, now: Instant) -> u64 {
        match self.t0 {
            Some(t0) if now > t0 => self.time.plan_len(now - t0).min(self.time.span_ns),
            _ => 0,
        }
    }

    fn in_window(&self, now: Instant) -> bool {
        matches!((self.t0, self.end), (Some(a), Some(b)) if now >= a && now < b)
    }

    pub(crate) fn start_window(&mut self, t0: Instant) {
        self.t0 = Some(t0);
        self.end = Some(t0 + self.time.duration);
    }

    /// Gauges at this moment.
    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.seated_total as u32,
            active_objects: self.active_objects,
            queue_length: self.queued_total as u32,
            active_rooms: self.active_rooms as u32,
        }
    }

    pub(crate) fn sample(&mut self, now: Instant) {
        if let Some(t0) = self.t0 {
            let start = self.time.plan_len(now.saturating_duration_since(t0)) as f64 / 1e9;
            let g = self.gauges();
            self.m.timeseries.push(start, g);
        }
    }

    pub(crate) fn open_sockets(&self) -> u64 {
        self.open_sockets
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding
    }

    pub(crate) fn connecting(&self) -> u64 {
        self.connecting[0] + self.connecting[1]
    }

    fn connected(&mut self, kind: Kind) {
        let c = &mut self.connecting[kind as usize];
        *c = c.saturating_sub(1);
    }

    fn track_peaks(&mut self) {
        let p = &mut self.m.peaks;
        p.connections = p.connections.max(self.seated_total);
        p.queue_length = p.queue_length.max(self.queued_total);
        p.active_rooms = p.active_rooms.max(self.active_rooms);
        p.active_objects = p.active_objects.max(u64::from(self.active_objects));
        p.open_sockets = p.open_sockets.max(self.open_sockets);
    }

    fn tally(&mut self, kind: Kind) -> &mut SessionTally {
        match kind {
            Kind::Carried => &mut self.m.carried,
            Kind::Window => &mut self.m.window,
        }
    }

    pub(crate) fn fault(&mut self, category: &str) {
        *self.m.faults.entry(category.to_string()).or_default() += 1;
    }

    // -- rooms -------------------------------------------------------------------------------

    /// The room of a session, as the simulator chooses it ("fill": the lowest room with a
    /// seat not yet claimed by a user on their way in or seated), and claim a seat in it.
    pub(crate) fn choose_room(&mut self, pick: RoomPick) -> u32 {
        let room = match pick {
            RoomPick::Room(r) => r,
            RoomPick::Fill { fallback } => {
                self.rooms_with_space.first().copied().unwrap_or(fallback)
            }
        };
        self.claim(room, 1);
        room
    }

    fn claim(&mut self, room: u32, delta: i32) {
        let c = &mut self.claimed[room as usize];
        *c = c.saturating_add_signed(delta);
        if *c < self.capacity {
            self.rooms_with_space.insert(room);
        } else {
            self.rooms_with_space.remove(&room);
        }
    }

    /// The session is gone without holding a place (failed, rejected): release its claim.
    pub(crate) fn release(&mut self, room: u32) {
        self.claim(room, -1);
    }

    // -- connecting --------------------------------------------------------------------------

    pub(crate) fn session_started(&mut self, kind: Kind, started: Instant, intended: Instant) {
        self.tally(kind).started += 1;
        self.connecting[kind as usize] += 1;
        if kind == Kind::Window {
            self.m
                .hists
                .arrival_lag
                .record_ns(started.saturating_duration_since(intended).as_nanos() as u64);
        }
    }

    pub(crate) fn first_request(&mut self, object: u32, unix_ms: f64) {
        let o = &mut self.m.per_object[object as usize];
        if o.first_request_unix_ms.is_none() {
            o.first_request_unix_ms = Some(unix_ms);
        }
    }

    /// The connect failed (no socket): `category` is the fault; `reached_worker` when an
    /// HTTP answer came back (a 4xx/5xx is still a Worker request).
    pub(crate) fn connect_failed(
        &mut self,
        kind: Kind,
        room: u32,
        category: Option<&str>,
        reached_worker: bool,
    ) {
        self.connected(kind);
        self.tally(kind).failed += 1;
        if let Some(c) = category {
            self.fault(c);
        }
        if reached_worker && kind == Kind::Window {
            self.m.counts.worker_requests += 1;
        }
        self.release(room);
    }

    pub(crate) fn upgraded(&mut self, kind: Kind, object: u32, started: Instant, at: Instant) {
        self.tally(kind).upgraded += 1;
        self.m.totals.upgrades += 1;
        self.m.per_object[object as usize].upgrades += 1;
        if kind == Kind::Window {
            self.m.counts.worker_requests += 1;
            self.m.counts.upgrades += 1;
        }
        self.m
            .hists
            .upgrade
            .record_ns(at.saturating_duration_since(started).as_nanos() as u64);
        self.open_sockets += 1;
        let t = self.plan_offset(at);
        if self.m.meter.socket_opened(object, t) {
            self.active_objects += 1;
        }
        self.track_peaks();
    }

    /// The socket of a session on `object` is gone.
    pub(crate) fn socket_closed(&mut self, object: u32, now: Instant) {
        self.open_sockets = self.open_sockets.saturating_sub(1);
        let t = self.plan_offset(now);
        if self.m.meter.socket_closed(object, t) {
            self.active_objects -= 1;
        }
    }

    fn record_connect(&mut self, kind: Kind, started: Instant, now: Instant) {
        let ns = now.saturating_duration_since(started).as_nanos() as u64;
        let h = &mut self.m.hists;
        h.connect.record_ns(ns);
        match kind {
            Kind::Window => h.window_connect.record_ns(ns),
            Kind::Carried => h.carried_connect.record_ns(ns),
        }
    }

    /// First answer `joined`, or a promotion (`first == false`).
    pub(crate) fn seated(
        &mut self,
        kind: Kind,
        id: u64,
        room: u32,
        first: bool,
        started: Instant,
        now: Instant,
    ) {
        if first {
            self.connected(kind);
            self.record_connect(kind, started, now);
            self.m.totals.admitted += 1;
        } else {
            self.m.totals.promoted += 1;
            self.queued_total = self.queued_total.saturating_sub(1);
            if kind == Kind::Window {
                self.queued_window = self.queued_window.saturating_sub(1);
            }
            self.tally(kind).admitted_from_queue += 1;
            if self.in_window(now) {
                self.m.counts.promotions += 1;
            }
        }
        self.tally(kind).admitted += 1;
        if kind == Kind::Window {
            self.m
                .hists
                .admission_wait
                .record_ns(now.saturating_duration_since(started).as_nanos() as u64);
        }
        if self.in_window(now) {
            self.m.counts.seatings += 1;
        }
        let r = &mut self.rooms[room as usize];
        if r.seated.is_empty() {
            self.active_rooms += 1;
        }
        r.seated.push(id);
        self.seated_total += 1;
        self.track_peaks();
    }

    pub(crate) fn queued(&mut self, kind: Kind, started: Instant, now: Instant) {
        self.connected(kind);
        self.record_connect(kind, started, now);
        self.m.totals.queued_joins += 1;
        self.tally(kind).queued += 1;
        self.queued_total += 1;
        if kind == Kind::Window {
            self.queued_window += 1;
        }
        self.track_peaks();
    }

    pub(crate) fn rejected(
        &mut self,
        kind: Kind,
        room: u32,
        reason: &str,
        started: Instant,
        now: Instant,
    ) {
        self.connected(kind);
        self.record_connect(kind, started, now);
        *self
            .m
            .totals
            .rejections
            .entry(reason.to_string())
            .or_default() += 1;
        let t = self.tally(kind);
        t.rejected += 1;
        *t.rejected_by_reason.entry(reason.to_string()).or_default() += 1;
        self.release(room);
    }

    /// No first answer came (timeout, close, drop) after a successful upgrade.
    pub(crate) fn unanswered(&mut self, kind: Kind, room: u32, category: &str) {
        self.connected(kind);
        self.tally(kind).failed += 1;
        self.fault(category);
        self.release(room);
    }

    /// A user leaves its seat or queue place (it sent `leave`, the server closed, the
    /// connection dropped, or the run ended). `abandon` counts a queued user's giving up.
    pub(crate) fn departing(
        &mut self,
        kind: Kind,
        id: u64,
        room: u32,
        place: Place,
        abandon: bool,
        now: Instant,
    ) {
        match place {
            Place::Seated => {
                self.m.totals.left += 1;
                let r = &mut self.rooms[room as usize];
                if let Some(i) = r.seated.iter().position(|&u| u == id) {
                    r.seated.swap_remove(i);
                    self.seated_total -= 1;
                    if r.seated.is_empty() {
                        self.active_rooms -= 1;
                    }
                }
            }
            Place::Queued => {
                self.m.totals.abandoned += 1;
                self.queued_total = self.queued_total.saturating_sub(1);
                if kind == Kind::Window {
                    self.queued_window = self.queued_window.saturating_sub(1);
                }
                if abandon {
                    self.tally(kind).abandoned += 1;
                }
            }
        }
        if self.in_window(now) {
            self.m.counts.departures += 1;
        }
        self.departed.insert(id, now);
        self.release(room);
    }

    /// A queued user that had already sent `leave` received `joined`: the server seated
    /// it before it saw the leave, so the Worker counts a promotion and a seated departure.
    pub(crate) fn promoted_while_leaving(&mut self, now: Instant) {
        self.m.totals.promoted += 1;
        self.m.totals.abandoned = self.m.totals.abandoned.saturating_sub(1);
        self.m.totals.left += 1;
        if self.in_window(now) {
            self.m.counts.promotions += 1;
        }
    }

    // -- messages ----------------------------------------------------------------------------

    /// A chat message is about to be written: its expected recipients are the room's other
    /// seated members as the driver knows them now.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn message_sent(
        &mut self,
        sender: u64,
        room: u32,
        object: u32,
        seq: u64,
        intended: Instant,
        sent: Instant,
    ) {
        self.m.totals.messages_sent += 1;
        self.m.counts.messages_sent += 1;
        self.m.per_object[object as usize].messages_sent += 1;
        self.m
            .hists
            .send_lag
            .record_ns(sent.saturating_duration_since(intended).as_nanos() as u64);
        let expected: Vec<u64> = self.rooms[room as usize]
            .seated
            .iter()
            .copied()
            .filter(|&u| u != sender)
            .collect();
        let n = expected.len();
        self.m.deliveries.expected += n as u64;
        self.outstanding += n as u64;
        let index = self.m.message_offsets.len();
        let at = self.plan_offset(sent);
        self.m.message_offsets.push(at);
        let rec = Record {
            index,
            intended,
            sent,
            got: vec![false; n],
            expected,
            extra: Vec::new(),
            remaining: n as u32,
            failed: false,
        };
        if n == 0 {
            self.done.push_back((sent, (sender, seq)));
        }
        self.records.insert((sender, seq), rec);
        // Forget completed records after a while (duplicates later than that count as
        // unknown deliveries).
        while let Some(&(t, key)) = self.done.front() {
            if sent.saturating_duration_since(t) < KEEP_DONE {
                break;
            }
            self.done.pop_front();
            self.records.remove(&key);
        }
    }

    /// The message could not be written, or was refused: nobody is expected to get it.
    pub(crate) fn message_failed(&mut self, sender: u64, seq: u64) {
        self.m.counts.messages_failed += 1;
        if let Some(r) = self.records.get_mut(&(sender, seq)) {
            if !r.failed {
                r.failed = true;
                self.outstanding -= u64::from(r.remaining);
                self.m.deliveries.expected -= r.expected.len() as u64;
            }
        }
    }

    /// A `not_admitted` error frame: the Worker refused the latest message of this sender.
    pub(crate) fn not_admitted(&mut self, sender: u64, seq: u64) {
        self.m.totals.not_admitted += 1;
        if let Some(r) = self.records.get(&(sender, seq)) {
            self.m.message_offsets[r.index] = REFUSED;
        }
        self.message_failed(sender, seq);
    }

    /// A chat message frame reached `recipient` (on `object`).
    pub(crate) fn delivered(
        &mut self,
        recipient: u64,
        object: u32,
        from: Option<u64>,
        seq: u64,
        now: Instant,
    ) {
        self.m.totals.deliveries += 1;
        self.m.counts.deliveries += 1;
        self.m.per_object[object as usize].deliveries += 1;
        let Some(r) = from.and_then(|f| self.records.get_mut(&(f, seq))) else {
            self.m.deliveries.unknown += 1;
            return;
        };
        match r.expected.iter().position(|&u| u == recipient) {
            Some(i) if r.got[i] => {
                self.m.deliveries.duplicated += 1;
                return;
            }
            Some(i) => {
                r.got[i] = true;
                if !r.failed {
                    r.remaining -= 1;
                    // (0 once the deliveries were finalized: a late one is still counted.)
                    self.outstanding = self.outstanding.saturating_sub(1);
                    self.m.deliveries.received_expected += 1;
                }
                if r.remaining == 0 {
                    self.done.push_back((now, (from.unwrap_or(0), seq)));
                }
            }
            None if r.extra.contains(&recipient) => {
                self.m.deliveries.duplicated += 1;
                return;
            }
            None => {
                r.extra.push(recipient);
                self.m.deliveries.unexpected += 1;
            }
        }
        let (intended, sent) = (r.intended, r.sent);
        let h = &mut self.m.hists;
        h.message
            .record_ns(now.saturating_duration_since(intended).as_nanos() as u64);
        h.message_from_send
            .record_ns(now.saturating_duration_since(sent).as_nanos() as u64);
    }

    /// Count the deliveries that never came: a recipient that was still connected and never
    /// got the message is `missed_connected`; one that started to leave after the message was
    /// sent (its leave and the message raced at the server) is `missed_departing`.
    pub(crate) fn finalize_deliveries(&mut self) {
        let mut connected = 0;
        let mut departing = 0;
        for r in self.records.values() {
            if r.failed || r.remaining == 0 {
                continue;
            }
            for (i, &u) in r.expected.iter().enumerate() {
                if r.got[i] {
                    continue;
                }
                match self.departed.get(&u) {
                    Some(_) => departing += 1,
                    None => connected += 1,
                }
            }
        }
        self.m.deliveries.missed_connected = connected;
        self.m.deliveries.missed_departing = departing;
        self.outstanding = 0;
    }

    /// End of the measured window, at `now` (its planned end, or earlier when the run
    /// stopped): close the books of object time, note who is still waiting or connecting.
    /// What happens after `now` is not the window's.
    pub(crate) fn close_books(&mut self, now: Instant) {
        if self.closed_books {
            return;
        }
        self.closed_books = true;
        let span = self.plan_offset(now);
        self.m.covered_ns = span;
        if self.end.is_some_and(|end| now < end) {
            self.end = Some(now);
        }
        self.m.meter.close_books(span);
        self.m.window.still_waiting = self.queued_window;
        self.m.window.still_connecting = self.connecting[Kind::Window as usize];
    }
}
