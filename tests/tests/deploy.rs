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

/// The worker pod's kernel cache as rendered: the `ANYGAN_KERNEL_CACHE` value, the mount path of
/// the `kernel-cache` volume and the volume itself (JSON null for what is absent).
fn rendered_kernel_cache(workers_yaml: &Path) -> serde_json::Value {
    let script = r#"
import json, sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
spec = job["spec"]["template"]["spec"]
worker = spec["containers"][0]
env = {e["name"]: e.get("value") for e in worker.get("env", [])}
mounts = {m["name"]: m["mountPath"] for m in worker.get("volumeMounts", [])}
volumes = {v["name"]: v for v in spec.get("volumes", [])}
print(json.dumps({"env": env.get("ANYGAN_KERNEL_CACHE"),
                  "mount": mounts.get("kernel-cache"),
                  "volume": volumes.get("kernel-cache")}))
"#;
    python_json(script, workers_yaml)
}

/// What `script` prints as JSON, run with `manifest` as its argument.
fn python_json(script: &str, manifest: &Path) -> serde_json::Value {
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(manifest)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// Checks the chart with each (name, content) values file, rendering into `dir/out/<name>/`;
/// asserts the check passed (the real binaries accepted every rendered command line).
fn check_values(dir: &Path, values: &[(&str, &str)]) {
    let mut args = vec!["--out".to_owned(), dir.join("out").display().to_string()];
    for (name, content) in values {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, content).expect("write");
        args.extend(["--values".to_owned(), path.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = check(&args);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn gpu_workers_keep_kernels_in_a_pod_volume_or_a_node_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = [
        ("values-pod-cache", "workers:\n  gpu: true\n"),
        (
            "values-node-cache",
            "workers:\n  kernelCache:\n    hostPath: /var/cache/anygan-kernels\n",
        ),
        ("values-cpu", "workers:\n  gpu: false\n"),
    ];
    check_values(dir.path(), &values);
    let rendered =
        |name: &str| rendered_kernel_cache(&dir.path().join("out").join(name).join("workers.yaml"));

    let pod = rendered("values-pod-cache");
    assert_eq!(pod["env"], "/var/cache/anygan/kernels", "{pod}");
    assert_eq!(pod["mount"], "/var/cache/anygan/kernels", "{pod}");
    assert_eq!(pod["volume"]["emptyDir"], serde_json::json!({}), "{pod}");

    let node = rendered("values-node-cache");
    assert_eq!(node["env"], "/var/cache/anygan/kernels", "{node}");
    assert_eq!(
        node["volume"]["hostPath"],
        serde_json::json!({"path": "/var/cache/anygan-kernels", "type": "DirectoryOrCreate"}),
        "{node}"
    );

    let cpu = rendered("values-cpu");
    assert_eq!(
        cpu,
        serde_json::json!({"env": null, "mount": null, "volume": null}),
        "a CPU worker compiles no kernels: {cpu}"
    );
}

/// The coordinator container's arguments as rendered.
fn rendered_coordinator_args(coordinator_yaml: &Path) -> Vec<String> {
    let script = r#"
import json, sys, yaml
for document in yaml.safe_load_all(open(sys.argv[1])):
    if document and document.get("kind") == "Deployment":
        print(json.dumps(document["spec"]["template"]["spec"]["containers"][0]["args"]))
"#;
    serde_json::from_value(python_json(script, coordinator_yaml)).expect("a list of strings")
}

/// The value that follows `flag` in a rendered command line, if the flag is there.
fn flag_value(rendered: &[String], flag: &str) -> Option<String> {
    rendered
        .iter()
        .position(|arg| arg == flag)
        .map(|at| rendered[at + 1].clone())
}

#[test]
fn the_discriminator_gets_its_own_rate_only_when_the_values_give_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = [
        ("values-shared-rate", "{}\n"),
        (
            "values-two-rates",
            "job:\n  learningRate: 0.0001\n  discriminatorLearningRate: 0.0004\n",
        ),
    ];
    // The check runs the real coordinator with each rendered command line: both are accepted.
    check_values(dir.path(), &values);
    let rendered = |name: &str| {
        rendered_coordinator_args(&dir.path().join("out").join(name).join("coordinator.yaml"))
    };
    let shared = rendered("values-shared-rate");
    assert_eq!(
        flag_value(&shared, "--learning-rate").as_deref(),
        Some("0.0002")
    );
    assert_eq!(flag_value(&shared, "--discriminator-learning-rate"), None);
    let two = rendered("values-two-rates");
    assert_eq!(
        flag_value(&two, "--learning-rate").as_deref(),
        Some("0.0001")
    );
    assert_eq!(
        flag_value(&two, "--discriminator-learning-rate").as_deref(),
        Some("0.0004")
    );
}

#[test]
fn weighted_model_options_are_asked_for_only_when_the_values_give_them_a_weight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = [
        ("values-recipe", "{}\n"),
        (
            "values-weighted",
            "job:\n  auxiliaryClassifier: 0.5\n  unconditionalLowResolution: 0.25\n",
        ),
    ];
    // The check runs the real coordinator with each rendered command line: both are accepted.
    check_values(dir.path(), &values);
    let rendered = |name: &str| {
        rendered_coordinator_args(&dir.path().join("out").join(name).join("coordinator.yaml"))
    };
    for (flag, weight) in [
        ("--auxiliary-classifier", "0.5"),
        ("--unconditional-low-resolution", "0.25"),
    ] {
        assert_eq!(flag_value(&rendered("values-recipe"), flag), None);
        assert_eq!(
            flag_value(&rendered("values-weighted"), flag).as_deref(),
            Some(weight)
        );
    }
}

#[test]
fn spectral_norm_and_the_hinge_loss_are_asked_for_only_when_the_values_switch_them_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = [
        ("values-recipe", "{}\n"),
        (
            "values-normalized",
            "job:\n  spectralNorm: true\n  hingeLoss: true\n",
        ),
    ];
    // The check runs the real coordinator with each rendered command line: both are accepted.
    check_values(dir.path(), &values);
    let rendered = |name: &str| {
        rendered_coordinator_args(&dir.path().join("out").join(name).join("coordinator.yaml"))
    };
    let recipe = rendered("values-recipe");
    let normalized = rendered("values-normalized");
    for flag in ["--spectral-norm", "--hinge-loss"] {
        assert!(!recipe.iter().any(|arg| arg == flag), "{recipe:?}");
        assert!(normalized.iter().any(|arg| arg == flag), "{normalized:?}");
    }
}
