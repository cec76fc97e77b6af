//! The HTTP accept loop: HTTP/1.1 connections served by hyper with the router, within the
//! connection limits of the configuration.
//!
//! `axum::serve` keeps every connection for as long as the client likes: a client that sends
//! half a header, or opens keep-alive connections and never uses them, holds a socket and a
//! task forever, unauthenticated. Here:
//!
//! - **header read timeout** (`server.header_read_timeout_secs`): a request's head must arrive
//!   whole within it from its first byte (the connection is dropped otherwise);
//! - **body read timeout** (`server.body_read_timeout_secs`): enforced where the body is read
//!   (crate::http), 408 `TIMEOUT`;
//! - **idle timeout** (`server.idle_timeout_secs`): a connection with no request in flight and
//!   no bytes either way for this long is closed (also one whose client stopped reading its
//!   response: a write that makes no progress);
//! - **connection cap** (`server.max_connections`): a connection beyond it gets one
//!   `503 SERVICE_UNAVAILABLE` JSON reply and is closed, so the server never has more sockets
//!   and tasks than configured; the rest (and `/health`) keep being served.
//!
//! Shutdown stops accepting, asks every connection to finish its current request and close,
//! and waits for them (the caller bounds the wait with `server.shutdown_timeout_secs`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower_service::Service;

/// Connection limits (see the module docs).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serve `router` on `listener` until `shutdown` resolves, then wait for open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let router = router.clone();
                let limits = limits.clone();
                let stop = stop_rx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, router, &limits, stop).await;
                    drop(slot);
                });
            }
            Err(_) => {
                metrics::counter!("kalamdb_connections_refused_total").increment(1);
                tokio::spawn(refuse(stream, limits.max_connections));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back: every connection closed.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

/// Reply 503 to a connection over the cap and close it (bounded: one write, one second).
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = serde_json::json!({
        "status": "error",
        "error": {
            "code": "SERVICE_UNAVAILABLE",
            "message": format!("the server has {cap} open connections (server.max_connections); try again later"),
        },
        "results": [],
    })
    .to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let clock = Arc::new(Clock {
        started,
        last_activity_ms: AtomicU64::new(0),
        head_started_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Tracked {
        inner: stream,
        clock: clock.clone(),
    });
    let on_request = clock.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // The head is complete.
        on_request.head_started_ms.store(0, Ordering::Relaxed);
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        let guard = InFlight::enter(&on_request);
        async move {
            let response = router.call(req.map(axum::body::Body::new)).await;
            drop(guard);
            response
        }
    });
    // hyper's own header timer starts when the connection waits for a request, so it would
    // also cut idle keep-alive connections at the header timeout; both are timed here instead.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let shortest = limits.idle_timeout.min(limits.header_read_timeout);
    let check_every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = tokio::time::sleep(check_every), if !closing => {
                if clock.in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                let now = started.elapsed();
                let head = clock.head_started_ms.load(Ordering::Relaxed);
                if head > 0 && now.saturating_sub(Duration::from_millis(head - 1)) >= limits.header_read_timeout {
                    // Half a request head: nothing to finish, the socket is dropped.
                    tracing::debug!(%peer, "closing a connection whose request head did not arrive in time");
                    return;
                }
                let idle_for = now.saturating_sub(Duration::from_millis(clock.last_activity_ms.load(Ordering::Relaxed)));
                if head == 0 && idle_for >= limits.idle_timeout {
                    // Nothing in flight and no byte moved either way: an idle keep-alive
                    // connection, or a client that stopped reading its response (it would pin
                    // the reply's memory and a slot for good). Dropped, either way.
                    tracing::debug!(%peer, "closing an idle or stalled connection");
                    return;
                }
            }
            _ = stop.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// What the connection's watcher reads: when bytes last moved, when the request head being
/// read began (milliseconds since `started`, plus one; 0: none), requests in flight.
struct Clock {
    started: Instant,
    last_activity_ms: AtomicU64,
    head_started_ms: AtomicU64,
    in_flight: AtomicUsize,
}

/// Counts a request in flight on its connection while alive.
struct InFlight(Arc<Clock>);

impl InFlight {
    fn enter(clock: &Arc<Clock>) -> InFlight {
        clock.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(clock.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records traffic on its connection's [`Clock`].
struct Tracked {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl Tracked {
    fn touch(&self, read: bool) {
        let now = self.clock.started.elapsed().as_millis() as u64;
        self.clock.last_activity_ms.store(now, Ordering::Relaxed);
        // Bytes read with no request in flight begin a request head.
        if read && self.clock.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.clock.head_started_ms.compare_exchange(
                0,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch(true);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch(false);
        }
        r
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch(false);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
