//! The record format of splitlog's log files.
//!
//! A log file is nothing but records, one after another. Every record describes itself — magic,
//! type, key, payload length and checksums — so the logs alone are enough to rebuild the whole
//! index, and a damaged record is recognised without the archive's encryption key. The header
//! carries its own checksum so that a damaged header is told apart from a damaged payload: with a
//! sound header the scanner can step over a bad payload exactly; with a damaged header it
//! searches forward for the next sound header.
//!
//! Layout (integers little-endian), 49 header bytes then the payload:
//!
//! ```text
//!  0  magic          4  "OSL" 0x02
//!  4  type           1  1 block, 2 tag set, 3 tag removed, 4 block removed, 5 setting,
//!                       6 tag value kept (history only: the tag is not changed),
//!                       7 block stored by a restricted connection, 8 block vouched for
//!  5  payload length 4
//!  9  payload crc32  4  CRC-32 (IEEE) of the payload
//! 13  key           32  block key; zero for tag and setting records
//! 45  header crc32   4  CRC-32 of bytes 0..45
//! 49  payload
//! ```
//!
//! Nothing is padded: the header is paid once per block, and blocks are many and small.
//!
//! Payloads: a block record holds the block's bytes; a removal record is empty (the key says
//! which block); tag, kept-value and setting records hold `name length (u16) | name | value`.
//! A kept-value record is what compaction writes for a value the tag no longer holds but its
//! history keeps (see `protocol::history`), so that a reindex finds the same history.
//! Records 7 and 8 are empty; their key names the block. A restricted connection's put writes
//! a 7 just before the block record (both in one write), so no crash keeps the block without
//! it; the owner's `vouch` writes an 8 (see `protocol::provenance`).

/// The four magic bytes that start every record.
pub const MAGIC: [u8; 4] = *b"OSL\x02";
/// Bytes in a record header.
pub const HEADER_LEN: usize = 49;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    Block = 1,
    TagSet = 2,
    TagRemoved = 3,
    BlockRemoved = 4,
    Setting = 5,
    TagKept = 6,
    Unvouched = 7,
    Vouched = 8,
}

impl RecordType {
    fn from_u8(b: u8) -> Option<RecordType> {
        Some(match b {
            1 => RecordType::Block,
            2 => RecordType::TagSet,
            3 => RecordType::TagRemoved,
            4 => RecordType::BlockRemoved,
            5 => RecordType::Setting,
            6 => RecordType::TagKept,
            7 => RecordType::Unvouched,
            8 => RecordType::Vouched,
            _ => return None,
        })
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: RecordType,
    pub len: u32,
    pub payload_crc: u32,
    pub key: [u8; 32],
}

impl Header {
    /// The header for `payload`.
    pub fn new(kind: RecordType, key: [u8; 32], payload: &[u8]) -> Header {
        Header {
            kind,
            len: payload.len() as u32,
            payload_crc: crc32fast::hash(payload),
            key,
        }
    }

    /// The 49 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = self.kind as u8;
        h[5..9].copy_from_slice(&self.len.to_le_bytes());
        h[9..13].copy_from_slice(&self.payload_crc.to_le_bytes());
        h[13..45].copy_from_slice(&self.key);
        let crc = crc32fast::hash(&h[..45]);
        h[45..49].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header; `None` when the magic, the checksum or the type is wrong.
    pub fn decode(h: &[u8; HEADER_LEN]) -> Option<Header> {
        if h[..4] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes([h[45], h[46], h[47], h[48]]);
        if crc32fast::hash(&h[..45]) != crc {
            return None;
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&h[13..45]);
        Some(Header {
            kind: RecordType::from_u8(h[4])?,
            len: u32::from_le_bytes([h[5], h[6], h[7], h[8]]),
            payload_crc: u32::from_le_bytes([h[9], h[10], h[11], h[12]]),
            key,
        })
    }

    /// Bytes the whole record takes in the log.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// Whether `payload` is what this header describes.
    pub fn payload_ok(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize && crc32fast::hash(payload) == self.payload_crc
    }
}

/// Payload of a tag or setting record: `name length (u16) | name | value`.
pub fn named_payload(name: &str, value: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + name.len() + value.len());
    p.extend_from_slice(&(name.len() as u16).to_le_bytes());
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(value);
    p
}

/// Splits a tag or setting payload into name and value; `None` when malformed.
pub fn parse_named(payload: &[u8]) -> Option<(String, Vec<u8>)> {
    let n = u16::from_le_bytes([*payload.first()?, *payload.get(1)?]) as usize;
    let name = payload.get(2..2 + n)?;
    let name = String::from_utf8(name.to_vec()).ok()?;
    Some((name, payload[2 + n..].to_vec()))
}

/// Largest damaged payload [`repair_named`] tries (tag and setting payloads are a few hundred
/// bytes; each byte costs 255 checksums of the whole payload).
pub const REPAIR_MAX: usize = 512;

/// The one payload that differs from `damaged` in a single byte, matches `header`'s checksum and
/// reads as a name and a value, when there is exactly one: the record as it was written, as
/// surely as a 32-bit checksum can say (of the ~10⁵ readings tried, a wrong one matches by
/// chance about once in 4·10⁴ damaged records, and must then also read as a name and value).
/// `None` for anything else — more damage, a payload too long to try, two readings.
pub fn repair_named(header: &Header, damaged: &[u8]) -> Option<Vec<u8>> {
    if damaged.len() != header.len as usize || damaged.len() > REPAIR_MAX {
        return None;
    }
    let mut p = damaged.to_vec();
    let mut found = None;
    for i in 0..p.len() {
        let was = p[i];
        for v in (0..=255u8).filter(|&v| v != was) {
            p[i] = v;
            if crc32fast::hash(&p) == header.payload_crc && parse_named(&p).is_some() {
                if found.is_some() {
                    return None;
                }
                found = Some(p.clone());
            }
        }
        p[i] = was;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = Header::new(RecordType::Block, [7; 32], b"payload");
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes), Some(h));
        assert!(h.payload_ok(b"payload"));
        assert!(!h.payload_ok(b"paylOad"));
        for i in 0..HEADER_LEN {
            let mut b = bytes;
            b[i] ^= 0x10;
            assert_eq!(Header::decode(&b), None, "a flipped bit at {i} is caught");
        }
    }

    #[test]
    fn a_tag_payload_with_one_wrong_byte_is_read_back_and_more_damage_is_not() {
        let good = named_payload("home", b"3fa9c1d2e4b5");
        let h = Header::new(RecordType::TagSet, [0; 32], &good);
        let mut bad = good.clone();
        bad[9] ^= 0x5a;
        assert_eq!(repair_named(&h, &bad), Some(good.clone()));
        bad[3] ^= 0x01;
        assert_eq!(repair_named(&h, &bad), None);
    }

    #[test]
    fn named_payloads() {
        let p = named_payload("home", b"\x00\x01value");
        assert_eq!(
            parse_named(&p),
            Some(("home".into(), b"\x00\x01value".to_vec()))
        );
        assert_eq!(parse_named(&[5, 0, b'a']), None);
        assert_eq!(parse_named(&[]), None);
    }
}
