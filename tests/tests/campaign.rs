//! The short, fixed-seed run of the crash and damage campaign (`ore_tests::campaign`): a few
//! kill points of snapshot, gc, forget and sync and a few damage trials on each of the five
//! archive kinds. The long run is `bench/campaign.sh` (docs/CAMPAIGN.md).
//!
//! One test per kind: each kind's kill steps and trials come from `(seed, kind)` alone, so the
//! five tests do exactly what one run over all kinds did, and the test harness runs them side
//! by side (one test over all five took 100 s, alone on one core).

use ore_tests::campaign::{run, Config, Kind};

/// Four kill points and four damage trials on `kind`, with the fixed seed.
fn campaign_on(kind: Kind) {
    // Memory, when there is a /dev/shm: the campaign's many small runs sync their archives,
    // and nothing here needs a disk file system's features.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a scratch directory")
    } else {
        ore_tests::ore::scratch()
    };
    let cfg = Config {
        seed: 22,
        kills: 4,
        corruptions: 4,
        kinds: vec![kind],
        scale: 80,
        scratch: dir.path().to_path_buf(),
        verbose: true,
        deadline: None,
    };
    let report = run(&cfg);
    eprint!("{report}");
    assert_eq!(report.killed(), 4, "runs killed mid-operation:\n{report}");
    assert_eq!(report.trial_total().trials, 4, "{report}");
    assert!(
        report.violations.is_empty(),
        "invariants broken (replay: bench/campaign.sh with the seed, CAMPAIGN_KINDS={} and \
         the step's number + 1 kill points):\n{report}",
        kind.name()
    );
}

#[test]
fn kills_and_damage_on_an_embedded_archive_break_no_invariant() {
    campaign_on(Kind::Embedded);
}

#[test]
fn kills_and_damage_on_a_splitlog_backend_break_no_invariant() {
    campaign_on(Kind::Splitlog);
}

#[test]
fn kills_and_damage_on_an_fs_backend_break_no_invariant() {
    campaign_on(Kind::Fs);
}

#[test]
fn kills_and_damage_behind_a_cache_proxy_break_no_invariant() {
    campaign_on(Kind::Cache);
}

#[test]
fn kills_and_damage_on_a_replicated_archive_break_no_invariant() {
    campaign_on(Kind::Replicated);
}
