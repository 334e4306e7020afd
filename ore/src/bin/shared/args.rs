//! Parsing a binary's command line, shared by `ore` and `ore-admin` (each includes this file
//! as its own module: the library knows nothing of command lines).

/// The command line parsed as `T`; a bad one is reported and ends the process with status 1,
/// like every other error (clap's own is 2), so that scripts see Ore's exit codes: 0 success,
/// 1 error, 3 completed with warnings. `--help` and `--version` print and exit 0.
///
/// A bad command line is said as every other error is, `PROGRAM: error: ...` (clap's own
/// begins `error: `), so that one look at the first line tells whose message it is.
pub fn parse_args<T: clap::Parser + clap::CommandFactory>() -> T {
    T::try_parse().unwrap_or_else(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            std::process::exit(0)
        }
        let text = e.render().to_string();
        let name = T::command().get_name().to_string();
        eprint!("{name}: {}", text.trim_start());
        std::process::exit(1)
    })
}
