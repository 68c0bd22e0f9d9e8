//! Des: the discrete-event simulation of a scenario under one strategy.
//!
//! Time is integer nanoseconds; events at the same time run in the order they were scheduled
//! (the event list orders by `(time, sequence)`), and every random draw comes from a seeded
//! stream, so a scenario and a seed give the same report byte for byte.
//!
//! What one session does (see DESIGN.md, "The rooms model"):
//! 1. it arrives (the workload plan), its WebSocket upgrade passes the Worker (1 request, its
//!    CPU) and reaches the room object after client→edge and edge→object latencies;
//! 2. the room object accepts the socket (a billed WebSocket connect) and decides admission
//!    itself — or, when global limits exist outside the single-object design, asks the lobby
//!    object by RPC, which puts one more FIFO server on the join path;
//! 3. admitted, the user sends messages at the planned times; each message queues at its room
//!    object, then is delivered to every other member of the room (latency per recipient);
//! 4. the user leaves after its session length; a queued user gives up when its patience
//!    runs out. Each departure may promote queued users.
//!
//! Every billable platform event (the Worker request, an accepted connect, a message and its
//! fan-out, a close, a lobby RPC or change of its state, each served event's service time, a
//! socket opening or closing) is fed to the [`Meter`], which alone turns them into usage.

use std::collections::BTreeSet;

pub use crate::events::EventList;
use crate::meter::{BusyBasis, EventCosts, Meter, Setup, Work};
use crate::metrics::{Gauges, Latency, TimeSeries};
use crate::model::admission::{Admission, JoinOutcome, LeaveOutcome, Promotion, RejectReason};
use crate::model::object::{Object, OverloadRule, Served};
use crate::model::strategy::Strategy;
use crate::report::{RunUsage, SessionCounts};
use crate::scenario::{Runtime, Scenario, NS_PER_SEC};
use crate::workload::{room_name, stream, streams, Rng, RoomPick, Sampler, SessionPlan, Workload};

// ---------------------------------------------------------------------------------------------
// The simulation

/// A handle to a session slot; `gen` detects events for a session that is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sid {
    slot: u32,
    gen: u32,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// The next planned session starts connecting.
    Arrive,
    /// A session's upgrade reaches its room object.
    ConnectAtObject(Sid),
    /// The room object's join RPC reaches the lobby.
    LobbyJoin(Sid),
    /// The room object's leave RPC reaches the lobby.
    LobbyLeave(Sid),
    /// The client learns it has a seat.
    Seated(Sid),
    /// The client learns it is queued (its patience starts).
    QueuedAnswer(Sid),
    /// The client learns it was rejected.
    RejectedAnswer(Sid),
    /// A message reaches the room object.
    MessageAtObject {
        sender: Sid,
        room: u32,
        intended: u64,
    },
    /// The session's time is up: the client closes.
    End(Sid),
    /// A queued client gives up.
    Patience(Sid),
    /// A close reaches the room object.
    CloseAtObject(Sid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Queued,
    Joining,
    Seated,
    Abandoning,
    Closing,
    /// The slot is free.
    Free,
}

/// What a session's every message reads and writes, in one cache line: at a million
/// sessions the slots are far larger than the caches, and each message costs one miss on its
/// sender's line. The rest of the session is in [`Details`].
#[derive(Debug)]
#[repr(align(64))]
struct Session {
    /// Its message stream.
    rng: Rng,
    /// One-way latency between this user and the room object (client↔edge plus edge↔object),
    /// drawn once per session: a user's place on the network does not change mid-session.
    path_ns: u64,
    leave_at: u64,
    gen: u32,
    room: u32,
    phase: Phase,
}

const _: () = assert!(std::mem::size_of::<Session>() == 64);

/// The rest of a session, read on its arrival, admission and departure only.
#[derive(Debug)]
struct Details {
    arrival: u64,
    length: u64,
    patience: Option<u64>,
    was_queued: bool,
    /// In progress at the stretch's start ([`Stretch`]): its planned end and next message.
    carried: Option<crate::drive::plan::Carried>,
}

/// One planned session to execute: the plan's, or one carried into a [`Stretch`].
#[derive(Debug)]
struct Entry {
    plan: SessionPlan,
    carried: Option<crate::drive::plan::Carried>,
}

/// The stretch of a seeded plan a `dosim drive` executes ([`crate::drive::plan`]), to be
/// simulated on the drive's own clock: sessions in progress at `from` connect during the
/// ramp, spread over its first 80% (as the driver connects them), the window starts at
/// `t0` = the ramp's end and lasts `duration`; plan time maps to simulated time as the
/// drive maps it to real time (`t0 + (plan − from) / speedup`).
#[derive(Debug, Clone, Copy)]
pub struct Stretch<'p> {
    /// The drive's plan.
    pub plan: &'p crate::drive::plan::DrivePlan,
    /// The ramp before the window (the drive's, see `drive::ramp_length`).
    pub ramp: std::time::Duration,
    /// Which replication: the platform's random stream (latency and service draws); the
    /// plan itself is the scenario seed's.
    pub replica: u64,
}

/// The clock of a simulated [`Stretch`].
#[derive(Debug, Clone, Copy)]
struct Clock {
    time: crate::drive::plan::TimeMap,
    t0: u64,
}

impl Clock {
    fn to_sim(self, plan_ns: u64) -> u64 {
        self.t0 + self.time.real_at(plan_ns).as_nanos() as u64
    }
    fn to_plan(self, sim_ns: u64) -> u64 {
        if sim_ns > self.t0 {
            self.time
                .plan_at(std::time::Duration::from_nanos(sim_ns - self.t0))
        } else {
            self.time.from_ns
        }
    }
}

/// The platform's random draws.
#[derive(Debug)]
struct Draws {
    rng: Rng,
    client_edge: Sampler,
    edge_object: Sampler,
    object_object: Sampler,
    connect: Sampler,
    message: Sampler,
    per_recipient: u64,
    rpc: Sampler,
    close: Sampler,
    jitter: Sampler,
}

impl Draws {
    /// One traversal of a session's path: its fixed latency plus per-message jitter.
    #[inline]
    fn hop(&mut self, path_ns: u64) -> u64 {
        match self.jitter {
            Sampler::Constant(j) => path_ns + j,
            ref j => path_ns + j.sample(&mut self.rng),
        }
    }
    #[inline]
    fn client_edge(&mut self) -> u64 {
        self.client_edge.sample(&mut self.rng)
    }
    #[inline]
    fn edge_object(&mut self) -> u64 {
        self.edge_object.sample(&mut self.rng)
    }
    #[inline]
    fn object_object(&mut self) -> u64 {
        self.object_object.sample(&mut self.rng)
    }
    #[inline]
    fn service(&mut self, kind: Work) -> u64 {
        let s = match kind {
            Work::Connect => &self.connect,
            Work::Message => &self.message,
            Work::Rpc => &self.rpc,
            Work::Close => &self.close,
        };
        s.sample(&mut self.rng)
    }
}

/// Everything a finished simulation measured, before pricing.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Session outcomes (of a [`Stretch`]: the sessions arriving in its window).
    pub sessions: SessionCounts,
    /// Of a [`Stretch`]: the outcomes of the sessions carried into it (empty otherwise).
    pub carried: SessionCounts,
    /// Of a [`Stretch`]: the meter's counts of events from `t0` on (the drive's window
    /// usage counts events of the window and deliveries of its messages).
    pub window_counts: crate::meter::Counts,
    /// Of a [`Stretch`]: the billable usage from `t0` on (under `accept()`, object time is
    /// the whole run's, ramp included).
    pub window_usage: crate::usage::Usage,
    /// Connect latency.
    pub connect: Latency,
    /// Admission wait.
    pub admission_wait: Latency,
    /// Per-recipient message delivery latency.
    pub message: Latency,
    /// Object queueing delay.
    pub object_queue: Latency,
    /// Messages sent by users.
    pub messages_sent: u64,
    /// Messages accepted by objects.
    pub messages_accepted: u64,
    /// Messages refused (overloaded).
    pub messages_failed: u64,
    /// Deliveries.
    pub deliveries: u64,
    /// Usage and peaks.
    pub usage: RunUsage,
    /// State over time.
    pub timeseries: TimeSeries,
    /// Events processed (for benchmarks).
    pub events: u64,
}

/// A running simulation. Build one with [`Simulation::new`] and call [`Simulation::run`].
pub struct Simulation<'a> {
    scenario: &'a Scenario,
    workload: &'a Workload,
    plan: std::iter::Peekable<Box<dyn Iterator<Item = Entry> + 'a>>,
    /// Set when simulating a [`Stretch`].
    clock: Option<Clock>,
    /// All objects' work on one server (`platform.runtime = "local-workerd"`).
    thread: Option<Object>,
    events: EventList<Event>,
    draws: Draws,
    admission: Admission,
    use_lobby: bool,
    objects: Vec<Object>,
    lobby: Object,
    rule: OverloadRule,
    sessions: Vec<Session>,
    /// Indexed like `sessions`.
    details: Vec<Details>,
    free_slots: Vec<u32>,
    /// Per room: its object, claimed seats and seated users.
    rooms: Vec<Room>,
    /// Rooms whose claimed seats are below capacity.
    rooms_with_space: BTreeSet<u32>,
    capacity: u32,
    max_sockets: u32,
    active_objects: u32,
    end: u64,
    out: Outcome,
    next_sample: u64,
    sample_every: u64,
    /// Billable usage: every platform event is fed to it.
    meter: Meter,
    /// What events cost (the Worker's CPU per request; busy time is drawn per event).
    costs: EventCosts,
    object_used: Vec<bool>,
    lobby_used: bool,
}

/// One room, as a message to it needs it (one slot read per message).
#[derive(Debug, Clone)]
struct Room {
    /// The room's object.
    object: u32,
    /// Seats claimed by sessions on their way in or seated (for "fill").
    claimed: u32,
    /// Its seated users as the fan-out needs them, in the admission's seated order (kept in
    /// step with it: [`Admission::seated_in`] is the same list of ids). Each carries its path
    /// latency, so a message's deliveries read this list, not every recipient's session.
    seated: Vec<Member>,
}

/// A seated user in its room's list ([`Room::seated`]).
#[derive(Debug, Clone, Copy)]
struct Member {
    /// The admission's id of the session ([`Simulation::uid`]).
    uid: u64,
    /// The session's path latency (its `path_ns`).
    path_ns: u64,
}

impl<'a> Simulation<'a> {
    /// A simulation of `scenario` under `strategy`, executing `workload` (built from the same
    /// scenario).
    pub fn new(scenario: &'a Scenario, strategy: Strategy, workload: &'a Workload) -> Self {
        let plan: Box<dyn Iterator<Item = Entry> + 'a> =
            Box::new(workload.sessions().map(|plan| Entry {
                plan,
                carried: None,
            }));
        Self::build(scenario, strategy, workload, plan, None, 0)
    }

    /// A simulation of the stretch of `workload`'s plan a drive executes (see [`Stretch`]).
    pub fn of_stretch(
        scenario: &'a Scenario,
        strategy: Strategy,
        workload: &'a Workload,
        stretch: Stretch<'_>,
    ) -> Self {
        let time = stretch.plan.time;
        let ramp = stretch.ramp.as_nanos() as u64;
        let clock = Clock { time, t0: ramp };
        let scale = |p: Option<u64>| p.map(|p| time.real_len(p).as_nanos() as u64);
        let spread = stretch.ramp.mul_f64(0.8);
        let n = stretch.plan.carried.len().max(1) as u32;
        let mut entries = Vec::new();
        for (i, c) in stretch.plan.carried.iter().enumerate() {
            let mut plan = c.plan.clone();
            plan.arrival_ns = (spread / n * i as u32).as_nanos() as u64;
            plan.patience_ns = scale(plan.patience_ns);
            entries.push(Entry {
                plan,
                carried: c.carried.clone(),
            });
        }
        for a in &stretch.plan.arrivals {
            let mut plan = a.plan.clone();
            plan.arrival_ns = clock.to_sim(plan.arrival_ns);
            plan.patience_ns = scale(plan.patience_ns);
            entries.push(Entry {
                plan,
                carried: None,
            });
        }
        let mut sim = Self::build(
            scenario,
            strategy,
            workload,
            Box::new(entries.into_iter()),
            Some(clock),
            stretch.replica,
        );
        sim.end = ramp + time.duration.as_nanos() as u64;
        sim
    }

    fn build(
        scenario: &'a Scenario,
        strategy: Strategy,
        workload: &'a Workload,
        plan: Box<dyn Iterator<Item = Entry> + 'a>,
        clock: Option<Clock>,
        replica: u64,
    ) -> Self {
        let p = &scenario.platform;
        let rooms = scenario.rooms.count;
        let room_names: Vec<String> = (0..rooms).map(room_name).collect();
        let room_object: Vec<u32> = (0..rooms)
            .map(|r| strategy.object_of(r, &room_names[r as usize]))
            .collect();
        let objects = strategy
            .object_count(rooms)
            .max(room_object.iter().copied().max().map_or(1, |m| m + 1));
        let limits = scenario.admission_limits();
        let use_lobby = strategy != Strategy::Single
            && (limits.max_active_rooms.is_some() || limits.max_total_connections.is_some());
        let capacity = limits.room_capacity;
        let sample_every = scenario.window.timeseries_interval.0;
        Simulation {
            scenario,
            workload,
            plan: plan.peekable(),
            clock,
            thread: (p.runtime == Runtime::LocalWorkerd).then(Object::default),
            events: EventList::new(),
            draws: Draws {
                rng: stream(scenario.seed, streams::PLATFORM, replica),
                client_edge: Sampler::new(&scenario.network.client_edge),
                edge_object: Sampler::new(&scenario.network.edge_object),
                object_object: Sampler::new(&scenario.network.object_object),
                connect: Sampler::new(&p.service.connect),
                message: Sampler::new(&p.service.message),
                per_recipient: p.service.per_recipient.0,
                rpc: Sampler::new(&p.service.rpc),
                close: Sampler::new(&p.service.close),
                jitter: Sampler::new(&scenario.network.jitter),
            },
            admission: Admission::new(limits),
            use_lobby,
            objects: vec![Object::default(); objects as usize],
            lobby: Object::default(),
            rule: OverloadRule {
                max_queue_depth: p.overload.max_queue_depth,
                max_queue_delay_ns: p.overload.max_queue_delay.map(|d| d.0),
            },
            sessions: Vec::new(),
            details: Vec::new(),
            free_slots: Vec::new(),
            rooms: room_object
                .iter()
                .map(|&object| Room {
                    object,
                    claimed: 0,
                    seated: Vec::new(),
                })
                .collect(),
            rooms_with_space: (0..rooms).collect(),
            capacity,
            max_sockets: p.max_sockets_per_object,
            active_objects: 0,
            end: scenario.window.length.0,
            out: Outcome {
                timeseries: TimeSeries::new(sample_every),
                ..Outcome::default()
            },
            next_sample: sample_every,
            sample_every,
            meter: Meter::new(Setup::of(scenario, objects, use_lobby, BusyBasis::Drawn)),
            costs: EventCosts::from_scenario(scenario, None),
            object_used: vec![false; objects as usize],
            lobby_used: false,
        }
    }

    /// Run to the end of the window and return what was measured.
    pub fn run(mut self) -> Outcome {
        if let Some(first) = self.plan.peek() {
            self.events.schedule(first.plan.arrival_ns, Event::Arrive);
        }
        let mut t0_counts = None;
        while let Some((now, ev)) = self.events.pop() {
            if let Some(c) = self.clock {
                if now >= c.t0 && t0_counts.is_none() {
                    t0_counts = Some((self.meter.counts(), self.meter.usage(&self.costs).usage));
                }
            }
            if now >= self.end {
                // A stretch, as a drive: nothing new starts after the window (arrivals,
                // departures, patience), but what is in flight is served (the grace).
                if self.clock.is_none() {
                    break; // what is still pending happens after the window
                }
                if matches!(ev, Event::Arrive | Event::End(_) | Event::Patience(_)) {
                    continue;
                }
                self.out.events += 1;
                self.handle(now, ev);
                continue;
            }
            while self.next_sample <= now {
                self.sample();
            }
            self.out.events += 1;
            self.handle(now, ev);
        }
        while self.next_sample <= self.end {
            self.sample();
        }
        let t0_usage = t0_counts.as_ref().map(|(_, u)| u.clone());
        if self.clock.is_some() {
            let before = t0_counts.map(|(c, _)| c).unwrap_or_default();
            let after = self.meter.counts();
            self.out.window_counts = crate::meter::Counts {
                worker_requests: after.worker_requests - before.worker_requests,
                connects: after.connects - before.connects,
                messages_in: after.messages_in - before.messages_in,
                messages_out: after.messages_out - before.messages_out,
                closes: after.closes - before.closes,
                lobby_rpcs: after.lobby_rpcs - before.lobby_rpcs,
                lobby_changes: after.lobby_changes - before.lobby_changes,
                joins: after.joins - before.joins,
            };
        }
        self.finish();
        if let Some(b) = t0_usage.filter(|_| self.clock.is_some()) {
            let a = &self.out.usage.billable;
            self.out.window_usage = crate::usage::Usage {
                worker_requests: a.worker_requests - b.worker_requests,
                worker_cpu_ms: a.worker_cpu_ms - b.worker_cpu_ms,
                do_requests: a.do_requests - b.do_requests,
                do_websocket_connects: a.do_websocket_connects - b.do_websocket_connects,
                do_websocket_messages_in: a.do_websocket_messages_in - b.do_websocket_messages_in,
                do_websocket_messages_out: a.do_websocket_messages_out
                    - b.do_websocket_messages_out,
                do_active_seconds: a.do_active_seconds - b.do_active_seconds,
                do_idle_tail_seconds: a.do_idle_tail_seconds - b.do_idle_tail_seconds,
                sqlite_rows_read: a.sqlite_rows_read - b.sqlite_rows_read,
                sqlite_rows_written: a.sqlite_rows_written - b.sqlite_rows_written,
                sqlite_stored_gb_months: a.sqlite_stored_gb_months,
            };
        }
        self.out
    }

    fn sample(&mut self) {
        let g = Gauges {
            connections: self.admission.seated_total(),
            active_objects: self.active_objects,
            queue_length: self.admission.queued_total(),
            active_rooms: self.admission.active_rooms(),
        };
        let start = (self.next_sample - self.sample_every) as f64 / NS_PER_SEC as f64;
        self.out.timeseries.push(start, g);
        self.next_sample += self.sample_every;
    }

    fn handle(&mut self, now: u64, ev: Event) {
        match ev {
            Event::Arrive => self.arrive(now),
            Event::ConnectAtObject(s) => self.connect_at_object(now, s),
            Event::LobbyJoin(s) => self.lobby_join(now, s),
            Event::LobbyLeave(s) => self.lobby_leave(now, s),
            Event::Seated(s) => self.seated(now, s),
            Event::QueuedAnswer(s) => self.queued_answer(now, s),
            Event::RejectedAnswer(s) => self.rejected_answer(now, s),
            Event::MessageAtObject {
                sender,
                room,
                intended,
            } => self.message_at_object(now, sender, room, intended),
            Event::End(s) => self.end_session(now, s),
            Event::Patience(s) => self.patience(now, s),
            Event::CloseAtObject(s) => self.close_at_object(now, s),
        }
    }

    fn live(&self, s: Sid) -> bool {
        self.sessions[s.slot as usize].gen == s.gen
    }

    fn sess(&mut self, s: Sid) -> &mut Session {
        &mut self.sessions[s.slot as usize]
    }

    fn details(&mut self, s: Sid) -> &mut Details {
        &mut self.details[s.slot as usize]
    }

    /// The object of session `s`'s room.
    fn object(&self, s: Sid) -> u32 {
        self.rooms[self.sessions[s.slot as usize].room as usize].object
    }

    /// The admission module's id of a session: its slot and generation, unique among the
    /// sessions present, and a direct index back into the slots.
    fn uid(s: Sid) -> u64 {
        (u64::from(s.slot) << 32) | u64::from(s.gen)
    }

    fn sid(uid: u64) -> Sid {
        Sid {
            slot: (uid >> 32) as u32,
            gen: uid as u32,
        }
    }

    /// Latency of one traversal between session `s` and its room object.
    fn hop(&mut self, s: Sid) -> u64 {
        let path = self.sessions[s.slot as usize].path_ns;
        self.draws.hop(path)
    }

    // -- arrival and join ---------------------------------------------------------------------

    fn arrive(&mut self, now: u64) {
        let plan = self
            .plan
            .next()
            .expect("an Arrive event has a planned session");
        if let Some(next) = self.plan.peek() {
            self.events.schedule(next.plan.arrival_ns, Event::Arrive);
        }
        let Entry { plan, carried } = plan;
        let room = self.choose_room(&plan);
        self.claim(room, 1);
        let sid = self.new_session(&plan, room, now);
        self.details(sid).carried = carried;
        self.counts(sid).arrived += 1;
        // The Worker: one request and its CPU, then on to the object.
        self.meter.worker_request();
        let cpu_ns = (self.scenario.platform.worker_cpu_ms_per_connect * 1e6) as u64;
        let hop = self.hop(sid);
        let travel = match &mut self.thread {
            // The Worker's CPU queues on the one thread with every object's work.
            Some(t) => match t.serve(now, cpu_ns, OverloadRule::default()) {
                Served::Done { done_ns, .. } => done_ns - now + hop,
                Served::Overloaded => cpu_ns + hop,
            },
            None => cpu_ns + hop,
        };
        self.events
            .schedule(now + travel, Event::ConnectAtObject(sid));
    }

    fn choose_room(&self, plan: &SessionPlan) -> u32 {
        match plan.room {
            RoomPick::Room(r) => r,
            RoomPick::Fill { fallback } => {
                self.rooms_with_space.first().copied().unwrap_or(fallback)
            }
        }
    }

    fn claim(&mut self, room: u32, delta: i32) {
        let c = &mut self.rooms[room as usize].claimed;
        *c = c.saturating_add_signed(delta);
        if *c < self.capacity {
            self.rooms_with_space.insert(room);
        } else {
            self.rooms_with_space.remove(&room);
        }
    }

    fn new_session(&mut self, plan: &SessionPlan, room: u32, now: u64) -> Sid {
        let path_ns = self.draws.client_edge() + self.draws.edge_object();
        let session = Session {
            gen: 0,
            path_ns,
            room,
            phase: Phase::Connecting,
            leave_at: u64::MAX,
            rng: plan.rng.clone(),
        };
        let details = Details {
            arrival: now,
            length: plan.length_ns,
            patience: plan.patience_ns,
            was_queued: false,
            carried: None,
        };
        let slot = if let Some(slot) = self.free_slots.pop() {
            let gen = self.sessions[slot as usize].gen.wrapping_add(1);
            self.sessions[slot as usize] = Session { gen, ..session };
            self.details[slot as usize] = details;
            slot
        } else {
            self.sessions.push(session);
            self.details.push(details);
            (self.sessions.len() - 1) as u32
        };
        Sid {
            slot,
            gen: self.sessions[slot as usize].gen,
        }
    }

    fn free_session(&mut self, s: Sid) {
        let room = {
            let x = &mut self.sessions[s.slot as usize];
            x.gen = x.gen.wrapping_add(1);
            x.phase = Phase::Free;
            x.room
        };
        self.claim(room, -1);
        self.free_slots.push(s.slot);
    }

    /// The session counts `s` belongs to (a carried session's apart).
    fn counts(&mut self, s: Sid) -> &mut SessionCounts {
        if self.details[s.slot as usize].carried.is_some() {
            &mut self.out.carried
        } else {
            &mut self.out.sessions
        }
    }

    /// The next planned message after `after` (on the stretch's clock, if any).
    fn next_message(&mut self, slot: u32, after: u64) -> u64 {
        let x = &mut self.sessions[slot as usize];
        match self.clock {
            None => self.workload.next_message(&mut x.rng, after),
            Some(c) => c.to_sim(self.workload.next_message(&mut x.rng, c.to_plan(after))),
        }
    }

    /// Offer a request to an object (index `None` = the lobby) and account for it.
    fn serve(&mut self, now: u64, object: Option<u32>, work: Work, service: u64) -> Served {
        self.out.usage.object_requests += 1;
        let o = match object {
            Some(i) => {
                self.object_used[i as usize] = true;
                &mut self.objects[i as usize]
            }
            None => {
                self.lobby_used = true;
                &mut self.lobby
            }
        };
        let o = self.thread.as_mut().unwrap_or(o);
        let r = o.serve(now, service, self.rule);
        match r {
            Served::Done { wait_ns, .. } => {
                self.meter.busy(work, service);
                self.out.object_queue.record_ns(wait_ns);
            }
            Served::Overloaded => self.out.usage.overload_errors += 1,
        }
        r
    }

    fn connect_at_object(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let object = self.object(s);
        let service = self.draws.service(Work::Connect);
        match self.serve(now, Some(object), Work::Connect, service) {
            Served::Overloaded => {
                let back = self.hop(s);
                self.reject(now + back, s, RejectReason::Overloaded, false);
            }
            Served::Done { done_ns, .. } if self.meter.sockets(object) >= self.max_sockets => {
                let back = self.hop(s);
                self.reject(
                    done_ns.saturating_add(back),
                    s,
                    RejectReason::ObjectSocketLimit,
                    true,
                );
            }
            Served::Done { done_ns, .. } => {
                self.meter.connect();
                if self.meter.socket_opened(object, now) {
                    self.active_objects += 1;
                    self.out.usage.peak_active_objects = self
                        .out
                        .usage
                        .peak_active_objects
                        .max(u64::from(self.active_objects));
                }
                if self.use_lobby {
                    let hop = self.draws.object_object();
                    self.events
                        .schedule(done_ns.saturating_add(hop), Event::LobbyJoin(s));
                } else {
                    let back = self.hop(s);
                    self.decide(done_ns.saturating_add(back), s);
                }
            }
        }
    }

    fn lobby_join(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let service = self.draws.service(Work::Rpc);
        self.meter.lobby_rpc();
        match self.serve(now, None, Work::Rpc, service) {
            Served::Overloaded => {
                let back = self.draws.object_object() + self.hop(s);
                // The room object closes the socket it had accepted.
                let object = self.object(s);
                self.close_socket(now, object);
                self.reject(now + back, s, RejectReason::Overloaded, true);
            }
            Served::Done { done_ns, .. } => {
                let back = self.draws.object_object() + self.hop(s);
                self.decide(done_ns.saturating_add(back), s);
            }
        }
    }

    /// Run admission for `s`; the client hears the answer at `answer_at`.
    fn decide(&mut self, answer_at: u64, s: Sid) {
        let room = self.sess(s).room;
        let outcome = self.admission.join(Self::uid(s), room);
        if !matches!(outcome, JoinOutcome::Rejected(_)) {
            self.lobby_rows(1);
        }
        match outcome {
            JoinOutcome::Admitted => {
                self.take_seat(s, room);
                self.sess(s).phase = Phase::Joining;
                self.events.schedule(answer_at, Event::Seated(s));
            }
            JoinOutcome::Queued { .. } => {
                self.sess(s).phase = Phase::Queued;
                self.details(s).was_queued = true;
                self.counts(s).queued += 1;
                self.events.schedule(answer_at, Event::QueuedAnswer(s));
            }
            JoinOutcome::Rejected(reason) => {
                // The room object closes the socket it accepted.
                let object = self.object(s);
                self.close_socket(self.events.now(), object);
                self.reject(answer_at, s, reason, true);
            }
        }
        self.track_peaks();
    }

    fn reject(&mut self, answer_at: u64, s: Sid, reason: RejectReason, answered: bool) {
        self.counts(s).rejected += 1;
        *self
            .counts(s)
            .rejected_by_reason
            .entry(reason.as_str().to_string())
            .or_default() += 1;
        self.sess(s).phase = Phase::Closing;
        if answered {
            self.events.schedule(answer_at, Event::RejectedAnswer(s));
        } else {
            self.free_session(s);
        }
    }

    fn rejected_answer(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let arrival = self.details(s).arrival;
        self.out.connect.record_ns(now - arrival);
        self.free_session(s);
    }

    fn queued_answer(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let (arrival, patience, phase) = {
            let x = &self.details[s.slot as usize];
            (x.arrival, x.patience, self.sessions[s.slot as usize].phase)
        };
        self.out.connect.record_ns(now - arrival);
        if phase == Phase::Queued || phase == Phase::Joining {
            if let Some(p) = patience {
                // A drive's queued users start their patience with the window.
                let from = self.clock.map_or(now, |c| now.max(c.t0));
                self.events
                    .schedule(from.saturating_add(p), Event::Patience(s));
            }
        }
    }

    fn seated(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let x = &mut self.sessions[s.slot as usize];
        if x.phase != Phase::Joining {
            return; // gave up before the seat arrived; the close frees it
        }
        x.phase = Phase::Seated;
        let d = &self.details[s.slot as usize];
        let (arrival, was_queued, length) = (d.arrival, d.was_queued, d.length);
        let (leave_at, first) = match (self.clock, d.carried.clone()) {
            (None, _) => (
                now.saturating_add(length),
                Some(self.next_message(s.slot, now)),
            ),
            // As the driver seats them (drive::run, `seat`).
            (Some(c), Some(k)) if !was_queued => {
                (c.to_sim(k.end_ns), k.next_message_ns.map(|m| c.to_sim(m)))
            }
            (Some(c), carried) => {
                let plan_now = c.to_plan(now);
                let left = carried.map_or(length, |k| k.end_ns.saturating_sub(c.time.from_ns));
                let leave = c.to_sim(plan_now.saturating_add(left));
                let x = &mut self.sessions[s.slot as usize];
                let next = c.to_sim(self.workload.next_message(&mut x.rng, plan_now));
                (leave, Some(next))
            }
        };
        self.sessions[s.slot as usize].leave_at = leave_at;
        let carried = self.details[s.slot as usize].carried.is_some();
        if !was_queued {
            self.out.connect.record_ns(now - arrival);
        } else {
            self.counts(s).admitted_from_queue += 1;
        }
        self.counts(s).admitted += 1;
        if !(carried && self.clock.is_some()) {
            self.out.admission_wait.record_ns(now - arrival);
        }
        self.meter.joined();
        self.events.schedule(leave_at, Event::End(s));
        if let Some(first) = first.filter(|&f| f < leave_at) {
            self.send(first, s);
        }
    }

    // -- messages ----------------------------------------------------------------------------

    /// Send the session's message planned for `intended`: it reaches the room object one hop
    /// later. The sender's next message is scheduled when this one arrives, which saves an
    /// event per message and keeps one sender's messages in order, as TCP does (an arrival
    /// computed earlier than the previous one is clamped to it).
    fn send(&mut self, intended: u64, s: Sid) {
        if self.clock.is_some() && intended >= self.end {
            return; // a drive sends nothing after its window
        }
        let room = self.sessions[s.slot as usize].room;
        let travel = self.hop(s);
        self.events.schedule(
            intended + travel,
            Event::MessageAtObject {
                sender: s,
                room,
                intended,
            },
        );
    }

    fn message_at_object(&mut self, now: u64, s: Sid, room: u32, intended: u64) {
        self.out.messages_sent += 1;
        // At scale the sender's slot and the room's are both cache misses: both are read
        // before either is used, so that the two loads overlap.
        let live = self.live(s);
        let sender = Self::uid(s);
        let r = &self.rooms[room as usize];
        let object = r.object;
        // Recipients: everyone seated in the room when the message reaches the object, but
        // the sender.
        debug_assert!(r.seated.iter().map(|m| m.uid).eq(self
            .admission
            .seated_in(room)
            .iter()
            .copied()));
        let recipients = r.seated.iter().filter(|m| m.uid != sender).count() as u64;
        // Plan the sender's next message while it is still in the room.
        if live {
            let next = self.next_message(s.slot, intended);
            let x = &self.sessions[s.slot as usize];
            if x.phase == Phase::Seated && next < x.leave_at {
                self.send(next, s);
            }
        }
        let service = self
            .draws
            .service(Work::Message)
            .saturating_add(self.draws.per_recipient.saturating_mul(recipients));
        self.meter.message_in();
        match self.serve(now, Some(object), Work::Message, service) {
            Served::Overloaded => self.out.messages_failed += 1,
            Served::Done { done_ns, .. } => {
                self.out.messages_accepted += 1;
                for m in &self.rooms[room as usize].seated {
                    if m.uid != sender {
                        let back = self.draws.hop(m.path_ns);
                        self.out
                            .message
                            .record_ns(done_ns.saturating_add(back) - intended);
                    }
                }
                self.out.deliveries += recipients;
                self.meter.delivered(recipients);
                self.meter.message_stored(now);
            }
        }
    }

    // -- departures ---------------------------------------------------------------------------

    fn end_session(&mut self, now: u64, s: Sid) {
        if !self.live(s) || self.sess(s).phase != Phase::Seated {
            return;
        }
        self.sess(s).phase = Phase::Closing;
        let travel = self.hop(s);
        self.events.schedule(now + travel, Event::CloseAtObject(s));
    }

    fn patience(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let phase = self.sess(s).phase;
        if phase != Phase::Queued && phase != Phase::Joining {
            return;
        }
        self.sess(s).phase = Phase::Abandoning;
        self.counts(s).abandoned += 1;
        let travel = self.hop(s);
        self.events.schedule(now + travel, Event::CloseAtObject(s));
    }

    fn close_at_object(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let object = self.object(s);
        let service = self.draws.service(Work::Close);
        // A close is not a billed request, but the object spends time on it; it is never
        // refused (the socket is gone either way).
        self.meter.close();
        let done = match self.serve(now, Some(object), Work::Close, service) {
            Served::Done { done_ns, .. } => done_ns,
            Served::Overloaded => now,
        };
        self.close_socket(now, object);
        if self.use_lobby {
            let hop = self.draws.object_object();
            self.events
                .schedule(done.saturating_add(hop), Event::LobbyLeave(s));
        } else {
            self.leave(done, s);
        }
    }

    fn lobby_leave(&mut self, now: u64, s: Sid) {
        if !self.live(s) {
            return;
        }
        let service = self.draws.service(Work::Rpc);
        self.meter.lobby_rpc();
        let done = match self.serve(now, None, Work::Rpc, service) {
            Served::Done { done_ns, .. } => done_ns,
            // A lost leave would leak a seat forever; the Worker retries, so model it as
            // served late rather than lost.
            Served::Overloaded => now + service,
        };
        self.leave(done, s);
    }

    /// Free the session's seat or queue place at time `at` and notify promoted users.
    fn leave(&mut self, at: u64, s: Sid) {
        let outcome = self.admission.leave(Self::uid(s));
        if matches!(outcome, LeaveOutcome::Left { .. }) {
            self.leave_seat(s);
        }
        let promoted = match outcome {
            LeaveOutcome::Left { promoted } | LeaveOutcome::Abandoned { promoted } => {
                // The departure, and each promotion, change the lobby's stored state.
                self.lobby_rows(1 + promoted.len());
                promoted
            }
            LeaveOutcome::Unknown => Vec::new(),
        };
        self.free_session(s);
        for Promotion { user, room } in promoted {
            let p = Self::sid(user);
            self.take_seat(p, room);
            let mut notify = at.saturating_add(self.hop(p));
            if self.use_lobby {
                // The lobby tells the room object by RPC, which tells the client.
                self.meter.lobby_rpc();
                notify = notify.saturating_add(self.draws.object_object());
            }
            // A user who gave up already is not told: its close releases the seat.
            if self.sess(p).phase == Phase::Queued {
                self.sess(p).phase = Phase::Joining;
                self.events.schedule(notify, Event::Seated(p));
            }
        }
        self.track_peaks();
    }

    /// `s` was given a seat in `room` by the admission: it joins the room's list.
    fn take_seat(&mut self, s: Sid, room: u32) {
        let path_ns = self.sessions[s.slot as usize].path_ns;
        self.rooms[room as usize].seated.push(Member {
            uid: Self::uid(s),
            path_ns,
        });
    }

    /// Seated `s` left its room: it leaves the room's list (which keeps its order, as the
    /// admission's does).
    fn leave_seat(&mut self, s: Sid) {
        let room = self.sessions[s.slot as usize].room;
        let list = &mut self.rooms[room as usize].seated;
        let i = list
            .iter()
            .position(|m| m.uid == Self::uid(s))
            .expect("a seated user is in its room's list");
        list.remove(i);
    }

    /// `changes` changes of the lobby's state, each writing its storage rows (lobby mode
    /// only; the single object keeps its global view in memory with its sockets).
    fn lobby_rows(&mut self, changes: usize) {
        self.meter.lobby_changes(changes as u64);
    }

    fn close_socket(&mut self, now: u64, object: u32) {
        if self.meter.socket_closed(object, now) {
            self.active_objects -= 1;
        }
    }

    fn track_peaks(&mut self) {
        let u = &mut self.out.usage;
        u.peak_connections = u
            .peak_connections
            .max(u64::from(self.admission.seated_total()));
        u.peak_queue_length = u
            .peak_queue_length
            .max(u64::from(self.admission.queued_total()));
        u.peak_active_rooms = u
            .peak_active_rooms
            .max(u64::from(self.admission.active_rooms()));
    }

    fn finish(&mut self) {
        self.meter.close_books(self.end);
        let metered = self.meter.usage(&self.costs);
        let u = &mut self.out.usage;
        u.billable = metered.usage;
        u.lobby_rows_written = metered.lobby_rows_written;
        u.objects_created =
            self.object_used.iter().filter(|&&b| b).count() as u64 + u64::from(self.lobby_used);
        for (x, d) in self.sessions.iter().zip(&self.details) {
            let c = if d.carried.is_some() {
                &mut self.out.carried
            } else {
                &mut self.out.sessions
            };
            match x.phase {
                Phase::Queued => c.still_waiting += 1,
                Phase::Connecting | Phase::Joining => c.still_connecting += 1,
                _ => {}
            }
        }
    }
}

/// Simulate the stretch of `scenario`'s plan a drive executes, under `strategy` (see
/// [`Stretch`]).
pub fn simulate_stretch(scenario: &Scenario, strategy: Strategy, stretch: Stretch<'_>) -> Outcome {
    let workload = Workload::new(scenario);
    Simulation::of_stretch(scenario, strategy, &workload, stretch).run()
}

/// Simulate `scenario` under `strategy`.
pub fn simulate(scenario: &Scenario, strategy: Strategy) -> Outcome {
    let workload = Workload::new(scenario);
    Simulation::new(scenario, strategy, &workload).run()
}

/// Simulate `scenario` under `strategy` and assemble the priced report.
pub fn simulate_report(
    scenario: &Scenario,
    strategy: Strategy,
    pricing: &crate::pricing::PriceTable,
    extra_thresholds: &[crate::threshold::Threshold],
) -> crate::Result<crate::report::Report> {
    use crate::report::{LatencyBlock, MessageCounts, Parts, Provenance, Report};
    check_footprint(scenario, &[strategy])?;
    let o = simulate(scenario, strategy);
    let window = scenario.window.length.secs();
    let mut notes = vec![
        "latencies are simulated from the scenario's network and service-time distributions, not measured".to_string(),
        "the window starts with empty rooms (no warm-up), which lowers usage slightly in the first session length".to_string(),
    ];
    notes.push(if scenario.platform.hibernation {
        "Hibernation API: objects are billed only while handling events (sum of service times)".to_string()
    } else {
        "standard accept(): room objects are billed while any socket is connected; the idle tail is billed if the price table says so".to_string()
    });
    if strategy != Strategy::Single
        && (scenario.limits.max_active_rooms.is_some()
            || scenario.limits.max_total_connections.is_some())
    {
        notes.push("global limits outside the single-object design: a lobby object admits and releases (1 RPC per join, leave and promotion; platform.lobby_rows_written_per_change storage rows written per change of its state)".to_string());
    }
    let calibrated = crate::calibration::note(&scenario.platform);
    if let Some(n) = &calibrated {
        notes.insert(0, format!("service times and Worker CPU {n}"));
    }
    Report::assemble(Parts {
        mode: "simulate",
        scenario,
        strategy,
        pricing,
        window_seconds: window,
        provenance: Provenance {
            dosim_version: env!("CARGO_PKG_VERSION").to_string(),
            method: format!(
                "simulated: discrete-event simulation of a {} window, seed {}, {} events{}",
                scenario.window.length,
                scenario.seed,
                crate::report::human_count(o.events as f64),
                if calibrated.is_some() {
                    " (calibrated: see the notes)"
                } else {
                    ""
                }
            ),
            notes,
        },
        sessions: o.sessions,
        latency_ms: LatencyBlock {
            connect: o.connect.summary(),
            admission_wait: o.admission_wait.summary(),
            message: o.message.summary(),
            object_queue: o.object_queue.summary(),
            message_from_send: None,
            send_lag: None,
        },
        messages: MessageCounts {
            sent: o.messages_sent,
            accepted: o.messages_accepted,
            failed: o.messages_failed,
            delivered: o.deliveries,
            missed: 0,
            duplicated: 0,
        },
        usage: o.usage,
        projection: crate::projection::Projection::by_window(scenario.window.length),
        timeseries: o.timeseries,
        extra_thresholds,
    })
}

/// Simulate one scenario under several strategies, one replication each, on the machine's
/// cores (each run is independent and deterministic, so the result does not depend on
/// scheduling). [`crate::replicate::compare`] runs several replications of each.
pub fn compare(
    scenario: &Scenario,
    strategies: &[Strategy],
    pricing: &crate::pricing::PriceTable,
    extra_thresholds: &[crate::threshold::Threshold],
) -> crate::Result<Vec<crate::report::Report>> {
    crate::replicate::compare(
        scenario,
        strategies,
        pricing,
        extra_thresholds,
        &crate::replicate::Plan::default(),
    )
}

/// Refuse runs of `scenario` under `strategies`, all at once, that this machine cannot finish
/// (see [`crate::footprint`]): the strategies may differ from the scenario's own, which its
/// validation checked.
pub(crate) fn check_footprint(scenario: &Scenario, strategies: &[Strategy]) -> crate::Result<()> {
    crate::footprint::check(scenario, strategies)
        .map(|_| ())
        .map_err(|(key, message)| scenario.error_at(&key, message))
}
