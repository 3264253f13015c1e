//! The HTTP listener: bound with SO_REUSEPORT on request (so several gateway processes
//! share one port), and an accept loop that survives running out of file descriptors —
//! it counts, logs (at most once a second) and backs off briefly instead of stopping or
//! sleeping a whole second as the default loop does.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// How long accepting pauses when the process has no file descriptor left.
const EMFILE_BACKOFF: Duration = Duration::from_millis(50);
/// Errors of `accept` that mean the process or system ran out of file descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Declares the listener's metric, at zero for both kinds, so that it is exported from
/// the start and the first failure counts as an increase.
pub fn register_metrics() {
    metrics::describe_counter!(
        "linkdrop_accept_errors_total",
        "Failed accepts of new connections, by kind (out_of_files: no file descriptor left)"
    );
    for kind in ["out_of_files", "other"] {
        metrics::counter!("linkdrop_accept_errors_total", "kind" => kind).increment(0);
    }
}

/// linkdrop's listener.
pub struct Listener {
    inner: TcpListener,
    last_warning: Option<Instant>,
}

impl Listener {
    /// Binds `addr`, with SO_REUSEPORT when `reuse_port`.
    pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<Listener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        Ok(Listener {
            inner: TcpListener::from_std(socket.into())?,
            last_warning: None,
        })
    }

    async fn accept_error(&mut self, error: io::Error) {
        let out_of_files = matches!(error.raw_os_error(), Some(EMFILE | ENFILE));
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        let kind = if out_of_files {
            "out_of_files"
        } else {
            "other"
        };
        metrics::counter!("linkdrop_accept_errors_total", "kind" => kind).increment(1);
        let quiet = self
            .last_warning
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
        if !quiet {
            self.last_warning = Some(Instant::now());
            if out_of_files {
                tracing::warn!(%error, "accept: out of file descriptors; backing off and still serving open connections");
            } else {
                tracing::warn!(%error, "accept failed; retrying");
            }
        }
        tokio::time::sleep(EMFILE_BACKOFF).await;
    }
}

impl axum::serve::Listener for Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, peer);
                }
                Err(e) => self.accept_error(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
