//! Parsing a binary's command line, shared by `ore` and `ore-admin` (each includes this file
//! as its own module: the library knows nothing of command lines).

/// The command line parsed as `T`; a bad one is reported and ends the process with status 1,
/// like every other error (clap's own is 2), so that scripts see Ore's exit codes: 0 success,
/// 1 error, 3 completed with warnings. `--help` and `--version` print and exit 0.
pub fn parse_args<T: clap::Parser>() -> T {
    T::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 })
    })
}
