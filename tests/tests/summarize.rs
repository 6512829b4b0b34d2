//! `bench/summarize.py`, the script every committed result table of the benchmark was made
//! with: seeds from separate `results.json` files combined, and (d) compared with the other
//! remedies by the evaluation report's rule.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("bench/summarize.py")
}

/// A results.json of `method` on the balanced test set, one run per (seed, ACSA).
fn results(dir: &Path, name: &str, method: &str, runs: &[(u64, f64)]) -> PathBuf {
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|&(seed, acsa)| {
            serde_json::json!({
                "method": method,
                "seed": seed,
                "test_set": "balanced",
                "metrics": {"acsa": acsa, "gm_ovr": acsa, "macro_f1": acsa, "recalls": [acsa, acsa]},
            })
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(&runs).unwrap()).unwrap();
    path
}

fn summarize(arguments: &[String]) -> (bool, String) {
    let output = Command::new("python3")
        .arg(script())
        .args(arguments)
        .output()
        .expect("python3 runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[test]
fn seeds_from_separate_files_are_combined_and_d_is_compared_by_the_reports_rule() {
    let dir = tempfile::tempdir().unwrap();
    // (d): seed 0 in one file, seeds 1 and 2 in another; (b) and (f) in their own.
    let d0 = results(dir.path(), "d0.json", "anygan", &[(0, 0.87)]);
    let d12 = results(dir.path(), "d12.json", "anygan", &[(1, 0.88), (2, 0.89)]);
    let b = results(
        dir.path(),
        "b.json",
        "random-oversampling",
        &[(0, 0.85), (1, 0.86), (2, 0.87)],
    );
    let f = results(
        dir.path(),
        "f.json",
        "shifted-oversampling",
        &[(0, 0.875), (1, 0.885), (2, 0.895)],
    );
    let cas = results(dir.path(), "cas.json", "cas", &[(0, 0.6), (1, 0.6)]);
    let label = |name: &str, path: &Path| format!("{name}={}", path.display());
    let (ok, printed) = summarize(&[
        label("d", &d0),
        label("d", &d12),
        label("b", &b),
        label("f", &f),
        label("q", &cas),
    ]);
    assert!(ok, "{printed}");
    assert!(
        printed.contains("| d: anygan | 0,1,2 | 88.00 ± 1.00 |"),
        "the two files' seeds are one set-up: {printed}"
    );
    // 2.00 apart, each spread 1.00: ahead; 0.50 apart: level; CAS is not a remedy.
    assert!(
        printed.contains(
            "| d: anygan | b: random-oversampling | 88.00 ± 1.00 | 86.00 ± 1.00 | +2.00 | +2.00 ± 0.00 (3) | **ahead** |"
        ),
        "{printed}"
    );
    assert!(
        printed.contains(
            "| d: anygan | f: shifted-oversampling | 88.00 ± 1.00 | 88.50 ± 1.00 | -0.50 | -0.50 ± 0.00 (3) | level |"
        ),
        "{printed}"
    );
    assert!(
        !printed.contains("| d: anygan | q: cas |"),
        "CAS compared: {printed}"
    );

    // One seed gives no spread to judge by, and a seed counted twice is refused.
    let (ok, printed) = summarize(&[label("d", &d0), label("b", &b)]);
    assert!(ok, "{printed}");
    assert!(printed.contains("| one seed: cannot tell |"), "{printed}");
    let (ok, printed) = summarize(&[label("d", &d0), label("d", &d0)]);
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("seed 0 of anygan (balanced test) appears twice"),
        "{printed}"
    );
}

#[test]
fn the_generators_own_measurements_are_tabled_per_class() {
    let dir = tempfile::tempdir().unwrap();
    let metrics =
        serde_json::json!({"acsa": 0.6, "gm_ovr": 0.6, "macro_f1": 0.6, "recalls": [0.6, 0.6]});
    let quality = serde_json::json!([
        {"method": "cas", "seed": 0, "test_set": "balanced", "metrics": metrics,
         "generated_novelty": {"generated_images": [10, 10], "generated_median": [9.0, 30.0],
                               "held_out_images": [10, 10], "held_out_median": [10.0, 20.0]}},
        {"method": "full-real", "seed": 0, "test_set": "balanced", "metrics": metrics,
         "generated_fidelity": {"images": [4, 8], "correct": [0.25, 0.9]}},
    ]);
    let path = dir.path().join("quality.json");
    std::fs::write(&path, serde_json::to_vec(&quality).unwrap()).unwrap();
    let (ok, printed) = summarize(&[
        "--class-names".to_owned(),
        "shirt,bag".to_owned(),
        format!("q={}", path.display()),
    ]);
    assert!(ok, "{printed}");
    // 25 % and 90 % labelled as their class, 57.5 on average; novelty 9/10 and 30/20.
    assert!(
        printed.contains("| set-up | shirt | bag | all classes |"),
        "{printed}"
    );
    assert!(
        printed.contains("| q: full-real | 25.0 | 90.0 | 57.5 |"),
        "{printed}"
    );
    assert!(
        printed.contains("| q: cas | 0.90 | 1.50 | 0.90–1.50 |"),
        "{printed}"
    );

    // A fidelity record without its shares names the file and what it lacks.
    let broken = serde_json::json!([
        {"method": "full-real", "seed": 0, "test_set": "balanced", "metrics": metrics,
         "generated_fidelity": {"images": [4, 8]}},
    ]);
    std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let (ok, printed) = summarize(&[format!("q={}", path.display())]);
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("quality.json: run 0 lacks 'correct'"),
        "{printed}"
    );
}
