//! `discreet serve`'s connection handling, end to end: a half-sent request does not keep
//! SIGTERM from stopping the server (and the ledger is checked after), and `--metrics-listen`
//! moves `/metrics` to an address of its own.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{Server, Store, free_port, http, run_on};

const WITHIN: Duration = Duration::from_secs(120);

/// Regression: SIGTERM waited for every open connection, so one client that sent half a
/// request head kept the server running, and the ledger flush and signed checkpoint of a
/// graceful stop never happened. Now the shutdown grace bounds the wait.
#[test]
fn sigterm_stops_the_server_with_a_half_sent_request_open() {
    let store = Store::new();
    let mut server = Server::start_with(
        &store,
        "half-sent",
        &[
            "--header-read-timeout",
            "3600s",
            "--idle-timeout",
            "3600s",
            "--shutdown-grace",
            "300ms",
        ],
        WITHIN,
    );
    let address = SocketAddr::from(([127, 0, 0, 1], server.port));
    let mut half_sent = TcpStream::connect(address).expect("connect");
    half_sent
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: discreet.test\r\nAccept: */")
        .expect("write half a head");
    // The server answers others meanwhile.
    let health = http(server.port, "GET", "/healthz", None, None).expect("healthz");
    assert_eq!(health.status, 200);

    let stopped = server.terminate(WITHIN);
    assert!(stopped.success(), "{stopped}\n{}", server.log());
    assert!(
        server
            .log()
            .contains("stopping: writing buffered ledger entries and a signed checkpoint"),
        "{}",
        server.log()
    );
    drop(half_sent);
    let audit = run_on(&store, &["audit", "verify", "--json"], WITHIN);
    assert_eq!(audit.code(), Some(0), "audit verify: {audit}");
    assert_eq!(audit.json()["ok"], true, "{audit}");
}

/// With `--metrics-listen`, `/metrics` (every figure) is served there only; the API's
/// listener answers it 404.
#[test]
fn metrics_move_to_their_own_listener() {
    let store = Store::new();
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut server = Server::start_with(
        &store,
        "metrics",
        &["--metrics-listen", &metrics_listen],
        WITHIN,
    );
    let public = http(server.port, "GET", "/metrics", None, None).expect("API /metrics");
    assert_eq!(public.status, 404, "{}", public.text);
    let private = http(metrics_port, "GET", "/metrics", None, None).expect("metrics listener");
    assert_eq!(private.status, 200, "{}", private.text);
    for name in [
        "discreet_ready 1",
        "discreet_events_accepted_total",
        "discreet_http_requests_total",
    ] {
        assert!(private.text.contains(name), "{name}:\n{}", private.text);
    }
    let stopped = server.terminate(WITHIN);
    assert!(stopped.success(), "{stopped}\n{}", server.log());
}
