//! Whether the run that holds a lease or a sweep still runs, when it ran where we can look.
//!
//! A run that is killed stops renewing its lease, and everyone else used to wait out its ttl
//! (15 minutes by default) before taking it over. When the holder ran on this machine, we can
//! do better: ask the kernel whether its process still exists. So every lease and sweep records
//! where its holder runs (`host`), its pid and the pid's start time, and a reader on the same
//! host takes over at once a lease whose process is gone — or was replaced by another process
//! that was given the same pid (its start time differs).
//!
//! A false "dead" would let gc remove blocks a running snapshot relies on, so `host` is what
//! makes a pid mean the same thing to writer and reader, and nothing less:
//!
//! - the kernel's boot id (`/proc/sys/kernel/random/boot_id`): random at each boot, shared by
//!   every container on one kernel, different on every other machine and after a reboot;
//! - the pid namespace (`/proc/self/ns/pid`): two containers on one kernel each number their own
//!   processes, so a pid means something only inside one namespace. (Host names say nothing
//!   here: containers may share one, and two machines may too);
//! - the time namespace (`/proc/self/ns/time`, where the kernel has them): start times are
//!   counted from a boot time that a time namespace may shift.
//!
//! And `/proc` must be this namespace's (`/proc/self` names our own pid), or nothing is
//! recorded. A record without `host` (earlier versions), or whose `host` is not ours, keeps the
//! ttl rule. Checking: `kill(pid, 0)` failing with "no such process" means gone (it sees every
//! process, whatever `/proc`'s `hidepid` hides); a process that exists is dead only if
//! `/proc/PID/stat` shows it a zombie or gives another start time. Anything that cannot be read
//! counts as alive.

use std::sync::OnceLock;

/// Where this process runs, as far as its pid means anything: see the module's notes. `None`
/// when it cannot be told (then nothing is recorded, and nobody takes a lease over early).
pub fn this_host() -> Option<&'static str> {
    static HOST: OnceLock<Option<String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let boot = boot.trim();
        if boot.is_empty() {
            return None;
        }
        // /proc must be the one of our pid namespace.
        let me = std::fs::read_link("/proc/self").ok()?;
        if me.to_str()? != std::process::id().to_string() {
            return None;
        }
        let ns = |name: &str| -> Option<String> {
            let link = std::fs::read_link(format!("/proc/self/ns/{name}")).ok()?;
            Some(link.to_str()?.to_string())
        };
        let pid_ns = ns("pid")?;
        let mut host = format!("boot:{boot} {pid_ns}");
        // Kernels without time namespaces have no such link; those that have them must name it.
        match ns("time") {
            Some(t) => host = format!("{host} {t}"),
            None if std::path::Path::new("/proc/self/ns/time").exists() => return None,
            None => {}
        }
        Some(host)
    })
    .as_deref()
}

/// The state letter and start time (clock ticks after boot, field 22) of process `pid`, from
/// `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything: count from the last.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3: field 22 is the 20th from here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start time of process `pid` (clock ticks after boot), as a lease records it.
pub fn start_of(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, s)| s)
}

/// This process's start time.
pub fn own_start() -> Option<u64> {
    static START: OnceLock<Option<u64>> = OnceLock::new();
    *START.get_or_init(|| stat(std::process::id()).map(|(_, s)| s))
}

/// Whether process `pid`, which started at `start` on `host`, is known to have ended: `host`
/// is this one, and the pid names no process, a zombie, or a process that started at another
/// time. False whenever that cannot be told for sure.
pub fn is_gone(host: &str, pid: u32, start: u64) -> bool {
    if this_host() != Some(host) || pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    match stat(pid) {
        Some((state, started)) => state == 'Z' || state == 'X' || started != start,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_gone_and_a_child_that_ended_is() {
        let (Some(host), Some(start)) = (this_host(), own_start()) else {
            return; // no /proc here: nothing is recorded, nothing taken over early.
        };
        assert!(!is_gone(host, std::process::id(), start));
        assert!(
            is_gone(host, std::process::id(), start + 1),
            "another start time"
        );
        assert!(!is_gone("boot:elsewhere", std::process::id(), start + 1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = stat(pid).map(|(_, s)| s);
        child.wait().unwrap();
        if let Some(s) = started {
            assert!(is_gone(host, pid, s));
        }
    }
}
