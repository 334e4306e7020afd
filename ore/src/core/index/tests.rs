use super::*;
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

/// Blocks in memory, named by their BLAKE3 hash, counting the nodes stored.
#[derive(Default)]
pub(crate) struct Memory {
    blocks: RefCell<HashMap<Key, (Kind, Vec<u8>)>>,
    stored: Cell<usize>,
}

impl Nodes for Memory {
    fn load(&self, key: Key, kind: Kind) -> Result<Vec<u8>> {
        match self.blocks.borrow().get(&key) {
            Some((k, plain)) if *k == kind => Ok(plain.clone()),
            Some((k, _)) => Err(corrupt(key, kind, format!("a {} block", k.name()))),
            None => Err(Error::Missing {
                key,
                kind: kind.name(),
            }),
        }
    }

    fn store(&self, kind: Kind, plain: Vec<u8>) -> Result<Key> {
        let key = Key(*blake3::hash(&plain).as_bytes());
        self.stored.set(self.stored.get() + 1);
        self.blocks.borrow_mut().insert(key, (kind, plain));
        Ok(key)
    }
}

impl Memory {
    /// Plants a node as it is given, however wrong.
    pub(crate) fn plant<T: serde::Serialize>(&self, kind: Kind, node: &T) -> Key {
        self.store(kind, encode(node)).expect("memory")
    }

    /// Plants a leaf of the entries `keys` (each valued `v`), in the order given.
    pub(crate) fn plant_leaf(&self, keys: &[&str]) -> Key {
        let items = keys.iter().map(|k| item(k)).collect();
        self.plant(Kind::IndexLeaf, &Leaf { items })
    }
}

fn all(m: &Memory, root: Option<&Root>) -> Vec<(Vec<u8>, Vec<u8>)> {
    Cursor::new(m, root, b"")
        .expect("cursor")
        .map(|r| r.map(|i| (i.key, i.value)).expect("entry"))
        .collect()
}

fn put(k: &str, v: &str) -> Change {
    (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
}

/// An index of `n` entries `k00000000`… made in one batch.
fn big(m: &Memory, n: usize) -> Root {
    let changes = (0..n)
        .map(|i| put(&format!("k{i:08}"), &format!("value of {i}")))
        .collect();
    apply(m, None, changes).expect("apply").expect("a root")
}

#[test]
fn an_index_of_many_entries_reads_back_in_order_and_checks_clean() {
    let m = Memory::default();
    let root = big(&m, 100_000);
    assert!(root.level >= 1, "{root:?}");
    assert_eq!(root.count, 100_000);
    let got = all(&m, Some(&root));
    assert_eq!(got.len(), 100_000);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(check(&m, &root), vec![]);
    // A scan from a key starts at it, or at the next one after it.
    let from: Vec<_> = Cursor::new(&m, Some(&root), b"k00050000x")
        .expect("cursor")
        .take(2)
        .map(|r| r.expect("entry").key)
        .collect();
    assert_eq!(from, vec![b"k00050001".to_vec(), b"k00050002".to_vec()]);
}

#[test]
fn one_more_entry_in_a_large_index_rewrites_one_leaf_and_the_nodes_above_it() {
    let m = Memory::default();
    let root = big(&m, 200_000);
    m.stored.set(0);
    let after = apply(&m, Some(&root), vec![put("k00123456x", "new")])
        .expect("apply")
        .expect("root");
    assert_eq!(after.count, 200_001);
    eprintln!(
        "one entry into 200,000 ({} levels): {} nodes stored",
        after.level + 1,
        m.stored.get()
    );
    assert!(
        m.stored.get() <= after.level as usize + 2,
        "{} nodes stored for one entry in an index of {} levels",
        m.stored.get(),
        after.level + 1
    );
    assert_eq!(check(&m, &after), vec![]);
}

#[test]
fn removing_every_entry_leaves_no_index_and_a_single_child_root_gives_way() {
    let m = Memory::default();
    let root = big(&m, 5_000);
    let gone = (0..4_999)
        .map(|i| (format!("k{i:08}").into_bytes(), None))
        .collect();
    let one = apply(&m, Some(&root), gone)
        .expect("apply")
        .expect("one entry left");
    assert_eq!((one.level, one.count), (0, 1), "the last leaf is the root");
    assert_eq!(
        apply(&m, Some(&one), vec![(b"k00004999".to_vec(), None)]).expect("apply"),
        None
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Batches of puts and removals, against a BTreeMap doing the same.
    #[test]
    fn batches_of_changes_give_what_a_sorted_map_gives(
        batches in prop::collection::vec(
            prop::collection::vec((0u32..3000, prop::option::of(0u32..1000)), 0..400),
            1..6,
        )
    ) {
        let m = Memory::default();
        let mut model = BTreeMap::new();
        let mut root = None;
        for batch in batches {
            let changes: Vec<Change> = batch
                .iter()
                .map(|(k, v)| (format!("{k:05}").into_bytes(), v.map(|v| vec![b'v'; v as usize])))
                .collect();
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
            root = apply(&m, root.as_ref(), changes).expect("apply");
            let want: Vec<_> = model.clone().into_iter().collect();
            prop_assert_eq!(all(&m, root.as_ref()), want);
            if let Some(r) = &root {
                prop_assert_eq!(r.count, model.len() as u64);
                prop_assert_eq!(check(&m, r), vec![]);
            }
        }
    }
}

proptest! {
    /// Keys that share long beginnings, end in zeros or are cut short: the order made from
    /// their first 16 bytes is the order of the bytes, and of one key the last change stays.
    #[test]
    fn changes_sort_as_their_bytes_and_the_last_of_a_key_stays(
        changes in prop::collection::vec(
            (prop::collection::vec(prop::sample::select(vec![0u8, 1, 255]), 0..24), any::<u8>()),
            0..300,
        )
    ) {
        let changes: Vec<Change> = (changes.into_iter())
            .map(|(mut k, v)| {
                // Most keys share their first 15 bytes, so the tie-break decides.
                if v % 2 == 0 {
                    k.splice(0..0, [7u8; 15]);
                }
                (k, Some(vec![v]))
            })
            .collect();
        let mut model = BTreeMap::new();
        for (k, v) in &changes {
            model.insert(k.clone(), v.clone());
        }
        let want: Vec<Change> = model.into_iter().collect();
        let refs = changes.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
        let got: Vec<Change> = (batch::sorted(refs).into_iter())
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_leaf_encoded_from_borrowed_entries_has_the_bytes_of_one_that_owns_them() {
    let items: Vec<Item> = ["a", "bb", "ccc"].iter().map(|k| item(k)).collect();
    let refs: Vec<ItemRef<'_>> = (items.iter())
        .map(|i| ItemRef {
            key: &i.key,
            value: &i.value,
        })
        .collect();
    let borrowed = encode(&LeafRef { items: &refs });
    assert_eq!(borrowed, encode(&Leaf { items }));
}

fn item(k: &str) -> Item {
    Item {
        key: k.as_bytes().to_vec(),
        value: b"v".to_vec(),
    }
}

#[test]
fn a_crafted_leaf_out_of_order_is_named_by_check_and_stops_a_scan() {
    let m = Memory::default();
    let leaf = m.plant(
        Kind::IndexLeaf,
        &Leaf {
            items: vec![item("b"), item("a")],
        },
    );
    let root = Root {
        node: leaf,
        level: 0,
        count: 2,
    };
    let problems = check(&m, &root);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].node, leaf);
    assert!(problems[0].what.contains("out of order"), "{}", problems[0]);
    assert!(Cursor::new(&m, Some(&root), b"").is_err());
}

#[test]
fn a_crafted_node_that_names_one_leaf_twice_is_found_and_a_scan_over_it_ends() {
    let m = Memory::default();
    let leaf = m.plant(
        Kind::IndexLeaf,
        &Leaf {
            items: vec![item("a"), item("b")],
        },
    );
    let child = |first: &str| Child {
        first: first.as_bytes().to_vec(),
        count: 2,
        node: leaf,
    };
    // Many children naming the same leaf: a scan must not give its keys again and again.
    let children = (0..1000)
        .map(|i| child(&format!("a{i:04}")))
        .collect::<Vec<_>>();
    let inner = m.plant(Kind::IndexInner, &Inner { level: 1, children });
    let root = Root {
        node: inner,
        level: 1,
        count: 2000,
    };
    let problems = check(&m, &root);
    assert!(
        problems
            .iter()
            .any(|p| p.node == leaf && p.what.contains("second time")),
        "{problems:?}"
    );
    let scanned: Vec<_> = Cursor::new(&m, Some(&root), b"").expect("cursor").collect();
    assert!(scanned.len() <= 3, "{} results", scanned.len());
    assert!(
        scanned.last().is_some_and(|r| r.is_err()),
        "the scan ends in an error"
    );
}

#[test]
fn a_crafted_child_at_the_wrong_level_or_missing_is_named_and_never_descended_for_ever() {
    let m = Memory::default();
    let leaf = m.plant(
        Kind::IndexLeaf,
        &Leaf {
            items: vec![item("a")],
        },
    );
    let missing = Key([7; 32]);
    // An inner node that claims level 5 under a root of level 2: the level must fall by one.
    let deep = m.plant(
        Kind::IndexInner,
        &Inner {
            level: 5,
            children: vec![Child {
                first: b"a".to_vec(),
                count: 1,
                node: leaf,
            }],
        },
    );
    let root_node = m.plant(
        Kind::IndexInner,
        &Inner {
            level: 2,
            children: vec![
                Child {
                    first: b"a".to_vec(),
                    count: 1,
                    node: deep,
                },
                Child {
                    first: b"m".to_vec(),
                    count: 1,
                    node: missing,
                },
            ],
        },
    );
    let problems = check(
        &m,
        &Root {
            node: root_node,
            level: 2,
            count: 2,
        },
    );
    assert!(
        problems
            .iter()
            .any(|p| p.node == deep && p.what.contains("at level 5 where 1 belongs")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.node == missing && p.what.contains("missing")),
        "{problems:?}"
    );
    // A root that claims more levels than any index may have is refused before any read.
    let too_deep = check(
        &m,
        &Root {
            node: root_node,
            level: 200,
            count: 2,
        },
    );
    assert!(too_deep[0].what.contains("levels"), "{too_deep:?}");
}

#[test]
fn a_crafted_summary_with_a_wrong_first_key_or_count_is_named() {
    let m = Memory::default();
    let a = m.plant(
        Kind::IndexLeaf,
        &Leaf {
            items: vec![item("a"), item("b")],
        },
    );
    let c = m.plant(
        Kind::IndexLeaf,
        &Leaf {
            items: vec![item("c")],
        },
    );
    let inner = m.plant(
        Kind::IndexInner,
        &Inner {
            level: 1,
            children: vec![
                Child {
                    first: b"a".to_vec(),
                    count: 5,
                    node: a,
                },
                Child {
                    first: b"bb".to_vec(),
                    count: 1,
                    node: c,
                },
            ],
        },
    );
    let problems = check(
        &m,
        &Root {
            node: inner,
            level: 1,
            count: 3,
        },
    );
    assert!(
        problems
            .iter()
            .any(|p| p.what.contains("holds 5 entries, but it holds 2")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.what.contains("first key is \"bb\", but it is \"c\"")),
        "{problems:?}"
    );
}

#[test]
fn an_entry_over_the_bounds_is_refused_and_nothing_is_stored() {
    let m = Memory::default();
    let e = apply(&m, None, vec![(vec![b'k'; MAX_KEY + 1], Some(vec![]))]).unwrap_err();
    assert!(e.to_string().contains("keys are at most"), "{e}");
    assert_eq!(m.stored.get(), 0);
}

#[test]
fn apply_shows_each_entry_it_overwrites_or_removes_as_it_was_and_no_other() {
    let m = Memory::default();
    let root = big(&m, 5_000);
    let mut seen = Vec::new();
    let changes = vec![
        put("k00000007", "new seven"),
        (b"k00004000".to_vec(), None),
        put("k00009999x", "a new key"),
        (b"not there".to_vec(), None),
    ];
    apply_seeing(&m, Some(&root), changes, &mut |i| {
        seen.push((i.key.clone(), i.value.clone()))
    })
    .expect("apply");
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (b"k00000007".to_vec(), b"value of 7".to_vec()),
            (b"k00004000".to_vec(), b"value of 4000".to_vec()),
        ]
    );
}
