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
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: cpu-floor DIR"))?;
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
