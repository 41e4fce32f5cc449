//! Verifying the data file against the key store: the whole ledger chain with its signed
//! checkpoints and the key store's MAC'd anchor, the data file's seal (a cut tail), every
//! API key row and every subject's consent chain — all read from one snapshot.
//!
//! It reads only; it never repairs, re-MACs or re-seals anything it found wrong, and it
//! names rows by key id or subject token, never by a personal value.

use std::collections::HashMap;

use crate::crypto::constant_time_eq;
use crate::integrity::{ConsentHead, IntegrityKeys, Mac, xor_into};
use crate::ledger::{ChainVerifier, LedgerHead, LedgerRecord, LedgerVerification};
use crate::storage::*;

use super::Vault;
use super::keys::check_anchor;

/// At most this many tampered rows are named one by one; the rest are counted.
const TAMPERED_NAMED: usize = 100;

/// Collects what `integrity_scan` hands over.
struct Scan<'a> {
    vault: &'a Vault,
    keys: &'a IntegrityKeys,
    chain: ChainVerifier<'a>,
    last_read: LedgerHead,
    seal: Option<StoredSeal>,
    api_keys: Mac,
    heads: HashMap<SubjectId, ConsentHead>,
    consent_heads: Mac,
    group: Vec<StoredConsent>,
    tampered: Vec<String>,
    tampered_more: usize,
}

impl Scan<'_> {
    fn report(&mut self, problem: String) {
        if self.tampered.len() < TAMPERED_NAMED {
            self.tampered.push(problem);
        } else {
            self.tampered_more += 1;
        }
    }

    /// Checks the subject whose rows were just read (and its head).
    fn close_group(&mut self) {
        let Some(subject) = self.group.first().map(|stored| stored.row.subject) else {
            return;
        };
        let rows = std::mem::take(&mut self.group);
        let head = self.heads.remove(&subject);
        self.check_subject(subject, &rows, head.as_ref());
    }

    fn check_subject(
        &mut self,
        subject: SubjectId,
        rows: &[StoredConsent],
        head: Option<&ConsentHead>,
    ) {
        if let Err(problem) = self.keys.check_consent_chain(subject, rows, head) {
            let token = self.vault.subject_token(subject);
            self.report(format!(
                "the consent history of subject {token} does not verify: {problem}"
            ));
        }
    }
}

impl IntegrityVisitor for Scan<'_> {
    fn seal(&mut self, seal: Option<StoredSeal>) {
        self.seal = seal;
    }

    fn ledger(&mut self, record: &LedgerRecord) -> bool {
        let intact = self.chain.push(record);
        if intact {
            self.last_read = LedgerHead {
                seq: record.seq,
                hash: record.hash,
            };
        }
        intact
    }

    fn api_key(&mut self, key: StoredApiKey) {
        xor_into(&mut self.api_keys, &key.mac);
        if !self.keys.api_key_intact(&key.row, &key.mac) {
            let named = key.row.id.len() <= 40
                && key
                    .row
                    .id
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
            self.report(if named {
                format!(
                    "API key {}: its row was inserted or altered in the data file; it does not authenticate",
                    key.row.id
                )
            } else {
                "an API key row with a malformed id was inserted in the data file; it does not authenticate".into()
            });
        }
    }

    fn consent_head(&mut self, head: ConsentHead) {
        xor_into(&mut self.consent_heads, &head.mac);
        self.heads.insert(head.subject, head);
    }

    fn consent(&mut self, consent: StoredConsent) {
        if self
            .group
            .first()
            .is_some_and(|first| first.row.subject != consent.row.subject)
        {
            self.close_group();
        }
        self.group.push(consent);
    }
}

impl Vault {
    /// Re-walks the whole chain and checks every signed checkpoint, the key store's
    /// anchor, the data file's seal, every API key row and every consent history.
    pub fn verify_ledger(&self) -> crate::error::Result<LedgerVerification> {
        let checkpoints = self.storage.checkpoints()?;
        let anchor = self.keys.ledger_anchor()?;
        // Only an anchor whose MAC verifies is believed; a missing or altered one is reported.
        let anchor_problem = check_anchor(&self.integrity, anchor.clone(), i64::MAX);
        let believed = anchor
            .filter(|_| anchor_problem.is_none())
            .map(|anchor| anchor.head);
        let mut scan = Scan {
            vault: self,
            keys: &self.integrity,
            chain: ChainVerifier::new(
                &self.ledger_key,
                checkpoints.iter().map(|checkpoint| checkpoint.seq),
                believed,
            ),
            last_read: LedgerHead::EMPTY,
            seal: None,
            api_keys: [0u8; 32],
            heads: HashMap::new(),
            consent_heads: [0u8; 32],
            group: Vec::new(),
            tampered: Vec::new(),
            tampered_more: 0,
        };
        self.storage.integrity_scan(&mut scan)?;
        scan.close_group();
        let mut orphans: Vec<ConsentHead> = scan.heads.drain().map(|(_, head)| head).collect();
        orphans.sort_by_key(|head| head.subject);
        for head in orphans {
            scan.check_subject(head.subject, &[], Some(&head));
        }
        let Scan {
            chain,
            last_read,
            seal,
            api_keys,
            consent_heads,
            mut tampered,
            tampered_more,
            ..
        } = scan;
        let mut verification = chain.finish(&checkpoints, &self.signer.public_key());
        if let Some(problem) = anchor_problem {
            tampered.insert(0, problem);
        }
        match seal {
            None => tampered.insert(0, "the data file's seal is missing".into()),
            Some(stored)
                if !constant_time_eq(&self.integrity.seal_mac(&stored.seal), &stored.mac) =>
            {
                tampered.insert(0, "the data file's seal was altered".into())
            }
            Some(stored) => {
                let sealed = stored.seal.head;
                if verification.first_bad_entry.is_none() && sealed != last_read {
                    verification.first_bad_entry = Some(last_read.seq.min(sealed.seq) + 1);
                    verification.problem = Some(if sealed.seq > last_read.seq {
                        format!(
                            "entries {}..={} were removed (the data file's seal covers them)",
                            last_read.seq + 1,
                            sealed.seq
                        )
                    } else {
                        format!(
                            "the ledger's head (entry {}) is not the sealed one (entry {})",
                            last_read.seq, sealed.seq
                        )
                    });
                }
                if stored.seal.api_keys != api_keys {
                    tampered.push(
                        "API key rows were deleted, or replayed from an older copy of the data file".into(),
                    );
                }
                if stored.seal.consent_heads != consent_heads {
                    tampered.push(
                        "consent histories were deleted, or replayed from an older copy of the data file".into(),
                    );
                }
            }
        }
        if tampered_more > 0 {
            tampered.push(format!("and {tampered_more} more rows"));
        }
        if verification.first_bad_entry.is_none()
            && verification.problem.is_none()
            && let Some(first) = tampered.first()
        {
            verification.problem = Some(first.clone());
        }
        verification.ok =
            verification.ok && verification.first_bad_entry.is_none() && tampered.is_empty();
        verification.tampered = tampered;
        Ok(verification)
    }
}
