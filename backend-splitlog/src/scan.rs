//! Reading a log file record by record, for recovery after a crash, `reindex` and `verify`.
//!
//! The scanner trusts nothing: a record is only reported as sound when its header checksum and
//! its payload checksum both hold. A damaged payload under a sound header is skipped exactly; a
//! damaged header makes the scanner search forward for the next sound header. What cannot be
//! completed at the end of the file — a short header, a payload cut off, damage with nothing
//! sound after it — is a torn tail: the remains of a write the crash interrupted.

use crate::record::{Header, RecordType, HEADER_LEN, MAGIC};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// One step of a scan.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A sound record at `offset`; the payload is included when the scanner was asked to read
    /// payloads.
    Record {
        offset: u64,
        header: Header,
        payload: Option<Vec<u8>>,
    },
    /// Damaged bytes from `offset` up to `next`, where scanning resumes. `kind` is what the
    /// record was when its header is sound (only its payload is damaged); `None` when the
    /// header itself is damaged, so the bytes may have been any record.
    Corrupt {
        offset: u64,
        next: u64,
        reason: &'static str,
        kind: Option<RecordType>,
    },
    /// Nothing sound from `offset` to the end of the file.
    TornTail { offset: u64 },
}

/// Scans one log file from a starting offset.
pub struct Scanner<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    keep_payloads: bool,
    done: bool,
}

impl<'a> Scanner<'a> {
    /// Scans `file` from `start` to its current length. With `keep_payloads`, sound records
    /// carry their payload (payloads are always read to check them).
    pub fn new(file: &'a File, start: u64, keep_payloads: bool) -> io::Result<Scanner<'a>> {
        let end = file.metadata()?.len();
        Ok(Scanner {
            file,
            pos: start,
            end,
            keep_payloads,
            done: start >= end,
        })
    }

    fn header_at(&self, offset: u64) -> io::Result<Option<Header>> {
        if offset + HEADER_LEN as u64 > self.end {
            return Ok(None);
        }
        let mut h = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut h, offset)?;
        Ok(Header::decode(&h))
    }

    /// The next offset after `from` where a sound header starts, if any.
    fn resync(&self, from: u64) -> io::Result<Option<u64>> {
        let mut buf = vec![0u8; 1 << 16];
        let mut base = from;
        while base < self.end {
            let n = ((self.end - base) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..n], base)?;
            let mut i = 0;
            while i + MAGIC.len() <= n {
                if buf[i..i + MAGIC.len()] == MAGIC {
                    let at = base + i as u64;
                    if let Some(h) = self.header_at(at)? {
                        if at + h.record_len() <= self.end {
                            return Ok(Some(at));
                        }
                    }
                }
                i += 1;
            }
            // Overlap so a magic split across two reads is still seen.
            base += (n.saturating_sub(MAGIC.len() - 1)).max(1) as u64;
        }
        Ok(None)
    }

    fn step(&mut self) -> io::Result<Item> {
        let offset = self.pos;
        let Some(header) = self.header_at(offset)? else {
            if offset + HEADER_LEN as u64 > self.end {
                self.done = true;
                return Ok(Item::TornTail { offset });
            }
            return Ok(match self.resync(offset + 1)? {
                Some(next) => {
                    self.pos = next;
                    Item::Corrupt {
                        offset,
                        next,
                        reason: "damaged record header",
                        kind: None,
                    }
                }
                None => {
                    self.done = true;
                    Item::TornTail { offset }
                }
            });
        };
        let next = offset + header.record_len();
        if next > self.end {
            self.done = true;
            return Ok(Item::TornTail { offset });
        }
        let mut payload = vec![0u8; header.len as usize];
        self.file
            .read_exact_at(&mut payload, offset + HEADER_LEN as u64)?;
        self.pos = next;
        if !header.payload_ok(&payload) {
            return Ok(Item::Corrupt {
                offset,
                next,
                reason: "payload checksum mismatch",
                kind: Some(header.kind),
            });
        }
        Ok(Item::Record {
            offset,
            header,
            payload: self.keep_payloads.then_some(payload),
        })
    }
}

impl Iterator for Scanner<'_> {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<io::Result<Item>> {
        if self.done || self.pos >= self.end {
            return None;
        }
        let r = self.step();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(key: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Header::new(RecordType::Block, [key; 32], payload)
            .encode()
            .to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn scan(bytes: &[u8]) -> Vec<Item> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        Scanner::new(&f, 0, true)
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn keys(items: &[Item]) -> Vec<u8> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Record { header, .. } => Some(header.key[0]),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sound_records_and_a_torn_tail() {
        let mut log = record(1, b"one");
        log.extend(record(2, b"two"));
        let whole = log.len();
        log.extend(&record(3, b"three")[..30]);
        let items = scan(&log);
        assert_eq!(keys(&items), [1, 2]);
        assert_eq!(
            items[2],
            Item::TornTail {
                offset: whole as u64
            }
        );
    }

    #[test]
    fn damaged_payload_is_skipped_exactly() {
        let mut log = record(1, b"one");
        let at = log.len();
        log.extend(record(2, b"two"));
        log.extend(record(3, b"three"));
        log[at + HEADER_LEN] ^= 1;
        let items = scan(&log);
        assert_eq!(keys(&items), [1, 3]);
        assert!(matches!(
            items[1],
            Item::Corrupt {
                reason: "payload checksum mismatch",
                ..
            }
        ));
    }

    #[test]
    fn damaged_header_resyncs_to_the_next_record() {
        let mut log = record(1, b"one");
        let at = log.len();
        log.extend(record(2, &[9u8; 1000]));
        let third = log.len();
        log.extend(record(3, b"three"));
        log[at + 9] ^= 0xff; // the length field
        let items = scan(&log);
        assert_eq!(keys(&items), [1, 3]);
        assert_eq!(
            items[1],
            Item::Corrupt {
                offset: at as u64,
                next: third as u64,
                reason: "damaged record header",
                kind: None,
            }
        );
    }

    #[test]
    fn damage_with_nothing_sound_after_it_is_a_torn_tail() {
        let mut log = record(1, b"one");
        let at = log.len();
        log.extend(record(2, b"two"));
        log[at + 2] = 0;
        let items = scan(&log);
        assert_eq!(keys(&items), [1]);
        assert_eq!(items[1], Item::TornTail { offset: at as u64 });
    }
}
