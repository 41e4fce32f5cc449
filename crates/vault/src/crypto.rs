//! Key material and sealing: the key-encryption key (KEK), per-subject data keys,
//! AES-256-GCM with associated data that binds every ciphertext to its subject and row,
//! keyed tokens (HMAC-SHA-256) and Ed25519 signatures.
//!
//! Raw key bytes live only in `Zeroizing` buffers and are wiped when dropped. Nothing here
//! does I/O except `Kek::load_or_create_file`, which reads or creates the KEK file.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length in bytes of every symmetric key discreet uses.
pub const KEY_LEN: usize = 32;
/// Format byte in front of every sealed value, so the format can evolve.
const SEALED_FORMAT_V1: u8 = 1;
/// Bytes a sealed value adds to its plaintext: format byte, nonce, tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// Fills a fresh buffer with random bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut bytes = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| Error::Crypto {
        detail: "no randomness",
    })?;
    Ok(bytes)
}

/// SHA-256 of `parts`, each prefixed by its length so that boundaries cannot shift.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Lower-case hexadecimal.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out
}

/// Parses hexadecimal (either case); `None` when it is not hex of even length.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// An AES-256-GCM key with random nonces; the building block of data keys and the KEK.
struct AeadKey(RandomizedNonceKey);

impl AeadKey {
    fn new(bytes: &[u8; KEY_LEN]) -> Result<Self> {
        RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map(AeadKey)
            .map_err(|_| Error::Crypto {
                detail: "AES-256-GCM key rejected",
            })
    }

    /// `format || nonce || ciphertext || tag`.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        // One allocation: header, then the plaintext encrypted in place, then the tag.
        let mut sealed = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        sealed.push(SEALED_FORMAT_V1);
        sealed.extend_from_slice(&[0u8; NONCE_LEN]);
        sealed.extend_from_slice(plaintext);
        let (nonce, tag) = self
            .0
            .seal_in_place_separate_tag(Aad::from(aad), &mut sealed[1 + NONCE_LEN..])
            .map_err(|_| Error::Crypto {
                detail: "sealing failed",
            })?;
        sealed[1..1 + NONCE_LEN].copy_from_slice(nonce.as_ref());
        sealed.extend_from_slice(tag.as_ref());
        Ok(sealed)
    }

    fn open(&self, aad: &[u8], sealed: &[u8], what: &'static str) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEALED_FORMAT_V1 {
            return Err(Error::Tampered { what });
        }
        let nonce_bytes: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| Error::Tampered { what })?;
        let mut in_out = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let plaintext_len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| Error::Tampered { what })?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

/// The key-encryption key: wraps every data key and every vault secret. It is kept
/// outside the data folder (a file or an environment variable), never in a store.
pub struct Kek {
    id: String,
    key: AeadKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self> {
        let id = to_hex(&sha256_parts(&[b"discreet/kek-id/v1", bytes])[..8]);
        Ok(Kek {
            id,
            key: AeadKey::new(bytes)?,
        })
    }

    /// A new random KEK.
    pub fn generate() -> Result<Self> {
        Self::from_bytes(&*random_bytes::<KEY_LEN>()?)
    }

    /// A KEK from its text form: 64 hexadecimal characters (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self> {
        // Decoded straight into a wiped buffer: no stray copy of the KEK is left behind.
        let text = text.trim().as_bytes();
        let invalid = || Error::Config {
            detail: "a KEK must be 64 hexadecimal characters (32 bytes)".into(),
        };
        if text.len() != KEY_LEN * 2 {
            return Err(invalid());
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        for (byte, pair) in bytes.iter_mut().zip(text.chunks(2)) {
            let high = (pair[0] as char).to_digit(16).ok_or_else(invalid)?;
            let low = (pair[1] as char).to_digit(16).ok_or_else(invalid)?;
            *byte = (high << 4 | low) as u8;
        }
        Self::from_bytes(&bytes)
    }

    /// Reads the KEK file, or creates it (mode 0600) with a new random KEK when missing.
    pub fn load_or_create_file(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&Zeroizing::new(text)).map_err(|_| Error::Config {
                detail: format!(
                    "{} must hold 64 hexadecimal characters (a 32-byte KEK)",
                    path.display()
                ),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let bytes = random_bytes::<KEY_LEN>()?;
                let text = Zeroizing::new(format!("{}\n", to_hex(bytes.as_ref())));
                write_private_file(path, text.as_bytes())?;
                Self::from_bytes(&bytes)
            }
            Err(error) => Err(Error::io("reading KEK file", path, error)),
        }
    }

    /// The KEK in environment variable `name` (64 hex characters), if it is set.
    pub fn from_environment(name: &str) -> Result<Option<Self>> {
        match std::env::var(name) {
            Ok(text) => Self::from_hex(&Zeroizing::new(text))
                .map(Some)
                .map_err(|_| Error::Config {
                    detail: format!("{name} must hold 64 hexadecimal characters (a 32-byte KEK)"),
                }),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config {
                detail: format!("{name} must hold 64 hexadecimal characters (a 32-byte KEK)"),
            }),
        }
    }

    /// A short public identifier of this KEK (not secret), stored beside every wrapped key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps a secret; `context` binds the wrapped bytes to what they are for.
    pub(crate) fn wrap(&self, context: &[u8], secret: &[u8]) -> Result<Vec<u8>> {
        self.key.seal(context, secret)
    }

    pub(crate) fn unwrap_secret(
        &self,
        context: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.key.open(context, wrapped, "key")
    }
}

/// Writes a file readable only by its owner, creating it exclusively.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|error| Error::io("creating KEK file", path, error))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|error| Error::io("writing KEK file", path, error))?;
    // The new file's name must survive a power cut too: the key store will depend on it.
    #[cfg(unix)]
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| Error::io("syncing the folder of", path, error))?;
    }
    Ok(())
}

/// The KEKs a vault knows: the current one wraps; every one can unwrap, so that a
/// rotation can proceed while the vault keeps serving.
#[derive(Debug)]
pub struct KekRing {
    current: Kek,
    previous: Vec<Kek>,
}

impl KekRing {
    /// A ring with one KEK.
    pub fn new(current: Kek) -> Self {
        KekRing {
            current,
            previous: Vec::new(),
        }
    }

    /// A ring whose current KEK is `current`, still able to unwrap with `previous`.
    pub fn with_previous(current: Kek, previous: Vec<Kek>) -> Self {
        KekRing { current, previous }
    }

    /// The KEK that wraps new keys.
    pub fn current(&self) -> &Kek {
        &self.current
    }

    pub(crate) fn find(&self, kek_id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|kek| kek.id == kek_id)
    }

    pub(crate) fn wrap(&self, context: &[u8], secret: &[u8]) -> Result<WrappedKey> {
        Ok(WrappedKey {
            kek_id: self.current.id.clone(),
            bytes: self.current.wrap(context, secret)?,
        })
    }

    pub(crate) fn unwrap_key(
        &self,
        context: &[u8],
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let kek = self.find(&wrapped.kek_id).ok_or_else(|| Error::Config {
            detail: format!(
                "a key is wrapped by KEK {} which this vault was not given (current KEK is {})",
                wrapped.kek_id, self.current.id
            ),
        })?;
        kek.unwrap_secret(context, &wrapped.bytes)
    }

    /// Makes `next` the current KEK, keeping the old one for unwrapping.
    pub(crate) fn rotate_to(&mut self, next: Kek) {
        let old = std::mem::replace(&mut self.current, next);
        self.previous.insert(0, old);
    }

    /// Forgets every KEK but the current one (after a completed rotation).
    pub(crate) fn drop_previous(&mut self) {
        self.previous.clear();
    }
}

/// A secret wrapped by a KEK, with the KEK's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub bytes: Vec<u8>,
}

/// One subject's data key, unwrapped: seals and opens that subject's values.
pub struct DataKey {
    key: AeadKey,
}

impl DataKey {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: &[u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::Crypto {
            detail: "a data key must be 32 bytes",
        })?;
        Ok(DataKey {
            key: AeadKey::new(bytes)?,
        })
    }

    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.key.seal(aad, plaintext)
    }

    pub(crate) fn open(
        &self,
        aad: &[u8],
        sealed: &[u8],
        what: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.key.open(aad, sealed, what)
    }
}

/// A keyed hash (HMAC-SHA-256): finds subjects without storing their ids, and names them
/// pseudonymously in the ledger and receipts.
pub(crate) struct TokenKey(hmac::Key);

impl TokenKey {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        TokenKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    pub(crate) fn tag(&self, message: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.0, message).as_ref());
        out
    }
}

/// The Ed25519 key that signs receipts and ledger checkpoints.
pub(crate) struct Signer {
    key_pair: Ed25519KeyPair,
    key_id: String,
}

impl Signer {
    pub(crate) fn from_seed(seed: &[u8]) -> Result<Self> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| Error::Crypto {
            detail: "Ed25519 seed rejected",
        })?;
        let key_id = key_id_of(key_pair.public_key().as_ref());
        Ok(Signer { key_pair, key_id })
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key_pair.sign(message).as_ref().to_vec()
    }

    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(crate) fn public_key(&self) -> Vec<u8> {
        self.key_pair.public_key().as_ref().to_vec()
    }
}

/// The identifier of a signing key: the first 8 bytes of the SHA-256 of its public key, in hex.
pub fn key_id_of(public_key: &[u8]) -> String {
    to_hex(&sha256_parts(&[b"discreet/signing-key-id/v1", public_key])[..8])
}

/// Checks an Ed25519 signature.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Constant-time equality of two byte strings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_then_opening_returns_the_input_and_aad_binds() {
        let key = DataKey::from_bytes(random_bytes::<KEY_LEN>().unwrap().as_ref()).unwrap();
        let sealed = key.seal(b"row-1", b"hello").unwrap();
        assert_eq!(
            key.open(b"row-1", &sealed, "event").unwrap().as_slice(),
            b"hello"
        );
        assert!(matches!(
            key.open(b"row-2", &sealed, "event"),
            Err(Error::Tampered { .. })
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(key.open(b"row-1", &flipped, "event").is_err());
        assert!(key.open(b"row-1", &sealed[..5], "event").is_err());
    }

    proptest::proptest! {
        /// Sealing then opening returns the input; any other associated data fails to open.
        #[test]
        fn sealing_round_trips_and_binds_any_aad(
            plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            aad in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            other_aad in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let key = DataKey::from_bytes(random_bytes::<KEY_LEN>().unwrap().as_ref()).unwrap();
            let sealed = key.seal(&aad, &plaintext).unwrap();
            proptest::prop_assert_eq!(sealed.len(), plaintext.len() + SEAL_OVERHEAD);
            let opened = key.open(&aad, &sealed, "value").unwrap();
            proptest::prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            if other_aad != aad {
                proptest::prop_assert!(key.open(&other_aad, &sealed, "value").is_err());
            }
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }

    #[test]
    fn kek_text_form_is_exactly_64_hex_characters() {
        let text = "0f".repeat(32);
        assert_eq!(
            Kek::from_hex(&text).unwrap().id(),
            Kek::from_hex(&format!("  {}\n", text.to_uppercase()))
                .unwrap()
                .id()
        );
        for bad in [
            "",
            "0f",
            &"0f".repeat(31),
            &"0f".repeat(33),
            &format!("{}zz", "0f".repeat(31)),
        ] {
            assert!(
                matches!(Kek::from_hex(bad), Err(Error::Config { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn kek_ring_unwraps_with_previous_keks() {
        let old = Kek::generate().unwrap();
        let mut ring = KekRing::new(old);
        let wrapped = ring.wrap(b"ctx", b"secret").unwrap();
        ring.rotate_to(Kek::generate().unwrap());
        assert_eq!(
            ring.unwrap_key(b"ctx", &wrapped).unwrap().as_slice(),
            b"secret"
        );
        ring.drop_previous();
        assert!(matches!(
            ring.unwrap_key(b"ctx", &wrapped),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message() {
        let signer = Signer::from_seed(random_bytes::<32>().unwrap().as_ref()).unwrap();
        let signature = signer.sign(b"receipt");
        assert!(verify_signature(
            &signer.public_key(),
            b"receipt",
            &signature
        ));
        assert!(!verify_signature(
            &signer.public_key(),
            b"receipt!",
            &signature
        ));
    }
}
