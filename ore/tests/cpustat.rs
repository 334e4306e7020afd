//! Stage timing (`ore::core::cpustat`) in a process of its own: its counters are global, and
//! no other test here times stages.

use ore::core::cpustat::{enable, report, time, Stage};

/// This thread's CPU time, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Busy for `ms` of this thread's CPU time (not of the clock's: on a loaded machine a spin
/// of 40 ms by the clock got 19 ms of CPU, and the test failed).
fn spin(ms: u64) {
    let until = thread_cpu() + ms as f64 / 1000.0;
    let mut x = 0u64;
    while thread_cpu() < until {
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    std::hint::black_box(x);
}

#[test]
fn nested_stages_charge_only_the_innermost_and_waiting_is_not_counted() {
    enable();
    time(Stage::Index, || {
        spin(30);
        time(Stage::Compress, || spin(40));
        std::thread::sleep(std::time::Duration::from_millis(50));
        spin(30);
    });
    let (stages, process) = report();
    let of = |s: Stage| stages.iter().find(|(t, _)| *t == s).map_or(0.0, |x| x.1);
    assert!(
        (0.035..0.1).contains(&of(Stage::Compress)),
        "compress, its 40 ms: {}",
        of(Stage::Compress)
    );
    assert!(
        (0.05..0.1).contains(&of(Stage::Index)),
        "index, its own 60 ms without the nested 40 or the 50 asleep: {}",
        of(Stage::Index)
    );
    assert_eq!(of(Stage::Walk), 0.0, "a stage never entered has nothing");
    assert!(process >= of(Stage::Index) + of(Stage::Compress));
}
