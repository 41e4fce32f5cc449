//! The storage conformance suite: promises every backend keeps, checked through the vault
//! facade. A backend's integration tests call `conformance_tests!` with a function that
//! makes a fresh `ConformanceBackend`; each case then opens (and reopens) that store.
//!
//! The cases panic on a broken promise, as tests do; nothing here runs in production: the
//! module exists only with the `testing` feature, which a backend's tests enable in their
//! dev-dependencies (`discreet-vault = { …, features = ["testing"] }`).

//!
//! The cases live by theme in `records`, `forget`, `items` and `operations`; the backend trait, the
//! shared fixtures and `conformance_tests!` live here.

mod forget;
mod items;
mod operations;
mod records;

pub use forget::*;
pub use items::*;
pub use operations::*;
pub use records::*;

use crate::crypto::{Kek, KekRing};
use crate::storage::ConsentRow;
use crate::vault::{Access, Attribute, Event, NewAttribute, NewConsent, NewEvent, Vault};

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

fn attribute(name: &str, category: &str, value: &str) -> NewAttribute {
    NewAttribute {
        name: name.to_owned(),
        category: category.to_owned(),
        value: value.as_bytes().to_vec(),
    }
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

/// Expands to one `#[test]` per conformance case for a backend made by `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            events_round_trip, writes_survive_reopen, sequence_numbers_never_reused, attributes_replace, consent_history_is_append_only,
            idempotent_appends, forget_is_total, writes_after_forget_began_are_refused, interrupted_forget_completes_on_open,
            retention_erases_only_expired, retention_keeps_newer_attribute_values,
            retention_skips_subjects_being_forgotten, finishing_an_unbegun_forget_changes_nothing, ledger_chains_across_reopen, scans_skip_forgetting_subjects,
            kek_rotation_rewraps_everything, api_keys_store_hashes_and_revoke_once, subjects_resolve_once,
            integrity_holds_across_forget_revocation_and_rotation,
            items_upsert_replace_and_survive_reopen, items_are_not_personal_data,
            subjects_list_and_records_read_whole);
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
