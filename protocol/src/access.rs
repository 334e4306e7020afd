//! What a connection may do: full access, append-only or read-only.
//!
//! The level is chosen by a backend program's own flags (`--append-only`, `--read-only`, usually
//! forced by an ssh `authorized_keys` line), enforced by [`crate::restrict`], and carried by
//! every ticket and relay preamble with which a connection attaches to the archive's holder
//! ([`crate::tickets`], [`crate::share`]). It has its own module so that each of those can name
//! it without depending on the others.

/// What a connection may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Full,
    /// Puts and tag moves; no removals, no tag removals, no changing admin commands.
    AppendOnly,
    /// Reads only.
    ReadOnly,
}

impl Access {
    /// From a program's `--append-only` and `--read-only` flags.
    pub fn from_flags(append_only: bool, read_only: bool) -> Access {
        match (append_only, read_only) {
            (_, true) => Access::ReadOnly,
            (true, false) => Access::AppendOnly,
            (false, false) => Access::Full,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Access::Full => "full",
            Access::AppendOnly => "append-only",
            Access::ReadOnly => "read-only",
        }
    }
}
