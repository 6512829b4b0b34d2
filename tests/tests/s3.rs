//! anygan against a real S3-compatible server (s3s-fs on loopback): datasets read from a bucket
//! in both layouts, training output written to a bucket, resume from it, bad credentials named.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::process::{Command, Output};
use std::time::Duration;

use anygan_tests::{
    S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, binary, latest_checkpoint, write_tiny_idx,
};

fn worker(args: &[String]) -> Output {
    Command::new(binary("worker"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("worker runs")
}

/// An IDX dataset at the root of the `data` bucket.
const IDX_IN_DATA_BUCKET: [&str; 8] = [
    "--data",
    "s3://data",
    "--format",
    "idx",
    "--idx-images",
    "images.idx",
    "--idx-labels",
    "labels.idx",
];

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn train(data: &[&str], output: &str, steps: &str, options: &[String]) -> Output {
    let mut args = strings(&["train"]);
    args.extend(strings(data));
    args.extend(strings(&[
        "--width",
        "8",
        "--batch-size",
        "8",
        "--steps",
        steps,
        "--sample-every",
        "0",
        "--grid-columns",
        "2",
        "--resume",
        "--output",
        output,
    ]));
    args.extend_from_slice(options);
    worker(&args)
}

/// A 1×1 gray PNG (level 128).
fn png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3a,
        0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x68,
        0x00, 0x00, 0x00, 0x82, 0x00, 0x81, 0x77, 0xcd, 0x72, 0xb6, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ]
}

#[test]
fn trains_from_and_to_a_bucket_and_resumes() {
    let server = S3Server::start(&["data", "out"], Duration::from_secs(30)).expect("s3 server");
    write_tiny_idx(&server.root.path().join("data"), 32).expect("data");
    let options = server.store_options(S3_ACCESS_KEY, S3_SECRET_KEY);

    let first = train(&IDX_IN_DATA_BUCKET, "s3://out/run", "3", &options);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let run = server.root.path().join("out/run");
    assert_eq!(
        latest_checkpoint(&run)
            .expect("readable")
            .expect("committed")
            .step,
        3
    );
    for object in ["samples/final.png", "generator.safetensors"] {
        assert!(
            run.join(object).is_file(),
            "{object} was not written to the bucket"
        );
    }

    let resumed = train(&IDX_IN_DATA_BUCKET, "s3://out/run", "5", &options);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(
        latest_checkpoint(&run)
            .expect("readable")
            .expect("committed")
            .step,
        5
    );
}

#[test]
fn reads_an_image_folder_from_a_bucket() {
    let server = S3Server::start(&["folders", "out"], Duration::from_secs(30)).expect("s3 server");
    for class in ["bag", "coat"] {
        let dir = server.root.path().join("folders/set").join(class);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..4 {
            std::fs::write(dir.join(format!("{i}.png")), png()).expect("write");
        }
    }
    let options = server.store_options(S3_ACCESS_KEY, S3_SECRET_KEY);
    let result = train(
        &["--data", "s3://folders/set", "--format", "folder"],
        "s3://out/folder-run",
        "1",
        &options,
    );
    let log = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{log}");
    assert!(log.contains("classes=2"), "{log}");
    let folder_run = server.root.path().join("out/folder-run");
    assert!(latest_checkpoint(&folder_run).expect("readable").is_some());
}

#[test]
fn wrong_credentials_are_a_clear_error() {
    let server = S3Server::start(&["data", "out"], Duration::from_secs(30)).expect("s3 server");
    write_tiny_idx(&server.root.path().join("data"), 16).expect("data");
    let options = server.store_options(S3_ACCESS_KEY, "not-the-secret");
    let result = train(&IDX_IN_DATA_BUCKET, "s3://out/run", "1", &options);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("s3://data/images.idx"),
        "the object is named: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("not-the-secret"),
        "the secret is not printed: {stderr}"
    );
}
