//! Object: one Durable Object as a single-threaded FIFO server.
//!
//! Because service is FIFO and service times are drawn when a request arrives, a request's
//! start and end are known on arrival: `start = max(arrival, busy_until)`. That needs no
//! events of its own, and the object's busy time is simply the sum of its service times (the
//! meter, [`crate::meter`], adds them up).
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

/// One object as a server (its billing — busy time, socket time — is the meter's:
/// [`crate::meter`]).
#[derive(Debug, Default, Clone)]
pub struct Object {
    busy_until: u64,
    /// Completion times of requests still in the object, oldest first.
    in_system: VecDeque<u64>,
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
        Served::Done { wait_ns, done_ns }
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
        assert_eq!(o.busy_until, 10_000_000);
        // Completion times saturate instead of overflowing.
        let mut o = Object::default();
        for _ in 0..3 {
            o.serve(0, u64::MAX / 2, OverloadRule::default());
        }
        assert_eq!(o.busy_until, u64::MAX);
    }
}
