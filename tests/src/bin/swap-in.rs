//! `swap-in PATH`: the attacker of the "file the restore made, used again later" tests. Run as
//! an ordinary user who may write in the directory of PATH, it loops until killed: whenever a
//! file at PATH belongs to someone else, it is replaced (renamed over) by a file of the
//! attacker's own holding `attacker`, and `swapped` is printed — so that a restore which comes
//! back to PATH by its name (to hard-link it, say) takes the attacker's file for its own.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = &args[..] else {
        eprintln!("usage: swap-in PATH");
        std::process::exit(2);
    };
    let path = PathBuf::from(path);
    let mine = path.with_file_name(".swap-in");
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    loop {
        match std::fs::symlink_metadata(&path) {
            Ok(md) if md.uid() != me => {
                if std::fs::write(&mine, b"attacker").is_ok()
                    && std::fs::rename(&mine, &path).is_ok()
                {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "swapped");
                    let _ = out.flush();
                }
            }
            _ => std::thread::yield_now(),
        }
    }
}
