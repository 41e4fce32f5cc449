//! API-key authentication and the credential-stuffing defence.
//!
//! A secret is hashed and compared with every live key in constant time (in the engine).
//! Failed attempts are counted per client address: past `SLOW_AFTER` failures in a window
//! each further failure is answered late, past `BLOCK_AFTER` the address is refused
//! outright for `BLOCK_FOR`, and the block is written to the ledger (without the address:
//! it is personal data).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use discreet_engine::Caller;

use crate::error::ApiError;
use crate::state::AppState;

/// Failures in one window after which each further failure is answered late.
pub const SLOW_AFTER: u32 = 5;
/// Failures in one window after which the address is refused.
pub const BLOCK_AFTER: u32 = 20;
/// How long failures are counted together.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// How long a blocked address is refused.
pub const BLOCK_FOR: Duration = Duration::from_secs(900);
/// Extra delay per failure past `SLOW_AFTER`, and its cap.
const DELAY_STEP: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Addresses tracked at most (expired windows are dropped first).
const MAX_TRACKED: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

/// Counts failed authentications per address.
#[derive(Default)]
pub struct AuthGuard {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// What a failed attempt leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    Refuse { delay: Duration },
    NewlyBlocked,
}

impl AuthGuard {
    /// Seconds left if `address` is blocked.
    pub fn blocked(&self, address: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let until = failures.get(&address)?.blocked_until?;
        let now = Instant::now();
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    /// Counts one failure of `address`.
    pub fn fail(&self, address: IpAddr) -> FailureOutcome {
        let Ok(mut failures) = self.failures.lock() else {
            return FailureOutcome::Refuse {
                delay: Duration::ZERO,
            };
        };
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, entry| {
                now.duration_since(entry.window_start) < FAILURE_WINDOW
                    || entry.blocked_until.is_some_and(|until| until > now)
            });
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let entry = failures.entry(address).or_insert(Failures {
            count: 0,
            window_start: now,
            blocked_until: None,
        });
        if now.duration_since(entry.window_start) >= FAILURE_WINDOW
            && entry.blocked_until.is_none_or(|until| until <= now)
        {
            *entry = Failures {
                count: 0,
                window_start: now,
                blocked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= BLOCK_AFTER && entry.blocked_until.is_none() {
            entry.blocked_until = Some(now + BLOCK_FOR);
            return FailureOutcome::NewlyBlocked;
        }
        let over = entry.count.saturating_sub(SLOW_AFTER);
        FailureOutcome::Refuse {
            delay: (DELAY_STEP * over).min(MAX_DELAY),
        }
    }
}

/// The client's address (unspecified when the server was not given connection info).
pub fn client_address(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// An authenticated caller.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = client_address(parts);
        if let Some(retry_after_secs) = state.guard.blocked(address) {
            return Err(ApiError::AuthBlocked { retry_after_secs });
        }
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, secret)| secret.trim());
        if let Some(secret) = secret
            && let Some(caller) = state.engine.authenticate(secret)
        {
            return Ok(Authenticated(caller));
        }
        state.metrics.auth_failure();
        match state.guard.fail(address) {
            FailureOutcome::NewlyBlocked => {
                state.engine.record_security_event(
                    "auth.blocked",
                    format!(
                        "an address was refused for {} s after {BLOCK_AFTER} failed authentications",
                        BLOCK_FOR.as_secs()
                    ),
                );
                tracing::warn!("an address was blocked after repeated failed authentications");
                Err(ApiError::AuthBlocked {
                    retry_after_secs: BLOCK_FOR.as_secs(),
                })
            }
            FailureOutcome::Refuse { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Err(ApiError::Unauthorized)
            }
        }
    }
}
