//! Fuzzes the decoders of what blocks hold (FORMAT.md §4–6): directory leaves and index nodes,
//! file index leaves and nodes, and snapshots, with the checks every reader relies on (names,
//! hard-link targets, order). The input is sealed as a block of the kind its first byte picks
//! and opened again, then decoded the way `ore` decodes blocks it reads. No input may panic;
//! whatever decodes must have passed the checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ore::core::block::{open, seal, Compression, Kind};
use ore::core::crypto::Keys;
use ore::core::entry::{check_entry, check_root, decode, Snapshot};
use ore::core::tree::{decode_node, DirTree, FileTree, Node};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = Keys::from_master(&[7; 32], false);
    let kind = match mode % 5 {
        0 => Kind::Dir,
        1 => Kind::DirIndex,
        2 => Kind::FileLeaf,
        3 => Kind::FileIndex,
        _ => Kind::Snapshot,
    };
    let key = keys.key_of(kind as u8, rest);
    let mut stored = Vec::new();
    seal(&keys, kind, &key, rest, Compression::None, &mut stored).expect("sealing succeeds");
    let plain = open(&keys, &key, Some(kind), stored).expect("a sealed block opens");
    match kind {
        Kind::Dir | Kind::DirIndex => {
            if let Ok(Node::Leaf(items)) = decode_node::<DirTree>(&plain, key) {
                for (i, e) in items.iter().enumerate() {
                    assert!(check_entry(e).is_ok());
                    assert!(i == 0 || items[i - 1].name < e.name);
                }
            }
        }
        Kind::FileLeaf | Kind::FileIndex => {
            let _ = decode_node::<FileTree>(&plain, key);
        }
        _ => {
            if let Ok(s) = decode::<Snapshot>(plain.data(), &key, kind) {
                assert!(check_root(&s.root).is_ok());
            }
        }
    }
});
