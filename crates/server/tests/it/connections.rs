//! Connection hygiene over real sockets: the server as `discreet serve` runs it
//! (`discreet_server::serve`), with short timeouts so the tests run quickly. Nothing here
//! asserts how long anything took; a generous limit only turns a hang into a failure.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use discreet_server::{ConnectionSettings, Listeners};
use discreet_vault::LedgerFilter;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{TestApp, purchase};

/// How long any step may hang before the test fails (never reached when things work).
const HANG: Duration = Duration::from_secs(60);

const HALF_A_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: discreet.test\r\nAccept: */";

async fn within<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen"))
}

/// Writes all of `bytes` (tokio's `net` alone, without its io utilities).
async fn write_all(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        stream.writable().await?;
        match stream.try_write(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Reads what has arrived (0 at the end of the stream).
async fn read(stream: &TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buffer) {
            Ok(n) => return Ok(n),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
}

/// A server on a loopback port, stopped by `stop`.
struct Served {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Served {
    async fn start(t: &TestApp, settings: ConnectionSettings) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(discreet_server::serve(
            Listeners {
                api: listener,
                metrics: None,
            },
            t.state.clone(),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
        Served {
            address,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("the server stopping", self.task)
            .await
            .expect("the server task")
    }
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body): status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let n = read(stream, &mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed before a response head");
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while received.len() < head_end + length {
        let n = read(stream, &mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed inside a response body");
        received.extend_from_slice(&chunk[..n]);
    }
    (
        status,
        String::from_utf8_lossy(&received[head_end..head_end + length]).to_string(),
    )
}

/// Sends `request` on a new connection and reads the response.
async fn exchange(address: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    write_all(&stream, request).await.expect("write");
    read_response(&mut stream).await
}

/// Waits until the server closes `stream`; returns the bytes it sent before (none for a
/// request it never answered). A reset counts as closed.
async fn closed_by_server(stream: TcpStream) -> usize {
    let mut sent = 0;
    let mut chunk = [0u8; 1024];
    loop {
        match read(&stream, &mut chunk).await {
            Ok(0) | Err(_) => return sent,
            Ok(n) => sent += n,
        }
    }
}

async fn half_sent_requests(address: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..count {
        let stream = TcpStream::connect(address).await.expect("connect");
        write_all(&stream, HALF_A_HEAD).await.expect("write");
        streams.push(stream);
    }
    streams
}

/// Regression: the server had no header-read timeout and no cap, so sockets that send half
/// a request head held their connections for ever. Here three times as many half-sent
/// requests as the server serves at once: a normal request is still answered (only
/// because the head timeout frees their slots), every half-sent one is closed unanswered,
/// and the server never held more connections than its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_do_not_stop_a_normal_request() {
    let t = TestApp::new();
    let cap = 4;
    let served = Served::start(
        &t,
        ConnectionSettings {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(3_600),
            max_connections: cap,
            shutdown_grace: Duration::from_secs(5),
        },
    )
    .await;
    let slow = half_sent_requests(served.address, 3 * cap).await;

    let (status, body) = within(
        "the normal request's answer",
        exchange(
            served.address,
            b"GET /healthz HTTP/1.1\r\nHost: discreet.test\r\nConnection: close\r\n\r\n",
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ready"), "{body}");
    for stream in slow {
        let sent = within("closing a half-sent request", closed_by_server(stream)).await;
        assert_eq!(sent, 0, "a half-sent request got an answer");
    }
    let connections = &t.state.metrics.connections;
    assert!(
        connections.peak() <= cap as u64,
        "peak {} over the cap",
        connections.peak()
    );
    assert!(connections.timed_out() >= 3 * cap as u64);
    assert_eq!(connections.accepted(), 3 * cap as u64 + 1);
    served.stop().await.expect("served");
}

/// A connection that finished its request and then sits idle is closed after the idle
/// timeout (here shorter than the head timeout, so only the idle timeout can close it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let t = TestApp::new();
    let served = Served::start(
        &t,
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(3_600),
            idle_timeout: Duration::from_millis(300),
            ..ConnectionSettings::default()
        },
    )
    .await;
    let mut stream = TcpStream::connect(served.address).await.expect("connect");
    write_all(
        &stream,
        b"GET /healthz HTTP/1.1\r\nHost: discreet.test\r\n\r\n",
    )
    .await
    .expect("write");
    let (status, _) = within("the answer", read_response(&mut stream)).await;
    assert_eq!(status, 200);
    let sent = within("closing the idle connection", closed_by_server(stream)).await;
    assert_eq!(sent, 0);
    assert_eq!(t.state.metrics.connections.timed_out(), 1);
    served.stop().await.expect("served");
}

/// A body that never arrives is answered 503 `request_timeout` after the request timeout,
/// and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_answered_request_timeout() {
    let t = TestApp::with_state(|state| {
        state.limits.request_timeout = Duration::from_millis(300);
    });
    let served = Served::start(&t, ConnectionSettings::default()).await;
    let before = t.stored();
    let body = serde_json::to_string(&json!({"events": [purchase("c-slow", "A", 1)]})).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: discreet.test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        t.storefront,
        body.len()
    );
    let mut stream = TcpStream::connect(served.address).await.expect("connect");
    write_all(&stream, head.as_bytes()).await.expect("write");
    write_all(&stream, &body.as_bytes()[..body.len() / 2])
        .await
        .expect("write");
    let (status, problem) = within("the timeout answer", read_response(&mut stream)).await;
    assert_eq!(status, 503, "{problem}");
    let problem: serde_json::Value = serde_json::from_str(&problem).expect("problem+json");
    assert_eq!(problem["code"], "request_timeout");
    assert_eq!(t.stored(), before);
    drop(stream);
    served.stop().await.expect("served");
}

/// Regression: graceful shutdown waited for every open connection, so one half-sent
/// request kept the process from stopping, and the ledger flush and checkpoint that follow
/// never happened. Now shutdown closes what is left after the grace period; the engine's
/// shutdown then writes the buffered read entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_completes_with_a_half_sent_request_open() {
    let t = TestApp::new();
    t.seed_shop();
    let served = Served::start(
        &t,
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(3_600),
            idle_timeout: Duration::from_secs(3_600),
            shutdown_grace: Duration::from_millis(200),
            ..ConnectionSettings::default()
        },
    )
    .await;
    let (status, _) = exchange(
        served.address,
        format!(
            "GET /v1/subjects/{}/recommendations HTTP/1.1\r\nHost: discreet.test\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            crate::support::CUSTOMER,
            t.storefront
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let mut half_sent = half_sent_requests(served.address, 1).await;
    within("the half-sent connection being accepted", async {
        while t.state.metrics.connections.open() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    served.stop().await.expect("the server stopped");
    let sent = within(
        "closing the half-sent request",
        closed_by_server(half_sent.remove(0)),
    )
    .await;
    assert_eq!(sent, 0);
    t.engine.shutdown();
    // Read straight from the vault: `t.ledger()` would flush the buffer itself.
    let reads = t
        .engine
        .vault()
        .ledger(&LedgerFilter {
            subject_token: None,
            actor: None,
            since: None,
            until: None,
            before_seq: None,
            limit: 10_000,
        })
        .expect("ledger")
        .iter()
        .filter(|record| record.entry.action == "recommendations.read")
        .count();
    assert_eq!(reads, 1);
}
