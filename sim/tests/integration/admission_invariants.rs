use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dosim::model::admission::{Admission, JoinOutcome, LeaveOutcome, Limits};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Join(u64, u32),
    Leave(u64),
    Timeout(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..40, 0u32..6).prop_map(|(u, r)| Op::Join(u, r)),
        2 => (0u64..40).prop_map(Op::Leave),
        1 => (0u64..40).prop_map(Op::Timeout),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        1u32..5,
        prop::option::of(1u32..4),
        prop::option::of(1u32..10),
        0u32..4,
    )
        .prop_map(|(c, a, t, q)| Limits {
            room_capacity: c,
            max_active_rooms: a,
            max_total_connections: t,
            queue_limit: q,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Capacity and global limits hold after every step; queues are FIFO; every join is
    /// accounted for (admitted + abandoned + rejected + still waiting = joins).
    #[test]
    fn admission_invariants_hold(limits in limits(), ops in prop::collection::vec(op(), 1..200)) {
        let mut adm = Admission::new(limits);
        // The test's own model of who waits where, in arrival order.
        let mut queues: BTreeMap<u32, VecDeque<u64>> = BTreeMap::new();
        let mut seated: BTreeSet<u64> = BTreeSet::new();
        let (mut joins, mut admitted, mut abandoned, mut rejected) = (0u64, 0u64, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Join(u, r) => {
                    let known = seated.contains(&u) || queues.values().any(|q| q.contains(&u));
                    let out = adm.join(u, r);
                    if known {
                        prop_assert!(matches!(out, JoinOutcome::Rejected(_)), "duplicate admitted");
                        continue;
                    }
                    joins += 1;
                    match out {
                        JoinOutcome::Admitted => { admitted += 1; seated.insert(u); }
                        JoinOutcome::Queued { position } => {
                            let q = queues.entry(r).or_default();
                            q.push_back(u);
                            prop_assert_eq!(position as usize, q.len());
                        }
                        JoinOutcome::Rejected(_) => rejected += 1,
                    }
                }
                Op::Leave(u) | Op::Timeout(u) => {
                    let timeout = matches!(op, Op::Timeout(_));
                    let out = if timeout { adm.timeout(u) } else { adm.leave(u) };
                    let promoted = match out {
                        LeaveOutcome::Left { promoted } => {
                            prop_assert!(!timeout && seated.remove(&u));
                            promoted
                        }
                        LeaveOutcome::Abandoned { promoted } => {
                            let q = queues.values_mut().find(|q| q.contains(&u));
                            prop_assert!(q.is_some(), "abandoned user was not queued");
                            q.unwrap().retain(|&x| x != u);
                            abandoned += 1;
                            promoted
                        }
                        LeaveOutcome::Unknown => {
                            prop_assert!(timeout || !seated.contains(&u));
                            Vec::new()
                        }
                    };
                    for p in promoted {
                        // FIFO: only the head of a room's queue is ever promoted.
                        let q = queues.get_mut(&p.room).expect("promoted from a queue");
                        prop_assert_eq!(q.pop_front(), Some(p.user), "promotion skipped the head");
                        seated.insert(p.user);
                        admitted += 1;
                    }
                }
            }
            // Capacity and global limits.
            let mut active = 0;
            for r in 0..6 {
                let n = adm.seated_in(r).len() as u32;
                prop_assert!(n <= limits.room_capacity);
                if n > 0 { active += 1; }
                let want: Vec<u64> = queues.get(&r).map(|q| q.iter().copied().collect()).unwrap_or_default();
                prop_assert_eq!(adm.queue_of(r), want, "queue order differs");
                prop_assert!(adm.queue_of(r).len() as u32 <= limits.queue_limit);
            }
            prop_assert_eq!(active, adm.active_rooms());
            // Work-conserving: a waiting head is always blocked by some limit.
            for (r, q) in &queues {
                if q.is_empty() { continue; }
                let n = adm.seated_in(*r).len() as u32;
                let blocked = n >= limits.room_capacity
                    || (n == 0 && limits.max_active_rooms.is_some_and(|m| adm.active_rooms() >= m))
                    || limits.max_total_connections.is_some_and(|m| adm.seated_total() >= m);
                prop_assert!(blocked, "room {} has a promotable head", r);
            }
            if let Some(m) = limits.max_active_rooms { prop_assert!(adm.active_rooms() <= m); }
            if let Some(m) = limits.max_total_connections { prop_assert!(adm.seated_total() <= m); }
            prop_assert_eq!(adm.seated_total() as usize, seated.len());
            let waiting: u64 = queues.values().map(|q| q.len() as u64).sum();
            prop_assert_eq!(u64::from(adm.queued_total()), waiting);
            // No session is lost. (Admitted users who left later still count as admitted.)
            prop_assert_eq!(joins, admitted + abandoned + rejected + waiting);
        }
    }
}
