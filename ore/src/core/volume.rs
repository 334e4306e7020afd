//! Which disk a catalogued tree is on: what `ore import --catalogue-only` records so that a
//! search can say where a file was ("USB-1 (2016), /media/usb1, ext4 label USB1, UUID …").
//!
//! Read from what Linux says of its mounts, never guessed from the path: the mount whose
//! device number is the tree's (`/proc/self/mountinfo`, the longest mount point above the
//! tree when several share it), its file system type and source, and for a block device its
//! label and UUID (the `/dev/disk/by-label` and `by-uuid` links udev makes) and the drive's
//! model (`/sys/dev/block`). Whatever the system does not say is left out; the name the user
//! gives (`--volume`) wins.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A disk or volume a catalogue object was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The name it goes by: `--volume`, else its label, else its mount point.
    pub name: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// Where it was mounted.
    pub mount: String,
    /// The mount's source (`/dev/sdb1`, `tmpfs`, a server's share).
    pub device: String,
    /// The file system type (`ext4`, `vfat`, `tmpfs`, …).
    pub fs: String,
    /// The drive's model, for a block device that has one.
    pub model: Option<String>,
}

impl Volume {
    /// One line for people: the name, then what else is known.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("mounted at {}", self.mount)];
        if !self.device.is_empty() {
            parts.push(format!("{} {}", self.fs, self.device));
        }
        if let Some(l) = &self.label {
            parts.push(format!("label {l}"));
        }
        if let Some(u) = &self.uuid {
            parts.push(format!("UUID {u}"));
        }
        if let Some(m) = &self.model {
            parts.push(format!("model {m}"));
        }
        // A label is the disk's to set: shown without its control characters.
        let shown: String = format!("{} ({})", self.name, parts.join(", "))
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        shown
    }
}

/// The volume `path` lies on, named `name` when given.
pub fn of_path(path: &Path, name: Option<&str>) -> std::io::Result<Volume> {
    let abs = std::fs::canonicalize(path)?;
    let dev = std::fs::metadata(&abs)?.dev();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let mount = mountinfo
        .lines()
        .filter_map(parse_mount)
        .filter(|m| m.dev == (maj, min) && abs.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len());
    let mut v = Volume::default();
    if let Some(m) = mount {
        v.mount = m.point.to_string_lossy().into_owned();
        v.fs = m.fs;
        v.device = m.source;
    } else {
        v.mount = abs.to_string_lossy().into_owned();
    }
    if v.device.starts_with("/dev/") {
        let device = std::fs::canonicalize(&v.device).ok();
        v.label = link_to("/dev/disk/by-label", device.as_deref());
        v.uuid = link_to("/dev/disk/by-uuid", device.as_deref());
    }
    v.model = model(maj, min);
    v.name = match (name, &v.label) {
        (Some(n), _) => n.to_string(),
        (None, Some(l)) => l.clone(),
        (None, None) => v.mount.clone(),
    };
    Ok(v)
}

/// One line of `/proc/self/mountinfo`.
struct Mount {
    dev: (u32, u32),
    point: PathBuf,
    fs: String,
    source: String,
}

/// `ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER`.
fn parse_mount(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let (maj, min) = fields.get(2)?.split_once(':')?;
    let dash = fields.iter().position(|f| *f == "-")?;
    Some(Mount {
        dev: (maj.parse().ok()?, min.parse().ok()?),
        point: PathBuf::from(unescape_octal(fields.get(4)?)),
        fs: unescape_octal(fields.get(dash + 1)?),
        source: unescape_octal(fields.get(dash + 2)?),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape_octal(s: &str) -> String {
    unescape(s, b'\\', 3, 8)
}

/// udev writes a label's unsafe bytes as `\xHH`.
fn unescape_hex(s: &str) -> String {
    unescape(&s.replace("\\x", "\\"), b'\\', 2, 16)
}

/// `s` with each `esc` followed by `digits` digits of `radix` made the byte they name.
fn unescape(s: &str, esc: u8, digits: usize, radix: u32) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i + 1..i + 1 + digits)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, radix).ok());
        match code {
            Some(c) if b[i] == esc => {
                out.push(c);
                i += 1 + digits;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name of the link in `dir` that leads to `device`.
fn link_to(dir: &str, device: Option<&Path>) -> Option<String> {
    let device = device?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let target = std::fs::canonicalize(e.path()).ok()?;
        (target == device).then(|| unescape_hex(&e.file_name().to_string_lossy()))
    })
}

/// The model of the drive behind block device `maj:min` (a partition's is its disk's).
fn model(maj: u32, min: u32) -> Option<String> {
    let dev = std::fs::canonicalize(format!("/sys/dev/block/{maj}:{min}")).ok()?;
    [dev.join("device/model"), dev.join("../device/model")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mountinfo_line_with_escaped_spaces_reads_whole() {
        let m =
            parse_mount("36 35 8:17 / /media/my\\040disk rw,noatime shared:1 - ext4 /dev/sdb1 rw")
                .unwrap();
        assert_eq!(m.dev, (8, 17));
        assert_eq!(m.point, PathBuf::from("/media/my disk"));
        assert_eq!((m.fs.as_str(), m.source.as_str()), ("ext4", "/dev/sdb1"));
        assert_eq!(unescape_hex("USB\\x20STICK"), "USB STICK");
    }

    #[test]
    fn the_volume_of_a_real_directory_names_its_mount() {
        let dir = std::env::temp_dir();
        let v = of_path(&dir, Some("scratch")).unwrap();
        assert_eq!(v.name, "scratch");
        assert!(
            std::fs::canonicalize(&dir).unwrap().starts_with(&v.mount),
            "{v:?}"
        );
        assert!(!v.fs.is_empty(), "{v:?}");
    }
}
