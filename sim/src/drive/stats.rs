//! Stats: the Worker's `GET /s/{strategy}/stats` endpoint (PROTOCOL.md, "Operations
//! endpoints"), read with a bearer token over a minimal HTTP/1.1 client (over TLS for a
//! `wss://` target, with the target's TLS settings).
//!
//! Only the fields the driver reconciles are parsed; unknown fields are ignored so that the
//! Worker can grow its stats without breaking the driver.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::client::{stream, ConnectError, Target};
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

/// One room-hosting object's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct ObjectStats {
    pub name: String,
    pub kind: String,
    pub instance: String,
    /// Unix milliseconds (the Worker's clock).
    pub started_at: f64,
    /// When the object last started again after an eviction (its counters kept).
    pub incarnation_started_at: f64,
    /// Times the object started again after an eviction, its counters kept.
    pub restarts: u64,
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
    pub connections: u64,
    pub seated: u64,
    pub queued: u64,
    pub active_rooms: u64,
    pub max_queue_length: u64,
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
    /// Room-hosting objects, sorted by name.
    pub objects: Vec<ObjectStats>,
    /// The lobby, in lobby mode.
    pub lobby: Option<LobbyStats>,
}

/// Why stats could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// 401: no token, or the wrong one.
    #[error("the stats endpoint refused the token (HTTP 401)")]
    Unauthorized,
    /// Another HTTP status.
    #[error("the stats endpoint answered HTTP {0}")]
    Status(u16),
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
        s => Err(StatsError::Status(s)),
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
        s => Err(StatsError::Status(s)),
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
        assert_eq!(s.objects[0].connects, 3);
        assert_eq!(s.objects[0].rejections["room_full"], 1);
        assert_eq!(s.lobby.unwrap().rpc_join, 3);
        assert_eq!(s.limits.max_total_connections, Some(800));
    }
}
