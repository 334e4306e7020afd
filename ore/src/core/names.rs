//! What a name read from an archive or a dump stream may be.
//!
//! Everything `ore` reads from an archive or a stream is untrusted: a compromised writer, a
//! damaged disk or a hand-made dump can put any bytes where a name belongs. A name is joined
//! to a directory by every reader — restore, the mount, `explore get`, `ls` — so a name that is
//! a path (`/tmp/x`, `a/b`), `.` or `..` would lead them out of the directory they work in, and
//! a hard link's target that climbs (`../../etc/passwd`) would link to a file outside the
//! snapshot. The rules live here, once, for bare names and paths; [`crate::core::entry`]
//! applies them to whole entries (`check_entry`, `check_root`, `check_details`), and the
//! decoders apply those to every entry as it is read ([`crate::core::entry::decode`] for a
//! snapshot's root, [`crate::core::tree::decode_node`] for directory blocks,
//! [`crate::commands::dump::load`] for streams). Code that turns names into paths can call
//! [`check_name`] again as a second line of defence.

/// Why a name cannot be an entry's name, or a path cannot be a hard link's target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    #[error("is empty")]
    Empty,
    #[error("is \".\" (the directory itself)")]
    Dot,
    #[error("is \"..\" (the directory above)")]
    DotDot,
    #[error("contains '/'")]
    Slash,
    #[error("contains a NUL byte")]
    Nul,
    /// A path (a hard link's target) that starts at `/`.
    #[error("starts with '/'")]
    Absolute,
    /// A path with a component that is not a name.
    #[error("has a component that {0}")]
    Component(Box<BadName>),
}

/// Checks that `name` can be the name of an entry in a directory: not empty, not `.` or `..`,
/// without `/` or NUL. Every entry read from an archive or a dump stream has passed this, so
/// that joining it to a directory never leaves that directory; code that turns names into
/// paths may call it again as a second line of defence.
pub fn check_name(name: &[u8]) -> Result<(), BadName> {
    match name {
        b"" => Err(BadName::Empty),
        b"." => Err(BadName::Dot),
        b".." => Err(BadName::DotDot),
        _ if name.contains(&b'/') => Err(BadName::Slash),
        _ if name.contains(&0) => Err(BadName::Nul),
        _ => Ok(()),
    }
}

/// Checks that `target` can be a hard link's target: a path from the snapshot root made of
/// names that pass [`check_name`] joined by single `/` (no leading `/`, no `.`, `..` or
/// empty components).
pub fn check_link_target(target: &[u8]) -> Result<(), BadName> {
    if target.first() == Some(&b'/') {
        return Err(BadName::Absolute);
    }
    for c in target.split(|&b| b == b'/') {
        check_name(c).map_err(|e| {
            if target.is_empty() {
                e
            } else {
                BadName::Component(Box::new(e))
            }
        })?;
    }
    Ok(())
}

/// A name as an error message shows it: quoted, with control bytes escaped.
pub fn quoted(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_a_directory_are_refused() {
        assert_eq!(check_name(b""), Err(BadName::Empty));
        assert_eq!(check_name(b"."), Err(BadName::Dot));
        assert_eq!(check_name(b".."), Err(BadName::DotDot));
        assert_eq!(check_name(b"/tmp/x/pwned"), Err(BadName::Slash));
        assert_eq!(check_name(b"a\0b"), Err(BadName::Nul));
        for ok in [&b"a"[..], b"...", b".hidden", b"a b", b"\xff\xfe", b"..x"] {
            assert_eq!(check_name(ok), Ok(()), "{}", quoted(ok));
        }
    }

    #[test]
    fn hard_link_targets_must_stay_below_the_snapshot_root() {
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../../outside/victim",
            b"a/../b",
            b"a/./b",
            b"a//b",
            b"a/",
            b"a/b\0",
        ] {
            assert!(check_link_target(bad).is_err(), "{}", quoted(bad));
        }
        assert_eq!(check_link_target(b"a/victim"), Ok(()));
        assert_eq!(check_link_target(b"file"), Ok(()));
    }
}
