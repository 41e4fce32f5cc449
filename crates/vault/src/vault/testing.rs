//! Hooks for tests only (the `testing` feature): the backend underneath, and unlogged
//! reads by internal id.
//!
//! Nothing in production may call these: they bypass the ledger.

use crate::error::Result;
use crate::storage::*;

use super::sealing::open_event;
use super::{Event, Vault};

impl Vault {
    /// The backend underneath, for conformance cases that must act as a racing writer.
    #[doc(hidden)]
    pub fn storage_for_tests(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Events of one subject by internal id, unlogged, for tests that check a restored
    /// backup: opening fails once the key is destroyed.
    #[doc(hidden)]
    pub fn open_events_of_subject(&self, subject: SubjectId) -> Result<Vec<Event>> {
        self.open_rows_of(
            subject,
            |subject| self.storage.events_of(subject),
            open_event,
        )
    }
}
