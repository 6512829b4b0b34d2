//! Crash injection for fault tests: `ANYGAN_FAILPOINTS=name=value,...` makes the process abort
//! (no unwinding, no cleanup, like a SIGKILL) at a named point. Unset, every check is one
//! relaxed load of a parsed-once list. Points:
//! - `abort-before-manifest=STEP`: a checkpoint of STEP uploaded its objects, not its manifest.
//! - `abort-after-step=STEP`: training finished STEP (worker).
//! - `abort-mid-generation=N`: the N-th batch of generated images this process wrote.

use std::sync::OnceLock;

/// The environment variable read once at first use.
pub const FAILPOINTS_ENV: &str = "ANYGAN_FAILPOINTS";

fn parsed() -> &'static [(String, u64)] {
    static POINTS: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(FAILPOINTS_ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|item| {
                let (name, value) = item.split_once('=')?;
                Some((name.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect()
    })
}

/// Aborts the process when failpoint `name` is armed for `value`.
pub fn hit(name: &str, value: u64) {
    if parsed().iter().any(|(n, v)| n == name && *v == value) {
        eprintln!("failpoint {name}={value}: aborting");
        std::process::abort();
    }
}

/// Counts calls of `name` in this process and aborts on the armed one (1-based).
pub fn hit_nth(name: &str) {
    use std::sync::Mutex;
    static COUNTS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let Some(armed) = parsed().iter().find(|(n, _)| n == name).map(|(_, v)| *v) else {
        return;
    };
    let count = {
        let mut counts = COUNTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match counts.iter_mut().find(|(n, _)| n == name) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                counts.push((name.to_string(), 1));
                1
            }
        }
    };
    hit(name, if count == armed { armed } else { u64::MAX });
}
