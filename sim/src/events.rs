//! Events: the simulator's event list, ordered by time with first-in-first-out ties.
//!
//! Events at the same nanosecond come out in the order they were scheduled (each carries its
//! insertion sequence), which makes runs deterministic. Two structures give that same order:
//! - while few events are pending, a binary heap: it stays in the L1 cache and is the fastest;
//! - once more than [`EventList::RADIX_AT`] are pending, a radix heap. A discrete-event
//!   simulation never schedules into the past, so the event list is a *monotone* priority
//!   queue, which a radix heap exploits: an event lives in bucket
//!   `bit_length(time XOR last_popped_time)` and only ever moves to lower buckets, so it costs
//!   O(1) amortized plus at most 64 moves, where a binary heap pays O(log pending) cache
//!   misses per operation.
//!
//! The switch happens once and never changes the order of events, only the speed
//! (`benches/engine.rs` measures both regimes).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

struct Entry<E> {
    time: u64,
    seq: u64,
    event: E,
}

/// A binary-heap entry: the key packs `(time << 64) | seq`.
struct Keyed<E> {
    key: u128,
    event: E,
}

impl<E> PartialEq for Keyed<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Keyed<E> {}
impl<E> PartialOrd for Keyed<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Keyed<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key) // BinaryHeap is a max-heap: earliest first
    }
}

/// The event list. See the module documentation.
pub struct EventList<E> {
    /// Used until the list first grows past `RADIX_AT` pending events.
    small: BinaryHeap<Keyed<E>>,
    /// Used from then on.
    radix: Option<RadixList<E>>,
    seq: u64,
    now: u64,
}

impl<E> Default for EventList<E> {
    fn default() -> Self {
        EventList {
            small: BinaryHeap::new(),
            radix: None,
            seq: 0,
            now: 0,
        }
    }
}

impl<E> std::fmt::Debug for EventList<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventList")
            .field("pending", &self.len())
            .field("now", &self.now)
            .field("radix", &self.radix.is_some())
            .finish()
    }
}

impl<E> EventList<E> {
    /// Pending events at which the list moves from the binary heap to the radix heap.
    pub const RADIX_AT: usize = 4096;

    /// An empty list at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedule `event` at `time`; a time before the current one is clamped to it.
    #[inline]
    pub fn schedule(&mut self, time: u64, event: E) {
        let time = time.max(self.now);
        let seq = self.seq;
        self.seq += 1;
        match &mut self.radix {
            Some(r) => r.push(time, seq, event),
            None => {
                self.small.push(Keyed {
                    key: (u128::from(time) << 64) | u128::from(seq),
                    event,
                });
                if self.small.len() > Self::RADIX_AT {
                    self.grow();
                }
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let mut r = RadixList::new(self.now);
        for k in std::mem::take(&mut self.small).into_vec() {
            r.push((k.key >> 64) as u64, k.key as u64, k.event);
        }
        self.radix = Some(r);
    }

    /// The earliest event and its time, advancing the clock to it.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let (time, event) = match &mut self.radix {
            Some(r) => r.pop()?,
            None => {
                let k = self.small.pop()?;
                ((k.key >> 64) as u64, k.event)
            }
        };
        self.now = time;
        Some((time, event))
    }

    /// The current time: that of the last event popped.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.radix.as_ref().map_or(self.small.len(), |r| r.len)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The radix heap.
struct RadixList<E> {
    /// `buckets[0]` holds events at exactly `last`, in insertion order; `buckets[i]` for
    /// `i > 0` holds events whose time differs from `last` first at bit `i - 1`.
    bucket0: VecDeque<Entry<E>>,
    buckets: Vec<Vec<Entry<E>>>,
    /// Bit `i - 1` is set when `buckets[i]` is non-empty.
    occupied: u64,
    last: u64,
    len: usize,
}

#[inline]
fn bucket_of(time: u64, last: u64) -> usize {
    (64 - (time ^ last).leading_zeros()) as usize
}

impl<E> RadixList<E> {
    fn new(now: u64) -> Self {
        RadixList {
            bucket0: VecDeque::new(),
            buckets: (0..=64).map(|_| Vec::new()).collect(),
            occupied: 0,
            last: now,
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, time: u64, seq: u64, event: E) {
        let entry = Entry { time, seq, event };
        self.len += 1;
        match bucket_of(time, self.last) {
            // Same time as the current minimum: after everything there (larger sequence),
            // unless it came from the binary heap out of order; `grow` pushes in heap order,
            // so restore sequence order when needed.
            0 => {
                if self.bucket0.back().is_some_and(|b| b.seq > seq) {
                    let at = self.bucket0.partition_point(|e| e.seq < seq);
                    self.bucket0.insert(at, entry);
                } else {
                    self.bucket0.push_back(entry);
                }
            }
            i => {
                self.buckets[i].push(entry);
                self.occupied |= 1 << (i - 1);
            }
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<(u64, E)> {
        if self.bucket0.is_empty() {
            self.refill()?;
        }
        let e = self.bucket0.pop_front()?;
        self.len -= 1;
        Some((e.time, e.event))
    }

    /// Move the earliest non-empty bucket down around its minimum time.
    #[cold]
    fn refill(&mut self) -> Option<()> {
        if self.occupied == 0 {
            return None;
        }
        let i = self.occupied.trailing_zeros() as usize + 1;
        self.occupied &= !(1 << (i - 1));
        let mut moving = std::mem::take(&mut self.buckets[i]);
        self.last = moving.iter().map(|e| e.time).min().expect("non-empty");
        for e in moving.drain(..) {
            match bucket_of(e.time, self.last) {
                0 => self.bucket0.push_back(e),
                j => {
                    self.buckets[j].push(e);
                    self.occupied |= 1 << (j - 1);
                }
            }
        }
        // Keep the allocation of the emptied bucket for reuse.
        self.buckets[i] = moving;
        if self.bucket0.len() > 1 {
            self.bucket0
                .make_contiguous()
                .sort_unstable_by_key(|e| e.seq);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut l = EventList::new();
        for (t, name) in [(5, "a"), (3, "b"), (5, "c"), (3, "d"), (9, "e")] {
            l.schedule(t, name);
        }
        let order: Vec<_> = std::iter::from_fn(|| l.pop()).collect();
        assert_eq!(order, [(3, "b"), (3, "d"), (5, "a"), (5, "c"), (9, "e")]);
    }

    #[test]
    fn same_time_events_scheduled_while_running_come_last() {
        let mut l = EventList::new();
        l.schedule(10, 1);
        l.schedule(10, 2);
        assert_eq!(l.pop(), Some((10, 1)));
        l.schedule(10, 3); // scheduled "now": after the pending 2
        l.schedule(4, 4); // the past is clamped to now
        assert_eq!(l.pop(), Some((10, 2)));
        assert_eq!(l.pop(), Some((10, 3)));
        assert_eq!(l.pop(), Some((10, 4)));
        assert_eq!(l.pop(), None);
    }

    #[test]
    fn agrees_with_a_sorted_reference_under_random_holds() {
        // 2,000 pending stays in the binary heap; 20,000 moves to the radix heap.
        for pending in [2_000, 20_000] {
            hold_against_reference(pending);
        }
    }

    fn hold_against_reference(pending: usize) {
        let mut rng = crate::workload::stream(5, 5, pending as u64);
        let mut l = EventList::new();
        let mut reference = std::collections::BTreeSet::new();
        let mut seq = 0u64;
        for _ in 0..pending {
            let t = rng.random_range(0..1_000u64);
            l.schedule(t, seq);
            reference.insert((t, seq));
            seq += 1;
        }
        for _ in 0..50_000 {
            let (t, s) = l.pop().unwrap();
            assert_eq!(Some((t, s)), reference.pop_first());
            // Hold: schedule a new event at or after now, sometimes at exactly now.
            let nt = t + rng.random_range(0..3u64) * rng.random_range(0..1_000u64);
            l.schedule(nt, seq);
            reference.insert((nt, seq));
            seq += 1;
        }
        assert_eq!(l.len(), reference.len());
        assert_eq!(l.radix.is_some(), pending > EventList::<u64>::RADIX_AT);
    }
}
