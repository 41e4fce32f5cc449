//! Conformance cases: Appends, attribute and consent writes, idempotency and one lookup per operation:
//! what is written reads back, survives a reopen, and is never numbered twice.

use crate::error::Error;
use crate::vault::Idempotency;

use super::*;

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

/// Every active subject is listed with its customer id (a forgotten one never), and one
/// subject's records come back whole from one read that is one ledger entry.
pub fn subjects_list_and_records_read_whole(backend: &dyn ConformanceBackend) {
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
    vault
        .put_attributes(
            "c-1",
            "conformance",
            &[attribute("email", "user.contact.email", "one@example.com")],
        )
        .expect("attributes");
    vault
        .record_consent("c-1", "conformance", &consent("personalization", true, 10))
        .expect("grant");
    vault.forget("c-2", "conformance", 0).expect("forget c-2");
    let subjects = vault.subjects().expect("subjects");
    assert_eq!(subjects.len(), 1, "the forgotten subject is not listed");
    assert_eq!(subjects[0].1, "c-1");
    let entries = |vault: &Vault| {
        vault
            .ledger(&crate::storage::LedgerFilter {
                limit: 1_000_000,
                ..Default::default()
            })
            .expect("ledger")
    };
    let entries_before = entries(&vault).len();
    let records = vault
        .records_of(
            subjects[0].0,
            Access {
                actor: "conformance",
                purpose: "store_migration",
            },
        )
        .expect("records");
    assert_eq!(records.events.len(), 2);
    assert_eq!(records.events[1].at, 3);
    assert_eq!(records.attributes[0].value, b"one@example.com");
    assert_eq!(records.consents.len(), 1);
    let after = entries(&vault);
    assert_eq!(after.len(), entries_before + 1, "one entry");
    assert_eq!(after[0].entry.action, "records.read");
    // Every category read is counted, the consent history among them.
    let counted = crate::ledger::parse_by_category(&after[0].entry.detail).expect("counts");
    assert!(
        counted.contains(&(crate::ledger::CONSENT_CATEGORY.to_owned(), 1)),
        "{counted:?}"
    );
    assert!(
        after[0]
            .entry
            .categories
            .iter()
            .any(|category| category == crate::ledger::CONSENT_CATEGORY)
    );
}
