//! `ore`: the frontend. A thin layer over the `ore` library: parse arguments, open the
//! archive, run one command, print, and map the result to an exit status (0 success, 1 error,
//! 3 completed with warnings).

mod archival;
#[path = "../shared/args.rs"]
mod args;
mod browse;
mod cache;
mod checks;
mod cli;
mod config;
mod copy;
mod explore;
mod found;
mod history;
mod keep;
mod keys;
mod metrics;
mod pass;
mod preview;
mod progress;
mod save;
mod shell;
mod summary;
mod watch;

use anyhow::{anyhow, Context, Result};
use cli::{Cli, Command};
use ore::core::repo::Repo;
use std::io::IsTerminal;
use std::sync::Arc;

/// How a command ended when it did not fail.
pub enum Done {
    Clean,
    Warnings,
}

/// What every command gets.
pub struct Env {
    pub global: cli::Global,
    pub config: config::Config,
    pub pass: pass::Source,
}

/// What a command does with the archive, which decides how many connections it gets.
#[derive(Clone, Copy)]
enum Use {
    /// Moves many blocks: several connections over a slow link.
    Bulk,
    /// Exchanges a few small blocks: one connection.
    Brief,
    /// Moves many blocks, and has work to do before it needs the keys (a snapshot): they are
    /// derived meanwhile ([`Repo::open_unlocking`]).
    Unlocking,
}

impl Env {
    /// The directory of this machine's file caches and lease hints: the config's
    /// `cache_dir`, else the default under the user's cache directory.
    pub fn cache_dir(&self) -> Option<std::path::PathBuf> {
        self.config
            .cache_dir
            .clone()
            .or_else(ore::core::filecache::default_dir)
    }

    /// The archive identifier.
    pub fn archive_id(&self) -> Result<String> {
        self.global
            .archive
            .clone()
            .or_else(|| self.config.archive.clone())
            .ok_or_else(|| anyhow!("no archive given: use -a/--archive ID, set ORE_ARCHIVE, or `archive` in the config file"))
    }

    /// Opens the archive and unlocks it, for a command that may move much data (over a slow
    /// link it gets several connections, see [`ore::core::archive::LANES_ENV`]).
    pub fn open(&self) -> Result<Repo> {
        self.open_other(&self.archive_id()?, &self.pass)
    }

    /// Opens the archive and unlocks it over one connection, for a command that reads or
    /// writes a few small blocks (tags, logs, keys): extra connections would not make it
    /// faster, and over a slow link it would end only once they had opened and closed.
    pub fn open_brief(&self) -> Result<Repo> {
        let id = self.archive_id()?;
        Ok(self.open_with(&id, &self.pass, Use::Brief, |_| ())?.0)
    }

    /// Opens the archive like [`Env::open`], with its keys derived in the background (see
    /// [`Repo::open_unlocking`]); [`Repo::unlocked`] says whether the passphrase was right.
    pub fn open_unlocking(&self) -> Result<Repo> {
        let id = self.archive_id()?;
        Ok(self.open_with(&id, &self.pass, Use::Unlocking, |_| ())?.0)
    }

    /// Opens the archive `id` and unlocks it with a passphrase from `source`.
    pub fn open_other(&self, id: &str, source: &pass::Source) -> Result<Repo> {
        Ok(self.open_with(id, source, Use::Bulk, |_| ())?.0)
    }

    /// Opens the archive and resolves the snapshot `name`, whose tag and block are read while
    /// the archive is being unlocked (see [`ore::core::spec::Ahead`]).
    pub fn open_at(&self, name: &str) -> Result<(Repo, ore::core::entry::Snapshot)> {
        self.open_at_for(name, Use::Bulk)
    }

    /// [`Env::open_at`] over one connection (see [`Env::open_brief`]).
    pub fn open_at_brief(&self, name: &str) -> Result<(Repo, ore::core::entry::Snapshot)> {
        self.open_at_for(name, Use::Brief)
    }

    fn open_at_for(&self, name: &str, how: Use) -> Result<(Repo, ore::core::entry::Snapshot)> {
        let (repo, ahead) = self.open_with(&self.archive_id()?, &self.pass, how, |backend| {
            ore::core::spec::Ahead::start(backend, name)
        })?;
        let (_, snap) = ore::core::spec::resolve_with(&repo, name, ahead)?;
        Ok((repo, snap))
    }

    /// Opens the archive `id`, starts `early` on its backend, and unlocks it.
    fn open_with<T>(
        &self,
        id: &str,
        source: &pass::Source,
        how: Use,
        early: impl FnOnce(&Arc<dyn protocol::Backend>) -> T,
    ) -> Result<(Repo, T)> {
        let backend = match how {
            Use::Bulk | Use::Unlocking => ore::core::archive::open_existing(id)?,
            Use::Brief => ore::core::archive::open_existing_single(id)?,
        };
        let started = early(&backend);
        let pass = |p: &str| {
            source
                .get(p)
                .map_err(|e| ore::Error::Usage(format!("{e:#}")))
        };
        let repo = match how {
            Use::Unlocking => Repo::open_unlocking(backend, id, &pass)?,
            Use::Bulk | Use::Brief => Repo::open(backend, id, &pass)?,
        };
        Ok((repo, started))
    }

    /// Whether to draw progress: on a terminal, and neither quiet nor JSON.
    pub fn show_progress(&self) -> bool {
        std::io::stderr().is_terminal() && !self.global.quiet && !self.global.json
    }

    /// Prints a JSON value on one line.
    pub fn json(&self, v: &serde_json::Value) -> Result<()> {
        out(&format!("{v}\n"))
    }
}

/// Writes to stdout; a closed pipe ends the program quietly.
pub fn out(s: &str) -> Result<()> {
    out_bytes(s.as_bytes())
}

/// Writes bytes to stdout; a closed pipe ends the program quietly.
pub fn out_bytes(b: &[u8]) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(b) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.context("writing to standard output"),
    }
}

/// Draws progress on a terminal while `f` runs.
pub fn with_progress<T>(
    env: &Env,
    f: impl FnOnce(Option<Arc<ore::core::progress::Progress>>) -> T,
) -> T {
    with_progress_of(env, "files", f)
}

/// Shows progress counting `unit` ("blocks") while `f` runs: a bar on a terminal, or with
/// `--json` a JSON line on stderr each second (and one at the end) for wrappers and GUIs.
pub fn with_progress_of<T>(
    env: &Env,
    unit: &'static str,
    f: impl FnOnce(Option<Arc<ore::core::progress::Progress>>) -> T,
) -> T {
    let json = env.global.json && !env.global.quiet;
    if !env.show_progress() && !json {
        return f(None);
    }
    let p = Arc::new(ore::core::progress::Progress::counting(unit));
    let drawer = {
        let p = p.clone();
        std::thread::spawn(move || match json {
            true => progress::json_lines(&p),
            false => progress::bar(&p),
        })
    };
    let r = f(Some(p.clone()));
    p.done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = drawer.join();
    r
}

fn run(cli: Cli) -> Result<Done> {
    // Generated from the command line alone: no config, archive or passphrase involved.
    match &cli.command {
        Command::Completions { shell } => return shell::completions(*shell),
        Command::Man { dir } => return shell::man(dir.as_deref()),
        _ => {}
    }
    let config = config::load(cli.global.config.as_deref())?;
    let env = Env {
        pass: pass::Source {
            file: cli.global.passphrase_file.clone(),
            command: cli.global.passphrase_command.clone(),
            config_command: config.passphrase_command.clone(),
        },
        global: cli.global,
        config,
    };
    protocol::log::set_sink(Some(Arc::new(Sink {
        quiet: env.global.quiet,
        started: std::time::Instant::now(),
    })));
    let result = match cli.command {
        Command::Init(a) => save::init(&env, a),
        Command::Snapshot(a) => save::snapshot(&env, a),
        Command::Watch(a) => watch::watch(&env, a),
        Command::Import(a) => archival::import(&env, a),
        Command::Search(a) => archival::search(&env, a),
        Command::Props(a) => archival::props(&env, a),
        Command::Restore(a) => save::restore(&env, a),
        Command::Ls(a) => browse::ls(&env, a),
        Command::Cat(a) => browse::cat(&env, a),
        Command::Log(a) => browse::log(&env, a),
        Command::Snapshots(a) => browse::snapshots(&env, a),
        Command::Find(a) => found::find(&env, a),
        Command::Stats(a) => found::stats(&env, a),
        Command::Tags => browse::tags(&env),
        Command::Fork(a) => browse::fork(&env, a),
        Command::Key(k) => keys::run(&env, k),
        Command::Check(a) => checks::check(&env, a),
        Command::Diff(a) => checks::diff(&env, a),
        Command::Sync(a) => copy::sync(&env, a),
        Command::Explore { tag } => explore::explore(&env, tag),
        Command::Mount { mountpoint, tag } => explore::mount(&env, &mountpoint, tag),
        Command::Dump(a) => copy::dump(&env, a),
        Command::Load(a) => copy::load(&env, a),
        Command::Forget(a) => keep::forget(&env, a),
        Command::Gc(a) => keep::gc(&env, a),
        Command::Reset(a) => keep::reset(&env, a),
        Command::Reflog(a) => keep::reflog(&env, a),
        Command::TagHistory(a) => history::tag_history(&env, a),
        Command::RestoreFormat => history::restore_format(&env),
        Command::Upgrade => history::upgrade(&env),
        Command::Cache(a) => cache::run(&env, a),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
    };
    // An error the backend answered with does not know which archive it came from: say it.
    result.map_err(|e| {
        let from_backend = matches!(
            e.downcast_ref::<ore::Error>(),
            Some(ore::Error::Backend(protocol::Error::Backend { .. }))
        );
        match (from_backend, env.archive_id()) {
            (true, Ok(id)) => e.context(format!("archive {id}")),
            _ => e,
        }
    })
}

/// Messages on stderr: warnings and errors always, information unless quiet, debug with
/// `ORE_DEBUG` (with the seconds since `started`).
struct Sink {
    quiet: bool,
    started: std::time::Instant,
}

impl protocol::log::LogSink for Sink {
    fn log(&self, level: protocol::Level, message: &str) {
        let show = match level {
            protocol::Level::Debug => std::env::var_os("ORE_DEBUG").is_some(),
            protocol::Level::Info => !self.quiet,
            _ => true,
        };
        if show && level == protocol::Level::Debug {
            // Debug lines say when, for reading a slow run's story.
            let t = self.started.elapsed().as_secs_f64();
            eprintln!("ore: debug: [{t:.3} s] {message}");
        } else if show {
            eprintln!("ore: {}: {message}", level.name());
        }
    }
}

fn main() {
    let cli: Cli = args::parse_args();
    // Before any thread starts. Only a snapshot's buffers need it (see the function).
    if matches!(cli.command, Command::Snapshot(_) | Command::Watch(_)) {
        ore::core::util::return_large_buffers();
    }
    // Every client this process starts (and, through their environment, every proxy's inner
    // client) reads the limit from the environment.
    std::env::set_var(
        protocol::duration::TIMEOUT_ENV,
        cli.global.timeout.as_secs_f64().to_string(),
    );
    if let Some(file) = cli.global.metrics_file.clone() {
        metrics::start(file, metrics::command_name(&cli.command));
    }
    let code = match ore::core::lease::ttl_setting()
        .map_err(anyhow::Error::msg)
        .and_then(|_| run(cli))
    {
        Ok(_) if ore::core::reflog::unrecorded_moves() > 0 => {
            eprintln!(
                "ore: warning: {} tag move(s) could not be recorded in the reflog (see above)",
                ore::core::reflog::unrecorded_moves()
            );
            3
        }
        Ok(Done::Clean) => 0,
        Ok(Done::Warnings) => 3,
        Err(e) => {
            eprintln!("ore: error: {e:#}");
            1
        }
    };
    metrics::finish(code);
    std::process::exit(code);
}
