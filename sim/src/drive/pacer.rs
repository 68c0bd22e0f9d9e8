//! Pacer: wake-ups on time, for sends and arrivals.
//!
//! tokio's timer has a 1 ms resolution. A session that sleeps until a message's intended
//! send time wakes up to 1 ms late (measured here: send lag p50 1.2 ms, p99 4 ms, against a
//! loopback floor of 0.2 ms). Message latency is measured from the intended time (the
//! coordinated-omission correction), so that lag is counted against the server.
//!
//! So a [`Deadline`] waits in two stages: tokio's timer up to [`COARSE_LEAD`] before the
//! moment, then the pacer: one process-wide thread that holds the pending moments in a
//! heap, sleeps on a condition variable with a 1 ns timer slack until the earliest, and
//! wakes every task due. The thread costs nothing while
//! nothing is pending, and one wake-up per moment otherwise. Waking a task early is never
//! possible; a stale wake-up (its session moved on) only polls the task once more.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long before the moment tokio's timer hands over to the pacer: above the timer's
/// 1 ms resolution, so that the coarse stage never fires late on an idle runtime.
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
}

/// The process-wide pacer thread's shared state.
struct Pacer {
    pending: Mutex<Pending>,
    changed: Condvar,
}

fn pacer() -> &'static Pacer {
    static PACER: OnceLock<&'static Pacer> = OnceLock::new();
    PACER.get_or_init(|| {
        let p: &'static Pacer = Box::leak(Box::new(Pacer {
            pending: Mutex::new(Pending::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("dosim-pacer".into())
            .spawn(move || p.run())
            .map_err(|e| eprintln!("warning: no pacer thread ({e}); sends may be up to 1 ms late"))
            .ok();
        p
    })
}

impl Pacer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the heap inconsistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        let mut p = self.lock();
        let earlier = p.heap.peek().is_none_or(|top| at < top.at);
        p.seq += 1;
        let seq = p.seq;
        p.heap.push(Entry { at, seq, waker });
        drop(p);
        if earlier {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        // Without this the kernel may defer the thread's wake-ups by its default 50 µs slack.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        let mut due: Vec<Waker> = Vec::new();
        let mut p = self.lock();
        loop {
            let now = Instant::now();
            while p.heap.peek().is_some_and(|top| top.at <= now) {
                if let Some(e) = p.heap.pop() {
                    due.push(e.waker);
                }
            }
            if !due.is_empty() {
                drop(p);
                due.drain(..).for_each(Waker::wake);
                p = self.lock();
                continue;
            }
            let Some(at) = p.heap.peek().map(|top| top.at) else {
                p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            // A timed wait, not a spin: spinning the last tens of microseconds of every
            // moment cost the driver about a quarter more CPU per message (perf, 2,000
            // messages a second); with a 1 ns slack the wait itself is late by ~10–60 µs.
            let left = at.saturating_duration_since(now);
            p = match self.changed.wait_timeout(p, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// A resettable wait until a moment, on time to within tens of microseconds: tokio's
/// timer for all but the last [`COARSE_LEAD`], the pacer for the rest. Cancel-safe: a
/// dropped or reset deadline leaves at most one stale wake-up behind.
pub(crate) struct Deadline {
    coarse: Pin<Box<tokio::time::Sleep>>,
    at: Instant,
    /// The moment the pacer was asked to wake this task at, if it was.
    asked: Option<Instant>,
}

impl Deadline {
    /// A wait until `at`.
    pub(crate) fn until(at: Instant) -> Deadline {
        Deadline {
            coarse: Box::pin(tokio::time::sleep_until(coarse_at(at))),
            at,
            asked: None,
        }
    }

    /// Wait until `at` instead.
    pub(crate) fn reset(&mut self, at: Instant) {
        self.at = at;
        self.coarse.as_mut().reset(coarse_at(at));
    }
}

fn coarse_at(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at.checked_sub(COARSE_LEAD).unwrap_or(at))
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
        if self.asked != Some(self.at) {
            let at = self.at;
            self.asked = Some(at);
            pacer().wake_at(at, cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Wait until `at`, on time (see [`Deadline`]).
pub(crate) async fn sleep_until(at: Instant) {
    Deadline::until(at).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_never_fires_early() {
        let start = Instant::now();
        let moments: Vec<Instant> = (0..20u64)
            .map(|i| start + Duration::from_micros(3_000 + 370 * (i * 7 % 20)))
            .collect();
        let woke = std::sync::Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = moments
            .iter()
            .map(|&at| {
                let woke = woke.clone();
                tokio::spawn(async move {
                    sleep_until(at).await;
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

    #[tokio::test]
    async fn a_reset_deadline_waits_for_the_new_moment() {
        let start = Instant::now();
        let mut d = Deadline::until(start + Duration::from_millis(1));
        d.reset(start + Duration::from_millis(6));
        (&mut d).await;
        assert!(Instant::now() >= start + Duration::from_millis(6));
        // A moment already past is ready at once, through the pacer or not.
        d.reset(start);
        (&mut d).await;
    }
}
