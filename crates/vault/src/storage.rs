//! The storage contract: what a backend (SQLite today, PostgreSQL later) must keep.
//!
//! Backends see only sealed bytes and clear metadata (internal subject ids, categories,
//! times, purposes); they never see a key or a plaintext personal value. Every write that
//! touches personal data carries its ledger entries, and a backend commits both in one
//! transaction: data is written if and only if its access is on the ledger.
//! The same conformance suite (`crate::conformance`, with the `testing` feature) runs
//! against every backend.

use std::path::Path;
use std::sync::Arc;

use crate::crypto::WrappedKey;
use crate::error::Result;
use crate::integrity::{ConsentHead, IntegrityKeys, StateSeal};
use crate::ledger::{Checkpoint, LedgerDraft, LedgerHead, LedgerKey, LedgerRecord};

/// Internal subject id: random, never the shop's customer id, never reused.
pub type SubjectId = i64;

/// Whether a subject is live or being forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectState {
    Active,
    Forgetting,
}

/// A subject as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectRow {
    pub id: SubjectId,
    /// The shop's customer id, sealed with the subject's key (checked on every lookup).
    pub sealed_external_id: Vec<u8>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub state: SubjectState,
}

/// A sealed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub subject: SubjectId,
    pub category: String,
    /// When it happened, unix milliseconds (clear: retention needs it).
    pub at: i64,
    pub sealed: Vec<u8>,
}

/// A sealed attribute value (one per subject and name; a new value replaces the old).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeRow {
    pub subject: SubjectId,
    pub name: String,
    pub category: String,
    /// Unix milliseconds.
    pub updated_at: i64,
    pub sealed: Vec<u8>,
}

/// A catalogue item as stored. Items are not personal data: kept in clear, never sealed,
/// never on the ledger, and no consent governs them.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRow {
    /// The shop's item id (stock code).
    pub item: String,
    pub title: String,
    /// `/`-separated category paths.
    pub categories: Vec<String>,
    pub price: Option<f64>,
    pub available: bool,
    /// Unix milliseconds of the last upsert.
    pub updated_at: i64,
}

/// One consent decision; the history is append-only (proof of consent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRow {
    pub subject: SubjectId,
    pub purpose: String,
    pub granted: bool,
    /// Unix milliseconds.
    pub at: i64,
    /// Where the decision was collected (e.g. `checkout-banner-v3`, `gpc-header`).
    pub source: String,
    /// The policy version in force when it was given.
    pub policy_version: String,
    /// AEAD tag under the subject's key over every field above: a consent row altered,
    /// moved to another subject or invented fails to verify.
    pub tag: Vec<u8>,
}

/// A consent row as stored: its store sequence number (the order decisions were recorded
/// in, never their clock time) and its link in the subject's consent chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredConsent {
    pub seq: i64,
    pub row: ConsentRow,
    /// MAC over the row, its sequence number and the previous link (`crate::integrity`).
    pub mac: Vec<u8>,
}

/// A subject's consent rows in store order, with the head that closes their chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredConsents {
    pub rows: Vec<StoredConsent>,
    pub head: Option<ConsentHead>,
}

/// An API key row as stored, with its MAC (`crate::integrity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredApiKey {
    pub row: ApiKeyRow,
    pub mac: Vec<u8>,
}

/// The data file's seal as stored, with its MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSeal {
    pub seal: StateSeal,
    pub mac: Vec<u8>,
}

/// The key store's ledger anchor: a head, with its MAC (`None` in a store written before
/// anchors were MAC'd, until the vault MACs it once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedAnchor {
    pub head: LedgerHead,
    pub mac: Option<Vec<u8>>,
}

/// What `Storage::integrity_scan` hands over, all read in one consistent snapshot.
pub trait IntegrityVisitor {
    /// The seal (first).
    fn seal(&mut self, seal: Option<StoredSeal>);
    /// Every ledger entry in sequence order, until this returns false.
    fn ledger(&mut self, record: &LedgerRecord) -> bool;
    /// Every API key row.
    fn api_key(&mut self, key: StoredApiKey);
    /// Every consent head.
    fn consent_head(&mut self, head: ConsentHead);
    /// Every consent row, by subject, then in store order.
    fn consent(&mut self, consent: StoredConsent);
}

/// A remembered idempotency key: the same key and body are accepted once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key_hash: Vec<u8>,
    pub body_hash: Vec<u8>,
    pub accepted: u64,
    pub at: i64,
}

/// A durable intent to forget a subject, with what has been erased so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureIntent {
    pub subject: SubjectId,
    pub subject_token: String,
    /// Unix milliseconds.
    pub requested_at: i64,
    pub model_interactions: u64,
}

/// How many rows of each kind a subject holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubjectRowCounts {
    pub events: u64,
    pub attributes: u64,
    pub consents: u64,
}

/// A stored receipt: its id, token and the signed JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReceipt {
    pub id: String,
    pub subject_token: String,
    pub json: String,
}

/// Everything one write commits atomically.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub new_subjects: Vec<SubjectRow>,
    pub events: Vec<EventRow>,
    pub attributes: Vec<AttributeRow>,
    pub consents: Vec<ConsentRow>,
    pub ledger: Vec<LedgerDraft>,
    pub idempotency: Option<IdempotencyRecord>,
    /// API keys to issue (hashes of their secrets only).
    pub api_keys: Vec<ApiKeyRow>,
    /// API keys to revoke: (key id, unix milliseconds).
    pub revoked_api_keys: Vec<(String, i64)>,
}

/// An API key as stored: never its secret, only the secret's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Public id, shown in lists and on the ledger.
    pub id: String,
    /// Role name from the policy.
    pub role: String,
    /// What the key is for (free text chosen by the operator; not personal data).
    pub label: String,
    pub secret_hash: [u8; 32],
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds, when revoked.
    pub revoked_at: Option<i64>,
}

/// Which ledger entries to list.
#[derive(Clone, Debug, Default)]
pub struct LedgerFilter {
    pub subject_token: Option<String>,
    pub actor: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    /// Only entries before this sequence number (paging back through the chain).
    pub before_seq: Option<i64>,
    /// Newest first, at most this many.
    pub limit: usize,
}

/// The state of one subject's data key in the key store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    Live(WrappedKey),
    /// Destroyed at this time (unix milliseconds): the subject was forgotten.
    Destroyed {
        at: i64,
    },
    Missing,
}

/// Where sealed personal data, consents, receipts and the ledger live.
pub trait Storage: Send + Sync {
    /// Gives the storage the key that chains the ledger; called once, before any write.
    fn attach_ledger_key(&self, key: LedgerKey) -> Result<()>;
    /// Gives the storage the row-integrity keys, after the ledger key. With `migrate` (the
    /// key store's integrity secret was just created) it first MACs every existing API key
    /// and consent row and seals the data as it is. Otherwise it checks the stored seal
    /// against the ledger's head: when that fails it returns what is wrong and refuses
    /// every write from then on, so that nothing re-seals an altered file; `refuse` (a
    /// problem the vault found, e.g. with the key store's anchor) refuses them as well.
    fn attach_integrity(
        &self,
        keys: Arc<IntegrityKeys>,
        migrate: bool,
        refuse: Option<String>,
    ) -> Result<Option<String>>;
    /// A value from the data's own small key-value table (schema facts, key store identity).
    fn meta(&self, name: &str) -> Result<Option<String>>;
    /// Sets a value in that table.
    fn set_meta(&self, name: &str, value: &str) -> Result<()>;
    /// True when no subject and no ledger entry was ever stored.
    fn is_empty(&self) -> Result<bool>;
    /// How many events are stored for active subjects.
    fn count_events(&self) -> Result<u64>;
    /// Subjects (in any state) with at least one consent decision for `purpose`.
    fn subjects_with_consent(&self, purpose: &str) -> Result<Vec<SubjectId>>;
    /// Every active subject (none being forgotten), by id: what `export --all` walks.
    fn subject_ids(&self) -> Result<Vec<SubjectId>>;
    /// Every API key ever issued, revoked ones included, oldest first, with their MACs.
    fn api_keys(&self) -> Result<Vec<StoredApiKey>>;
    /// The subject with internal id `id`.
    fn subject(&self, id: SubjectId) -> Result<Option<SubjectRow>>;
    /// Which of `ids` exist (in any state).
    fn subjects_present(&self, ids: &[SubjectId]) -> Result<Vec<SubjectId>>;
    /// Reserves `n` consecutive event sequence numbers, never handed out before; returns the first.
    fn reserve_event_seqs(&self, n: u64) -> Result<i64>;
    /// A remembered idempotency key.
    fn idempotency(&self, key_hash: &[u8]) -> Result<Option<IdempotencyRecord>>;
    /// Commits a batch atomically with its ledger entries; returns the new ledger head.
    /// Fails with `IdempotencyConflict` when the batch's idempotency key is already stored.
    fn write(&self, batch: WriteBatch) -> Result<LedgerHead>;
    /// A subject's events, in sequence order.
    fn events_of(&self, subject: SubjectId) -> Result<Vec<EventRow>>;
    /// Up to `limit` events of active subjects with sequence number above `after_seq`, in order.
    fn events_after(&self, after_seq: i64, limit: usize) -> Result<Vec<EventRow>>;
    /// A subject's attributes.
    fn attributes_of(&self, subject: SubjectId) -> Result<Vec<AttributeRow>>;
    /// A subject's consent history in store order, with its chain head (one snapshot).
    fn consents_of(&self, subject: SubjectId) -> Result<StoredConsents>;
    /// Records (or keeps) the intent to forget and marks the subject as forgetting.
    fn begin_erasure(&self, intent: &ErasureIntent, entry: LedgerDraft) -> Result<ErasureIntent>;
    /// Every unfinished erasure.
    fn erasure_intents(&self) -> Result<Vec<ErasureIntent>>;
    /// The unfinished erasure of one subject.
    fn erasure_intent(&self, subject: SubjectId) -> Result<Option<ErasureIntent>>;
    /// How many events, attributes and consents the subject holds.
    fn count_subject_rows(&self, subject: SubjectId) -> Result<SubjectRowCounts>;
    /// In one transaction: deletes the subject's events, attributes and consents (failing
    /// with `Conflict` if they are not `expected`), stores the receipt, removes the intent
    /// and the subject row, and appends the ledger entry.
    fn complete_erasure(
        &self,
        subject: SubjectId,
        expected: SubjectRowCounts,
        receipt: &StoredReceipt,
        entry: LedgerDraft,
    ) -> Result<()>;
    /// Removes every row of a subject whose key is already destroyed (e.g. from a restored backup).
    fn drop_subject(&self, subject: SubjectId, entry: LedgerDraft) -> Result<()>;
    /// Categories that have events or attributes.
    fn categories_in_use(&self) -> Result<Vec<String>>;
    /// Events of `category` that happened before `before` (unix milliseconds).
    fn events_before(&self, category: &str, before: i64) -> Result<Vec<EventRow>>;
    /// Attributes of `category` last updated before `before`.
    fn attributes_before(&self, category: &str, before: i64) -> Result<Vec<AttributeRow>>;
    /// Deletes the given events and the given attribute values (subject, name, updated_at),
    /// with their ledger entries; returns how many rows went.
    fn erase_records(
        &self,
        events: &[i64],
        attributes: &[(SubjectId, String, i64)],
        ledger: Vec<LedgerDraft>,
    ) -> Result<u64>;
    /// A stored receipt.
    fn receipt(&self, id: &str) -> Result<Option<StoredReceipt>>;
    /// Appends ledger entries on their own (e.g. reads).
    fn append_ledger(&self, entries: Vec<LedgerDraft>) -> Result<LedgerHead>;
    /// The current head of the ledger.
    fn ledger_head(&self) -> Result<LedgerHead>;
    /// Entries matching `filter`, newest first.
    fn ledger_query(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRecord>>;
    /// Hands the seal, every ledger entry, API key row, consent head and consent row to
    /// `visitor`, all from one snapshot (a concurrent write is either wholly in or out).
    fn integrity_scan(&self, visitor: &mut dyn IntegrityVisitor) -> Result<()>;
    /// Stores a signed checkpoint.
    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;
    /// Every checkpoint, in order.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
    /// Writes a consistent copy of the data (never the keys) to `dest`.
    fn backup(&self, dest: &Path) -> Result<()>;
    /// Declares or replaces catalogue items, all in one transaction (all or none); returns
    /// how many were not declared before.
    fn upsert_items(&self, items: Vec<ItemRow>) -> Result<u64>;
    /// The declared item `item`.
    fn item(&self, item: &str) -> Result<Option<ItemRow>>;
    /// Every declared item, by item id.
    fn items(&self) -> Result<Vec<ItemRow>>;
    /// The change log, when several processes may share this store (PostgreSQL).
    fn cluster(&self) -> Option<&dyn ClusterLog> {
        None
    }
}

/// Where wrapped data keys and vault secrets live, apart from the sealed data.
pub trait KeyStorage: Send + Sync {
    /// Stores new subjects' wrapped keys with their lookup hashes atomically; fails if any id
    /// (live or destroyed) or lookup is taken. The lookup lives here, beside the key, so a
    /// forget shreds the link from the shop's customer id everywhere, old data backups too.
    fn insert_data_keys(&self, keys: &[NewDataKey]) -> Result<()>;
    /// The live subject whose lookup hash (keyed hash of the shop's customer id) is `lookup`.
    fn find_subject(&self, lookup: &[u8]) -> Result<Option<SubjectId>>;
    /// The state of a subject's key.
    fn data_key(&self, subject: SubjectId) -> Result<KeyState>;
    /// Destroys a subject's wrapped key and lookup, leaving a tombstone; true if it was live.
    fn destroy_data_key(&self, subject: SubjectId, at: i64) -> Result<bool>;
    /// Subjects whose keys were destroyed.
    fn destroyed_subjects(&self) -> Result<Vec<SubjectId>>;
    /// The ledger head last anchored here (apart from the data, so cutting the chain short
    /// or deleting its checkpoints in the data file is found), with its MAC.
    fn ledger_anchor(&self) -> Result<Option<SealedAnchor>>;
    /// Moves the anchor to `anchor`: forward, or to the same head (to MAC it once).
    fn set_ledger_anchor(&self, anchor: &SealedAnchor) -> Result<()>;
    /// A named vault secret (lookup key, token key, signing seed).
    fn secret(&self, name: &str) -> Result<Option<WrappedKey>>;
    /// Stores a named secret unless one exists; returns the one that is stored.
    fn insert_secret(&self, name: &str, wrapped: &WrappedKey) -> Result<WrappedKey>;
    /// Up to `limit` data keys and secrets not wrapped by `kek_id`.
    fn keys_not_wrapped_by(&self, kek_id: &str, limit: usize) -> Result<Vec<(KeyRef, WrappedKey)>>;
    /// Replaces wrapped keys, each only if it still holds the old wrapping; returns how many changed.
    fn rewrap(&self, updates: &[(KeyRef, WrappedKey, WrappedKey)]) -> Result<u64>;
    /// Writes a consistent copy of the key store to `dest` (for short-lived key backups).
    fn backup(&self, dest: &Path) -> Result<()>;
}

/// A new subject's key-store row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDataKey {
    pub subject: SubjectId,
    pub lookup: Vec<u8>,
    pub wrapped: WrappedKey,
}

/// A wrapped key's place in the key store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    Subject(SubjectId),
    Secret(String),
}

/// What a change of the change log asks every node's models to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Events were stored (`events` names them): learn them, for consenting subjects.
    Events,
    /// Consent decisions were recorded for `subjects`: follow them.
    Consents,
    /// API keys were issued or revoked: reload them.
    Keys,
    /// The catalogue changed: reload it.
    Items,
    /// `subjects` are being forgotten; their events are still readable: unlearn them now.
    Forgetting,
    /// `subjects` are gone.
    Forgotten,
    /// Retention is about to erase `events` (still readable): unlearn them now.
    Erasing,
    /// Retention erased `events`.
    Erased,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::Events,
        ChangeKind::Consents,
        ChangeKind::Keys,
        ChangeKind::Items,
        ChangeKind::Forgetting,
        ChangeKind::Forgotten,
        ChangeKind::Erasing,
        ChangeKind::Erased,
    ];

    /// The name stored in the change log.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Events => "events",
            ChangeKind::Consents => "consents",
            ChangeKind::Keys => "keys",
            ChangeKind::Items => "items",
            ChangeKind::Forgetting => "forgetting",
            ChangeKind::Forgotten => "forgotten",
            ChangeKind::Erasing => "erasing",
            ChangeKind::Erased => "erased",
        }
    }

    /// The kind of a stored name.
    pub fn parse(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// One committed change, in the order every node applies them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRow {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The node whose write it was (that node already applied it).
    pub node: String,
    pub kind: ChangeKind,
    pub subjects: Vec<SubjectId>,
    /// Event sequence numbers.
    pub events: Vec<i64>,
}

/// A node sharing the store, as it last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// The last change it applied.
    pub applied_seq: i64,
    /// False once another node gave up waiting for it: it must catch up (rebuild) before
    /// it answers personal requests again.
    pub live: bool,
}

/// Wakes a node when changes were committed (or when it cannot know: a lost connection).
pub trait ChangeBell: Send + Sync {
    /// Waits until the bell rang more often than `heard` times, or `timeout` passed;
    /// returns how often it has rung.
    fn wait(&self, heard: u64, timeout: std::time::Duration) -> u64;
}

/// The change log and the nodes of a store that several processes share.
pub trait ClusterLog: Send + Sync {
    /// From now on, every write of this process also writes its change, naming `node`, and
    /// rings the other nodes' bells at commit.
    fn join(&self, node: &str) -> Result<()>;
    /// Up to `limit` changes after `after`, in order.
    fn changes_after(&self, after: i64, limit: usize) -> Result<Vec<ChangeRow>>;
    /// The last committed change (0 when none).
    fn changes_head(&self) -> Result<i64>;
    /// Writes a change on its own (what must reach every node before a write happens).
    fn announce(&self, kind: ChangeKind, subjects: &[SubjectId], events: &[i64]) -> Result<i64>;
    /// Reports `node` alive, having applied up to `applied`; `rejoin` also marks it live
    /// again (it caught up). Answers the node's row as stored.
    fn heartbeat(&self, node: &str, started_at: i64, applied: i64, rejoin: bool)
    -> Result<NodeRow>;
    /// Every node that ever registered.
    fn nodes(&self) -> Result<Vec<NodeRow>>;
    /// The database's clock, unix milliseconds: what heartbeats are stamped with.
    fn db_now(&self) -> Result<i64>;
    /// Events retention announced it will erase and has not erased yet.
    fn erasures_announced(&self) -> Result<Vec<i64>>;
    /// Removes nodes not live whose last heartbeat is older than `silent_since`.
    fn prune_nodes(&self, silent_since: i64) -> Result<u64>;
    /// Marks `nodes` not live (they missed a bounded wait).
    fn mark_not_live(&self, nodes: &[String]) -> Result<()>;
    /// Removes `node` (a clean shutdown).
    fn leave(&self, node: &str) -> Result<()>;
    /// The events with these sequence numbers that are still stored.
    fn events_by_seq(&self, seqs: &[i64]) -> Result<Vec<EventRow>>;
    /// A bell that rings when another process commits a change (a connection of its own,
    /// made again when lost, and rung then too).
    fn bell(&self) -> Result<Arc<dyn ChangeBell>>;
    /// Takes the once-only duty `name` if no other process holds it; held until `release`.
    fn try_duty(&self, name: &str) -> Result<bool>;
    /// Gives a duty back.
    fn release_duty(&self, name: &str) -> Result<()>;
    /// Removes changes every registered node has applied, older than `before` (unix ms).
    fn trim_changes(&self, before: i64) -> Result<u64>;
}
