//! Class-targeted generation with a real coordinator and real worker processes: after training
//! and on demand from a checkpoint, exact per-class counts, a worker killed mid-task, bytes
//! identical whoever ran a task, and a rebalanced set anygan's own loader reads.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anygan_tests::{CoordinatorProcess, WorkerProcess, write_tiny_idx};

const DEADLINE: Duration = Duration::from_secs(120);

/// 64 images, two classes; the job keeps 32 of class 0 and 5 of class 1.
fn job_args(data: &Path, output: &Path, generation: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--format",
        "idx",
        "--idx-images",
        "images.idx",
        "--idx-labels",
        "labels.idx",
        "--class-counts",
        "32,5",
        "--width",
        "8",
        "--latent-dim",
        "16",
        "--global-batch",
        "8",
        "--steps",
        "4",
        "--sample-every",
        "0",
        "--min-workers",
        "2",
        "--max-workers",
        "2",
        "--start-grace-ms",
        "0",
        "--generation-batch",
        "4",
        "--generation-task-images",
        "8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--data".into(),
        data.to_str().unwrap().into(),
        "--output".into(),
        output.to_str().unwrap().into(),
    ]);
    args.extend(generation.iter().map(|s| s.to_string()));
    args
}

fn run_cluster(
    subcommand: &str,
    args: &[String],
    envs: [&[(&str, &str)]; 2],
) -> (serde_json::Value, bool, Vec<bool>) {
    let (status, success, exits, _) = run_cluster_with(subcommand, args, envs, None);
    (status, success, exits)
}

/// [`run_cluster`], each worker's log written to `<logs>/<id>.log` when `logs` is given and
/// returned as text, worker by worker (empty without).
fn run_cluster_with(
    subcommand: &str,
    args: &[String],
    envs: [&[(&str, &str)]; 2],
    logs: Option<&Path>,
) -> (serde_json::Value, bool, Vec<bool>, Vec<String>) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coordinator =
        CoordinatorProcess::start_subcommand(subcommand, &args, DEADLINE).expect("coordinator");
    let log_paths: Vec<Option<PathBuf>> = ["w0", "w1"]
        .iter()
        .map(|id| logs.map(|dir| dir.join(format!("{id}.log"))))
        .collect();
    let mut workers: Vec<WorkerProcess> = ["w0", "w1"]
        .iter()
        .zip(envs)
        .zip(&log_paths)
        .map(|((id, env), log)| {
            WorkerProcess::join_with(&coordinator.address, id, &[], env, log.as_deref()).unwrap()
        })
        .collect();
    let (status, success) = coordinator.wait(DEADLINE).expect("the job ends");
    let exits = workers
        .iter_mut()
        .map(|w| w.wait(DEADLINE).unwrap_or(false))
        .collect();
    let texts = log_paths
        .iter()
        .flatten()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    (status, success, exits, texts)
}

/// The images a worker's log says it generated over all its tasks (0 if it ran none).
fn logged_generated(log: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("tasks finished"))
        .filter_map(|line| line.split("generated=").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

/// sha256 of every file under `dir`, by relative path.
fn file_hashes(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let relative = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(relative, anygan_store::sha256_hex(&bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `coordinator generate` arguments for two workers on `output`, plus `extra`.
fn generate_args(output: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--output",
        output.to_str().unwrap(),
        "--min-workers",
        "2",
        "--start-grace-ms",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn generation_root(output: &Path, status: &serde_json::Value) -> PathBuf {
    output.join(status["generation_root"].as_str().expect("generation root"))
}

/// `worker train` on a dataset, 1 step: its log line names the per-class counts it loaded.
fn loaded_counts(args: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(anygan_tests::binary("worker"))
        .arg("train")
        .args(args)
        .args([
            "--width",
            "8",
            "--batch-size",
            "8",
            "--steps",
            "1",
            "--sample-every",
            "0",
        ])
        .args(["--output", out.path().to_str().unwrap()])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{log}");
    let at = log.find("counts=").expect("counts logged");
    log[at..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn training_then_generation_fills_each_class_exactly() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_idx(dir.path(), 64).unwrap();
    let output = dir.path().join("out");
    let (status, success, exits) =
        run_cluster("start", &job_args(dir.path(), &output, &[]), [&[], &[]]);
    assert!(success && exits.iter().all(|ok| *ok), "{status}");
    assert_eq!(status["phase"], "done");
    let progress = status["generation"].as_array().unwrap();
    assert_eq!(progress[0]["wanted"], 0, "the largest class needs nothing");
    assert_eq!(progress[1]["wanted"], 27, "32 - 5");
    assert_eq!(progress[1]["done"], 27);

    let root = generation_root(&output, &status);
    let generated: Vec<_> = std::fs::read_dir(root.join("images/01-1"))
        .unwrap()
        .collect();
    assert_eq!(generated.len(), 27);
    assert!(!root.join("images/00-0").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"][1]["total"], 32);
    assert_eq!(manifest["plan"]["spec"]["seed"], 0);
    assert!(
        manifest["plan"]["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with("step-0000000004-")
    );
    let sheet = image::open(root.join("contact_sheet.png")).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (10 * 30 + 2, 2 * 30 + 2));
    assert_eq!(
        manifest["sampled_weights"], "averaged (decay 0.999 since step 0)",
        "the run kept the generator's average by default and sampled from it"
    );

    // The checkpoint named by its step instead of `latest`: the same checkpoint.
    let args = generate_args(&output, &["--checkpoint", "4"]);
    let (by_step, success, _) = run_cluster("generate", &args, [&[], &[]]);
    assert!(success, "{by_step}");
    let by_step_manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(generation_root(&output, &by_step).join("MANIFEST.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        by_step_manifest["plan"]["checkpoint"],
        manifest["plan"]["checkpoint"]
    );
    // A step with no committed checkpoint is refused before anything starts, listing those
    // there are.
    let refused = Command::new(anygan_tests::binary("coordinator"))
        .args(["generate", "--listen", "127.0.0.1:0", "--checkpoint", "7"])
        .args(["--output", output.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("`7` matches no committed checkpoint; committed: step-0000000004-"),
        "{stderr}"
    );

    // The same checkpoint's weights as trained: another root, other images.
    let args = generate_args(&output, &["--generation-as-trained-weights"]);
    let (as_trained, success, _) = run_cluster("generate", &args, [&[], &[]]);
    assert!(success, "{as_trained}");
    let as_trained_root = generation_root(&output, &as_trained);
    assert_ne!(as_trained_root, root);
    let as_trained_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(as_trained_root.join("MANIFEST.json")).unwrap())
            .unwrap();
    assert_eq!(as_trained_manifest["sampled_weights"], "as trained");
    let averaged_images = file_hashes(&root.join("images"));
    let as_trained_images = file_hashes(&as_trained_root.join("images"));
    assert_eq!(
        averaged_images.keys().collect::<Vec<_>>(),
        as_trained_images.keys().collect::<Vec<_>>()
    );
    assert_ne!(
        averaged_images, as_trained_images,
        "other weights, other pixels"
    );

    // The rebalanced set, read back by anygan's own loader in both layouts.
    let folder = root.join("rebalanced/folder");
    assert_eq!(
        loaded_counts(&["--data", folder.to_str().unwrap(), "--format", "folder"]),
        "counts=[32,"
    );
    let idx = root.join("rebalanced/idx");
    let counts = loaded_counts(&[
        "--data",
        idx.to_str().unwrap(),
        "--format",
        "idx",
        "--idx-images",
        "images.idx",
        "--idx-labels",
        "labels.idx",
    ]);
    assert_eq!(counts, "counts=[32,", "both classes hold 32 now");
}

/// A 4-step job with no generation: a committed checkpoint to generate from on demand.
fn trained_without_generation() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_idx(dir.path(), 64).unwrap();
    let output = dir.path().join("out");
    let (status, success, _) = run_cluster(
        "start",
        &job_args(dir.path(), &output, &["--no-generation"]),
        [&[], &[]],
    );
    assert!(success, "{status}");
    assert!(status["generation"].as_array().unwrap().is_empty());
    (dir, output)
}

#[test]
fn a_worker_killed_mid_task_loses_nothing_and_changes_no_byte() {
    let (_dir, output) = trained_without_generation();

    // On demand, from the committed checkpoint, with user targets: class 0 is already above.
    let generate = |workers: [&[(&str, &str)]; 2]| {
        let args = generate_args(
            &output,
            &[
                "--generation-targets",
                "20,45",
                "--generation-batch",
                "4",
                "--generation-task-images",
                "8",
                "--heartbeat-timeout-ms",
                "1500",
            ],
        );
        run_cluster("generate", &args, workers)
    };
    let (reference, success, _) = generate([&[], &[]]);
    assert!(success, "{reference}");
    let root = generation_root(&output, &reference);
    let reference_files = file_hashes(&root.join("images"));
    assert_eq!(
        reference_files.len(),
        40,
        "45 - 5 of class 1, none of class 0"
    );
    std::fs::remove_dir_all(&root).unwrap();

    // w0 dies (abort, like SIGKILL) after writing its first batch, mid-task.
    let (status, success, exits) =
        generate([&[("ANYGAN_FAILPOINTS", "abort-mid-generation=1")], &[]]);
    assert!(success, "{status}");
    assert_eq!(exits, vec![false, true], "w0 was killed, w1 finished");
    assert_eq!(
        generation_root(&output, &status),
        root,
        "same plan, same place"
    );
    assert_eq!(status["generation"][1]["done"], 40);
    assert_eq!(
        file_hashes(&root.join("images")),
        reference_files,
        "exactly the same files with the same bytes, whoever ran which task"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"][0]["generated"], 0);
    assert_eq!(manifest["counts"][1]["total"], 45);
}

#[test]
fn anchored_generation_inverts_real_images_then_fills_the_class_reproducibly() {
    let (_dir, output) = trained_without_generation();

    // Class 1 has 5 originals: 3 of them anchor it; class 0 (32) generates nothing.
    let generate = |anchors: &str| {
        let args = generate_args(
            &output,
            &[
                "--generation-batch",
                "4",
                "--generation-task-images",
                "8",
                "--generation-anchors",
                anchors,
                "--generation-inversion-steps",
                "5",
            ],
        );
        run_cluster("generate", &args, [&[], &[]])
    };
    let (anchored, success, exits) = generate("3");
    assert!(success && exits.iter().all(|ok| *ok), "{anchored}");
    assert_eq!(anchored["generation"][1]["done"], 27);
    let root = generation_root(&output, &anchored);
    let codes = std::fs::read(root.join("anchors/01-1/codes-000000.f32")).unwrap();
    assert_eq!(codes.len(), 3 * 16 * 4, "3 anchors of 16 f32 values");
    assert!(
        !root.join("anchors/00-0").exists(),
        "class 0 generates nothing"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["plan"]["spec"]["anchors"], 3);
    assert_eq!(
        manifest["plan"]["anchor_tasks"].as_array().unwrap().len(),
        1
    );
    assert_eq!(manifest["counts"][1]["total"], 32);
    let anchored_images = file_hashes(&root.join("images"));
    assert_eq!(anchored_images.len(), 27);

    // The same request again, from scratch: the same codes and the same bytes.
    std::fs::remove_dir_all(&root).unwrap();
    let (again, success, _) = generate("3");
    assert!(success, "{again}");
    assert_eq!(
        generation_root(&output, &again),
        root,
        "same plan, same place"
    );
    assert_eq!(
        std::fs::read(root.join("anchors/01-1/codes-000000.f32")).unwrap(),
        codes
    );
    assert_eq!(file_hashes(&root.join("images")), anchored_images);

    // Plain generation from the same checkpoint lands elsewhere, with other pixels. The
    // workers' logs count the 27 images generated once: the assembly generates none.
    let logs = tempfile::tempdir().unwrap();
    let args = generate_args(
        &output,
        &["--generation-batch", "4", "--generation-task-images", "8"],
    );
    let (plain, success, exits, texts) =
        run_cluster_with("generate", &args, [&[], &[]], Some(logs.path()));
    assert!(success, "{plain}");
    assert!(exits.iter().all(|ok| *ok), "a worker failed");
    assert_eq!(
        texts.iter().map(|log| logged_generated(log)).sum::<u64>(),
        27,
        "{texts:?}"
    );
    let plain_root = generation_root(&output, &plain);
    assert_ne!(plain_root, root);
    assert!(!plain_root.join("anchors").exists());
    assert_ne!(file_hashes(&plain_root.join("images")), anchored_images);
}
