//! splitlog and backend-fs side by side: 1 MiB puts, 4 KiB puts, batched exists, random gets,
//! in process and (for splitlog) through its binary with a pipelining client; then the time to
//! reindex the 1 MiB archive from its logs alone.
//!
//! `cargo bench -p backend-splitlog --bench stores`. Archives go to `ORE_BENCH_DIR` (default
//! `/dev/shm`); `ORE_BENCH_SMALL` (default 100000) and `ORE_BENCH_LARGE` (default 1000) set the
//! counts.

use backend_fs::{FsBackend, FsOptions};
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use connect::Client;
use protocol::{Backend, Key};
use std::path::{Path, PathBuf};
use std::time::Instant;
use testkit::conformance::{test_data, test_key};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn puts(b: &dyn Backend, keys: &[Key], data: &[Vec<u8>], pipelined: bool) -> f64 {
    let t = Instant::now();
    if pipelined {
        let tickets: Vec<_> = keys
            .iter()
            .zip(data)
            .map(|(k, d)| b.start_put(*k, d.clone()))
            .collect();
        tickets.into_iter().for_each(|t| t.wait().unwrap());
    } else {
        for (k, d) in keys.iter().zip(data) {
            let fresh = d.clone();
            b.put(*k, &fresh).unwrap();
        }
    }
    b.flush().unwrap();
    t.elapsed().as_secs_f64()
}

fn exists(b: &dyn Backend, keys: &[Key]) -> f64 {
    let t = Instant::now();
    for c in keys.chunks(1000) {
        assert!(b.exists(c).unwrap().iter().all(|&p| p));
    }
    t.elapsed().as_secs_f64()
}

fn random_gets(b: &dyn Backend, keys: &[Key], n: usize) -> f64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let t = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = keys[(x % keys.len() as u64) as usize];
        assert!(b.get(k).unwrap().is_some());
    }
    t.elapsed().as_secs_f64()
}

enum Store {
    Fs,
    Splitlog,
    SplitlogClient,
}

fn open(s: &Store, dir: &Path) -> Box<dyn Backend> {
    match s {
        Store::Fs => Box::new(FsBackend::open(dir, FsOptions::default()).unwrap()),
        Store::Splitlog => {
            Box::new(SplitlogBackend::open(dir, SplitlogOptions::default()).unwrap())
        }
        Store::SplitlogClient => Box::new(
            Client::connect(&format!(
                "{} '{}'",
                env!("CARGO_BIN_EXE_backend-splitlog"),
                dir.display()
            ))
            .unwrap(),
        ),
    }
}

fn main() {
    protocol::serve::keep_large_buffers();
    let base = PathBuf::from(std::env::var("ORE_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into()));
    let small = env_num("ORE_BENCH_SMALL", 100_000);
    let large = env_num("ORE_BENCH_LARGE", 1000);
    let sk: Vec<Key> = (0..small as u64).map(test_key).collect();
    let sd: Vec<Vec<u8>> = (0..small as u64).map(|i| test_data(i, 4096)).collect();
    let lk: Vec<Key> = (0..large as u64).map(|i| test_key(1 << 40 | i)).collect();
    let ld: Vec<Vec<u8>> = (0..large as u64).map(|i| test_data(i, 1 << 20)).collect();
    println!(
        "stores on {}: {small} x 4 KiB, {large} x 1 MiB",
        base.display()
    );
    println!(
        "{:<34} {:>12} {:>12} {:>14} {:>14}",
        "store", "1 MiB MB/s", "4 KiB put/s", "exists keys/s", "random get/s"
    );
    let mut results = Vec::new();
    for (name, store) in [
        ("backend-fs, in process", Store::Fs),
        ("splitlog, in process", Store::Splitlog),
        ("splitlog, binary, pipelined client", Store::SplitlogClient),
    ] {
        let t = tempfile::Builder::new()
            .prefix("ore-bench-")
            .tempdir_in(&base)
            .unwrap();
        let pipelined = matches!(store, Store::SplitlogClient);
        let b = open(&store, &t.path().join("large"));
        let large_s = puts(&*b, &lk, &ld, pipelined);
        drop(b);
        let b = open(&store, &t.path().join("small"));
        let small_s = puts(&*b, &sk, &sd, pipelined);
        let exists_s = exists(&*b, &sk);
        let gets = small.min(50_000);
        let gets_s = random_gets(&*b, &sk, gets);
        drop(b);
        println!(
            "{name:<34} {:>12.0} {:>12.0} {:>14.0} {:>14.0}",
            (large << 20) as f64 / large_s / 1e6,
            small as f64 / small_s,
            small as f64 / exists_s,
            gets as f64 / gets_s
        );
        if matches!(store, Store::Splitlog) {
            let dir = t.path().join("large");
            for f in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let t0 = Instant::now();
            let b = SplitlogBackend::open(&dir, SplitlogOptions::default()).unwrap();
            let secs = t0.elapsed().as_secs_f64();
            assert_eq!(b.stats().unwrap().blocks, Some(large as u64));
            results.push(format!(
                "reindex of a {:.2} GB splitlog archive (index deleted): {secs:.2} s",
                (large << 20) as f64 / 1e9
            ));
        }
    }
    for r in results {
        println!("{r}");
    }
}
