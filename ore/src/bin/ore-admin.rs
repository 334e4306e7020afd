//! `ore-admin ARCHIVE-ID [COMMAND [ARGS...]]`: a backend's admin interface.

use clap::Parser;
use ore::admin::{self, Output};

/// Run admin commands on any Ore backend.
///
/// With a command, runs it once and prints the answer. Without one, opens a prompt (line
/// editing and history on a terminal; one command per line from a pipe).
///
/// Examples:
///   ore-admin 'backend-fs /mnt/ore' help
///   ore-admin 'backend-fs /mnt/ore' stats --json
///   ore-admin "ssh nas backend-fs /data" info
///   echo stats | ore-admin 'backend-fs /mnt/ore'
#[derive(Parser)]
#[command(name = "ore-admin", version, verbatim_doc_comment)]
struct Args {
    /// The archive identifier, as an option (then every word is part of the command).
    #[arg(short = 'a', long = "archive", value_name = "ARCHIVE-ID")]
    archive_opt: Option<String>,
    /// The archive identifier (the command line that starts its backend), then the admin
    /// command and its arguments; no command opens a prompt.
    #[arg(
        value_name = "ARCHIVE-ID [COMMAND [ARGS...]]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    words: Vec<String>,
    /// Print the machine-readable (JSON) answer instead of text.
    #[arg(long, global = true)]
    json: bool,
}

fn main() {
    let mut args: Args = ore::util::parse_args();
    // `--json` may also come after the command words.
    if let Some(i) = args.words.iter().position(|w| w == "--json") {
        args.words.remove(i);
        args.json = true;
    }
    let output = if args.json {
        Output::Json
    } else {
        Output::Text
    };
    let code = match run(&args, output) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(args: &Args, output: Output) -> anyhow::Result<usize> {
    let (archive, command) = match (&args.archive_opt, args.words.split_first()) {
        (Some(a), _) => (a.as_str(), &args.words[..]),
        (None, Some((a, rest))) => (a.as_str(), rest),
        (None, None) => anyhow::bail!(
            "no archive given: name it first (ore-admin 'backend-fs /mnt/ore' help) or with -a"
        ),
    };
    let backend = ore::archive::open_single(archive)?;
    if command.is_empty() {
        return admin::interactive(&*backend, archive, output);
    }
    admin::run_one(&*backend, command, output, &mut std::io::stdout().lock())?;
    Ok(0)
}
