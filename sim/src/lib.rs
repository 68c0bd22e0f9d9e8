//! dosim: simulate, drive and price real-time rooms on Cloudflare Durable Objects.
//!
//! dosim tells a team that runs real-time rooms (chat, games, collaboration) which sharding
//! design to run — one object for every room ([`Strategy::Single`]), one object per room
//! ([`Strategy::PerRoom`]) or rooms hashed onto N objects ([`Strategy::Sharded`]) — what it will
//! cost each month, and what latency users will see.
//!
//! # How a run flows
//!
//! 1. A [`scenario::Scenario`] is read from TOML and validated; every error names the file,
//!    the line and the key ([`InputError`]).
//! 2. A [`workload::Workload`] turns it into a seeded plan of sessions (arrival, room choice,
//!    length, patience) and per-session message times, generated lazily in arrival order.
//!    The simulator and the WebSocket driver execute the same plan.
//! 3. [`des`] runs the plan through the platform model: [`model::admission`] (limits, per-room
//!    FIFO queues, rejections — one pure module shared with the Worker through test
//!    vectors), [`model::object`] (single-threaded FIFO servers with an overload rule) and
//!    [`model::strategy`] (which object hosts which room), on the event list of [`events`].
//!    Time is integer nanoseconds; ties break by insertion order; the same scenario and
//!    seed give the same bytes.
//! 4. [`metrics`] collects latencies in HdrHistograms and the time series; [`meter`] turns
//!    the platform's events into billable [`usage::Usage`] (the driver feeds the same meter
//!    from what it measured), [`projection`] projects it onto a 30-day month, and a
//!    versioned [`pricing::PriceTable`] prices it into a [`pricing::Bill`].
//! 5. [`report::Report`] holds it all in one shape for simulated and measured runs, checks
//!    the [`threshold`]s, and renders text, JSON, CSV and Markdown.
//! 6. [`replicate`] repeats a simulated run under independent seeds, in parallel and
//!    deterministically, and reports each headline figure as a mean with a 95% confidence
//!    interval ([`interval`]).
//! 7. [`sweep`] runs it at several loads (the cost curve); with `--drive --local`,
//!    [`empirical`] also drives every point on a fresh local workerd ([`drive`]) and puts the
//!    measured figures beside the simulated ones.
//!
//! # Example
//!
//! ```
//! use dosim::{des, model::strategy::Strategy, pricing::PriceTable, scenario::Scenario};
//!
//! let scenario = Scenario::parse(
//!     "name = \"tiny\"\n[window]\nlength = \"1h\"\n[arrivals]\nsessions_per_day = 2400\n",
//!     std::path::Path::new("tiny.toml"),
//! )?;
//! let table = PriceTable::builtin(PriceTable::DEFAULT)?;
//! let report = des::simulate_report(&scenario, Strategy::PerRoom, &table, &[])?;
//! assert_eq!(report.mode, "simulate");
//! assert!(report.sessions.arrived > 0);
//! println!("{}", report.render_text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use model::strategy::Strategy;

pub mod calibration;
pub mod chart;
pub mod des;
pub mod drive;
pub mod empirical;
pub mod error;
pub mod events;
pub mod footprint;
pub mod interval;
pub mod meter;
pub mod metrics;
pub mod model;
pub mod pricing;
pub mod projection;
pub mod replicate;
pub mod report;
pub mod scenario;
pub mod sweep;
pub mod threshold;
pub mod usage;
pub mod validate;
pub mod vary;
pub mod workload;

pub use error::{Error, InputError, Result};
