//! Projection: a window's usage onto a 30-day month, for both modes.
//!
//! - **By a factor.** Every usage line of the window is multiplied by `factor`. The
//!   simulator's factor is the month's length ÷ the window's ([`Projection::by_window`]): its
//!   window is taken as representative of the month. A drive's is occupancy: the expected
//!   session-seconds of a month ÷ the plan's in the scenario time it covered (the driver
//!   computes it from its plan), because in steady state usage grows with occupancy.
//! - **Per session** (a drive, [`PerSession`]). The lines that follow sessions rather than
//!   occupancy are the meter's `per_session` part ([`crate::meter::Metered::per_session`]):
//!   Worker requests and CPU, connects, lobby RPCs and rows, and the busy time of connects,
//!   closes and RPCs. Their monthly value is the month's expected arrivals × what each
//!   session the run started made, in place of the window's share × `factor`: a short
//!   window at the scenario's real rate holds few arrivals, and at a busy hour arrivals
//!   outpace occupancy.
//!
//! Stored data is priced from the month's stored rows as Cloudflare counts GB-months
//! ([`crate::usage::monthly_stored_gb_months`]): scaling the window's GB-months would
//! understate what accumulates. The lobby's rows are deleted again and store nothing.

use crate::report::{MonthlyUsage, RunUsage};
use crate::scenario::{Dur, Persistence, MONTH_SECONDS};
use crate::usage::Usage;

/// How a window's usage becomes a month's.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// How, in words.
    pub method: String,
    /// The multiplier of the window's usage (0: nothing to project from).
    pub factor: f64,
    /// The lines that follow sessions, projected per session instead (a drive).
    pub per_session: Option<PerSession>,
}

/// The usage lines that follow sessions, projected per session.
#[derive(Debug, Clone, PartialEq)]
pub struct PerSession {
    /// Their part of the window's usage (replaced; its `sqlite_rows_written` are the
    /// lobby's rows).
    pub window: Usage,
    /// Their monthly values (`sqlite_rows_written`: the lobby's rows).
    pub month: Usage,
    /// How they were projected.
    pub method: String,
}

impl PerSession {
    /// The month's values from `run`, the per-session part of the usage of the `sessions`
    /// sessions a run started: × `month_arrivals` ÷ `sessions`.
    pub fn from_sessions(
        window: Usage,
        run: &Usage,
        sessions: u64,
        month_arrivals: f64,
        method: String,
    ) -> PerSession {
        PerSession {
            window,
            month: run.scaled(month_arrivals / sessions.max(1) as f64),
            method,
        }
    }
}

impl Projection {
    /// The simulator's rule: the window is representative of the month, × month ÷ window.
    pub fn by_window(window: Dur) -> Projection {
        let factor = MONTH_SECONDS as f64 / window.secs();
        let method = if (factor - 1.0).abs() < 1e-12 {
            "the simulated window is a whole 30-day month (factor 1)".to_string()
        } else {
            format!(
                "window usage × {} (a 30-day month ÷ the {window} window), taking the window as representative of the month",
                crate::metrics::round3(factor),
            )
        };
        Projection {
            method,
            factor,
            per_session: None,
        }
    }

    /// The month of `window`, the usage of a window (storage priced under `persistence`).
    pub fn month(&self, window: &RunUsage, persistence: &Persistence) -> MonthlyUsage {
        let factor = self.factor;
        let mut method = self.method.clone();
        let mut billable = window.billable.scaled(factor);
        let mut lobby_rows_written = window.lobby_rows_written * factor;
        if let Some(ps) = &self.per_session {
            // (the window's line − its per-session part) × factor + the part's month.
            let (mut w, mut part) = (ps.window.clone(), ps.month.clone());
            for key in Usage::KEYS {
                let (Some(b), Some(pw), Some(pm)) =
                    (billable.get_mut(key), w.get_mut(key), part.get_mut(key))
                else {
                    continue;
                };
                if *pw != 0.0 || *pm != 0.0 {
                    *b -= *pw * factor;
                    *b += *pm;
                }
            }
            lobby_rows_written +=
                ps.month.sqlite_rows_written - ps.window.sqlite_rows_written * factor;
            method.push_str("; ");
            method.push_str(&ps.method);
        }
        let stored_rows = (billable.sqlite_rows_written - lobby_rows_written).max(0.0);
        if stored_rows > 0.0 {
            let (gb_months, how) = crate::usage::monthly_stored_gb_months(
                stored_rows,
                persistence.row_bytes,
                persistence.retention,
            );
            billable.sqlite_stored_gb_months = gb_months;
            method.push_str(&format!("; storage GB-months: {how}"));
        }
        MonthlyUsage {
            method,
            factor,
            usage: RunUsage {
                billable,
                overload_errors: (window.overload_errors as f64 * factor).round() as u64,
                object_requests: (window.object_requests as f64 * factor).round() as u64,
                lobby_rows_written,
                ..window.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> RunUsage {
        RunUsage {
            billable: Usage {
                worker_requests: 10.0,
                do_websocket_connects: 10.0,
                do_websocket_messages_in: 100.0,
                do_active_seconds: 3.0,
                sqlite_rows_written: 4.0,
                ..Usage::default()
            },
            lobby_rows_written: 4.0,
            overload_errors: 2,
            peak_connections: 7,
            ..RunUsage::default()
        }
    }

    #[test]
    fn by_window_multiplies_every_line() {
        let p = Projection::by_window(Dur(86_400 * 1_000_000_000));
        assert_eq!(p.factor, 30.0);
        assert!(
            p.method.contains("× 30 (a 30-day month ÷ the 1d window)"),
            "{}",
            p.method
        );
        let m = p.month(&window(), &Persistence::default());
        assert_eq!(m.usage.billable.do_websocket_messages_in, 3000.0);
        assert_eq!(m.usage.lobby_rows_written, 120.0);
        assert_eq!(m.usage.overload_errors, 60);
        assert_eq!(m.usage.peak_connections, 7, "peaks are copied");
        assert_eq!(
            m.usage.billable.sqlite_stored_gb_months, 0.0,
            "lobby rows store nothing"
        );
    }

    #[test]
    fn per_session_lines_replace_their_share_of_the_window() {
        // Of the window's 3 object-seconds, 1 follows sessions (connects and closes).
        let part = Usage {
            worker_requests: 10.0,
            do_websocket_connects: 10.0,
            do_active_seconds: 1.0,
            sqlite_rows_written: 4.0,
            ..Usage::default()
        };
        // The run's sessions (20 of them) made twice the window's per-session usage.
        let run = part.scaled(2.0);
        let p = Projection {
            method: "occupancy".into(),
            factor: 100.0,
            per_session: Some(PerSession::from_sessions(
                part,
                &run,
                20,
                1000.0,
                "per session".into(),
            )),
        };
        let m = p.month(&window(), &Persistence::default()).usage;
        // 1000 arrivals × (20 requests ÷ 20 sessions).
        assert_eq!(m.billable.worker_requests, 1000.0);
        assert_eq!(m.billable.do_websocket_connects, 1000.0);
        // Occupancy for the rest: 2 s × 100, plus 1000 × (2 s ÷ 20).
        assert!((m.billable.do_active_seconds - 300.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.billable.do_websocket_messages_in, 10_000.0);
        assert_eq!(m.lobby_rows_written, 400.0);
        assert_eq!(m.billable.sqlite_rows_written, 400.0);
        assert!(p.month(&window(), &Persistence::default()).method == "occupancy; per session");
    }
}
