//! Strategy: which Durable Object hosts which room.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A sharding design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Strategy {
    /// One object hosts every room (today's design).
    #[default]
    Single,
    /// One object per room (the proposal).
    PerRoom,
    /// Rooms hashed onto N objects.
    Sharded(u32),
}

impl Strategy {
    /// The object that hosts `room`, whose name is `room_name`. Sharding uses the 32-bit
    /// FNV-1a hash of the room name, as the Worker does, so the simulator and the Worker put
    /// the same rooms together.
    pub fn object_of(self, room: u32, room_name: &str) -> u32 {
        match self {
            Strategy::Single => 0,
            Strategy::PerRoom => room,
            Strategy::Sharded(n) => fnv1a32(room_name.as_bytes()) % n.max(1),
        }
    }

    /// How many room objects can exist for `rooms` rooms.
    pub fn object_count(self, rooms: u32) -> u32 {
        match self {
            Strategy::Single => 1,
            Strategy::PerRoom => rooms,
            Strategy::Sharded(n) => n.min(rooms).max(1),
        }
    }

    /// The path segment the Worker uses (`single`, `per-room`, `sharded-N`).
    pub fn url_segment(self) -> String {
        match self {
            Strategy::Single => "single".into(),
            Strategy::PerRoom => "per-room".into(),
            Strategy::Sharded(n) => format!("sharded-{n}"),
        }
    }
}

/// 32-bit FNV-1a.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Single => f.write_str("single"),
            Strategy::PerRoom => f.write_str("per-room"),
            Strategy::Sharded(n) => write!(f, "sharded:{n}"),
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("expected \"single\", \"per-room\" or \"sharded:N\", found {s:?}");
        match s.trim() {
            "single" => Ok(Strategy::Single),
            "per-room" => Ok(Strategy::PerRoom),
            other => {
                let n = other
                    .strip_prefix("sharded:")
                    .or_else(|| other.strip_prefix("sharded-"))
                    .ok_or_else(err)?;
                let n: u32 = n.parse().map_err(|_| err())?;
                if n == 0 || n > 1_000_000 {
                    return Err(format!("sharded:N needs 1 <= N <= 1000000, found {n}"));
                }
                Ok(Strategy::Sharded(n))
            }
        }
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_strategy() {
        for s in ["single", "per-room", "sharded:8"] {
            assert_eq!(s.parse::<Strategy>().unwrap().to_string(), s);
        }
        assert_eq!("sharded-4".parse::<Strategy>(), Ok(Strategy::Sharded(4)));
        assert!("sharded:0".parse::<Strategy>().is_err());
        assert!("shard:3".parse::<Strategy>().is_err());
    }

    #[test]
    fn fnv1a_matches_published_vectors() {
        // Test vectors of the FNV reference: "" and "a" and "foobar".
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn sharding_spreads_rooms_over_all_objects() {
        let mut seen = [0u32; 8];
        for room in 0..800 {
            let name = format!("r{room}");
            seen[Strategy::Sharded(8).object_of(room, &name) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
