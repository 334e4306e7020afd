//! The access flags every backend program takes, `--append-only` and `--read-only`, and the
//! [`main`] every backend program starts with.
//!
//! A backend is often started by an ssh forced command on the machine that holds the archive;
//! these two flags are how that command limits what the connecting machine may do. Each
//! program used to declare them itself, with help texts that had drifted apart; this is the one
//! declaration, flattened into each program's clap arguments (`#[command(flatten)]`). The
//! meaning of the pair lives with the rule that enforces it, `protocol::restrict::Access`
//! (`Access::from_flags`): this crate sits below `protocol` and cannot name it.

/// Parses the program's arguments and runs it, the way every backend program starts: an error
/// is printed whole on stderr (`error: ` and, with `{:#}`, each cause after a colon) and the
/// program exits 1.
pub fn main<A: clap::Parser, E: std::fmt::Display>(run: impl FnOnce(A) -> Result<(), E>) {
    if let Err(e) = run(A::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `--append-only` and `--read-only`.
#[derive(clap::Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessFlags {
    /// Accept puts and tag moves only: refuse removals, tag removals and admin commands that
    /// change anything (for an ssh forced command on a machine that makes backups).
    #[arg(long)]
    pub append_only: bool,
    /// Serve reads only; refuse puts, removals and tag changes.
    #[arg(long)]
    pub read_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Program {
        dir: String,
        #[command(flatten)]
        access: AccessFlags,
    }

    #[test]
    fn the_flags_parse_beside_a_programs_own_arguments() {
        let p = Program::try_parse_from(["b", "/x", "--read-only"]).unwrap();
        assert_eq!(p.dir, "/x");
        assert!(p.access.read_only && !p.access.append_only);
        let p = Program::try_parse_from(["b", "--append-only", "/x"]).unwrap();
        assert!(p.access.append_only && !p.access.read_only);
        assert_eq!(
            Program::try_parse_from(["b", "/x"]).unwrap().access,
            AccessFlags::default()
        );
    }
}
