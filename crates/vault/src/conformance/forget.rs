//! Conformance cases: Forgetting: total, ordered, resumable after a crash, and closed to late writes.

use crate::error::Error;
use crate::storage::LedgerFilter;
use crate::vault::ForgetStep;

use super::*;

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
