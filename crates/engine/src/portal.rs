//! The shop's side of the privacy center: before its backend sends a logged-in customer to
//! their own pages, the engine checks that the key may (action `portal`) and that the
//! customer is one discreet holds, and writes the opening to the ledger.

use discreet_policy::Action;
use discreet_vault::{LedgerDraft, now_millis};

use crate::access::{Caller, RIGHTS_PURPOSE};
use crate::engine::Engine;
use crate::error::Result;
use crate::input::check_subject;

impl Engine {
    /// Allows `caller` to open privacy-center session `session_id` for `subject`: the
    /// caller's role must allow `portal`, and the subject must be held and not being
    /// forgotten (`NotFound`, `Conflict` otherwise). The opening is on the ledger under the
    /// caller's key, naming the session.
    pub fn open_portal(&self, caller: &Caller, subject: &str, session_id: &str) -> Result<()> {
        self.authorize(caller, Action::Portal)?;
        check_subject("subject", subject)?;
        self.check_ready()?;
        let vault = &self.inner.vault;
        let id = vault.active_subject_id(subject)?;
        vault.record_access(vec![
            LedgerDraft::new(now_millis(), &caller.key_id, "portal.session_opened")
                .subject(&vault.subject_token(id))
                .purpose(RIGHTS_PURPOSE)
                .detail(format!("session={session_id}")),
        ])?;
        Ok(())
    }
}
