//! A run whose losses stop being numbers stops at that step with an error that says so, and the
//! checkpoints it committed before stay as they were: the real `worker train` process, local
//! disk as the object store.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::process::Command;

use anygan_tests::{checkpoint_prefixes, latest_checkpoint, tiny_train_args, write_tiny_idx};

/// `worker train` on the tiny two-class set for 40 steps, a checkpoint after every one.
fn train(
    data: &std::path::Path,
    output: &std::path::Path,
    learning_rate: &str,
) -> std::process::Output {
    Command::new(anygan_tests::binary("worker"))
        .args(tiny_train_args(data, output.to_str().expect("utf-8")))
        .args([
            "--checkpoint-every",
            "1",
            "--wait-for-checkpoints",
            "--keep-checkpoints",
            "100",
            "--steps",
            "40",
            "--learning-rate",
            learning_rate,
        ])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("worker runs")
}

#[test]
fn a_diverging_run_stops_at_the_step_that_diverged_and_keeps_what_it_committed() {
    let data = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(data.path(), 32).expect("data");
    let output = tempfile::tempdir().expect("tempdir");

    // Adam moves every weight by about the learning rate a step: at 1e7 the logits of this
    // tiny model overflow within a few steps (measured: at step 2 on the 2-core Xeon; the
    // checks below hold whichever step it is).
    let diverged = train(data.path(), output.path(), "1e7");
    let log = String::from_utf8_lossy(&diverged.stderr);
    assert!(
        !diverged.status.success(),
        "a diverged run must fail: {log}"
    );
    let marker = "training diverged at step ";
    let at = log
        .find(marker)
        .unwrap_or_else(|| panic!("the error says so: {log}"));
    let step: u64 = log[at + marker.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("the error names the step: {log}"));
    assert!(step < 40, "stopped at step {step}, not at the end");
    assert!(
        log.contains(" is NaN") || log.contains(" is inf"),
        "names the value: {log}"
    );
    // Every step before it was checkpointed and is still the latest; nothing of the diverged
    // step (or after) was written.
    let latest = latest_checkpoint(output.path()).unwrap();
    assert_eq!(
        latest.map(|checkpoint| checkpoint.step),
        (step > 1).then(|| step - 1),
        "{log}"
    );
    let prefixes = checkpoint_prefixes(output.path()).unwrap();
    assert_eq!(prefixes.len() as u64, step - 1, "{prefixes:?}");
    assert!(
        prefixes.iter().all(|(_, committed)| *committed),
        "{prefixes:?}"
    );

    // The same run at the recipe's rate trains to the end: the failure above is the rate's.
    let healthy_output = tempfile::tempdir().expect("tempdir");
    let healthy = train(data.path(), healthy_output.path(), "2e-4");
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    let latest = latest_checkpoint(healthy_output.path())
        .unwrap()
        .expect("checkpoints");
    assert_eq!(latest.step, 40);
}
