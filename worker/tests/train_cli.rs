//! The `worker train` binary as a user runs it: real process, files on disk, resume, bad input.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::path::Path;

use anygan_tests::write_tiny_idx;
use std::process::{Command, Output};

fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("worker binary runs")
}

fn train_args<'a>(data: &'a str, output: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--format",
        "idx",
        "--idx-images",
        "images.idx",
        "--idx-labels",
        "labels.idx",
        "--width",
        "8",
        "--batch-size",
        "8",
        "--steps",
        steps,
        "--sample-every",
        "2",
        "--checkpoint-every",
        "2",
        "--grid-columns",
        "3",
        "--output",
        output,
        "--resume",
    ]
}

/// The step of the checkpoint `latest` names, read from its manifest.
fn snapshot_step(output: &Path) -> u64 {
    let raw = std::fs::read(output.join("checkpoints/latest")).expect("latest pointer");
    let pointer: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    let prefix = pointer["prefix"].as_str().expect("prefix");
    let raw = std::fs::read(
        output
            .join("checkpoints")
            .join(prefix)
            .join("MANIFEST.json"),
    )
    .expect("manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(manifest["step"], pointer["step"]);
    manifest["step"].as_u64().expect("step is a number")
}

#[test]
fn trains_writes_outputs_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 32).expect("data");
    let data = dir.path().to_str().expect("utf-8");
    let output = dir.path().join("out");
    let out = output.to_str().expect("utf-8");

    let first = worker(&train_args(data, out, "4"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(snapshot_step(&output), 4);
    for file in ["samples/step-0000002.png", "samples/final.png"] {
        let grid = image::open(output.join(file)).expect("grid decodes");
        // 2 classes × 3 columns of 28-pixel cells with 2-pixel gaps
        assert_eq!(
            (grid.width(), grid.height()),
            (3 * 30 + 2, 2 * 30 + 2),
            "{file}"
        );
    }
    let export = std::fs::read(output.join("generator.safetensors")).expect("export");
    let tensors = safetensors::SafeTensors::deserialize(&export).expect("valid safetensors");
    assert!(tensors.names().contains(&"output.weight"));

    let resumed = worker(&train_args(data, out, "6"));
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(snapshot_step(&output), 6);
}

#[test]
fn bad_input_fails_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 16).expect("data");
    let labels = dir.path().join("labels.idx");
    let mut bytes = std::fs::read(&labels).expect("read");
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&labels, bytes).expect("write");
    let data = dir.path().to_str().expect("utf-8");
    let out = dir.path().join("out");
    let result = worker(&train_args(data, out.to_str().expect("utf-8"), "2"));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("labels.idx") && stderr.contains("need 16 data bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn batch_larger_than_the_data_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 4).expect("data");
    let data = dir.path().to_str().expect("utf-8");
    let out = dir.path().join("out");
    let result = worker(&train_args(data, out.to_str().expect("utf-8"), "2"));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("batch_size"), "{stderr}");
}

#[test]
fn a_discriminator_that_rejects_everything_is_reported_and_a_healthy_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 32).expect("data");
    let data = dir.path().to_str().expect("utf-8");
    let run = |learning_rate: &str, output: &str| {
        let output = dir.path().join(output);
        let mut args = train_args(data, output.to_str().expect("utf-8"), "400");
        // Samples and checkpoints at the end only.
        for (flag, value) in [("--sample-every", "400"), ("--checkpoint-every", "400")] {
            let at = args.iter().position(|a| *a == flag).expect("flag");
            args[at + 1] = value;
        }
        args.extend(["--learning-rate", learning_rate]);
        let run = worker(&args);
        let log = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{log}");
        log
    };
    // A learning rate 250 times the recipe's lets the discriminator win for good: the
    // generator's images all score ~0 from then on.
    let collapsed = run("0.05", "collapsed");
    assert!(
        collapsed.contains("the discriminator rejects every generated image"),
        "{collapsed}"
    );
    assert_eq!(
        collapsed.matches("rejects every generated image").count(),
        1,
        "said once: {collapsed}"
    );
    let healthy = run("0.0002", "healthy");
    assert!(
        !healthy.contains("rejects every generated image"),
        "{healthy}"
    );
}
