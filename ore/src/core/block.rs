//! Stored blocks: the envelope every block travels in (see FORMAT.md §2).
//!
//! ```text
//! stored   = header(1) [nonce(12)] body [tag(16)]   header = version << 4 | flags
//! body     = kind | codec << 5 (1) payload         (encrypted when flags & 1)
//! payload  = plaintext (codec 0) | len:varint zstd-frame (codec 1: magicless, no content size)
//! key      = BLAKE3-keyed(hash key, kind || plaintext)
//! ```
//!
//! The kind is inside the encryption, so the storage learns nothing but sizes. The block key
//! and the header byte are the AEAD's associated data, so a block stored under another key, or
//! with its header altered, fails authentication. After opening, the key is recomputed from
//! the plaintext: a block whose bytes do not hash to its name is corrupt, encrypted or not.

use crate::core::cpustat::{time, Stage};
use crate::core::crypto::{random, Keys};
use crate::core::error::{Error, Result};
use protocol::Key;
use std::cell::RefCell;

/// Envelope version.
pub const VERSION: u8 = 1;
const FLAG_ENCRYPTED: u8 = 1;
const NONCE: usize = 12;
const TAG: usize = crate::core::crypto::TAG_LEN;
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
    /// A piece of the reflog: the record of tag moves.
    Reflog = 8,
    /// A place on a tag's chain: a snapshot and the link(s) before it (format 2).
    Link = 9,
    /// An archive object: an imported tree with its properties (format 4, `core::archival`).
    Object = 10,
    /// A leaf of an archive tag's index: sorted keys and values (format 4, `core::index`).
    IndexLeaf = 11,
    /// An inner node of an archive tag's index (format 4).
    IndexInner = 12,
    /// What an archive tag names: its index and the head before it (format 4).
    Head = 13,
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
            8 => Kind::Reflog,
            9 => Kind::Link,
            10 => Kind::Object,
            11 => Kind::IndexLeaf,
            12 => Kind::IndexInner,
            13 => Kind::Head,
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
            Kind::Reflog => "reflog",
            Kind::Link => "chain link",
            Kind::Object => "archive object",
            Kind::IndexLeaf => "index leaf",
            Kind::IndexInner => "index node",
            Kind::Head => "archive head",
        }
    }
}

/// How blocks are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd(i32),
}

/// The zstd level for data that is compressed already (see [`already_compressed`]).
const FAST_LEVEL: i32 = -1;

impl Compression {
    /// How to compress data that is compressed already. zstd's fastest levels still take the
    /// few bytes such files give up (names in gzip headers, PNG metadata) at a fraction of the
    /// time the configured level spends finding nothing in the rest.
    pub fn for_compressed_data(self) -> Compression {
        match self {
            Compression::Zstd(l) if l > FAST_LEVEL => Compression::Zstd(FAST_LEVEL),
            c => c,
        }
    }
}

thread_local! {
    /// This thread's next nonce: random at first use, then counting up (mod 2^96), so nonces
    /// never repeat within a thread and overlap between threads only with negligible chance.
    static NONCE_STATE: std::cell::Cell<u128> = std::cell::Cell::new(u128::from_le_bytes({
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&random::<12>());
        b
    }));
    /// This thread's compressors, one per level in use (the configured one, and the one for
    /// data compressed already), each for blocks below [`SMALL_BLOCK`] and for the others.
    static COMPRESSORS: RefCell<Vec<((i32, bool), zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Whether data that begins with `head` is in a format that is already compressed, so that
/// zstd would spend its time and save nothing: gzip, xz, zstd, bzip2, lz4, 7-Zip, PNG, JPEG,
/// WebP, WOFF2, Ogg, FLAC, and MP4/QuickTime. A snapshot compresses such files' chunks at
/// zstd's fastest level ([`Compression::for_compressed_data`]). Containers that may hold uncompressed members (zip, tar, PDF) are
/// not on the list, and neither are formats whose payload zstd still shrinks (GIF, MP3 tags).
pub fn already_compressed(head: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x1f\x8b\x08",       // gzip (deflate)
        b"\xfd7zXZ\x00",       // xz
        b"\x28\xb5\x2f\xfd",   // zstd
        b"\x04\x22\x4d\x18",   // lz4 frame
        b"7z\xbc\xaf\x27\x1c", // 7-Zip
        b"\x89PNG\r\n\x1a\n",  // PNG
        b"\xff\xd8\xff",       // JPEG
        b"wOF2",               // WOFF2 (brotli)
        b"OggS",               // Ogg (Vorbis, Opus, Theora)
        b"fLaC",               // FLAC
    ];
    if MAGIC.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    // bzip2: "BZh" and a block size digit, then the first block's magic (pi).
    if head.len() >= 10 && &head[..3] == b"BZh" && (b'1'..=b'9').contains(&head[3]) {
        return &head[4..10] == b"\x31\x41\x59\x26\x53\x59";
    }
    // WebP: a RIFF container whose form type is WEBP.
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return true;
    }
    // MP4 / QuickTime / HEIF: an "ftyp" box first.
    head.len() >= 12 && &head[4..8] == b"ftyp"
}

/// Blocks shorter than this are compressed without entropy-coding their literals. Building a
/// Huffman table for a few hundred bytes cost more than the rest of their sealing: an
/// `ore import --each` of /usr/share, which seals two blocks of a few hundred bytes for each
/// of 46,000 files, spent 15% of its object-making time in zstd's table building (docs/BENCHMARKS.md).
/// Repeated strings are still found, which is most of what such a block saves.
pub const SMALL_BLOCK: usize = 1024;

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
    out.push(VERSION << 4 | if encrypted { FLAG_ENCRYPTED } else { 0 });
    let nonce = next_nonce();
    if encrypted {
        out.extend_from_slice(&nonce);
    }
    let body_start = out.len();
    out.push(kind as u8);
    let mut compressed = false;
    if let Compression::Zstd(level) = comp {
        if plain.len() >= 64 {
            put_varint(out, plain.len() as u64);
            let start = out.len();
            let bound = zstd::zstd_safe::compress_bound(plain.len());
            out.reserve(bound + TAG);
            let written = time(Stage::Compress, || {
                COMPRESSORS.with(|c| -> std::io::Result<usize> {
                    let mut c = c.borrow_mut();
                    let small = plain.len() < SMALL_BLOCK;
                    let i = match c.iter().position(|(l, _)| *l == (level, small)) {
                        Some(i) => i,
                        None => {
                            let mut comp = zstd::bulk::Compressor::new(level)?;
                            if small {
                                comp.set_parameter(
                                    zstd::stream::raw::CParameter::LiteralCompressionMode(
                                        zstd::zstd_safe::ParamSwitch::Disable,
                                    ),
                                )?;
                            }
                            // The frame's magic number and content size would repeat what the
                            // envelope already says: leave them out (8 bytes a block).
                            comp.set_parameter(zstd::stream::raw::CParameter::ContentSizeFlag(
                                false,
                            ))?;
                            comp.set_parameter(zstd::stream::raw::CParameter::Format(
                                zstd::zstd_safe::FrameFormat::Magicless,
                            ))?;
                            c.push(((level, small), comp));
                            c.len() - 1
                        }
                    };
                    let comp = &mut c[i].1;
                    // Compress straight into the spare capacity after the header (no zeroing).
                    let mut cursor = std::io::Cursor::new(&mut *out);
                    cursor.set_position(start as u64);
                    comp.compress_to_buffer(plain, &mut cursor)
                })
            });
            match written {
                Ok(n) if start + n - (body_start + 1) < plain.len() => {
                    out.truncate(start + n);
                    out[body_start] = kind as u8 | 1 << 5;
                    compressed = true;
                }
                _ => out.truncate(body_start + 1),
            }
        }
    }
    if !compressed {
        out.extend_from_slice(plain);
    }
    if let Some(cipher) = keys.cipher() {
        let aad = aad(key, out[0]);
        let tag = time(Stage::Encrypt, || {
            cipher.seal(nonce, &aad, &mut out[body_start..])
        })
        .map_err(|e| Error::Archive(format!("could not encrypt block {key}: {e}")))?;
        out.extend_from_slice(&tag);
    }
    Ok(())
}

/// Appends `v` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint: the value and how many bytes it took.
fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
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

fn aad(key: &Key, header: u8) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[..32].copy_from_slice(&key.0);
    a[32] = header;
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
    if stored.len() < 2 {
        return Err(corrupt(format!("only {} bytes long", stored.len())));
    }
    let header = stored[0];
    if header >> 4 != VERSION {
        return Err(corrupt(format!("unknown envelope version {}", header >> 4)));
    }
    let flags = header & 0x0f;
    let body_start = if flags & FLAG_ENCRYPTED != 0 {
        decrypt(keys, key, header, &mut stored, &corrupt)?
    } else {
        if keys.cipher().is_some() && expect != Some(Kind::Format) {
            return Err(corrupt("not encrypted, but this archive is".into()));
        }
        1
    };
    if flags & !FLAG_ENCRYPTED != 0 {
        return Err(corrupt(format!("unknown flags {flags:#x}")));
    }
    let kind_byte = stored[body_start] & 0x1f;
    let codec = stored[body_start] >> 5;
    let kind =
        Kind::from_u8(kind_byte).ok_or_else(|| corrupt(format!("unknown kind {kind_byte}")))?;
    if let Some(e) = expect {
        if e != kind {
            return Err(corrupt(format!("it holds a {} block", kind.name())));
        }
    }
    let payload = body_start + 1;
    let plain = match codec {
        0 => Plain {
            kind,
            buf: stored,
            start: payload,
        },
        1 => Plain {
            kind,
            buf: decompress(&stored[payload..], &corrupt)?,
            start: 0,
        },
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

/// Opens an encrypted block in place (step of [`open`]): authenticates and decrypts the body
/// behind the header and nonce, cuts off the tag, and returns where the body starts.
fn decrypt(
    keys: &Keys,
    key: &Key,
    header: u8,
    stored: &mut Vec<u8>,
    corrupt: &impl Fn(String) -> Error,
) -> Result<usize> {
    let Some(cipher) = keys.cipher() else {
        return Err(corrupt("encrypted, but this archive is not".into()));
    };
    if stored.len() < 1 + NONCE + TAG + 1 {
        return Err(corrupt(format!(
            "too short to be encrypted ({} bytes)",
            stored.len()
        )));
    }
    let mut nonce = [0u8; NONCE];
    nonce.copy_from_slice(&stored[1..1 + NONCE]);
    let plain = cipher
        .open(nonce, &aad(key, header), &mut stored[1 + NONCE..])
        .ok_or_else(|| {
            corrupt("authentication failed (altered, or stored under another key)".into())
        })?;
    stored.truncate(1 + NONCE + plain);
    Ok(1 + NONCE)
}

/// The plaintext of a zstd payload (step of [`open`]): `length:varint frame`, checked to
/// decompress to exactly `length` bytes of at most [`MAX_PLAIN`].
fn decompress(payload: &[u8], corrupt: &impl Fn(String) -> Error) -> Result<Vec<u8>> {
    let (size, used) =
        get_varint(payload).ok_or_else(|| corrupt("its plaintext length is malformed".into()))?;
    if size > MAX_PLAIN as u64 {
        return Err(corrupt(format!("claims {size} bytes of plaintext")));
    }
    let frame = &payload[used..];
    let mut out = Vec::with_capacity(size as usize);
    let r = DECOMPRESSOR.with(|d| -> std::io::Result<usize> {
        let mut d = d.borrow_mut();
        let dec = match &mut *d {
            Some(dec) => dec,
            slot => {
                let mut dec = zstd::bulk::Decompressor::new()?;
                dec.set_parameter(zstd::stream::raw::DParameter::Format(
                    zstd::zstd_safe::FrameFormat::Magicless,
                ))?;
                slot.insert(dec)
            }
        };
        dec.decompress_to_buffer(frame, &mut out)
    });
    let n = r.map_err(|e| corrupt(format!("zstd: {e}")))?;
    if n as u64 != size {
        return Err(corrupt(format!(
            "decompressed to {n} bytes instead of {size}"
        )));
    }
    Ok(out)
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
    let mut out = vec![VERSION << 4, Kind::Format as u8];
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
        // Any flipped byte is caught: by authentication when encrypted; otherwise the
        // plaintext either fails to decode or to hash to its key, or (a flip in the padding
        // bits of a zstd frame) decodes to the very same plaintext.
        for i in [0, 1, out.len() / 2, out.len() - 1] {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            match open(keys, &key, Some(Kind::Chunk), bad) {
                Err(_) => {}
                Ok(p) => {
                    assert!(keys.cipher().is_none(), "flip at {i} not caught");
                    assert_eq!(p.data(), data, "flip at {i} changed the plaintext");
                }
            }
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
    fn a_small_block_is_still_compressed_and_opens_on_a_thread_that_seals_large_ones_too() {
        // Below SMALL_BLOCK the literals are left as they are, but repeats still shrink it;
        // both compressors live on one thread, switched between block by block.
        let keys = Keys::from_master(&[5; 32], true);
        let small = b"title=Cello Suite; creator=Bach; ".repeat(20);
        let large = b"the same words again and again, ".repeat(200);
        assert!(small.len() < SMALL_BLOCK && large.len() > SMALL_BLOCK);
        for data in [&small, &large, &small] {
            let key = keys.key_of(Kind::Object as u8, data);
            let mut out = Vec::new();
            seal(
                &keys,
                Kind::Object,
                &key,
                data,
                Compression::Zstd(3),
                &mut out,
            )
            .unwrap();
            assert!(
                out.len() < data.len() / 4,
                "{} of {} bytes",
                out.len(),
                data.len()
            );
            let opened = open(&keys, &key, Some(Kind::Object), out).unwrap();
            assert_eq!(opened.data(), &data[..]);
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

    #[test]
    fn compressed_formats_are_recognised_by_their_first_bytes() {
        let gzip = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3];
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let jpeg = [0xff, 0xd8, 0xff, 0xe0, 0, 0x10, b'J', b'F', b'I', b'F'];
        let bzip2 = b"BZh91AY&SY\x12\x34";
        let mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0";
        let webp = b"RIFF\x10\0\0\0WEBPVP8 ";
        for head in [&gzip[..], png, &jpeg, bzip2, mp4, webp, b"\xfd7zXZ\0\0\x04"] {
            assert!(already_compressed(head), "{head:?}");
        }
        // Text, zip (which may store members uncompressed), a WAV, tar, and inputs too short
        // to tell are compressed as usual.
        let tar = [b"usr/share/doc/".as_slice(), &[0; 100]].concat();
        for head in [
            &b"#!/bin/sh\necho hello\n"[..],
            b"PK\x03\x04\x14\0\0\0\0\0",
            b"RIFF\x10\0\0\0WAVEfmt ",
            &tar,
            b"BZh9",
            b"\x1f\x8b",
            b"",
        ] {
            assert!(!already_compressed(head), "{head:?}");
        }
    }

    #[test]
    fn compressed_data_gets_the_fast_level_but_is_still_shrunk_when_it_can_be() {
        assert_eq!(
            Compression::Zstd(3).for_compressed_data(),
            Compression::Zstd(-1)
        );
        assert_eq!(
            Compression::Zstd(19).for_compressed_data(),
            Compression::Zstd(-1)
        );
        assert_eq!(
            Compression::Zstd(-5).for_compressed_data(),
            Compression::Zstd(-5)
        );
        assert_eq!(Compression::None.for_compressed_data(), Compression::None);
        // A "gzip" file that is really mostly zeros still shrinks at the fast level, and both
        // levels' blocks open on one thread whose compressors switch back and forth.
        let mut fake = vec![0x1f, 0x8b, 0x08];
        fake.resize(200_000, 0);
        let keys = Keys::from_master(&[4; 32], true);
        let key = keys.key_of(Kind::Chunk as u8, &fake);
        for comp in [
            Compression::Zstd(3),
            Compression::Zstd(3).for_compressed_data(),
        ] {
            let mut out = Vec::new();
            seal(&keys, Kind::Chunk, &key, &fake, comp, &mut out).unwrap();
            assert!(out.len() < 1000, "{comp:?}: {} bytes", out.len());
            assert_eq!(
                open(&keys, &key, Some(Kind::Chunk), out).unwrap().data(),
                &fake[..]
            );
        }
    }
}
