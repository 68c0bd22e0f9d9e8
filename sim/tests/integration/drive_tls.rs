//! `wss://` targets: the client and the stats reader over TLS, against an in-process TLS
//! server on 127.0.0.1 whose self-signed certificate (for `localhost` and 127.0.0.1) is made
//! at test time and trusted only through a `--ca-cert` PEM file. Loopback only, every wait
//! bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dosim::drive::client::{self, ConnectError, ServerFrame, Target, TlsConfig};
use dosim::drive::stats::{self, StatsError};
use dosim::model::strategy::Strategy;
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::util::repo;

const STEP: Duration = Duration::from_secs(5);
const TEST: Duration = Duration::from_secs(30);

/// A self-signed certificate for `localhost` and 127.0.0.1: the server's configuration, and
/// the certificate as a PEM file in `dir`.
fn certificate(dir: &Path) -> (Arc<rustls::ServerConfig>, PathBuf) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = dir.join("test-ca.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    (Arc::new(config), pem)
}

/// What the server answers on each TLS connection.
#[derive(Clone, Copy)]
enum Answer {
    /// A WebSocket upgrade, then the first frame of a join (PROTOCOL.md): `joined`.
    Join,
    /// An HTTP request: a stats document with the bearer token `tok`, else 401.
    Stats,
}

/// Serve TLS on 127.0.0.1 (a free port) until the runtime ends; returns the port. Failed
/// handshakes (a client that does not trust the certificate) just end that connection.
async fn serve(config: Arc<rustls::ServerConfig>, answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(STEP, acceptor.accept(tcp)).await else {
                    return;
                };
                let _ = tokio::time::timeout(STEP, async {
                    match answer {
                        Answer::Join => answer_join(tls).await,
                        Answer::Stats => answer_stats(tls).await,
                    }
                })
                .await;
            });
        }
    });
    port
}

#[allow(clippy::result_large_err)] // the upgrade callback's type is tungstenite's
async fn answer_join(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let mut uri = String::new();
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, |req: &Request, resp: Response| {
        uri = req.uri().to_string();
        Ok(resp)
    })
    .await
    else {
        return;
    };
    // `/s/{strategy}/rooms/{room}?user={user}`
    let (path, user) = uri.split_once("?user=").unwrap_or((&uri, ""));
    let room = path.rsplit('/').next().unwrap_or("");
    let joined = serde_json::json!({"type": "joined", "room": room, "user": user, "members": 1});
    if ws.send(Message::Text(joined.to_string())).await.is_ok() {
        while let Some(Ok(_)) = ws.next().await {}
    }
}

async fn answer_stats(mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let (status, body) = if head.contains("\r\nauthorization: bearer tok\r\n") {
        (
            "200 OK",
            r#"{"strategy":"single","lobby_mode":false,"objects":[]}"#,
        )
    } else {
        ("401 Unauthorized", "")
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(resp.as_bytes()).await;
    let _ = tls.flush().await;
    // Drop without a close_notify, as some servers do.
}

fn wss(port: u16) -> Target {
    Target::parse(&format!("wss://localhost:{port}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_target_is_reached_over_tls_when_its_ca_file_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pem) = certificate(dir.path());
    let tls = TlsConfig::new(Some(&pem)).expect("the test CA file is usable");
    tokio::time::timeout(TEST, async {
        let port = serve(server.clone(), Answer::Join).await;
        let target = wss(port).with_tls_config(tls.clone());
        assert!(target.tls);
        let path = target.join_path("single", "r1", "u7");
        let (mut ws, _) = client::connect(&target, &path, STEP)
            .await
            .unwrap_or_else(|e| panic!("wss connect with the CA trusted: {e}"));
        let frame = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a first frame in time");
        let Some(Ok(Message::Text(text))) = frame else {
            panic!("expected a text frame, got {frame:?}");
        };
        assert_eq!(
            ServerFrame::parse(&text),
            Some(ServerFrame::Joined {
                room: "r1".into(),
                user: "u7".into(),
                members: 1
            }),
            "{text}"
        );
        let _ = ws.close(None).await;

        // The stats endpoint over the same TLS settings (and its bearer token).
        let port = serve(server, Answer::Stats).await;
        let target = wss(port).with_tls_config(tls);
        let s = stats::fetch(&target, Strategy::Single, "tok", STEP)
            .await
            .expect("stats over TLS");
        assert_eq!(s.strategy, "single");
        assert_eq!(
            stats::fetch(&target, Strategy::Single, "wrong", STEP).await,
            Err(StatsError::Unauthorized)
        );
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_target_whose_ca_is_not_trusted_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _pem) = certificate(dir.path());
    tokio::time::timeout(TEST, async {
        let port = serve(server.clone(), Answer::Join).await;
        // The bundled roots only: the self-signed certificate is from an unknown CA.
        let target = wss(port);
        let path = target.join_path("single", "r1", "u7");
        let err = client::connect(&target, &path, STEP)
            .await
            .map(|_| ())
            .expect_err("an untrusted certificate must be refused");
        assert_eq!(err.category(), "tls_error", "{err:?}");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        assert!(!err.suggests_target_down());

        let port = serve(server, Answer::Stats).await;
        match stats::fetch(&wss(port), Strategy::Single, "tok", STEP).await {
            Err(StatsError::Connect(ConnectError::Tls(_))) => {}
            other => panic!("stats without the CA: expected a TLS error, got {other:?}"),
        }
    })
    .await
    .expect("the test finishes in time");
}

async fn dosim_drive(args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(repo())
        .args(["drive", "scenarios/seed-phase0.toml", "--quiet"])
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(TEST, run)
        .await
        .expect("dosim drive finishes in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dosim_drive_stops_with_a_tls_fault_when_the_ca_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _pem) = certificate(dir.path());
    let port = serve(server, Answer::Join).await;
    let json = dir.path().join("r.json");
    let out = dosim_drive(&[
        "--target",
        &format!("wss://localhost:{port}"),
        "--duration",
        "2s",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("TLS handshake failed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["drive"]["status"], "target_down");
    assert_eq!(r["drive"]["target"], format!("wss://localhost:{port}"));
    assert!(r["drive"]["faults"]["tls_error"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unusable_ca_file_is_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not-a-cert.pem");
    std::fs::write(&not_pem, "just text\n").unwrap();
    for file in [&missing, &not_pem] {
        let out = dosim_drive(&[
            "--target",
            "wss://localhost:1",
            "--ca-cert",
            file.to_str().unwrap(),
        ])
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(file.to_str().unwrap()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
