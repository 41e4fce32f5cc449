//! The credential-stuffing defence: failures from one address are slowed, then the address
//! is refused (429 with Retry-After) even with a valid key, and the block is on the ledger.

use axum::http::{StatusCode, header};
use discreet_server::{BLOCK_AFTER, BLOCK_FOR, SLOW_AFTER};
use tokio::time::{Duration, Instant};

use crate::support::{Req, TestApp, address};

/// Time is paused: the slow-down sleeps advance the clock instantly, and the test measures
/// them exactly.
#[tokio::test(start_paused = true)]
async fn repeated_bad_keys_block_the_address() {
    assert_eq!((SLOW_AFTER, BLOCK_AFTER), (5, 20));
    let t = TestApp::new();
    let attacker = address(66, 6);
    let bystander = address(77, 7);

    let started = Instant::now();
    let mut delays = Vec::new();
    for attempt in 1..BLOCK_AFTER {
        let before = Instant::now();
        let reply = t
            .send(
                Req::get("/v1/policy")
                    .key(&format!("guess-{attempt}"))
                    .from(attacker),
            )
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

    // The 20th failure blocks the address.
    let blocked = t
        .send(Req::get("/v1/policy").key("guess-20").from(attacker))
        .await;
    let problem = blocked.problem(429, "auth_blocked");
    assert_eq!(
        blocked.headers.get(header::RETRY_AFTER).unwrap(),
        BLOCK_FOR.as_secs().to_string().as_str()
    );
    insta::assert_json_snapshot!("auth_blocked", problem);

    // Now even a valid key from that address is refused, without being checked.
    let refused = t
        .send(Req::get("/v1/policy").key(&t.admin).from(attacker))
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

    // Another address is not blocked, and its failures are its own.
    let reply = t
        .send(Req::get("/v1/policy").key(&t.admin).from(bystander))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    t.send(Req::get("/v1/policy").key("guess").from(bystander))
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
        metrics.contains("discreet_auth_failures_total 21"),
        "{metrics}"
    );
}

/// The authentication scheme is case-insensitive (RFC 9110 section 11.1): `bearer <secret>`
/// is the same credential as `Bearer <secret>`. Refusing it also counts each request as a
/// failed authentication, so a client library that spells the scheme in lower case would
/// get its own address blocked after twenty requests.
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
