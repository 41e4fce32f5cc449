//! API keys: issuing one (the secret is shown once and only its SHA-256 is kept), listing
//! and revoking, each on the ledger.
//!
//! A secret is never stored, logged or returned after it was issued, and a row whose MAC
//! (under the key store's integrity secret) does not verify is never handed out.

use zeroize::Zeroizing;

use crate::crypto::{random_bytes, sha256_parts, to_hex};
use crate::error::{Error, Result};
use crate::ledger::LedgerDraft;
use crate::storage::*;

use super::{Vault, now_millis};

/// The hash under which an API key's secret is stored and looked up.
pub fn api_key_hash(secret: &str) -> [u8; 32] {
    sha256_parts(&[b"discreet/api-key/v1", secret.as_bytes()])
}

impl Vault {
    /// Issues an API key with `role`: returns the stored row and the secret, which is shown
    /// only now (the vault keeps its SHA-256, never the secret).
    pub fn create_api_key(
        &self,
        role: &str,
        label: &str,
        actor: &str,
    ) -> Result<(ApiKeyRow, Zeroizing<String>)> {
        if role.is_empty() || label.len() > 200 {
            return Err(Error::BadInput {
                detail: "an API key needs a role and a label of at most 200 bytes".into(),
            });
        }
        let id = format!("key_{}", to_hex(&random_bytes::<6>()?[..]));
        let secret = Zeroizing::new(format!("dsk_{}", to_hex(&random_bytes::<32>()?[..])));
        let now = now_millis();
        let row = ApiKeyRow {
            id: id.clone(),
            role: role.to_owned(),
            label: label.to_owned(),
            secret_hash: api_key_hash(&secret),
            created_at: now,
            revoked_at: None,
        };
        let head = self.storage.write(WriteBatch {
            api_keys: vec![row.clone()],
            ledger: vec![
                LedgerDraft::new(now, actor, "api_key.created").detail(format!("{id} role {role}")),
            ],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok((row, secret))
    }

    /// Every API key ever issued (revoked ones too), oldest first — only rows whose MAC
    /// verifies: a row inserted or altered in the data file is left out, so it never
    /// authenticates (`verify_ledger` reports it).
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        Ok(self
            .storage
            .api_keys()?
            .into_iter()
            .filter(|stored| self.integrity.api_key_intact(&stored.row, &stored.mac))
            .map(|stored| stored.row)
            .collect())
    }

    /// Revokes a live API key; `NotFound` when no live key has that id.
    pub fn revoke_api_key(&self, id: &str, actor: &str) -> Result<()> {
        let now = now_millis();
        let head = self.storage.write(WriteBatch {
            revoked_api_keys: vec![(id.to_owned(), now)],
            ledger: vec![LedgerDraft::new(now, actor, "api_key.revoked").detail(id.to_owned())],
            ..WriteBatch::default()
        })?;
        self.after_write(head);
        Ok(())
    }
}
