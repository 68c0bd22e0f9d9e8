//! Client: the driver's side of the wire protocol (`workers/PROTOCOL.md`): the target URL,
//! opening a WebSocket (TCP connect, the TLS handshake for `wss://`, then the HTTP upgrade),
//! the server's frames, the client's frames, and how each failure is classified.
//!
//! # TLS
//!
//! A `wss://` (or `https://`) target, such as a deployment on `workers.dev`, is reached over
//! TLS with rustls (the `ring` provider): the server's certificate must chain to one of the
//! Mozilla roots bundled at build time (`webpki-roots`; the system's store is not read) or to
//! a root of the PEM file given to `dosim drive --ca-cert` (a private CA, mkcert, a corporate
//! proxy), and name the target's host (SNI is the host). The stats endpoint is read over the
//! same TLS settings. A failed handshake is the fault `tls_error`, with rustls's reason.
//!
//! Everything here is also what the integration tests use to talk to the Worker, so the
//! driver and the tests cannot disagree about the protocol.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::stamp::StampedTcp;

/// A connection to the target: plain TCP, or TLS over TCP for a `wss://` target, reading
/// with the kernel's receive stamps ([`StampedTcp`]). The TLS state is boxed so that a plain
/// socket stays small: a rustls connection held inline would add kilobytes to each of the
/// driver's 10,000 plain connections (tokio-tungstenite's `MaybeTlsStream` holds it inline).
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(StampedTcp),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<StampedTcp>>),
}

impl Stream {
    fn tcp(&self) -> &StampedTcp {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// When the bytes of the last read arrived (the kernel's stamp), if the kernel stamps
    /// this socket.
    pub fn arrived(&self) -> Option<Instant> {
        self.tcp().arrived()
    }

    /// Whether the kernel stamps what this socket receives.
    pub fn stamped(&self) -> bool {
        self.tcp().stamped()
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open WebSocket to the target.
pub type Ws = WebSocketStream<Stream>;

/// Where the Worker listens: `ws://HOST:PORT[/BASE]` or `wss://HOST:PORT[/BASE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix before `/s/...` (empty, or starting with `/`, without a trailing `/`).
    pub base: String,
    /// Whether connections use TLS (`wss://`, `https://`).
    pub tls: bool,
    /// The TLS settings of a `tls` target; `None`: the bundled roots only
    /// ([`TlsConfig::webpki`]).
    pub tls_config: Option<TlsConfig>,
    /// Local source addresses the connections are spread over (`--source-addr`); `None`:
    /// the kernel's choice.
    pub sources: Option<SourceAddrs>,
}

/// Local addresses to bind connections to before connecting, taken in turn (one per
/// connection), so that one process can hold more connections to one `host:port` than one
/// source address has ports (about 28,000 by default on Linux).
#[derive(Debug, Clone)]
pub struct SourceAddrs {
    addrs: Arc<[std::net::IpAddr]>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl PartialEq for SourceAddrs {
    fn eq(&self, other: &SourceAddrs) -> bool {
        self.addrs == other.addrs
    }
}
impl Eq for SourceAddrs {}

/// The most addresses a `--source-addr` range may hold.
pub const MAX_SOURCE_ADDRS: usize = 65_536;

impl SourceAddrs {
    /// Parse `--source-addr` values: each an address (`127.0.0.2`, `::1`) or an inclusive
    /// IPv4 range (`127.0.0.2-127.0.0.50`). Errors name the value.
    pub fn parse(values: &[String]) -> Result<Option<SourceAddrs>, String> {
        use std::net::{IpAddr, Ipv4Addr};
        let mut addrs: Vec<IpAddr> = Vec::new();
        for v in values {
            let bad = |why: &str| {
                format!("--source-addr {v:?}: {why} (expected an address like 127.0.0.2, or a range like 127.0.0.2-127.0.0.50)")
            };
            if let Some((a, b)) = v.split_once('-') {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| bad("the range's start is not an IPv4 address"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .map_err(|_| bad("the range's end is not an IPv4 address"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a {
                    return Err(bad("the range ends before it starts"));
                }
                if (b - a) as usize >= MAX_SOURCE_ADDRS {
                    return Err(bad(&format!(
                        "a range holds at most {MAX_SOURCE_ADDRS} addresses"
                    )));
                }
                addrs.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
            } else {
                addrs.push(v.trim().parse().map_err(|_| bad("not an IP address"))?);
            }
            if addrs.len() > MAX_SOURCE_ADDRS {
                return Err(bad(&format!("at most {MAX_SOURCE_ADDRS} addresses in all")));
            }
        }
        Ok((!addrs.is_empty()).then(|| SourceAddrs {
            addrs: addrs.into(),
            next: Arc::default(),
        }))
    }

    /// Check that every address can be a source here, before anything starts: each must be
    /// an address of this machine (bindable), and of the target's family when `ipv4_only`
    /// (a local workerd listens on 127.0.0.1). Errors name the address and the option.
    pub fn check_usable(&self, ipv4_only: bool) -> Result<(), String> {
        for &a in self.addrs.iter() {
            if ipv4_only && !a.is_ipv4() {
                return Err(format!(
                    "--source-addr {a}: the local workerd listens on 127.0.0.1; give IPv4 loopback addresses such as 127.0.0.2"
                ));
            }
            if let Err(e) = std::net::UdpSocket::bind((a, 0)) {
                return Err(format!(
                    "--source-addr {a}: not an address this machine can send from ({e})"
                ));
            }
        }
        Ok(())
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Never true (a `SourceAddrs` holds at least one address).
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The next address in turn.
    fn take(&self) -> std::net::IpAddr {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.addrs[i % self.addrs.len()]
    }
}

impl Target {
    /// Parse `ws://HOST[:PORT][/BASE]` (port 80) or `wss://HOST[:PORT][/BASE]` (TLS, port
    /// 443); `http://` and `https://` are accepted as synonyms.
    pub fn parse(s: &str) -> Result<Target, String> {
        let schemes = [
            ("ws://", false),
            ("http://", false),
            ("wss://", true),
            ("https://", true),
        ];
        let Some((rest, tls)) = schemes
            .iter()
            .find_map(|&(scheme, tls)| Some((s.strip_prefix(scheme)?, tls)))
        else {
            return Err(format!(
                "--target {s}: expected ws://HOST:PORT or wss://HOST"
            ));
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
            None => default_port(tls),
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
            tls,
            tls_config: None,
            sources: None,
        })
    }

    /// A plain loopback target on `port`.
    pub fn loopback(port: u16) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port,
            base: String::new(),
            tls: false,
            tls_config: None,
            sources: None,
        }
    }

    /// The same target with these TLS settings (used when it is a `tls` target).
    pub fn with_tls_config(self, tls_config: TlsConfig) -> Target {
        Target {
            tls_config: Some(tls_config),
            ..self
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

    /// The `Host` of a request: `host:port`, or `host` alone on the scheme's default port.
    pub fn host_header(&self) -> String {
        if self.port == default_port(self.tls) {
            self.host_for_url()
        } else {
            self.authority()
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "wss"
        } else {
            "ws"
        }
    }
}

fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.authority(), self.base)
    }
}

/// The TLS settings of `wss://` targets: a rustls client configuration (`ring` provider,
/// TLS 1.2 and 1.3) trusting the bundled Mozilla roots and any extra roots. Cheap to clone
/// (shared); equal when it is the same configuration.
#[derive(Debug, Clone)]
pub struct TlsConfig(Arc<ClientConfig>);

impl PartialEq for TlsConfig {
    fn eq(&self, other: &TlsConfig) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsConfig {}

/// Why the extra root certificates (`--ca-cert`) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    /// The file could not be read.
    #[error("--ca-cert {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not a `source` too).
        error: io::Error,
    },
    /// The file holds no PEM `CERTIFICATE` block, or a broken one.
    #[error("--ca-cert {}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate is not a usable trust anchor.
    #[error("--ca-cert {}: certificate {index} unusable as a root: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// rustls's reason.
        reason: String,
    },
}

impl TlsConfig {
    /// The bundled Mozilla roots and every certificate of the PEM file `ca_cert`, if given.
    pub fn new(ca_cert: Option<&Path>) -> Result<TlsConfig, CaCertError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_cert {
            for (i, cert) in read_pem_certificates(path)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| CaCertError::Certificate {
                    path: path.to_path_buf(),
                    index: i + 1,
                    reason: e.to_string(),
                })?;
            }
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(TlsConfig(Arc::new(config)))
    }

    /// The bundled roots only, built once per process.
    pub fn webpki() -> TlsConfig {
        static DEFAULT: OnceLock<TlsConfig> = OnceLock::new();
        DEFAULT
            .get_or_init(|| TlsConfig::new(None).expect("without a file there is nothing to fail"))
            .clone()
    }
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaCertError> {
    let pem = std::fs::read(path).map_err(|error| CaCertError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaCertError::Pem {
            path: path.to_path_buf(),
            reason: format!("unreadable PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CaCertError::Pem {
            path: path.to_path_buf(),
            reason: "no PEM CERTIFICATE block in it".into(),
        });
    }
    Ok(certs)
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
    /// The upgrade was answered with an HTTP status instead of 101, and the start of the
    /// answer's body as text ([`body_text`]; empty if none came with the headers).
    Status(u16, String),
    /// The handshake failed otherwise (bad response, protocol error).
    Handshake(String),
    /// The TLS handshake failed (e.g. a certificate from an unknown CA, or for another
    /// name; the server does not speak TLS).
    Tls(String),
}

impl ConnectError {
    /// The fault category (a key of `drive.faults`).
    pub fn category(&self) -> &'static str {
        match self {
            ConnectError::Refused => "connect_refused",
            ConnectError::Timeout => "connect_timeout",
            ConnectError::Reset => "connect_reset",
            ConnectError::Io(_) => "connect_error",
            ConnectError::Status(s, _) if (400..500).contains(s) => "upgrade_4xx",
            ConnectError::Status(s, _) if (500..600).contains(s) => "upgrade_5xx",
            ConnectError::Status(..) => "upgrade_other_status",
            ConnectError::Handshake(_) => "handshake_error",
            ConnectError::Tls(_) => "tls_error",
        }
    }

    /// Whether the target answered (an HTTP status): the request reached it.
    pub fn answered(&self) -> bool {
        matches!(self, ConnectError::Status(..))
    }

    /// A 5xx answer: its status and body (the Worker names a configuration error there).
    pub fn server_error(&self) -> Option<(u16, &str)> {
        match self {
            ConnectError::Status(s, body) if (500..600).contains(s) => Some((*s, body)),
            _ => None,
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

    /// A failed TLS handshake: rustls's own errors (which tokio-rustls wraps in an
    /// [`io::Error`]) are [`ConnectError::Tls`]; a lost connection is what it is.
    fn from_tls(e: &io::Error) -> ConnectError {
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => ConnectError::Tls(tls.to_string()),
            None if e.kind() == io::ErrorKind::InvalidData => ConnectError::Tls(e.to_string()),
            None => ConnectError::from_io(e),
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
            ConnectError::Status(s, body) if body.is_empty() => {
                write!(f, "upgrade answered with HTTP {s}")
            }
            ConnectError::Status(s, body) => write!(f, "upgrade answered with HTTP {s}: {body}"),
            ConnectError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
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

/// Open a TCP connection to the target (`TCP_NODELAY` on), from the next source address
/// when the target has some (bound before the connect, port chosen by the kernel).
pub async fn tcp(target: &Target, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let addr = target.authority();
    let connect = async {
        let Some(sources) = &target.sources else {
            return TcpStream::connect(&addr).await;
        };
        let src = sources.take();
        let mut last = None;
        for dst in tokio::net::lookup_host(&addr).await? {
            if dst.is_ipv4() != src.is_ipv4() {
                continue;
            }
            let socket = if dst.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(std::net::SocketAddr::new(src, 0))?;
            match socket.connect(dst).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{addr} has no address of the family of source {src}"),
            )
        }))
    };
    let stream = match tokio::time::timeout(timeout, connect).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::from_io(&e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Open a connection to the target within `timeout`: TCP (`TCP_NODELAY` on), then for a
/// `tls` target the TLS handshake (SNI: the target's host).
pub async fn stream(target: &Target, timeout: Duration) -> Result<Stream, ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let tcp =
        StampedTcp::new(tcp(target, timeout).await?).map_err(|e| ConnectError::from_io(&e))?;
    if !target.tls {
        return Ok(Stream::Plain(tcp));
    }
    let config = target.tls_config.clone().unwrap_or_else(TlsConfig::webpki);
    let name = ServerName::try_from(target.host.clone())
        .map_err(|e| ConnectError::Tls(format!("{:?} as a server name: {e}", target.host)))?;
    let handshake = tokio_rustls::TlsConnector::from(config.0).connect(name, tcp);
    match tokio::time::timeout_at(deadline, handshake).await {
        Err(_) => Err(ConnectError::Timeout),
        Ok(Err(e)) => Err(ConnectError::from_tls(&e)),
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
    }
}

/// Open a WebSocket to `path` (from [`Target::join_path`]): TCP connect, TLS for a `tls`
/// target, and upgrade, within `timeout` in all. Returns the socket and when the upgrade
/// completed.
pub async fn connect(
    target: &Target,
    path: &str,
    timeout: Duration,
) -> Result<(Ws, Instant), ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = stream(target, timeout).await?;
    let url = format!("{}://{}{path}", target.scheme(), target.host_header());
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
        Ok(Ok((ws, _response))) => {
            let at = ws.get_ref().arrived().unwrap_or_else(Instant::now);
            Ok((ws, at))
        }
        Ok(Err(e)) => Err(classify_handshake(e)),
    }
}

fn classify_handshake(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(resp) => ConnectError::Status(
            resp.status().as_u16(),
            resp.body().as_deref().map(body_text).unwrap_or_default(),
        ),
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

/// The start of an HTTP answer's body as one line of text, for a message: lossy UTF-8, runs
/// of whitespace as one space, at most 300 characters (then `…`).
pub fn body_text(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > MAX {
        out = out.chars().take(MAX).collect();
        out.push('…');
    }
    out
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
        assert!(!t.tls);
        assert_eq!(t.to_string(), "ws://[::1]:9000");
        let t = Target::parse("wss://x.workers.dev").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("x.workers.dev", 443, true)
        );
        assert_eq!(
            (t.to_string(), t.host_header()),
            (
                "wss://x.workers.dev:443".to_string(),
                "x.workers.dev".to_string()
            )
        );
        let t = Target::parse("https://x.workers.dev:8443/b").unwrap();
        assert_eq!((t.port, t.tls, t.base.as_str()), (8443, true, "/b"));
        assert_eq!(t.host_header(), "x.workers.dev:8443");
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("ws://x:0").is_err());
        assert!(Target::parse("ws://x:99999").is_err());
    }

    #[test]
    fn a_server_error_keeps_its_body() {
        let e = ConnectError::Status(
            500,
            body_text(b"configuration error: MAX_MESSAGE_BYTES must be in 1..1048576\n"),
        );
        assert_eq!(e.category(), "upgrade_5xx");
        assert!(e.answered());
        assert_eq!(
            e.to_string(),
            "upgrade answered with HTTP 500: configuration error: MAX_MESSAGE_BYTES must be in 1..1048576"
        );
        assert_eq!(e.server_error().map(|(s, _)| s), Some(500));
        assert_eq!(
            ConnectError::Status(404, String::new()).server_error(),
            None
        );
        assert_eq!(body_text("x".repeat(400).as_bytes()).chars().count(), 301);
        assert_eq!(body_text(b"a\n\t b "), "a b");
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
