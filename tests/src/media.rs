//! Small media files made byte by byte for the property extraction tests: a JPEG whose EXIF
//! block holds a date taken, a camera and a position, and a FLAC file whose Vorbis comments
//! hold an artist, album, title, date and track. Made here rather than kept as fixtures, so
//! that each test says exactly what the file holds.

use exif::{Field, In, Rational, Tag, Value};

/// A JPEG (start of image, one APP1 segment holding EXIF, end of image) taken at `date`
/// (`YYYY:MM:DD HH:MM:SS`) with camera `make`/`model`, at `lat`/`lon` degrees, minutes and
/// seconds (north and east).
pub fn jpeg(date: &str, make: &str, model: &str, lat: [u32; 3], lon: [u32; 3]) -> Vec<u8> {
    let r =
        |v: [u32; 3]| Value::Rational(v.iter().map(|&n| Rational { num: n, denom: 1 }).collect());
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let fields = [
        Field {
            tag: Tag::Make,
            ifd_num: In::PRIMARY,
            value: ascii(make),
        },
        Field {
            tag: Tag::Model,
            ifd_num: In::PRIMARY,
            value: ascii(model),
        },
        Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii(date),
        },
        Field {
            tag: Tag::GPSLatitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii("N"),
        },
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: r(lat),
        },
        Field {
            tag: Tag::GPSLongitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii("E"),
        },
        Field {
            tag: Tag::GPSLongitude,
            ifd_num: In::PRIMARY,
            value: r(lon),
        },
    ];
    let mut w = exif::experimental::Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).expect("EXIF into memory");
    let tiff = tiff.into_inner();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A FLAC file with no audio: its stream information (44.1 kHz, stereo, 16 bits) and Vorbis
/// comments `KEY=value`.
pub fn flac(comments: &[&str]) -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    let block = |out: &mut Vec<u8>, last: bool, kind: u8, body: &[u8]| {
        out.push(u8::from(last) << 7 | kind);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(body);
    };
    let mut info = Vec::new();
    info.extend_from_slice(&4096u16.to_be_bytes());
    info.extend_from_slice(&4096u16.to_be_bytes());
    info.extend_from_slice(&[0; 6]);
    let packed: u64 = (44_100u64 << 44) | (1 << 41) | (15 << 36) | 44_100;
    info.extend_from_slice(&packed.to_be_bytes());
    info.extend_from_slice(&[0; 16]);
    block(&mut out, false, 0, &info);
    let mut vc = Vec::new();
    let vendor = b"ore tests";
    vc.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    vc.extend_from_slice(vendor);
    vc.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in comments {
        vc.extend_from_slice(&(c.len() as u32).to_le_bytes());
        vc.extend_from_slice(c.as_bytes());
    }
    block(&mut out, true, 4, &vc);
    out
}
