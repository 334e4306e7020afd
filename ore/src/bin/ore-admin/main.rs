//! `ore-admin ARCHIVE-ID [COMMAND [ARGS...]]`: a backend's admin interface.

mod admin;
#[path = "../shared/args.rs"]
mod args;
mod metrics;

use admin::{Outcome, Output};
use clap::Parser;

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
///   ore-admin 'backend-splitlog /data' verify --json || echo damaged
///   ore-admin /mnt/ore metrics /var/lib/node_exporter/ore.prom   (Prometheus text)
///
/// Exit status: 0 when every command ran and none reported damage; 1 when a command failed
/// (the error is on stderr) or reported damage. A command reports damage by listing it: in
/// the text, and in its JSON's top-level `problems` array, one entry per problem (an empty
/// array means it looked and found none). A command that repairs what it finds still lists
/// it, so the run that found damage exits 1 and the next, clean one exits 0. At the prompt,
/// the status says whether any command failed or reported damage.
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
    let mut args: Args = args::parse_args();
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
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(args: &Args, output: Output) -> anyhow::Result<Outcome> {
    let (archive, command) = match (&args.archive_opt, args.words.split_first()) {
        (Some(a), _) => (a.as_str(), &args.words[..]),
        (None, Some((a, rest))) => (a.as_str(), rest),
        (None, None) => anyhow::bail!(
            "no archive given: name it first (ore-admin 'backend-fs /mnt/ore' help) or with -a"
        ),
    };
    if let Some(("metrics", rest)) = command.split_first().map(|(c, r)| (c.as_str(), r)) {
        let up = metrics::run(archive, rest.first().map(String::as_str))?;
        return Ok(Outcome {
            failures: usize::from(!up),
            damaged: 0,
        });
    }
    let backend = ore::core::archive::open_single(archive)?;
    if command.is_empty() {
        return admin::interactive(&*backend, archive, output);
    }
    let answer = admin::run_one(&*backend, command, output, &mut std::io::stdout().lock())?;
    Ok(Outcome {
        failures: 0,
        damaged: usize::from(!answer.problems().is_empty()),
    })
}
