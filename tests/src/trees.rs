//! Building trees with every kind of entry, and comparing two trees byte for byte and
//! attribute for attribute.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// Sets an extended attribute (panics on failure).
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).expect("name");
    // SAFETY: valid C strings and buffer.
    let rc = unsafe {
        libc::lsetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// The user.* extended attributes of a path.
pub fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::llistxattr(c(p).as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| n.starts_with(b"user."))
    {
        let cn = CString::new(name).expect("name");
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m =
            unsafe { libc::lgetxattr(c(p).as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0);
        v.truncate(m as usize);
        out.insert(name.to_vec(), v);
    }
    out
}

/// Sets mtime (ns) without following symlinks.
pub fn set_mtime(p: &Path, ns: i64) {
    let ts = libc::timespec {
        tv_sec: ns / 1_000_000_000,
        tv_nsec: ns % 1_000_000_000,
    };
    let times = [ts, ts];
    // SAFETY: valid C string and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c(p).as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

/// Whether this test runs as root.
pub fn is_root() -> bool {
    // SAFETY: cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `dirs` directories `dNN` under `root`, each with `files` files `fN` of `len` bytes, all
/// different.
pub fn grid(root: &Path, dirs: u64, files: u64, len: usize) {
    for dir in 0..dirs {
        let sub = root.join(format!("d{dir:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..files {
            std::fs::write(sub.join(format!("f{f}")), bytes(dir * 100 + f, len)).unwrap();
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Fills `root` with every kind of entry Ore saves: files of many sizes (empty, one chunk,
/// many chunks), a sparse file, hard links, symlinks, a fifo, a device node (as root), odd
/// names (not UTF-8, a newline, a path of about 4,000 bytes), xattrs, unusual modes and
/// nanosecond times.
pub fn every_kind(root: &Path) {
    let w = |p: &str, data: &[u8]| std::fs::write(root.join(p), data).expect("write");
    std::fs::create_dir_all(root.join("dir/sub")).expect("mkdir");
    w("empty", b"");
    w("small.txt", b"hello, ore\n");
    w("dir/text", &b"compressible text ".repeat(20_000));
    w("dir/random-3M", &bytes(7, 3 << 20));
    w("dir/sub/ones", &vec![1u8; 1_500_000]);
    // A sparse file: 5 MiB with 64 KiB of data in the middle.
    {
        let f = std::fs::File::create(root.join("sparse")).expect("sparse");
        use std::os::unix::fs::FileExt;
        f.write_all_at(&bytes(9, 65536), 2 << 20).expect("write");
        f.set_len(5 << 20).expect("len");
    }
    std::fs::hard_link(root.join("small.txt"), root.join("dir/hardlink")).expect("link");
    // A third name: a snapshot forgets an inode only once it has met all of its names.
    std::fs::hard_link(root.join("small.txt"), root.join("dir/sub/hardlink-3")).expect("link");
    std::os::unix::fs::symlink("../small.txt", root.join("dir/link")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).expect("symlink");
    let fifo = c(&root.join("fifo"));
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    if is_root() {
        let dev = c(&root.join("null-device"));
        // SAFETY: valid C string.
        assert_eq!(
            unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) },
            0
        );
    } else {
        eprintln!("note: not root, so no device node in the tree");
    }
    let odd = root.join(OsStr::from_bytes(b"caf\xe9 \xff\nnew line"));
    std::fs::write(&odd, b"odd name").expect("odd");
    let mut deep = root.join("deep");
    for i in 0..19 {
        deep = deep.join(format!("{i:02}{}", "x".repeat(198)));
    }
    std::fs::create_dir_all(&deep).expect("deep");
    std::fs::write(deep.join("leaf"), b"deep leaf").expect("leaf");
    set_xattr(&root.join("small.txt"), "user.colour", b"blue");
    set_xattr(&root.join("dir"), "user.note", &bytes(3, 300));
    std::fs::set_permissions(
        root.join("dir/text"),
        std::fs::Permissions::from_mode(0o4751),
    )
    .expect("chmod");
    std::fs::set_permissions(
        root.join("dir/sub"),
        std::fs::Permissions::from_mode(0o1770),
    )
    .expect("chmod");
    set_mtime(&root.join("small.txt"), 1_234_567_890_123_456_789);
    set_mtime(&root.join("dir/link"), 1_000_000_000_000_000_001);
    set_mtime(&root.join("dir/sub"), 1_111_111_111_999_999_999);
}

/// Everything compared about one path.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    rdev: u64,
    link: Option<Vec<u8>>,
    hash: Option<[u8; 32]>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn collect(
    root: &Path,
    rel: &Path,
    out: &mut BTreeMap<Vec<u8>, Seen>,
    inodes: &mut HashMap<u64, Vec<Vec<u8>>>,
) {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    entries.sort();
    for name in entries {
        let r = rel.join(&name);
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p).expect("lstat");
        let key = r.as_os_str().as_bytes().to_vec();
        let ft = md.file_type();
        let hash = ft.is_file().then(|| {
            let data = std::fs::read(&p).expect("read");
            *blake3::hash(&data).as_bytes()
        });
        if ft.is_file() && md.nlink() > 1 {
            inodes.entry(md.ino()).or_default().push(key.clone());
        }
        out.insert(
            key,
            Seen {
                kind: md.mode() & libc::S_IFMT,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.size() },
                mtime: (md.mtime(), md.mtime_nsec()),
                rdev: md.rdev(),
                link: ft.is_symlink().then(|| {
                    std::fs::read_link(&p)
                        .expect("readlink")
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                hash,
                xattrs: xattrs(&p),
            },
        );
        if ft.is_dir() {
            collect(root, &r, out, inodes);
        }
    }
}

/// Asserts that two trees hold the same entries with the same contents and metadata, and
/// that hard links are hard links again.
pub fn assert_same(a: &Path, b: &Path) {
    let (mut ma, mut mb) = (BTreeMap::new(), BTreeMap::new());
    let (mut ia, mut ib) = (HashMap::new(), HashMap::new());
    collect(a, Path::new(""), &mut ma, &mut ia);
    collect(b, Path::new(""), &mut mb, &mut ib);
    let names_a: Vec<_> = ma.keys().cloned().collect();
    let names_b: Vec<_> = mb.keys().cloned().collect();
    assert_eq!(
        names_a.len(),
        names_b.len(),
        "different entries:\n{:?}\nvs\n{:?}",
        show(&names_a),
        show(&names_b)
    );
    for (k, va) in &ma {
        let vb = mb
            .get(k)
            .unwrap_or_else(|| panic!("{} missing from the restore", String::from_utf8_lossy(k)));
        assert_eq!(va, vb, "{} differs", String::from_utf8_lossy(k));
    }
    let mut ga: Vec<_> = ia
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    let mut gb: Vec<_> = ib
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    ga.sort();
    gb.sort();
    assert_eq!(ga, gb, "hard link groups differ");
}

fn show(v: &[Vec<u8>]) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// Writes `bytes` to `path`, making its directories first.
pub fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// The temporary name a restore writes a file or makes a directory `name` under
/// (`.ore-partial-` and 16 hex digits of its BLAKE3 hash), as
/// `ore/src/commands/restore/file.rs` makes it.
pub fn partial_name(name: &str) -> String {
    let h = blake3::hash(name.as_bytes());
    let hex: String = h.as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(".ore-partial-{hex}")
}
