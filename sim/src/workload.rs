//! Workload: the seeded plan of sessions and messages that both modes execute.
//!
//! The plan is generated lazily, in arrival order, so memory grows with concurrent sessions,
//! not with the length of the window. Each session draws from its own random stream, derived
//! from the scenario seed and the session's number, so a session's plan (its room draw,
//! length, patience and message times) does not depend on what the simulator or the driver
//! did before it: the simulator and the driver execute exactly the same plan.

use rand::{Rng as _, RngCore, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Zipf};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::scenario::{DistSpec, Patience, RoomChoice, Scenario, NS_PER_SEC};

/// The random generator used everywhere (fast, small, seedable, portable).
pub type Rng = Xoshiro256PlusPlus;

/// Stream tags: one independent random stream per purpose.
pub mod streams {
    /// Arrival times.
    pub const ARRIVALS: u64 = 1;
    /// One stream per session (its index is the session number).
    pub const SESSION: u64 = 2;
    /// Network latencies and service times in the simulator.
    pub const PLATFORM: u64 = 3;
}

/// An independent random stream for `(seed, tag, index)` (SplitMix64 mixing, so nearby seeds
/// and indices give unrelated streams).
pub fn stream(seed: u64, tag: u64, index: u64) -> Rng {
    let mut x =
        seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut seed_bytes = [0u8; 32];
    for chunk in seed_bytes.chunks_mut(8) {
        chunk.copy_from_slice(&next().to_le_bytes());
    }
    Rng::from_seed(seed_bytes)
}

/// A compiled duration distribution that samples integer nanoseconds.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// Always this many nanoseconds.
    Constant(u64),
    /// Exponential (in nanoseconds).
    Exponential(Exp<f64>),
    /// Log-normal (in nanoseconds).
    LogNormal(LogNormal<f64>),
    /// Uniform in [min, max].
    Uniform(u64, u64),
}

impl Sampler {
    /// Compile a validated spec.
    pub fn new(spec: &DistSpec) -> Sampler {
        match *spec {
            DistSpec::Constant { value } => Sampler::Constant(value.0),
            DistSpec::Exponential { mean } if mean.0 == 0 => Sampler::Constant(0),
            DistSpec::Exponential { mean } => {
                Sampler::Exponential(Exp::new(1.0 / mean.0 as f64).expect("positive rate"))
            }
            DistSpec::Lognormal { median, sigma, p99 } => {
                let s = DistSpec::lognormal_sigma(median, sigma, p99);
                if median.0 == 0 || s == 0.0 {
                    Sampler::Constant(median.0)
                } else {
                    Sampler::LogNormal(
                        LogNormal::new((median.0 as f64).ln(), s).expect("validated sigma"),
                    )
                }
            }
            DistSpec::Uniform { min, max } => Sampler::Uniform(min.0, max.0),
        }
    }

    /// Largest draw, in nanoseconds (31.7 years): validated parameters are at most 366 days,
    /// so the sum of a few draws and a time in the window never overflows `u64`.
    pub const MAX_NS: f64 = 1e18;

    /// One draw, in nanoseconds.
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        match self {
            Sampler::Constant(v) => *v,
            Sampler::Exponential(d) => d.sample(rng).min(Self::MAX_NS) as u64,
            Sampler::LogNormal(d) => d.sample(rng).min(Self::MAX_NS) as u64,
            Sampler::Uniform(a, b) if a == b => *a,
            Sampler::Uniform(a, b) => rng.random_range(*a..=*b),
        }
    }
}

/// Which room a session goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomPick {
    /// This room, decided by the plan alone.
    Room(u32),
    /// The first room with a free seat at arrival time (decided by whoever runs the plan);
    /// this room if every room is full.
    Fill {
        /// The room to use when every room is full.
        fallback: u32,
    },
}

/// One session of the plan.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Sequence number, from 0 in arrival order.
    pub id: u64,
    /// When the user starts connecting, in ns from the start of the window.
    pub arrival_ns: u64,
    /// The room choice.
    pub room: RoomPick,
    /// Time in the room once admitted, in ns.
    pub length_ns: u64,
    /// How long the user waits in a queue before giving up (None = forever).
    pub patience_ns: Option<u64>,
    /// The session's own stream, positioned after the draws above; it yields the message
    /// intervals.
    pub rng: Rng,
}

impl SessionPlan {
    /// The user id on the wire.
    pub fn user_name(&self) -> String {
        format!("u{}", self.id)
    }
}

/// The name of room `index` on the wire and in sharding.
pub fn room_name(index: u32) -> String {
    format!("r{index}")
}

/// The plan generator of one scenario.
#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    window_ns: u64,
    hourly_rate: [f64; 24],
    rooms: u32,
    choice: RoomChoice,
    zipf: Option<Zipf<f64>>,
    length: Sampler,
    patience: Option<Sampler>,
    /// Time between two messages of one user.
    pub message_interval: Sampler,
}

impl Workload {
    /// The plan of a validated scenario.
    pub fn new(s: &Scenario) -> Workload {
        let rate = s.arrivals.mean_rate();
        let weights = s.arrivals.profile.weights();
        let mut hourly_rate = [0.0; 24];
        for (r, w) in hourly_rate.iter_mut().zip(weights) {
            *r = rate * w;
        }
        let zipf = match s.rooms.choice {
            RoomChoice::Skewed => Zipf::new(s.rooms.count as f64, s.rooms.skew).ok(),
            _ => None,
        };
        Workload {
            seed: s.seed,
            window_ns: s.window.length.0,
            hourly_rate,
            rooms: s.rooms.count,
            choice: s.rooms.choice,
            zipf,
            length: Sampler::new(&s.sessions.length),
            patience: match &s.sessions.patience {
                Patience::Unlimited => None,
                Patience::Limited(d) => Some(Sampler::new(d)),
            },
            message_interval: Sampler::new(&s.sessions.message_interval),
        }
    }

    /// The sessions arriving in `[0, window)`, in arrival order.
    pub fn sessions(&self) -> Sessions<'_> {
        self.sessions_between(0, self.window_ns)
    }

    /// The sessions arriving in `[from, until)`. The arrival process itself is always
    /// generated from time 0 so that a sub-window sees exactly the sessions of the full plan.
    pub fn sessions_between(&self, from: u64, until: u64) -> Sessions<'_> {
        Sessions {
            workload: self,
            rng: stream(self.seed, streams::ARRIVALS, 0),
            t: 0.0,
            from,
            until,
            next_id: 0,
        }
    }

    fn plan(&self, id: u64, arrival_ns: u64) -> SessionPlan {
        let mut rng = stream(self.seed, streams::SESSION, id);
        let draw = rng.next_u64();
        let uniform = (draw % u64::from(self.rooms)) as u32;
        let room = match self.choice {
            RoomChoice::Fill => RoomPick::Fill { fallback: uniform },
            RoomChoice::Uniform => RoomPick::Room(uniform),
            RoomChoice::Skewed => match &self.zipf {
                Some(z) => RoomPick::Room((z.sample(&mut rng) as u32).clamp(1, self.rooms) - 1),
                None => RoomPick::Room(uniform),
            },
        };
        let length_ns = self.length.sample(&mut rng);
        let patience_ns = self.patience.as_ref().map(|p| p.sample(&mut rng));
        SessionPlan {
            id,
            arrival_ns,
            room,
            length_ns,
            patience_ns,
            rng,
        }
    }

    /// The next message time of a user, `interval` after `after`.
    #[inline]
    pub fn next_message(&self, plan_rng: &mut Rng, after: u64) -> u64 {
        after.saturating_add(self.message_interval.sample(plan_rng).max(1))
    }
}

/// Iterator over planned sessions; see [`Workload::sessions`].
#[derive(Debug)]
pub struct Sessions<'a> {
    workload: &'a Workload,
    rng: Rng,
    /// Current time in seconds (f64 keeps the piecewise-constant rate exact enough; it is
    /// converted to integer ns once per arrival).
    t: f64,
    from: u64,
    until: u64,
    next_id: u64,
}

impl Iterator for Sessions<'_> {
    type Item = SessionPlan;

    fn next(&mut self) -> Option<SessionPlan> {
        // Piecewise-constant Poisson process: within an hour the rate is constant; when a draw
        // crosses the hour's end, restart at the boundary (the exponential is memoryless).
        let until_s = self.until as f64 / NS_PER_SEC as f64;
        loop {
            if self.t >= until_s {
                return None;
            }
            let hour_index = (self.t / 3600.0).floor();
            let boundary = (hour_index + 1.0) * 3600.0;
            let rate = self.workload.hourly_rate[(hour_index as u64 % 24) as usize];
            if rate <= 0.0 {
                self.t = boundary;
                continue;
            }
            let u: f64 = self.rng.random::<f64>();
            let gap = -(1.0 - u).ln() / rate;
            if self.t + gap >= boundary {
                self.t = boundary;
                continue;
            }
            self.t += gap;
            let arrival_ns = (self.t * NS_PER_SEC as f64) as u64;
            if arrival_ns >= self.until {
                return None;
            }
            let id = self.next_id;
            self.next_id += 1;
            if arrival_ns < self.from {
                continue;
            }
            return Some(self.workload.plan(id, arrival_ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use std::path::Path;

    fn scenario(extra: &str) -> Scenario {
        let text = format!("name = \"t\"\nseed = 7\n[arrivals]\nsessions_per_day = 8640\n{extra}");
        Scenario::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn arrival_count_matches_the_rate() {
        // 8640/day = 0.1/s over one day: Poisson mean 8640, sd ~93; allow 5 sd.
        let w = Workload::new(&scenario(""));
        let n = w.sessions().count() as f64;
        assert!((n - 8640.0).abs() < 5.0 * 8640f64.sqrt(), "{n}");
    }

    #[test]
    fn profile_moves_arrivals_into_business_hours() {
        let w = Workload::new(&scenario("profile = \"business-hours\""));
        let (mut inside, mut total) = (0.0f64, 0.0f64);
        for s in w.sessions() {
            let hour = s.arrival_ns / (3600 * NS_PER_SEC);
            total += 1.0;
            if (9..18).contains(&hour) {
                inside += 1.0;
            }
        }
        // Weights 1 for 9 hours, 0.1 for 15: expected share 9/10.5.
        let share = inside / total;
        assert!((share - 9.0 / 10.5).abs() < 0.02, "{share}");
    }

    #[test]
    fn plan_is_reproducible_and_sub_windows_agree() {
        let w = Workload::new(&scenario(""));
        let a: Vec<(u64, u64, u64)> = w
            .sessions()
            .map(|s| (s.id, s.arrival_ns, s.length_ns))
            .collect();
        let b: Vec<(u64, u64, u64)> = w
            .sessions()
            .map(|s| (s.id, s.arrival_ns, s.length_ns))
            .collect();
        assert_eq!(a, b);
        let from = 3 * 3600 * NS_PER_SEC;
        let until = 5 * 3600 * NS_PER_SEC;
        let sub: Vec<_> = w
            .sessions_between(from, until)
            .map(|s| (s.id, s.arrival_ns, s.length_ns))
            .collect();
        let expected: Vec<_> = a
            .iter()
            .copied()
            .filter(|&(_, t, _)| t >= from && t < until)
            .collect();
        assert_eq!(sub, expected);
    }

    #[test]
    fn extreme_profile_weights_are_normalised_not_lost() {
        // 24 × 1e308 sums to infinity: it is a flat day, not a day without arrivals.
        let huge = format!("profile = [{}]", vec!["1e308"; 24].join(", "));
        let flat = Workload::new(&scenario(""));
        let w = Workload::new(&scenario(&huge));
        let plan = |w: &Workload| w.sessions().map(|s| s.arrival_ns).collect::<Vec<_>>();
        assert_eq!(plan(&w), plan(&flat));
        // A lone subnormal weight: its mean underflows to 0, which made the arrival gap 0.
        // Every arrival is in hour 0, at the daily total (8640 ± 5 sd).
        let tiny = format!("profile = [5e-324{}]", ", 0".repeat(23));
        let s = scenario(&tiny);
        let mut expected = [0.0; 24];
        expected[0] = 24.0;
        assert_eq!(s.arrivals.profile.weights(), expected);
        let arrivals: Vec<u64> = Workload::new(&s).sessions().map(|p| p.arrival_ns).collect();
        assert!(arrivals.iter().all(|&t| t < 3600 * NS_PER_SEC));
        let n = arrivals.len() as f64;
        assert!((n - 8640.0).abs() < 5.0 * 8640f64.sqrt(), "{n}");
    }

    #[test]
    fn exponential_sampler_has_its_mean() {
        let s = Sampler::new(&DistSpec::Exponential {
            mean: crate::scenario::Dur(1_000_000),
        });
        let mut rng = stream(1, 9, 0);
        let n = 200_000;
        let mean = (0..n).map(|_| s.sample(&mut rng) as f64).sum::<f64>() / n as f64;
        // sd of the mean = 1e6/sqrt(n) ~ 2236; allow 5 sd.
        assert!((mean - 1e6).abs() < 5.0 * 1e6 / (n as f64).sqrt(), "{mean}");
    }
}
