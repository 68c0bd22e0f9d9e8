//! Usage: the billable quantities a run produced (or a user measured elsewhere).
//!
//! The same struct is the `usage` block of a report, the `monthly_usage` block, and the
//! file that `dosim cost` prices ([`UsageFile`]). Every field is a plain count so that a usage
//! block from any source can be re-priced under any price table. A report's blocks also carry
//! run figures ([`REPORT_ONLY_KEYS`]); a usage file may contain them, and they are ignored, so
//! a block copied from a report prices to that report's bill. `scenarios/usage/example.toml`
//! is a commented example.
//!
//! Stored data of a simulated or driven month follows Cloudflare's GB-month (the average of
//! each day's peak): [`monthly_stored_gb_months`].

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
        let text = crate::error::read_text(path)?;
        Self::parse(&text, path)
    }

    /// Parses the text of a usage file; `path` is named in errors.
    pub fn parse(text: &str, path: &std::path::Path) -> crate::Result<UsageFile> {
        let table: toml::Table = crate::scenario::parse_toml(text, path).map_err(|e| {
            // A report (JSON) given instead of its usage block: say what the file must be.
            match e {
                crate::Error::Input(mut e) if text.trim_start().starts_with('{') => {
                    e.message += "; this looks like JSON: dosim cost reads TOML, the keys of a report's monthly_usage block (as scenarios/usage/example.toml)";
                    crate::Error::Input(e)
                }
                e => e,
            }
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_report_given_as_a_usage_file_says_what_is_expected() {
        // It said only "1:1: invalid key".
        let text = "{\"monthly_usage\": {\"worker_requests\": 5}}";
        let err = UsageFile::parse(text, std::path::Path::new("r.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("r.json:1:1")
                && err.contains("looks like JSON")
                && err.contains("monthly_usage"),
            "{err}"
        );
    }
    use crate::scenario::Dur;
    use std::path::Path;

    /// Cloudflare's GB-month worked out minute by minute: writes follow an uneven daily
    /// profile, identical every day; rows expire `retention_min` minutes after they are
    /// written (steady state: the days before the month wrote the same); each day's peak is
    /// the largest volume at any minute of it; the GB-months are the average of the 30 peaks.
    fn daily_peak_average(
        rows_per_month: f64,
        row_bytes: u32,
        retention_min: Option<usize>,
    ) -> f64 {
        const DAY: usize = 1440;
        let weights: Vec<f64> = (0..24).map(|h| 1.0 + ((h * 7) % 11) as f64).collect();
        let per_day = rows_per_month / 30.0;
        let total: f64 = weights.iter().sum::<f64>() * 60.0;
        let per_minute = |m: usize| per_day * weights[(m % DAY) / 60] / total;
        let warm = retention_min.map_or(0, |r| r.div_ceil(DAY) * DAY);
        let mut stored = vec![0.0; warm + 30 * DAY];
        let mut volume = 0.0;
        for (m, slot) in stored.iter_mut().enumerate() {
            volume += per_minute(m);
            if let Some(r) = retention_min.filter(|&r| m >= r) {
                volume -= per_minute(m - r);
            }
            *slot = volume;
        }
        let peaks: Vec<f64> = (0..30)
            .map(|d| {
                let day = &stored[warm + d * DAY..warm + (d + 1) * DAY];
                day.iter().copied().fold(0.0, f64::max)
            })
            .collect();
        peaks.iter().sum::<f64>() / 30.0 * f64::from(row_bytes) / 1e9
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn stored_gb_months_follow_cloudflares_daily_peaks() {
        let rows = 3_000_000_000.0;
        // No retention: 31/60 of the month's rows, the daily-peak average exactly (the time
        // average would be 1/2).
        let (gb, how) = monthly_stored_gb_months(rows, 256, None);
        assert!(close(gb, daily_peak_average(rows, 256, None)), "{gb}");
        assert!(close(gb, rows * 256.0 / 1e9 * 31.0 / 60.0), "{gb}");
        assert!(how.contains("each day's peak"), "{how}");
        // Whole days of retention: the same volume all day, so exact too.
        for days in [1, 7, 45] {
            let r = Dur(days * 86_400 * 1_000_000_000);
            let (gb, how) = monthly_stored_gb_months(rows, 100, Some(r));
            let expected = daily_peak_average(rows, 100, Some(days as usize * 1440));
            assert!(close(gb, expected), "{days}d: {gb} vs {expected}");
            assert!(!how.contains("up to"), "{how}");
        }
        // A fraction of a day: the time average, below the daily-peak figure by no more than
        // the bound the method states.
        for minutes in [360usize, 1440 + 720, 3 * 1440 + 90] {
            let r = Dur(minutes as u64 * 60 * 1_000_000_000);
            let (gb, how) = monthly_stored_gb_months(rows, 100, Some(r));
            let peak = daily_peak_average(rows, 100, Some(minutes));
            let per_day = rows / 30.0 * 100.0 / 1e9;
            let bound = per_day * (1.0 - (minutes % 1440) as f64 / 1440.0);
            assert!(
                gb < peak && peak <= gb + bound + 1e-9,
                "{minutes}: {gb} {peak} {bound}"
            );
            assert!(
                how.contains(&format!("up to {bound:.6} GB-months more")),
                "{how}"
            );
        }
    }

    fn parse(text: &str) -> crate::Result<UsageFile> {
        UsageFile::parse(text, Path::new("u.toml"))
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        e.to_string()
    }

    #[test]
    fn a_usage_file_takes_the_billable_keys_and_ignores_report_figures() {
        let f = parse(
            "worker_requests = 15_000_000\nsqlite_stored_gb_months = 7.5\n\
             peak_connections = 228\nmethod = \"the simulated window is a whole month\"\n\
             factor = 1.0\nlobby_rows_written = 12.0\n",
        )
        .unwrap();
        assert_eq!(f.usage.worker_requests, 15e6);
        assert_eq!(f.usage.sqlite_stored_gb_months, 7.5);
        assert_eq!(
            f.usage.sqlite_rows_written, 0.0,
            "lobby rows are not added again"
        );
        assert_eq!(
            f.ignored,
            ["factor", "lobby_rows_written", "method", "peak_connections"]
        );
        assert_eq!(parse("").unwrap().usage, Usage::default());
    }

    #[test]
    fn a_usage_file_refuses_what_cannot_be_priced_naming_line_and_key() {
        let e = err("worker_requests = 1\ndo_requests = 1e308\n");
        assert!(e.starts_with("u.toml:2:1: key `do_requests`: "), "{e}");
        assert!(
            e.contains("above the largest quantity dosim prices (1e15)"),
            "{e}"
        );
        let e = err("do_active_seconds = -3\n");
        assert!(e.contains(":1:1") && e.contains("negative"), "{e}");
        for bad in ["nan", "inf", "-inf"] {
            let e = err(&format!("worker_cpu_ms = {bad}\n"));
            assert!(e.contains("worker_cpu_ms") && e.contains("finite"), "{e}");
        }
        let e = err("\nworker_requests = \"15M\"\n");
        assert!(
            e.contains(":2:1") && e.contains("must be a number, found a string"),
            "{e}"
        );
        let e = err("wroker_cpu_ms = 2\n");
        assert!(
            e.contains("unknown key") && e.contains("worker_cpu_ms"),
            "{e}"
        );
        let e = err("[usage]\nworker_requests = 2\n");
        assert!(e.contains("key `usage`") && e.contains("top level"), "{e}");
        // 1e15 itself is priced.
        assert_eq!(
            parse("worker_requests = 1e15\n")
                .unwrap()
                .usage
                .worker_requests,
            1e15
        );
    }

    #[test]
    fn every_usage_key_has_a_slot() {
        let mut u = Usage::default();
        for (i, key) in Usage::KEYS.iter().enumerate() {
            *u.get_mut(key).unwrap() = i as f64 + 1.0;
        }
        let json = serde_json::to_value(&u).unwrap();
        let obj = json.as_object().unwrap();
        assert_eq!(obj.len(), Usage::KEYS.len());
        for (i, key) in Usage::KEYS.iter().enumerate() {
            assert_eq!(obj[*key], i as f64 + 1.0, "{key}");
        }
        assert!(REPORT_ONLY_KEYS.iter().all(|k| u.get_mut(k).is_none()));
    }
}
