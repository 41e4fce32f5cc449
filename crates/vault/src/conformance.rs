//! The storage conformance suite: promises every backend keeps, checked through the vault
//! facade. A backend's integration tests call `conformance_tests!` with a function that
//! makes a fresh `ConformanceBackend`; each case then opens (and reopens) that store.
//!
//! The cases panic on a broken promise, as tests do; nothing here runs in production: the
//! module exists only with the `testing` feature, which a backend's tests enable in their
//! dev-dependencies (`discreet-vault = { …, features = ["testing"] }`).

use crate::crypto::{Kek, KekRing};
use crate::error::Error;
use crate::ledger::LedgerDraft;
use crate::storage::{ConsentRow, LedgerFilter};
use crate::vault::{
    Access, Attribute, Event, ForgetStep, Idempotency, NewAttribute, NewConsent, NewEvent, Vault,
    now_millis,
};

/// A fresh, persistent store of one backend.
pub trait ConformanceBackend {
    /// Opens the vault over this store with `keks`; calling it again reopens the same store.
    fn open_with(&self, keks: KekRing) -> crate::Result<Vault>;
    /// The KEK this store was created with (hex), so cases can reopen it.
    fn kek_hex(&self) -> String;
    /// Opens with the store's own KEK.
    fn open(&self) -> Vault {
        let kek = Kek::from_hex(&self.kek_hex()).expect("backend KEK");
        self.open_with(KekRing::new(kek)).expect("open vault")
    }
}

const READER: Access<'static> = Access {
    actor: "conformance",
    purpose: "personalization",
};

/// A customer's events, read through one lookup as the engine does.
fn events_of(vault: &Vault, customer: &str) -> crate::Result<Vec<Event>> {
    vault.events_of(vault.active_subject_id(customer)?, READER)
}

/// A customer's attributes, read through one lookup.
fn attributes_of(vault: &Vault, customer: &str) -> crate::Result<Vec<Attribute>> {
    vault.attributes_of(vault.active_subject_id(customer)?, READER)
}

/// A customer's consent history, read through one lookup.
fn consents_of(vault: &Vault, customer: &str) -> crate::Result<Vec<ConsentRow>> {
    vault.consents_of(vault.active_subject_id(customer)?, READER)
}

fn event(subject: &str, item: &str, at: i64) -> NewEvent {
    NewEvent {
        subject: subject.to_owned(),
        category: "user.behavior.purchase_history".to_owned(),
        at,
        payload: format!("{{\"type\":\"purchase\",\"item\":\"{item}\"}}").into_bytes(),
    }
}

/// Appended events read back in order, opened, with their metadata.
pub fn events_round_trip(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    let events: Vec<NewEvent> = (0..50)
        .map(|i| {
            event(
                if i % 2 == 0 { "c-1" } else { "c-2" },
                &format!("item-{i}"),
                1_000 + i,
            )
        })
        .collect();
    let outcome = vault
        .append_events("conformance", &events, None)
        .expect("append");
    assert_eq!(outcome.accepted, 50);
    let read = events_of(&vault, "c-1").expect("read c-1");
    assert_eq!(read.len(), 25);
    assert!(read.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(read[0].payload, events[0].payload);
    assert_eq!(read[24].at, 1_048);
    assert!(vault.subject_id("c-2").expect("lookup").is_some());
    assert!(vault.subject_id("c-3").expect("lookup").is_none());
    assert!(matches!(
        vault.active_subject_id("c-3"),
        Err(Error::NotFound { .. })
    ));
}

/// Acknowledged writes survive closing and reopening.
pub fn writes_survive_reopen(backend: &dyn ConformanceBackend) {
    {
        let vault = backend.open();
        vault
            .append_events(
                "conformance",
                &[event("c-1", "a", 1), event("c-1", "b", 2)],
                None,
            )
            .expect("append");
        vault
            .put_attributes(
                "c-1",
                "conformance",
                &[attribute("email", "user.contact.email", "one@example.com")],
            )
            .expect("attributes");
    }
    let vault = backend.open();
    assert_eq!(events_of(&vault, "c-1").expect("read").len(), 2);
    assert_eq!(
        attributes_of(&vault, "c-1").expect("read")[0].value,
        b"one@example.com"
    );
    vault
        .append_events("conformance", &[event("c-1", "c", 3)], None)
        .expect("append after reopen");
    let seqs: Vec<i64> = events_of(&vault, "c-1")
        .expect("read")
        .iter()
        .map(|event| event.seq)
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "sequence numbers are never reused: {seqs:?}"
    );
}

/// Sequence numbers are never handed out twice, even after the newest events were erased
/// and the store reopened (a restored backup could otherwise hold two rows with one number).
pub fn sequence_numbers_never_reused(backend: &dyn ConformanceBackend) {
    let highest = {
        let vault = backend.open();
        vault
            .append_events("conformance", &[event("c-keep", "a", 1)], None)
            .expect("append");
        vault
            .append_events(
                "conformance",
                &[event("c-gone", "b", 2), event("c-gone", "c", 3)],
                None,
            )
            .expect("append");
        let highest = events_of(&vault, "c-gone")
            .expect("read")
            .last()
            .expect("event")
            .seq;
        vault.forget("c-gone", "conformance", 0).expect("forget");
        highest
    };
    let vault = backend.open();
    vault
        .append_events("conformance", &[event("c-new", "d", 4)], None)
        .expect("append");
    let next = events_of(&vault, "c-new").expect("read")[0].seq;
    assert!(
        next > highest,
        "sequence {next} reused (highest ever {highest})"
    );
}

fn attribute(name: &str, category: &str, value: &str) -> NewAttribute {
    NewAttribute {
        name: name.to_owned(),
        category: category.to_owned(),
        value: value.as_bytes().to_vec(),
    }
}

/// A new attribute value replaces the old one.
pub fn attributes_replace(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .put_attributes(
            "c-1",
            "conformance",
            &[attribute("email", "user.contact.email", "old@example.com")],
        )
        .expect("put");
    vault
        .put_attributes(
            "c-1",
            "conformance",
            &[
                attribute("email", "user.contact.email", "new@example.com"),
                attribute("first_name", "user.name.first", "Ada"),
            ],
        )
        .expect("put");
    let attributes = attributes_of(&vault, "c-1").expect("read");
    assert_eq!(attributes.len(), 2);
    assert_eq!(
        attributes
            .iter()
            .find(|a| a.name == "email")
            .expect("email")
            .value,
        b"new@example.com"
    );
}

fn consent(purpose: &str, granted: bool, at: i64) -> NewConsent {
    NewConsent {
        purpose: purpose.to_owned(),
        granted,
        at,
        source: "conformance-banner".to_owned(),
        policy_version: "2026-11".to_owned(),
    }
}

/// Consent history is kept whole, in order, with source and policy version.
pub fn consent_history_is_append_only(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .record_consent("c-1", "conformance", &consent("personalization", true, 10))
        .expect("grant");
    vault
        .record_consent("c-1", "conformance", &consent("marketing_email", true, 11))
        .expect("grant");
    vault
        .record_consent("c-1", "conformance", &consent("personalization", false, 12))
        .expect("withdraw");
    let history = consents_of(&vault, "c-1").expect("history");
    assert_eq!(history.len(), 3);
    assert_eq!(
        (
            history[2].purpose.as_str(),
            history[2].granted,
            history[2].at
        ),
        ("personalization", false, 12)
    );
    assert_eq!(history[0].source, "conformance-banner");
    assert_eq!(history[0].policy_version, "2026-11");
}

/// The same idempotency key and body are stored once; another body under that key is refused.
pub fn idempotent_appends(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    let events = vec![event("c-1", "a", 1), event("c-1", "b", 2)];
    let idempotency = Idempotency {
        key: "batch-1".into(),
        body_hash: [7; 32],
    };
    assert_eq!(
        vault
            .append_events("conformance", &events, Some(&idempotency))
            .expect("first")
            .accepted,
        2
    );
    let replay = vault
        .append_events("conformance", &events, Some(&idempotency))
        .expect("replay");
    assert_eq!((replay.accepted, replay.duplicates), (0, 2));
    let other_body = Idempotency {
        key: "batch-1".into(),
        body_hash: [8; 32],
    };
    assert!(matches!(
        vault.append_events("conformance", &events, Some(&other_body)),
        Err(Error::IdempotencyConflict)
    ));
    assert_eq!(events_of(&vault, "c-1").expect("read").len(), 2);
}

/// Forget erases events, attributes, consents and the key, and signs a receipt.
pub fn forget_is_total(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .append_events(
            "conformance",
            &[
                event("c-1", "a", 1),
                event("c-1", "b", 2),
                event("c-2", "a", 3),
            ],
            None,
        )
        .expect("append");
    vault
        .put_attributes(
            "c-1",
            "conformance",
            &[attribute("email", "user.contact.email", "gone@example.com")],
        )
        .expect("put");
    vault
        .record_consent("c-1", "conformance", &consent("personalization", true, 5))
        .expect("consent");
    let subject = vault.subject_id("c-1").expect("lookup").expect("known");
    let receipt = vault.forget("c-1", "conformance", 2).expect("forget");
    assert_eq!(
        (
            receipt.erased.events,
            receipt.erased.attributes,
            receipt.erased.consents
        ),
        (2, 1, 1)
    );
    assert_eq!(receipt.erased.model_interactions, 2);
    assert!(receipt.erased.key_destroyed);
    let public_key = crate::crypto::from_hex(&vault.public_key().public_key).expect("hex key");
    assert!(receipt.verify(&public_key), "receipt signature verifies");
    let mut forged = receipt.clone();
    forged.erased.events = 1;
    assert!(
        !forged.verify(&public_key),
        "an altered receipt does not verify"
    );
    assert_eq!(
        vault.receipt(&receipt.id).expect("stored"),
        Some(receipt.clone())
    );
    assert!(vault.subject_id("c-1").expect("lookup").is_none());
    assert!(matches!(
        vault.active_subject_id("c-1"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        vault.open_events_of_subject(subject),
        Err(Error::KeyDestroyed)
    ));
    assert!(matches!(
        vault.forget("c-1", "conformance", 0),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(events_of(&vault, "c-2").expect("others untouched").len(), 1);
    let entries = vault
        .ledger(&LedgerFilter {
            subject_token: Some(receipt.subject_token.clone()),
            limit: 100,
            ..LedgerFilter::default()
        })
        .expect("ledger");
    assert!(
        entries
            .iter()
            .any(|record| record.entry.action == "forget.completed")
    );
    assert!(vault.verify_ledger().expect("verify").ok);
    // The same customer id later starts afresh, with a new subject and key.
    vault
        .append_events("conformance", &[event("c-1", "z", 9)], None)
        .expect("append again");
    assert_ne!(vault.subject_id("c-1").expect("lookup"), Some(subject));
}

/// A write that reaches storage after a forget began is refused and leaves nothing behind.
pub fn writes_after_forget_began_are_refused(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .append_events("conformance", &[event("c-1", "a", 1)], None)
        .expect("append");
    let subject = vault.subject_id("c-1").expect("lookup").expect("known");
    // A concurrent ingest sealed its rows before the forget began; they reach storage after.
    let late = crate::storage::WriteBatch {
        events: vec![crate::storage::EventRow {
            seq: 1_000_000,
            subject,
            category: "x".into(),
            at: 1,
            sealed: vec![1, 2, 3],
        }],
        ..Default::default()
    };
    vault
        .forget_until("c-1", "conformance", ForgetStep::IntentWritten)
        .expect("begin");
    assert!(matches!(
        vault.storage_for_tests().write(late.clone()),
        Err(Error::Forgetting)
    ));
    let receipt = vault.finish_forget(subject, "conformance").expect("finish");
    assert_eq!(receipt.erased.events, 1);
    assert!(matches!(
        vault.storage_for_tests().write(late),
        Err(Error::NotFound { .. })
    ));
    assert!(
        vault
            .storage_for_tests()
            .events_of(subject)
            .expect("events")
            .is_empty()
    );
}

/// A forget interrupted after any step completes when the vault opens again.
pub fn interrupted_forget_completes_on_open(backend: &dyn ConformanceBackend) {
    for (round, step) in [ForgetStep::IntentWritten, ForgetStep::KeyDestroyed]
        .into_iter()
        .enumerate()
    {
        let customer = format!("c-crash-{round}");
        {
            let vault = backend.open();
            vault
                .append_events(
                    "conformance",
                    &[event(&customer, "a", 1), event("c-keep", "b", 2)],
                    None,
                )
                .expect("append");
            vault
                .forget_until(&customer, "conformance", step)
                .expect("partial forget");
            assert!(
                vault.subject_id(&customer).expect("lookup").is_none(),
                "a forgetting subject is not served"
            );
        }
        let vault = backend.open();
        let recovered = vault.recovered_forgets();
        assert_eq!(recovered.len(), 1, "{step:?}");
        assert!(recovered[0].erased.key_destroyed);
        assert!(matches!(
            vault.active_subject_id(&customer),
            Err(Error::NotFound { .. })
        ));
        assert!(events_of(&vault, "c-keep").is_ok());
    }
}

/// Retention finds only what is past its category's period; erasing it leaves the rest.
pub fn retention_erases_only_expired(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    let day = 86_400_000;
    let now = now_millis();
    let mut browsing = event("c-1", "viewed", now - 400 * day);
    browsing.category = "user.behavior.browsing_history".into();
    vault
        .append_events(
            "conformance",
            &[
                event("c-1", "old", now - 400 * day),
                event("c-1", "new", now - day),
                browsing,
            ],
            None,
        )
        .expect("append");
    let retention = |category: &str| match category {
        "user.behavior.browsing_history" => Some(365 * day),
        _ => None,
    };
    let expired = vault.expired(now, &retention).expect("expired");
    assert_eq!(expired.events.len(), 1);
    assert_eq!(expired.events[0].category, "user.behavior.browsing_history");
    assert_eq!(
        vault.erase_expired(&expired, "retention").expect("erase"),
        1
    );
    assert_eq!(events_of(&vault, "c-1").expect("read").len(), 2);
    assert!(
        vault
            .expired(now, &retention)
            .expect("expired")
            .events
            .is_empty()
    );
}

/// The ledger chains across reopenings and verifies; reads are on it.
pub fn ledger_chains_across_reopen(backend: &dyn ConformanceBackend) {
    {
        let vault = backend.open();
        vault
            .append_events("conformance", &[event("c-1", "a", 1)], None)
            .expect("append");
        events_of(&vault, "c-1").expect("read");
    }
    let vault = backend.open();
    vault
        .record_access(vec![
            LedgerDraft::new(1, "conformance", "recommendations.read").purpose("personalization"),
        ])
        .expect("record");
    let verification = vault.verify_ledger().expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert!(verification.entries >= 4);
    let reads = vault
        .ledger(&LedgerFilter {
            actor: Some("conformance".into()),
            limit: 10,
            ..LedgerFilter::default()
        })
        .expect("query");
    assert!(
        reads
            .iter()
            .any(|record| record.entry.action == "events.read"
                && record.entry.purpose.as_deref() == Some("personalization"))
    );
}

/// Rebuild scans skip subjects being forgotten.
pub fn scans_skip_forgetting_subjects(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .append_events(
            "conformance",
            &[
                event("c-1", "a", 1),
                event("c-2", "b", 2),
                event("c-1", "c", 3),
            ],
            None,
        )
        .expect("append");
    assert_eq!(vault.scan_events(0, 100).expect("scan").len(), 3);
    let first_page = vault.scan_events(0, 2).expect("scan");
    assert_eq!(
        vault
            .scan_events(first_page[1].seq, 100)
            .expect("scan")
            .len(),
        1
    );
    vault
        .forget_until("c-1", "conformance", ForgetStep::IntentWritten)
        .expect("begin");
    let remaining = vault.scan_events(0, 100).expect("scan");
    assert_eq!(remaining.len(), 1);
}

/// After a KEK rotation everything opens with the new KEK alone, and not with the old one.
pub fn kek_rotation_rewraps_everything(backend: &dyn ConformanceBackend) {
    let next_hex = "a1".repeat(32);
    {
        let vault = backend.open();
        vault
            .append_events(
                "conformance",
                &[event("c-1", "a", 1), event("c-2", "b", 2)],
                None,
            )
            .expect("append");
        let next = Kek::from_hex(&next_hex).expect("kek");
        let report = vault.rotate_kek(next, "conformance").expect("rotate");
        assert_eq!(report.rewrapped, 2 + 4, "two data keys and four secrets");
        // A subject created after the rotation is wrapped by the new KEK as well.
        vault
            .append_events("conformance", &[event("c-3", "c", 3)], None)
            .expect("append after rotation");
    }
    // The new KEK alone opens everything, keys not cached.
    let new_only = Kek::from_hex(&next_hex).expect("new kek");
    let vault = backend
        .open_with(KekRing::new(new_only))
        .expect("open with the new KEK");
    for customer in ["c-1", "c-2", "c-3"] {
        assert_eq!(
            events_of(&vault, customer).expect("readable").len(),
            1,
            "{customer}"
        );
    }
    assert!(vault.verify_ledger().expect("verify").ok);
    drop(vault);
    let old_only = Kek::from_hex(&backend.kek_hex()).expect("old kek");
    assert!(matches!(
        backend.open_with(KekRing::new(old_only)),
        Err(Error::Config { .. })
    ));
}

/// Retention erases the value that expired, never a newer one written since.
pub fn retention_keeps_newer_attribute_values(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .put_attributes(
            "c-1",
            "conformance",
            &[attribute("email", "user.contact.email", "old@example.com")],
        )
        .expect("put");
    let far_future = now_millis() + 10_000_000;
    let retention = |_: &str| Some(1);
    let expired = vault.expired(far_future, &retention).expect("expired");
    assert_eq!(expired.attributes.len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(5));
    vault
        .put_attributes(
            "c-1",
            "conformance",
            &[attribute("email", "user.contact.email", "new@example.com")],
        )
        .expect("put");
    assert_eq!(
        vault.erase_expired(&expired, "retention").expect("erase"),
        0
    );
    assert_eq!(
        attributes_of(&vault, "c-1").expect("read")[0].value,
        b"new@example.com"
    );
}

/// A subject being forgotten is not offered to retention (it would be unlearned twice).
pub fn retention_skips_subjects_being_forgotten(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .append_events(
            "conformance",
            &[event("c-1", "a", 1), event("c-2", "b", 1)],
            None,
        )
        .expect("append");
    vault
        .forget_until("c-1", "conformance", ForgetStep::IntentWritten)
        .expect("begin");
    let expired = vault
        .expired(now_millis(), &|_: &str| Some(1))
        .expect("expired");
    assert_eq!(expired.events.len(), 1);
    assert_eq!(
        Some(expired.events[0].subject),
        vault.subject_id("c-2").expect("lookup")
    );
}

/// Finishing a forget that was never begun changes nothing (no key is destroyed).
pub fn finishing_an_unbegun_forget_changes_nothing(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    vault
        .append_events("conformance", &[event("c-1", "a", 1)], None)
        .expect("append");
    let subject = vault.subject_id("c-1").expect("lookup").expect("known");
    assert!(matches!(
        vault.finish_forget(subject, "conformance"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(events_of(&vault, "c-1").expect("still readable").len(), 1);
    vault
        .forget_until("c-1", "conformance", ForgetStep::IntentWritten)
        .expect("begin");
    let first = vault.finish_forget(subject, "conformance").expect("finish");
    assert_eq!(first.erased.events, 1);
    assert!(
        matches!(
            vault.finish_forget(subject, "conformance"),
            Err(Error::NotFound { .. })
        ),
        "one receipt per forget"
    );
}

/// API keys are stored as hashes, survive a reopen, and revoke once; both are on the ledger.
pub fn api_keys_store_hashes_and_revoke_once(backend: &dyn ConformanceBackend) {
    let (row, secret) = {
        let vault = backend.open();
        vault
            .create_api_key("storefront", "web shop", "conformance")
            .expect("create")
    };
    let vault = backend.open();
    let keys = vault.api_keys().expect("list");
    assert_eq!(keys, vec![row.clone()]);
    assert_eq!(keys[0].secret_hash, crate::api_key_hash(&secret));
    assert_ne!(
        keys[0].secret_hash,
        crate::api_key_hash(&format!("{}x", secret.as_str()))
    );
    vault
        .revoke_api_key(&row.id, "conformance")
        .expect("revoke");
    assert!(matches!(
        vault.revoke_api_key(&row.id, "conformance"),
        Err(Error::NotFound { .. })
    ));
    assert!(vault.api_keys().expect("list")[0].revoked_at.is_some());
    let actions: Vec<String> = vault
        .ledger(&crate::LedgerFilter {
            limit: 10,
            ..Default::default()
        })
        .expect("ledger")
        .into_iter()
        .map(|record| record.entry.action)
        .collect();
    assert_eq!(actions, ["api_key.revoked", "api_key.created"]);
}

/// One lookup per operation: an append names the internal ids it resolved, reads and
/// consents take them, and a subject being forgotten or gone is refused as storage refuses it.
pub fn subjects_resolve_once(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    let idempotency = Idempotency {
        key: "batch-ids".into(),
        body_hash: [3; 32],
    };
    let outcome = vault
        .append_events(
            "conformance",
            &[
                event("c-1", "a", 1),
                event("c-2", "b", 2),
                event("c-1", "c", 3),
            ],
            Some(&idempotency),
        )
        .expect("append");
    let c1 = vault.active_subject_id("c-1").expect("known");
    let c2 = vault.subject_id("c-2").expect("lookup").expect("known");
    assert_eq!(
        outcome.subjects,
        [("c-1".to_owned(), c1), ("c-2".to_owned(), c2)].into()
    );
    let replay = vault
        .append_events(
            "conformance",
            &[
                event("c-1", "a", 1),
                event("c-2", "b", 2),
                event("c-1", "c", 3),
            ],
            Some(&idempotency),
        )
        .expect("replay");
    assert!(
        replay.subjects.is_empty(),
        "nothing stored, nothing resolved"
    );
    assert_eq!(vault.events_of(c1, READER).expect("read").len(), 2);
    let created = vault
        .put_attributes(
            "c-3",
            "conformance",
            &[attribute(
                "email",
                "user.contact.email",
                "three@example.com",
            )],
        )
        .expect("put");
    assert_eq!(Some(created), vault.subject_id("c-3").expect("lookup"));
    assert_eq!(vault.attributes_of(created, READER).expect("read").len(), 1);
    let row = vault
        .record_consent_of(c2, "conformance", &consent("personalization", true, 7))
        .expect("consent");
    assert_eq!(row.subject, c2);
    assert_eq!(
        vault.consent_history(c2).expect("history"),
        vec![row.clone()]
    );
    assert_eq!(vault.consents_of(c2, READER).expect("read"), vec![row]);
    vault.begin_forget(c2, "conformance", 0).expect("begin");
    assert!(
        vault.subject_id("c-2").expect("lookup").is_none(),
        "a forget begun by internal id drops the subject from the lookup cache"
    );
    assert!(matches!(
        vault.active_subject_id("c-2"),
        Err(Error::Forgetting)
    ));
    assert!(matches!(
        vault.record_consent_of(c2, "conformance", &consent("personalization", false, 8)),
        Err(Error::Forgetting)
    ));
    vault.finish_forget(c2, "conformance").expect("finish");
    assert!(matches!(
        vault.record_consent_of(c2, "conformance", &consent("personalization", false, 9)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        vault.begin_forget(c2, "conformance", 0),
        Err(Error::NotFound { .. })
    ));
}

/// Expands to one `#[test]` per conformance case for a backend made by `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            events_round_trip, writes_survive_reopen, sequence_numbers_never_reused, attributes_replace, consent_history_is_append_only,
            idempotent_appends, forget_is_total, writes_after_forget_began_are_refused, interrupted_forget_completes_on_open,
            retention_erases_only_expired, retention_keeps_newer_attribute_values,
            retention_skips_subjects_being_forgotten, finishing_an_unbegun_forget_changes_nothing, ledger_chains_across_reopen, scans_skip_forgetting_subjects,
            kek_rotation_rewraps_everything, api_keys_store_hashes_and_revoke_once, subjects_resolve_once);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                if let Some(backend) = $make {
                    $crate::conformance::$case(&backend);
                }
            }
        )*
    };
}
