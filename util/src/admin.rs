//! A backend's admin commands as one typed table: each entry holds what `help` says of the
//! command and the function that runs it.
//!
//! Backends used to keep a list of names and help lines in one place and a long `match` on the
//! command string in another, so that a command could be listed and not run, or run and not
//! listed. With a table of [`Spec`]s, `help`, the welcome's list of commands, the "unknown
//! command" answer and the dispatch all read the same entries.
//!
//! The entry is generic over its description `C` and the handler's answer `R` because this crate
//! sits below `protocol`: a backend uses it as `Spec<Self, protocol::AdminCommand,
//! protocol::Result<AdminOutput>>`, so that the shared commands protocol describes
//! (`protocol::history::READ_COMMAND`, ...) are entries like any other.

/// One admin command: what `help` says of it, and what runs it (with the command's arguments).
pub struct Spec<B: ?Sized, C, R> {
    pub about: C,
    pub run: fn(&B, &[String]) -> R,
}

impl<B: ?Sized, C, R> Spec<B, C, R> {
    /// The entry for `about`, run by `run`.
    pub const fn new(about: C, run: fn(&B, &[String]) -> R) -> Self {
        Spec { about, run }
    }
}

/// The descriptions of a table's commands, in the table's order (for `help`, the welcome's
/// list of commands and the "unknown command" answer).
pub fn abouts<B: ?Sized, C: Copy, R>(table: &[Spec<B, C, R>]) -> Vec<C> {
    table.iter().map(|s| s.about).collect()
}

/// The entry of `table` for which `is` says yes (the one named like the command asked for).
pub fn find<B: ?Sized, C, R>(
    table: &[Spec<B, C, R>],
    is: impl Fn(&C) -> bool,
) -> Option<&Spec<B, C, R>> {
    table.iter().find(|s| is(&s.about))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u32);

    fn twice(c: &Counter, args: &[String]) -> Result<String, String> {
        Ok(format!("{} {}", c.0 * 2, args.join(",")))
    }

    fn fail(_: &Counter, _: &[String]) -> Result<String, String> {
        Err("no".into())
    }

    const TABLE: &[Spec<Counter, &str, Result<String, String>>] =
        &[Spec::new("twice", twice), Spec::new("fail", fail)];

    #[test]
    fn a_table_runs_the_entry_it_finds_and_lists_every_description() {
        assert_eq!(abouts(TABLE), ["twice", "fail"]);
        let spec = find(TABLE, |a| *a == "twice").unwrap();
        assert_eq!((spec.run)(&Counter(4), &["x".into()]), Ok("8 x".into()));
        assert_eq!(
            (find(TABLE, |a| *a == "fail").unwrap().run)(&Counter(1), &[]),
            Err("no".into())
        );
        assert!(find(TABLE, |a| *a == "other").is_none());
    }
}
