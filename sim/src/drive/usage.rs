//! Usage: what the driver counted, through the meter ([`crate::meter`]) and the projection
//! ([`crate::projection`]), into the window's usage, its month and where every line came
//! from.
//!
//! Two meters:
//! - the **window's**: its sockets' openings and closings were fed as they happened (by
//!   [`super::state::State`]), its messages' rows at the time each was written; the other
//!   events are the window's counts, with the lobby's work derived from them as the Worker
//!   does it (1 RPC per join, departure and promotion; 1 change of its state per first
//!   answer admitted or queued, departure and promotion — checked by the reconciliation);
//! - the **run's**: every session the driver started, carried ones included, the whole run
//!   long; its part that follows sessions, ÷ the sessions started, × the month's expected
//!   arrivals, gives the monthly connects, Worker requests and CPU, lobby RPCs and rows, and
//!   the object time of connects and closes.
//!
//! Everything else is the window's usage × the occupancy factor: the expected session-seconds
//! of a 30-day month ÷ the plan's in the scenario time the window covered.

use std::collections::BTreeMap;

use super::plan::ProjectionBasis;
use super::state::{Measured, REFUSED};
use crate::meter::{BusyBasis, Counted, Counts, EventCosts, Meter, Setup, Source};
use crate::metrics::round3;
use crate::projection::{PerSession, Projection};
use crate::report::RunUsage;
use crate::scenario::Scenario;

/// The window's meter, before the run: `objects` room-hosting objects; the window's end is
/// its planned end until the books are closed.
pub(crate) fn window_meter(s: &Scenario, objects: u32, span_ns: u64, lobby: bool) -> Meter {
    Meter::new(Setup {
        end_ns: span_ns,
        ..Setup::of(s, objects, lobby, BusyBasis::PerEvent)
    })
}

/// How the driver counts.
fn counted() -> Counted {
    let m = |how: &str| Source::Measured(how.to_string());
    Counted {
        worker_requests: m(
            "upgrade requests of the window's sessions that got an HTTP answer",
        ),
        connects: m("upgrades answered 101 in the window"),
        messages_in: m("chat messages written in the window, less those refused not_admitted"),
        messages_out: m("message frames received by the driver's sockets"),
        closes: m("departures in the window (users leaving a seat or a queue)"),
        lobby: m(
            "derived from counts as the Worker does: 1 lobby RPC per join, departure and promotion, 1 change of its state per first answer admitted or queued, departure and promotion (checked by the reconciliation)",
        ),
        joins: m("seatings in the window (first answers joined, and promotions)"),
        object_time: m("per object, the time any driver socket to it was open"),
    }
}

/// The window's usage, its projection onto a month, and every line's source.
pub(crate) struct Billed {
    /// The window's usage.
    pub usage: RunUsage,
    /// How it becomes a month's.
    pub projection: Projection,
    /// For each usage line, where it came from.
    pub sources: BTreeMap<String, String>,
}

/// What the billing needs to know of the run besides its measurements.
pub(crate) struct BillInputs<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Whether joins went through the lobby.
    pub lobby: bool,
    /// The costs per event (measured or the scenario's).
    pub costs: &'a EventCosts,
    /// The projection basis of the scenario time covered.
    pub basis: &'a ProjectionBasis,
    /// Scenario time covered (ns) and as a label.
    pub covered_ns: u64,
    /// `1m`, `4.9s`.
    pub covered_label: &'a str,
}

/// Bill what the driver measured.
pub(crate) fn bill(m: &Measured, b: &BillInputs<'_>) -> Billed {
    let window = window_usage(m, b);
    let counted = counted();
    let mut sources = window.sources(b.costs, &counted);
    let metered = window.usage(b.costs);
    let projection = projection(m, b, &metered.per_session);
    if projection.per_session.is_some() {
        for key in [
            "worker_requests",
            "worker_cpu_ms",
            "do_requests",
            "do_websocket_connects",
        ] {
            if let Some(v) = sources.get_mut(key).filter(|v| !v.starts_with("0:")) {
                v.push_str(" (the month: per session started, see monthly_usage.method)");
            }
        }
        if let Some(v) = sources.get_mut("do_active_seconds") {
            v.push_str(" (the month: the part of connects, closes and lobby RPCs per session started, the rest by occupancy)");
        }
    }
    let c = &m.counts;
    let n = window.counts();
    Billed {
        usage: RunUsage {
            billable: metered.usage,
            objects_created: m.per_object.iter().filter(|o| o.upgrades > 0).count() as u64
                + u64::from(b.lobby),
            peak_connections: m.peaks.connections,
            peak_active_objects: m.peaks.active_objects,
            peak_queue_length: m.peaks.queue_length,
            peak_active_rooms: m.peaks.active_rooms,
            overload_errors: m
                .window
                .rejected_by_reason
                .get("overloaded")
                .copied()
                .unwrap_or(0),
            object_requests: c.upgrades + n.messages_in + n.lobby_rpcs + c.departures,
            lobby_rows_written: metered.lobby_rows_written,
        },
        projection,
        sources,
    }
}

/// The window's meter, fed with the window's counts and its messages' rows.
fn window_usage(m: &Measured, b: &BillInputs<'_>) -> Meter {
    let c = &m.counts;
    let mut meter = m.meter.clone();
    meter.set_lobby(b.lobby);
    let lobby = |n: u64| if b.lobby { n } else { 0 };
    meter.add(Counts {
        worker_requests: c.worker_requests,
        connects: c.upgrades,
        messages_in: c
            .messages_sent
            .saturating_sub(m.totals.not_admitted.min(c.messages_sent)),
        messages_out: c.deliveries,
        closes: c.departures,
        lobby_rpcs: lobby(c.upgrades + c.departures + c.promotions),
        // First answers admitted or queued (`seatings` counts admitted first answers and
        // promotions), departures.
        lobby_changes: c.seatings + m.window.queued + c.departures,
        joins: c.seatings,
    });
    for &at in &m.message_offsets {
        if at != REFUSED {
            meter.message_stored(at);
        }
    }
    meter
}

/// The run's sessions, whole: the part of their usage that follows sessions.
fn run_usage(m: &Measured, b: &BillInputs<'_>) -> crate::usage::Usage {
    let (t, c) = (&m.totals, &m.counts);
    let placed = t.admitted + t.queued_joins;
    let mut meter = Meter::new(Setup::of(b.scenario, 0, b.lobby, BusyBasis::PerEvent));
    meter.add(Counts {
        // Every upgrade, and the window's requests that got another answer.
        worker_requests: t.upgrades + c.worker_requests.saturating_sub(c.upgrades),
        connects: t.upgrades,
        closes: t.left + t.abandoned,
        // A join RPC per upgrade; a leave RPC and two changes (in, out) per join admitted
        // or queued; an RPC and a change per promotion.
        lobby_rpcs: if b.lobby {
            t.upgrades + placed + t.promoted
        } else {
            0
        },
        lobby_changes: 2 * placed + t.promoted,
        ..Counts::default()
    });
    meter.usage(b.costs).per_session
}

/// Occupancy for the window's usage, per session for the lines that follow sessions.
fn projection(m: &Measured, b: &BillInputs<'_>, window_part: &crate::usage::Usage) -> Projection {
    let pr = b.basis;
    let (method, factor) = match pr.factor() {
        Some(f) => (
            format!(
                "window usage × {}: a 30-day month's expected session-seconds ({}) ÷ the plan's in the {} of scenario time covered ({})",
                round3(f),
                crate::report::human_count(pr.month_session_seconds.round()),
                b.covered_label,
                crate::report::human_count(pr.window_session_seconds.round())
            ),
            f,
        ),
        None if b.covered_ns == 0 => (
            "none: the run stopped before the measured window began, so it covered none of it; the monthly usage and bill are zeros, not an estimate".to_string(),
            0.0,
        ),
        None => (
            "none: the scenario time covered holds no planned session".to_string(),
            0.0,
        ),
    };
    // A short window holds few arrivals (often none at the scenario's real rate), while every
    // session the driver started, carried ones included, measures what a session makes.
    let started = m.carried.started + m.window.started;
    let per_session = (started > 0 && factor > 0.0).then(|| {
        let run = run_usage(m, b);
        let t = &m.totals;
        let per = |n: u64| n as f64 / started as f64;
        let hib = b.scenario.platform.hibernation;
        let lines = match (b.lobby, hib) {
            (true, true) => "connects, Worker requests and CPU, lobby RPCs and rows, the object time of connects, closes and lobby RPCs",
            (true, false) => "connects, Worker requests and CPU, lobby RPCs, rows and time",
            (false, true) => "connects, Worker requests and CPU, the object time of connects and closes",
            (false, false) => "connects, Worker requests and CPU",
        };
        let mut each = format!(
            "{:.4} connects, {:.4} requests, {:.4} closes",
            per(t.upgrades),
            run.worker_requests / started as f64,
            per(t.left + t.abandoned)
        );
        if b.lobby {
            each.push_str(&format!(
                ", {:.4} lobby RPCs, {:.4} lobby changes",
                run.do_requests / started as f64,
                per(2 * (t.admitted + t.queued_joins) + t.promoted)
            ));
        }
        let method = format!(
            "{lines}: a 30-day month's expected arrivals ({}) × per session started ({} carried + {} arrivals: {each} each)",
            crate::report::human_count(pr.month_arrivals.round()),
            m.carried.started,
            m.window.started,
        );
        PerSession::from_sessions(window_part.clone(), &run, started, pr.month_arrivals, method)
    });
    Projection {
        method,
        factor,
        per_session,
    }
}
