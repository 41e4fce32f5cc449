//! Row integrity: MACs, under a secret held in the key store, over the rows of the data
//! file that grant power or record decisions, so that someone who can write the data file
//! but holds no key can neither mint an API key, nor revive a withdrawn consent, nor cut
//! the ledger's tail unnoticed.
//!
//! - Each API key row carries a MAC over all its fields (revocation included): a row
//!   inserted or altered in the file never authenticates.
//! - Each subject's consent rows form a chain (each MAC covers the row, its store sequence
//!   number and the MAC before it), closed by a MAC'd per-subject head (rows, last MAC): a
//!   row inserted, altered, reordered or deleted breaks the chain, and that subject's
//!   consent fails closed. Forgetting a subject removes its chain and head together.
//! - One seal row, rewritten at the end of every write transaction, MACs the ledger's head
//!   with the XOR of every consent head's MAC and of every API key row's MAC: a cut ledger
//!   tail, a head or key row replayed from an older copy, or a whole consent set deleted
//!   no longer matches it.
//! - The key store's ledger anchor is MAC'd too, so rewriting it by hand is found.
//!
//! Every MAC is an HMAC-SHA-256 under its own subkey, derived from the one key-store
//! secret by purpose; every field is length-prefixed so no two rows share an encoding.
//! Nothing here reads a file or a clock.

use aws_lc_rs::hmac;

use crate::crypto::constant_time_eq;
use crate::ledger::LedgerHead;
use crate::storage::{ApiKeyRow, ConsentRow, StoredConsent, SubjectId};

/// A MAC (HMAC-SHA-256).
pub type Mac = [u8; 32];

/// The MAC before a subject's first consent row.
pub const CHAIN_START: Mac = [0u8; 32];

/// The per-purpose subkeys of the key store's row-integrity secret.
pub struct IntegrityKeys {
    api_key: hmac::Key,
    consent: hmac::Key,
    consent_head: hmac::Key,
    seal: hmac::Key,
    anchor: hmac::Key,
}

impl std::fmt::Debug for IntegrityKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("IntegrityKeys(..)")
    }
}

/// The seal of the data file: the ledger's head and the accumulated MACs of the rows that
/// grant power or record decisions, as of the last committed write transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateSeal {
    pub head: LedgerHead,
    /// XOR of every stored consent head's MAC.
    pub consent_heads: Mac,
    /// XOR of every stored API key row's MAC.
    pub api_keys: Mac,
}

impl StateSeal {
    /// The seal of a data file with no ledger entry, no consent and no key.
    pub const EMPTY: StateSeal = StateSeal {
        head: LedgerHead::EMPTY,
        consent_heads: [0u8; 32],
        api_keys: [0u8; 32],
    };
}

/// The closing link of one subject's consent chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentHead {
    pub subject: SubjectId,
    /// How many consent rows the subject holds.
    pub rows: u64,
    /// The MAC of its newest row (`CHAIN_START` when none).
    pub last: Mac,
    /// MAC over (subject, rows, last).
    pub mac: Mac,
}

/// XORs `other` into `into`.
pub fn xor_into(into: &mut Mac, other: &[u8]) {
    for (byte, other) in into.iter_mut().zip(other) {
        *byte ^= other;
    }
}

/// A MAC'd message builder: every part length-prefixed.
struct Parts(hmac::Context);

impl Parts {
    fn new(key: &hmac::Key, label: &[u8]) -> Self {
        let mut parts = Parts(hmac::Context::with_key(key));
        parts.add(label);
        parts
    }

    fn add(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    fn optional(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.add(b"some").add(&value.to_be_bytes()),
            None => self.add(b"none"),
        }
    }

    fn finish(self) -> Mac {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.sign().as_ref());
        out
    }
}

impl IntegrityKeys {
    /// The subkeys of `secret` (the key store's row-integrity secret).
    pub fn new(secret: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derive = |purpose: &[u8]| {
            let subkey = hmac::sign(
                &root,
                &[&b"discreet/integrity-subkey/v1/"[..], purpose].concat(),
            );
            hmac::Key::new(hmac::HMAC_SHA256, subkey.as_ref())
        };
        IntegrityKeys {
            api_key: derive(b"api-key"),
            consent: derive(b"consent"),
            consent_head: derive(b"consent-head"),
            seal: derive(b"seal"),
            anchor: derive(b"ledger-anchor"),
        }
    }

    /// The MAC of an API key row, over every field (revocation included).
    pub fn api_key_mac(&self, row: &ApiKeyRow) -> Mac {
        let mut parts = Parts::new(&self.api_key, b"discreet/api-key-row/v1");
        parts
            .add(row.id.as_bytes())
            .add(row.role.as_bytes())
            .add(row.label.as_bytes())
            .add(&row.secret_hash)
            .add(&row.created_at.to_be_bytes())
            .optional(row.revoked_at);
        parts.finish()
    }

    /// Whether an API key row's stored MAC is its MAC.
    pub fn api_key_intact(&self, row: &ApiKeyRow, mac: &[u8]) -> bool {
        constant_time_eq(&self.api_key_mac(row), mac)
    }

    /// The MAC of consent row `seq` (its store sequence number) following `previous`.
    pub fn consent_mac(&self, previous: &Mac, seq: i64, row: &ConsentRow) -> Mac {
        let mut parts = Parts::new(&self.consent, b"discreet/consent-row/v1");
        parts
            .add(previous)
            .add(&seq.to_be_bytes())
            .add(&row.subject.to_be_bytes())
            .add(row.purpose.as_bytes())
            .add(&[row.granted as u8])
            .add(&row.at.to_be_bytes())
            .add(row.source.as_bytes())
            .add(row.policy_version.as_bytes())
            .add(&row.tag);
        parts.finish()
    }

    /// A subject's consent head after `rows` rows ending with `last`.
    pub fn consent_head(&self, subject: SubjectId, rows: u64, last: Mac) -> ConsentHead {
        let mut parts = Parts::new(&self.consent_head, b"discreet/consent-head/v1");
        parts
            .add(&subject.to_be_bytes())
            .add(&rows.to_be_bytes())
            .add(&last);
        ConsentHead {
            subject,
            rows,
            last,
            mac: parts.finish(),
        }
    }

    /// Checks one subject's consent chain (rows in store order, each with its sequence
    /// number and stored MAC) against its head; says what is wrong.
    pub fn check_consent_chain(
        &self,
        subject: SubjectId,
        rows: &[StoredConsent],
        head: Option<&ConsentHead>,
    ) -> Result<(), &'static str> {
        let mut previous = CHAIN_START;
        for stored in rows {
            let mac = self.consent_mac(&previous, stored.seq, &stored.row);
            if stored.row.subject != subject || !constant_time_eq(&mac, &stored.mac) {
                return Err("a decision was inserted, altered or reordered");
            }
            previous = mac;
        }
        match head {
            None if rows.is_empty() => Ok(()),
            None => Err("the head of its history is missing"),
            Some(head) => {
                let expected = self.consent_head(subject, head.rows, head.last);
                if !constant_time_eq(&expected.mac, &head.mac) {
                    Err("the head of its history was altered")
                } else if head.rows != rows.len() as u64 || head.last != previous {
                    Err("a decision was deleted")
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The MAC of the data file's seal.
    pub fn seal_mac(&self, seal: &StateSeal) -> Mac {
        let mut parts = Parts::new(&self.seal, b"discreet/state-seal/v1");
        parts
            .add(&seal.head.seq.to_be_bytes())
            .add(&seal.head.hash)
            .add(&seal.consent_heads)
            .add(&seal.api_keys);
        parts.finish()
    }

    /// The MAC of the key store's ledger anchor.
    pub fn anchor_mac(&self, head: &LedgerHead) -> Mac {
        let mut parts = Parts::new(&self.anchor, b"discreet/ledger-anchor/v1");
        parts.add(&head.seq.to_be_bytes()).add(&head.hash);
        parts.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(at: i64, granted: bool) -> ConsentRow {
        ConsentRow {
            subject: 7,
            purpose: "personalization".into(),
            granted,
            at,
            source: "banner".into(),
            policy_version: "1".into(),
            tag: vec![1, 2, 3],
        }
    }

    fn chain(keys: &IntegrityKeys, rows: &[ConsentRow]) -> (Vec<StoredConsent>, ConsentHead) {
        let mut previous = CHAIN_START;
        let mut linked = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let seq = index as i64 + 1;
            let mac = keys.consent_mac(&previous, seq, row);
            linked.push(StoredConsent {
                seq,
                row: row.clone(),
                mac: mac.to_vec(),
            });
            previous = mac;
        }
        (linked, keys.consent_head(7, rows.len() as u64, previous))
    }

    #[test]
    fn an_intact_chain_verifies_and_each_change_is_found() {
        let keys = IntegrityKeys::new(b"secret");
        let rows = [consent(1, true), consent(2, false)];
        let (linked, head) = chain(&keys, &rows);
        assert_eq!(keys.check_consent_chain(7, &linked, Some(&head)), Ok(()));
        // The withdrawal deleted: the grant alone no longer matches the head.
        assert!(
            keys.check_consent_chain(7, &linked[..1], Some(&head))
                .is_err()
        );
        // The withdrawal deleted and the head recomputed without the key.
        let forged = IntegrityKeys::new(b"guess").consent_head(
            7,
            1,
            keys.consent_mac(&CHAIN_START, 1, &rows[0]),
        );
        assert!(
            keys.check_consent_chain(7, &linked[..1], Some(&forged))
                .is_err()
        );
        // A row flipped to a grant.
        let mut flipped = linked.clone();
        flipped[1].row.granted = true;
        assert!(keys.check_consent_chain(7, &flipped, Some(&head)).is_err());
        // Rows without a head.
        assert!(keys.check_consent_chain(7, &linked, None).is_err());
        // A chain moved to another subject.
        assert!(keys.check_consent_chain(8, &linked, Some(&head)).is_err());
    }

    #[test]
    fn a_revocation_undone_breaks_the_api_key_mac() {
        let keys = IntegrityKeys::new(b"secret");
        let mut row = ApiKeyRow {
            id: "key_1".into(),
            role: "storefront".into(),
            label: String::new(),
            secret_hash: [9; 32],
            created_at: 1,
            revoked_at: Some(5),
        };
        let mac = keys.api_key_mac(&row);
        assert!(keys.api_key_intact(&row, &mac));
        row.revoked_at = None;
        assert!(!keys.api_key_intact(&row, &mac));
        row.revoked_at = Some(5);
        row.role = "admin".into();
        assert!(!keys.api_key_intact(&row, &mac));
    }

    #[test]
    fn subkeys_differ_by_purpose() {
        let keys = IntegrityKeys::new(b"secret");
        let head = LedgerHead::EMPTY;
        assert_ne!(keys.anchor_mac(&head), keys.seal_mac(&StateSeal::EMPTY));
    }
}
