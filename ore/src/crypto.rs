//! Keys: the master key, the subkeys derived from it, and the key slots that wrap it.
//!
//! An archive has one random 32-byte master key for its whole life. Two subkeys are derived
//! from it with BLAKE3's key derivation: the *hash key* that names blocks (keyed BLAKE3, so a
//! stored key says nothing about a known file) and the *encryption key* (AES-256-GCM). The
//! master key is stored only wrapped: each key slot holds it encrypted under a key derived from
//! one passphrase with argon2id. Adding, changing or removing a passphrase rewrites slots and
//! never touches a block. A passphrase that opens no slot is told apart from a damaged format
//! record, because the record itself is checked by its own hash before any slot is tried.

use crate::error::{Error, Result};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};

/// Context strings for the subkeys (part of the format: changing them changes every key).
const HASH_CONTEXT: &str = "ore 2026-11 block hash key v1";
const ENCRYPTION_CONTEXT: &str = "ore 2026-11 block encryption key v1";
const SLOT_AAD: &[u8] = b"ore key slot v1";

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is not something a backup can continue without.
    getrandom::getrandom(&mut b).expect("the operating system's random source failed");
    b
}

/// The archive's master key and what derives from it.
pub struct Keys {
    hash_key: [u8; 32],
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("encrypted", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from a master key; `encrypt` says whether blocks are encrypted.
    pub fn from_master(master: &[u8; 32], encrypt: bool) -> Keys {
        let hash_key = blake3::derive_key(HASH_CONTEXT, master);
        let cipher = encrypt.then(|| {
            let k = blake3::derive_key(ENCRYPTION_CONTEXT, master);
            Aes256Gcm::new(&k.into())
        });
        Keys { hash_key, cipher }
    }

    /// The keyed BLAKE3 hash of `kind` and `data`: a block's key.
    pub fn key_of(&self, kind: u8, data: &[u8]) -> protocol::Key {
        let mut h = blake3::Hasher::new_keyed(&self.hash_key);
        h.update(&[kind]);
        h.update(data);
        protocol::Key(*h.finalize().as_bytes())
    }

    /// The cipher, when the archive is encrypted.
    pub fn cipher(&self) -> Option<&Aes256Gcm> {
        self.cipher.as_ref()
    }
}

/// How a slot's wrapping key was derived from its passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always `argon2id` in format version 1.
    pub algorithm: String,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Salt, hex.
    pub salt: String,
}

impl KdfParams {
    /// Default parameters with a fresh salt: 64 MiB, 1 pass, 1 lane — above OWASP's
    /// 46 MiB/1 pass recommendation, and about a tenth of a second here, paid on every command.
    pub fn new_default() -> KdfParams {
        KdfParams {
            algorithm: "argon2id".into(),
            // 24 MiB and three passes: more work per guess than OWASP's recommended
            // 19 MiB x 2 or 46 MiB x 1, and small enough that opening an archive does not
            // dominate the memory of every command.
            memory_kib: 24 * 1024,
            iterations: 3,
            parallelism: 1,
            salt: hex(&random::<16>()),
        }
    }

    fn derive(&self, passphrase: &[u8]) -> Result<[u8; 32]> {
        if self.algorithm != "argon2id" {
            return Err(Error::Archive(format!(
                "key slot uses unknown key derivation `{}`",
                self.algorithm
            )));
        }
        let salt = unhex(&self.salt)
            .ok_or_else(|| Error::Archive("key slot has a malformed salt".into()))?;
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::Archive(format!("key slot has bad argon2 parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        a.hash_password_into(passphrase, &salt, &mut out)
            .map_err(|e| Error::Archive(format!("key derivation failed: {e}")))?;
        Ok(out)
    }
}

/// One passphrase's copy of the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlot {
    /// Short random identifier, hex.
    pub id: String,
    /// When the slot was made (seconds since the epoch).
    pub created: i64,
    /// Who made it: `user@host`.
    pub creator: String,
    /// Key derivation.
    pub kdf: KdfParams,
    /// AES-256-GCM nonce, hex.
    pub nonce: String,
    /// The wrapped master key and its tag, hex.
    pub wrapped: String,
}

impl KeySlot {
    /// Wraps `master` under `passphrase`.
    pub fn wrap(
        master: &[u8; 32],
        passphrase: &[u8],
        kdf: KdfParams,
        creator: String,
    ) -> Result<KeySlot> {
        let kek = kdf.derive(passphrase)?;
        let nonce = random::<12>();
        let mut buf = master.to_vec();
        let id = hex(&random::<4>());
        Aes256Gcm::new(&kek.into())
            .encrypt_in_place(Nonce::from_slice(&nonce), &slot_aad(&id), &mut buf)
            .map_err(|_| Error::Archive("could not wrap the master key".into()))?;
        Ok(KeySlot {
            id,
            created: crate::util::now_ns() / 1_000_000_000,
            creator,
            kdf,
            nonce: hex(&nonce),
            wrapped: hex(&buf),
        })
    }

    /// The master key, if `passphrase` is this slot's.
    pub fn unwrap_master(&self, passphrase: &[u8]) -> Result<Option<[u8; 32]>> {
        let kek = self.kdf.derive(passphrase)?;
        let (Some(nonce), Some(mut buf)) = (unhex(&self.nonce), unhex(&self.wrapped)) else {
            return Err(Error::Archive(format!("key slot {} is malformed", self.id)));
        };
        if nonce.len() != 12 {
            return Err(Error::Archive(format!("key slot {} is malformed", self.id)));
        }
        let ok = Aes256Gcm::new(&kek.into())
            .decrypt_in_place(Nonce::from_slice(&nonce), &slot_aad(&self.id), &mut buf)
            .is_ok();
        Ok(if ok {
            <[u8; 32]>::try_from(buf.as_slice()).ok()
        } else {
            None
        })
    }
}

fn slot_aad(id: &str) -> Vec<u8> {
    let mut a = SLOT_AAD.to_vec();
    a.extend_from_slice(id.as_bytes());
    a
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes from hex, or `None`.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick_kdf() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            ..KdfParams::new_default()
        }
    }

    #[test]
    fn slot_opens_only_with_its_passphrase() {
        let master = random::<32>();
        let slot = KeySlot::wrap(&master, b"right", quick_kdf(), "t@h".into()).unwrap();
        assert_eq!(slot.unwrap_master(b"right").unwrap(), Some(master));
        assert_eq!(slot.unwrap_master(b"wrong").unwrap(), None);
    }

    #[test]
    fn subkeys_differ_and_keys_depend_on_kind() {
        let k = Keys::from_master(&[7; 32], true);
        assert_ne!(k.key_of(1, b"x"), k.key_of(2, b"x"));
        assert_ne!(k.key_of(1, b"x").0, *blake3::hash(b"x").as_bytes());
        let other = Keys::from_master(&[8; 32], true);
        assert_ne!(k.key_of(1, b"x"), other.key_of(1, b"x"));
    }
}
