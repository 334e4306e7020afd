//! `campaign SEED KILLS CORRUPTIONS`: the long run of the crash and damage campaign (see
//! `ore_tests::campaign` and docs/CAMPAIGN.md), against the `ore` and backend programs next
//! to this one — `bench/campaign.sh` builds and runs it in release mode.
//!
//! Settings from the environment: `CAMPAIGN_KINDS` (comma-separated, default all five:
//! embedded,splitlog,fs,cache,replicated), `CAMPAIGN_SCALE` (small files in the tree, default
//! 300), `CAMPAIGN_DIR` (scratch directory, default the system's temporary directory),
//! `CAMPAIGN_VERBOSE=1` (a line per step), `CAMPAIGN_MINUTES` (start no step after that
//! long: the counts then say how far it got). Prints the counts; exits 1 when any invariant was
//! broken (each violation is printed with the seed, kind and step that replay it).

use ore_tests::campaign::{run, Config, Kind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    let (Some(seed), Some(kills), Some(corruptions)) = (num(0), num(1), num(2)) else {
        eprintln!("usage: campaign SEED KILLS CORRUPTIONS (see docs/CAMPAIGN.md)");
        std::process::exit(2);
    };
    let kinds = match std::env::var("CAMPAIGN_KINDS") {
        Ok(list) => {
            let parsed: Option<Vec<Kind>> = list.split(',').map(Kind::parse).collect();
            match parsed {
                Some(k) if !k.is_empty() => k,
                _ => {
                    eprintln!("CAMPAIGN_KINDS={list:?}: the kinds are embedded, splitlog, fs, cache, replicated");
                    std::process::exit(2);
                }
            }
        }
        Err(_) => Kind::ALL.to_vec(),
    };
    let scale = std::env::var("CAMPAIGN_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let base = std::env::var_os("CAMPAIGN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let scratch = match tempfile::Builder::new()
        .prefix("ore-campaign-")
        .tempdir_in(&base)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("campaign: a scratch directory in {}: {e}", base.display());
            std::process::exit(2);
        }
    };
    let cfg = Config {
        seed,
        kills: kills as usize,
        corruptions: corruptions as usize,
        kinds,
        scale,
        scratch: scratch.path().to_path_buf(),
        verbose: std::env::var("CAMPAIGN_VERBOSE").is_ok_and(|v| v == "1"),
        deadline: std::env::var("CAMPAIGN_MINUTES")
            .ok()
            .and_then(|m| m.parse::<u64>().ok())
            .map(|m| std::time::Instant::now() + std::time::Duration::from_secs(60 * m)),
    };
    let started = std::time::Instant::now();
    let report = run(&cfg);
    print!("{report}");
    println!("took {:.0} s", started.elapsed().as_secs_f64());
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}
