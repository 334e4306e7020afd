//! The short, fixed-seed run of the crash and damage campaign (`ore_tests::campaign`): a few
//! kill points of snapshot, gc, forget and sync and a few damage trials on each of the five
//! archive kinds. The long run is `bench/campaign.sh` (docs/CAMPAIGN.md).

use ore_tests::campaign::{run, Config, Kind};

#[test]
fn kills_and_damage_on_every_archive_kind_break_no_invariant() {
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
        kills: 20,
        corruptions: 20,
        kinds: Kind::ALL.to_vec(),
        scale: 80,
        scratch: dir.path().to_path_buf(),
        verbose: true,
        deadline: None,
    };
    let report = run(&cfg);
    eprint!("{report}");
    assert_eq!(report.killed(), 20, "runs killed mid-operation:\n{report}");
    assert_eq!(report.trial_total().trials, 20, "{report}");
    assert!(
        report.violations.is_empty(),
        "invariants broken (replay: bench/campaign.sh with the seed, CAMPAIGN_KINDS=KIND and \
         the step's number + 1 kill points per kind):\n{report}"
    );
}
