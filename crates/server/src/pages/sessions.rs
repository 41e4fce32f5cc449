//! Privacy-center sessions, in memory (a restart signs everyone out).
//!
//! The shop's backend mints a session for its logged-in customer and gets a start URL that
//! holds a single-use token, good for `START_FOR`. The first visit swaps it for a cookie
//! token that lasts at most `SESSION_FOR` and names that one subject. Only SHA-256 hashes of
//! the tokens are kept, so the table itself opens nothing. The table is bounded: minting
//! drops expired entries first, each subject holds at most `PER_SUBJECT` live sessions (its
//! oldest goes), and a full table refuses new sessions rather than dropping live ones.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use discreet_vault::crypto::{constant_time_eq, random_bytes, sha256_parts, to_hex};
use discreet_vault::{ForgetReceipt, now_millis};
use tokio::time::Instant;

/// How long a start URL may wait for its one visit.
pub const START_FOR: Duration = Duration::from_secs(10 * 60);
/// How long a session lasts from its first visit.
pub const SESSION_FOR: Duration = Duration::from_secs(30 * 60);
// A breach-impact report follows a leaked key into the sessions it opened as far back as
// the engine's reach: a session must not outlive it.
const _: () = assert!(
    START_FOR.as_millis() + SESSION_FOR.as_millis()
        <= discreet_engine::PORTAL_SESSION_REACH_MILLIS as u128
);
/// How long an ended session is remembered, so that its cookie is told where to go back to.
const REMEMBER_ENDED_FOR: Duration = Duration::from_secs(30 * 60);
/// Start URLs and sessions kept at most (live and recently ended together).
pub const MAX_SESSIONS: usize = 20_000;
/// Live sessions (and unused start URLs) one subject holds at most.
pub const PER_SUBJECT: usize = 4;
/// Requests one session may make in `RATE_WINDOW` (each page reads the customer's whole
/// export): more are answered 429, so one customer cannot take the server's cores.
pub const REQUESTS_PER_WINDOW: u32 = 120;
/// The window of `REQUESTS_PER_WINDOW`.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// What the shop asked for when it minted a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub subject: String,
    /// Where the pages link back to (checked when minted).
    pub return_url: String,
    /// `en` or `de`; `None` follows the browser's `Accept-Language`.
    pub locale: Option<String>,
}

/// A minted session: its public id, and the start token (shown once, in the URL).
pub struct Minted {
    pub id: String,
    pub start_token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// A live session as a page sees it.
#[derive(Clone, Debug)]
pub struct Session {
    /// `ps_…`: what the ledger names (`portal:<id>`).
    pub id: String,
    pub grant: Grant,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Set once the subject was forgotten: the session then shows only its receipt.
    pub receipt: Option<ForgetReceipt>,
}

/// Why a session cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such token (never minted, already used, or long gone).
    Unknown,
    /// It was good once; the pages link back to the shop.
    Ended { return_url: String },
    /// Live, but past `REQUESTS_PER_WINDOW`: retry after that many seconds.
    Busy { retry_after_secs: u64 },
}

/// Why a session could not be minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MintRefusal {
    /// Every place in the table holds a live session.
    Full,
    /// The system's random source failed.
    Random,
}

struct Entry {
    session: Session,
    /// The SHA-256 of its token: the start token while pending, then the cookie token.
    token: [u8; 32],
    /// Until when it may be used.
    expires: Instant,
    /// True until the start URL is visited.
    pending: bool,
    /// False once signed out (kept only to answer with the way back).
    live: bool,
    /// Requests in the current rate window, and when it began.
    requests: u32,
    window_start: Instant,
}

impl Entry {
    fn usable(&self, now: Instant) -> bool {
        self.live && self.expires > now
    }
}

#[derive(Default)]
struct Table {
    /// By minting order (the oldest of a subject goes first).
    entries: HashMap<u64, Entry>,
    tokens: HashMap<[u8; 32], u64>,
    by_subject: HashMap<String, Vec<u64>>,
    next: u64,
}

impl Table {
    fn remove(&mut self, id: u64) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.tokens.remove(&entry.token);
        let subject = &entry.session.grant.subject;
        if let Some(ids) = self.by_subject.get_mut(subject) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_subject.remove(subject);
            }
        }
    }

    /// Drops every entry `drop` selects.
    fn drop_where(&mut self, drop: impl Fn(&Entry) -> bool) {
        let doomed: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| drop(entry))
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            self.remove(id);
        }
    }

    fn find(&self, token: &str) -> Option<(u64, &Entry)> {
        let id = *self.tokens.get(&token_hash(token))?;
        Some((id, self.entries.get(&id)?))
    }
}

/// Every privacy-center session of this server.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<Table>,
}

fn token_hash(token: &str) -> [u8; 32] {
    sha256_parts(&[b"discreet/portal-token/v1", token.as_bytes()])
}

fn random_hex() -> Result<String, MintRefusal> {
    random_bytes::<32>()
        .map(|bytes| to_hex(&bytes[..]))
        .map_err(|_| MintRefusal::Random)
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session for `grant`, pending its first visit.
    pub fn mint(&self, grant: Grant) -> Result<Minted, MintRefusal> {
        let start_token = random_hex()?;
        let csrf = random_hex()?;
        let id = format!("ps_{}", &random_hex()?[..24]);
        let now = Instant::now();
        let mut table = self.lock();
        if table.entries.len() >= MAX_SESSIONS {
            table.drop_where(|entry| entry.expires + REMEMBER_ENDED_FOR <= now);
        }
        if table.entries.len() >= MAX_SESSIONS {
            // Ended sessions make room before live ones refuse a newcomer.
            table.drop_where(|entry| !entry.usable(now));
        }
        if table.entries.len() >= MAX_SESSIONS {
            return Err(MintRefusal::Full);
        }
        let key = table.next;
        table.next += 1;
        let token = token_hash(&start_token);
        table
            .by_subject
            .entry(grant.subject.clone())
            .or_default()
            .push(key);
        table.tokens.insert(token, key);
        table.entries.insert(
            key,
            Entry {
                session: Session {
                    id: id.clone(),
                    grant,
                    csrf,
                    receipt: None,
                },
                token,
                expires: now + START_FOR,
                pending: true,
                live: true,
                requests: 0,
                window_start: now,
            },
        );
        Ok(Minted {
            id,
            start_token,
            expires_at: now_millis() + START_FOR.as_millis() as i64,
        })
    }

    /// Keeps the newest `PER_SUBJECT` live sessions of `subject` and ends the older ones:
    /// called once a new session was handed out, so that a refused one signs nobody out.
    pub fn trim(&self, subject: &str) {
        let now = Instant::now();
        let mut table = self.lock();
        let own: Vec<u64> = table
            .by_subject
            .get(subject)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| table.entries.get(id).is_some_and(|entry| entry.usable(now)))
                    .collect()
            })
            .unwrap_or_default();
        for old in own.iter().take(own.len().saturating_sub(PER_SUBJECT)) {
            table.remove(*old);
        }
    }

    /// Forgets a minted session whose start URL was never handed out.
    pub fn discard(&self, start_token: &str) {
        let mut table = self.lock();
        if let Some((key, entry)) = table.find(start_token)
            && entry.pending
        {
            table.remove(key);
        }
    }

    /// Swaps a start token for a cookie token (once): the session then lasts `SESSION_FOR`.
    pub fn start(&self, start_token: &str) -> Result<(String, Session), Refusal> {
        let cookie_token = random_hex().map_err(|_| Refusal::Unknown)?;
        let now = Instant::now();
        let mut table = self.lock();
        let Some((key, entry)) = table.find(start_token) else {
            return Err(Refusal::Unknown);
        };
        if !entry.pending {
            // A cookie token presented as a start token.
            return Err(Refusal::Unknown);
        }
        if !entry.usable(now) {
            let return_url = entry.session.grant.return_url.clone();
            table.remove(key);
            return Err(Refusal::Ended { return_url });
        }
        let old = entry.token;
        let new = token_hash(&cookie_token);
        table.tokens.remove(&old);
        table.tokens.insert(new, key);
        let Some(entry) = table.entries.get_mut(&key) else {
            return Err(Refusal::Unknown);
        };
        entry.token = new;
        entry.pending = false;
        entry.expires = now + SESSION_FOR;
        Ok((cookie_token, entry.session.clone()))
    }

    /// The live session of a cookie token.
    pub fn get(&self, cookie_token: &str) -> Result<Session, Refusal> {
        let now = Instant::now();
        let mut table = self.lock();
        let Some(key) = table.tokens.get(&token_hash(cookie_token)).copied() else {
            return Err(Refusal::Unknown);
        };
        let Some(entry) = table.entries.get_mut(&key) else {
            return Err(Refusal::Unknown);
        };
        if entry.pending {
            return Err(Refusal::Unknown);
        }
        if !entry.usable(now) {
            return Err(Refusal::Ended {
                return_url: entry.session.grant.return_url.clone(),
            });
        }
        if now.duration_since(entry.window_start) >= RATE_WINDOW {
            entry.window_start = now;
            entry.requests = 0;
        }
        if entry.requests >= REQUESTS_PER_WINDOW {
            let left = RATE_WINDOW.saturating_sub(now.duration_since(entry.window_start));
            return Err(Refusal::Busy {
                retry_after_secs: left.as_secs().max(1),
            });
        }
        entry.requests += 1;
        Ok(entry.session.clone())
    }

    /// The session of a cookie token, if `csrf` is its form token.
    pub fn get_for_form(&self, cookie_token: &str, csrf: &str) -> Result<Session, FormRefusal> {
        let session = self.get(cookie_token).map_err(FormRefusal::Session)?;
        if constant_time_eq(session.csrf.as_bytes(), csrf.as_bytes()) {
            Ok(session)
        } else {
            Err(FormRefusal::Csrf)
        }
    }

    /// Records that the session's subject was forgotten: from now on it shows only `receipt`.
    pub fn forgotten(&self, cookie_token: &str, receipt: ForgetReceipt) {
        let mut table = self.lock();
        if let Some(key) = table.tokens.get(&token_hash(cookie_token)).copied()
            && let Some(entry) = table.entries.get_mut(&key)
        {
            entry.session.receipt = Some(receipt);
        }
    }

    /// Ends a session (sign-out); its cookie is then told only the way back.
    pub fn end(&self, cookie_token: &str) {
        let mut table = self.lock();
        if let Some(key) = table.tokens.get(&token_hash(cookie_token)).copied()
            && let Some(entry) = table.entries.get_mut(&key)
        {
            entry.live = false;
        }
    }

    /// Start URLs and sessions held (live and recently ended), for metrics and tests.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a form was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormRefusal {
    Session(Refusal),
    /// The form's token is not the session's.
    Csrf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(subject: &str) -> Grant {
        Grant {
            subject: subject.to_owned(),
            return_url: "https://shop.example/account".to_owned(),
            locale: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_token_works_once_within_its_time() {
        let sessions = Sessions::default();
        let minted = sessions.mint(grant("c-1")).unwrap();
        let (cookie, session) = sessions.start(&minted.start_token).unwrap();
        assert_eq!(session.grant.subject, "c-1");
        assert_eq!(session.id, minted.id);
        assert_eq!(
            sessions.start(&minted.start_token).unwrap_err(),
            Refusal::Unknown
        );
        assert!(sessions.get(&cookie).is_ok());
        // A cookie token is no start token, and a start token is no cookie.
        assert_eq!(sessions.start(&cookie).unwrap_err(), Refusal::Unknown);
        assert!(sessions.get(&cookie).is_ok());

        let late = sessions.mint(grant("c-2")).unwrap();
        assert_eq!(
            sessions.get(&late.start_token).unwrap_err(),
            Refusal::Unknown
        );
        tokio::time::advance(START_FOR + Duration::from_secs(1)).await;
        assert!(matches!(
            sessions.start(&late.start_token),
            Err(Refusal::Ended { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_ends_after_its_time_and_on_sign_out() {
        let sessions = Sessions::default();
        let minted = sessions.mint(grant("c-1")).unwrap();
        let (cookie, _) = sessions.start(&minted.start_token).unwrap();
        tokio::time::advance(SESSION_FOR - Duration::from_secs(1)).await;
        assert!(sessions.get(&cookie).is_ok());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(matches!(sessions.get(&cookie), Err(Refusal::Ended { .. })));

        let minted = sessions.mint(grant("c-1")).unwrap();
        let (cookie, session) = sessions.start(&minted.start_token).unwrap();
        assert_eq!(
            sessions.get_for_form(&cookie, "wrong").unwrap_err(),
            FormRefusal::Csrf
        );
        assert!(sessions.get_for_form(&cookie, &session.csrf).is_ok());
        sessions.end(&cookie);
        assert!(matches!(sessions.get(&cookie), Err(Refusal::Ended { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_makes_a_bounded_number_of_requests_a_minute() {
        let sessions = Sessions::default();
        let minted = sessions.mint(grant("c-1")).unwrap();
        let (cookie, _) = sessions.start(&minted.start_token).unwrap();
        for _ in 0..REQUESTS_PER_WINDOW {
            assert!(sessions.get(&cookie).is_ok());
        }
        assert!(matches!(sessions.get(&cookie), Err(Refusal::Busy { .. })));
        tokio::time::advance(RATE_WINDOW).await;
        assert!(sessions.get(&cookie).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_subject_holds_few_sessions_and_the_table_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.mint(grant("c-1")).unwrap();
        for _ in 0..PER_SUBJECT {
            sessions.mint(grant("c-1")).unwrap();
            sessions.trim("c-1");
        }
        assert_eq!(sessions.len(), PER_SUBJECT);
        assert_eq!(
            sessions.start(&first.start_token).unwrap_err(),
            Refusal::Unknown
        );

        let sessions = Sessions::default();
        for index in 0..MAX_SESSIONS {
            sessions.mint(grant(&format!("c-{index}"))).unwrap();
        }
        assert_eq!(sessions.mint(grant("c-new")).err(), Some(MintRefusal::Full));
        tokio::time::advance(START_FOR + Duration::from_secs(1)).await;
        assert!(sessions.mint(grant("c-new")).is_ok());
        assert_eq!(sessions.len(), 1);
    }
}
