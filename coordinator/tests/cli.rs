//! The `coordinator` binary refuses bad job settings before serving anything.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::process::Command;

fn start(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("start")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("coordinator runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_job_settings_are_named() {
    let (ok, stderr) = start(&["--global-batch", "0"]);
    assert!(!ok);
    assert!(stderr.contains("global_batch"), "{stderr}");
    let (ok, stderr) = start(&["--min-workers", "4", "--max-workers", "2"]);
    assert!(!ok);
    assert!(stderr.contains("min_workers"), "{stderr}");
    let (ok, stderr) = start(&["--format", "idx"]);
    assert!(!ok);
    assert!(stderr.contains("--idx-images"), "{stderr}");
    let (ok, stderr) = start(&["--learning-rate=-1"]);
    assert!(!ok);
    assert!(stderr.contains("learning_rate"), "{stderr}");
    // A misspelt evaluation method is refused before training, not after it.
    let (ok, stderr) = start(&["--eval-methods", "long-tail,oversampling"]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown evaluation method `oversampling`"),
        "{stderr}"
    );
    let (ok, stderr) = start(&["--eval-seeds", "", "--eval-methods", "anygan"]);
    assert!(!ok);
    assert!(stderr.contains("seed"), "{stderr}");
    let (ok, stderr) = start(&["--eval-real-share", "1.5"]);
    assert!(!ok);
    assert!(stderr.contains("real share"), "{stderr}");
    let (ok, stderr) = start(&["--real-shift", "14"]);
    assert!(!ok);
    assert!(stderr.contains("real_shift 14"), "{stderr}");
}

#[test]
fn a_width_measured_to_collapse_without_diff_augment_is_warned_about() {
    // The output cannot be created, so the job stops right after its settings are read.
    let unwritable = ["--output", "/dev/null/anygan-job"];
    let (ok, stderr) = start(&[&["--width", "128"][..], &unwritable].concat());
    assert!(!ok);
    assert!(
        stderr.contains("width 128 without DiffAugment")
            && stderr.contains("--diff-augment color,translation,cutout"),
        "{stderr}"
    );
    for quiet in [
        &[
            "--width",
            "128",
            "--diff-augment",
            "color,translation,cutout",
        ][..],
        &["--width", "64"][..],
    ] {
        let (ok, stderr) = start(&[quiet, &unwritable].concat());
        assert!(!ok, "{stderr}");
        assert!(
            !stderr.contains("without DiffAugment"),
            "{quiet:?}: {stderr}"
        );
        assert!(
            stderr.contains("/dev/null"),
            "fails on the output: {stderr}"
        );
    }
}
