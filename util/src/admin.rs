//! A backend's admin commands as one typed table: each entry holds what `help` says of the
//! command and the function that runs it.
//!
//! Backends used to keep a list of names and help lines in one place and a long `match` on the
//! command string in another, so that a command could be listed and not run, or run and not
//! listed. With a table of [`Spec`]s, `help`, the welcome's list of commands, the "unknown
//! command" answer and the dispatch all read the same entries.
//!
//! A table is a list of sections (`&[&[Spec]]`), listed and searched in order as if they
//! were one list. Sections let a table include entries written once for every backend (the
//! tag history and provenance commands, `protocol::admin::records`) among its own, which a
//! `const` slice could not otherwise splice in.
//!
//! The entry is generic over its description `C` and the handler's answer `R` because this crate
//! sits below `protocol`: a backend uses it as `protocol::admin::Spec<Self>`, that is
//! `Spec<Self, protocol::AdminCommand, protocol::Result<AdminOutput>>`, so that the shared
//! commands protocol describes (`protocol::history::READ_COMMAND`, ...) are entries like any
//! other.

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

/// The entries of `table`'s sections, in order.
fn entries<'a, B: ?Sized, C, R>(
    table: &'a [&'a [Spec<B, C, R>]],
) -> impl Iterator<Item = &'a Spec<B, C, R>> {
    table.iter().flat_map(|section| section.iter())
}

/// The descriptions of a table's commands, in the table's order (for `help`, the welcome's
/// list of commands and the "unknown command" answer).
pub fn abouts<B: ?Sized, C: Copy, R>(table: &[&[Spec<B, C, R>]]) -> Vec<C> {
    entries(table).map(|s| s.about).collect()
}

/// The first entry of `table` for which `is` says yes (the one named like the command asked
/// for).
pub fn find<'a, B: ?Sized, C, R>(
    table: &'a [&'a [Spec<B, C, R>]],
    is: impl Fn(&C) -> bool,
) -> Option<&'a Spec<B, C, R>> {
    entries(table).find(|s| is(&s.about))
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

    type Entry = Spec<Counter, &'static str, Result<String, String>>;

    const SHARED: &[Entry] = &[Spec::new("fail", fail)];
    const TABLE: &[&[Entry]] = &[
        &[Spec::new("twice", twice)],
        SHARED,
        &[Spec::new("last", twice)],
    ];

    #[test]
    fn a_table_runs_the_entry_it_finds_and_lists_every_description_in_order() {
        assert_eq!(abouts(TABLE), ["twice", "fail", "last"]);
        let spec = find(TABLE, |a| *a == "twice").unwrap();
        assert_eq!((spec.run)(&Counter(4), &["x".into()]), Ok("8 x".into()));
        assert_eq!(
            (find(TABLE, |a| *a == "fail").unwrap().run)(&Counter(1), &[]),
            Err("no".into())
        );
        assert_eq!(
            (find(TABLE, |a| *a == "last").unwrap().run)(&Counter(1), &[]),
            Ok("2 ".into())
        );
        assert!(find(TABLE, |a| *a == "other").is_none());
    }
}
