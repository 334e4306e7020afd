//! `swap-in [--dir] PATH`: the attacker of the "made by the restore, used again later" tests.
//! Run as an ordinary user who may write in the directory of PATH, it loops until killed:
//! whenever a file at PATH belongs to someone else, it is replaced (renamed over) by a file of
//! the attacker's own holding `attacker`, and `swapped` is printed — so that a restore which
//! comes back to PATH by its name (to hard-link it, say) takes the attacker's file for its
//! own. With `--dir`, the same for a directory: it is renamed aside and a directory of the
//! attacker's own, holding a file `planted`, put in its place.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, path) = match &args[..] {
        [path] => (false, path),
        [flag, path] if flag == "--dir" => (true, path),
        _ => {
            eprintln!("usage: swap-in [--dir] PATH");
            std::process::exit(2);
        }
    };
    let path = PathBuf::from(path);
    let mine = path.with_file_name(".swap-in");
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    loop {
        match std::fs::symlink_metadata(&path) {
            Ok(md) if md.uid() != me => {
                let done = if dir {
                    std::fs::rename(&path, path.with_file_name(".swap-in-aside")).is_ok()
                        && std::fs::create_dir(&path).is_ok()
                        && std::fs::write(path.join("planted"), b"attacker").is_ok()
                } else {
                    std::fs::write(&mine, b"attacker").is_ok()
                        && std::fs::rename(&mine, &path).is_ok()
                };
                if done {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "swapped");
                    let _ = out.flush();
                }
            }
            _ => std::thread::yield_now(),
        }
    }
}
