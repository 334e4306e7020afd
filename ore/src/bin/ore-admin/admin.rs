//! `ore-admin`: running a backend's admin commands, once or at an interactive prompt.
//!
//! Every backend answers `help` and `info`; the rest depends on the backend (and proxies pass
//! unknown commands on to what they wrap), so this client knows no command names. It only
//! splits lines into words, sends them, and prints the text or the JSON answer.
//!
//! Nor does it know which commands look for damage: an answer reports damage when its JSON has
//! a non-empty top-level `problems` array (PROTOCOL.md §6, "admin"; [`AdminOutput::problems`]),
//! whichever backend, proxy or version sent it. `ore-admin` turns that into its exit status, so
//! a script or a cron job learns of damage without parsing the text.

use protocol::{AdminOutput, Backend};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// How answers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// How a session of admin commands went: what `ore-admin` exits with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Commands that failed (an error, bad words).
    pub failures: usize,
    /// Commands whose answer reported damage.
    pub damaged: usize,
}

impl Outcome {
    /// The exit status: 0 when every command ran and none reported damage, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failures + self.damaged > 0)
    }
}

/// Runs one admin command and prints its answer to `out`; returns the answer (whose
/// [`AdminOutput::problems`] say whether it reported damage).
pub fn run_one(
    backend: &dyn Backend,
    words: &[String],
    output: Output,
    out: &mut dyn Write,
) -> anyhow::Result<AdminOutput> {
    let Some((command, args)) = words.split_first() else {
        anyhow::bail!("no admin command given (try `help`)");
    };
    let answer = backend.admin(command, args)?;
    match output {
        Output::Text => {
            out.write_all(answer.text.as_bytes())?;
            if !answer.text.is_empty() && !answer.text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
        }
        Output::Json => writeln!(out, "{}", answer.json)?,
    }
    out.flush()?;
    Ok(answer)
}

/// Where the prompt keeps its history.
fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("ore").join("admin_history"))
}

/// Reads commands until `quit`, `exit` or end of input: with line editing and history on a
/// terminal, one command per line otherwise (so sessions can be scripted). Returns how many
/// commands failed and how many reported damage; when any did, says so on stderr at the end.
pub fn interactive(
    backend: &dyn Backend,
    archive: &str,
    output: Output,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let result = prompt(backend, archive, output, &mut outcome);
    if outcome.damaged > 0 {
        eprintln!(
            "{} command(s) reported damage (exit status 1)",
            outcome.damaged
        );
    }
    result.map(|()| outcome)
}

fn prompt(
    backend: &dyn Backend,
    archive: &str,
    output: Output,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    let mut handle = |line: &str, outcome: &mut Outcome| -> bool {
        let words = match shell_words::split(line) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: cannot split {line:?} into words: {e}");
                outcome.failures += 1;
                return true;
            }
        };
        match words.first().map(String::as_str) {
            None => true,
            Some("quit" | "exit") => false,
            Some(_) => {
                match run_one(backend, &words, output, &mut stdout) {
                    Ok(answer) if !answer.problems().is_empty() => outcome.damaged += 1,
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        outcome.failures += 1;
                    }
                }
                true
            }
        }
    };
    if !std::io::stdin().is_terminal() {
        for line in std::io::stdin().lock().lines() {
            if !handle(&line?, outcome) {
                break;
            }
        }
        return Ok(());
    }
    let info = backend.info();
    println!(
        "{} — {}\nType `help` for the backend's commands, `quit` to leave.",
        info.server, info.description
    );
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let prompt = format!("{archive}> ");
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if !handle(&line, outcome) {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    Ok(())
}
