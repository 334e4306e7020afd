//! Fuzzes the stored-block decoder (`ore::core::block::open`, FORMAT.md §2) with arbitrary stored
//! bytes under a fixed key set, encrypted or not: no input may panic or allocate more than a
//! block's plaintext limit, and whatever opens must hash to the key it was read under. The
//! first byte picks the mode; in the last mode the rest is sealed as a plaintext and must open
//! to the same bytes (seal and open agree for every kind and codec).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ore::core::block::{format_key, open, seal, seal_format, Compression, Kind};
use ore::core::crypto::Keys;
use protocol::Key;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = Keys::from_master(&[7; 32], mode & 1 == 1);
    let kind = Kind::from_u8(1 + (mode >> 4) % 8).unwrap_or(Kind::Chunk);
    // A format record's key is an unkeyed hash (FORMAT.md §3); every other kind's is keyed.
    let key_of = |kind: Kind, data: &[u8]| match kind {
        Kind::Format => format_key(data),
        _ => keys.key_of(kind as u8, data),
    };
    match mode >> 1 & 3 {
        // Arbitrary stored bytes under a key taken from the input.
        0 | 1 if rest.len() >= 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&rest[..32]);
            let expect = (mode & 2 == 0).then_some(kind);
            if let Ok(p) = open(&keys, &Key(key), expect, rest[32..].to_vec()) {
                assert_eq!(key_of(p.kind, p.data()), Key(key));
            }
        }
        // Arbitrary stored bytes under the key they would have if they were the plaintext:
        // reaches the checks after decryption more often than a random key would.
        2 => {
            let key = key_of(kind, rest);
            let _ = open(&keys, &key, Some(kind), rest.to_vec());
        }
        // A round trip.
        _ if kind == Kind::Format => {
            let (key, stored) = seal_format(rest);
            let p = open(&keys, &key, Some(kind), stored).expect("a sealed record opens");
            assert_eq!(p.data(), rest);
        }
        _ => {
            let key = keys.key_of(kind as u8, rest);
            let mut stored = Vec::new();
            let comp = if mode & 0x80 != 0 {
                Compression::Zstd(3)
            } else {
                Compression::None
            };
            seal(&keys, kind, &key, rest, comp, &mut stored).expect("sealing succeeds");
            let p = open(&keys, &key, Some(kind), stored).expect("a sealed block opens");
            assert_eq!(p.data(), rest);
        }
    }
});
