//! Console sessions, in memory (a restart signs every officer out).
//!
//! An officer signs in with an API key of a role that has the `console` action; the key is
//! checked once and swapped for a random cookie token that lasts at most `SESSION_FOR`. The
//! session names the key, never holds its secret, and ends the moment the key is revoked
//! (each request asks the engine whether the key is still live). Only SHA-256 hashes of the
//! tokens are kept. The table is bounded: one key holds at most `PER_KEY` sessions (its
//! oldest goes), expired ones go first, and a table full of live sessions refuses newcomers.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use discreet_vault::crypto::{constant_time_eq, random_bytes, sha256_parts, to_hex};
use discreet_vault::now_millis;
use tokio::time::Instant;

/// How long a console session lasts from its sign-in.
pub const SESSION_FOR: Duration = Duration::from_secs(8 * 3600);
/// How long a sign-in form stays good.
pub const SIGN_IN_FOR: Duration = Duration::from_secs(15 * 60);
/// Live sessions kept at most.
pub const MAX_SESSIONS: usize = 4_096;
/// Live sessions one API key holds at most.
pub const PER_KEY: usize = 8;

/// A live console session as a page sees it.
#[derive(Clone, Debug)]
pub struct Officer {
    /// `cs_…`: what the pages show; the ledger names the officer's key.
    pub id: String,
    /// The API key signed in with.
    pub key_id: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

/// Why a session could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenRefusal {
    /// Every place in the table holds a live session.
    Full,
    /// The system's random source failed.
    Random,
}

struct Entry {
    officer: Officer,
    expires: Instant,
    opened: u64,
}

#[derive(Default)]
struct Table {
    entries: HashMap<[u8; 32], Entry>,
    next: u64,
}

/// Every console session of this server.
#[derive(Default)]
pub struct ConsoleSessions {
    table: Mutex<Table>,
    /// This server's key for sign-in form tokens (drawn at the first sign-in page).
    form_key: OnceLock<[u8; 32]>,
}

fn token_hash(token: &str) -> [u8; 32] {
    sha256_parts(&[b"discreet/console-token/v1", token.as_bytes()])
}

/// 64 random hex digits.
pub fn random_token() -> Option<String> {
    random_bytes::<32>().ok().map(|bytes| to_hex(&bytes[..]))
}

impl ConsoleSessions {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn form_key(&self) -> Option<[u8; 32]> {
        if let Some(key) = self.form_key.get() {
            return Some(*key);
        }
        let fresh = random_bytes::<32>().ok()?;
        Some(*self.form_key.get_or_init(|| *fresh))
    }

    fn form_mac(key: &[u8; 32], issued: &str, nonce: &str) -> String {
        to_hex(&sha256_parts(&[
            b"discreet/console-sign-in/v1",
            &key[..],
            issued.as_bytes(),
            nonce.as_bytes(),
        ]))
    }

    /// A sign-in form token, `ISSUED.NONCE.MAC`: good for `SIGN_IN_FOR` from now, which the
    /// server checks itself (the cookie's lifetime is only the browser's promise).
    pub fn sign_in_token(&self) -> Option<String> {
        let key = self.form_key()?;
        let issued = now_millis().to_string();
        let nonce = &random_token()?[..32];
        let mac = ConsoleSessions::form_mac(&key, &issued, nonce);
        Some(format!("{issued}.{nonce}.{mac}"))
    }

    /// True when `token` is a sign-in form token of this server, issued at most
    /// `SIGN_IN_FOR` ago.
    pub fn sign_in_token_ok(&self, token: &str) -> bool {
        let Some(key) = self.form_key.get() else {
            return false;
        };
        let mut parts = token.split('.');
        let (Some(issued), Some(nonce), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let expected = ConsoleSessions::form_mac(key, issued, nonce);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return false;
        }
        let Ok(issued) = issued.parse::<i64>() else {
            return false;
        };
        let age = now_millis().saturating_sub(issued);
        (0..=SIGN_IN_FOR.as_millis() as i64).contains(&age)
    }

    /// A new session for `key_id`: its cookie token and what it names.
    pub fn open(&self, key_id: &str) -> Result<(String, Officer), OpenRefusal> {
        let token = random_token().ok_or(OpenRefusal::Random)?;
        let csrf = random_token().ok_or(OpenRefusal::Random)?;
        let id = format!("cs_{}", &random_token().ok_or(OpenRefusal::Random)?[..24]);
        let now = Instant::now();
        let mut table = self.lock();
        table.entries.retain(|_, entry| entry.expires > now);
        let mut own: Vec<([u8; 32], u64)> = table
            .entries
            .iter()
            .filter(|(_, entry)| entry.officer.key_id == key_id)
            .map(|(hash, entry)| (*hash, entry.opened))
            .collect();
        own.sort_by_key(|(_, opened)| *opened);
        for (hash, _) in own.iter().take((own.len() + 1).saturating_sub(PER_KEY)) {
            table.entries.remove(hash);
        }
        if table.entries.len() >= MAX_SESSIONS {
            return Err(OpenRefusal::Full);
        }
        let officer = Officer {
            id,
            key_id: key_id.to_owned(),
            csrf,
        };
        let opened = table.next;
        table.next += 1;
        table.entries.insert(
            token_hash(&token),
            Entry {
                officer: officer.clone(),
                expires: now + SESSION_FOR,
                opened,
            },
        );
        Ok((token, officer))
    }

    /// The live session of a cookie token.
    pub fn get(&self, token: &str) -> Option<Officer> {
        let now = Instant::now();
        let table = self.lock();
        table
            .entries
            .get(&token_hash(token))
            .filter(|entry| entry.expires > now)
            .map(|entry| entry.officer.clone())
    }

    /// The session of a cookie token, if `csrf` is its form token.
    pub fn get_for_form(&self, token: &str, csrf: &str) -> Option<Officer> {
        self.get(token)
            .filter(|officer| constant_time_eq(officer.csrf.as_bytes(), csrf.as_bytes()))
    }

    /// Ends a session (sign-out, or its key was revoked).
    pub fn end(&self, token: &str) {
        self.lock().entries.remove(&token_hash(token));
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_lasts_eight_hours_and_ends_on_sign_out() {
        let sessions = ConsoleSessions::default();
        let (token, officer) = sessions.open("key_1").unwrap();
        assert_eq!(sessions.get(&token).unwrap().key_id, "key_1");
        assert!(sessions.get_for_form(&token, "wrong").is_none());
        assert!(sessions.get_for_form(&token, &officer.csrf).is_some());
        tokio::time::advance(SESSION_FOR - Duration::from_secs(1)).await;
        assert!(sessions.get(&token).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(sessions.get(&token).is_none());

        let (token, _) = sessions.open("key_1").unwrap();
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn sign_in_tokens_are_this_servers_and_checked_for_age() {
        let sessions = ConsoleSessions::default();
        assert!(!sessions.sign_in_token_ok("1.2.3"), "no key drawn yet");
        let token = sessions.sign_in_token().unwrap();
        assert!(sessions.sign_in_token_ok(&token));
        let other = ConsoleSessions::default();
        other.sign_in_token().unwrap();
        assert!(!other.sign_in_token_ok(&token), "another server's token");
        let (_, rest) = token.split_once('.').unwrap();
        let stale = (now_millis() - SIGN_IN_FOR.as_millis() as i64 - 1_000).to_string();
        assert!(
            !sessions.sign_in_token_ok(&format!("{stale}.{rest}")),
            "a changed time breaks the MAC"
        );
        let key = sessions.form_key().unwrap();
        let nonce = "0".repeat(32);
        let mac = ConsoleSessions::form_mac(&key, &stale, &nonce);
        assert!(
            !sessions.sign_in_token_ok(&format!("{stale}.{nonce}.{mac}")),
            "older than SIGN_IN_FOR"
        );
        assert!(!sessions.sign_in_token_ok(&format!("{token}.x")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_holds_few_sessions_and_the_table_is_bounded() {
        let sessions = ConsoleSessions::default();
        let (first, _) = sessions.open("key_1").unwrap();
        for _ in 0..PER_KEY {
            sessions.open("key_1").unwrap();
        }
        assert_eq!(sessions.len(), PER_KEY);
        assert!(sessions.get(&first).is_none(), "the oldest went");

        let sessions = ConsoleSessions::default();
        for index in 0..MAX_SESSIONS {
            sessions.open(&format!("key_{index}")).unwrap();
        }
        assert_eq!(sessions.open("key_new").err(), Some(OpenRefusal::Full));
        tokio::time::advance(SESSION_FOR + Duration::from_secs(1)).await;
        assert!(sessions.open("key_new").is_ok());
        assert_eq!(sessions.len(), 1);
    }
}
