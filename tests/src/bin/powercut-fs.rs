//! `powercut-fs ROOT MOUNTPOINT`: serves `ROOT/data` at MOUNTPOINT through a FUSE file system
//! that forgets, at a power cut, everything not made durable by `fsync` (the model is in
//! `ore_tests::powercut`'s module doc).
//!
//! Driven on its standard input, one command a line, each answered on standard output:
//! it prints `mounted` once the mount is up; `cut` freezes the file system (every operation
//! fails with EIO from then on) and answers `frozen`; `unmount` (or the end of its input)
//! unmounts, then — after a `cut` — replaces `ROOT/data` by the durable state, and answers
//! `down` before exiting 0. Without a `cut`, the unmount is clean and everything is kept.

use anyhow::{bail, Context, Result};
use ore_tests::powercut::{Model, PowerCutFs, Shared};
use ore_util::sync::{into_inner, lock};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn main() {
    if let Err(e) = run() {
        eprintln!("powercut-fs: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [root, mountpoint] = args.as_slice() else {
        bail!("usage: powercut-fs ROOT MOUNTPOINT");
    };
    let model = Model::open(root).with_context(|| format!("opening {}", root.display()))?;
    let shared = Arc::new(Mutex::new(Shared::new(model)?));
    let options = [
        fuser::MountOption::FSName("powercut".into()),
        fuser::MountOption::Subtype("powercut".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount2(PowerCutFs(shared.clone()), mountpoint, &options)
        .with_context(|| format!("mounting {}", mountpoint.display()))?;
    let mut out = std::io::stdout();
    writeln!(out, "mounted")?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "cut" => {
                lock(&shared).frozen = true;
                writeln!(out, "frozen")?;
            }
            "unmount" => break,
            other => bail!("unknown command {other:?} (cut, unmount)"),
        }
    }
    // Lazily, so the session ends even if a process still holds a file open (the test kills
    // them all first; this keeps a mistake there from hanging the unmount).
    let status = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(mountpoint)
        .status()
        .context("running fusermount3")?;
    if !status.success() {
        bail!("fusermount3 -uz {} failed: {status}", mountpoint.display());
    }
    session.join();
    let shared = Arc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("the file system still holds its state after the unmount"))
        .map(into_inner)?;
    if shared.frozen {
        shared.model.cut().context("the power cut's rebuild")?;
    } else {
        shared.model.settle().context("emptying the attic")?;
    }
    writeln!(out, "down")?;
    Ok(())
}
