//! Stored blocks: the envelope every block travels in (see FORMAT.md §2).
//!
//! ```text
//! stored   = version(1) flags(1) [nonce(12)] body [tag(16)]
//! body     = kind(1) codec(1) payload          (encrypted when flags & 1)
//! payload  = plaintext (codec 0) | zstd frame of plaintext (codec 1)
//! key      = BLAKE3-keyed(hash key, kind || plaintext)
//! ```
//!
//! The kind is inside the encryption, so the storage learns nothing but sizes. The block key,
//! version and flags are the AEAD's associated data, so a block stored under another key, or
//! with its header altered, fails authentication. After opening, the key is recomputed from
//! the plaintext: a block whose bytes do not hash to its name is corrupt, encrypted or not.

use crate::crypto::{random, Keys};
use crate::error::{Error, Result};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Nonce, Tag};
use protocol::Key;
use std::cell::RefCell;

/// Envelope version.
pub const VERSION: u8 = 1;
const FLAG_ENCRYPTED: u8 = 1;
const NONCE: usize = 12;
const TAG: usize = 16;
/// Largest plaintext a block may have (and so the most a decompression may produce).
pub const MAX_PLAIN: usize = 64 << 20;

/// What a block holds. The byte values are part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A piece of a file's contents.
    Chunk = 1,
    /// A leaf of a file's index tree (pieces).
    FileLeaf = 2,
    /// An inner node of a file's index tree.
    FileIndex = 3,
    /// A leaf of a directory tree (entries).
    Dir = 4,
    /// An inner node of a directory tree.
    DirIndex = 5,
    /// A snapshot.
    Snapshot = 6,
    /// The format record (stored plain, named by unkeyed BLAKE3).
    Format = 7,
}

impl Kind {
    /// The kind of a byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Chunk,
            2 => Kind::FileLeaf,
            3 => Kind::FileIndex,
            4 => Kind::Dir,
            5 => Kind::DirIndex,
            6 => Kind::Snapshot,
            7 => Kind::Format,
            _ => return None,
        })
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chunk => "file data",
            Kind::FileLeaf => "file index leaf",
            Kind::FileIndex => "file index",
            Kind::Dir => "directory",
            Kind::DirIndex => "directory index",
            Kind::Snapshot => "snapshot",
            Kind::Format => "format record",
        }
    }
}

/// How blocks are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd(i32),
}

thread_local! {
    /// This thread's next nonce: random at first use, then counting up (mod 2^96), so nonces
    /// never repeat within a thread and overlap between threads only with negligible chance.
    static NONCE_STATE: std::cell::Cell<u128> = std::cell::Cell::new(u128::from_le_bytes({
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&random::<12>());
        b
    }));
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Seals `plain` into a stored block, appending to `out` (which is cleared first).
pub fn seal(
    keys: &Keys,
    kind: Kind,
    key: &Key,
    plain: &[u8],
    comp: Compression,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    let encrypted = keys.cipher().is_some();
    out.push(VERSION);
    out.push(if encrypted { FLAG_ENCRYPTED } else { 0 });
    let nonce = next_nonce();
    if encrypted {
        out.extend_from_slice(&nonce);
    }
    let body_start = out.len();
    out.push(kind as u8);
    out.push(0);
    let mut compressed = false;
    if let Compression::Zstd(level) = comp {
        if plain.len() >= 64 {
            let start = out.len();
            let bound = zstd::zstd_safe::compress_bound(plain.len());
            out.reserve(bound + TAG);
            let written = COMPRESSOR.with(|c| -> std::io::Result<usize> {
                let mut c = c.borrow_mut();
                if c.as_ref().map(|(l, _)| *l) != Some(level) {
                    *c = Some((level, zstd::bulk::Compressor::new(level)?));
                }
                let (_, comp) = c.as_mut().expect("compressor was just set");
                // Compress straight into the spare capacity after the header (no zeroing).
                let mut cursor = std::io::Cursor::new(&mut *out);
                cursor.set_position(start as u64);
                comp.compress_to_buffer(plain, &mut cursor)
            });
            match written {
                Ok(n) if n + 8 < plain.len() => {
                    out.truncate(start + n);
                    out[body_start + 1] = 1;
                    compressed = true;
                }
                _ => out.truncate(start),
            }
        }
    }
    if !compressed {
        out.extend_from_slice(plain);
    }
    if let Some(cipher) = keys.cipher() {
        let aad = aad(key, out[1]);
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut out[body_start..])
            .map_err(|_| Error::Archive(format!("could not encrypt block {key}")))?;
        out.extend_from_slice(&tag);
    }
    Ok(())
}

fn next_nonce() -> [u8; NONCE] {
    NONCE_STATE.with(|n| {
        let v = n.get();
        n.set(v.wrapping_add(1) & ((1u128 << 96) - 1));
        let mut out = [0u8; NONCE];
        out.copy_from_slice(&v.to_le_bytes()[..NONCE]);
        out
    })
}

fn aad(key: &Key, flags: u8) -> [u8; 34] {
    let mut a = [0u8; 34];
    a[..32].copy_from_slice(&key.0);
    a[32] = VERSION;
    a[33] = flags;
    a
}

/// An opened block's plaintext.
#[derive(Debug)]
pub struct Plain {
    pub kind: Kind,
    buf: Vec<u8>,
    start: usize,
}

impl Plain {
    /// The plaintext.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The plaintext, owned.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

/// Opens a stored block read under `key`, expecting `expect` (any kind when `None`), and checks
/// that it hashes to `key`.
pub fn open(keys: &Keys, key: &Key, expect: Option<Kind>, mut stored: Vec<u8>) -> Result<Plain> {
    let kind_name = expect.map_or("block", Kind::name);
    let corrupt = |why: String| Error::Corrupt {
        key: *key,
        kind: kind_name,
        why,
    };
    if stored.len() < 4 {
        return Err(corrupt(format!("only {} bytes long", stored.len())));
    }
    if stored[0] != VERSION {
        return Err(corrupt(format!("unknown envelope version {}", stored[0])));
    }
    let flags = stored[1];
    let body_start = if flags & FLAG_ENCRYPTED != 0 {
        let Some(cipher) = keys.cipher() else {
            return Err(corrupt("encrypted, but this archive is not".into()));
        };
        if stored.len() < 2 + NONCE + TAG + 2 {
            return Err(corrupt(format!(
                "too short to be encrypted ({} bytes)",
                stored.len()
            )));
        }
        let tag_at = stored.len() - TAG;
        let tag = *Tag::from_slice(&stored[tag_at..]);
        let nonce = *Nonce::from_slice(&stored[2..2 + NONCE]);
        cipher
            .decrypt_in_place_detached(
                &nonce,
                &aad(key, flags),
                &mut stored[2 + NONCE..tag_at],
                &tag,
            )
            .map_err(|_| {
                corrupt("authentication failed (altered, or stored under another key)".into())
            })?;
        stored.truncate(tag_at);
        2 + NONCE
    } else {
        if keys.cipher().is_some() && expect != Some(Kind::Format) {
            return Err(corrupt("not encrypted, but this archive is".into()));
        }
        2
    };
    if flags & !FLAG_ENCRYPTED != 0 {
        return Err(corrupt(format!("unknown flags {flags:#x}")));
    }
    let kind_byte = stored[body_start];
    let kind =
        Kind::from_u8(kind_byte).ok_or_else(|| corrupt(format!("unknown kind {kind_byte}")))?;
    if let Some(e) = expect {
        if e != kind {
            return Err(corrupt(format!("it holds a {} block", kind.name())));
        }
    }
    let payload = body_start + 2;
    let plain = match stored[body_start + 1] {
        0 => Plain {
            kind,
            buf: stored,
            start: payload,
        },
        1 => {
            let frame = &stored[payload..];
            let size = zstd::zstd_safe::get_frame_content_size(frame)
                .ok()
                .flatten()
                .ok_or_else(|| corrupt("zstd frame without a content size".into()))?;
            if size > MAX_PLAIN as u64 {
                return Err(corrupt(format!("claims {size} bytes of plaintext")));
            }
            let mut out = Vec::with_capacity(size as usize);
            let r = DECOMPRESSOR.with(|d| -> std::io::Result<usize> {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(zstd::bulk::Decompressor::new()?);
                }
                d.as_mut()
                    .expect("decompressor was just set")
                    .decompress_to_buffer(frame, &mut out)
            });
            r.map_err(|e| corrupt(format!("zstd: {e}")))?;
            Plain {
                kind,
                buf: out,
                start: 0,
            }
        }
        c => return Err(corrupt(format!("unknown codec {c}"))),
    };
    let actual = if kind == Kind::Format {
        format_key(plain.data())
    } else {
        keys.key_of(kind as u8, plain.data())
    };
    if actual != *key {
        return Err(corrupt(format!("its contents hash to {actual}")));
    }
    Ok(plain)
}

/// The key of a format record: unkeyed BLAKE3 of its kind and bytes (no secret exists yet
/// when it is read).
pub fn format_key(data: &[u8]) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(&[Kind::Format as u8]);
    h.update(data);
    Key(*h.finalize().as_bytes())
}

/// Seals a format record (never encrypted, never compressed).
pub fn seal_format(data: &[u8]) -> (Key, Vec<u8>) {
    let key = format_key(data);
    let mut out = vec![VERSION, 0, Kind::Format as u8, 0];
    out.extend_from_slice(data);
    (key, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(keys: &Keys, comp: Compression, data: &[u8]) {
        let key = keys.key_of(Kind::Chunk as u8, data);
        let mut out = Vec::new();
        seal(keys, Kind::Chunk, &key, data, comp, &mut out).unwrap();
        let p = open(keys, &key, Some(Kind::Chunk), out.clone()).unwrap();
        assert_eq!(p.data(), data);
        // Any flipped byte is caught.
        for i in [0, 1, out.len() / 2, out.len() - 1] {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert!(
                open(keys, &key, Some(Kind::Chunk), bad).is_err(),
                "flip at {i}"
            );
        }
        // The wrong expected kind is caught.
        assert!(open(keys, &key, Some(Kind::Dir), out).is_err());
    }

    #[test]
    fn seal_open_round_trip() {
        let text =
            b"hello hello hello hello hello hello hello hello hello hello hello hello".repeat(50);
        for enc in [true, false] {
            let keys = Keys::from_master(&[3; 32], enc);
            for comp in [Compression::None, Compression::Zstd(3)] {
                round(&keys, comp, &text);
                round(&keys, comp, b"");
                round(&keys, comp, &random::<32>());
            }
        }
    }

    #[test]
    fn encrypted_block_hides_plaintext() {
        let keys = Keys::from_master(&[9; 32], true);
        let data = b"a very recognisable secret sentence".repeat(3);
        let key = keys.key_of(1, &data);
        let mut out = Vec::new();
        seal(&keys, Kind::Chunk, &key, &data, Compression::None, &mut out).unwrap();
        assert!(!out.windows(10).any(|w| w == &data[..10]));
    }
}
