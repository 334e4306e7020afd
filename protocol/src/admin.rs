//! What every backend's admin commands share: the table's entry type, the dispatch over it,
//! the refusal of arguments a command does not take, and the five entries every store keeps for
//! its owner (the tag history, `history`, and the record of blocks restricted connections
//! stored, `provenance`).
//!
//! Each backend used to write the same `names()`/`run()` pair around its table, the same five
//! history and provenance entries, and its own copy of "takes no arguments" (in wordings that
//! had drifted apart). A backend now writes its table of sections ([`Table`]: its own entries,
//! with [`records`] among them where `help` lists them) and implements [`Records`]; the welcome's
//! list ([`names`]), `help` ([`help`]) and the dispatch ([`dispatch`]) read that table.

use crate::backend::{admin_help, admin_names, unknown_admin, AdminCommand, AdminOutput};
use crate::error::{Error, ErrorCode, Result};
use crate::{history, provenance};

/// One entry of a backend's admin table: the command's name, arguments and help, and its
/// handler.
pub type Spec<B> = ore_util::admin::Spec<B, AdminCommand, Result<AdminOutput>>;

/// A backend's admin table: sections of entries, in the order `help` lists them.
pub type Table<B> = [&'static [Spec<B>]];

/// The entry for the command `name` with arguments `args` (as `help` shows them, "" for none),
/// described by `help` and run by `run`.
pub const fn entry<B>(
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: fn(&B, &[String]) -> Result<AdminOutput>,
) -> Spec<B> {
    Spec::new(AdminCommand { name, args, help }, run)
}

/// The commands of `table`, in order (for `help` and the "unknown command" answer).
pub fn commands<B>(table: &Table<B>) -> Vec<AdminCommand> {
    ore_util::admin::abouts(table)
}

/// The names of the commands of `table`, for the welcome ([`crate::BackendInfo`]).
pub fn names<B>(table: &Table<B>) -> Vec<String> {
    admin_names(&commands(table))
}

/// The `help` answer of `server` for `table`.
pub fn help<B>(server: &str, table: &Table<B>) -> AdminOutput {
    admin_help(server, &commands(table))
}

/// The entry of `table` for `command`, if it has one.
pub fn find<'a, B>(table: &'a Table<B>, command: &str) -> Option<&'a Spec<B>> {
    ore_util::admin::find(table, |c| c.name == command)
}

/// Runs `command` with `args` on `backend` by its entry in `table`; a command the table does
/// not have is refused, naming the ones it has.
pub fn dispatch<B>(
    table: &Table<B>,
    backend: &B,
    command: &str,
    args: &[String],
) -> Result<AdminOutput> {
    match find(table, command) {
        Some(spec) => (spec.run)(backend, args),
        None => Err(unknown_admin(command, &commands(table))),
    }
}

/// Refuses arguments given to `command`, which takes none.
pub fn no_args(command: &str, args: &[String]) -> Result<()> {
    if args.is_empty() {
        return Ok(());
    }
    Err(Error::backend(
        ErrorCode::Admin,
        format!("`{command}` takes no arguments, got {}", args.join(" ")),
    ))
}

/// What a store keeps for its owner and answers through [`records`]' five commands; each store
/// keeps it its own way. The argument rules and answer shapes are `history`'s and
/// `provenance`'s.
pub trait Records {
    /// `tag-history [NAME]`.
    fn tag_history(&self, args: &[String]) -> Result<AdminOutput>;
    /// `expire-tag-history SECONDS [NAME]`.
    fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput>;
    /// `unvouched [AFTER|- [LIMIT]]`: a page of the blocks restricted connections stored.
    fn unvouched(&self, args: &[String]) -> Result<AdminOutput>;
    /// `vouch KEY...` and `mark-unvouched KEY...` (`command`): forgets or records who stored
    /// each block.
    fn record_vouching(&self, command: &str, args: &[String]) -> Result<AdminOutput>;
}

/// The tag history and provenance entries, in the order every backend's `help` lists them.
pub const fn records<B: Records>() -> [Spec<B>; 5] {
    [
        Spec::new(history::READ_COMMAND, B::tag_history),
        Spec::new(history::EXPIRE_COMMAND, B::expire_tag_history),
        Spec::new(provenance::UNVOUCHED_COMMAND, B::unvouched),
        Spec::new(provenance::VOUCH_COMMAND, vouch::<B>),
        Spec::new(provenance::MARK_COMMAND, mark::<B>),
    ]
}

fn vouch<B: Records>(b: &B, args: &[String]) -> Result<AdminOutput> {
    b.record_vouching(provenance::VOUCH, args)
}

fn mark<B: Records>(b: &B, args: &[String]) -> Result<AdminOutput> {
    b.record_vouching(provenance::MARK, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that answers each command with its own name and arguments.
    struct Echo;

    fn echo(command: &str, args: &[String]) -> Result<AdminOutput> {
        Ok(AdminOutput::new(
            format!("{command} {}", args.join(" ")),
            serde_json::Value::Null,
        ))
    }

    impl Records for Echo {
        fn tag_history(&self, args: &[String]) -> Result<AdminOutput> {
            echo(history::TAG_HISTORY, args)
        }
        fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput> {
            echo(history::EXPIRE, args)
        }
        fn unvouched(&self, args: &[String]) -> Result<AdminOutput> {
            echo(provenance::UNVOUCHED, args)
        }
        fn record_vouching(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
            echo(command, args)
        }
    }

    const TABLE: &Table<Echo> = &[
        &[entry("info", "", "what it is", |_, args| {
            no_args("info", args)?;
            echo("info", args)
        })],
        &records::<Echo>(),
        &[entry("last", "N", "the last one", |_, args| {
            echo("last", args)
        })],
    ];

    fn run(command: &str, args: &[&str]) -> Result<String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        dispatch(TABLE, &Echo, command, &args).map(|o| o.text)
    }

    #[test]
    fn a_table_lists_its_sections_in_order_and_runs_each_entry() {
        assert_eq!(
            names(TABLE),
            [
                "info",
                "tag-history",
                "expire-tag-history",
                "unvouched",
                "vouch",
                "mark-unvouched",
                "last"
            ]
        );
        assert_eq!(run("vouch", &["k"]).unwrap(), "vouch k");
        assert_eq!(run("mark-unvouched", &["k"]).unwrap(), "mark-unvouched k");
        assert_eq!(
            run("expire-tag-history", &["5"]).unwrap(),
            "expire-tag-history 5"
        );
        assert_eq!(run("last", &["1"]).unwrap(), "last 1");
        let help = help("echo", TABLE).text;
        assert!(
            help.starts_with("Admin commands of echo:\n  info "),
            "{help}"
        );
        assert!(help.contains("  last N "), "{help}");
    }

    #[test]
    fn an_unknown_command_and_unwanted_arguments_are_refused_by_name() {
        let e = run("nope", &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("unknown admin command `nope`; this backend has: info, tag-history,"),
            "{e}"
        );
        let e = run("info", &["a", "b"]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Admin);
        assert_eq!(e.to_string(), "`info` takes no arguments, got a b");
    }
}
