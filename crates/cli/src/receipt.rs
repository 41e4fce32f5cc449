//! `discreet receipt verify FILE`: checks a forget receipt offline — the file the privacy
//! center hands out (receipt and public key), the API's `{"receipt": …}` answer, or a bare
//! receipt — against the shop's public receipt key, and says what the check proves.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use discreet_vault::ForgetReceipt;
use discreet_vault::crypto::{from_hex, key_id_of, to_hex};
use serde_json::Value;

use crate::CommandError;

/// Largest receipt file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Arguments of `receipt`.
#[derive(Args, Debug)]
pub struct ReceiptArgs {
    #[command(subcommand)]
    pub command: ReceiptCommand,
}

#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Check a downloaded forget receipt's signature, offline (exit 4 when it fails).
    Verify {
        /// The receipt file (from the privacy center, `DELETE /v1/subjects/…` or
        /// `discreet forget --json`).
        file: PathBuf,
        /// The shop's public receipt key, hex (`public_key` of GET /v1/receipts/public-key).
        /// Without it, the key in the file is used, and the answer says to compare it.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

pub fn run(args: ReceiptArgs) -> Result<(), CommandError> {
    match args.command {
        ReceiptCommand::Verify { file, public_key } => verify(&file, public_key.as_deref()),
    }
}

fn bad(message: impl Into<String>) -> CommandError {
    CommandError::BadInput(message.into())
}

fn verify(file: &PathBuf, public_key: Option<&str>) -> Result<(), CommandError> {
    let shown = file.display();
    let size = std::fs::metadata(file)
        .map_err(|error| bad(format!("cannot read {shown}: {error}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(bad(format!(
            "{shown} is larger than a receipt file can be ({MAX_FILE_BYTES} bytes)"
        )));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|error| bad(format!("cannot read {shown}: {error}")))?;
    let document: Value = serde_json::from_str(&text)
        .map_err(|error| bad(format!("{shown} is not JSON: {error}")))?;
    let receipt_value = match document.get("receipt") {
        Some(receipt) => receipt.clone(),
        None => document.clone(),
    };
    let receipt: ForgetReceipt = serde_json::from_value(receipt_value)
        .map_err(|error| bad(format!("{shown} holds no forget receipt: {error}")))?;
    let (key_hex, from_file) = match public_key {
        Some(hex) => (hex.trim().to_owned(), false),
        None => match document
            .pointer("/public_key/public_key")
            .and_then(Value::as_str)
        {
            Some(hex) => (hex.to_owned(), true),
            None => {
                return Err(bad(format!(
                    "{shown} holds no public key: give the shop's with --public-key HEX (from GET /v1/receipts/public-key)"
                )));
            }
        },
    };
    let key = from_hex(&key_hex)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| bad("the public key must be 64 hex digits (32 bytes of an Ed25519 key)"))?;
    let key_id = key_id_of(&key);
    if key_id != receipt.key_id {
        println!(
            "NOT VALID: the receipt says it was signed by key {}, but the public key {} is key {key_id}.",
            receipt.key_id,
            if from_file { "in the file" } else { "given" }
        );
        return Err(CommandError::Verification);
    }
    if !receipt.verify(&key) {
        println!(
            "NOT VALID: the signature does not match the receipt's fields under key {key_id}: the receipt was altered, or this key did not sign it."
        );
        return Err(CommandError::Verification);
    }
    let erased = &receipt.erased;
    println!(
        "VALID: receipt {} is signed by key {key_id} (Ed25519).",
        receipt.id
    );
    println!(
        "  It states that the subject with token {} was forgotten: asked at {}, done at {};",
        receipt.subject_token, receipt.requested_at, receipt.completed_at
    );
    println!(
        "  {} events, {} attributes, {} consent decisions and {} model interactions erased; data key destroyed: {}.",
        erased.events,
        erased.attributes,
        erased.consents,
        erased.model_interactions,
        if erased.key_destroyed { "yes" } else { "no" }
    );
    println!(
        "What this proves: the holder of the private half of key {key_id} signed exactly these fields, and none has changed since."
    );
    if from_file {
        println!(
            "What it does not prove alone: that key {key_id} is the shop's. The key came from the file itself; compare {} with the shop's GET /v1/receipts/public-key, or run again with --public-key.",
            to_hex(&key)
        );
    } else {
        println!(
            "The key was the one given with --public-key: if that is the shop's published key, the shop made this statement."
        );
    }
    Ok(())
}
