//! Changes to an index packed into one buffer, and put in the order they are applied in.
//!
//! An import of 46,000 objects (`ore import --each` of /usr/share) makes some 590,000 index
//! changes at once. Held as that many pairs of vectors, each key in its own allocation made
//! on one thread and freed on another, they cost more than everything else filing does: the
//! allocator (half a CPU-second of allocating and freeing), and a sort and an encoding that
//! chase a pointer to a different part of the heap for every key. A [`Batch`] holds an
//! object's dozen changes back to back in one buffer, so that the whole import makes one
//! allocation per object, and the sort and the leaves read keys that lie together
//! (docs/BENCHMARKS.md, "Filing from packed changes").
//!
//! [`sorted`] is the one place changes are put in order: by key, and of several changes of one
//! key only the last, which is the one applied.

/// A change seen in place: a key, and the value it puts (`None`: the key is removed).
pub(super) type Ref<'a> = (&'a [u8], Option<&'a [u8]>);

/// Changes in the order they were made, packed into one buffer.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// Where a change lies in a batch's buffer: its key, then its value.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    key: usize,
    /// The value's length; `None` for a removal.
    value: Option<usize>,
}

impl Batch {
    /// An empty batch with room for `changes` changes of `bytes` bytes in all.
    pub fn with_capacity(changes: usize, bytes: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(changes),
        }
    }

    /// Puts `key` with `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.push(key, Some(value));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.push(key, None);
    }

    /// Puts or removes `key`.
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        if let Some(v) = value {
            self.bytes.extend_from_slice(v);
        }
        self.spans.push(Span {
            start,
            key: key.len(),
            value: value.map(<[u8]>::len),
        });
    }

    /// How many changes the batch holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The changes, in the order they were made.
    pub fn iter(&self) -> impl Iterator<Item = Ref<'_>> + '_ {
        self.spans.iter().map(|s| {
            let key = &self.bytes[s.start..s.start + s.key];
            let value = s.value.map(|n| {
                let at = s.start + s.key;
                &self.bytes[at..at + n]
            });
            (key, value)
        })
    }
}

/// `changes` sorted by key, with only the last of those with one key (the one applied).
pub(super) fn sorted(changes: Vec<Ref<'_>>) -> Vec<Ref<'_>> {
    use rayon::prelude::*;
    // Sorted as each key's first 16 bytes and its place, the keys themselves compared only
    // where those bytes are equal (many keys share them: every `type` property's entry
    // begins the same). Of equal keys the later is last (the place is the tie-break).
    let mut order: Vec<(u128, usize)> = (changes.par_iter().enumerate())
        .map(|(i, (key, _))| (prefix(key), i))
        .collect();
    order.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| changes[a.1].0.cmp(changes[b.1].0))
            .then(a.1.cmp(&b.1))
    });
    // Of a run of one key, only the last is kept.
    let mut out = Vec::with_capacity(order.len());
    for w in 0..order.len() {
        let (p, i) = order[w];
        let replaced =
            (order.get(w + 1)).is_some_and(|&(q, j)| q == p && changes[i].0 == changes[j].0);
        if !replaced {
            out.push(changes[i]);
        }
    }
    out
}

/// A key's first 16 bytes as a number that orders as they do (zeros after a shorter key,
/// which then orders by its bytes alone only when the numbers are equal).
fn prefix(key: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = key.len().min(16);
    b[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_its_changes_in_the_order_they_were_made() {
        let mut b = Batch::default();
        b.put(b"k2", b"two");
        b.remove(b"k1");
        b.put(b"", b"");
        b.put(b"k3", b"");
        let got: Vec<Ref<'_>> = b.iter().collect();
        assert_eq!(
            got,
            vec![
                (&b"k2"[..], Some(&b"two"[..])),
                (&b"k1"[..], None),
                (&b""[..], Some(&b""[..])),
                (&b"k3"[..], Some(&b""[..])),
            ]
        );
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn of_several_changes_of_one_key_the_sort_keeps_the_last() {
        // Keys that share their first 16 bytes are told apart by the rest.
        let long_a = b"pppppppppppppppp-a".to_vec();
        let long_b = b"pppppppppppppppp-b".to_vec();
        let changes: Vec<Ref<'_>> = vec![
            (&long_b[..], Some(&b"1"[..])),
            (&b"k"[..], Some(&b"first"[..])),
            (&long_a[..], None),
            (&b"k"[..], None),
            (&long_b[..], Some(&b"2"[..])),
            (&b""[..], Some(&b"empty"[..])),
        ];
        let got = sorted(changes);
        assert_eq!(
            got,
            vec![
                (&b""[..], Some(&b"empty"[..])),
                (&b"k"[..], None),
                (&long_a[..], None),
                (&long_b[..], Some(&b"2"[..])),
            ]
        );
    }
}
