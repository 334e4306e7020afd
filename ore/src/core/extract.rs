//! Properties found in an imported file's contents (archival mode, docs/ARCHIVAL.md).
//!
//! A file is never trusted: what is read is bounded, and a file a parser cannot make sense
//! of simply gives no property. Well-kept crates do the reading, since each format's corners
//! are many and a hand-written parser would meet them one bug at a time: the MIME type comes
//! from the file's first bytes through `infer` (magic numbers of some two hundred formats), a
//! photo's EXIF through `kamadak-exif`, and an audio file's tags (ID3, Vorbis comments, MP4,
//! APE…) through `lofty`.
//!
//! Reading is bounded in time as well as in bytes. A tag reader that meets no tag where it
//! expects one searches the file for the next audio frame, and a crafted file of 200 MB of
//! false frame starts kept `lofty` busy for 88 s (measured). So the audio reader reads
//! through [`Budget`], which fails every read and seek once [`AUDIO_BUDGET`] has passed: the
//! parser gives up, the file is imported without its tags, and the import says so.
//!
//! Everything is read from one open file, which the caller has compared with what was
//! stored, so the properties describe the version in the archive. The type needs only the
//! first [`HEAD`] bytes, so a snapshot's own read can judge it ([`sniff`]) and spare
//! `ore import --each` opening every file again: only a type whose properties come from the
//! rest of the file ([`reads_contents`]) needs the file itself.

use crate::core::archival::Value;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// How much of a file the type is judged from.
pub const HEAD: usize = 8192;

/// How long an audio file's tags may take to read.
pub const AUDIO_BUDGET: Duration = Duration::from_secs(2);

/// Up to `len` bytes of `file` from its start, whatever its offset.
fn head(file: &File, len: usize) -> Option<Vec<u8>> {
    // The buffer starts no larger than the file says it is (a window of 1 MiB zeroed for
    // every icon of a few KiB was a tenth of a second of an `--each` of /usr/share), and
    // grows while there is more: a file may hold more than its size says (/proc, some FUSE
    // file systems) or have grown since.
    let size = file.metadata().map_or(0, |m| m.len());
    // One byte more than the size, so that the read that finds the end fits.
    let start = usize::try_from(size).map_or(len, |s| s.saturating_add(1));
    let mut buf = vec![0; start.min(len)];
    let mut n = 0;
    while n < len {
        if n == buf.len() {
            buf.resize(len.min(2 * n.max(4096)), 0);
        }
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(n);
    Some(buf)
}

/// The MIME type of `file` from its first bytes; `None` when it cannot be read or is of no
/// type `infer` knows.
pub fn mime(file: &File) -> Option<String> {
    sniff(&head(file, HEAD)?).map(str::to_string)
}

/// The MIME type of a file whose first bytes (up to [`HEAD`] of them) are `head`.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let head = &head[..head.len().min(HEAD)];
    infer::get(head)
        .map(|t| t.mime_type())
        .or_else(|| text(head).then_some("text/plain"))
}

/// Whether [`properties`] reads a file of type `mime`: only then is its contents needed
/// beyond its first bytes.
pub fn reads_contents(mime: Option<&str>) -> bool {
    mime.is_some_and(|m| m.starts_with("image/") || m.starts_with("audio/") || m == "video/mp4")
}

/// Whether `head`, the start of a file with no magic number, reads as text: UTF-8 (a
/// character cut at the end allowed) without NUL or other control bytes than layout ones.
/// Most files of a source tree or a documentation directory are such, and `type=text/plain`
/// should find them.
fn text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => head.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => return false,
    };
    !head.is_empty()
        && head[..valid]
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b))
}

/// What reading a file's contents found, and what stopped it short.
#[derive(Debug, Default)]
pub struct Found {
    pub props: Vec<(String, Value)>,
    /// Why some properties could not be read (the budget ran out).
    pub note: Option<String>,
}

/// How much of a photo is searched for its EXIF block (it sits near the start).
const EXIF_SCAN: usize = 1 << 20;

/// The properties a file's contents give, by what it is: a photo's date taken (`date`),
/// camera (`camera`) and position (`gps`, "latitude,longitude" in degrees); an audio file's
/// artist (`creator`), album, title, year (`date`) and track. Nothing for other files, or for
/// a file a parser refuses.
pub fn properties(file: &File, mime: Option<&str>) -> Found {
    if !reads_contents(mime) {
        return Found::default();
    }
    let mut found = match mime {
        Some(m) if m.starts_with("image/") => Found {
            props: photo(file),
            note: None,
        },
        Some(m) if m.starts_with("audio/") || m == "video/mp4" => audio(file, AUDIO_BUDGET),
        _ => Found::default(),
    };
    // What a file says is cut to what a property may hold (`archival::MAX_VALUE`).
    for (_, v) in &mut found.props {
        if let Value::Text(t) = v {
            let mut end = t.len().min(crate::core::archival::MAX_VALUE);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
        }
    }
    found
}

fn photo(file: &File) -> Vec<(String, Value)> {
    use exif::{In, Tag};
    // A bounded window of the file, so a crafted photo cannot make the reader take all of it.
    let Some(head) = head(file, EXIF_SCAN) else {
        return Vec::new();
    };
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(head)) else {
        return Vec::new();
    };
    let text = |tag| {
        exif.get_field(tag, In::PRIMARY)
            .map(|f| {
                f.display_value()
                    .to_string()
                    .trim_matches('"')
                    .trim()
                    .to_string()
            })
            .filter(|s| !s.is_empty())
    };
    let mut out = Vec::new();
    let taken = [Tag::DateTimeOriginal, Tag::DateTime]
        .into_iter()
        .find_map(|t| match &exif.get_field(t, In::PRIMARY)?.value {
            exif::Value::Ascii(v) => exif::DateTime::from_ascii(v.first()?).ok(),
            _ => None,
        });
    if let Some(t) = taken {
        let at = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        );
        if let Some(d) = crate::core::archival::parse_date(&at) {
            out.push(("date".into(), Value::Date(d)));
        }
    }
    let camera: Vec<String> = [Tag::Make, Tag::Model]
        .into_iter()
        .filter_map(text)
        .collect();
    if !camera.is_empty() {
        out.push(("camera".into(), Value::Text(camera.join(" "))));
    }
    let degrees = |tag, reference, negative: &str| {
        let exif::Value::Rational(r) = &exif.get_field(tag, In::PRIMARY)?.value else {
            return None;
        };
        let [d, m, s] = r.as_slice() else { return None };
        let v = d.to_f64() + m.to_f64() / 60.0 + s.to_f64() / 3600.0;
        let sign = match text(reference) {
            Some(r) if r.eq_ignore_ascii_case(negative) => -1.0,
            _ => 1.0,
        };
        v.is_finite().then_some(sign * v)
    };
    if let (Some(lat), Some(lon)) = (
        degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S"),
        degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W"),
    ) {
        out.push(("gps".into(), Value::Text(format!("{lat:.6},{lon:.6}"))));
    }
    out
}

/// An audio file's tags, read within `budget`.
pub fn audio(file: &File, budget: Duration) -> Found {
    use lofty::prelude::*;
    let Ok(mut own) = file.try_clone() else {
        return Found::default();
    };
    if own.rewind().is_err() {
        return Found::default();
    }
    let deadline = Instant::now() + budget;
    let reader = Budget {
        inner: std::io::BufReader::new(own),
        deadline,
    };
    // lofty bounds what it allocates for a tag (16 MiB by default), whatever the file says;
    // the audio properties (length, bit rate) are not read: nothing here keeps them.
    let options = lofty::config::ParseOptions::new().read_properties(false);
    let parsed = lofty::probe::Probe::new(reader)
        .options(options)
        .guess_file_type()
        .map_err(|_| ())
        .and_then(|p| p.read().map_err(|_| ()));
    let file = match parsed {
        Ok(f) => f,
        Err(_) if Instant::now() >= deadline => {
            return Found {
                props: Vec::new(),
                note: Some(format!(
                    "its audio tags were not read: reading them took over {} s (a damaged or crafted file?)",
                    budget.as_secs_f64()
                )),
            }
        }
        Err(_) => return Found::default(),
    };
    let Some(tag) = file.primary_tag().or_else(|| file.first_tag()) else {
        return Found::default();
    };
    let mut out = Vec::new();
    for (key, value) in [
        ("creator", tag.artist()),
        ("album", tag.album()),
        ("title", tag.title()),
    ] {
        if let Some(v) = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && !v.contains('\0'))
        {
            out.push((key.to_string(), Value::Text(v)));
        }
    }
    if let Some(d) = tag.date() {
        let at = format!(
            "{:04}-{:02}-{:02}",
            d.year,
            d.month.unwrap_or(1),
            d.day.unwrap_or(1)
        );
        if let Some(d) = crate::core::archival::parse_date(&at) {
            out.push(("date".into(), Value::Date(d)));
        }
    }
    if let Some(t) = tag.track() {
        out.push(("track".into(), Value::Int(i64::from(t))));
    }
    Found {
        props: out,
        note: None,
    }
}

/// A reader that fails once its deadline has passed: how a parser's time is bounded without
/// a thread left running.
struct Budget<R> {
    inner: R,
    deadline: Instant,
}

impl<R> Budget<R> {
    fn check(&self) -> std::io::Result<()> {
        match Instant::now() < self.deadline {
            true => Ok(()),
            false => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the time for reading this file's tags is up",
            )),
        }
    }
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Budget<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.check()?;
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::{head, text, File};

    #[test]
    fn a_head_is_read_whole_whatever_size_the_file_claims() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("f");
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let f = File::open(&path).expect("open");
        assert_eq!(head(&f, 1 << 20).as_deref(), Some(&bytes[..]));
        assert_eq!(head(&f, 100).as_deref(), Some(&bytes[..100]));
        assert_eq!(head(&f, 0).as_deref(), Some(&[][..]));
        // A file whose size says 0 but that holds more (as /proc's do, and some FUSE file
        // systems' files) is read to its end all the same.
        let proc = File::open("/proc/self/status").expect("open /proc/self/status");
        assert_eq!(proc.metadata().expect("metadata").len(), 0);
        let got = head(&proc, 1 << 20).expect("read");
        assert!(
            got.starts_with(b"Name:"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }

    #[test]
    fn text_without_a_magic_number_is_told_from_binary() {
        assert!(text(
            b"# README\n\nSome words, tabs\tand a form feed\x0c.\r\n"
        ));
        assert!(text("Größe: ☃\n".as_bytes()));
        // A character cut by the end of the head is still text.
        assert!(text(&"abc ☃".as_bytes()[..6]));
        assert!(!text(b""));
        assert!(!text(b"ELF\x00\x01\x02"));
        assert!(!text(b"\xff\xfe\x00a"));
        assert!(!text(b"text with a bell \x07"));
    }
}
