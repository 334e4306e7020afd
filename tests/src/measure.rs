//! Running a program with its memory capped and measured, and its time limited: for tests of
//! inputs that never end (`yes`, `/dev/zero`, a line with no newline), where the old failure
//! was memory growing without bound. The cap (`RLIMIT_AS`) keeps such a test from taking the
//! machine down when the bug is back; the peak resident size (from `wait4`) and the time are
//! what the test asserts on.

use crate::ore::Run;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space a measured program may use (it is killed by its allocator beyond it).
pub const ADDRESS_SPACE: u64 = 3 << 30;

/// What a measured run printed and how it ended, its peak resident size in KiB, and how long
/// it took. A run still going at `limit` is killed (its code is then -1).
pub struct Measured {
    pub run: Run,
    pub peak_kib: u64,
    pub took: Duration,
}

/// Runs `cmd` with its address space capped at [`ADDRESS_SPACE`], killing it after `limit`.
/// The child is reaped with `wait4` (for its resource usage), not `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn run_measured(mut cmd: Command, limit: Duration) -> Measured {
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let pid = child.id() as libc::pid_t;
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let done = done.clone();
        std::thread::spawn(move || {
            while started.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(20));
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
            }
            // SAFETY: pid is our child, and it is not reaped before `done` is set.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        })
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = killer.join();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Measured {
        run: Run {
            code,
            stdout: String::from_utf8_lossy(&out.join().expect("stdout reader")).into_owned(),
            stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
        },
        peak_kib: usage.ru_maxrss as u64,
        took,
    }
}
