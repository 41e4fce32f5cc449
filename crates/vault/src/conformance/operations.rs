//! Conformance cases: Retention, the ledger, KEK rotation and API keys.

use crate::crypto::{Kek, KekRing};
use crate::error::Error;
use crate::ledger::LedgerDraft;
use crate::storage::LedgerFilter;
use crate::vault::{ForgetStep, now_millis};

use super::*;

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
    // The erasure's entry counts what it erased per category (the breach-impact report
    // subtracts it from what a copy held).
    let erased = vault
        .ledger(&LedgerFilter {
            limit: 1,
            ..Default::default()
        })
        .expect("ledger");
    assert_eq!(erased[0].entry.action, "retention.erase");
    assert_eq!(
        crate::ledger::parse_by_category(&erased[0].entry.detail),
        Some(vec![("user.behavior.browsing_history".to_owned(), 1)])
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
        assert_eq!(report.rewrapped, 2 + 5, "two data keys and five secrets");
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

/// The MACs of power and decisions survive every legitimate change: a revoked key, a
/// forgotten subject (its consent chain and head go with it) and a KEK rotation all leave a
/// store that verifies, with the revoked key and the other subject's history as they were.
pub fn integrity_holds_across_forget_revocation_and_rotation(backend: &dyn ConformanceBackend) {
    let vault = backend.open();
    let (kept, _) = vault
        .create_api_key("admin", "ops", "conformance")
        .expect("key");
    let (revoked, _) = vault
        .create_api_key("storefront", "shop", "conformance")
        .expect("key");
    for customer in ["c-1", "c-2"] {
        vault
            .append_events("conformance", &[event(customer, "A", 1)], None)
            .expect("append");
        vault
            .record_consent(
                customer,
                "conformance",
                &consent("personalization", true, 1),
            )
            .expect("grant");
        vault
            .record_consent(
                customer,
                "conformance",
                &consent("personalization", false, 2),
            )
            .expect("withdraw");
    }
    vault
        .revoke_api_key(&revoked.id, "conformance")
        .expect("revoke");
    vault.forget("c-1", "conformance", 0).expect("forget");
    let verification = vault.verify_ledger().expect("verify");
    assert!(verification.ok, "{verification:?}");
    vault
        .rotate_kek(Kek::generate().expect("kek"), "conformance")
        .expect("rotate");
    assert!(vault.verify_ledger().expect("verify").ok);
    let keys = vault.api_keys().expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|key| key.id == kept.id && key.revoked_at.is_none())
    );
    assert!(
        keys.iter()
            .any(|key| key.id == revoked.id && key.revoked_at.is_some())
    );
    let history = consents_of(&vault, "c-2").expect("history");
    assert_eq!(
        history.iter().map(|row| row.granted).collect::<Vec<_>>(),
        [true, false]
    );
}
