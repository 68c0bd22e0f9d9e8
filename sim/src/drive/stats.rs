//! Stats: the Worker's `GET /s/{strategy}/stats` endpoint (PROTOCOL.md, "Operations
//! endpoints"), read with a bearer token over a minimal HTTP/1.1 client (over TLS for a
//! `wss://` target, with the target's TLS settings).
//!
//! Only the fields the driver reconciles are parsed; unknown fields are ignored so that the
//! Worker can grow its stats without breaking the driver.
//!
//! The objects listed are the live ones (`state`: `active`, asked by the stats call) and the
//! most recently idle lineages the Worker's registry still holds whole (`idle`); older ones
//! are summed in `pruned` (workers/src/registry.ts). Every counter is in exactly one of
//! those, so sums over a document are exact whatever has run before.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::client::{body_text, stream, ConnectError, Target};
use crate::model::strategy::Strategy;

/// The limits the Worker runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerLimits {
    /// Seats per room.
    pub max_connections_per_room: Option<u64>,
    /// Active rooms (null = unlimited).
    pub max_active_rooms: Option<u64>,
    /// Seated users (null = unlimited).
    pub max_total_connections: Option<u64>,
    /// Queue places per room.
    pub queue_limit: Option<u64>,
    /// Largest client frame.
    pub max_message_bytes: Option<u64>,
}

/// The event counters of a room-hosting object (or a sum of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct RoomCounters {
    pub connects: u64,
    pub admitted: u64,
    pub queued_joins: u64,
    pub promoted: u64,
    pub left: u64,
    pub abandoned: u64,
    pub rejections: BTreeMap<String, u64>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub not_admitted: u64,
    pub malformed: u64,
    pub oversized: u64,
    pub unknown: u64,
    pub lobby_rpcs: u64,
    pub lobby_errors: u64,
}

impl RoomCounters {
    /// Add `o` to these.
    pub fn add(&mut self, o: &RoomCounters) {
        self.zip(o, |a, b| *a += b);
    }

    /// Take `o` from these (saturating at 0).
    pub fn sub(&mut self, o: &RoomCounters) {
        self.zip(o, |a, b| *a = a.saturating_sub(b));
    }

    fn zip(&mut self, o: &RoomCounters, f: impl Fn(&mut u64, u64)) {
        for (a, b) in [
            (&mut self.connects, o.connects),
            (&mut self.admitted, o.admitted),
            (&mut self.queued_joins, o.queued_joins),
            (&mut self.promoted, o.promoted),
            (&mut self.left, o.left),
            (&mut self.abandoned, o.abandoned),
            (&mut self.messages_in, o.messages_in),
            (&mut self.messages_out, o.messages_out),
            (&mut self.not_admitted, o.not_admitted),
            (&mut self.malformed, o.malformed),
            (&mut self.oversized, o.oversized),
            (&mut self.unknown, o.unknown),
            (&mut self.lobby_rpcs, o.lobby_rpcs),
            (&mut self.lobby_errors, o.lobby_errors),
        ] {
            f(a, b);
        }
        for (k, &v) in &o.rejections {
            f(self.rejections.entry(k.clone()).or_default(), v);
        }
    }
}

/// One room-hosting object's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct ObjectStats {
    pub name: String,
    pub kind: String,
    /// `active` (the object answered) or `idle` (its lineage, held by the registry).
    pub state: String,
    /// The lineage: its counters count since `started_at` ("" when the object has none).
    pub instance: String,
    /// Unix milliseconds (the Worker's clock).
    pub started_at: f64,
    /// When the object last started again after an eviction (its counters kept).
    pub incarnation_started_at: f64,
    /// Times the object started again after an eviction, its counters kept.
    pub restarts: u64,
    #[serde(flatten)]
    pub counters: RoomCounters,
    pub connections: u64,
    pub seated: u64,
    pub queued: u64,
    pub active_rooms: u64,
    pub max_queue_length: u64,
}

/// A lineage whose counters the Worker lost (its object started again in a new isolate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct LostLineage {
    pub name: String,
    pub instance: String,
    /// When the registry noticed (Unix ms).
    pub detected_at: f64,
}

/// The registry's sum of the lineages it pruned (`per-room` and `sharded-N`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrunedStats {
    /// The registry's own lineage: the sum counts since it started (or was reset).
    pub instance: String,
    /// Unix ms.
    pub started_at: f64,
    /// Lineages folded into the sum.
    pub objects: u64,
    /// Their evictions, summed.
    pub restarts: u64,
    /// Lineages found gone with their counters (restarts).
    pub lost: u64,
    /// The most recent of those, oldest first (at most 20).
    pub lost_recent: Vec<LostLineage>,
    /// The summed counters.
    #[serde(flatten)]
    pub counters: RoomCounters,
}

/// The lobby's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct LobbyStats {
    pub name: String,
    pub instance: String,
    pub started_at: f64,
    pub rpc_join: u64,
    pub rpc_leave: u64,
    pub rpc_promote: u64,
    pub promote_failed: u64,
    pub admitted: u64,
    pub queued_joins: u64,
    pub promoted: u64,
    pub left: u64,
    pub abandoned: u64,
    pub rejections: BTreeMap<String, u64>,
    pub rows_written: u64,
    pub seated: u64,
    pub queued: u64,
    pub active_rooms: u64,
}

/// The whole stats document of one strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// The strategy segment (`single`, `per-room`, `sharded-N`).
    pub strategy: String,
    /// Whether joins go through the lobby.
    pub lobby_mode: bool,
    /// Whether the Hibernation API is used.
    pub hibernation: bool,
    /// The Worker's limits.
    pub limits: WorkerLimits,
    /// Room-hosting objects, sorted by name: the active ones and the recently idle ones.
    pub objects: Vec<ObjectStats>,
    /// The pruned lineages' sum (null for `single`, which has no registry).
    pub pruned: Option<PrunedStats>,
    /// Active objects that did not answer the stats call (their counters are missing).
    pub unanswered: Vec<String>,
    /// The lobby, in lobby mode.
    pub lobby: Option<LobbyStats>,
}

/// Why stats could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// 401: no token, or the wrong one.
    #[error("the stats endpoint refused the token (HTTP 401)")]
    Unauthorized,
    /// Another HTTP status, and the start of the body ([`body_text`]).
    #[error("the stats endpoint answered HTTP {0}{detail}", detail = if .1.is_empty() { String::new() } else { format!(": {}", .1) })]
    Status(u16, String),
    /// The request failed.
    #[error("stats request failed: {0}")]
    Connect(ConnectError),
    /// The answer was not the documented JSON.
    #[error("stats answer unreadable: {0}")]
    Parse(String),
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body (chunked transfer decoded).
    pub body: Vec<u8>,
}

/// `GET path` on the target with an optional bearer token (HTTP/1.1, `Connection: close`;
/// HTTPS for a `tls` target).
pub async fn http_get(
    target: &Target,
    path: &str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<HttpResponse, ConnectError> {
    let work = async {
        let mut stream = stream(target, timeout).await?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dosim/{}\r\nAccept: application/json\r\nConnection: close\r\n",
            target.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(t) = bearer {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        let io = |e: std::io::Error| ConnectError::Io(e.to_string());
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        // Read until the response is complete (workerd may keep the connection open
        // despite `Connection: close`), or the server closes (over TLS, perhaps without a
        // close_notify: an unexpected EOF).
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        loop {
            if complete(&buf) {
                break;
            }
            let n = match stream.read(&mut chunk).await {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                r => r.map_err(io)?,
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_response(&buf).map_err(ConnectError::Handshake)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(ConnectError::Timeout),
        Ok(r) => r,
    }
}

/// Whether `buf` holds a whole response: headers, then `Content-Length` bytes or a chunked
/// body up to its last chunk. Without either, the body ends when the server closes.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n") && dechunk(body).is_ok();
        }
    }
    // No body for these statuses.
    head.starts_with("http/1.1 1")
        || head.starts_with("http/1.1 204")
        || head.starts_with("http/1.1 304")
}

fn parse_response(buf: &[u8]) -> Result<HttpResponse, String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let raw = &buf[end + 4..];
    let length = head.split("\r\n").find_map(|l| {
        let l = l.to_ascii_lowercase();
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let body = if chunked {
        dechunk(raw)?
    } else {
        raw[..length.unwrap_or(raw.len()).min(raw.len())].to_vec()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_text = std::str::from_utf8(&raw[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
}

/// Why `GET /healthz` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// No answer (refused, timed out, reset, TLS).
    #[error("unreachable: {0}")]
    Unreachable(ConnectError),
    /// A 5xx answer: the Worker cannot serve anything (it names a configuration error in
    /// the body).
    #[error("GET /healthz answered HTTP {status}: {body}")]
    Failing {
        /// Status code.
        status: u16,
        /// The body ([`body_text`]).
        body: String,
    },
}

/// `GET /healthz` on the target: `Ok` unless it cannot be reached or answers 5xx (any
/// other answer, a 404 from another Worker say, is not this check's business). The Worker
/// answers every request 500 with the reason when its configuration is invalid.
pub async fn health(target: &Target, timeout: Duration) -> Result<(), HealthError> {
    let resp = http_get(target, &target.path("/healthz"), None, timeout)
        .await
        .map_err(HealthError::Unreachable)?;
    if (500..600).contains(&resp.status) {
        return Err(HealthError::Failing {
            status: resp.status,
            body: body_text(&resp.body),
        });
    }
    Ok(())
}

/// The stats path of a strategy.
pub fn stats_path(target: &Target, strategy: Strategy, detail: bool) -> String {
    target.path(&format!(
        "/s/{}/stats{}",
        strategy.url_segment(),
        if detail { "?detail=1" } else { "" }
    ))
}

/// Read the stats of `strategy` with `token`.
pub async fn fetch(
    target: &Target,
    strategy: Strategy,
    token: &str,
    timeout: Duration,
) -> Result<Stats, StatsError> {
    fetch_with(target, strategy, Some(token), false, timeout).await
}

/// Read the stats with any (or no) token, with or without per-room detail.
pub async fn fetch_with(
    target: &Target,
    strategy: Strategy,
    token: Option<&str>,
    detail: bool,
    timeout: Duration,
) -> Result<Stats, StatsError> {
    let path = stats_path(target, strategy, detail);
    let resp = http_get(target, &path, token, timeout)
        .await
        .map_err(StatsError::Connect)?;
    match resp.status {
        200 => serde_json::from_slice(&resp.body).map_err(|e| StatsError::Parse(e.to_string())),
        401 => Err(StatsError::Unauthorized),
        s => Err(StatsError::Status(s, body_text(&resp.body))),
    }
}

/// Read the stats document as raw JSON (for tests that check the per-room detail).
pub async fn fetch_json(
    target: &Target,
    strategy: Strategy,
    token: &str,
    timeout: Duration,
) -> Result<serde_json::Value, StatsError> {
    let path = stats_path(target, strategy, true);
    let resp = http_get(target, &path, Some(token), timeout)
        .await
        .map_err(StatsError::Connect)?;
    match resp.status {
        200 => serde_json::from_slice(&resp.body).map_err(|e| StatsError::Parse(e.to_string())),
        401 => Err(StatsError::Unauthorized),
        s => Err(StatsError::Status(s, body_text(&resp.body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let raw = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        assert!(complete(raw));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"
        ));
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.body.len()), (401, 0));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn parses_the_documented_stats() {
        let doc = r#"{"strategy":"sharded-2","lobby_mode":true,"hibernation":false,
          "limits":{"max_connections_per_room":8,"max_active_rooms":null,"max_total_connections":800,"queue_limit":0,"max_message_bytes":4096},
          "objects":[{"name":"shard:2:1","kind":"shard","instance":"x","started_at":1790000000000,"connects":3,"rejections":{"room_full":1},"messages_in":2,"extra":1}],
          "lobby":{"name":"lobby:sharded-2","rpc_join":3},"total":{}}"#;
        let s: Stats = serde_json::from_str(doc).unwrap();
        assert_eq!(s.objects[0].counters.connects, 3);
        assert_eq!(s.objects[0].counters.rejections["room_full"], 1);
        assert_eq!(s.pruned, None);
        assert_eq!(s.lobby.unwrap().rpc_join, 3);
        assert_eq!(s.limits.max_total_connections, Some(800));
    }

    #[test]
    fn a_failed_stats_read_quotes_the_answer() {
        assert_eq!(
            StatsError::Status(500, "configuration error: X".into()).to_string(),
            "the stats endpoint answered HTTP 500: configuration error: X"
        );
        assert_eq!(
            StatsError::Status(404, String::new()).to_string(),
            "the stats endpoint answered HTTP 404"
        );
    }

    #[test]
    fn counters_add_and_subtract_every_field() {
        let doc = r#"{"connects":1,"admitted":2,"queued_joins":3,"promoted":4,"left":5,"abandoned":6,
          "rejections":{"room_full":7},"messages_in":8,"messages_out":9,"not_admitted":10,
          "malformed":11,"oversized":12,"unknown":13,"lobby_rpcs":14,"lobby_errors":15}"#;
        let c: RoomCounters = serde_json::from_str(doc).unwrap();
        let mut twice = c.clone();
        twice.add(&c);
        let v = serde_json::to_value(&twice).unwrap();
        for (k, x) in serde_json::from_str::<serde_json::Value>(doc)
            .unwrap()
            .as_object()
            .unwrap()
        {
            if let Some(n) = x.as_u64() {
                assert_eq!(v[k].as_u64(), Some(2 * n), "{k}");
            }
        }
        assert_eq!(twice.rejections["room_full"], 14);
        twice.sub(&c);
        assert_eq!(twice, c);
        twice.sub(&c);
        twice.sub(&c);
        assert_eq!(twice.connects, 0, "saturates");
    }
}
