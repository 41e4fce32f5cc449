//! Signed documents the engine keeps beside the data (incident records): stored in the data
//! store's `meta` table, signed with the receipt key so that an edit of the data file is
//! found when the document is read back. Documents hold counts and pseudonymous tokens, never
//! a personal value.

use serde::Serialize;

use crate::crypto::{from_hex, sha256_parts, to_hex, verify_signature};
use crate::error::Result;

use super::Vault;

/// Who signed a document, and the signature (Ed25519, hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DocumentSignature {
    pub key_id: String,
    pub signature: String,
}

fn document_message(kind: &str, body: &[u8]) -> Vec<u8> {
    sha256_parts(&[b"discreet/document/v1", kind.as_bytes(), body]).to_vec()
}

impl Vault {
    /// Signs `body` as a document of `kind` (e.g. `incident`) with the receipt key.
    pub fn sign_document(&self, kind: &str, body: &[u8]) -> DocumentSignature {
        DocumentSignature {
            key_id: self.signer.key_id().to_owned(),
            signature: to_hex(&self.signer.sign(&document_message(kind, body))),
        }
    }

    /// True when `signature` is this vault's signature of `body` as a document of `kind`.
    pub fn verify_document(&self, kind: &str, body: &[u8], signature: &DocumentSignature) -> bool {
        if signature.key_id != self.signer.key_id() {
            return false;
        }
        match from_hex(&signature.signature) {
            Some(bytes) => verify_signature(
                &self.signer.public_key(),
                &document_message(kind, body),
                &bytes,
            ),
            None => false,
        }
    }

    /// Stores a document under `name` (replacing what was there), durably.
    pub fn put_document(&self, name: &str, body: &str) -> Result<()> {
        self.storage.set_meta(&format!("document:{name}"), body)
    }

    /// The document stored under `name`.
    pub fn document(&self, name: &str) -> Result<Option<String>> {
        self.storage.meta(&format!("document:{name}"))
    }
}
