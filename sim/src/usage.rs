//! Usage: the billable quantities a run produced (or a user measured elsewhere).
//!
//! The same struct is the `usage` block of a report, the `monthly_usage` block, and the
//! file that `dosim cost` prices. Every field is a plain count so that a usage block from any
//! source can be re-priced under any price table.

use serde::{Deserialize, Serialize};

/// Billable usage over some window.
///
/// Conventions (they matter for pricing):
/// - `do_requests` counts Durable Object requests **other than** WebSocket connects and
///   WebSocket messages: HTTP requests, RPC calls (for example to the lobby) and alarms.
///   WebSocket connects are `do_websocket_connects`; incoming messages are
///   `do_websocket_messages_in` and are converted to billable requests by the price table's
///   message ratio (20:1 today).
/// - `do_active_seconds` is object wall-clock seconds the platform bills (one object for one
///   second = 1), excluding the idle tail. The price table converts it to GB-s.
/// - `do_idle_tail_seconds` is the time non-hibernating objects spent in memory, idle, after
///   their last socket closed; whether it is billed is a price-table switch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    /// Inbound Worker requests (each WebSocket upgrade is one).
    pub worker_requests: f64,
    /// Worker CPU time in milliseconds.
    pub worker_cpu_ms: f64,
    /// Durable Object requests other than WebSocket connects and messages.
    pub do_requests: f64,
    /// WebSocket connections accepted by Durable Objects.
    pub do_websocket_connects: f64,
    /// WebSocket messages received by Durable Objects.
    pub do_websocket_messages_in: f64,
    /// WebSocket messages sent by Durable Objects (free, reported for completeness).
    pub do_websocket_messages_out: f64,
    /// Billed object-seconds (active), before conversion to GB-s.
    pub do_active_seconds: f64,
    /// Idle-in-memory object-seconds after the last socket closed (non-hibernating objects).
    pub do_idle_tail_seconds: f64,
    /// SQLite rows read.
    pub sqlite_rows_read: f64,
    /// SQLite rows written.
    pub sqlite_rows_written: f64,
    /// SQLite storage in GB-months.
    pub sqlite_stored_gb_months: f64,
}

impl Usage {
    /// Every quantity multiplied by `factor` (used to project a window onto a month).
    pub fn scaled(&self, factor: f64) -> Usage {
        Usage {
            worker_requests: self.worker_requests * factor,
            worker_cpu_ms: self.worker_cpu_ms * factor,
            do_requests: self.do_requests * factor,
            do_websocket_connects: self.do_websocket_connects * factor,
            do_websocket_messages_in: self.do_websocket_messages_in * factor,
            do_websocket_messages_out: self.do_websocket_messages_out * factor,
            do_active_seconds: self.do_active_seconds * factor,
            do_idle_tail_seconds: self.do_idle_tail_seconds * factor,
            sqlite_rows_read: self.sqlite_rows_read * factor,
            sqlite_rows_written: self.sqlite_rows_written * factor,
            sqlite_stored_gb_months: self.sqlite_stored_gb_months * factor,
        }
    }
}

impl Usage {
    /// Read a usage file (TOML, the keys above; absent keys are zero).
    pub fn from_file(path: &std::path::Path) -> crate::Result<Usage> {
        let text = crate::error::read_text(path)?;
        let usage: Usage = crate::scenario::parse_toml(&text, path)?;
        let fields = [
            ("worker_requests", usage.worker_requests),
            ("worker_cpu_ms", usage.worker_cpu_ms),
            ("do_requests", usage.do_requests),
            ("do_websocket_connects", usage.do_websocket_connects),
            ("do_websocket_messages_in", usage.do_websocket_messages_in),
            ("do_websocket_messages_out", usage.do_websocket_messages_out),
            ("do_active_seconds", usage.do_active_seconds),
            ("do_idle_tail_seconds", usage.do_idle_tail_seconds),
            ("sqlite_rows_read", usage.sqlite_rows_read),
            ("sqlite_rows_written", usage.sqlite_rows_written),
            ("sqlite_stored_gb_months", usage.sqlite_stored_gb_months),
        ];
        for (key, v) in fields {
            if !(v.is_finite() && v >= 0.0) {
                return Err(crate::scenario::locate(
                    &text,
                    path,
                    key,
                    format!("must be a non-negative number, found {v}"),
                ));
            }
        }
        Ok(usage)
    }
}
