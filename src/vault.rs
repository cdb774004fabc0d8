//! The token vault: AES-256-GCM sealing of secrets at rest, with a keyring for rotation.
//!
//! A sealed value reads `v1.<key_id>.<base64url(nonce || ciphertext+tag)>`. The key id is derived from
//! the key (the first 8 bytes of SHA-256 over it, hex), so every ciphertext names the key that sealed it
//! without revealing it, and retired keys listed in `TOKEN_ENCRYPTION_OLD_KEYS` keep old rows readable
//! until `rotate-keys` has re-sealed them. The associated data binds a ciphertext to its purpose, store
//! and platform: a ciphertext copied into another row fails to open.
//!
//! This module owns keys and sealing; it does not know where sealed values are stored.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretSlice};
use sha2::{Digest, Sha256};

use crate::domain::{PlatformId, StoreId};

const FORMAT_VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// The sealed text is not in the `v1.<key>.<data>` form.
    #[error("sealed value is malformed")]
    Malformed,
    /// The key that sealed the value is neither the current key nor a listed old key. During a key
    /// rollout this is transient (another replica already seals with a key this one lacks), never a
    /// reason to give a connection up; unlike [`VaultError::Tampered`] it carries the key's id.
    #[error(
        "sealed with key {0}, which is not in the keyring (add it to TOKEN_ENCRYPTION_OLD_KEYS)"
    )]
    UnknownKey(String),
    /// Authentication failed: the data was altered, or it belongs to another row or purpose.
    #[error("sealed value failed authentication: altered, or bound to another row")]
    Tampered,
    /// A key could not be parsed.
    #[error("{0}")]
    BadKey(String),
}

/// A 256-bit key with its derived id. Its bytes never reach `Debug`.
pub struct Key {
    id: String,
    cipher: Aes256Gcm,
    bytes: SecretBox<[u8; 32]>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        Self::from_bytes(*self.bytes.expose_secret())
    }
}

impl Key {
    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = hex::encode(&digest[..8]);
        let cipher = Aes256Gcm::new((&bytes).into());
        Self {
            id,
            cipher,
            bytes: SecretBox::new(Box::new(bytes)),
        }
    }

    /// Parses the URL-safe base64 form that `keygen` prints (padding optional; standard base64 is
    /// accepted too, as Python's `Fernet.generate_key()`-style tools sometimes emit it).
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let text = text.trim();
        let decoded = URL_SAFE
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| VaultError::BadKey("is not base64".into()))?;
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            VaultError::BadKey(format!(
                "must decode to 32 bytes, got {} (generate one with `growth-engine keygen`)",
                decoded.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The key in the form `keygen` prints. Secret: only for writing a key file or printing once.
    pub fn to_base64(&self) -> String {
        URL_SAFE.encode(self.bytes.expose_secret())
    }

    /// The key's public id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What a sealed value is bound to. Opening with different associated data fails.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// A connection's token set.
    Tokens {
        /// The owning store.
        store_id: &'a StoreId,
        /// The platform.
        platform: &'a PlatformId,
    },
    /// A flow state held in Redis or in process, bound to its lookup key.
    FlowState(&'a str),
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        // Length-prefixed parts, so that ("ab","c") and ("a","bc") differ.
        let parts: Vec<&str> = match self {
            Binding::Tokens { store_id, platform } => {
                vec!["tokens", store_id.as_str(), platform.as_str()]
            }
            Binding::FlowState(key) => vec!["flow-state", key],
        };
        let mut aad = b"growth-engine/v1".to_vec();
        for part in parts {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// The current key plus retired keys still accepted for reading.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Key,
    old: Vec<Key>,
}

impl Keyring {
    /// A keyring that seals with `current` and also opens values sealed with any of `old`.
    pub fn new(current: Key, old: Vec<Key>) -> Self {
        let old = old.into_iter().filter(|k| k.id != current.id).collect();
        Self { current, old }
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// The ids of every key this keyring opens: the current one first, then the old ones.
    pub(crate) fn key_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.id.as_str()).chain(self.old.iter().map(|k| k.id.as_str()))
    }

    /// Whether this keyring holds the key with id `key_id`.
    pub fn knows(&self, key_id: &str) -> bool {
        self.key_ids().any(|id| id == key_id)
    }

    /// Seals `plaintext`, bound to `binding`, with the current key and a fresh random nonce.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = binding.associated_data();
        // AES-GCM encryption only fails for inputs over 64 GiB; tokens are bytes long.
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        format!(
            "{FORMAT_VERSION}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(data)
        )
    }

    /// Opens a sealed value. The plaintext comes back in a zeroised-on-drop secret.
    pub fn open(&self, binding: Binding<'_>, sealed: &str) -> Result<SecretSlice<u8>, VaultError> {
        let (key_id, data) = split_sealed(sealed)?;
        let key = std::iter::once(&self.current)
            .chain(self.old.iter())
            .find(|k| k.id == key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let data = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| VaultError::Malformed)?;
        if data.len() < NONCE_LEN + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, body) = data.split_at(NONCE_LEN);
        let aad = binding.associated_data();
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(SecretSlice::from)
            .map_err(|_| VaultError::Tampered)
    }

    /// A 32-byte secret for another purpose (`purpose` names it), derived from the current key with
    /// HMAC-SHA256. Deterministic: every process holding the same key derives the same secret, and
    /// the secret reveals nothing about the key.
    pub fn derive(&self, purpose: &str) -> SecretBox<[u8; 32]> {
        use hmac::{Hmac, Mac};
        // HMAC pads a key shorter than the hash's block (64 bytes) with zeros (RFC 2104 §2); doing
        // it here lets us use the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(self.current.bytes.expose_secret());
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
        mac.update(purpose.as_bytes());
        SecretBox::new(Box::new(mac.finalize().into_bytes().into()))
    }

    /// Whether a sealed value was sealed with a key other than the current one.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        split_sealed(sealed).map_or(true, |(id, _)| id != self.current.id)
    }
}

fn split_sealed(sealed: &str) -> Result<(&str, &str), VaultError> {
    let mut parts = sealed.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(FORMAT_VERSION), Some(id), Some(data)) if !id.is_empty() => Ok((id, data)),
        _ => Err(VaultError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (StoreId, PlatformId) {
        (
            StoreId::parse("store-1").expect("valid"),
            PlatformId::parse("meta").expect("valid"),
        )
    }

    #[test]
    fn key_debug_hides_the_key_bytes() {
        let key = Key::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_base64()));
        assert!(shown.contains(key.id()));
    }

    #[test]
    fn parse_rejects_wrong_lengths_and_garbage() {
        assert!(matches!(Key::parse("abc"), Err(VaultError::BadKey(_))));
        assert!(matches!(Key::parse("!!!"), Err(VaultError::BadKey(_))));
        let key = Key::generate();
        assert_eq!(Key::parse(&key.to_base64()).expect("parses").id(), key.id());
    }

    #[test]
    fn an_unknown_key_is_told_apart_from_a_tampered_value_and_named() {
        let (store, platform) = ids();
        let binding = Binding::Tokens {
            store_id: &store,
            platform: &platform,
        };
        let newer = Keyring::new(Key::generate(), vec![]);
        let sealed = newer.seal(binding, b"secret");
        let older = Keyring::new(Key::generate(), vec![]);
        assert_eq!(
            older.open(binding, &sealed).err(),
            Some(VaultError::UnknownKey(newer.current_key_id().to_owned()))
        );
        assert!(!older.knows(newer.current_key_id()));
        // Change a character well inside the data: the last one of unpadded base64 also carries
        // padding bits, so changing it can make the text undecodable rather than tampered.
        let middle = sealed.len() - 10;
        let mut altered = sealed.clone();
        let swapped = if &sealed[middle..=middle] == "A" {
            "B"
        } else {
            "A"
        };
        altered.replace_range(middle..=middle, swapped);
        assert_eq!(
            newer.open(binding, &altered).err(),
            Some(VaultError::Tampered)
        );
        let both = Keyring::new(Key::generate(), vec![Key::generate()]);
        assert_eq!(both.key_ids().count(), 2);
        assert!(both.knows(both.current_key_id()));
    }

    #[test]
    fn nonces_differ_between_two_seals_of_the_same_plaintext() {
        let (store, platform) = ids();
        let ring = Keyring::new(Key::generate(), vec![]);
        let binding = Binding::Tokens {
            store_id: &store,
            platform: &platform,
        };
        assert_ne!(ring.seal(binding, b"same"), ring.seal(binding, b"same"));
    }
}
