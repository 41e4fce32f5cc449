//! The credential-stuffing defence: failures are counted per client address and presented
//! key and per client address; they are slowed, then refused (429 with Retry-After), and the
//! block is on the ledger — but a valid key is always accepted, whoever failed before it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{StatusCode, header};
use discreet_server::{
    ADDRESS_BLOCK_AFTER, ADDRESS_SLOW_AFTER, BLOCK_AFTER, BLOCK_FOR, SLOW_AFTER, TrustedProxies,
};
use tokio::time::{Duration, Instant};

use crate::support::{Req, TestApp, address};

fn from_ip(text: &str) -> SocketAddr {
    SocketAddr::new(text.parse::<IpAddr>().unwrap(), 40_000)
}

/// Time is paused: the slow-down sleeps advance the clock instantly, and the test measures
/// them exactly. One wrong key retried from one address is slowed, then refused; the same
/// address's valid key still works.
#[tokio::test(start_paused = true)]
async fn one_bad_key_retried_is_slowed_then_blocked() {
    assert_eq!((SLOW_AFTER, BLOCK_AFTER), (5, 20));
    let t = TestApp::new();
    let client = address(66, 6);
    let bystander = address(77, 7);

    let started = Instant::now();
    let mut delays = Vec::new();
    for _ in 1..BLOCK_AFTER {
        let before = Instant::now();
        let reply = t
            .send(Req::get("/v1/policy").key("revoked-key").from(client))
            .await;
        delays.push(before.elapsed());
        reply.problem(401, "unauthorized");
        assert!(reply.headers.get(header::RETRY_AFTER).is_none());
    }
    // The first five failures are answered at once, then 200 ms more each, at most 2 s.
    let expected: Vec<Duration> = (1..BLOCK_AFTER)
        .map(|attempt| {
            Duration::from_millis((200 * attempt.saturating_sub(SLOW_AFTER) as u64).min(2_000))
        })
        .collect();
    assert_eq!(delays, expected);
    assert_eq!(started.elapsed(), Duration::from_secs(19));

    // The 20th failure blocks that key from that address.
    let blocked = t
        .send(Req::get("/v1/policy").key("revoked-key").from(client))
        .await;
    let problem = blocked.problem(429, "auth_blocked");
    assert_eq!(
        blocked.headers.get(header::RETRY_AFTER).unwrap(),
        BLOCK_FOR.as_secs().to_string().as_str()
    );
    insta::assert_json_snapshot!("auth_blocked", problem);
    let refused = t
        .send(Req::get("/v1/policy").key("revoked-key").from(client))
        .await;
    refused.problem(429, "auth_blocked");
    let retry_after: u64 = refused
        .headers
        .get(header::RETRY_AFTER)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=BLOCK_FOR.as_secs()).contains(&retry_after));

    // A valid key from the same address is accepted, and another wrong key is its own.
    let reply = t
        .send(Req::get("/v1/policy").key(&t.admin).from(client))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    t.send(Req::get("/v1/policy").key("another-key").from(client))
        .await
        .problem(401, "unauthorized");
    // Another address is not affected either.
    t.send(Req::get("/v1/policy").key("revoked-key").from(bystander))
        .await
        .problem(401, "unauthorized");

    // The block is on the ledger, without the address.
    let ledger = t.ledger();
    let blocks: Vec<_> = ledger
        .iter()
        .filter(|record| record.entry.action == "auth.blocked")
        .collect();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].entry.outcome, "denied");
    assert_eq!(blocks[0].entry.subject_token, None);
    let written = format!("{:?}", blocks[0].entry);
    assert!(!written.contains("10.0.66.6"), "{written}");

    // The failures are counted in the metrics.
    let metrics = t.send(Req::get("/metrics")).await.text();
    assert!(
        metrics.contains("discreet_auth_failures_total 23"),
        "{metrics}"
    );
}

/// Regression: failures were counted per address and checked before the key, so 20 bad
/// requests from a shop's proxy or NAT locked out every caller behind it, valid keys
/// included. Now 25 bad keys — and even enough to block the address — never refuse a
/// valid key from it; only the failures are refused.
#[tokio::test(start_paused = true)]
async fn bad_keys_from_an_address_never_block_a_valid_key_from_it() {
    let t = TestApp::new();
    let shared = address(88, 8);
    for attempt in 1..=25 {
        t.send(
            Req::get("/v1/policy")
                .key(&format!("guess-{attempt}"))
                .from(shared),
        )
        .await
        .problem(401, "unauthorized");
    }
    let reply = t
        .send(Req::get("/v1/policy").key(&t.admin).from(shared))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // A guesser spraying keys is slowed past ADDRESS_SLOW_AFTER and, at
    // ADDRESS_BLOCK_AFTER, its address's failures are refused.
    let before = Instant::now();
    t.send(Req::get("/v1/policy").key("guess-26").from(shared))
        .await
        .problem(401, "unauthorized");
    assert_eq!(
        before.elapsed(),
        Duration::from_millis(200 * u64::from(26 - ADDRESS_SLOW_AFTER))
    );
    for attempt in 27..ADDRESS_BLOCK_AFTER {
        t.send(
            Req::get("/v1/policy")
                .key(&format!("guess-{attempt}"))
                .from(shared),
        )
        .await
        .problem(401, "unauthorized");
    }
    t.send(Req::get("/v1/policy").key("guess-last").from(shared))
        .await
        .problem(429, "auth_blocked");
    t.send(Req::get("/v1/policy").key("guess-next").from(shared))
        .await
        .problem(429, "auth_blocked");
    t.send(Req::get("/v1/policy").from(shared))
        .await
        .problem(429, "auth_blocked");
    for (key, path) in [
        (&t.admin, "/v1/policy"),
        (&t.storefront, "/v1/subjects/c-1/consents"),
    ] {
        let reply = t.send(Req::get(path).key(key).from(shared)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let blocks = t
        .ledger()
        .iter()
        .filter(|record| record.entry.action == "auth.blocked")
        .count();
    assert_eq!(blocks, 1);

    // After BLOCK_FOR the address's failures are plain 401s again.
    tokio::time::advance(BLOCK_FOR).await;
    t.send(Req::get("/v1/policy").key("guess-later").from(shared))
        .await
        .problem(401, "unauthorized");
}

/// `X-Forwarded-For` is believed from a trusted proxy only: clients behind the proxy are
/// counted apart, and a client that is not a trusted proxy cannot choose whom its failures
/// are counted against by sending the header.
#[tokio::test(start_paused = true)]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let t = TestApp::with_state(|state| {
        state.trusted_proxies = Arc::new(TrustedProxies::new(vec!["10.9.0.0/16".parse().unwrap()]));
    });
    let proxy = from_ip("10.9.0.1");
    let behind = |client: &str| {
        Req::get("/v1/policy")
            .key("wrong")
            .from(proxy)
            .header("x-forwarded-for", client)
    };
    for _ in 1..BLOCK_AFTER {
        t.send(behind("203.0.113.5"))
            .await
            .problem(401, "unauthorized");
    }
    t.send(behind("203.0.113.5"))
        .await
        .problem(429, "auth_blocked");
    // Another customer of the proxy with the same wrong key is counted on its own.
    t.send(behind("203.0.113.6"))
        .await
        .problem(401, "unauthorized");

    // An untrusted peer's header is ignored: its failures count against the peer.
    let untrusted = address(5, 5);
    for attempt in 1..BLOCK_AFTER {
        t.send(
            Req::get("/v1/policy")
                .key("wrong")
                .from(untrusted)
                .header("x-forwarded-for", &format!("198.51.100.{attempt}")),
        )
        .await
        .problem(401, "unauthorized");
    }
    t.send(
        Req::get("/v1/policy")
            .key("wrong")
            .from(untrusted)
            .header("x-forwarded-for", "198.51.100.250"),
    )
    .await
    .problem(429, "auth_blocked");
}

/// One subscriber usually holds a whole IPv6 /64: its addresses are counted together, so
/// rotating through them does not escape the count; the next /64 is someone else.
#[tokio::test(start_paused = true)]
async fn ipv6_failures_are_counted_per_64() {
    let t = TestApp::new();
    for attempt in 1..BLOCK_AFTER {
        t.send(
            Req::get("/v1/policy")
                .key("wrong")
                .from(from_ip(&format!("2001:db8:1:2::{attempt:x}"))),
        )
        .await
        .problem(401, "unauthorized");
    }
    t.send(
        Req::get("/v1/policy")
            .key("wrong")
            .from(from_ip("2001:db8:1:2:ffff::1")),
    )
    .await
    .problem(429, "auth_blocked");
    t.send(
        Req::get("/v1/policy")
            .key("wrong")
            .from(from_ip("2001:db8:1:3::1")),
    )
    .await
    .problem(401, "unauthorized");
}

/// The authentication scheme is case-insensitive (RFC 9110 section 11.1): `bearer <secret>`
/// is the same credential as `Bearer <secret>`. Refusing it also counts each request as a
/// failed authentication, so a client library that spells the scheme in lower case would
/// get itself blocked after twenty requests.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let t = TestApp::new();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = t
            .send(
                Req::get("/v1/policy")
                    .header("authorization", &format!("{scheme} {}", t.admin))
                    .from(address(3, 3)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}: {}", reply.text());
    }
}
