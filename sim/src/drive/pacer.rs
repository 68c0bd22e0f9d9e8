//! Pacer: wake-ups on time for sends and arrivals, and reads in batches.
//!
//! tokio's timer has a 1 ms resolution. A session that sleeps until a message's intended
//! send time wakes up to 1 ms late (measured here: send lag p50 1.2 ms, p99 4 ms, against a
//! loopback floor of 0.2 ms). Message latency is measured from the intended time (the
//! coordinated-omission correction), so that lag is counted against the server.
//!
//! So a [`Deadline`] waits in two stages: tokio's timer up to [`COARSE_LEAD`] before the
//! moment, then the run's [`Pacer`], a heap of the moments pending. The pacer works in one
//! of two modes:
//!
//! - **Batched reads** (`read_batch` > 0, the default): the pacer's task holds the runtime's
//!   one thread asleep (a precise sleep, 1 ns timer slack) until the next moment or for at
//!   most `read_batch`, wakes the sessions due, then yields, so that the runtime takes every
//!   socket ready at once without blocking. Frames that arrive meanwhile wait in the
//!   kernel; their arrival time is the kernel's stamp ([`super::stamp`]), so the wait is not
//!   counted against the server. The driver then wakes about once per moment or batch, not
//!   once per frame: on loopback a wake-up (a context switch) was most of the driver's CPU.
//!   It batches only while frames come at least one per batch (looked at every 100 ms):
//!   below that a batch saves no wake-up, and ticking would cost an idle driver 1,000
//!   wake-ups a second.
//! - **Reacting** (`read_batch` = 0, quiet traffic, or while a connection is being opened,
//!   whose handshake has no stamp): the runtime waits on its sockets as usual, and one Linux `timerfd`,
//!   armed at nanosecond resolution for the earliest moment, wakes the pacer's task among
//!   them.
//!
//! Waking a task early is never possible; a stale wake-up (its session moved on) only
//! polls the task once more. Where no `timerfd` can be made, a deadline is tokio's timer
//! alone (to 1 ms), and the run says so.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// How long before the moment tokio's timer hands over to the pacer, at least: above the
/// timer's 1 ms resolution, so that the coarse stage never fires late on an idle runtime.
/// Batching adds the batch, as tokio's timers are then seen once per batch.
pub(crate) const COARSE_LEAD: Duration = Duration::from_millis(2);

/// A moment to wake a task at.
struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap's top is the earliest moment (ties in order of registration).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Pending {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// The moment the timer is set for, if it is.
    armed: Option<Instant>,
    /// Whether the pacer is reacting (the timer is used), not batching.
    reacting: bool,
}

struct Shared {
    timer: AsyncFd<OwnedFd>,
    pending: Mutex<Pending>,
    /// How long reads may wait (0: never batched).
    read_batch: Duration,
    /// Connections being opened ([`Urgent`] guards alive).
    urgent: AtomicUsize,
    /// Frames read so far ([`Pacer::frame_read`]).
    frames: AtomicU64,
    /// Whether frames arrived at least `min_per_batch` per batch at the last look.
    busy: AtomicBool,
    /// Below this many frames per batch, batching saves no wake-up: the pacer reacts.
    min_per_batch: f64,
    /// A socket the kernel does not stamp was seen: reads are never batched from then on.
    unstamped: AtomicBool,
    /// Told when `urgent` falls to 0.
    calm: Notify,
}

/// The run's pacer: fine wake-ups for its [`Deadline`]s (see the module's doc). Cheap to
/// clone; made inside the runtime that polls the deadlines.
#[derive(Clone)]
pub(crate) struct Pacer {
    shared: Option<Arc<Shared>>,
}

impl Pacer {
    /// A pacer on the current tokio runtime (which must have its I/O driver enabled), with
    /// its task spawned, batching reads for up to `read_batch` (0: never). If the timer
    /// cannot be made, deadlines fall back to tokio's timer and reads are not batched;
    /// [`Pacer::fine`] says which.
    pub(crate) fn start(read_batch: Duration) -> Pacer {
        Pacer::start_with(read_batch, 1.0)
    }

    /// [`Pacer::start`], batching only while at least `min_per_batch` frames arrive per batch
    /// (0: always).
    fn start_with(read_batch: Duration, min_per_batch: f64) -> Pacer {
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| {
            // Deprecated for types whose descriptor may change under the `AsyncFd`; an
            // `OwnedFd` cannot (the crate forbids the `unsafe` of `register`).
            #[allow(deprecated)]
            AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)
        });
        let Ok(timer) = timer else {
            return Pacer { shared: None };
        };
        let shared = Arc::new(Shared {
            timer,
            pending: Mutex::new(Pending::default()),
            read_batch,
            urgent: AtomicUsize::new(0),
            frames: AtomicU64::new(0),
            busy: AtomicBool::new(min_per_batch <= 0.0),
            min_per_batch,
            unstamped: AtomicBool::new(false),
            calm: Notify::new(),
        });
        tokio::spawn(run(shared.clone()));
        Pacer {
            shared: Some(shared),
        }
    }

    /// Whether deadlines are fine (the timer exists), or tokio's timer alone (1 ms).
    pub(crate) fn fine(&self) -> bool {
        self.shared.is_some()
    }

    /// While the guard lives, the runtime reacts to every socket at once (for a handshake,
    /// whose steps have no kernel stamp).
    pub(crate) fn urgent(&self) -> Urgent {
        if let Some(s) = &self.shared {
            s.urgent.fetch_add(1, AtomicOrdering::SeqCst);
        }
        Urgent(self.shared.clone())
    }

    /// A frame was read: the pacer batches reads only while they come often enough for a
    /// batch to hold more than one.
    pub(crate) fn frame_read(&self) {
        if let Some(s) = &self.shared {
            s.frames.fetch_add(1, AtomicOrdering::Relaxed);
        }
    }

    /// A socket whose reads the kernel does not stamp: from now on every frame is read as
    /// it arrives, so that its arrival time is right.
    pub(crate) fn unstamped(&self) {
        if let Some(s) = &self.shared {
            s.unstamped.store(true, AtomicOrdering::SeqCst);
        }
    }

    /// Whether reads were to be batched but a socket without stamps stopped it.
    pub(crate) fn saw_unstamped(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| !s.read_batch.is_zero() && s.unstamped.load(AtomicOrdering::SeqCst))
    }

    /// How long before its moment a deadline hands over to the pacer.
    fn lead(&self) -> Duration {
        COARSE_LEAD
            + self
                .shared
                .as_ref()
                .map_or(Duration::ZERO, |s| s.read_batch)
    }

    /// A wait until `at`.
    pub(crate) fn deadline(&self, at: Instant) -> Deadline {
        Deadline {
            coarse: Box::pin(tokio::time::sleep_until(coarse_at(at, self.lead()))),
            lead: self.lead(),
            at,
            asked: None,
            pacer: self.shared.clone(),
        }
    }

    /// Wait until `at`, on time (see [`Deadline`]).
    pub(crate) async fn sleep_until(&self, at: Instant) {
        self.deadline(at).await
    }
}

/// How often the pacer looks at how many frames arrive.
const TRAFFIC_CHECK: Duration = Duration::from_millis(100);

/// The frame count at the pacer's last look.
struct Traffic {
    since: Instant,
    frames: u64,
}

/// See [`Pacer::urgent`].
pub(crate) struct Urgent(Option<Arc<Shared>>);

impl Drop for Urgent {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            if s.urgent.fetch_sub(1, AtomicOrdering::SeqCst) == 1 {
                s.calm.notify_one();
            }
        }
    }
}

impl Shared {
    /// Whether reads may wait now.
    fn batching(&self) -> bool {
        !self.read_batch.is_zero()
            && self.busy.load(AtomicOrdering::SeqCst)
            && !self.unstamped.load(AtomicOrdering::SeqCst)
            && self.urgent.load(AtomicOrdering::SeqCst) == 0
    }

    /// Look at the traffic again if [`TRAFFIC_CHECK`] has passed since the last look.
    fn look(&self, t: &mut Traffic) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(t.since);
        if elapsed < TRAFFIC_CHECK {
            return;
        }
        let frames = self.frames.load(AtomicOrdering::Relaxed);
        let per_batch = frames.saturating_sub(t.frames) as f64 * self.read_batch.as_secs_f64()
            / elapsed.as_secs_f64();
        self.busy
            .store(per_batch >= self.min_per_batch, AtomicOrdering::SeqCst);
        *t = Traffic { since: now, frames };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the heap inconsistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        let mut p = self.lock();
        p.seq += 1;
        let seq = p.seq;
        p.heap.push(Entry { at, seq, waker });
        if p.reacting && p.armed.is_none_or(|armed| at < armed) {
            self.arm(&mut p, at);
        }
    }

    /// Set the timer for `at` (absolute, on the monotonic clock that [`Instant`] reads).
    fn arm(&self, p: &mut Pending, at: Instant) {
        let left = at.saturating_duration_since(Instant::now());
        // A zero value would disarm the timer: a moment already past fires in 1 ns.
        let left = left.max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            },
        };
        // Relative: the few nanoseconds between reading the clock and the call only make
        // the wake-up later, never early.
        if timerfd_settime(self.timer.get_ref(), TimerfdTimerFlags::empty(), &spec).is_ok() {
            p.armed = Some(at);
        }
    }

    /// Take the entries due, and (reacting) re-arm the timer for the next.
    fn due(&self, out: &mut Vec<Waker>) {
        let mut p = self.lock();
        let now = Instant::now();
        while p.heap.peek().is_some_and(|top| top.at <= now) {
            if let Some(e) = p.heap.pop() {
                out.push(e.waker);
            }
        }
        p.armed = None;
        if let Some(next) = p.heap.peek().map(|top| top.at).filter(|_| p.reacting) {
            self.arm(&mut p, next);
        }
    }
}

/// The pacer's task: batching reads or reacting, by turns (see the module's doc). It lives
/// as long as its runtime.
async fn run(s: Arc<Shared>) {
    // Without this the kernel may defer the thread's wake-ups by its default 50 µs slack.
    // The thread is the runtime's; its epoll waits are timed by tokio's 1 ms timer anyway.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let mut due: Vec<Waker> = Vec::new();
    let mut traffic = Traffic {
        since: Instant::now(),
        frames: 0,
    };
    loop {
        s.look(&mut traffic);
        if !s.batching() {
            react(&s, &mut due, &mut traffic).await;
        } else {
            batch(&s, &mut due);
            // The runtime polls its sockets without blocking, runs every task they and the
            // moments woke, then this one again.
            tokio::task::yield_now().await;
        }
    }
}

/// Batching: sleep (the whole thread) until the next moment, or for at most the batch;
/// then wake the sessions due.
fn batch(s: &Shared, due: &mut Vec<Waker>) {
    let next = {
        let mut p = s.lock();
        p.reacting = false;
        p.heap.peek().map(|top| top.at)
    };
    let now = Instant::now();
    let until = next.map_or(now + s.read_batch, |n| n.min(now + s.read_batch));
    if until > now {
        std::thread::sleep(until - now);
    }
    s.due(due);
    due.drain(..).for_each(Waker::wake);
}

/// Reacting: let the runtime wait on its sockets, with the timer set for the earliest
/// moment, until the timer fires (then wake the sessions due), until the last connection
/// being opened is done, or until frames come often enough to batch.
async fn react(s: &Shared, due: &mut Vec<Waker>, traffic: &mut Traffic) {
    {
        let mut p = s.lock();
        p.reacting = true;
        p.armed = None;
        if let Some(at) = p.heap.peek().map(|top| top.at) {
            s.arm(&mut p, at);
        }
    }
    loop {
        let calm = s.calm.notified();
        s.look(traffic);
        if s.batching() {
            return;
        }
        let look_again = tokio::time::sleep_until((traffic.since + TRAFFIC_CHECK).into());
        tokio::select! {
            ready = s.timer.readable() => {
                let Ok(mut ready) = ready else {
                    // The timer is gone: tokio's timer alone from here.
                    return std::future::pending().await;
                };
                // Reading the expiry count clears the timer's readiness.
                let mut count = [0u8; 8];
                let read = rustix::io::read(s.timer.get_ref(), &mut count);
                ready.clear_ready();
                if read.is_ok() {
                    s.due(due);
                    due.drain(..).for_each(Waker::wake);
                }
            }
            _ = calm => {}
            _ = look_again, if !s.read_batch.is_zero() => {}
        }
    }
}

/// A resettable wait until a moment, on time to within tens of microseconds: tokio's
/// timer for all but the last [`COARSE_LEAD`] (plus a read batch), the [`Pacer`] for the rest. Cancel-safe: a
/// dropped or reset deadline leaves at most one stale wake-up behind.
pub(crate) struct Deadline {
    coarse: Pin<Box<tokio::time::Sleep>>,
    /// How long before `at` the coarse stage ends.
    lead: Duration,
    at: Instant,
    /// The moment the pacer was asked to wake this task at, if it was.
    asked: Option<Instant>,
    pacer: Option<Arc<Shared>>,
}

impl Deadline {
    /// Wait until `at` instead.
    pub(crate) fn reset(&mut self, at: Instant) {
        self.at = at;
        self.coarse.as_mut().reset(coarse_at(at, self.lead));
    }
}

fn coarse_at(at: Instant, lead: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at.checked_sub(lead).unwrap_or(at))
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if self.coarse.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let Some(pacer) = self.pacer.clone() else {
            // No fine timer: tokio's, to its millisecond.
            let at = tokio::time::Instant::from_std(self.at);
            self.coarse.as_mut().reset(at);
            return self.coarse.as_mut().poll(cx);
        };
        if self.asked != Some(self.at) {
            let at = self.at;
            self.asked = Some(at);
            pacer.wake_at(at, cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn deadlines_never_fire_early(pacer: Pacer) {
        let start = Instant::now();
        let moments: Vec<Instant> = (0..20u64)
            .map(|i| start + Duration::from_micros(3_000 + 370 * (i * 7 % 20)))
            .collect();
        let woke = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = moments
            .iter()
            .map(|&at| {
                let woke = woke.clone();
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.sleep_until(at).await;
                    let now = Instant::now();
                    woke.lock().unwrap().push((at, now));
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let woke = woke.lock().unwrap();
        assert_eq!(woke.len(), 20);
        for (at, now) in woke.iter() {
            assert!(now >= at, "woke {:?} early", *at - *now);
        }
    }

    const BATCH: Duration = Duration::from_millis(1);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_never_fires_early_on_many_threads() {
        for batch in [Duration::ZERO, BATCH] {
            let pacer = Pacer::start_with(batch, 0.0);
            assert!(pacer.fine(), "Linux has timerfd");
            deadlines_never_fire_early(pacer).await;
        }
    }

    #[tokio::test]
    async fn a_deadline_never_fires_early_on_one_thread() {
        deadlines_never_fire_early(Pacer::start(Duration::ZERO)).await;
    }

    #[tokio::test]
    async fn a_deadline_never_fires_early_with_batched_reads() {
        deadlines_never_fire_early(Pacer::start_with(BATCH, 0.0)).await;
    }

    #[tokio::test]
    async fn a_deadline_never_fires_early_when_quiet_traffic_turns_batching_off() {
        deadlines_never_fire_early(Pacer::start(BATCH)).await;
    }

    #[tokio::test]
    async fn batching_follows_the_traffic() {
        let pacer = Pacer::start(BATCH);
        let s = pacer.shared.as_ref().unwrap();
        assert!(!s.batching(), "no frames yet");
        let mut t = Traffic {
            since: Instant::now() - TRAFFIC_CHECK,
            frames: 0,
        };
        // 1 frame in 100 ms: far below one per 1 ms batch.
        pacer.frame_read();
        s.look(&mut t);
        assert!(!s.batching());
        // 500 frames in the next 100 ms: 5 per batch.
        t.since -= TRAFFIC_CHECK;
        (0..500).for_each(|_| pacer.frame_read());
        s.look(&mut t);
        assert!(s.batching());
        // A connection being opened: reacting until it is done.
        let urgent = pacer.urgent();
        assert!(!s.batching());
        drop(urgent);
        assert!(s.batching());
        // A socket without stamps: never again.
        pacer.unstamped();
        assert!(!s.batching());
        assert!(pacer.saw_unstamped());
    }

    #[tokio::test]
    async fn a_deadline_never_fires_early_while_a_connection_is_urgent() {
        let pacer = Pacer::start_with(BATCH, 0.0);
        let urgent = pacer.urgent();
        deadlines_never_fire_early(pacer.clone()).await;
        drop(urgent);
        deadlines_never_fire_early(pacer).await;
    }

    #[tokio::test]
    async fn without_a_fine_timer_a_deadline_still_waits_for_its_moment() {
        deadlines_never_fire_early(Pacer { shared: None }).await;
    }

    #[tokio::test]
    async fn a_reset_deadline_waits_for_the_new_moment() {
        for batch in [Duration::ZERO, BATCH] {
            let start = Instant::now();
            let mut d = Pacer::start_with(batch, 0.0).deadline(start + Duration::from_millis(1));
            d.reset(start + Duration::from_millis(6));
            (&mut d).await;
            assert!(Instant::now() >= start + Duration::from_millis(6));
            // A moment already past is ready at once, through the pacer or not.
            d.reset(start);
            (&mut d).await;
        }
    }

    #[tokio::test]
    async fn reacting_the_timer_is_set_for_the_earliest_moment_asked() {
        let pacer = Pacer::start(Duration::ZERO);
        // Let the pacer's task start reacting.
        tokio::task::yield_now().await;
        let s = pacer.shared.as_ref().unwrap();
        assert!(s.lock().reacting);
        let waker = futures_util::task::noop_waker();
        let now = Instant::now();
        let (late, early) = (now + Duration::from_secs(60), now + Duration::from_secs(30));
        s.wake_at(late, waker.clone());
        assert_eq!(s.lock().armed, Some(late));
        s.wake_at(early, waker.clone());
        assert_eq!(s.lock().armed, Some(early));
        s.wake_at(late, waker);
        assert_eq!(s.lock().armed, Some(early));
        // Nothing is due yet: taking the due leaves the timer on the earliest.
        let mut due = Vec::new();
        s.due(&mut due);
        assert!(due.is_empty());
        assert_eq!(s.lock().armed, Some(early));
        assert_eq!(s.lock().heap.len(), 3);
    }
}
