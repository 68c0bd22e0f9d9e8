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

/// The keys of a usage file that a report's `usage` and `monthly_usage` blocks carry beside
/// the billable ones: run figures (peaks, counts) and the projection's `method` and `factor`.
/// A usage file may contain them — a block pasted from a report prices as it stands — and
/// they are read and ignored: none is billed, and `lobby_rows_written` is already part of
/// `sqlite_rows_written`.
pub const REPORT_ONLY_KEYS: [&str; 10] = [
    "objects_created",
    "peak_connections",
    "peak_active_objects",
    "peak_queue_length",
    "peak_active_rooms",
    "overload_errors",
    "object_requests",
    "lobby_rows_written",
    "method",
    "factor",
];

impl Usage {
    /// The billable keys, in the order of the struct (and of a report's usage listing).
    pub const KEYS: [&'static str; 11] = [
        "worker_requests",
        "worker_cpu_ms",
        "do_requests",
        "do_websocket_connects",
        "do_websocket_messages_in",
        "do_websocket_messages_out",
        "do_active_seconds",
        "do_idle_tail_seconds",
        "sqlite_rows_read",
        "sqlite_rows_written",
        "sqlite_stored_gb_months",
    ];

    /// The quantity of billable key `key` (one of [`Usage::KEYS`]).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut f64> {
        Some(match key {
            "worker_requests" => &mut self.worker_requests,
            "worker_cpu_ms" => &mut self.worker_cpu_ms,
            "do_requests" => &mut self.do_requests,
            "do_websocket_connects" => &mut self.do_websocket_connects,
            "do_websocket_messages_in" => &mut self.do_websocket_messages_in,
            "do_websocket_messages_out" => &mut self.do_websocket_messages_out,
            "do_active_seconds" => &mut self.do_active_seconds,
            "do_idle_tail_seconds" => &mut self.do_idle_tail_seconds,
            "sqlite_rows_read" => &mut self.sqlite_rows_read,
            "sqlite_rows_written" => &mut self.sqlite_rows_written,
            "sqlite_stored_gb_months" => &mut self.sqlite_stored_gb_months,
            _ => return None,
        })
    }
}

/// A usage file as read: its billable quantities and the report-only keys it contained.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageFile {
    /// The billable quantities (absent keys are 0).
    pub usage: Usage,
    /// Keys of [`REPORT_ONLY_KEYS`] found in the file, sorted: read, not billed.
    pub ignored: Vec<String>,
}

impl UsageFile {
    /// Reads a usage file: TOML with the keys of [`Usage::KEYS`] at the top level, each a
    /// number (integer or float); absent keys are 0, [`REPORT_ONLY_KEYS`] are ignored.
    ///
    /// Refused, naming the file, line and key: an unknown key, a value that is not a number,
    /// and a quantity that cannot be priced — negative, NaN, infinite or above
    /// [`crate::pricing::MAX_QUANTITY`] (the one rule, [`crate::pricing::to_quantity`]).
    pub fn read(path: &std::path::Path) -> crate::Result<UsageFile> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a usage file; `path` is named in errors.
    pub fn parse(text: &str, path: &std::path::Path) -> crate::Result<UsageFile> {
        let table: toml::Table = crate::scenario::parse_toml(text, path)?;
        let fail = |key: &str, message: String| crate::scenario::locate(text, path, key, message);
        let mut usage = Usage::default();
        let mut ignored = Vec::new();
        for (key, value) in &table {
            if let Some(slot) = usage.get_mut(key) {
                let x = match value {
                    toml::Value::Integer(i) => *i as f64,
                    toml::Value::Float(f) => *f,
                    other => {
                        return Err(fail(
                            key,
                            format!("must be a number, found a {}", other.type_str()),
                        ))
                    }
                };
                crate::pricing::to_quantity(x).map_err(|e| fail(key, e.to_string()))?;
                *slot = x;
            } else if REPORT_ONLY_KEYS.contains(&key.as_str()) {
                ignored.push(key.clone());
            } else if value.is_table() {
                return Err(fail(
                    key,
                    "is a table: write the usage keys at the top level of the file, without a \
                     [header]"
                        .to_string(),
                ));
            } else {
                return Err(fail(
                    key,
                    format!(
                        "unknown key; a usage file takes {} (a report's {} are read and \
                         ignored)",
                        Usage::KEYS.join(", "),
                        REPORT_ONLY_KEYS.join(", ")
                    ),
                ));
            }
        }
        Ok(UsageFile { usage, ignored })
    }
}

/// The stored GB-months of a 30-day month in which `rows_per_month` rows of `row_bytes` bytes
/// each are written at the same pace every day, kept for `retention` (absent: forever), with
/// how it was computed.
///
/// Cloudflare counts a GB-month as the average, over the 30-day billing period, of each day's
/// peak stored data. With identical days that is exact in two cases:
/// - no retention, the first month from empty: storage only grows, so day `d`'s peak is its
///   end, `d` days of rows; the average over `d` = 1..30 is 31/60 of the month's rows (not
///   the time average, 1/2);
/// - a retention of whole days, in steady state: the rows of the last `retention` are stored
///   at every instant, the same volume all day, so each day's peak is that volume.
///
/// A retention with a fraction of a day makes the volume rise and fall within a day; its
/// daily peak depends on when in the day rows are written, which this rule does not see. It
/// prices the time average instead, which is below Cloudflare's figure by less than one
/// day's rows, and the method says so with that bound.
pub fn monthly_stored_gb_months(
    rows_per_month: f64,
    row_bytes: u32,
    retention: Option<crate::scenario::Dur>,
) -> (f64, String) {
    const DAYS: f64 = (crate::scenario::MONTH_SECONDS / 86_400) as f64;
    let gb_per_day = rows_per_month / DAYS * f64::from(row_bytes) / 1e9;
    match retention {
        None => (
            gb_per_day * (DAYS + 1.0) / 2.0,
            "no retention, the first month from empty: the average of each day's peak (day d \
             holds d days of rows), 31/60 of the month's rows"
                .to_string(),
        ),
        Some(r) => {
            const DAY_NS: u64 = 86_400 * 1_000_000_000;
            let steady = gb_per_day * r.secs() / 86_400.0;
            let fraction = (r.0 % DAY_NS) as f64 / DAY_NS as f64;
            if r.0 % DAY_NS == 0 {
                (
                    steady,
                    format!(
                        "steady state, rows kept {r}: the same volume all day, so each day's \
                         peak is that volume"
                    ),
                )
            } else {
                (
                    steady,
                    format!(
                        "steady state, rows kept {r}: the average volume; a retention that is \
                         not a whole number of days makes the volume rise and fall within a \
                         day, and Cloudflare bills each day's peak, which can be up to {:.6} \
                         GB-months more (less than one day's rows)",
                        gb_per_day * (1.0 - fraction)
                    ),
                )
            }
        }
    }
}
