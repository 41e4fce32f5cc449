//! Promises that depend on the files the embedded backend writes: no plaintext in any of
//! them, ciphertexts bound to their rows, backups useless after a forget, forgets that
//! survive a crash at any step, and a ledger whose tampering is found at the entry.
//!
//! By theme: `files` (what the files hold), `forget` (backups after a forget, crashes),
//! `ledger` (tampering), `integrity` (rows that grant power or record decisions, edited in
//! the data file), `opening` (what a vault refuses to open on, where the key store lives).

mod files;
mod forget;
mod integrity;
mod ledger;
mod opening;

use discreet_vault::{Access, Attribute, ConsentRow, Event, NewEvent, Vault};

const READER: Access<'static> = Access {
    actor: "test",
    purpose: "personalization",
};

/// A customer's events, read through one lookup as the engine does.
fn events_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<Event>> {
    vault.events_of(vault.active_subject_id(customer)?, READER)
}

fn attributes_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<Attribute>> {
    vault.attributes_of(vault.active_subject_id(customer)?, READER)
}

fn consents_of(vault: &Vault, customer: &str) -> discreet_vault::Result<Vec<ConsentRow>> {
    vault.consents_of(vault.active_subject_id(customer)?, READER)
}

fn purchase(subject: &str, item: &str, at: i64) -> NewEvent {
    NewEvent {
        subject: subject.into(),
        category: "user.behavior.purchase_history".into(),
        at,
        payload: format!("{{\"type\":\"purchase\",\"item\":\"{item}\",\"quantity\":6}}")
            .into_bytes(),
    }
}
