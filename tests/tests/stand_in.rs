//! `worker stand-in` as a user runs it: real images in a generation's place, read by `worker
//! evaluate` as method (d) and by the novelty measure; and its refusals.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::path::Path;
use std::process::{Command, Output};

const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";
const CLASS_COUNTS: &str = "24,12,8,8,6,6,4,4,4,4";
const TARGETS: [usize; 10] = [30; 10];

fn worker(args: &[&str]) -> Output {
    assert!(
        Path::new(FASHION_MNIST).is_dir(),
        "{FASHION_MNIST} is missing: apt-get install dataset-fashion-mnist (.ci/run does)"
    );
    Command::new(anygan_tests::binary("worker"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap()
}

/// `worker stand-in` of the tiny subset with its validation set held out, to `targets`.
fn stand_in(output: &Path, targets: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "stand-in",
        "--data",
        FASHION_MNIST,
        "--class-counts",
        CLASS_COUNTS,
        "--validation-per-class",
        "30",
        "--targets",
        targets,
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    worker(&args)
}

fn targets() -> String {
    TARGETS.map(|t| t.to_string()).join(",")
}

fn succeeded(run: Output) {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn refusal(run: &Output) -> String {
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `worker evaluate` of the tiny subset with the stand-ins in `root` as the generation:
/// `methods_then_flags` starts with the methods.
fn evaluate_stand_ins(root: &Path, output: &Path, methods_then_flags: &[&str]) -> Output {
    let mut args = vec![
        "evaluate",
        "--data",
        FASHION_MNIST,
        "--class-counts",
        CLASS_COUNTS,
        "--generation",
        root.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--methods",
    ];
    args.extend_from_slice(methods_then_flags);
    worker(&args)
}

/// A JSON array of counts.
fn counts(array: &serde_json::Value) -> Vec<u64> {
    let values = array.as_array().unwrap();
    values.iter().map(|n| n.as_u64().unwrap()).collect()
}

#[test]
fn stand_ins_fill_each_class_and_evaluate_as_method_d() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stand-in");
    succeeded(stand_in(&root, &targets(), &["--distinct-per-class", "3"]));

    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("STAND-IN.json")).unwrap()).unwrap();
    let originals: Vec<usize> = CLASS_COUNTS
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    let classes = record["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 10);
    for (k, class) in classes.iter().enumerate() {
        assert_eq!(class["original"], originals[k], "class {k}");
        assert_eq!(class["stand_ins"], TARGETS[k] - originals[k], "class {k}");
        assert_eq!(class["distinct"], 3, "class {k}");
        assert_eq!(class["records"].as_array().unwrap().len(), 3, "class {k}");
    }
    // Every class at its target, as a generation run leaves it: 300 images, labels 30 each.
    let labels = std::fs::read(root.join("rebalanced/idx/labels.idx")).unwrap();
    let body = &labels[8..];
    assert_eq!(body.len(), 300);
    for class in 0..10u8 {
        assert_eq!(
            body.iter().filter(|&&l| l == class).count(),
            30,
            "class {class}"
        );
    }

    // (d) and the generator's own measures read it as a generation.
    let eval_dir = dir.path().join("eval");
    succeeded(evaluate_stand_ins(
        &root,
        &eval_dir,
        &[
            "anygan,cas",
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--classifier-width",
            "4",
            "--batch-size",
            "32",
            "--same-mix",
            "--real-share",
            "0.75",
            "--validation-per-class",
            "30",
        ],
    ));
    let report = std::fs::read_to_string(eval_dir.join("report.md")).unwrap();
    assert!(
        report.contains("How new the generated images are"),
        "{report}"
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(eval_dir.join("results.json")).unwrap()).unwrap();
    let cas = results
        .iter()
        .find(|r| r["method"] == "cas" && r["test_set"] == "balanced")
        .expect("a CAS run");
    let novelty = &cas["generated_novelty"];
    let measured = counts(&novelty["generated_images"]);
    let expected: Vec<u64> = (0..10)
        .map(|k| (TARGETS[k] - originals[k]) as u64)
        .collect();
    assert_eq!(measured, expected, "every stand-in measured");
    let held_out = counts(&novelty["held_out_images"]);
    assert_eq!(held_out, vec![30; 10], "the whole validation set");
    assert!(
        novelty["held_out_median"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.as_f64().unwrap() > 0.0),
        "{novelty}"
    );
    // Stand-ins kept clear of another validation set could be scored on: refused, by name.
    let other_validation = dir.path().join("other-validation");
    let stderr = refusal(&evaluate_stand_ins(
        &root,
        &other_validation,
        &["anygan", "--validation-per-class", "20"],
    ));
    assert!(
        stderr.contains("STAND-IN.json") && stderr.contains("validation_per_class"),
        "{stderr}"
    );
    assert!(
        !other_validation.exists(),
        "nothing written for a refused draw"
    );
    let anygan = results.iter().filter(|r| r["method"] == "anygan").count();
    assert_eq!(anygan, 3, "(d) scored on the three test sets");
}

#[test]
fn what_cannot_be_stood_in_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // T-shirts: 6000 − 24 in the subset − 30 validation = 5946 left; 5977 asked for.
    let too_many = dir.path().join("too-many");
    let run = stand_in(&too_many, "6001,30,30,30,30,30,30,30,30,30", &[]);
    let stderr = refusal(&run);
    assert!(
        stderr.contains("stand_ins") && stderr.contains("class 0 has 5946 records outside"),
        "{stderr}"
    );
    assert!(!too_many.exists(), "nothing written for a refused draw");

    let whole = dir.path().join("whole");
    let run = worker(&[
        "stand-in",
        "--data",
        FASHION_MNIST,
        "--targets",
        "1,1,1,1,1,1,1,1,1,1",
        "--output",
        whole.to_str().unwrap(),
    ]);
    let stderr = refusal(&run);
    assert!(stderr.contains("not a per-class subset"), "{stderr}");
    assert!(!whole.exists());

    let nine = dir.path().join("nine");
    let stderr = refusal(&stand_in(&nine, "30,30,30,30,30,30,30,30,30", &[]));
    assert!(
        stderr.contains("9 targets were given for the 10 classes"),
        "{stderr}"
    );
}
