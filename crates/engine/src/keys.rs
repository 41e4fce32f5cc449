//! API keys: issuing (the secret is shown once, the vault keeps its hash), listing,
//! revoking, and authenticating a presented secret against every live key in constant time.

use discreet_policy::Action;
use discreet_vault::ApiKeyRow;
use discreet_vault::api_key_hash;
use discreet_vault::crypto::constant_time_eq;

use crate::access::{Caller, not_declared};
use crate::answers::IssuedKey;
use crate::engine::{Engine, read, write};
use crate::error::{Error, Result};

/// Longest API key label accepted, in characters (always within the vault's 200 bytes).
pub const MAX_KEY_LABEL_CHARS: usize = 50;

impl Engine {
    /// Issues an API key for a role of the policy.
    pub fn create_api_key(&self, caller: &Caller, role: &str, label: &str) -> Result<IssuedKey> {
        self.authorize(caller, Action::KeysManage)?;
        let policy = &self.inner.policy;
        if policy.role(role).is_none() {
            return Err(not_declared(
                "role",
                policy.roles().iter().map(|role| role.name.as_str()),
            ));
        }
        if label.chars().count() > MAX_KEY_LABEL_CHARS {
            return Err(Error::bad_input(
                "label",
                format!("must be at most {MAX_KEY_LABEL_CHARS} characters"),
            ));
        }
        let (row, secret) = self
            .inner
            .vault
            .create_api_key(role, label, &caller.key_id)?;
        write(&self.inner.api_keys).push(row.clone());
        Ok(IssuedKey {
            id: row.id,
            role: row.role,
            secret,
        })
    }

    /// Every API key issued (no secrets).
    pub fn api_keys(&self, caller: &Caller) -> Result<Vec<ApiKeyRow>> {
        self.authorize(caller, Action::KeysManage)?;
        Ok(read(&self.inner.api_keys).clone())
    }

    /// Revokes a key.
    pub fn revoke_api_key(&self, caller: &Caller, id: &str) -> Result<()> {
        self.authorize(caller, Action::KeysManage)?;
        self.inner.vault.revoke_api_key(id, &caller.key_id)?;
        *write(&self.inner.api_keys) = self.inner.vault.api_keys()?;
        // With several nodes: answered once every live node refuses the key.
        self.await_nodes()
    }

    /// The caller of key `id` while it is live (a console session ends with its key).
    pub fn live_caller(&self, id: &str) -> Option<Caller> {
        read(&self.inner.api_keys)
            .iter()
            .find(|key| key.id == id && key.revoked_at.is_none())
            .map(|key| Caller::key(key.id.clone(), key.role.clone()))
    }

    /// The caller a secret belongs to, if it is a live key. Every live key is compared in
    /// constant time, so the time taken says nothing about which key came close.
    pub fn authenticate(&self, secret: &str) -> Option<Caller> {
        let hash = api_key_hash(secret);
        let keys = read(&self.inner.api_keys);
        let mut found = None;
        for key in keys.iter() {
            let matches = constant_time_eq(&key.secret_hash, &hash);
            if matches && key.revoked_at.is_none() {
                found = Some(Caller::key(key.id.clone(), key.role.clone()));
            }
        }
        found
    }
}
