//! The floor under each stage of a snapshot: the same libraries ore uses, run alone, on one
//! thread, on the same bytes, with ore's default settings (`bench/cpu.sh` prints them beside
//! `ore snapshot --stats`).
//!
//!     cpu-floor DIR
//!
//! Walks DIR (a stat of every entry; symbolic links not followed), reads every file, cuts it with
//! FastCDC (min 128 KiB, average 256 KiB, max 1 MiB, normalization 2), and for each chunk takes
//! a keyed BLAKE3 hash, compresses it with zstd at level 3, and seals the result with
//! AES-256-GCM (ring). Prints each stage's CPU seconds and seconds per GB read, as JSON.
//!
//!     cpu-floor --files DIR
//!
//! The floor under a tree of many small files, where the kernel's work per file outweighs the
//! bytes: CPU microseconds per file (user and system) of two passes over DIR's regular files,
//! one thread each. `least` makes the calls any reader needs (`openat`, `fstat`, `read` up to
//! the size, `close`; the type from the listing). `ore` makes the calls of a snapshot's reader:
//! a stat by name before the open, a second `fstat` after the read to tell a file that changed
//! meanwhile, and `flistxattr`. `bench/manyfiles.sh` prints what these leave for the rest.

use ore::core::cpustat::thread_cpu;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        // A stat of every entry, as a snapshot's walk makes (and `find -printf '%s %T@'`).
        let Ok(m) = e.metadata() else { continue };
        let t = m.file_type();
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file() && !t.is_fifo() {
            out.push(e.path());
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || anyhow::anyhow!("usage: cpu-floor [--files] DIR");
    let dir = args.next().ok_or_else(usage)?;
    if dir == "--files" {
        return files::floor(&args.next().ok_or_else(usage)?);
    }
    let mut secs = [0u64; 6];
    let names = ["walk", "read", "chunk", "hash", "compress", "encrypt"];
    let t = thread_cpu();
    let mut files = Vec::new();
    walk(Path::new(&dir), &mut files);
    secs[0] = thread_cpu() - t;
    let key = [7u8; 32];
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &[9u8; 32]).map_err(|_| anyhow::anyhow!("aes key"))?,
    );
    let mut zstd = zstd::bulk::Compressor::new(3)?;
    let (mut bytes, mut sink, mut n) = (0u64, 0u64, 0u64);
    for f in &files {
        let t = thread_cpu();
        let Ok(data) = std::fs::read(f) else { continue };
        secs[1] += thread_cpu() - t;
        bytes += data.len() as u64;
        let t = thread_cpu();
        let cuts: Vec<(usize, usize)> = if data.len() <= 128 << 10 {
            vec![(0, data.len())]
        } else {
            fastcdc::v2020::FastCDC::with_level(
                &data,
                128 << 10,
                256 << 10,
                1 << 20,
                fastcdc::v2020::Normalization::Level2,
            )
            .map(|c| (c.offset, c.length))
            .collect()
        };
        secs[2] += thread_cpu() - t;
        for (o, l) in cuts {
            let chunk = &data[o..o + l];
            let t = thread_cpu();
            let h = blake3::keyed_hash(&key, chunk);
            secs[3] += thread_cpu() - t;
            let t = thread_cpu();
            let mut sealed = zstd.compress(chunk)?;
            secs[4] += thread_cpu() - t;
            let t = thread_cpu();
            n += 1;
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&n.to_le_bytes());
            aead.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(h.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("seal"))?;
            secs[5] += thread_cpu() - t;
            sink = sink.wrapping_add(sealed.len() as u64);
        }
    }
    let gb = bytes as f64 / 1e9;
    let mut stages = serde_json::Map::new();
    for (name, ns) in names.iter().zip(secs) {
        let s = ns as f64 / 1e9;
        stages.insert(
            (*name).into(),
            serde_json::json!({"cpu_s": s, "cpu_s_per_gb": s / gb}),
        );
    }
    println!(
        "{}",
        serde_json::json!({"files": files.len(), "bytes": bytes, "chunks": n, "sealed_bytes": sink, "stages": stages})
    );
    Ok(())
}

/// The system calls per small file, alone (`--files`).
mod files {
    use ore::core::cpustat::thread_cpu;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    /// Which calls a pass makes for each regular file.
    #[derive(Clone, Copy, PartialEq)]
    enum Calls {
        Least,
        Ore,
    }

    pub fn floor(dir: &str) -> anyhow::Result<()> {
        let root = CString::new(std::path::Path::new(dir).as_os_str().as_bytes())?;
        let mut out = serde_json::Map::new();
        let mut files = 0;
        // Once untimed, so both timed passes meet the same warm caches.
        pass(&root, Calls::Ore, &mut 0)?;
        for (name, calls) in [("least", Calls::Least), ("ore", Calls::Ore)] {
            let mut n = 0u64;
            let t = thread_cpu();
            pass(&root, calls, &mut n)?;
            let s = (thread_cpu() - t) as f64 / 1e9;
            files = n;
            out.insert(
                name.into(),
                serde_json::json!({"cpu_s": s, "us_per_file": s * 1e6 / n.max(1) as f64}),
            );
        }
        println!("{}", serde_json::json!({"files": files, "passes": out}));
        Ok(())
    }

    /// Lists `dir` (a path, opened without following a final symlink) and makes `calls` for
    /// each regular file in it and below, counting them in `n`.
    fn pass(dir: &CString, calls: Calls, n: &mut u64) -> anyhow::Result<()> {
        // SAFETY: a valid C string; the descriptor is handed to fdopendir, which owns it
        // from then on and closes it in closedir.
        let d = unsafe {
            let fd = libc::open(
                dir.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Ok(());
            }
            let d = libc::fdopendir(fd);
            if d.is_null() {
                libc::close(fd);
                return Ok(());
            }
            d
        };
        // SAFETY: `d` is a valid open DIR until closedir below.
        let fd = unsafe { libc::dirfd(d) };
        let mut subdirs = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut names = vec![0u8; 1 << 16];
        loop {
            // SAFETY: `d` is valid; the entry lives until the next readdir on `d`.
            let e = unsafe { libc::readdir64(d) };
            if e.is_null() {
                break;
            }
            // SAFETY: a non-null entry from readdir; d_name is NUL-terminated.
            let (kind, name) =
                unsafe { ((*e).d_type, std::ffi::CStr::from_ptr((*e).d_name.as_ptr())) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            if kind == libc::DT_DIR {
                let mut p = dir.as_bytes().to_vec();
                p.push(b'/');
                p.extend_from_slice(bytes);
                subdirs.push(CString::new(p)?);
                continue;
            }
            if kind != libc::DT_REG {
                continue;
            }
            // SAFETY: plain data out-parameters, a valid descriptor and C string, buffers of
            // the lengths given; every descriptor opened is closed.
            unsafe {
                let mut st: libc::stat64 = std::mem::zeroed();
                if calls == Calls::Ore {
                    libc::fstatat64(fd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW);
                }
                let f = libc::openat(
                    fd,
                    name.as_ptr(),
                    libc::O_RDONLY
                        | libc::O_NOFOLLOW
                        | libc::O_NONBLOCK
                        | libc::O_CLOEXEC
                        | libc::O_NOATIME,
                );
                if f < 0 {
                    continue;
                }
                libc::fstat64(f, &mut st);
                // Up to the size the stat gave, as a snapshot's reader reads.
                let mut at = 0i64;
                while at < st.st_size {
                    let r = libc::pread64(f, buf.as_mut_ptr().cast(), buf.len(), at);
                    if r <= 0 {
                        break;
                    }
                    at += r as i64;
                }
                if calls == Calls::Ore {
                    libc::fstat64(f, &mut st);
                    libc::flistxattr(f, names.as_mut_ptr().cast(), names.len());
                }
                libc::close(f);
            }
            *n += 1;
        }
        // SAFETY: `d` came from fdopendir and is closed once.
        unsafe { libc::closedir(d) };
        for s in subdirs {
            pass(&s, calls, n)?;
        }
        Ok(())
    }
}
