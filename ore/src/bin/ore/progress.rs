//! Drawing a run's progress: an `indicatif` bar on a terminal (bytes, rate and ETA once the
//! total is known, a spinner until then), or JSON lines on stderr with `--json`.

use ore::core::progress::Progress;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Draws `p` on stderr (a terminal) until it is done.
pub fn bar(p: &Progress) {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let unknown = indicatif::ProgressStyle::with_template(
        "{spinner} {msg}, {binary_bytes} ({binary_bytes_per_sec})",
    );
    let known = indicatif::ProgressStyle::with_template(
        "{msg}, {binary_bytes} of {binary_total_bytes} ({binary_bytes_per_sec}) {wide_bar} ETA {eta}",
    );
    let (Ok(unknown), Ok(known)) = (unknown, known) else {
        return;
    };
    bar.set_style(unknown);
    bar.set_message(format!("0 {}", p.now().unit));
    let mut total_set = false;
    while !p.done.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let c = p.now();
        if let (Some(t), false) = (c.total_bytes, total_set) {
            bar.set_style(known.clone());
            total_set = true;
            bar.set_length(t);
        }
        if let Some(t) = c.total_bytes {
            bar.set_length(t.max(c.bytes));
        }
        bar.set_position(c.bytes);
        bar.set_message(format!("{} {}", c.done, c.unit));
    }
    bar.finish_and_clear();
}

/// Prints `{"progress": {...}}` on stderr each second until `p` is done, and once more then.
pub fn json_lines(p: &Progress) {
    let mut waited = Duration::ZERO;
    loop {
        let done = p.done.load(Relaxed);
        if done || waited >= Duration::from_secs(1) {
            eprintln!("{}", serde_json::json!({ "progress": p.now() }));
            waited = Duration::ZERO;
        }
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
}
