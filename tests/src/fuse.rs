//! Mounting an archive with `ore mount` for a test, waiting for it to come up, and always
//! unmounting it again: shared by the tests that read real FUSE mounts (needs fuse3).

use crate::ore::{Ore, Run};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a file system is mounted on `dir`.
pub fn mounted(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap()))
}

/// Starts `ore mount` and waits until the mount is up.
pub fn mount(ore: &Ore, dir: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["mount", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut child = ore.cmd(&args).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while !mounted(dir) {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("ore mount exited ({status}) before mounting: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "mount did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Unmounts on the way out, so a failing test leaves no mount behind.
pub struct Unmount<'a>(pub &'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if mounted(self.0) {
            let _ = Command::new("fusermount3").arg("-uz").arg(self.0).status();
        }
    }
}

/// Runs a tool (`ls`, `stat`, `cmp`...) to its end.
pub fn tool(args: &[&str]) -> Run {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    Run::of(o)
}

/// Waits (at most 20 s) for `ore mount` to exit, and checks that it succeeded.
pub fn wait_exit(mut child: Child, what: &str) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what}: ore mount ended with {status}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: ore mount did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
