//! Running things as another user, for tests where root is attacked by, or restores for, an
//! ordinary one: `nobody` (uid and gid 65534), through `setpriv`.

use std::path::Path;
use std::process::Command;

/// The uid (and gid) of `nobody`.
pub const NOBODY: u32 = 65534;

/// `c` run as `nobody` with no other groups, with the same arguments and environment.
pub fn as_nobody(c: &Command) -> Command {
    let mut n = Command::new("setpriv");
    n.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(c.get_program())
        .args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => n.env(k, v),
            None => n.env_remove(k),
        };
    }
    n
}

/// Gives `root` and everything below it (not following symlinks) to `uid`, group `uid`.
pub fn chown_tree(root: &Path, uid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(uid)).expect("lchown");
    if std::fs::symlink_metadata(root).expect("lstat").is_dir() {
        for e in std::fs::read_dir(root).expect("read_dir") {
            chown_tree(&e.expect("entry").path(), uid);
        }
    }
}

/// An archive for a root restore that `nobody` attacks: its scratch directory lets others
/// through (0711) so the attacker reaches the destinations made in it. Panics, saying `why`
/// root is needed, when not run as root.
pub fn archive_for_an_attacked_restore(why: &str) -> (crate::ore::Ore, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    assert!(crate::trees::is_root(), "this test needs root: {why}");
    let (ore, d) = crate::ore::Ore::local();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o711))
        .expect("the scratch directory lets others through");
    (ore, d)
}
