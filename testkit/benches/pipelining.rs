//! What pipelining buys, with the storage taken out: the in-memory backend through the
//! child-process client, pipelined and strictly request-then-reply, against the same backend
//! in process. Run with `cargo bench -p ore-testkit --bench pipelining`; `ORE_BENCH_SMALL`
//! (default 100000) sets the number of small operations.

use connect::Client;
use protocol::{Backend, Key};
use std::time::Instant;
use testkit::conformance::{test_data, test_key};
use testkit::MemoryBackend;

fn rate(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("ORE_BENCH_SMALL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let keys: Vec<Key> = (0..n as u64).map(test_key).collect();
    let data: Vec<Vec<u8>> = (0..n as u64).map(|i| test_data(i, 4096)).collect();
    let id = env!("CARGO_BIN_EXE_backend-memory");
    println!("in-memory backend, {n} operations each");
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "operation", "in process", "pipelined", "req-then-reply", "pipe/rtr", "pipe/inproc"
    );

    let mem = MemoryBackend::default();
    let c1 = Client::connect(id).unwrap();
    let c2 = Client::connect(id).unwrap();
    let owned = data.clone();
    let in_proc = rate(n, || {
        for (k, d) in keys.iter().zip(&data) {
            mem.put(*k, d).unwrap();
        }
    });
    let piped = rate(n, || {
        let t: Vec<_> = keys
            .iter()
            .zip(owned)
            .map(|(k, d)| c1.start_put(*k, d))
            .collect();
        t.into_iter().for_each(|t| t.wait().unwrap());
    });
    let strict = rate(n, || {
        for (k, d) in keys.iter().zip(&data) {
            c2.put(*k, d).unwrap();
        }
    });
    row("4 KiB put", in_proc, piped, strict);

    let in_proc = rate(n, || {
        for k in &keys {
            assert!(mem.exists(&[*k]).unwrap()[0]);
        }
    });
    let piped = rate(n, || {
        let t: Vec<_> = keys.iter().map(|k| c1.start_exists(vec![*k])).collect();
        t.into_iter().for_each(|t| assert!(t.wait().unwrap()[0]));
    });
    let strict = rate(n, || {
        for k in &keys {
            assert!(c2.exists(&[*k]).unwrap()[0]);
        }
    });
    row("exists, one key each", in_proc, piped, strict);

    let in_proc = rate(n, || {
        for k in &keys {
            assert!(mem.get(*k).unwrap().is_some());
        }
    });
    let piped = rate(n, || {
        let t: Vec<_> = keys.iter().map(|k| c1.start_get(*k)).collect();
        t.into_iter()
            .for_each(|t| assert!(t.wait().unwrap().is_some()));
    });
    let strict = rate(n, || {
        for k in &keys {
            assert!(c2.get(*k).unwrap().is_some());
        }
    });
    row("4 KiB get", in_proc, piped, strict);
}

fn row(what: &str, in_proc: f64, piped: f64, strict: f64) {
    println!(
        "{what:<22} {in_proc:>12.0}/s {piped:>12.0}/s {strict:>12.0}/s {:>9.1}x {:>10.2}",
        piped / strict,
        piped / in_proc
    );
}
