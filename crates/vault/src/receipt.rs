//! Forget receipts: signed statements that a subject was erased, what was erased and when.
//!
//! A receipt names the subject only by pseudonymous token. Its signature (Ed25519) covers
//! a canonical encoding of every other field, so anyone with the public key can check it.

use serde::{Deserialize, Serialize};

use crate::crypto::{from_hex, sha256_parts, verify_signature};

/// What a forget erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedCounts {
    pub events: u64,
    pub attributes: u64,
    pub consents: u64,
    pub model_interactions: u64,
    pub key_destroyed: bool,
}

/// A signed forget receipt, in the shape of the public API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetReceipt {
    pub id: String,
    pub subject_token: String,
    /// RFC 3339.
    pub requested_at: String,
    /// RFC 3339.
    pub completed_at: String,
    pub erased: ErasedCounts,
    /// Ed25519 signature, hex.
    pub signature: String,
    /// Identifier of the signing key.
    pub key_id: String,
}

impl ForgetReceipt {
    /// The bytes the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        let erased = &self.erased;
        sha256_parts(&[
            b"discreet/forget-receipt/v1",
            self.id.as_bytes(),
            self.subject_token.as_bytes(),
            self.requested_at.as_bytes(),
            self.completed_at.as_bytes(),
            &erased.events.to_be_bytes(),
            &erased.attributes.to_be_bytes(),
            &erased.consents.to_be_bytes(),
            &erased.model_interactions.to_be_bytes(),
            &[erased.key_destroyed as u8],
            self.key_id.as_bytes(),
        ])
        .to_vec()
    }

    /// True when the signature is valid for `public_key` (32 raw Ed25519 bytes).
    pub fn verify(&self, public_key: &[u8]) -> bool {
        match from_hex(&self.signature) {
            Some(signature) => verify_signature(public_key, &self.signed_message(), &signature),
            None => false,
        }
    }
}

/// The public half of the receipt-signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub algorithm: &'static str,
    /// 32 raw bytes, hex.
    pub public_key: String,
}
