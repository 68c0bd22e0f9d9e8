//! The floor under any driver on this machine: the least CPU a client can spend on issue 8's
//! side-by-side workload (800 users in rooms of 8, a 200-byte message per user per second,
//! per-room, against the same local workerd), so that the driver's CPU per frame can be read
//! against what the kernel and the machine cost, not only against another tool.
//!
//! It keeps only what the workload needs and nothing a measuring tool needs: one thread,
//! one epoll set, plain `read`s into one buffer, frames counted from their headers and never
//! parsed, client frames written with a zero masking key (valid, and no masking work), no
//! timestamps, no histograms, no JSON. Sends go out at the same Poisson moments a driver
//! would use, in one of two ways:
//!
//! - **on time**: the thread sleeps (1 ns timer slack) until the next send or for at most
//!   1 ms, then reads every ready socket and writes every due message: the discipline of
//!   `dosim drive`'s default `--read-batch 1ms`;
//! - **every 10 ms**: the thread wakes only every 10 ms and writes what fell due meanwhile,
//!   late by up to 10 ms: what sending on time costs is the difference.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use dosim::drive::local::{self, LocalSettings, LocalWorkerd};
use rand::{Rng as _, SeedableRng as _};
use rustix::event::epoll;

/// How the bare client times its sends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timing {
    /// At each send's moment, reads at most 1 ms late.
    OnTime,
    /// Every 10 ms, sends and reads together.
    Every10Ms,
}

/// What one bare run measured.
pub struct BareRun {
    pub messages: u64,
    pub frames_in: u64,
    pub cpu: Duration,
    pub cpu_kernel: Duration,
    pub wakeups: u64,
}

impl BareRun {
    /// CPU per frame sent or received, µs.
    pub fn us_per_frame(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / (self.messages + self.frames_in).max(1) as f64
    }

    /// A line of the benchmark's floor list.
    pub fn line(&self, timing: Timing, window: Duration) -> String {
        let cpu_us = self.cpu.as_secs_f64() * 1e6;
        format!(
            "{}: {} messages sent and {} frames received in {} s; {:.1} µs of CPU per message, {:.2} µs per frame sent or received ({:.2} per frame received), {:.0}% in the kernel; {} wake-ups a second",
            match timing {
                Timing::OnTime => "on time (1 ms reads)",
                Timing::Every10Ms => "every 10 ms",
            },
            self.messages,
            self.frames_in,
            window.as_secs(),
            cpu_us / self.messages.max(1) as f64,
            self.us_per_frame(),
            cpu_us / self.frames_in.max(1) as f64,
            100.0 * self.cpu_kernel.as_secs_f64() / self.cpu.as_secs_f64().max(1e-9),
            self.wakeups / window.as_secs().max(1),
        )
    }
}

/// One socket: its stream and where its frame parser stands.
struct Conn {
    tcp: TcpStream,
    /// Payload bytes still to skip in the current frame.
    payload_left: u64,
    /// Header bytes gathered so far (a server frame's header is 2, 4 or 10 bytes).
    header: [u8; 10],
    header_len: usize,
    seq: u64,
}

impl Conn {
    /// Count the frames that complete in `bytes`.
    fn frames(&mut self, mut bytes: &[u8]) -> u64 {
        let mut done = 0;
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                if self.payload_left == 0 {
                    done += 1;
                }
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            if self.header_len < 2 {
                continue;
            }
            let need = match self.header[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            if self.header_len < need {
                continue;
            }
            let len = match need {
                4 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                10 => u64::from_be_bytes(self.header[2..10].try_into().unwrap()),
                _ => u64::from(self.header[1] & 0x7f),
            };
            self.header_len = 0;
            self.payload_left = len;
            if len == 0 {
                done += 1;
            }
        }
        done
    }
}

/// A client text frame with a zero masking key.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(0x81);
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// Open `users` sockets in rooms of 8 on `port` (per-room strategy), each upgraded to a
/// WebSocket; the bytes read past the upgrade answer are counted as frames later.
fn connect(port: u16, users: u32) -> Vec<(Conn, Vec<u8>)> {
    let mut conns = Vec::with_capacity(users as usize);
    for u in 0..users {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("workerd accepts");
        tcp.set_nodelay(true).unwrap();
        let room = dosim::workload::room_name(u / 8);
        write!(
            tcp,
            "GET /s/per-room/rooms/{room}?user=u{u} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = tcp.read(&mut buf).expect("an upgrade answer");
            assert!(n > 0, "workerd closed an upgrade");
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        assert!(
            got.starts_with(b"HTTP/1.1 101"),
            "upgrade refused: {}",
            String::from_utf8_lossy(&got[..end])
        );
        let rest = got[end..].to_vec();
        tcp.set_nonblocking(true).unwrap();
        conns.push((
            Conn {
                tcp,
                payload_left: 0,
                header: [0; 10],
                header_len: 0,
                seq: 0,
            },
            rest,
        ));
    }
    conns
}

/// Run the workload for `window` against a fresh local workerd and measure this process.
pub fn run(timing: Timing, window: Duration, settings: &LocalSettings) -> BareRun {
    const USERS: u32 = 800;
    let workers = local::find_workers_dir(None).expect("the workers/ directory");
    let mut workerd = LocalWorkerd::start(&workers, settings).expect("workerd starts");
    let mut conns = connect(workerd.port(), USERS);
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    for (i, (c, rest)) in conns.iter_mut().enumerate() {
        // The frames that came with the upgrade answer (joins) are not counted.
        c.frames(rest);
        epoll::add(
            &ep,
            c.tcp.as_fd(),
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
        .unwrap();
    }
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    // Let the joins settle and read what they sent, then measure from here.
    std::thread::sleep(Duration::from_millis(500));
    let mut buf = vec![0u8; 64 * 1024];
    for (c, _) in &mut conns {
        while let Ok(n @ 1..) = c.tcp.read(&mut buf) {
            c.frames(&buf[..n]);
        }
    }
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
    let mean_gap = 1.0 / f64::from(USERS);
    let mut gap = move || Duration::from_secs_f64(-mean_gap * (1.0 - rng.random::<f64>()).ln());
    let mut who = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(6);
    let body = "x".repeat(200);
    let (cpu0, kernel0) = (
        local::self_cpu().unwrap(),
        local::self_cpu_kernel().unwrap(),
    );
    let start = Instant::now();
    let end = start + window;
    let mut next_send = start + gap();
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(512);
    let (mut messages, mut wakeups, mut frames_in) = (0u64, 0u64, 0u64);
    let step = match timing {
        Timing::OnTime => Duration::from_millis(1),
        Timing::Every10Ms => Duration::from_millis(10),
    };
    let mut tick = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wake = match timing {
            Timing::OnTime => next_send.min(now + step),
            Timing::Every10Ms => {
                tick += step;
                tick
            }
        }
        .min(end);
        if wake > now {
            std::thread::sleep(wake - now);
        }
        wakeups += 1;
        // Every ready socket, drained.
        events.clear();
        epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&Default::default()),
        )
        .unwrap();
        for e in &events {
            let c = &mut conns[e.data.u64() as usize].0;
            loop {
                match c.tcp.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        frames_in += c.frames(&buf[..n]);
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        // Every send now due.
        let now = Instant::now();
        while next_send <= now {
            let c = &mut conns[who.random_range(0..USERS as usize)].0;
            c.seq += 1;
            let ts = next_send.duration_since(start).as_micros() as u64;
            let text = format!(
                r#"{{"type":"message","seq":{},"ts":{ts},"body":"{body}"}}"#,
                c.seq
            );
            frame(text.as_bytes(), &mut out);
            c.tcp.write_all(&out).expect("a send on an open socket");
            messages += 1;
            next_send += gap();
        }
    }
    let cpu = local::self_cpu().unwrap() - cpu0;
    let cpu_kernel = local::self_cpu_kernel().unwrap() - kernel0;
    drop(conns);
    workerd.stop();
    BareRun {
        messages,
        frames_in,
        cpu,
        cpu_kernel,
        wakeups,
    }
}
