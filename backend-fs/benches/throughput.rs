//! Throughput of backend-fs: in process, through the child-process client with pipelining, and
//! through the same client strictly request-then-reply.
//!
//! Run with `cargo bench -p backend-fs --bench throughput`. Archives go to `ORE_BENCH_DIR`
//! (default `/dev/shm`, so the figures measure the protocol and the backend, not a slow disk).
//! `ORE_BENCH_SMALL` (default 100000) and `ORE_BENCH_LARGE` (default 1000) set the counts;
//! `ORE_BENCH_MODES` (a comma list of `in-process`, `pipelined`, `strict`) runs only some modes,
//! for profiling one of them.

use backend_fs::{FsBackend, FsOptions};
use connect::Client;
use protocol::{Backend, Key};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::conformance::{test_data, test_key};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    InProcess,
    Pipelined,
    Strict,
}

impl Mode {
    fn short(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::Pipelined => "pipelined",
            Mode::Strict => "strict",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::InProcess => "in process",
            Mode::Pipelined => "client, pipelined",
            Mode::Strict => "client, request-then-reply",
        }
    }
}

fn open(mode: Mode, dir: &Path) -> Box<dyn Backend> {
    match mode {
        Mode::InProcess => Box::new(FsBackend::open(dir, FsOptions::default()).unwrap()),
        _ => Box::new(
            Client::connect_with(
                &format!("{} '{}'", env!("CARGO_BIN_EXE_backend-fs"), dir.display()),
                connect::ClientOptions {
                    window: env_num("ORE_BENCH_WINDOW", 256),
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
    }
}

/// Stores every block. Each mode gets each block as a freshly made vector, as a frontend hands
/// over the output of its compression and encryption: moved into the pipelined client, lent to
/// the others and then dropped, so every mode pays the same allocation.
fn puts(b: &dyn Backend, mode: Mode, keys: &[Key], data: &[Vec<u8>]) {
    if mode == Mode::Pipelined {
        let tickets: Vec<_> = keys
            .iter()
            .zip(data)
            .map(|(k, d)| b.start_put(*k, d.clone()))
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    } else {
        for (k, d) in keys.iter().zip(data) {
            let fresh = d.clone();
            b.put(*k, &fresh).unwrap();
        }
    }
    b.flush().unwrap();
}

fn exists(b: &dyn Backend, mode: Mode, keys: &[Key]) {
    let batches = keys.chunks(1000);
    if mode == Mode::Pipelined {
        let tickets: Vec<_> = batches.map(|c| b.start_exists(c.to_vec())).collect();
        for t in tickets {
            assert!(t.wait().unwrap().iter().all(|&p| p));
        }
    } else {
        for c in batches {
            assert!(b.exists(c).unwrap().iter().all(|&p| p));
        }
    }
}

fn small_exists(b: &dyn Backend, mode: Mode, keys: &[Key]) {
    if mode == Mode::Pipelined {
        let tickets: Vec<_> = keys.iter().map(|k| b.start_exists(vec![*k])).collect();
        for t in tickets {
            assert!(t.wait().unwrap()[0]);
        }
    } else {
        for k in keys {
            assert!(b.exists(&[*k]).unwrap()[0]);
        }
    }
}

struct Row {
    what: String,
    mode: Mode,
    ops: usize,
    bytes: usize,
    time: Duration,
}

fn main() {
    protocol::serve::keep_large_buffers();
    let base = PathBuf::from(std::env::var("ORE_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into()));
    let small_n = env_num("ORE_BENCH_SMALL", 100_000);
    let large_n = env_num("ORE_BENCH_LARGE", 1000);
    let small_keys: Vec<Key> = (0..small_n as u64).map(test_key).collect();
    let small_data: Vec<Vec<u8>> = (0..small_n as u64).map(|i| test_data(i, 4096)).collect();
    let large_keys: Vec<Key> = (0..large_n as u64).map(|i| test_key(1 << 40 | i)).collect();
    let large_data: Vec<Vec<u8>> = (0..large_n as u64).map(|i| test_data(i, 1 << 20)).collect();
    let mut rows = Vec::new();
    let reps = env_num("ORE_BENCH_REPS", 2);
    // Modes take turns, and each figure is the best of its runs, so that the order of runs
    // (a warm or cold tmpfs, memory freed by the previous run) does not decide the ratios.
    let wanted = std::env::var("ORE_BENCH_MODES").unwrap_or_default();
    let modes: Vec<Mode> = [Mode::InProcess, Mode::Pipelined, Mode::Strict]
        .into_iter()
        .filter(|m| wanted.is_empty() || wanted.split(',').any(|w| w == m.short()))
        .collect();
    for mode in (0..reps).flat_map(|_| modes.iter().copied()) {
        let dir = tempfile::Builder::new()
            .prefix("ore-bench-fs-")
            .tempdir_in(&base)
            .unwrap();
        let b = open(mode, &dir.path().join("a"));
        let t = Instant::now();
        puts(&*b, mode, &small_keys, &small_data);
        rows.push(Row {
            what: "4 KiB put".into(),
            mode,
            ops: small_n,
            bytes: small_n * 4096,
            time: t.elapsed(),
        });
        let t = Instant::now();
        exists(&*b, mode, &small_keys);
        rows.push(Row {
            what: "exists (batches of 1000)".into(),
            mode,
            ops: small_n,
            bytes: 0,
            time: t.elapsed(),
        });
        let t = Instant::now();
        let sample = &small_keys[..small_n.min(20_000)];
        small_exists(&*b, mode, sample);
        rows.push(Row {
            what: "exists (one key each)".into(),
            mode,
            ops: sample.len(),
            bytes: 0,
            time: t.elapsed(),
        });
        // Large blocks go to a fresh archive through a fresh connection.
        drop(b);
        let b = open(mode, &dir.path().join("large"));
        let t = Instant::now();
        puts(&*b, mode, &large_keys, &large_data);
        rows.push(Row {
            what: "1 MiB put".into(),
            mode,
            ops: large_n,
            bytes: large_n << 20,
            time: t.elapsed(),
        });
        drop(b);
    }
    let mut best: Vec<Row> = Vec::new();
    for r in rows {
        match best
            .iter_mut()
            .find(|b| b.what == r.what && b.mode == r.mode)
        {
            Some(b) if b.time > r.time => *b = r,
            Some(_) => {}
            None => best.push(r),
        }
    }
    let rows = best;
    println!("backend-fs on {} (best of {reps} runs)", base.display());
    println!(
        "{:<26} {:<28} {:>12} {:>10}",
        "operation", "mode", "ops/s", "MB/s"
    );
    for r in &rows {
        let secs = r.time.as_secs_f64();
        let mbs = if r.bytes > 0 {
            format!("{:.0}", r.bytes as f64 / secs / 1e6)
        } else {
            "-".into()
        };
        println!(
            "{:<26} {:<28} {:>12.0} {:>10}",
            r.what,
            r.mode.name(),
            r.ops as f64 / secs,
            mbs
        );
    }
    let rate = |what: &str, mode: Mode| {
        rows.iter()
            .find(|r| r.what == what && r.mode == mode)
            .map(|r| r.ops as f64 / r.time.as_secs_f64())
            .unwrap_or(f64::NAN)
    };
    println!();
    for what in [
        "4 KiB put",
        "exists (one key each)",
        "exists (batches of 1000)",
        "1 MiB put",
    ] {
        println!(
            "{what:<26} pipelined / request-then-reply = {:.1}x   client pipelined / in process = {:.2}",
            rate(what, Mode::Pipelined) / rate(what, Mode::Strict),
            rate(what, Mode::Pipelined) / rate(what, Mode::InProcess),
        );
    }
}
