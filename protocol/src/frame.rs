//! The frame codec: the only way bytes cross a backend connection.
//!
//! A frame is a 5-byte header — body length (u32, little-endian) and a kind byte — followed by
//! the body. The length is checked against a limit before a single byte of the body is
//! allocated, so a hostile or broken peer cannot make us reserve gigabytes. End of stream exactly
//! between frames is a clean close (`Ok(None)`); end of stream anywhere inside a frame is a torn
//! frame and an error, because it means the peer died mid-message.

use crate::error::{Error, Result};
use std::io::{self, Read, Write};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 5;

/// The largest block any backend may advertise (64 MiB).
pub const MAX_BLOCK_LIMIT: u32 = 64 << 20;

/// The largest frame body either side accepts: the largest block plus room for its key and the
/// small fields of any message. Frames above this are refused without reading them.
pub const MAX_FRAME_BODY: u32 = MAX_BLOCK_LIMIT + 64 * 1024;

/// How much of a frame body is allocated before any of it has arrived.
const FIRST_READ_STEP: usize = 8 << 20;
/// The largest step by which a body buffer grows while it is read.
const MAX_READ_STEP: usize = 32 << 20;

/// The 8 bytes each side sends before its first frame. The high byte and the CR LF / ^Z / LF tail
/// catch a peer that is not speaking this protocol, and a channel that mangles line endings.
pub const MAGIC: [u8; 8] = *b"\x8fORE\r\n\x1a\n";

/// One frame: a kind byte and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub body: Vec<u8>,
}

/// Reads one frame. `Ok(None)` is a clean close (end of stream before the first header byte).
pub fn read_frame<R: Read>(r: &mut R, max_body: u32) -> Result<Option<Frame>> {
    let mut header = [0u8; HEADER_LEN];
    // Read the first byte separately so that EOF here is a clean close.
    loop {
        match r.read(&mut header[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading a frame header", e)),
        }
    }
    read_exact_or_torn(r, &mut header[1..], "header")?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let kind = header[4];
    if len > max_body {
        return Err(Error::Protocol(format!(
            "frame of kind {kind:#04x} claims {len} bytes, more than the limit of {max_body}"
        )));
    }
    // Memory grows with the bytes that actually arrive, never with what the header claims: a
    // peer that announces 64 MiB and sends nothing costs at most the first step. Each step is
    // one large read_exact, so a big body does not wake the writing peer for every small chunk.
    let len = len as usize;
    let mut body = Vec::new();
    while body.len() < len {
        let start = body.len();
        let step = if start == 0 {
            FIRST_READ_STEP
        } else {
            start.min(MAX_READ_STEP)
        };
        let end = len.min(start + step);
        body.resize(end, 0);
        read_exact_or_torn(r, &mut body[start..], "body")?;
    }
    Ok(Some(Frame { kind, body }))
}

fn read_exact_or_torn<R: Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Protocol(format!(
                "torn frame: the stream ended inside a frame {what}"
            ))
        } else {
            Error::io(format!("reading a frame {what}"), e)
        }
    })
}

/// Writes one frame made of `parts` (concatenated as the body), without flushing.
pub fn write_frame<W: Write>(w: &mut W, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_FRAME_BODY)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame body of {len} bytes is over the limit of {MAX_FRAME_BODY}"),
            )
        })?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4] = kind;
    w.write_all(&header)?;
    for p in parts {
        w.write_all(p)?;
    }
    Ok(())
}

/// Reads the peer's magic, describing what arrived instead when it is wrong.
pub fn read_magic<R: Read>(r: &mut R) -> Result<()> {
    let mut got = Vec::with_capacity(MAGIC.len());
    let mut byte = [0u8; 1];
    while got.len() < MAGIC.len() {
        match r.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                got.push(byte[0]);
                if got[got.len() - 1] != MAGIC[got.len() - 1] {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading the protocol greeting", e)),
        }
    }
    if got == MAGIC {
        return Ok(());
    }
    if got.is_empty() {
        return Err(Error::Protocol(
            "the peer closed the connection before its greeting".into(),
        ));
    }
    // Show a little of what arrived, which is usually a usage message or a shell error.
    let mut sample = got.clone();
    let mut rest = [0u8; 72];
    if got.last() != MAGIC.get(got.len() - 1) {
        if let Ok(n) = r.read(&mut rest) {
            sample.extend_from_slice(&rest[..n]);
        }
    }
    Err(Error::Protocol(format!(
        "the peer does not speak the Ore protocol: it sent {:?} instead of the greeting",
        String::from_utf8_lossy(&sample)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 7, &[b"ab", b"cd"]).unwrap();
        write_frame(&mut buf, 9, &[]).unwrap();
        assert_eq!(&buf[..5], &[4, 0, 0, 0, 7]);
        let mut r = &buf[..];
        let f = read_frame(&mut r, 100).unwrap().unwrap();
        assert_eq!((f.kind, &f.body[..]), (7, &b"abcd"[..]));
        let f = read_frame(&mut r, 100).unwrap().unwrap();
        assert_eq!((f.kind, f.body.len()), (9, 0));
        assert!(read_frame(&mut r, 100).unwrap().is_none());
    }

    #[test]
    fn torn_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 7, &[b"abcdef"]).unwrap();
        for cut in 1..buf.len() {
            let mut r = &buf[..cut];
            let err = read_frame(&mut r, 100).unwrap_err();
            assert!(err.to_string().contains("torn frame"), "{err}");
        }
    }

    #[test]
    fn large_bodies_read_in_steps_come_back_whole() {
        let body: Vec<u8> = (0..(20 << 20)).map(|i| (i % 251) as u8).collect();
        let mut buf = Vec::new();
        write_frame(&mut buf, 3, &[&body]).unwrap();
        let f = read_frame(&mut &buf[..], MAX_FRAME_BODY).unwrap().unwrap();
        assert!(f.body == body);
        let err = read_frame(&mut &buf[..buf.len() - 1], MAX_FRAME_BODY).unwrap_err();
        assert!(err.to_string().contains("torn"), "{err}");
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        // Claims 4 GiB - 1: must fail on the length, not try to allocate or read it.
        let buf = [0xff, 0xff, 0xff, 0xff, 1];
        let err = read_frame(&mut &buf[..], MAX_FRAME_BODY).unwrap_err();
        assert!(err.to_string().contains("more than the limit"), "{err}");
    }

    #[test]
    fn magic_mismatch_shows_what_arrived() {
        let err = read_magic(&mut &b"Usage: backend-fs DIR\n"[..]).unwrap_err();
        assert!(err.to_string().contains("Usage: backend-fs"), "{err}");
        let err = read_magic(&mut &b""[..]).unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        read_magic(&mut &MAGIC[..]).unwrap();
    }
}
