//! Stamp: when a frame's bytes reached this machine, from the kernel.
//!
//! A latency ends when the frame arrives, not when the driver gets round to reading it. So
//! every connection asks the kernel to stamp what it receives (`SO_TIMESTAMPNS`, software
//! receive timestamps, which TCP reports since Linux 4.13) and reads with `recvmsg`, keeping
//! the stamp of the last segment each read took. The driver can then read in batches (see
//! [`super::pacer`]) without the wait counting against the server.
//!
//! A read that takes several frames gives them all its last segment's stamp, so the earlier
//! ones look later by the gap between them: at most one read batch, and only when one socket
//! gets two frames within one batch.

use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream whose reads keep the kernel's receive stamp.
///
/// It watches the socket itself (an [`AsyncFd`], not tokio's `TcpStream`) so that a read
/// that did not fill the buffer marks the socket drained: tokio's stream does that inside,
/// and without it every frame would take a second, empty read.
#[derive(Debug)]
pub struct StampedTcp {
    fd: AsyncFd<std::net::TcpStream>,
    /// Whether the kernel stamps this socket's segments.
    stamps: bool,
    /// The last read's stamp (wall clock, as the kernel gives it).
    last: Option<Duration>,
}

impl StampedTcp {
    /// Wrap `tcp`, asking the kernel to stamp what it receives (where it will).
    pub fn new(tcp: TcpStream) -> io::Result<StampedTcp> {
        let stamps = socket::setsockopt(&tcp, sockopt::ReceiveTimestampns, &true).is_ok();
        let tcp = tcp.into_std()?;
        // Deprecated for types whose descriptor may change under the `AsyncFd`; a
        // `std::net::TcpStream` cannot (the crate forbids the `unsafe` of `register`).
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(tcp, Interest::READABLE | Interest::WRITABLE)?;
        Ok(StampedTcp {
            fd,
            stamps,
            last: None,
        })
    }

    /// Whether this socket's reads are stamped by the kernel.
    pub fn stamped(&self) -> bool {
        self.stamps
    }

    /// When the bytes of the last read arrived, on this process's monotonic clock; `None`
    /// when the kernel gave no stamp.
    pub fn arrived(&self) -> Option<Instant> {
        let stamp = self.last?;
        // The stamp is on the wall clock; its age is the same on both clocks.
        let now = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Some(now.checked_sub(wall.saturating_sub(stamp)).unwrap_or(now))
    }
}

/// A socket that keeps the kernel stamping for as long as it is held. The kernel turns its
/// receive stamps on for everyone when the first socket asks, a moment later (deferred
/// work): segments received before are not stamped, and their frames fall back to the time
/// of the read. Holding one from the start of a run makes sure its connections' are.
pub fn keep_stamping() -> Option<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    socket::setsockopt(&socket, sockopt::ReceiveTimestampns, &true).ok()?;
    Some(socket)
}

/// One `recvmsg` on `fd` into `buf`, setting `stamp` to the kernel's stamp if it gave one.
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    stamp: &mut Option<Duration>,
) -> io::Result<usize> {
    let mut space = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::empty())
        .map_err(io::Error::from)?;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                *stamp = Some(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32));
            }
        }
    }
    Ok(msg.bytes)
}

impl AsyncRead for StampedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut ready = ready!(this.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let want = unfilled.len();
            let mut stamp = None;
            // `try_io` marks the socket drained on `WouldBlock`, so the loop waits again.
            match ready.try_io(|tcp| recv_stamped(tcp.get_ref().as_raw_fd(), unfilled, &mut stamp))
            {
                Ok(Ok(n)) => {
                    if n > 0 && n < want {
                        // A short read emptied the socket: the next read waits for more
                        // instead of finding nothing.
                        ready.clear_ready();
                    }
                    // A read without a stamp must not keep an older read's.
                    this.last = stamp;
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let mut ready = ready!(this.fd.poll_write_ready(cx))?;
            match ready.try_io(|tcp| tcp.get_ref().write(buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket (TCP_NODELAY is on).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.fd.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_read_keeps_when_the_bytes_arrived_not_when_they_were_read() {
        let _stamping = keep_stamping().expect("a UDP socket on loopback");
        // The kernel turns stamps on in deferred work.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut client = StampedTcp::new(client.unwrap()).unwrap();
        let (mut server, _) = server.unwrap();
        assert!(
            client.stamped(),
            "Linux stamps TCP segments (SO_TIMESTAMPNS)"
        );
        assert_eq!(client.arrived(), None, "nothing read yet");

        let sent = Instant::now();
        server.write_all(b"frame").await.unwrap();
        // The bytes wait in the kernel while the reader is busy.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let reading = Instant::now();
        let mut buf = [0u8; 16];
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"frame");
        let arrived = client.arrived().expect("a stamp");
        // The two clocks are read a few microseconds apart: allow 1 ms of slack.
        assert!(
            arrived + Duration::from_millis(1) >= sent,
            "arrived before it was sent"
        );
        assert!(
            arrived + Duration::from_millis(10) < reading,
            "the stamp is the read's time, not the arrival's: {:?} before the read",
            reading.saturating_duration_since(arrived)
        );
    }
}
