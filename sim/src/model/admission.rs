//! Admission: who gets a seat, who waits, who is turned away.
//!
//! This is the one piece of logic that the simulator, the driver's expectations and the
//! Worker (`workers/src/admission.ts`) must agree on, so it is pure and deterministic: no
//! clock, no randomness, no I/O. Its behaviour is pinned by the shared test vectors in
//! `scenarios/vectors/admission.json`, which the Rust tests and the Worker tests both replay.
//!
//! Rules (also written in `scenarios/vectors/README.md`):
//! - A room is **active** while at least one user is seated in it; queued users do not make a
//!   room active.
//! - `join(user, room)`: a user already seated or queued anywhere is rejected `duplicate`.
//!   If the room's queue is non-empty the user queues behind it (no overtaking). Otherwise the
//!   user is admitted when the room has a free seat, the room is active or fewer than
//!   `max_active_rooms` rooms are active, and fewer than `max_total_connections` users are
//!   seated. If not admitted, the user is queued at the end of the room's queue (position is
//!   1-based) when the room's queue holds fewer than `queue_limit` users; otherwise rejected,
//!   with reason `queue_full` when a queue exists (`queue_limit > 0`), or else with the first
//!   limit that blocked, checked in the order `room_full`, `max_active_rooms`,
//!   `max_total_connections`.
//! - `leave(user)`: a seated user frees a seat; a queued user leaves the queue (abandons).
//!   Then waiting users are promoted: among the heads of all room queues, the one that has
//!   waited longest (global enqueue order) and could be admitted now is admitted; repeat until
//!   no head can be admitted. Promotions are returned in the order they happened.
//! - `timeout(user)`: a queued user's patience ran out: same as `leave` for a queued user; for
//!   a seated or unknown user it does nothing.

use std::collections::{BTreeSet, VecDeque};

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

/// A user (session) identifier.
pub type UserId = u64;
/// A room identifier.
pub type RoomId = u32;

/// The admission limits. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Seats per room (`max_connections_per_room`).
    pub room_capacity: u32,
    /// Rooms that may be active at once.
    pub max_active_rooms: Option<u32>,
    /// Users that may be seated at once, over all rooms.
    pub max_total_connections: Option<u32>,
    /// Users that may wait in one room's queue; 0 disables queueing.
    pub queue_limit: u32,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The room has no free seat and there is no queue.
    RoomFull,
    /// Too many rooms are active and there is no queue.
    MaxActiveRooms,
    /// Too many users are seated and there is no queue.
    MaxTotalConnections,
    /// The room's queue is full.
    QueueFull,
    /// The user is already seated or queued.
    Duplicate,
    /// An object on the join path was overloaded (simulator and Worker only, never produced
    /// by this module).
    Overloaded,
    /// The room's object already holds as many WebSockets as one object can (32,768
    /// hibernatable sockets on Cloudflare; simulator only, never produced by this module).
    ObjectSocketLimit,
}

impl RejectReason {
    /// Every reason, in report order.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::RoomFull,
        RejectReason::MaxActiveRooms,
        RejectReason::MaxTotalConnections,
        RejectReason::QueueFull,
        RejectReason::Duplicate,
        RejectReason::Overloaded,
        RejectReason::ObjectSocketLimit,
    ];

    /// The wire and report name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::RoomFull => "room_full",
            RejectReason::MaxActiveRooms => "max_active_rooms",
            RejectReason::MaxTotalConnections => "max_total_connections",
            RejectReason::QueueFull => "queue_full",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Overloaded => "overloaded",
            RejectReason::ObjectSocketLimit => "object_socket_limit",
        }
    }
}

/// The answer to a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The user has a seat.
    Admitted,
    /// The user waits at this 1-based position of the room's queue.
    Queued {
        /// 1-based position in the room's queue.
        position: u32,
    },
    /// The user was turned away.
    Rejected(RejectReason),
}

/// A queued user who got a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// Who was promoted.
    pub user: UserId,
    /// Into which room.
    pub room: RoomId,
}

/// The answer to a leave or a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveOutcome {
    /// A seated user left; these queued users were promoted as a result.
    Left {
        /// Promotions, in order.
        promoted: Vec<Promotion>,
    },
    /// A queued user left the queue; these users were promoted as a result (a departure from
    /// a queue can unblock nobody today, but the shape is kept uniform).
    Abandoned {
        /// Promotions, in order.
        promoted: Vec<Promotion>,
    },
    /// The user was neither seated nor queued (or, for a timeout, was seated): nothing changed.
    Unknown,
}

#[derive(Debug, Default)]
struct Room {
    seated: Vec<UserId>,
    /// (user, global enqueue sequence)
    queue: VecDeque<(UserId, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Seated(RoomId),
    Queued(RoomId),
}

/// The admission state of every room.
///
/// Lookups use hash maps keyed by user and room (FxHash: fast for integer keys), but nothing
/// ever iterates over them: every ordered decision goes through the `BTreeSet`s of queue
/// heads, so results are deterministic.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    rooms: HashMap<RoomId, Room>,
    places: HashMap<UserId, Place>,
    seated_total: u32,
    active_rooms: u32,
    next_seq: u64,
    /// Queue heads of rooms that have a free seat, keyed by enqueue order; split by whether
    /// the room is active, so the next promotable head is found in O(log n).
    ready_active: BTreeSet<(u64, RoomId)>,
    ready_inactive: BTreeSet<(u64, RoomId)>,
    queued_total: u32,
}

impl Admission {
    /// An empty building with these limits.
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            rooms: HashMap::default(),
            places: HashMap::default(),
            seated_total: 0,
            active_rooms: 0,
            next_seq: 0,
            ready_active: BTreeSet::new(),
            ready_inactive: BTreeSet::new(),
            queued_total: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Users seated over all rooms.
    pub fn seated_total(&self) -> u32 {
        self.seated_total
    }

    /// Rooms with at least one seated user.
    pub fn active_rooms(&self) -> u32 {
        self.active_rooms
    }

    /// Users waiting in all queues.
    pub fn queued_total(&self) -> u32 {
        self.queued_total
    }

    /// Users seated in `room`, in the order they were seated.
    pub fn seated_in(&self, room: RoomId) -> &[UserId] {
        self.rooms
            .get(&room)
            .map(|r| r.seated.as_slice())
            .unwrap_or(&[])
    }

    /// Users waiting for `room`, first in line first.
    pub fn queue_of(&self, room: RoomId) -> Vec<UserId> {
        self.rooms
            .get(&room)
            .map(|r| r.queue.iter().map(|&(u, _)| u).collect())
            .unwrap_or_default()
    }

    /// The 1-based queue position of a queued user.
    pub fn position_of(&self, user: UserId) -> Option<u32> {
        match self.places.get(&user)? {
            Place::Queued(room) => {
                let q = &self.rooms[room].queue;
                q.iter().position(|&(u, _)| u == user).map(|i| i as u32 + 1)
            }
            Place::Seated(_) => None,
        }
    }

    /// Whether `user` holds a seat.
    pub fn is_seated(&self, user: UserId) -> bool {
        matches!(self.places.get(&user), Some(Place::Seated(_)))
    }

    /// A user asks for a seat in `room`.
    pub fn join(&mut self, user: UserId, room: RoomId) -> JoinOutcome {
        if self.places.contains_key(&user) {
            return JoinOutcome::Rejected(RejectReason::Duplicate);
        }
        let queue_empty = self.rooms.get(&room).is_none_or(|r| r.queue.is_empty());
        if queue_empty {
            match self.blocker(room) {
                None => {
                    self.seat(user, room);
                    return JoinOutcome::Admitted;
                }
                Some(reason) if self.limits.queue_limit == 0 => {
                    return JoinOutcome::Rejected(reason);
                }
                Some(_) => {}
            }
        }
        let r = self.rooms.entry(room).or_default();
        if r.queue.len() as u32 >= self.limits.queue_limit {
            let reason = if self.limits.queue_limit == 0 {
                // Only reachable with a non-empty queue and queue_limit 0, which cannot
                // happen; kept total for safety.
                RejectReason::RoomFull
            } else {
                RejectReason::QueueFull
            };
            if r.seated.is_empty() && r.queue.is_empty() {
                self.rooms.remove(&room);
            }
            return JoinOutcome::Rejected(reason);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        r.queue.push_back((user, seq));
        let position = r.queue.len() as u32;
        self.places.insert(user, Place::Queued(room));
        self.queued_total += 1;
        if position == 1 {
            self.refresh_head(room);
        }
        JoinOutcome::Queued { position }
    }

    /// A user leaves (closes the socket), seated or queued.
    pub fn leave(&mut self, user: UserId) -> LeaveOutcome {
        match self.places.get(&user).copied() {
            None => LeaveOutcome::Unknown,
            Some(Place::Queued(room)) => {
                self.dequeue(user, room);
                LeaveOutcome::Abandoned {
                    promoted: self.promote(),
                }
            }
            Some(Place::Seated(room)) => {
                self.places.remove(&user);
                let r = self.rooms.get_mut(&room).expect("seated user has a room");
                let i = r.seated.iter().position(|&u| u == user).expect("seated");
                r.seated.remove(i);
                self.seated_total -= 1;
                if r.seated.is_empty() {
                    self.active_rooms -= 1;
                }
                self.refresh_head(room);
                self.drop_room_if_empty(room);
                LeaveOutcome::Left {
                    promoted: self.promote(),
                }
            }
        }
    }

    /// A queued user's patience ran out. Seated or unknown users are left alone.
    pub fn timeout(&mut self, user: UserId) -> LeaveOutcome {
        match self.places.get(&user) {
            Some(Place::Queued(_)) => self.leave(user),
            _ => LeaveOutcome::Unknown,
        }
    }

    /// The first limit that keeps a newcomer out of `room`, ignoring the queue.
    fn blocker(&self, room: RoomId) -> Option<RejectReason> {
        let seated = self.rooms.get(&room).map_or(0, |r| r.seated.len() as u32);
        if seated >= self.limits.room_capacity {
            return Some(RejectReason::RoomFull);
        }
        if seated == 0
            && self
                .limits
                .max_active_rooms
                .is_some_and(|m| self.active_rooms >= m)
        {
            return Some(RejectReason::MaxActiveRooms);
        }
        if self
            .limits
            .max_total_connections
            .is_some_and(|m| self.seated_total >= m)
        {
            return Some(RejectReason::MaxTotalConnections);
        }
        None
    }

    fn seat(&mut self, user: UserId, room: RoomId) {
        let r = self.rooms.entry(room).or_default();
        if r.seated.is_empty() {
            self.active_rooms += 1;
        }
        r.seated.push(user);
        self.seated_total += 1;
        self.places.insert(user, Place::Seated(room));
    }

    fn dequeue(&mut self, user: UserId, room: RoomId) {
        self.forget_head(room);
        let r = self.rooms.get_mut(&room).expect("queued user has a room");
        let i = r
            .queue
            .iter()
            .position(|&(u, _)| u == user)
            .expect("queued");
        r.queue.remove(i);
        self.places.remove(&user);
        self.queued_total -= 1;
        self.refresh_head(room);
        self.drop_room_if_empty(room);
    }

    fn drop_room_if_empty(&mut self, room: RoomId) {
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.seated.is_empty() && r.queue.is_empty())
        {
            self.rooms.remove(&room);
        }
    }

    /// Remove `room`'s head from the ready sets (whatever its state).
    fn forget_head(&mut self, room: RoomId) {
        if let Some(&(_, seq)) = self.rooms.get(&room).and_then(|r| r.queue.front()) {
            self.ready_active.remove(&(seq, room));
            self.ready_inactive.remove(&(seq, room));
        }
    }

    /// Put `room`'s head into the right ready set, or none, after the room changed.
    fn refresh_head(&mut self, room: RoomId) {
        self.forget_head(room);
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let Some(&(_, seq)) = r.queue.front() else {
            return;
        };
        let seated = r.seated.len() as u32;
        if seated < self.limits.room_capacity {
            if seated > 0 {
                self.ready_active.insert((seq, room));
            } else {
                self.ready_inactive.insert((seq, room));
            }
        }
    }

    /// Admit queue heads, longest-waiting first, while any can be admitted.
    fn promote(&mut self) -> Vec<Promotion> {
        let mut promoted = Vec::new();
        loop {
            if self
                .limits
                .max_total_connections
                .is_some_and(|m| self.seated_total >= m)
            {
                break;
            }
            let active_ok = self
                .limits
                .max_active_rooms
                .is_none_or(|m| self.active_rooms < m);
            let a = self.ready_active.first().copied();
            let b = if active_ok {
                self.ready_inactive.first().copied()
            } else {
                None
            };
            let (_, room) = match (a, b) {
                (Some(a), Some(b)) => a.min(b),
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => break,
            };
            self.forget_head(room);
            let r = self.rooms.get_mut(&room).expect("ready room exists");
            let (user, _) = r.queue.pop_front().expect("ready room has a head");
            self.queued_total -= 1;
            self.places.remove(&user);
            self.seat(user, room);
            self.refresh_head(room);
            promoted.push(Promotion { user, room });
        }
        promoted
    }
}
