//! The evaluation scheduled by the coordinator after generation, on the real Fashion-MNIST files
//! (Debian's `dataset-fashion-mnist`, installed by `.ci/run`) with tiny settings: every method
//! trains the classifier on its set, both test sets are scored, the report gathers them.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::time::Duration;

use anygan_tests::{CoordinatorProcess, WorkerProcess};

const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn train_generate_evaluate_on_fashion_mnist() {
    assert!(
        std::path::Path::new(FASHION_MNIST).is_dir(),
        "apt-get install dataset-fashion-mnist (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let args: Vec<String> = [
        "--class-counts",
        "24,12,8,8,6,6,4,4,4,4",
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
        "16",
        "--generation-task-images",
        "64",
        "--generation-candidates",
        "2",
        "--eval-seeds",
        "0",
        "--eval-epochs",
        "1",
        "--eval-width",
        "4",
        "--eval-batch-size",
        "32",
        "--eval-filter-generated",
        "--eval-judge-keeps",
        "least-sure:0.5",
        "--eval-validation-per-class",
        "25",
        "--output",
        output.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Duration::from_secs(300);
    let coordinator = CoordinatorProcess::start(&args, deadline).unwrap();
    let mut workers: Vec<WorkerProcess> = ["w0", "w1"]
        .iter()
        .map(|id| WorkerProcess::join(&coordinator.address, id).unwrap())
        .collect();
    let (status, success) = coordinator.wait(deadline).unwrap();
    for worker in &mut workers {
        assert!(worker.wait(deadline).unwrap());
    }
    assert!(success, "{status}");
    let root = output.join(status["generation_root"].as_str().unwrap());
    let evaluation = root.join("evaluation");

    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(evaluation.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        results.len(),
        (6 + 2) * 3,
        "6 methods and the 2 quality runs × 1 seed × 2 test sets and the validation set"
    );
    for result in &results {
        let metrics = &result["metrics"];
        for name in ["acsa", "gm", "gm_ovr", "macro_f1"] {
            let value = metrics[name].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&value), "{name} = {value}");
        }
        assert_eq!(metrics["recalls"].as_array().unwrap().len(), 10);
        let confusion: u64 = result["confusion"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
            .sum();
        let expected = match result["test_set"].as_str().unwrap() {
            "balanced" => 10_000,
            "imbalanced" => 2_249,
            // 25 of each class held out of the training split.
            "validation" => 250,
            other => panic!("unexpected test set {other}"),
        };
        assert_eq!(confusion, expected, "every test image scored once");
    }
    let sizes: Vec<(String, u64)> = results
        .iter()
        .filter(|r| r["test_set"] == "balanced")
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["train_images"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("long-tail".to_string(), 80),
            ("random-oversampling".to_string(), 240),
            ("class-weighted".to_string(), 80),
            ("anygan".to_string(), 240),
            ("smote".to_string(), 240),
            ("shifted-oversampling".to_string(), 240),
            ("cas".to_string(), 160),
            ("full-real".to_string(), 60_000),
        ],
        "each method trains on its own set: 80 originals, every class at 24, the 160 generated \
         images alone, or the whole real training split"
    );
    // The reference classifier labelled every generated image: per class, the deficit to 24.
    let fidelity = &results
        .iter()
        .find(|r| r["method"] == "full-real" && r["test_set"] == "balanced")
        .unwrap()["generated_fidelity"];
    let counts = |value: &serde_json::Value| -> Vec<u64> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let labelled = counts(&fidelity["images"]);
    assert_eq!(labelled, vec![0, 12, 16, 16, 18, 18, 20, 20, 20, 20]);
    for share in fidelity["correct"].as_array().unwrap() {
        assert!((0.0..=1.0).contains(&share.as_f64().unwrap()));
    }
    // (d)'s judge (asked for with --eval-filter-generated) looked at every generated image and its share kept per
    // class is reported; nothing else carries one.
    for result in &results {
        let judged = &result["generated_kept"];
        if result["method"] != "anygan" {
            assert!(judged.is_null(), "{result}");
            continue;
        }
        assert_eq!(counts(&judged["images"]), labelled);
        // --eval-judge-keeps least-sure:0.5: at most half (rounded up) of each class's images.
        for (share, &images) in judged["correct"].as_array().unwrap().iter().zip(&labelled) {
            let kept = share.as_f64().unwrap() * images as f64;
            assert!(kept <= (images as f64 / 2.0).ceil() + 1e-9, "{result}");
        }
    }
    for test in ["balanced", "imbalanced"] {
        let bars = image::open(evaluation.join(format!("recall-{test}.png"))).unwrap();
        assert_eq!(
            bars.width(),
            2 * 10 + 10 * (8 * 6 + 10),
            "10 classes × 8 runs"
        );
        for method in ["long-tail", "anygan", "smote", "shifted-oversampling"] {
            let confusion =
                image::open(evaluation.join(format!("confusion-{method}-{test}.png"))).unwrap();
            assert_eq!(confusion.width(), 10 * 16 + 2);
        }
    }
    // (d) against each of the 5 other remedies on each scored set, from the same numbers as
    // results.json; one seed gives no spread, so no standing is claimed.
    let comparisons: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(evaluation.join("comparisons.json")).unwrap())
            .unwrap();
    assert_eq!(comparisons.len(), 5 * 3, "{comparisons:?}");
    for comparison in &comparisons {
        let acsa_of = |method: &str| {
            results
                .iter()
                .find(|r| r["method"] == method && r["test_set"] == comparison["test_set"])
                .unwrap()["metrics"]["acsa"]
                .as_f64()
                .unwrap()
        };
        let against = comparison["against"].as_str().unwrap();
        assert_eq!(
            comparison["anygan"]["mean"].as_f64().unwrap(),
            acsa_of("anygan")
        );
        assert_eq!(
            comparison["other"]["mean"].as_f64().unwrap(),
            acsa_of(against)
        );
        assert_eq!(comparison["standing"], "one-seed", "{comparison}");
    }
    let report = std::fs::read_to_string(evaluation.join("report.md")).unwrap();
    for needle in [
        "Does (d) beat the other remedies?",
        "one seed: cannot tell",
        "(a) long-tailed as is",
        "(d) anygan cDCGAN",
        "(e) pixel SMOTE",
        "(f) oversampling, shifted copies",
        "balanced test set",
        "imbalanced test set",
        "DeepSMOTE",
        "CAS (classifier trained on the generated images only",
        "labels as that class",
        "(d)'s judge",
        "(d): real images are 50 % of each rare class",
        "only those the judge labels as their class and of those per class the 50 % it is least sure of",
        "weights averaged (decay 0.999 since step 0)",
        "each image the best of 2 candidates to the discriminator",
    ] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
}

/// `worker evaluate` on its own: deferred re-sampling trains (a) in two phases and says so in
/// the report, so does a long-tailed start; a finish that leaves the method no epoch is
/// refused before any data is read.
#[test]
fn standalone_evaluation_defers_resampling_and_refuses_a_finish_without_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let refused_dir = dir.path().join("refused");
    let stderr = refused_settings(
        &refused_dir,
        &["--epochs", "2", "--finish-oversampled-epochs", "2"],
    );
    assert!(
        stderr.contains("finish_oversampled_epochs (2) must be below the classifier's epochs (2)"),
        "{stderr}"
    );

    let deferred_dir = dir.path().join("deferred");
    let report = report_of(
        &deferred_dir,
        evaluate(
            &deferred_dir,
            &["--epochs", "3", "--finish-oversampled-epochs", "1"],
        ),
    );
    assert!(
        report.contains(
            "every method but (b) trains its first 2 epochs on its own set and the last 1 on (b)'s"
        ),
        "{report}"
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(deferred_dir.join("results.json")).unwrap()).unwrap();
    let methods: Vec<&str> = results
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "long-tail",
            "long-tail",
            "random-oversampling",
            "random-oversampling"
        ]
    );
    // Deferred re-balancing from the start: the long-tailed set first, for every method.
    let started_dir = dir.path().join("started");
    let report = report_of(
        &started_dir,
        evaluate(
            &started_dir,
            &["--epochs", "1", "--long-tail-first-epochs", "2"],
        ),
    );
    assert!(
        report.contains("every method first trains 2 epochs on the long-tailed set as it is"),
        "{report}"
    );
    // The start topped up to a floor, which needs a start to top up.
    let floored_dir = dir.path().join("floored");
    let report = report_of(
        &floored_dir,
        evaluate(
            &floored_dir,
            &[
                "--epochs",
                "1",
                "--long-tail-first-epochs",
                "1",
                "--long-tail-start-floor",
                "20",
            ],
        ),
    );
    assert!(
        report.contains("every class below 20 images topped up to 20"),
        "{report}"
    );
    let unstarted_dir = dir.path().join("floor-without-start");
    let stderr = refused_settings(
        &unstarted_dir,
        &["--epochs", "1", "--long-tail-start-floor", "20"],
    );
    assert!(
        stderr.contains("long_tail_start_floor 20") && stderr.contains("no start to top up"),
        "{stderr}"
    );
    // Classifier re-training: the head alone after the long-tailed start, which it needs.
    let headless_dir = dir.path().join("head-only-without-start");
    let stderr = refused_settings(&headless_dir, &["--epochs", "1", "--rebalance-head-only"]);
    assert!(
        stderr.contains("rebalance_head_only") && stderr.contains("long_tail_first_epochs is 0"),
        "{stderr}"
    );
    let head_dir = dir.path().join("head-only");
    let report = report_of(
        &head_dir,
        evaluate(
            &head_dir,
            &[
                "--epochs",
                "1",
                "--long-tail-first-epochs",
                "2",
                "--rebalance-head-only",
            ],
        ),
    );
    assert!(
        report.contains("its 1 epochs on its own set — the fully connected head alone"),
        "{report}"
    );
}

#[test]
fn standalone_evaluation_augments_every_method_alike_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    // Augmentation of every method's training images: refused past its bound, reported.
    let off_dir = dir.path().join("augmented-off-the-image");
    let stderr = refused_settings(&off_dir, &["--epochs", "1", "--augment-shift", "20"]);
    assert!(stderr.contains("augment_shift 20"), "{stderr}");
    let augmented_dir = dir.path().join("augmented");
    let report = report_of(
        &augmented_dir,
        evaluate(
            &augmented_dir,
            &[
                "--epochs",
                "1",
                "--augment-shift",
                "2",
                "--augment-flip-probability",
                "0.5",
            ],
        ),
    );
    assert!(
        report.contains(
            "shifted by up to 2 pixels each way and flipped left to right with probability 0.5"
        ),
        "{report}"
    );
}

/// A validation set held out of the training split: every method is scored on it, it is
/// balanced, and a size the split cannot give is refused, naming the setting.
#[test]
fn standalone_evaluation_scores_a_balanced_held_out_validation_set() {
    let dir = tempfile::tempdir().unwrap();
    let too_many_dir = dir.path().join("too-many");
    // The training split has 6000 images of each class; the subset keeps 24 t-shirts.
    let refused = evaluate(
        &too_many_dir,
        &["--epochs", "1", "--validation-per-class", "5990"],
    );
    let stderr = refusal(&refused);
    assert!(
        stderr.contains("validation_per_class")
            && stderr.contains("class 0 has 5976 records outside the training subset"),
        "{stderr}"
    );
    assert!(!too_many_dir.exists(), "nothing written for a refused size");

    // Without a per-class subset every image trains: refused before any data is read.
    let whole_split_dir = dir.path().join("whole-split");
    let refused = std::process::Command::new(anygan_tests::binary("worker"))
        .args([
            "evaluate",
            "--data",
            FASHION_MNIST,
            "--validation-per-class",
            "5",
        ])
        .args(["--output", whole_split_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = refusal(&refused);
    assert!(
        stderr.contains("--validation-per-class") && stderr.contains("none is left to validate on"),
        "{stderr}"
    );
    assert!(
        !whole_split_dir.exists(),
        "nothing written for a refused set-up"
    );

    let validated_dir = dir.path().join("validated");
    report_of(
        &validated_dir,
        evaluate(
            &validated_dir,
            &["--epochs", "1", "--validation-per-class", "30"],
        ),
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(validated_dir.join("results.json")).unwrap())
            .unwrap();
    let validation: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r["test_set"] == "validation")
        .collect();
    let methods: Vec<&str> = validation
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["long-tail", "random-oversampling"]);
    for run in validation {
        let rows = run["confusion"]["counts"]
            .as_array()
            .expect("confusion rows");
        let per_class: Vec<u64> = rows
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap())
                    .sum()
            })
            .collect();
        assert_eq!(per_class, vec![30; 10], "{}", run["method"]);
    }
}

/// `worker evaluate` of long-tail and random oversampling with a tiny classifier on a tiny
/// long-tailed Fashion-MNIST, seed 0, into `output`, with `settings` added.
fn evaluate(output: &std::path::Path, settings: &[&str]) -> std::process::Output {
    std::process::Command::new(anygan_tests::binary("worker"))
        .args([
            "evaluate",
            "--data",
            FASHION_MNIST,
            "--class-counts",
            "24,12,8,8,6,6,4,4,4,4",
            "--methods",
            "long-tail,random-oversampling",
            "--seeds",
            "0",
            "--classifier-width",
            "4",
            "--batch-size",
            "32",
            "--output",
            output.to_str().unwrap(),
        ])
        .args(settings)
        .output()
        .unwrap()
}

/// The error output of an evaluation that must refuse `settings` before writing anything to
/// `output` (it fails the test otherwise).
fn refused_settings(output: &std::path::Path, settings: &[&str]) -> String {
    let stderr = refusal(&evaluate(output, settings));
    assert!(!output.exists(), "nothing written for refused settings");
    stderr
}

/// The error output of a run that must have been refused (it fails the test otherwise).
fn refusal(run: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{stderr}");
    stderr
}

/// The report.md a successful `worker evaluate` wrote into `output`.
fn report_of(output: &std::path::Path, run: std::process::Output) -> String {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(output.join("report.md")).unwrap()
}
