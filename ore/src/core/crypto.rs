//! Keys: the master key, the subkeys derived from it, and the key slots that wrap it.
//!
//! An archive has one random 32-byte master key for its whole life. Two subkeys are derived
//! from it with BLAKE3's key derivation: the *hash key* that names blocks (keyed BLAKE3, so a
//! stored key says nothing about a known file) and the *encryption key* (AES-256-GCM). The
//! master key is stored only wrapped: each key slot holds it encrypted under a key derived from
//! one passphrase with argon2id. Adding, changing or removing a passphrase rewrites slots and
//! never touches a block. A passphrase that opens no slot is told apart from a damaged format
//! record, because the record itself is checked by its own hash before any slot is tried.

use crate::core::error::{Error, Result};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
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

/// AES-256-GCM under one key, with 12-byte nonces and 16-byte tags appended to the
/// ciphertext. Backed by `ring`, whose AES-NI/CLMUL code seals and opens several GB/s on one
/// core: at zstd's pace the cipher would otherwise be a tenth of a snapshot's or restore's CPU.
pub struct Cipher(LessSafeKey);

/// The length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;

impl Cipher {
    /// A cipher under `key`.
    pub fn new(key: &[u8; 32]) -> Cipher {
        // A 32-byte key is always valid for AES-256.
        let key = UnboundKey::new(&AES_256_GCM, key).expect("32 bytes make an AES-256 key");
        Cipher(LessSafeKey::new(key))
    }

    /// Encrypts `buf` in place and returns the tag (to be stored after it).
    pub fn seal(&self, nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| Error::Archive("AES-GCM could not seal a buffer this large".into()))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Checks and decrypts `buf` (ciphertext followed by its tag) in place: the length of the
    /// plaintext now at its start, or `None` when the tag does not match.
    pub fn open(&self, nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> Option<usize> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .ok()
            .map(|plain| plain.len())
    }
}

/// The archive's master key and what derives from it.
pub struct Keys {
    hash_key: [u8; 32],
    cipher: Option<Cipher>,
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
            Cipher::new(&k)
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

    /// A hasher that ends with [`Keys::key_of`] of `kind` and every byte given it: the key
    /// of bytes read a piece at a time (a whole file's content id, `core::filelist`).
    pub fn hasher(&self, kind: u8) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(&self.hash_key);
        h.update(&[kind]);
        h
    }

    /// The cipher, when the archive is encrypted.
    pub fn cipher(&self) -> Option<&Cipher> {
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
    /// Default parameters with a fresh salt: 24 MiB, 3 passes, 1 lane (about 35–45 ms here,
    /// paid by every command that opens an encrypted archive).
    pub fn new_default() -> KdfParams {
        KdfParams {
            algorithm: "argon2id".into(),
            // 24 MiB and three passes: more work per guess than OWASP's recommended
            // 19 MiB x 2 or 46 MiB x 1, and small enough that opening an archive does not
            // dominate the memory of every command.
            memory_kib: 24 * 1024,
            iterations: 3,
            parallelism: 1,
            salt: hex::encode(random::<16>()),
        }
    }

    fn derive(&self, passphrase: &[u8]) -> Result<[u8; 32]> {
        if self.algorithm != "argon2id" {
            return Err(Error::Archive(format!(
                "key slot uses unknown key derivation `{}`",
                self.algorithm
            )));
        }
        let salt = hex::decode(&self.salt)
            .ok()
            .ok_or_else(|| Error::Archive("key slot has a malformed salt".into()))?;
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::Archive(format!("key slot has bad argon2 parameters: {e}")))?;
        let mut memory = kdf_memory(params.block_count());
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        a.hash_password_into_with_memory(passphrase, &salt, &mut out, &mut memory)
            .map_err(|e| Error::Archive(format!("key derivation failed: {e}")))?;
        Ok(out)
    }
}

/// Argon2's `n` blocks of memory, asked for in huge pages. Its passes read the blocks in an
/// order that depends on the data, all over the 24 MiB: in 4 KiB pages that is 6,144 page
/// faults to zero them, and a TLB miss on most reads. Where the kernel gives huge pages only
/// on request (`transparent_hugepage` set to `madvise`), this asks for them before the first
/// touch; where it cannot, the memory is ordinary and the result the same. Measured here:
/// `ore tags` of an encrypted archive took 45 ms instead of 57 (medians of 21 runs).
fn kdf_memory(n: usize) -> Vec<argon2::Block> {
    const HUGE: usize = 2 << 20;
    let mut v: Vec<argon2::Block> = Vec::with_capacity(n);
    let start = v.as_mut_ptr() as usize;
    let end = start + n * std::mem::size_of::<argon2::Block>();
    let (from, to) = ((start + HUGE - 1) & !(HUGE - 1), end & !(HUGE - 1));
    if from < to {
        // SAFETY: [from, to) lies inside the allocation `v` owns; madvise only advises the
        // kernel how to back it, and changes no byte of it. (Memory the allocator hands out
        // again, already backed by small pages, mostly keeps them: the advice then does
        // little, and the result is the same.)
        unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
    }
    v.resize(n, argon2::Block::default());
    v
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
    /// Wraps `master` under `passphrase`, in a slot with a new id.
    pub fn wrap(
        master: &[u8; 32],
        passphrase: &[u8],
        kdf: KdfParams,
        creator: String,
    ) -> Result<KeySlot> {
        KeySlot::wrap_as(master, passphrase, kdf, creator, hex::encode(random::<4>()))
    }

    /// Wraps `master` under `passphrase`, in a slot with id `id` (the id is bound into the
    /// wrapping, so a slot's bytes cannot be passed off under another id).
    pub fn wrap_as(
        master: &[u8; 32],
        passphrase: &[u8],
        kdf: KdfParams,
        creator: String,
        id: String,
    ) -> Result<KeySlot> {
        let kek = kdf.derive(passphrase)?;
        let nonce = random::<12>();
        let mut buf = master.to_vec();
        let tag = Cipher::new(&kek).seal(nonce, &slot_aad(&id), &mut buf)?;
        buf.extend_from_slice(&tag);
        Ok(KeySlot {
            id,
            created: crate::core::util::now_ns() / 1_000_000_000,
            creator,
            kdf,
            nonce: hex::encode(nonce),
            wrapped: hex::encode(&buf),
        })
    }

    /// The master key, if `passphrase` is this slot's.
    pub fn unwrap_master(&self, passphrase: &[u8]) -> Result<Option<[u8; 32]>> {
        let kek = self.kdf.derive(passphrase)?;
        let (Some(nonce), Some(mut buf)) = (
            hex::decode(&self.nonce).ok(),
            hex::decode(&self.wrapped).ok(),
        ) else {
            return Err(Error::Archive(format!("key slot {} is malformed", self.id)));
        };
        let Ok(nonce) = <[u8; 12]>::try_from(nonce.as_slice()) else {
            return Err(Error::Archive(format!("key slot {} is malformed", self.id)));
        };
        Ok(Cipher::new(&kek)
            .open(nonce, &slot_aad(&self.id), &mut buf)
            .and_then(|n| <[u8; 32]>::try_from(&buf[..n]).ok()))
    }
}

fn slot_aad(id: &str) -> Vec<u8> {
    let mut a = SLOT_AAD.to_vec();
    a.extend_from_slice(id.as_bytes());
    a
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

    /// The block cipher is plain AES-256-GCM (FORMAT.md promises it, and archives written
    /// before the implementation changed must still open): the GCM specification's test case
    /// 16 (256-bit key, 96-bit IV, additional data) seals and opens exactly.
    #[test]
    fn cipher_is_standard_aes_256_gcm() {
        let h = |s: &str| hex::decode(s).ok().unwrap();
        let key: [u8; 32] = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = h("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let plain = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                       1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let cipher = h(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                        8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        );
        let tag = h("76fc6ece0f4e1768cddf8853bb2d551b");
        let c = Cipher::new(&key);
        let mut buf = plain.clone();
        assert_eq!(c.seal(nonce, &aad, &mut buf).unwrap().to_vec(), tag);
        assert_eq!(buf, cipher);
        buf.extend_from_slice(&tag);
        assert_eq!(c.open(nonce, &aad, &mut buf), Some(plain.len()));
        assert_eq!(buf[..plain.len()], plain[..]);
        let mut bad = [cipher.clone(), tag.clone()].concat();
        bad[3] ^= 1;
        assert_eq!(c.open(nonce, &aad, &mut bad), None);
        let mut good = [cipher, tag].concat();
        assert_eq!(c.open(nonce, b"other data", &mut good), None);
    }

    /// The key derivation on memory of its own (huge pages asked for) gives the bytes
    /// argon2id gives on its own allocation, with the default parameters archives use:
    /// golden bytes (the reference C implementation, through argon2-cffi, gives the same),
    /// so a slot made by any earlier build still opens.
    #[test]
    fn the_key_derivation_on_huge_pages_derives_the_same_key() {
        let kdf = KdfParams {
            salt: "000102030405060708090a0b0c0d0e0f".into(),
            ..KdfParams::new_default()
        };
        let ours = kdf.derive(b"correct horse").unwrap();
        let params = argon2::Params::new(kdf.memory_kib, 3, 1, None).unwrap();
        let mut theirs = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(
                b"correct horse",
                &hex::decode(&kdf.salt).unwrap(),
                &mut theirs,
            )
            .unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(
            hex::encode(ours),
            "fa452c2550bbf8c6624faeedeea6005391729630e5c3783476bff60c316a1bbe"
        );
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
