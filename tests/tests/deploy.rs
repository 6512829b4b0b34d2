//! The Helm chart in `deploy/`: `deploy/check.py` lints and renders it offline with the Helm
//! library (PyPI helm-python-sdk), validates the manifests with `kubernetes-validate --strict`
//! and runs the real binaries with the rendered command lines. `.ci/run` installs both Python
//! packages; without them this test fails and says so.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn check(extra: &[&str]) -> Output {
    let binaries = anygan_tests::binary("coordinator");
    let binaries = binaries.parent().expect("binary directory");
    Command::new("python3")
        .arg(repository().join("deploy/check.py"))
        .args(["--binaries", binaries.to_str().expect("utf-8")])
        .args(extra)
        .output()
        .expect("python3 runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_chart_lints_renders_and_validates_with_default_and_gpu_values() {
    let output = check(&[]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    for variant in ["default", "values-gpu-cluster"] {
        assert!(
            printed.contains(&format!(
                "{variant}: lint clean, 2 manifest file(s) (Deployment, Job, Service), kubernetes-validate --strict ok"
            )),
            "{printed}"
        );
        for binary in ["coordinator", "worker"] {
            assert!(
                printed.contains(&format!("{variant}: {binary} accepts")),
                "{printed}"
            );
        }
    }
}

#[test]
fn bad_values_are_refused_with_the_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("values-typo.yaml");
    std::fs::write(
        &typo,
        "job:\n  output: s3://b/p\n  data: /d\n  steps: 10\n  width: 8\n  globalBatch: 8\n  stepz: 1\n",
    )
    .expect("write");
    let output = check(&["--values", typo.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("'stepz' not allowed"),
        "{}",
        text(&output)
    );

    let bounds = dir.path().join("values-bounds.yaml");
    std::fs::write(
        &bounds,
        "workers:\n  replicas: 3\n  minWorkers: 3\n  maxWorkers: 2\n",
    )
    .expect("write");
    let output = check(&["--values", bounds.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("workers.minWorkers must not exceed workers.maxWorkers"),
        "{}",
        text(&output)
    );
}
