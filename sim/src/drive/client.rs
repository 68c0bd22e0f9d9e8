//! Client: the driver's side of the wire protocol (`workers/PROTOCOL.md`): the target URL,
//! opening a WebSocket (TCP connect, then the HTTP upgrade), the server's frames, the
//! client's frames, and how each failure is classified.
//!
//! Everything here is also what the integration tests use to talk to the Worker, so the
//! driver and the tests cannot disagree about the protocol.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// An open WebSocket to the target.
pub type Ws = WebSocketStream<TcpStream>;

/// Where the Worker listens: `ws://HOST:PORT[/BASE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix before `/s/...` (empty, or starting with `/`, without a trailing `/`).
    pub base: String,
}

impl Target {
    /// Parse `ws://HOST[:PORT][/BASE]` (`http://` is accepted as a synonym). `wss://` and
    /// `https://` are refused: this build speaks plain TCP only.
    pub fn parse(s: &str) -> Result<Target, String> {
        let rest = if let Some(r) = s.strip_prefix("ws://") {
            r
        } else if let Some(r) = s.strip_prefix("http://") {
            r
        } else if s.starts_with("wss://") || s.starts_with("https://") {
            return Err(format!(
                "--target {s}: TLS (wss://) is not supported by this build; drive a plain ws:// \
                 endpoint (a local workerd, or a TLS-terminating proxy in front of a deployment)"
            ));
        } else {
            return Err(format!("--target {s}: expected ws://HOST:PORT"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("--target {s}: no host"));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            // [v6]:port
            let end = h
                .find(']')
                .ok_or_else(|| format!("--target {s}: bad IPv6 address"))?;
            let port = h[end + 1..].strip_prefix(':');
            (h[..end].to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("--target {s}: bad port {p:?}"))?,
        };
        if path.contains(['?', '#']) {
            return Err(format!("--target {s}: no query or fragment expected"));
        }
        Ok(Target {
            host,
            port,
            base: path.trim_end_matches('/').to_string(),
        })
    }

    /// A loopback target on `port`.
    pub fn loopback(port: u16) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port,
            base: String::new(),
        }
    }

    /// The path of a join: `/s/{strategy}/rooms/{room}?user={user}`.
    pub fn join_path(&self, strategy_segment: &str, room: &str, user: &str) -> String {
        format!(
            "{}/s/{strategy_segment}/rooms/{room}?user={user}",
            self.base
        )
    }

    /// A path under the target's base.
    pub fn path(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host:port` for a TCP connect.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host_for_url(), self.port)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.authority(), self.base)
    }
}

/// Why a connection could not be opened (or an HTTP request made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// TCP connect refused: nothing listens there.
    Refused,
    /// No TCP connection or no upgrade answer in time.
    Timeout,
    /// The connection was reset or closed during the handshake.
    Reset,
    /// Another I/O error.
    Io(String),
    /// The upgrade was answered with an HTTP status instead of 101.
    Status(u16),
    /// The handshake failed otherwise (bad response, protocol error).
    Handshake(String),
}

impl ConnectError {
    /// The fault category (a key of `drive.faults`).
    pub fn category(&self) -> &'static str {
        match self {
            ConnectError::Refused => "connect_refused",
            ConnectError::Timeout => "connect_timeout",
            ConnectError::Reset => "connect_reset",
            ConnectError::Io(_) => "connect_error",
            ConnectError::Status(s) if (400..500).contains(s) => "upgrade_4xx",
            ConnectError::Status(s) if (500..600).contains(s) => "upgrade_5xx",
            ConnectError::Status(_) => "upgrade_other_status",
            ConnectError::Handshake(_) => "handshake_error",
        }
    }

    /// Whether this failure suggests the target itself is gone (worth a probe).
    pub fn suggests_target_down(&self) -> bool {
        matches!(
            self,
            ConnectError::Refused | ConnectError::Reset | ConnectError::Timeout
        )
    }

    fn from_io(e: &io::Error) -> ConnectError {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ConnectError::Reset,
            _ => ConnectError::Io(e.to_string()),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::Timeout => f.write_str("timed out"),
            ConnectError::Reset => f.write_str("connection reset"),
            ConnectError::Io(e) => write!(f, "I/O error: {e}"),
            ConnectError::Status(s) => write!(f, "upgrade answered with HTTP {s}"),
            ConnectError::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The WebSocket settings of every driver connection: small buffers (memory per connection
/// matters at 10,000 sockets) and every frame written at once (latency matters more than
/// batching for a chat workload).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig {
        write_buffer_size: 0,
        max_write_buffer_size: 1 << 20,
        max_message_size: Some(1 << 20),
        max_frame_size: Some(1 << 20),
        ..WebSocketConfig::default()
    }
}

/// Open a TCP connection to the target (`TCP_NODELAY` on).
pub async fn tcp(target: &Target, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let addr = target.authority();
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::from_io(&e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Open a WebSocket to `path` (from [`Target::join_path`]): TCP connect and upgrade, within
/// `timeout` in all. Returns the socket and when the upgrade completed.
pub async fn connect(
    target: &Target,
    path: &str,
    timeout: Duration,
) -> Result<(Ws, Instant), ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = tcp(target, timeout).await?;
    let url = format!("ws://{}{path}", target.authority());
    let request = url
        .into_client_request()
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
    let upgraded = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())),
    )
    .await;
    match upgraded {
        Err(_) => Err(ConnectError::Timeout),
        Ok(Ok((ws, _response))) => Ok((ws, Instant::now())),
        Ok(Err(e)) => Err(classify_handshake(e)),
    }
}

fn classify_handshake(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(resp) => ConnectError::Status(resp.status().as_u16()),
        tungstenite::Error::Io(e) => ConnectError::from_io(&e),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ConnectError::Reset
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            | tungstenite::error::ProtocolError::HandshakeIncomplete,
        ) => ConnectError::Reset,
        other => ConnectError::Handshake(other.to_string()),
    }
}

/// A frame from the server (PROTOCOL.md, "Server → client").
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame<'a> {
    /// `joined`: a seat in `room`; `members` seated users including this one.
    Joined {
        /// Room.
        room: Cow<'a, str>,
        /// User.
        user: Cow<'a, str>,
        /// Seated users of the room at that moment, including this one.
        members: u64,
    },
    /// `queued` at a 1-based position (first frame only).
    Queued {
        /// Position.
        position: u64,
    },
    /// `position`: a queued user's new position.
    Position {
        /// Position.
        position: u64,
    },
    /// `rejected` with a reason; the server closes next.
    Rejected {
        /// Reason (`room_full`, `queue_full`, ...).
        reason: Cow<'a, str>,
    },
    /// A chat message of another member.
    Message {
        /// Sender's user id.
        from: Cow<'a, str>,
        /// Sender's sequence number.
        seq: u64,
        /// Sender's timestamp.
        ts: f64,
    },
    /// `error` with a code; the socket stays open (`not_admitted`) or closes (`internal`).
    Error {
        /// Code.
        code: Cow<'a, str>,
    },
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    room: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(default)]
    members: Option<u64>,
    #[serde(default)]
    position: Option<u64>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    ts: Option<f64>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

impl<'a> ServerFrame<'a> {
    /// Parse a text frame; `None` if it is not one of the documented frames.
    pub fn parse(text: &'a str) -> Option<ServerFrame<'a>> {
        let raw: RawFrame<'a> = serde_json::from_str(text).ok()?;
        Some(match raw.kind.as_ref() {
            "joined" => ServerFrame::Joined {
                room: raw.room?,
                user: raw.user?,
                members: raw.members?,
            },
            "queued" => ServerFrame::Queued {
                position: raw.position?,
            },
            "position" => ServerFrame::Position {
                position: raw.position?,
            },
            "rejected" => ServerFrame::Rejected {
                reason: raw.reason?,
            },
            "message" => ServerFrame::Message {
                from: raw.from?,
                seq: raw.seq?,
                ts: raw.ts?,
            },
            "error" => ServerFrame::Error { code: raw.code? },
            _ => return None,
        })
    }
}

/// The `leave` frame.
pub fn leave_frame() -> Message {
    Message::Text(r#"{"type":"leave"}"#.to_string())
}

/// A chat message frame: `seq`, `ts` (an integer, microseconds on the driver's clock) and a
/// body of `body` (ASCII, so its JSON encoding is itself).
pub fn message_frame(seq: u64, ts_us: u64, body: &str) -> Message {
    let mut s = String::with_capacity(48 + body.len());
    s.push_str(r#"{"type":"message","seq":"#);
    push_u64(&mut s, seq);
    s.push_str(r#","ts":"#);
    push_u64(&mut s, ts_us);
    s.push_str(r#","body":""#);
    s.push_str(body);
    s.push_str("\"}");
    Message::Text(s)
}

fn push_u64(s: &mut String, v: u64) {
    use std::fmt::Write as _;
    let _ = write!(s, "{v}");
}

/// The id of a driver user name `u{id}`.
pub fn user_id(name: &str) -> Option<u64> {
    name.strip_prefix('u')?.parse().ok()
}

/// How a read from an open socket ended, when it did not yield a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server sent a close frame with this code (1005 when it had none) and reason.
    Closed(u16, String),
    /// The connection ended without a close frame (reset, EOF): a drop.
    Dropped(String),
    /// A protocol error on the socket.
    Protocol(String),
}

impl StreamEnd {
    /// From the close frame of a `Message::Close`.
    pub fn from_close(frame: Option<tungstenite::protocol::CloseFrame<'_>>) -> StreamEnd {
        match frame {
            Some(f) => StreamEnd::Closed(u16::from(f.code), f.reason.into_owned()),
            None => StreamEnd::Closed(1005, String::new()),
        }
    }

    /// From a read error.
    pub fn from_error(e: tungstenite::Error) -> StreamEnd {
        match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                StreamEnd::Dropped("connection closed".into())
            }
            tungstenite::Error::Io(e) => StreamEnd::Dropped(e.to_string()),
            tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => StreamEnd::Dropped("reset without closing handshake".into()),
            other => StreamEnd::Protocol(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("ws://127.0.0.1:8787").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.base.as_str()),
            ("127.0.0.1", 8787, "")
        );
        assert_eq!(
            t.join_path("sharded-2", "r1", "u7"),
            "/s/sharded-2/rooms/r1?user=u7"
        );
        let t = Target::parse("http://example.com/base/").unwrap();
        assert_eq!((t.port, t.base.as_str()), (80, "/base"));
        let t = Target::parse("ws://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(t.authority(), "[::1]:9000");
        assert!(Target::parse("wss://x.workers.dev")
            .unwrap_err()
            .contains("TLS"));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("ws://x:0").is_err());
        assert!(Target::parse("ws://x:99999").is_err());
    }

    #[test]
    fn parses_server_frames() {
        assert_eq!(
            ServerFrame::parse(r#"{"type":"joined","room":"r1","user":"u2","members":3}"#),
            Some(ServerFrame::Joined {
                room: "r1".into(),
                user: "u2".into(),
                members: 3
            })
        );
        assert_eq!(
            ServerFrame::parse(r#"{"type":"message","from":"u9","seq":4,"ts":123456,"body":"x"}"#),
            Some(ServerFrame::Message {
                from: "u9".into(),
                seq: 4,
                ts: 123456.0
            })
        );
        assert_eq!(
            ServerFrame::parse(r#"{"type":"rejected","reason":"room_full"}"#),
            Some(ServerFrame::Rejected {
                reason: "room_full".into()
            })
        );
        assert_eq!(ServerFrame::parse(r#"{"type":"nope"}"#), None);
        assert_eq!(ServerFrame::parse("garbage"), None);
        assert_eq!(ServerFrame::parse(r#"{"type":"queued"}"#), None);
    }

    #[test]
    fn message_frame_is_valid_json_for_the_worker() {
        let Message::Text(t) = message_frame(12, 345, "xxxx") else {
            unreachable!()
        };
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 12);
        assert_eq!(v["ts"], 345);
        assert_eq!(v["body"], "xxxx");
        assert_eq!(user_id("u42"), Some(42));
        assert_eq!(user_id("x42"), None);
    }
}
