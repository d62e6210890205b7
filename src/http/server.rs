//! Serving the router on a TCP listener, as plain HTTP/1.1 or over TLS, so that no client can
//! stall the service: every connection runs in its own task (the TLS handshake included, with
//! its own timeout), a client gets a few seconds to send a request's headers, and open
//! connections are capped. The accept loop never waits for a client.
//!
//! Owns: accepting, the connection cap, handshake and header timeouts, graceful shutdown of
//! connections, and the connection metrics. Must not touch: routes (`http::router`) or where
//! certificates come from (`http::tls`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::http::metrics::ListenerMetrics;

/// Open connections allowed at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TLS handshake may take by default.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one client may hold of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once (handshaking, waiting or answering); more are closed at once.
    pub max_connections: usize,
    /// From the moment the server waits for a request (a new connection, or a kept-alive one
    /// after its last answer) until that request's headers are in; then the connection closes.
    pub header_read_timeout: Duration,
    /// From accepting a TLS connection until its handshake is done.
    pub tls_handshake_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Why the server closed a connection without answering: the `reason` label of
/// `burnguard_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` were already open.
    Limit,
    /// The TLS handshake did not finish within `tls_handshake_timeout`.
    HandshakeTimeout,
    /// The TLS handshake failed (not TLS, no common cipher, the client rejected our certificate).
    HandshakeFailed,
    /// A new connection did not send its first request's headers within
    /// `header_read_timeout`. (An idle kept-alive connection closed the same way after it was
    /// answered is normal and not counted.)
    HeaderTimeout,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Limit,
        Refusal::HandshakeTimeout,
        Refusal::HandshakeFailed,
        Refusal::HeaderTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::HeaderTimeout => "header_timeout",
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// every open connection finish its request in flight, and returns once they are all closed.
/// With `tls`, every connection is a TLS one (plain HTTP gets no answer).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: ListenerLimits,
    metrics: ListenerMetrics,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connection = Arc::new(Connection {
        builder,
        service: TowerToHyperService::new(router),
        tls,
        handshake_timeout: limits.tls_handshake_timeout,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    });
    // The cap is logged at most once a minute: under a flood, every refusal would be a line.
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: give the open connections a moment to close.
                warn!(%error, "accepting a connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.refused(Refusal::Limit);
            if warned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                warned_at = Some(tokio::time::Instant::now());
                warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached; closing new connections until some end"
                );
            }
            debug!(%addr, "connection refused: limit reached");
            drop(stream);
            continue;
        };
        let connection = connection.clone();
        connections.spawn(async move {
            let _slot = slot;
            connection.run(stream, addr).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// What every connection task shares.
struct Connection {
    builder: http1::Builder,
    service: TowerToHyperService<Router>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    metrics: ListenerMetrics,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(&self, stream: TcpStream, addr: SocketAddr) {
        let _open = self.metrics.open_connection();
        let Some(acceptor) = &self.tls else {
            return self.http(stream, addr).await;
        };
        let handshake = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)) => handshake,
        };
        match handshake {
            Ok(Ok(stream)) => self.http(stream, addr).await,
            Ok(Err(error)) => {
                self.metrics.refused(Refusal::HandshakeFailed);
                debug!(%addr, %error, "TLS handshake failed");
            }
            Err(_) => {
                self.metrics.refused(Refusal::HandshakeTimeout);
                debug!(%addr, "TLS handshake timed out");
            }
        }
    }

    /// HTTP/1.1 on an established (plain or TLS) stream, until either side closes it.
    async fn http<S>(&self, stream: S, addr: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let answered = Arc::new(AtomicBool::new(false));
        let service = {
            let (inner, answered) = (self.service.clone(), answered.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                answered.store(true, Ordering::Relaxed);
                hyper::service::Service::call(&inner, request)
            })
        };
        let conn = self.builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        match result {
            Ok(()) => {}
            Err(error) if error.is_timeout() && !answered.load(Ordering::Relaxed) => {
                self.metrics.refused(Refusal::HeaderTimeout);
                debug!(%addr, "closed a connection that sent no complete request headers in time");
            }
            Err(error) if error.is_timeout() => {
                debug!(%addr, "closed an idle kept-alive connection");
            }
            Err(error) => debug!(%addr, %error, "connection ended with an error"),
        }
    }
}
