//! The ledger: an append-only, hash-chained record of every access to personal data.
//!
//! Each entry's hash is an HMAC (keyed by a secret kept in the key store) over its sequence
//! number, its fields and the previous entry's hash, so altering, removing or reordering
//! any entry breaks the chain at that entry, and nobody with only the data file can
//! recompute a consistent chain. Signed checkpoints pin the head every
//! `CHECKPOINT_INTERVAL` entries (anyone with the public key can check them), and the
//! latest one is also anchored in the key store, so that deleting checkpoints or cutting
//! the chain short is found. Entries name subjects only by pseudonymous token; they must
//! never carry a personal value (no customer id, email, item history).

use serde::Serialize;

use aws_lc_rs::hmac;

use crate::crypto::{sha256_parts, to_hex, verify_signature};

/// A signed checkpoint is written each time the head passes a multiple of this.
pub const CHECKPOINT_INTERVAL: i64 = 1024;

/// The hash before the first entry.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// The detail word that carries per-category record counts: `by_category=CAT:N,CAT:N`.
pub const BY_CATEGORY: &str = "by_category=";

/// The category consent records are read and counted under (the taxonomy's privacy
/// preferences).
pub const CONSENT_CATEGORY: &str = "user.privacy_preferences";

/// ` by_category=CAT:N,...` for the records an entry touched, category by category (empty
/// when there are none). Category names never hold `:`, `,` or spaces.
pub fn by_category_detail<'a>(categories: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for category in categories {
        *counts.entry(category).or_default() += 1;
    }
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(category, count)| format!("{category}:{count}"))
        .collect();
    format!(" {BY_CATEGORY}{}", parts.join(","))
}

/// The per-category record counts of an entry's detail, when it carries them.
pub fn parse_by_category(detail: &str) -> Option<Vec<(String, u64)>> {
    let list = detail
        .split(' ')
        .find_map(|word| word.strip_prefix(BY_CATEGORY))?;
    list.split(',')
        .map(|part| {
            let (category, count) = part.rsplit_once(':')?;
            Some((category.to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// The number after `name=` in an entry's detail (e.g. `events=12`).
pub fn detail_count(detail: &str, name: &str) -> Option<u64> {
    detail
        .split(' ')
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// An entry about to be appended (the storage chains it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerDraft {
    /// Unix milliseconds.
    pub at: i64,
    /// Who acted: an API key id, `system`, `retention`, a CLI user.
    pub actor: String,
    /// What was done, e.g. `events.ingest`, `subject.read`, `forget.completed`.
    pub action: String,
    /// The pseudonymous subject token, when the entry concerns one subject.
    pub subject_token: Option<String>,
    /// The purpose named by the access, when there is one.
    pub purpose: Option<String>,
    /// The data categories touched.
    pub categories: Vec<String>,
    /// `ok`, `denied`, `failed`, …
    pub outcome: String,
    /// Counts and identifiers only; never a personal value.
    pub detail: String,
}

impl LedgerDraft {
    /// A draft with the given actor and action, outcome `ok`, and nothing else set.
    pub fn new(at: i64, actor: &str, action: &str) -> Self {
        LedgerDraft {
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject_token: None,
            purpose: None,
            categories: Vec::new(),
            outcome: "ok".to_owned(),
            detail: String::new(),
        }
    }

    /// Names the subject by token.
    pub fn subject(mut self, token: &str) -> Self {
        self.subject_token = Some(token.to_owned());
        self
    }

    /// Names the purpose.
    pub fn purpose(mut self, purpose: &str) -> Self {
        self.purpose = Some(purpose.to_owned());
        self
    }

    /// Sets the categories (sorted, deduplicated).
    pub fn categories<I: IntoIterator<Item = S>, S: Into<String>>(mut self, categories: I) -> Self {
        let mut categories: Vec<String> = categories.into_iter().map(Into::into).collect();
        categories.sort();
        categories.dedup();
        self.categories = categories;
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: &str) -> Self {
        self.outcome = outcome.to_owned();
        self
    }

    /// Sets the detail (counts, identifiers).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// A stored entry: the draft with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRecord {
    pub seq: i64,
    pub entry: LedgerDraft,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// The last entry of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl LedgerHead {
    /// The head of an empty ledger.
    pub const EMPTY: LedgerHead = LedgerHead {
        seq: 0,
        hash: GENESIS_HASH,
    };
}

/// The secret that keys the chain's hashes.
pub struct LedgerKey(hmac::Key);

impl LedgerKey {
    /// A ledger key from secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        LedgerKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The hash of entry `seq` following `prev_hash`: every field length-prefixed, each
    /// category on its own, so no two different entries share an encoding.
    pub fn entry_hash(&self, seq: i64, prev_hash: &[u8; 32], entry: &LedgerDraft) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.0);
        let mut part = |bytes: &[u8]| {
            context.update(&(bytes.len() as u64).to_be_bytes());
            context.update(bytes);
        };
        part(b"discreet/ledger/v2");
        part(&seq.to_be_bytes());
        part(prev_hash);
        part(&entry.at.to_be_bytes());
        part(entry.actor.as_bytes());
        part(entry.action.as_bytes());
        for optional in [&entry.subject_token, &entry.purpose] {
            match optional {
                Some(text) => {
                    part(b"some");
                    part(text.as_bytes());
                }
                None => part(b"none"),
            }
        }
        part(&(entry.categories.len() as u64).to_be_bytes());
        for category in &entry.categories {
            part(category.as_bytes());
        }
        part(entry.outcome.as_bytes());
        part(entry.detail.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// Chains `entry` after `head`, advancing `head`.
    pub fn chain(&self, head: &mut LedgerHead, entry: LedgerDraft) -> LedgerRecord {
        let seq = head.seq + 1;
        let hash = self.entry_hash(seq, &head.hash, &entry);
        let record = LedgerRecord {
            seq,
            entry,
            prev_hash: head.hash,
            hash,
        };
        *head = LedgerHead { seq, hash };
        record
    }
}

/// A signed statement that the chain's entry `seq` has hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: [u8; 32],
    pub at: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(seq: i64, hash: &[u8; 32], at: i64) -> Vec<u8> {
    sha256_parts(&[
        b"discreet/ledger-checkpoint/v1",
        &seq.to_be_bytes(),
        hash,
        &at.to_be_bytes(),
    ])
    .to_vec()
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerVerification {
    pub ok: bool,
    /// Entries read.
    pub entries: i64,
    /// Hash of the last entry read, hex.
    pub head: String,
    /// Signed checkpoints that matched the chain.
    pub checkpoints_verified: usize,
    /// Sequence number of the first altered, removed or reordered entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_entry: Option<i64>,
    /// What is wrong there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Rows that grant power or record decisions found inserted, altered, deleted or
    /// replayed in the data file (API keys, consent histories, the data file's seal).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tampered: Vec<String>,
}

/// Walks the chain entry by entry; feed it every record in sequence order, then `finish`.
pub struct ChainVerifier<'key> {
    key: &'key LedgerKey,
    anchor: Option<LedgerHead>,
    expected_seq: i64,
    prev_hash: [u8; 32],
    entries: i64,
    hashes_at_checkpoints: std::collections::HashMap<i64, [u8; 32]>,
    first_bad: Option<(i64, String)>,
}

impl<'key> ChainVerifier<'key> {
    /// A verifier for a chain keyed by `key`, whose checkpoints are at `checkpoint_seqs`,
    /// and whose head was last anchored (outside the data) at `anchor`.
    pub fn new(
        key: &'key LedgerKey,
        checkpoint_seqs: impl IntoIterator<Item = i64>,
        anchor: Option<LedgerHead>,
    ) -> Self {
        ChainVerifier {
            key,
            anchor,
            expected_seq: 1,
            prev_hash: GENESIS_HASH,
            entries: 0,
            hashes_at_checkpoints: checkpoint_seqs
                .into_iter()
                .chain(anchor.map(|anchor| anchor.seq))
                .map(|seq| (seq, GENESIS_HASH))
                .collect(),
            first_bad: None,
        }
    }

    /// Checks the next record; returns false once a bad entry is found (stop feeding).
    pub fn push(&mut self, record: &LedgerRecord) -> bool {
        if self.first_bad.is_some() {
            return false;
        }
        self.entries += 1;
        let problem = if record.seq != self.expected_seq {
            Some(if record.seq > self.expected_seq {
                format!(
                    "entry {} is missing (next entry found is {})",
                    self.expected_seq, record.seq
                )
            } else {
                format!(
                    "entry {} appears out of order after entry {}",
                    record.seq,
                    self.expected_seq - 1
                )
            })
        } else if record.prev_hash != self.prev_hash {
            Some(format!(
                "entry {} does not follow the entry before it (removed or reordered)",
                record.seq
            ))
        } else if self
            .key
            .entry_hash(record.seq, &record.prev_hash, &record.entry)
            != record.hash
        {
            Some(format!(
                "entry {} was altered: its content does not match its hash",
                record.seq
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.first_bad = Some((self.expected_seq.min(record.seq), problem));
            return false;
        }
        if let Some(slot) = self.hashes_at_checkpoints.get_mut(&record.seq) {
            *slot = record.hash;
        }
        self.prev_hash = record.hash;
        self.expected_seq += 1;
        true
    }

    /// Checks the checkpoints against the chain read and their signatures.
    pub fn finish(self, checkpoints: &[Checkpoint], public_key: &[u8]) -> LedgerVerification {
        let last_seq = self.expected_seq - 1;
        let mut checkpoints_verified = 0;
        let mut first_bad = self.first_bad;
        if first_bad.is_none()
            && let Some(anchor) = self.anchor
        {
            if anchor.seq > last_seq {
                first_bad = Some((
                    last_seq + 1,
                    format!(
                        "entries {}..={} were removed (the key store's anchor covers them)",
                        last_seq + 1,
                        anchor.seq
                    ),
                ));
            } else if self.hashes_at_checkpoints.get(&anchor.seq) != Some(&anchor.hash) {
                first_bad = Some((
                    anchor.seq,
                    format!(
                        "the chain up to entry {} was rewritten (the key store's anchor differs)",
                        anchor.seq
                    ),
                ));
            }
        }
        if first_bad.is_none() {
            for checkpoint in checkpoints {
                let message = checkpoint_message(checkpoint.seq, &checkpoint.hash, checkpoint.at);
                if !verify_signature(public_key, &message, &checkpoint.signature) {
                    first_bad = Some((
                        checkpoint.seq,
                        format!("checkpoint at entry {} has a bad signature", checkpoint.seq),
                    ));
                    break;
                }
                if checkpoint.seq > last_seq {
                    first_bad = Some((
                        last_seq + 1,
                        format!(
                            "entries {}..={} were removed (a signed checkpoint covers them)",
                            last_seq + 1,
                            checkpoint.seq
                        ),
                    ));
                    break;
                }
                if self.hashes_at_checkpoints.get(&checkpoint.seq) != Some(&checkpoint.hash) {
                    first_bad = Some((
                        checkpoint.seq,
                        format!(
                            "the chain up to entry {} was rewritten (signed checkpoint differs)",
                            checkpoint.seq
                        ),
                    ));
                    break;
                }
                checkpoints_verified += 1;
            }
        }
        LedgerVerification {
            ok: first_bad.is_none(),
            entries: self.entries,
            head: to_hex(&self.prev_hash),
            checkpoints_verified,
            first_bad_entry: first_bad.as_ref().map(|(seq, _)| *seq),
            problem: first_bad.map(|(_, problem)| problem),
            tampered: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey::new(b"test ledger key")
    }

    fn records(n: i64) -> Vec<LedgerRecord> {
        let key = key();
        let mut head = LedgerHead::EMPTY;
        (0..n)
            .map(|i| {
                key.chain(
                    &mut head,
                    LedgerDraft::new(i, "tester", "events.ingest").detail(format!("n={i}")),
                )
            })
            .collect()
    }

    fn verify(records: &[LedgerRecord]) -> LedgerVerification {
        let key = key();
        let mut verifier = ChainVerifier::new(&key, [], None);
        for record in records {
            if !verifier.push(record) {
                break;
            }
        }
        verifier.finish(&[], &[])
    }

    #[test]
    fn a_chain_recomputed_without_the_key_does_not_verify() {
        let mut forged = records(3);
        let other_key = LedgerKey::new(b"guessed key");
        let mut head = LedgerHead::EMPTY;
        for record in &mut forged {
            *record = other_key.chain(&mut head, record.entry.clone());
        }
        assert_eq!(verify(&forged).first_bad_entry, Some(1));
    }

    #[test]
    fn categories_cannot_shift_between_each_other() {
        let key = key();
        let one = LedgerDraft::new(1, "a", "b").categories(["x,y"]);
        let two = LedgerDraft::new(1, "a", "b").categories(["x", "y"]);
        assert_ne!(
            key.entry_hash(1, &GENESIS_HASH, &one),
            key.entry_hash(1, &GENESIS_HASH, &two)
        );
    }

    #[test]
    fn an_intact_chain_verifies() {
        let verification = verify(&records(10));
        assert!(verification.ok, "{verification:?}");
        assert_eq!(verification.entries, 10);
    }

    #[test]
    fn alteration_removal_and_reordering_are_found_at_their_entry() {
        for index in 0..10usize {
            let mut altered = records(10);
            altered[index].entry.actor = "mallory".into();
            assert_eq!(verify(&altered).first_bad_entry, Some(index as i64 + 1));

            let mut removed = records(10);
            removed.remove(index);
            let expected = if index == 9 {
                None
            } else {
                Some(index as i64 + 1)
            };
            assert_eq!(
                verify(&removed).first_bad_entry,
                expected,
                "removing {index}"
            );

            if index < 9 {
                let mut reordered = records(10);
                reordered.swap(index, index + 1);
                assert_eq!(verify(&reordered).first_bad_entry, Some(index as i64 + 1));
            }
        }
    }
}
