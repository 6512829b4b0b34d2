//! Crash injection for fault tests: `ANYGAN_FAILPOINTS=name=value,...` makes the process abort
//! (no unwinding, no cleanup, like a SIGKILL) at a named point. Unset, every check is one
//! relaxed load of a parsed-once list. Points:
//! - `abort-before-manifest=STEP`: a checkpoint of STEP uploaded its objects, not its manifest.
//! - `abort-after-step=STEP`: training finished STEP (worker).

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
