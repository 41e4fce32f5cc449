//! Serving a router on a TCP listener with connection hygiene: at most `max_connections`
//! connections at once (the rest wait in the listen backlog), a connection that sends no
//! complete request head within `header_read_timeout` (counted from the connection's start
//! or from the first byte of a later request) or that sits idle for `idle_timeout` is
//! closed, and shutdown gives open requests `shutdown_grace` to finish, then closes what
//! is left, so a half-sent request can never keep the process from stopping (and from
//! flushing its ledger). It never reads or logs what a connection carries.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// How connections are kept in check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// A request head must be complete this long after the connection opened or after the
    /// first byte of a later request arrived.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no bytes moving for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for open requests before it closes their connections.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1_024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Connection counters of one server (operational figures, no business in them).
#[derive(Debug, Default)]
pub struct ConnectionFigures {
    open: AtomicU64,
    peak: AtomicU64,
    accepted: AtomicU64,
    timed_out: AtomicU64,
}

impl ConnectionFigures {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Most connections that were open at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed because a head was late or they sat idle.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn opened(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(open, Ordering::Relaxed);
        OpenConnection(self.clone())
    }
}

/// Counts a connection as open until dropped.
struct OpenConnection(Arc<ConnectionFigures>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets open
/// requests finish for at most `settings.shutdown_grace` and closes every connection left.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    settings: ConnectionSettings,
    figures: Arc<ConnectionFigures>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // The permit is taken before the accept: past the cap, connections wait in the
        // kernel's backlog instead of holding a task and a buffer here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    drop(permit);
                    if !is_connection_error(&error) {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::error!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        let open = figures.opened();
        let app = app.clone();
        let figures = figures.clone();
        let stopped = stopped.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, app, settings, &figures, stopped).await;
            drop(open);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "closing connections whose requests did not finish within the shutdown grace"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Errors of one connection that say nothing about the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    settings: ConnectionSettings,
    figures: &ConnectionFigures,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedStream {
        stream,
        activity: activity.clone(),
    });
    let service = ConnectionService {
        app,
        peer,
        activity: activity.clone(),
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Head and idle deadlines are this module's (`Activity`), not hyper's.
        .header_read_timeout(None::<Duration>)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            outcome = connection.as_mut() => {
                if let Err(error) = outcome {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = activity.expired(settings) => {
                figures.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("closing a connection whose request head was late or that sat idle");
                return;
            }
            _ = stopped.changed(), if !stopping => {
                stopping = true;
                // Idle connections close now; one with a request in progress closes after
                // its answer; a half-sent head waits for its timeout or the grace period.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What one connection is doing, for its deadlines.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

struct ActivityState {
    /// Requests handed to the router and not answered yet.
    in_flight: usize,
    /// When bytes last moved (or a request ended).
    last_activity: Instant,
    /// When the head being read started: the connection's start, or the first byte read
    /// while no request was in progress.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                last_activity: now,
                head_started: Some(now),
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, ActivityState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bytes_read(&self) {
        let mut state = self.state();
        let now = Instant::now();
        state.last_activity = now;
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
            drop(state);
            self.changed.notify_one();
        }
    }

    fn bytes_written(&self) {
        self.state().last_activity = Instant::now();
    }

    fn request_started(self: &Arc<Self>) -> RequestInFlight {
        {
            let mut state = self.state();
            state.in_flight += 1;
            state.head_started = None;
        }
        self.changed.notify_one();
        RequestInFlight(self.clone())
    }

    /// When the connection must be closed, if nothing changes before; none while a
    /// request is in progress (the router's request timeout bounds those).
    fn deadline(&self, settings: ConnectionSettings) -> Option<Instant> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        let idle = state.last_activity + settings.idle_timeout;
        Some(match state.head_started {
            Some(started) => idle.min(started + settings.header_read_timeout),
            None => idle,
        })
    }

    /// Completes once a deadline passes.
    async fn expired(&self, settings: ConnectionSettings) {
        loop {
            match self.deadline(settings) {
                None => self.changed.notified().await,
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// Marks a request in progress until dropped (answered, or cancelled with its connection).
struct RequestInFlight(Arc<Activity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.last_activity = Instant::now();
        }
        self.0.changed.notify_one();
    }
}

/// A TCP stream that reports when bytes move.
struct WatchedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(context, buffer);
        if matches!(polled, Poll::Ready(Ok(()))) && buffer.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(context, bytes);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.bytes_written();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(context, buffers);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.bytes_written();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

/// Hands each request of one connection to the router, with the peer's address.
#[derive(Clone)]
struct ConnectionService {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> ResponseFuture {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let in_flight = self.activity.request_started();
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            drop(in_flight);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ConnectionSettings::default()
        }
    }

    /// Guards the deadlines: a new connection has the head timeout, a request in progress
    /// has none, an idle connection the idle timeout, and its first byte the head timeout.
    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_what_the_connection_does() {
        let activity = Arc::new(Activity::new());
        let opened = Instant::now();
        assert_eq!(
            activity.deadline(settings()),
            Some(opened + Duration::from_secs(10))
        );
        activity.bytes_read();
        assert_eq!(
            activity.deadline(settings()),
            Some(opened + Duration::from_secs(10)),
            "bytes of the first head do not move its deadline"
        );
        let request = activity.request_started();
        assert_eq!(activity.deadline(settings()), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(request);
        let answered = Instant::now();
        assert_eq!(
            activity.deadline(settings()),
            Some(answered + Duration::from_secs(60))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.bytes_read();
        assert_eq!(
            activity.deadline(settings()),
            Some(Instant::now() + Duration::from_secs(10))
        );
    }
}
