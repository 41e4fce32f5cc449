//! The vault's side of the ledger: entries for accesses the engine made, queries, signing
//! checkpoints (anchored in the key store, MAC'd), and backups. Verifying is `verify`.
//!
//! It never writes an entry outside storage's transaction, never moves the checkpoint mark
//! before a checkpoint is stored, and a data backup never carries a key.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::ledger::{
    CHECKPOINT_INTERVAL, Checkpoint, LedgerDraft, LedgerHead, LedgerRecord, checkpoint_message,
};
use crate::storage::{LedgerFilter, SealedAnchor};

use super::{Vault, now_millis};

impl Vault {
    /// Appends entries for accesses the engine made (reads, denials).
    pub fn record_access(&self, entries: Vec<LedgerDraft>) -> Result<()> {
        let head = self.storage.append_ledger(entries)?;
        self.after_write(head);
        Ok(())
    }

    /// Ledger entries, newest first.
    pub fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRecord>> {
        self.storage.ledger_query(filter)
    }

    /// Signs a checkpoint at the current head now (e.g. before a shutdown or a backup).
    pub fn checkpoint_ledger(&self) -> Result<()> {
        let head = self.storage.ledger_head()?;
        if head.seq > self.last_checkpoint_seq.load(Ordering::SeqCst) {
            self.sign_checkpoint(head)?;
        }
        Ok(())
    }

    /// Signs a checkpoint when the head crossed an interval. Best effort: the write it
    /// follows is committed whatever happens here, and a failed checkpoint is retried at the
    /// next crossing check (the last checkpoint mark only moves on success).
    pub(super) fn after_write(&self, head: LedgerHead) {
        let last = self.last_checkpoint_seq.load(Ordering::SeqCst);
        if head.seq / CHECKPOINT_INTERVAL > last / CHECKPOINT_INTERVAL {
            let _ = self.sign_checkpoint(head);
        }
    }

    fn sign_checkpoint(&self, head: LedgerHead) -> Result<()> {
        // Never anchor a head that was found cut or replayed: that would bless it.
        if let Some(problem) = &self.refused {
            return Err(Error::Integrity {
                detail: format!("{problem}; no checkpoint is signed"),
            });
        }
        let at = now_millis();
        let signature = self
            .signer
            .sign(&checkpoint_message(head.seq, &head.hash, at));
        self.storage.add_checkpoint(&Checkpoint {
            seq: head.seq,
            hash: head.hash,
            at,
            key_id: self.signer.key_id().to_owned(),
            signature,
        })?;
        // The anchor lives in the key store, apart from the data: cutting the chain short or
        // deleting checkpoints in the data file cannot hide entries up to here.
        self.keys.set_ledger_anchor(&SealedAnchor {
            head,
            mac: Some(self.integrity.anchor_mac(&head).to_vec()),
        })?;
        self.last_checkpoint_seq
            .fetch_max(head.seq, Ordering::SeqCst);
        Ok(())
    }

    /// Writes a consistent data-only backup (no keys) to `dest`, which must not exist.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        self.checkpoint_ledger()?;
        self.storage.backup(dest)
    }

    /// Writes a copy of the key store (keys stay wrapped by the KEK) to `dest`. Keep such
    /// copies short-lived: a forgotten subject's key lives on in them until they are deleted.
    pub fn backup_keys(&self, dest: &Path) -> Result<()> {
        self.keys.backup(dest)
    }
}
