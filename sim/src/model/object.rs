//! Object: one Durable Object as a single-threaded FIFO server with a billing state.
//!
//! Because service is FIFO and service times are drawn when a request arrives, a request's
//! start and end are known on arrival: `start = max(arrival, busy_until)`. That needs no
//! events of its own, and the object's busy time is simply the sum of its service times.
//! Arrivals must be offered in time order (the event list guarantees it).

use std::collections::VecDeque;

/// The overload rule: a request fails when it would wait behind too many requests or for too
/// long ("Durable Object is overloaded").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverloadRule {
    /// Requests in the object (waiting or in service) at which a new one fails.
    pub max_queue_depth: Option<u32>,
    /// Queueing delay beyond which a new request fails, in ns.
    pub max_queue_delay_ns: Option<u64>,
}

/// What happened to a request offered to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Served: it waited `wait_ns` and completes at `done_ns`.
    Done {
        /// Time spent waiting for the object.
        wait_ns: u64,
        /// Completion time.
        done_ns: u64,
    },
    /// Refused by the overload rule.
    Overloaded,
}

/// One object.
#[derive(Debug, Default, Clone)]
pub struct Object {
    busy_until: u64,
    /// Completion times of requests still in the object, oldest first.
    in_system: VecDeque<u64>,
    /// Total service time, in ns.
    pub busy_ns: u64,
    /// Requests served.
    pub served: u64,
    /// Sockets currently connected (seated or queued users).
    pub sockets: u32,
    /// Since when at least one socket has been connected.
    socket_since: u64,
    /// When the last socket closed (for the idle tail), if it has.
    idle_since: Option<u64>,
    /// Wall-clock ns with at least one socket connected.
    pub socket_ns: u64,
    /// Idle ns in memory after the last socket closed, capped by the tail.
    pub tail_ns: u64,
}

impl Object {
    /// Offer a request arriving at `now` that needs `service_ns`.
    #[inline]
    pub fn serve(&mut self, now: u64, service_ns: u64, rule: OverloadRule) -> Served {
        // Completion times are kept only for a depth rule: without one, an object that
        // cannot keep up would hold one for every request of the window.
        let track = rule.max_queue_depth.is_some();
        while self.in_system.front().is_some_and(|&d| d <= now) {
            self.in_system.pop_front();
        }
        let wait_ns = self.busy_until.saturating_sub(now);
        let too_deep = rule
            .max_queue_depth
            .is_some_and(|m| self.in_system.len() as u64 >= u64::from(m));
        let too_late = rule.max_queue_delay_ns.is_some_and(|m| wait_ns > m);
        if too_deep || too_late {
            return Served::Overloaded;
        }
        // Saturating: with no delay rule the backlog of an overwhelmed object can grow past
        // any time; what completes after the window is never seen.
        let done_ns = now.saturating_add(wait_ns).saturating_add(service_ns);
        self.busy_until = done_ns;
        if track {
            self.in_system.push_back(done_ns);
        }
        self.busy_ns = self.busy_ns.saturating_add(service_ns);
        self.served += 1;
        Served::Done { wait_ns, done_ns }
    }

    /// A socket opened at `now`; returns true if it is the object's first open socket.
    pub fn open_socket(&mut self, now: u64, tail_ns: u64) -> bool {
        self.sockets += 1;
        if self.sockets == 1 {
            if let Some(idle) = self.idle_since.take() {
                self.tail_ns += (now - idle).min(tail_ns);
            }
            self.socket_since = now;
            true
        } else {
            false
        }
    }

    /// A socket closed at `now`; returns true if it was the object's last one.
    pub fn close_socket(&mut self, now: u64) -> bool {
        debug_assert!(self.sockets > 0);
        self.sockets -= 1;
        if self.sockets == 0 {
            self.socket_ns += now - self.socket_since;
            self.idle_since = Some(now);
            true
        } else {
            false
        }
    }

    /// Close the books at the end of the window.
    pub fn finish(&mut self, end: u64, tail_ns: u64) {
        if self.sockets > 0 {
            self.socket_ns += end.saturating_sub(self.socket_since);
            self.socket_since = end;
        } else if let Some(idle) = self.idle_since.take() {
            self.tail_ns += end.saturating_sub(idle).min(tail_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_waits_behind_earlier_requests() {
        let mut o = Object::default();
        let r = OverloadRule::default();
        assert_eq!(
            o.serve(0, 10, r),
            Served::Done {
                wait_ns: 0,
                done_ns: 10
            }
        );
        assert_eq!(
            o.serve(5, 10, r),
            Served::Done {
                wait_ns: 5,
                done_ns: 20
            }
        );
        assert_eq!(
            o.serve(30, 10, r),
            Served::Done {
                wait_ns: 0,
                done_ns: 40
            }
        );
        assert_eq!(o.busy_ns, 30);
    }

    #[test]
    fn overload_rule_refuses_deep_or_late_requests() {
        let mut o = Object::default();
        let r = OverloadRule {
            max_queue_depth: Some(2),
            max_queue_delay_ns: Some(15),
        };
        assert!(matches!(o.serve(0, 10, r), Served::Done { .. }));
        assert!(matches!(o.serve(0, 10, r), Served::Done { .. }));
        assert_eq!(o.serve(0, 10, r), Served::Overloaded); // depth 2
        let mut o = Object::default();
        let r = OverloadRule {
            max_queue_depth: None,
            max_queue_delay_ns: Some(15),
        };
        o.serve(0, 10, r);
        o.serve(0, 10, r); // waits 10
        assert_eq!(o.serve(0, 10, r), Served::Overloaded); // would wait 20 > 15
    }

    #[test]
    fn an_overwhelmed_object_without_rules_keeps_no_state_per_request() {
        // No depth rule: nothing to count, so nothing kept (it once held every request).
        let mut o = Object::default();
        for _ in 0..10_000 {
            o.serve(0, 1_000, OverloadRule::default());
        }
        assert!(o.in_system.is_empty());
        assert_eq!(o.busy_ns, 10_000_000);
        // Completion times saturate instead of overflowing.
        let mut o = Object::default();
        for _ in 0..3 {
            o.serve(0, u64::MAX / 2, OverloadRule::default());
        }
        assert_eq!(o.busy_until, u64::MAX);
        assert_eq!(o.busy_ns, u64::MAX);
    }

    #[test]
    fn socket_time_and_capped_idle_tail() {
        let mut o = Object::default();
        assert!(o.open_socket(100, 50));
        assert!(!o.open_socket(150, 50));
        assert!(!o.close_socket(200));
        assert!(o.close_socket(300));
        assert!(o.open_socket(320, 50)); // tail 20
        assert!(o.close_socket(400));
        o.finish(1000, 50); // tail capped at 50
        assert_eq!(o.socket_ns, 200 + 80);
        assert_eq!(o.tail_ns, 20 + 50);
    }
}
