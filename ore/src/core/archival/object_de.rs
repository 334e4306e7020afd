//! Reading an archive object of either layout: format 5 added `files` and `catalogue` after
//! `size` (FORMAT.md §12), and an archive upgraded from format 4 keeps its format-4 objects as
//! they were stored. Postcard writes a struct as its fields one after the other, with no
//! count, so a format-4 object is exactly a format-5 one that ends after `size`: the fields
//! are read in order, and an end there (and only there) reads as no files and no catalogue.

use super::Object;
use serde::de::{self, SeqAccess, Visitor};

const FIELDS: &[&str] = &[
    "root",
    "props",
    "imported_ns",
    "host",
    "user",
    "source",
    "parent",
    "size",
    "files",
    "catalogue",
];

pub(super) fn read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
    d.deserialize_struct("Object", FIELDS, ObjectVisitor)
}

struct ObjectVisitor;

/// `source` as postcard writes it (`serde_bytes`).
#[derive(serde::Deserialize)]
struct Bytes(#[serde(with = "serde_bytes")] Vec<u8>);

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an archive object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Object, A::Error> {
        fn need<'de, T: serde::Deserialize<'de>, A: SeqAccess<'de>>(
            s: &mut A,
            i: usize,
        ) -> Result<T, A::Error> {
            s.next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &"the fields of an archive object"))
        }
        let root = need(&mut s, 0)?;
        let props = need(&mut s, 1)?;
        let imported_ns = need(&mut s, 2)?;
        let host = need(&mut s, 3)?;
        let user = need(&mut s, 4)?;
        let source: Bytes = need(&mut s, 5)?;
        let parent = need(&mut s, 6)?;
        let size = need(&mut s, 7)?;
        // Format 4 ended here. Serde cannot tell an end here from bytes cut inside `files`,
        // but a block is authenticated before it is decoded: only someone holding the keys
        // could store a cut one, and it would read as an object listing no files.
        let (files, catalogue) = match s.next_element() {
            Ok(Some(files)) => (files, need(&mut s, 9)?),
            Ok(None) | Err(_) => (Default::default(), None),
        };
        Ok(Object {
            root,
            props,
            imported_ns,
            host,
            user,
            source: source.0,
            parent,
            size,
            files,
            catalogue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::entry::{encode, Entry, EntryKind};

    /// An object as format 4 stored it.
    #[derive(serde::Serialize)]
    struct Format4 {
        root: Entry,
        props: Vec<super::super::Prop>,
        imported_ns: i64,
        host: String,
        user: String,
        #[serde(with = "serde_bytes")]
        source: Vec<u8>,
        parent: Option<protocol::Key>,
        size: u64,
    }

    #[test]
    fn an_object_of_format_4_reads_as_one_without_files_and_one_of_format_5_reads_whole() {
        let root = Entry::made_now(Vec::new(), EntryKind::Fifo, 0o644);
        let old = Format4 {
            root: root.clone(),
            props: Vec::new(),
            imported_ns: 7,
            host: "h".into(),
            user: "u".into(),
            source: b"/x".to_vec(),
            parent: Some(protocol::Key([3; 32])),
            size: 9,
        };
        let o: Object = postcard::from_bytes(&encode(&old)).expect("format 4");
        assert_eq!(
            (o.size, o.parent, o.source.as_slice()),
            (9, old.parent, &b"/x"[..])
        );
        assert_eq!(o.files, crate::core::filelist::Files::default());
        assert!(o.catalogue.is_none());
        let mut new = o.clone();
        new.files = crate::core::filelist::Files::Inline(vec![crate::core::filelist::FileRef {
            path: b"f".to_vec(),
            size: 1,
            id: None,
        }]);
        new.catalogue = Some(Default::default());
        let back: Object = postcard::from_bytes(&encode(&new)).expect("format 5");
        assert_eq!(back.files, new.files);
        assert_eq!(back.catalogue, new.catalogue);
        // One cut short after its files is refused.
        let bytes = encode(&new);
        assert!(postcard::from_bytes::<Object>(&bytes[..bytes.len() - 3]).is_err());
    }
}
