//! Properties found in an imported file's contents (archival mode, docs/ARCHIVAL.md).
//!
//! A file is never trusted: what is read is bounded, and a file a parser cannot make sense
//! of simply gives no property. Well-kept crates do the reading, since each format's corners
//! are many and a hand-written parser would meet them one bug at a time: the MIME type comes
//! from the file's first bytes through `infer` (magic numbers of some two hundred formats), a
//! photo's EXIF through `kamadak-exif`, and an audio file's tags (ID3, Vorbis comments, MP4,
//! APE…) through `lofty`.

use crate::core::archival::Value;
use std::io::Read;
use std::path::Path;

/// How much of a file the type is judged from.
const HEAD: u64 = 8192;

/// The MIME type of the file at `path` from its first bytes; `None` when it cannot be read or
/// is of no type `infer` knows.
pub fn mime(path: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(HEAD as usize);
    std::fs::File::open(path)
        .ok()?
        .take(HEAD)
        .read_to_end(&mut head)
        .ok()?;
    infer::get(&head).map(|t| t.mime_type().to_string())
}

/// How much of a photo is searched for its EXIF block (it sits near the start).
const EXIF_SCAN: u64 = 1 << 20;

/// The properties a file's contents give, by what it is: a photo's date taken (`date`),
/// camera (`camera`) and position (`gps`, "latitude,longitude" in degrees); an audio file's
/// artist (`creator`), album, title, year (`date`) and track. Nothing for other files, or for
/// a file a parser refuses.
pub fn properties(path: &Path, mime: Option<&str>) -> Vec<(String, Value)> {
    let mut found = match mime {
        Some(m) if m.starts_with("image/") => photo(path),
        Some(m) if m.starts_with("audio/") || m == "video/mp4" => audio(path),
        _ => Vec::new(),
    };
    // What a file says is cut to what a property may hold (`archival::MAX_VALUE`).
    for (_, v) in &mut found {
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

fn photo(path: &Path) -> Vec<(String, Value)> {
    use exif::{In, Tag};
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    // A bounded window of the file, so a crafted photo cannot make the reader take all of it.
    let mut head = Vec::new();
    if file.take(EXIF_SCAN).read_to_end(&mut head).is_err() {
        return Vec::new();
    }
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

fn audio(path: &Path) -> Vec<(String, Value)> {
    use lofty::prelude::*;
    // lofty bounds what it allocates for a tag (16 MiB by default), whatever the file says.
    let Ok(file) = lofty::read_from_path(path) else {
        return Vec::new();
    };
    let Some(tag) = file.primary_tag().or_else(|| file.first_tag()) else {
        return Vec::new();
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
    out
}
