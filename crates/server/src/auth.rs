//! API-key authentication and the credential-stuffing defence.
//!
//! A secret is hashed and compared with every live key in constant time (in the engine),
//! always first: a valid key is never refused because others failed from the same address
//! (a shop's proxy or NAT puts many callers behind one). Only failures are counted — per
//! client address and presented credential (a client retrying one wrong or revoked key)
//! and per client address (a guesser trying many) — where a client address is an IPv4
//! address or an IPv6 /64 (see `client`). Past a slow-down threshold each further failure
//! is answered late; past the block threshold that unit's failures are answered 429 for
//! `BLOCK_FOR`, and the block is written to the ledger (without the address: it is
//! personal data). The table of counters is bounded: when full, it drops an expired block,
//! else the least recently failing counter that blocks nothing, else the oldest block —
//! never every block at once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use discreet_engine::Caller;
use tokio::time::Instant;

use crate::client::{client_address, throttle_unit};
use crate::error::ApiError;
use crate::state::AppState;

/// Failures with one credential from one address after which each is answered late.
pub const SLOW_AFTER: u32 = 5;
/// Failures with one credential from one address after which that pair is refused.
pub const BLOCK_AFTER: u32 = 20;
/// Failures with any credentials from one address after which each is answered late.
pub const ADDRESS_SLOW_AFTER: u32 = 25;
/// Failures with any credentials from one address after which its failures are refused.
pub const ADDRESS_BLOCK_AFTER: u32 = 100;
/// How long failures are counted together.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// How long a block lasts.
pub const BLOCK_FOR: Duration = Duration::from_secs(900);
/// Extra delay per failure past a slow-down threshold, and its cap (also the delay of a
/// refusal while blocked, so a blocked guesser cannot test keys quickly).
const DELAY_STEP: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Counters kept at most.
pub const MAX_TRACKED: usize = 65_536;

/// What failures are counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Counted {
    /// Every failure from a client address.
    Address(IpAddr),
    /// Failures from a client address with one credential (a keyed hash of it; the
    /// secret itself is never kept).
    Credential(IpAddr, u64),
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    count: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
    /// Position in the eviction order (higher is newer).
    stamp: u64,
}

/// The bounded table of counters with its eviction order.
struct Table {
    counters: HashMap<Counted, Counter>,
    /// Counters that block nothing, by stamp.
    unblocked: BTreeMap<u64, Counted>,
    /// Counters that block (or blocked: expiry is checked at eviction), by stamp.
    blocking: BTreeMap<u64, Counted>,
    next_stamp: u64,
    capacity: usize,
}

impl Table {
    fn new(capacity: usize) -> Table {
        Table {
            counters: HashMap::new(),
            unblocked: BTreeMap::new(),
            blocking: BTreeMap::new(),
            next_stamp: 0,
            capacity: capacity.max(2),
        }
    }

    fn blocked_until(&self, counted: Counted, now: Instant) -> Option<Instant> {
        self.counters
            .get(&counted)?
            .blocked_until
            .filter(|until| *until > now)
    }

    fn remove(&mut self, counted: Counted) {
        if let Some(counter) = self.counters.remove(&counted) {
            self.unblocked.remove(&counter.stamp);
            self.blocking.remove(&counter.stamp);
        }
    }

    /// Makes room for one more counter; false when there was nothing to drop.
    fn evict_one(&mut self, now: Instant) -> bool {
        let expired_block = self.blocking.first_key_value().and_then(|(_, counted)| {
            let counter = self.counters.get(counted)?;
            counter
                .blocked_until
                .is_none_or(|until| until <= now)
                .then_some(*counted)
        });
        let victim = expired_block
            .or_else(|| {
                self.unblocked
                    .first_key_value()
                    .map(|(_, counted)| *counted)
            })
            .or_else(|| self.blocking.first_key_value().map(|(_, counted)| *counted));
        match victim {
            Some(victim) => {
                self.remove(victim);
                true
            }
            None => false,
        }
    }

    /// Counts one failure against `counted`: the count after it, and whether this failure
    /// started a block (the count reached `block_after`).
    fn count(&mut self, counted: Counted, block_after: u32, now: Instant) -> (u32, bool) {
        let mut counter = match self.counters.get(&counted) {
            Some(counter) => {
                let counter = *counter;
                self.unblocked.remove(&counter.stamp);
                self.blocking.remove(&counter.stamp);
                counter
            }
            None => {
                while self.counters.len() >= self.capacity && self.evict_one(now) {}
                Counter {
                    count: 0,
                    window_start: now,
                    blocked_until: None,
                    stamp: 0,
                }
            }
        };
        let block_over = counter.blocked_until.is_some_and(|until| until <= now);
        if block_over
            || (counter.blocked_until.is_none()
                && now.duration_since(counter.window_start) >= FAILURE_WINDOW)
        {
            counter.count = 0;
            counter.window_start = now;
            counter.blocked_until = None;
        }
        counter.count = counter.count.saturating_add(1);
        let newly_blocked = counter.count >= block_after && counter.blocked_until.is_none();
        if newly_blocked {
            counter.blocked_until = Some(now + BLOCK_FOR);
        }
        counter.stamp = self.next_stamp;
        self.next_stamp += 1;
        if counter.blocked_until.is_some() {
            self.blocking.insert(counter.stamp, counted);
        } else {
            self.unblocked.insert(counter.stamp, counted);
        }
        self.counters.insert(counted, counter);
        (counter.count, newly_blocked)
    }
}

/// Counts failed authentications per client address and per (address, credential).
pub struct AuthGuard {
    table: Mutex<Table>,
    hasher: RandomState,
}

impl Default for AuthGuard {
    fn default() -> Self {
        AuthGuard::with_capacity(MAX_TRACKED)
    }
}

/// Which unit a new block applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockScope {
    /// One credential from one address.
    Credential,
    /// Every failure from one address.
    Address,
}

/// What a failed attempt leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// 401, answered after `delay`.
    Refuse { delay: Duration },
    /// 429: a block holds for `retry_after_secs` more seconds.
    Blocked { retry_after_secs: u64 },
    /// 429: this failure started a block.
    NewlyBlocked { scope: BlockScope },
}

impl AuthGuard {
    /// A guard that keeps at most `capacity` counters.
    pub fn with_capacity(capacity: usize) -> AuthGuard {
        AuthGuard {
            table: Mutex::new(Table::new(capacity)),
            hasher: RandomState::new(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counters held now.
    pub fn tracked(&self) -> usize {
        self.table().counters.len()
    }

    /// Counts one failure of `credential` (the presented secret, empty when none) from
    /// `address` (already reduced to its throttle unit).
    pub fn fail(&self, address: IpAddr, credential: &str) -> FailureOutcome {
        let pair = Counted::Credential(address, self.hasher.hash_one(credential));
        let whole = Counted::Address(address);
        let now = Instant::now();
        let mut table = self.table();
        let blocked = [whole, pair]
            .into_iter()
            .filter_map(|counted| table.blocked_until(counted, now))
            .max();
        if let Some(until) = blocked {
            return FailureOutcome::Blocked {
                retry_after_secs: (until - now).as_secs().max(1),
            };
        }
        let (address_failures, address_blocked) = table.count(whole, ADDRESS_BLOCK_AFTER, now);
        let (pair_failures, pair_blocked) = table.count(pair, BLOCK_AFTER, now);
        if address_blocked {
            return FailureOutcome::NewlyBlocked {
                scope: BlockScope::Address,
            };
        }
        if pair_blocked {
            return FailureOutcome::NewlyBlocked {
                scope: BlockScope::Credential,
            };
        }
        let over = pair_failures
            .saturating_sub(SLOW_AFTER)
            .max(address_failures.saturating_sub(ADDRESS_SLOW_AFTER));
        FailureOutcome::Refuse {
            delay: (DELAY_STEP * over).min(MAX_DELAY),
        }
    }
}

/// An authenticated caller.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
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
        let address = throttle_unit(client_address(parts, &state.trusted_proxies));
        Err(count_failure(state, address, secret.unwrap_or("")).await)
    }
}

/// The throttle unit of the request's client (for failures not seen by `Authenticated`).
pub struct ClientUnit(pub IpAddr);

impl FromRequestParts<AppState> for ClientUnit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(ClientUnit(throttle_unit(client_address(
            parts,
            &state.trusted_proxies,
        ))))
    }
}

/// Counts a failed authentication of `secret` from `address` and answers it: 401 (late
/// past the slow-down thresholds) or 429 while blocked; a new block goes on the ledger.
pub(crate) async fn count_failure(state: &AppState, address: IpAddr, secret: &str) -> ApiError {
    match state.guard.fail(address, secret) {
        FailureOutcome::Refuse { delay } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            ApiError::Unauthorized
        }
        FailureOutcome::Blocked { retry_after_secs } => {
            tokio::time::sleep(MAX_DELAY).await;
            ApiError::AuthBlocked { retry_after_secs }
        }
        FailureOutcome::NewlyBlocked { scope } => {
            let detail = match scope {
                BlockScope::Credential => format!(
                    "one credential from an address was refused for {} s after {BLOCK_AFTER} failed authentications",
                    BLOCK_FOR.as_secs()
                ),
                BlockScope::Address => format!(
                    "failed authentications from an address were refused for {} s after {ADDRESS_BLOCK_AFTER} of them",
                    BLOCK_FOR.as_secs()
                ),
            };
            let engine = state.engine.clone();
            let recorded = tokio::task::spawn_blocking(move || {
                engine.record_security_event("auth.blocked", detail)
            })
            .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::error!("an authentication block could not be written to the ledger");
            }
            tracing::warn!("failed authentications from an address are refused for a while");
            ApiError::AuthBlocked {
                retry_after_secs: BLOCK_FOR.as_secs(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn block(guard: &AuthGuard, address: IpAddr, credential: &str) {
        for _ in 1..BLOCK_AFTER {
            assert!(matches!(
                guard.fail(address, credential),
                FailureOutcome::Refuse { .. }
            ));
        }
        assert_eq!(
            guard.fail(address, credential),
            FailureOutcome::NewlyBlocked {
                scope: BlockScope::Credential
            }
        );
    }

    /// Guards the bounded table: however many clients fail, it never holds more than its
    /// capacity, and making room drops counters that block nothing before any block (the
    /// old table was cleared when full, which lifted every block at once).
    #[tokio::test(start_paused = true)]
    async fn a_full_table_keeps_its_blocks() {
        let guard = AuthGuard::with_capacity(16);
        block(&guard, address(1), "stolen");
        for last in 2..=200 {
            guard.fail(address(last), "guess");
            assert!(guard.tracked() <= 16);
        }
        assert!(matches!(
            guard.fail(address(1), "stolen"),
            FailureOutcome::Blocked { .. }
        ));
        // A table of nearly nothing but blocks still keeps them while others churn.
        let guard = AuthGuard::with_capacity(4);
        block(&guard, address(1), "a");
        block(&guard, address(2), "b");
        block(&guard, address(3), "c");
        assert_eq!(guard.tracked(), 4);
        for last in 4..=50 {
            guard.fail(address(last), "guess");
            assert!(guard.tracked() <= 4);
        }
        for (last, credential) in [(1, "a"), (2, "b"), (3, "c")] {
            assert!(matches!(
                guard.fail(address(last), credential),
                FailureOutcome::Blocked { .. }
            ));
        }
    }

    /// Guards that many credentials from one address block that address's failures, and
    /// that a block ends after `BLOCK_FOR`.
    #[tokio::test(start_paused = true)]
    async fn many_credentials_block_the_address_for_a_while() {
        let guard = AuthGuard::default();
        for attempt in 1..ADDRESS_BLOCK_AFTER {
            assert!(matches!(
                guard.fail(address(9), &format!("guess-{attempt}")),
                FailureOutcome::Refuse { .. }
            ));
        }
        assert_eq!(
            guard.fail(address(9), "guess-last"),
            FailureOutcome::NewlyBlocked {
                scope: BlockScope::Address
            }
        );
        assert!(matches!(
            guard.fail(address(9), "anything"),
            FailureOutcome::Blocked { .. }
        ));
        assert!(matches!(
            guard.fail(address(10), "anything"),
            FailureOutcome::Refuse { .. }
        ));
        tokio::time::advance(BLOCK_FOR).await;
        assert_eq!(
            guard.fail(address(9), "anything"),
            FailureOutcome::Refuse {
                delay: Duration::ZERO
            }
        );
    }
}
