//! Run: one task per session executing its plan over a WebSocket, and the orchestrator of
//! the phases of a run (ramp, window, grace, cut).
//!
//! Phases, on one monotonic clock:
//! 1. **ramp** (`--ramp`): the sessions in progress at `from` connect, spread evenly over the
//!    first 80% of the ramp; plan time stands still at `from`. The ramp ends when they have
//!    all been answered (or time out), and not before its length.
//! 2. **window** (`--duration`), from `t0`: plan time runs from `from` at `speedup` plan
//!    seconds per second; sessions arrive on schedule, send their planned messages at their
//!    intended times, leave after their length, give up when their patience runs out.
//! 3. **grace** (`--grace`): nothing new happens; the driver waits for deliveries of the
//!    window's messages still in flight, then counts the missing ones.
//! 4. **cut**: every session still present sends `leave` and waits for the server's close.
//!
//! The target going away (a workerd that exits, or a probe that cannot connect after
//! connections dropped or were refused) aborts the run: every socket is closed at once and
//! what was measured is reported. A Ctrl-C stops it in order instead, so that the driver's
//! counts still match the Worker's: the window ends there (nothing later is the window's),
//! no grace, then the cut as at the end of a run — every user sends `leave` and waits for
//! the server's close, so a queued user the Worker promotes meanwhile is seen as promoted —
//! for at most [`INTERRUPT_STOP`]; a second Ctrl-C (or that limit) closes the rest at once,
//! and the sockets so closed are counted ([`Ctx::forced`]).

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Message;

use super::client::{self, ServerFrame, StreamEnd, Target, Ws};
use super::pacer::Pacer;
use super::plan::{Carried, DrivePlan, Planned, TimeMap};
use super::state::{Kind, Place, State};
use crate::workload::{room_name, Rng, RoomPick, Workload};

/// How long a rejected socket may take to be closed by the server.
const REJECT_CLOSE: Duration = Duration::from_secs(2);
/// How long the orderly stop after a Ctrl-C may take before the sockets left are closed.
pub(crate) const INTERRUPT_STOP: Duration = Duration::from_secs(5);

/// The phase of the run, broadcast to every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Ramp,
    Window { t0: Instant },
    Drain,
    Cut,
    Abort,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Interrupted(String),
    TargetDown(String),
}

/// Timeouts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub leave: Duration,
}

/// What every session shares.
pub(crate) struct Ctx {
    pub target: Target,
    pub segment: String,
    pub workload: Workload,
    pub time: TimeMap,
    pub epoch: Instant,
    pub timeouts: Timeouts,
    pub body: String,
    pub room_object: Vec<u32>,
    pub state: Mutex<State>,
    pub ctl: watch::Sender<Phase>,
    /// Fine wake-ups for sends and arrivals.
    pub pacer: Pacer,
    /// Keeps the kernel stamping received segments from before the first connection.
    _stamping: Option<std::net::UdpSocket>,
    /// Why the run stopped early, and in which phase.
    stop: Mutex<Option<(Stop, Phase)>>,
    stopping: Notify,
    /// Sockets closed without waiting for the server (after the stop's time limit, a second
    /// Ctrl-C, or the target going away): the Worker may have done things with them (a
    /// promotion, a delivery, a connect) that the driver never saw.
    forced: AtomicU64,
    live: AtomicUsize,
    live_zero: Notify,
    carried_answered: AtomicUsize,
    carried_notify: Notify,
    probing: AtomicBool,
    pub spawned: AtomicU64,
    /// The first 5xx answer to an upgrade: `HTTP <status>: <body>`.
    first_server_error: Mutex<Option<String>>,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        target: Target,
        segment: String,
        workload: Workload,
        time: TimeMap,
        timeouts: Timeouts,
        body: String,
        room_object: Vec<u32>,
        state: State,
        read_batch: Duration,
    ) -> Ctx {
        Ctx {
            target,
            segment,
            workload,
            time,
            epoch: Instant::now(),
            timeouts,
            body,
            room_object,
            state: Mutex::new(state),
            ctl: watch::channel(Phase::Ramp).0,
            pacer: Pacer::start(read_batch),
            _stamping: super::stamp::keep_stamping(),
            stop: Mutex::new(None),
            stopping: Notify::new(),
            forced: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            live_zero: Notify::new(),
            carried_answered: AtomicUsize::new(0),
            carried_notify: Notify::new(),
            probing: AtomicBool::new(false),
            spawned: AtomicU64::new(0),
            first_server_error: Mutex::new(None),
        }
    }

    /// The first 5xx answer to an upgrade, if any: `HTTP <status>: <body>`.
    pub(crate) fn first_server_error(&self) -> Option<String> {
        self.first_server_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An upgrade was answered 5xx. The first such answer is kept for the report, and the
    /// target's `GET /healthz` is probed once: if it fails with a 5xx too, the target cannot
    /// serve anything (the Worker's configuration is invalid): stop the run rather than
    /// churn. A 5xx that `/healthz` does not share is left to the fault counts.
    pub(crate) fn server_error(self: &Arc<Self>, status: u16, body: &str) {
        {
            let mut first = self
                .first_server_error
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if first.is_some() {
                return;
            }
            *first = Some(if body.is_empty() {
                format!("HTTP {status} (no body)")
            } else {
                format!("HTTP {status}: {body}")
            });
        }
        let ctx = self.clone();
        tokio::spawn(async move {
            if let Err(e @ super::stats::HealthError::Failing { .. }) =
                super::stats::health(&ctx.target, Duration::from_secs(2)).await
            {
                ctx.abort(Stop::TargetDown(format!(
                    "target {} misconfigured: {e}",
                    ctx.target
                )));
            }
        });
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record why the run stops (the first reason wins) and wake the orchestrator.
    fn set_stop(&self, why: Stop) {
        {
            let mut s = self.stop.lock().unwrap_or_else(|p| p.into_inner());
            if s.is_none() {
                *s = Some((why, *self.ctl.borrow()));
            }
        }
        self.stopping.notify_waiters();
    }

    /// Stop the run at once: every socket closed without waiting.
    pub(crate) fn abort(&self, why: Stop) {
        self.set_stop(why);
        self.ctl.send_replace(Phase::Abort);
    }

    /// Stop the run in order (see the module documentation): the orchestrator ends the
    /// phase under way and runs the cut.
    pub(crate) fn interrupt(&self, why: Stop) {
        self.set_stop(why);
    }

    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    /// The phase the run was in when it was stopped.
    pub(crate) fn stopped_in(&self) -> Option<Phase> {
        self.stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, p)| *p)
    }

    /// Resolves once the run is stopped (at once if it is).
    async fn until_stopped(&self) {
        loop {
            let notified = self.stopping.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stopped().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Sockets closed without waiting for the server.
    pub(crate) fn forced(&self) -> u64 {
        self.forced.load(Ordering::SeqCst)
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// A connection failed in a way that suggests the target is gone: probe it (one probe
    /// at a time); if it cannot be reached, abort the run.
    pub(crate) fn suspect_target(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let ctx = self.clone();
        tokio::spawn(async move {
            let probe = client::tcp(&ctx.target, Duration::from_secs(1)).await;
            match probe {
                Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => ctx.abort(Stop::TargetDown(format!(
                    "target {} unreachable: {e}",
                    ctx.target
                ))),
            }
            ctx.probing.store(false, Ordering::SeqCst);
        });
    }

    fn spawn_session(self: &Arc<Self>, p: Planned, intended: Instant) {
        self.live.fetch_add(1, Ordering::SeqCst);
        self.spawned.fetch_add(1, Ordering::Relaxed);
        let ctx = self.clone();
        tokio::spawn(async move {
            let guard = LiveGuard(ctx.clone());
            Session::new(ctx, p, intended).run().await;
            drop(guard);
        });
    }

    /// Wait until no session task is left, or `timeout`.
    async fn wait_sessions(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            loop {
                let notified = self.live_zero.notified();
                if self.live() == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }
}

struct LiveGuard(Arc<Ctx>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.live_zero.notify_waiters();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    /// Upgraded, waiting for the first answer.
    Connecting {
        until: Instant,
    },
    Queued {
        since: Instant,
    },
    Seated {
        leave_plan: u64,
        next_plan: Option<u64>,
    },
    /// Rejected: waiting for the server's close.
    Rejected {
        until: Instant,
    },
    /// Sent `leave`: waiting for the server's close (1000).
    Leaving {
        until: Instant,
        was: Place,
    },
    Done,
}

struct Session {
    ctx: Arc<Ctx>,
    id: u64,
    user: String,
    kind: Kind,
    room: u32,
    object: u32,
    length_ns: u64,
    patience_ns: Option<u64>,
    rng: Rng,
    carried: Option<Carried>,
    intended: Instant,
    started: Instant,
    st: St,
    seq: u64,
    phase: Phase,
    cut_pending: bool,
    answered: bool,
    /// The plan's room choice (resolved under the state lock when connecting).
    pick: RoomPick,
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

impl Session {
    fn new(ctx: Arc<Ctx>, p: Planned, intended: Instant) -> Session {
        let kind = if p.carried.is_some() {
            Kind::Carried
        } else {
            Kind::Window
        };
        Session {
            id: p.plan.id,
            user: p.plan.user_name(),
            kind,
            room: 0,
            object: 0,
            length_ns: p.plan.length_ns,
            patience_ns: p.plan.patience_ns,
            rng: p.plan.rng.clone(),
            carried: p.carried,
            intended,
            started: Instant::now(),
            st: St::Done,
            seq: 0,
            phase: Phase::Ramp,
            cut_pending: false,
            answered: false,
            pick: p.plan.room,
            ctx,
        }
    }

    /// Count the first answer of a carried session (once), for the end of the ramp.
    fn answer_once(&mut self) {
        if !self.answered {
            self.answered = true;
            if self.kind == Kind::Carried {
                self.ctx.carried_answered.fetch_add(1, Ordering::SeqCst);
                self.ctx.carried_notify.notify_waiters();
            }
        }
    }

    async fn run(mut self) {
        let mut ctl = self.ctx.ctl.subscribe();
        self.phase = *ctl.borrow_and_update();
        if matches!(self.phase, Phase::Abort | Phase::Cut | Phase::Drain) {
            self.answer_once();
            return;
        }
        self.started = Instant::now();
        let ws = self.connect(&mut ctl).await;
        let Some(mut ws) = ws else {
            self.answer_once();
            return;
        };
        self.st = St::Connecting {
            until: Instant::now() + self.ctx.timeouts.connect,
        };
        // One timer per session, re-armed only when its deadline changes (not on every
        // frame received).
        // On time to within tens of microseconds (the pacer), not tokio's 1 ms.
        let mut sleep = self
            .ctx
            .pacer
            .deadline(Instant::now() + Duration::from_secs(86_400));
        let mut armed: Option<Instant> = None;
        // Likewise one wait for a phase change, re-created only when the phase changed.
        self.phase = *ctl.borrow_and_update();
        let mut phase_change = Box::pin(next_phase(ctl));
        let mut phase_seen = None;
        loop {
            if phase_seen != Some(self.phase) {
                phase_seen = Some(self.phase);
                match self.phase {
                    Phase::Abort => {
                        self.abort(&mut ws).await;
                        break;
                    }
                    Phase::Cut => self.cut(&mut ws).await,
                    _ => {}
                }
            }
            if self.st == St::Done {
                break;
            }
            let deadline = self.deadline();
            if deadline != armed {
                if let Some(d) = deadline {
                    sleep.reset(d);
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                (phase, rx) = &mut phase_change => {
                    self.phase = phase;
                    phase_change.set(next_phase(rx));
                }
                m = ws.next() => self.on_ws(m, &mut ws).await,
                _ = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.on_timer(&mut ws).await;
                }
            }
            if self.st == St::Done {
                break;
            }
        }
        self.answer_once();
    }

    async fn connect(&mut self, ctl: &mut watch::Receiver<Phase>) -> Option<Ws> {
        let path;
        {
            let ctx = self.ctx.clone();
            let mut s = ctx.state();
            self.room = s.choose_room(self.pick);
            self.object = ctx.room_object[self.room as usize];
            s.session_started(self.kind, self.started, self.intended);
            let unix_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            s.first_request(self.object, unix_ms);
            path = ctx
                .target
                .join_path(&ctx.segment, &room_name(self.room), &self.user);
        }
        let ctx = self.ctx.clone();
        // Until the upgrade is done the runtime reacts to every socket at once: the
        // handshake's steps carry no kernel stamp, so a batched read would delay them.
        let _urgent = ctx.pacer.urgent();
        let attempt = client::connect(&ctx.target, &path, ctx.timeouts.connect);
        let result = tokio::select! {
            biased;
            _ = until_abort(ctl) => None,
            r = attempt => Some(r),
        };
        match result {
            None => {
                // The upgrade may have reached the Worker.
                ctx.forced.fetch_add(1, Ordering::SeqCst);
                ctx.state()
                    .connect_failed(self.kind, self.room, None, false);
                None
            }
            Some(Err(e)) => {
                let reached = e.answered();
                ctx.state()
                    .connect_failed(self.kind, self.room, Some(e.category()), reached);
                if e.suggests_target_down() {
                    ctx.suspect_target();
                }
                if let Some((status, body)) = e.server_error() {
                    ctx.server_error(status, body);
                }
                None
            }
            Some(Ok((ws, at))) => {
                if !ws.get_ref().stamped() {
                    ctx.pacer.unstamped();
                }
                ctx.state()
                    .upgraded(self.kind, self.object, self.started, at);
                Some(ws)
            }
        }
    }

    fn t0(&self) -> Option<Instant> {
        match self.phase {
            Phase::Window { t0 } => Some(t0),
            _ => None,
        }
    }

    /// The next moment this session must act, if any.
    fn deadline(&self) -> Option<Instant> {
        let window = |at: Instant, t0: Instant| (at < t0 + self.ctx.time.duration).then_some(at);
        match self.st {
            St::Connecting { until } | St::Rejected { until } | St::Leaving { until, .. } => {
                Some(until)
            }
            St::Queued { since } => {
                let t0 = self.t0()?;
                let p = self.patience_ns?;
                window(since.max(t0) + self.ctx.time.real_len(p), t0)
            }
            St::Seated {
                leave_plan,
                next_plan,
            } => {
                let t0 = self.t0()?;
                let at = |plan: u64| t0 + self.ctx.time.real_at(plan);
                let leave = window(at(leave_plan), t0);
                let next = next_plan.and_then(|n| window(at(n), t0));
                match (leave, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            St::Done => None,
        }
    }

    async fn on_timer(&mut self, ws: &mut Ws) {
        let now = Instant::now();
        match self.st {
            St::Connecting { until } if now >= until => {
                self.ctx
                    .state()
                    .unanswered(self.kind, self.room, "answer_timeout");
                self.answer_once();
                self.close_quietly(ws).await;
                self.ctx.state().socket_closed(self.object, Instant::now());
                self.st = St::Done;
            }
            St::Rejected { until } if now >= until => {
                self.ctx.state().socket_closed(self.object, now);
                self.st = St::Done;
            }
            St::Leaving { until, .. } if now >= until => {
                {
                    let mut s = self.ctx.state();
                    s.fault("leave_timeout");
                    s.socket_closed(self.object, now);
                }
                self.st = St::Done;
            }
            St::Queued { .. } if self.deadline().is_some_and(|d| d <= now) => {
                self.begin_leave(ws, true).await;
            }
            St::Seated {
                leave_plan,
                next_plan,
            } => {
                let Some(t0) = self.t0() else { return };
                let end = t0 + self.ctx.time.duration;
                let at = |plan: u64| t0 + self.ctx.time.real_at(plan);
                match next_plan {
                    // Messages first: a message due at the same moment as the departure is
                    // still sent (the simulator sends those planned before the end).
                    Some(n) if at(n) <= now && at(n) < end => {
                        self.send_message(ws, n, at(n), leave_plan).await;
                    }
                    _ => {
                        if at(leave_plan) <= now && at(leave_plan) < end {
                            self.begin_leave(ws, false).await;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    async fn send_message(&mut self, ws: &mut Ws, plan_ns: u64, intended: Instant, leave: u64) {
        self.seq += 1;
        let now = Instant::now();
        let ts = now.saturating_duration_since(self.ctx.epoch).as_micros() as u64;
        self.ctx
            .state()
            .message_sent(self.id, self.room, self.object, self.seq, intended, now);
        let next = self.ctx.workload.next_message(&mut self.rng, plan_ns);
        self.st = St::Seated {
            leave_plan: leave,
            next_plan: (next < leave).then_some(next),
        };
        let frame = client::message_frame(self.seq, ts, &self.ctx.body);
        if let Err(e) = ws.send(frame).await {
            {
                let mut s = self.ctx.state();
                s.message_failed(self.id, self.seq);
                s.fault("send_error");
            }
            self.ended(StreamEnd::from_error(e), ws).await;
        }
    }

    /// Send `leave` (a departure at the end of the session, a queued user giving up, or the
    /// cut at the end of the run).
    async fn begin_leave(&mut self, ws: &mut Ws, abandon: bool) {
        let place = match self.st {
            St::Seated { .. } => Place::Seated,
            St::Queued { .. } => Place::Queued,
            _ => return,
        };
        let now = Instant::now();
        self.ctx
            .state()
            .departing(self.kind, self.id, self.room, place, abandon, now);
        match ws.send(client::leave_frame()).await {
            Ok(()) => {
                self.st = St::Leaving {
                    until: now + self.ctx.timeouts.leave,
                    was: place,
                };
            }
            Err(_) => {
                let mut s = self.ctx.state();
                s.fault("send_error");
                s.socket_closed(self.object, Instant::now());
                self.st = St::Done;
            }
        }
    }

    async fn cut(&mut self, ws: &mut Ws) {
        match self.st {
            St::Seated { .. } | St::Queued { .. } => self.begin_leave(ws, false).await,
            St::Connecting { .. } => self.cut_pending = true,
            _ => {}
        }
    }

    async fn abort(&mut self, ws: &mut Ws) {
        let now = Instant::now();
        let place = match self.st {
            St::Seated { .. } => Some(Place::Seated),
            St::Queued { .. } => Some(Place::Queued),
            St::Done => return,
            _ => None,
        };
        if !matches!(self.st, St::Rejected { .. }) {
            self.ctx.forced.fetch_add(1, Ordering::SeqCst);
        }
        {
            let mut s = self.ctx.state();
            if let Some(place) = place {
                s.departing(self.kind, self.id, self.room, place, false, now);
            }
            if let St::Connecting { .. } = self.st {
                s.unanswered(self.kind, self.room, "aborted_before_answer");
            }
        }
        self.answer_once();
        let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
        self.ctx.state().socket_closed(self.object, Instant::now());
        self.st = St::Done;
    }

    async fn close_quietly(&mut self, ws: &mut Ws) {
        let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
    }

    async fn on_ws(
        &mut self,
        m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        ws: &mut Ws,
    ) {
        match m {
            Some(Ok(Message::Text(t))) => self.on_text(&t, ws).await,
            Some(Ok(Message::Close(f))) => self.ended(StreamEnd::from_close(f), ws).await,
            Some(Ok(_)) => {}
            Some(Err(e)) => self.ended(StreamEnd::from_error(e), ws).await,
            None => {
                self.ended(StreamEnd::Dropped("end of stream".into()), ws)
                    .await
            }
        }
    }

    async fn on_text(&mut self, text: &str, ws: &mut Ws) {
        let now = arrival(ws);
        self.ctx.pacer.frame_read();
        let Some(frame) = ServerFrame::parse(text) else {
            self.ctx.state().fault("unparsable_frame");
            return;
        };
        match (self.st, frame) {
            (_, ServerFrame::Message { from, seq, .. }) => {
                let from = client::user_id(&from);
                self.ctx
                    .state()
                    .delivered(self.id, self.object, from, seq, now);
            }
            (St::Connecting { .. }, ServerFrame::Joined { .. }) => {
                self.answer_once();
                self.seat(now, true);
                if self.cut_pending {
                    self.begin_leave(ws, false).await;
                }
            }
            (St::Connecting { .. }, ServerFrame::Queued { .. }) => {
                self.answer_once();
                self.ctx.state().queued(self.kind, self.started, now);
                self.st = St::Queued { since: now };
                if self.cut_pending {
                    self.begin_leave(ws, false).await;
                }
            }
            (St::Connecting { .. }, ServerFrame::Rejected { reason }) => {
                self.answer_once();
                self.ctx
                    .state()
                    .rejected(self.kind, self.room, &reason, self.started, now);
                self.st = St::Rejected {
                    until: now + REJECT_CLOSE,
                };
            }
            (St::Queued { .. }, ServerFrame::Joined { .. }) => self.seat(now, false),
            (
                St::Leaving {
                    was: Place::Queued,
                    until,
                },
                ServerFrame::Joined { .. },
            ) => {
                // Seated by the server before it saw our leave.
                self.ctx.state().promoted_while_leaving(now);
                self.st = St::Leaving {
                    until,
                    was: Place::Seated,
                };
            }
            (_, ServerFrame::Position { .. }) => {}
            (_, ServerFrame::Error { code }) => {
                let mut s = self.ctx.state();
                if code == "not_admitted" {
                    s.not_admitted(self.id, self.seq);
                }
                s.fault(&format!("error_frame_{code}"));
            }
            (_, _) => self.ctx.state().fault("unexpected_frame"),
        }
    }

    /// A seat: the first answer (`first`) or a promotion.
    fn seat(&mut self, now: Instant, first: bool) {
        let time = self.ctx.time;
        let plan_now = match self.t0() {
            Some(t0) if now > t0 => time.plan_at(now - t0),
            _ => time.from_ns,
        };
        let w = &self.ctx.workload;
        let (leave, next) = match (&self.carried, first) {
            (Some(c), true) => (c.end_ns, c.next_message_ns),
            (Some(c), false) => {
                let leave = plan_now.saturating_add(c.end_ns.saturating_sub(time.from_ns));
                (leave, Some(w.next_message(&mut self.rng, plan_now)))
            }
            (None, _) => (
                plan_now.saturating_add(self.length_ns),
                Some(w.next_message(&mut self.rng, plan_now)),
            ),
        };
        self.ctx
            .state()
            .seated(self.kind, self.id, self.room, first, self.started, now);
        self.st = St::Seated {
            leave_plan: leave,
            next_plan: next.filter(|&n| n < leave),
        };
    }

    /// The socket ended (a close frame, a drop, an error).
    async fn ended(&mut self, end: StreamEnd, ws: &mut Ws) {
        // A close frame has a stamp; a drop or an error is seen now.
        let now = match end {
            StreamEnd::Closed(..) => arrival(ws),
            _ => Instant::now(),
        };
        let category = match &end {
            StreamEnd::Closed(code, _) => format!("server_close_{code}"),
            StreamEnd::Dropped(_) => "dropped".to_string(),
            StreamEnd::Protocol(_) => "protocol_error".to_string(),
        };
        let dropped = matches!(end, StreamEnd::Dropped(_));
        match self.st {
            St::Leaving { .. } => {
                if !matches!(end, StreamEnd::Closed(1000, _)) {
                    self.ctx.state().fault(&category);
                }
            }
            St::Rejected { .. } => {
                if !matches!(end, StreamEnd::Closed(4001 | 1013, _)) {
                    self.ctx.state().fault(&category);
                }
            }
            St::Connecting { .. } => {
                self.ctx.state().unanswered(self.kind, self.room, &category);
                self.answer_once();
            }
            St::Seated { .. } | St::Queued { .. } => {
                let place = if matches!(self.st, St::Seated { .. }) {
                    Place::Seated
                } else {
                    Place::Queued
                };
                let mut s = self.ctx.state();
                s.fault(&category);
                s.departing(self.kind, self.id, self.room, place, false, now);
            }
            St::Done => return,
        }
        if matches!(end, StreamEnd::Closed(..)) {
            // Complete the closing handshake.
            self.close_quietly(ws).await;
        }
        self.ctx.state().socket_closed(self.object, Instant::now());
        self.st = St::Done;
        if dropped {
            self.ctx.suspect_target();
        }
    }
}

/// The next phase (Abort if the sender is gone), and the receiver back.
/// When the frame being handled arrived: the kernel's stamp of its last read (the driver
/// may read in batches, see [`super::stamp`]), or now.
fn arrival(ws: &Ws) -> Instant {
    ws.get_ref().arrived().unwrap_or_else(Instant::now)
}

async fn next_phase(mut rx: watch::Receiver<Phase>) -> (Phase, watch::Receiver<Phase>) {
    let phase = match rx.changed().await {
        Ok(()) => *rx.borrow_and_update(),
        Err(_) => Phase::Abort,
    };
    (phase, rx)
}

/// Resolves when the run is aborted.
async fn until_abort(ctl: &mut watch::Receiver<Phase>) {
    let _ = ctl.wait_for(|p| *p == Phase::Abort).await;
}

/// How long the target is given to finish the work of a phase before its CPU is sampled.
pub(crate) const IDLE_SETTLE: Duration = Duration::from_millis(100);

/// Results of the phases, for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PhaseTimes {
    pub ramp: Duration,
    pub window: Duration,
    pub grace: Duration,
    pub cut: Duration,
    pub carried_unanswered: u64,
    /// The grace's limit (`--grace`).
    pub grace_limit: Duration,
}

/// Hooks into the orchestration: samples of the target's CPU time, the driver's own.
pub(crate) trait Probe: Send + Sync {
    /// A sample of the target's CPU time, if measurable.
    fn target_cpu(&self) -> Option<Duration>;
    /// How the target's CPU time is read (None: it is not, as against a `--target`).
    fn cpu_clock(&self) -> Option<super::cpu::CpuClock>;
    /// Whether the target process is known to have exited.
    fn target_gone(&self) -> bool;
}

/// CPU and memory samples taken at phase boundaries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Samples {
    /// Target CPU at ramp start, `t0`, the end of the grace and the end of the departures.
    pub target_cpu: [Option<Duration>; 4],
    /// Driver CPU at ramp start, `t0`, end of the grace.
    pub driver_cpu: [Option<Duration>; 3],
    /// The kernel's part of it, at the same moments.
    #[serde(default)]
    pub driver_cpu_kernel: [Option<Duration>; 3],
    /// Driver RSS before the ramp and at `t0`.
    pub driver_rss: [Option<u64>; 2],
    /// Open sockets at `t0`.
    pub sockets_at_t0: u64,
    /// Open sockets when the departures began (each one closes in them).
    pub sockets_at_cut: u64,
}

/// How the run is shown while it runs.
pub(crate) struct Progress {
    /// The live line (on a terminal).
    pub bar: indicatif::ProgressBar,
    /// What is being driven (the strategy, and which of several runs).
    pub label: String,
}

/// Run the phases. `ramp` is the ramp length, `grace` the drain time. The target's CPU is
/// read at each boundary (the ramp's start, `t0`, the grace's end, after the departures).
pub(crate) async fn orchestrate(
    ctx: Arc<Ctx>,
    plan: DrivePlan,
    ramp: Duration,
    grace: Duration,
    probe: Arc<dyn Probe>,
    progress: Option<Progress>,
) -> (PhaseTimes, Samples) {
    let mut times = PhaseTimes {
        grace_limit: grace,
        ..PhaseTimes::default()
    };
    let mut samples = Samples::default();
    let DrivePlan {
        carried, arrivals, ..
    } = plan;
    let watchers = [
        Some(watch_ctrl_c(&ctx)),
        Some(watch_target(&ctx, &probe)),
        progress.map(|p| show_progress(&ctx, p)),
    ];
    let probe = probe.as_ref();
    run_ramp(&ctx, carried, ramp, probe, &mut times, &mut samples).await;
    // Deliveries are counted once nothing more can arrive: after the grace, or after the
    // cut when a Ctrl-C skipped the grace (recipients then left with messages in flight).
    let mut deliveries_final = true;
    if ctx.stopped().is_none() {
        run_window(&ctx, arrivals, probe, &mut times, &mut samples).await;
        deliveries_final = run_grace(&ctx, grace, probe, &mut times, &mut samples).await;
    }
    run_cut(&ctx, deliveries_final, probe, &mut times, &mut samples).await;
    for w in watchers.into_iter().flatten() {
        w.abort();
    }
    (times, samples)
}

/// Ctrl-C: in order the first time; at once the second, or during the departures (already
/// the orderly end).
fn watch_ctrl_c(ctx: &Arc<Ctx>) -> tokio::task::JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let why = || Stop::Interrupted("interrupted (Ctrl-C)".into());
        while tokio::signal::ctrl_c().await.is_ok() {
            if ctx.stopped().is_some() || *ctx.ctl.borrow() == Phase::Cut {
                ctx.abort(why());
            } else {
                ctx.interrupt(why());
            }
        }
    })
}

/// The target process exiting aborts the run.
fn watch_target(ctx: &Arc<Ctx>, probe: &Arc<dyn Probe>) -> tokio::task::JoinHandle<()> {
    let (ctx, probe) = (ctx.clone(), probe.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if probe.target_gone() {
                ctx.abort(Stop::TargetDown("the local workerd exited".into()));
                return;
            }
        }
    })
}

/// The live progress line, four times a second.
fn show_progress(ctx: &Arc<Ctx>, Progress { bar, label }: Progress) -> tokio::task::JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let phase = *ctx.ctl.borrow();
            let s = ctx.state();
            let sent = s.m.totals.messages_sent;
            let faults: u64 = s.m.faults.values().sum();
            let now = Instant::now();
            let rate = (sent - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, sent);
            let what = match phase {
                Phase::Ramp => "ramp".to_string(),
                Phase::Window { t0 } => format!(
                    "{:.1}s/{:.0}s",
                    now.saturating_duration_since(t0).as_secs_f64(),
                    ctx.time.duration.as_secs_f64()
                ),
                Phase::Drain => "grace".into(),
                Phase::Cut => "leaving".into(),
                Phase::Abort => "stopping".into(),
            };
            bar.set_message(format!(
                "{label} · {what} · sessions {} · connections {} (seated {}) · {:.0} msg/s · {} errors",
                ctx.spawned.load(Ordering::Relaxed),
                s.open_sockets(),
                s.gauges().connections,
                rate,
                faults
            ));
            drop(s);
            bar.tick();
        }
    })
}

/// 1. The ramp: the carried sessions connect, spread over its first 80%; it ends when they
///    have all been answered (or time out), and not before its length.
async fn run_ramp(
    ctx: &Arc<Ctx>,
    carried: Vec<Planned>,
    ramp: Duration,
    probe: &dyn Probe,
    times: &mut PhaseTimes,
    samples: &mut Samples,
) {
    let carried_total = carried.len();
    let ramp_start = Instant::now();
    samples.target_cpu[0] = probe.target_cpu();
    samples.driver_cpu[0] = super::local::self_cpu();
    samples.driver_cpu_kernel[0] = super::local::self_cpu_kernel();
    samples.driver_rss[0] = super::local::self_rss();
    {
        let ctx2 = ctx.clone();
        let spread = ramp.mul_f64(0.8);
        tokio::spawn(async move {
            let n = carried.len().max(1) as u32;
            for (i, p) in carried.into_iter().enumerate() {
                let at = ramp_start + spread / n * i as u32;
                ctx2.pacer.sleep_until(at).await;
                if ctx2.stopped().is_some() {
                    // count it as answered so that the ramp does not wait for it
                    ctx2.carried_answered.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                ctx2.spawn_session(p, at);
            }
        });
    }
    let ramp_deadline = ramp_start + ramp + ctx.timeouts.connect + Duration::from_secs(1);
    loop {
        let notified = ctx.carried_notify.notified();
        let answered = ctx.carried_answered.load(Ordering::SeqCst);
        let now = Instant::now();
        if ctx.stopped().is_some() {
            break;
        }
        if answered >= carried_total && now >= ramp_start + ramp {
            break;
        }
        if now >= ramp_deadline {
            times.carried_unanswered = (carried_total - answered.min(carried_total)) as u64;
            break;
        }
        let wake = if answered >= carried_total {
            ramp_start + ramp
        } else {
            ramp_deadline
        };
        tokio::select! {
            _ = notified => {}
            _ = sleep_opt(Some(wake)) => {}
            _ = ctx.until_stopped() => {}
        }
    }
    times.ramp = ramp_start.elapsed();
}

/// 2. The window, from `t0`: sessions arrive on schedule; the state is sampled every second
///    of it; its books close at its end (or at a stop).
async fn run_window(
    ctx: &Arc<Ctx>,
    arrivals: Vec<Planned>,
    probe: &dyn Probe,
    times: &mut PhaseTimes,
    samples: &mut Samples,
) {
    let t0 = Instant::now();
    ctx.state().start_window(t0);
    samples.target_cpu[1] = probe.target_cpu();
    samples.driver_cpu[1] = super::local::self_cpu();
    samples.driver_cpu_kernel[1] = super::local::self_cpu_kernel();
    samples.driver_rss[1] = super::local::self_rss();
    samples.sockets_at_t0 = ctx.state().open_sockets();
    ctx.ctl.send_replace(Phase::Window { t0 });
    let end = t0 + ctx.time.duration;
    {
        let ctx2 = ctx.clone();
        tokio::spawn(async move {
            for p in arrivals {
                let at = t0 + ctx2.time.real_at(p.plan.arrival_ns);
                ctx2.pacer.sleep_until(at).await;
                if !matches!(*ctx2.ctl.borrow(), Phase::Window { .. })
                    || ctx2.stopped().is_some()
                    || at >= end
                {
                    break;
                }
                ctx2.spawn_session(p, at);
            }
        });
    }
    let sampler = {
        let ctx2 = ctx.clone();
        tokio::spawn(async move {
            let mut k = 1u32;
            loop {
                let at = t0 + Duration::from_secs(1) * k;
                if at > end {
                    break;
                }
                ctx2.pacer.sleep_until(at).await;
                ctx2.state().sample(at - Duration::from_secs(1));
                k += 1;
            }
        })
    };
    tokio::select! {
        _ = sleep_opt(Some(end)) => {}
        _ = ctx.until_stopped() => {}
    }
    sampler.abort();
    times.window = t0.elapsed().min(ctx.time.duration);
    // The window ends here, before any session hears of a stop: what follows is not the
    // window's.
    ctx.state().close_books(Instant::now());
    if ctx.stopped().is_none() {
        ctx.ctl.send_replace(Phase::Drain);
    }
}

/// 3. The grace: wait for deliveries in flight and answers to late connects, then count
///    the deliveries that never came. False when a Ctrl-C skipped it (they are counted
///    after the cut).
async fn run_grace(
    ctx: &Arc<Ctx>,
    grace: Duration,
    probe: &dyn Probe,
    times: &mut PhaseTimes,
    samples: &mut Samples,
) -> bool {
    let grace_start = Instant::now();
    if ctx.stopped().is_none() {
        loop {
            let (outstanding, connecting) = {
                let s = ctx.state();
                (s.outstanding(), s.connecting())
            };
            if (outstanding == 0 && connecting == 0) || grace_start.elapsed() >= grace {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = ctx.until_stopped() => break,
            }
        }
    }
    let counted = !matches!(ctx.stopped(), Some(Stop::Interrupted(_)));
    if counted {
        ctx.state().finalize_deliveries();
    }
    times.grace = grace_start.elapsed();
    samples.target_cpu[2] = probe.target_cpu();
    samples.driver_cpu[2] = super::local::self_cpu();
    samples.driver_cpu_kernel[2] = super::local::self_cpu_kernel();
    counted
}

/// 4. The cut: every session leaves, in order (also after a Ctrl-C); at once when the
///    target went away or on a second Ctrl-C.
async fn run_cut(
    ctx: &Arc<Ctx>,
    deliveries_final: bool,
    probe: &dyn Probe,
    times: &mut PhaseTimes,
    samples: &mut Samples,
) {
    let mut ctl = ctx.ctl.subscribe();
    let cut_start = Instant::now();
    samples.sockets_at_cut = ctx.state().open_sockets();
    let limit = match ctx.stopped() {
        None => Some(ctx.timeouts.leave + ctx.timeouts.connect + Duration::from_secs(1)),
        Some(Stop::Interrupted(_)) => Some(INTERRUPT_STOP),
        Some(Stop::TargetDown(_)) => None,
    };
    if let Some(limit) = limit.filter(|_| *ctx.ctl.borrow() != Phase::Abort) {
        ctx.ctl.send_replace(Phase::Cut);
        tokio::select! {
            _ = ctx.wait_sessions(limit) => {}
            _ = ctl.wait_for(|p| *p == Phase::Abort) => {}
        }
    }
    if ctx.live() > 0 {
        ctx.ctl.send_replace(Phase::Abort);
        ctx.wait_sessions(Duration::from_secs(3)).await;
    }
    if !deliveries_final {
        ctx.state().finalize_deliveries();
    }
    times.cut = cut_start.elapsed();
    if samples.target_cpu[2].is_some() && ctx.stopped().is_none() {
        // The last closes may still be torn down after their close frame: let the target
        // go idle, so that the sample covers the departures' whole work.
        tokio::time::sleep(IDLE_SETTLE).await;
        samples.target_cpu[3] = probe.target_cpu();
    }
}
