//! Checkpoints against a real S3 server (s3s-fs on loopback) with real processes: commit order
//! under a crash, bit-exact resume (one device and two workers), retention and garbage
//! collection, a corrupt object refused with fallback, start-up errors, and a store that goes
//! away mid-run.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anygan_tests::{
    CoordinatorProcess, FlakyProxy, ProxyMode, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server,
    WorkerProcess, checkpoint_prefixes, latest_checkpoint, tiny_train_args, write_tiny_idx,
};

const DEADLINE: Duration = Duration::from_secs(120);

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `worker train` arguments: local IDX data, tiny model, a checkpoint every 2 steps that training
/// waits for (a step takes milliseconds, so without waiting the upload of step 2 may still be
/// running at step 4 and step 4's checkpoint would be skipped).
fn train_args(data: &Path, output: &str, steps: u64, keep: usize) -> Vec<String> {
    let mut args = tiny_train_args(data, output);
    args.extend(strings(&[
        "--checkpoint-every",
        "2",
        "--wait-for-checkpoints",
        "--resume",
    ]));
    args.extend([
        "--steps".into(),
        steps.to_string(),
        "--keep-checkpoints".into(),
        keep.to_string(),
    ]);
    args
}

fn worker(args: &[String], failpoints: &str) -> Output {
    Command::new(anygan_tests::binary("worker"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env("ANYGAN_FAILPOINTS", failpoints)
        .output()
        .expect("worker runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Setup {
    server: S3Server,
    data: tempfile::TempDir,
    options: Vec<String>,
}

fn setup() -> Setup {
    let server = S3Server::start(&["out"], Duration::from_secs(30)).expect("s3 server");
    let data = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(data.path(), 32).expect("data");
    let options = server.store_options(S3_ACCESS_KEY, S3_SECRET_KEY);
    Setup {
        server,
        data,
        options,
    }
}

impl Setup {
    fn train(&self, run: &str, steps: u64, keep: usize, failpoints: &str) -> Output {
        let mut args = train_args(self.data.path(), &format!("s3://out/{run}"), steps, keep);
        args.extend_from_slice(&self.options);
        worker(&args, failpoints)
    }

    /// The run's folder inside the bucket, as s3s-fs stores it.
    fn run_dir(&self, run: &str) -> std::path::PathBuf {
        self.server.root.path().join("out").join(run)
    }
}

#[test]
fn a_crash_before_the_manifest_leaves_latest_on_the_previous_checkpoint() {
    let setup = setup();
    let reference = setup.train("reference", 6, 3, "");
    assert!(reference.status.success(), "{}", stderr(&reference));

    // Objects of step 4 go up, then the process dies before its manifest.
    let crashed = setup.train("crashed", 6, 2, "abort-before-manifest=4");
    assert!(!crashed.status.success(), "the failpoint aborts");
    let run = setup.run_dir("crashed");
    let latest = latest_checkpoint(&run).unwrap().expect("step 2 committed");
    assert_eq!(latest.step, 2);
    let prefixes = checkpoint_prefixes(&run).unwrap();
    assert_eq!(prefixes.len(), 2, "{prefixes:?}");
    assert!(prefixes[0].0.starts_with("step-0000000002-") && prefixes[0].1);
    assert!(
        prefixes[1].0.starts_with("step-0000000004-") && !prefixes[1].1,
        "step 4's objects are there without a manifest: {prefixes:?}"
    );
    let crashed_prefix = prefixes[1].0.clone();

    // Started again, it continues from step 2 and ends bit-identical to the uninterrupted run.
    let resumed = setup.train("crashed", 6, 2, "");
    let log = stderr(&resumed);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("resuming") && log.contains("step=2"), "{log}");
    let final_checkpoint = latest_checkpoint(&run).unwrap().unwrap();
    let reference_checkpoint = latest_checkpoint(&setup.run_dir("reference"))
        .unwrap()
        .unwrap();
    assert_eq!(final_checkpoint.step, 6);
    assert_eq!(final_checkpoint.parameters_sha256().len(), 64);
    assert_eq!(
        final_checkpoint.parameters_sha256(),
        reference_checkpoint.parameters_sha256(),
        "the models must be bit-identical to the uninterrupted run's"
    );
    assert_eq!(
        final_checkpoint
            .object_checksums()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec![
            "discriminator.mpk",
            "discriminator_optim.mpk",
            "generator.mpk",
            "generator_ema.mpk",
            "generator_optim.mpk"
        ],
        "both models, both optimizers and the generator's average (kept by default)"
    );

    // Retention (keep 2) and garbage collection: only the newest two, all with manifests; the
    // crashed step-4 prefix is gone.
    let prefixes = checkpoint_prefixes(&run).unwrap();
    let steps: Vec<(&str, bool)> = prefixes.iter().map(|(p, m)| (&p[..15], *m)).collect();
    assert_eq!(
        steps,
        vec![("step-0000000004", true), ("step-0000000006", true)],
        "{prefixes:?}"
    );
    assert!(
        !prefixes.iter().any(|(p, _)| p == &crashed_prefix),
        "the crashed prefix {crashed_prefix} was deleted: {prefixes:?}"
    );
}

#[test]
fn a_corrupt_object_refuses_its_checkpoint_and_the_previous_one_is_used() {
    let setup = setup();
    let reference = setup.train("reference", 6, 3, "");
    assert!(reference.status.success(), "{}", stderr(&reference));
    let first = setup.train("corrupt", 4, 3, "");
    assert!(first.status.success(), "{}", stderr(&first));
    let run = setup.run_dir("corrupt");
    let newest = latest_checkpoint(&run).unwrap().unwrap();
    assert_eq!(newest.step, 4);
    // Flip one byte of an optimizer state inside the bucket.
    let object = run
        .join("checkpoints")
        .join(&newest.prefix)
        .join("generator_optim.mpk");
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&object, bytes).unwrap();

    let resumed = setup.train("corrupt", 6, 3, "");
    let log = stderr(&resumed);
    assert!(resumed.status.success(), "{log}");
    assert!(
        log.contains("checkpoint refused")
            && log.contains(&format!("{}/generator_optim.mpk", newest.prefix))
            && log.contains("SHA-256"),
        "the refusal names the object and the reason: {log}"
    );
    assert!(log.contains("resuming") && log.contains("step=2"), "{log}");
    assert_eq!(
        latest_checkpoint(&run)
            .unwrap()
            .unwrap()
            .parameters_sha256(),
        latest_checkpoint(&setup.run_dir("reference"))
            .unwrap()
            .unwrap()
            .parameters_sha256(),
        "resumed from step 2, the result is still bit-identical"
    );
}

fn job_args(data: &Path, output: &str, steps: &str) -> Vec<String> {
    let mut args = strings(&[
        "--format",
        "idx",
        "--idx-images",
        "images.idx",
        "--idx-labels",
        "labels.idx",
        "--width",
        "8",
        "--latent-dim",
        "16",
        "--global-batch",
        "8",
        "--sample-every",
        "0",
        "--checksum-every",
        "2",
        "--checkpoint-every",
        "2",
        "--wait-for-checkpoints",
        "--min-workers",
        "2",
        "--max-workers",
        "2",
        "--start-grace-ms",
        "0",
        "--heartbeat-timeout-ms",
        "3000",
        "--collective-timeout-ms",
        "3000",
    ]);
    args.extend([
        "--data".into(),
        data.to_str().expect("utf-8").into(),
        "--output".into(),
        output.into(),
        "--steps".into(),
        steps.into(),
    ]);
    args
}

/// Runs a 2-worker job; returns the coordinator's final status and whether it succeeded.
/// `whole_cluster_dies`: once one worker has exited, the other is killed too. A worker that
/// finishes a step first and aborts can leave its peer inside that step's collective; the peer
/// then rolls back and waits for a re-formed ring instead of reaching the failpoint, and the
/// job would wait for workers forever (seen once under heavy load).
fn run_job(
    setup: &Setup,
    run: &str,
    failpoints: &str,
    whole_cluster_dies: bool,
) -> (serde_json::Value, bool) {
    let mut args = job_args(setup.data.path(), &format!("s3://out/{run}"), "8");
    args.extend_from_slice(&setup.options);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coordinator = CoordinatorProcess::start(&args, DEADLINE).expect("coordinator");
    let mut workers: Vec<WorkerProcess> = ["w0", "w1"]
        .iter()
        .map(|id| {
            WorkerProcess::join_with_env(
                &coordinator.address,
                id,
                &[("ANYGAN_FAILPOINTS", failpoints)],
            )
            .expect("worker")
        })
        .collect();
    if whole_cluster_dies {
        let until = std::time::Instant::now() + DEADLINE;
        while !workers
            .iter_mut()
            .any(|worker| matches!(worker.child.try_wait(), Ok(Some(_))))
        {
            assert!(
                std::time::Instant::now() < until,
                "no worker reached the failpoint"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for worker in &mut workers {
            let _ = worker.child.kill();
        }
    }
    let outcome = coordinator.wait(DEADLINE).expect("the job ends");
    for worker in &mut workers {
        let _ = worker.wait(DEADLINE);
    }
    outcome
}

#[test]
fn a_distributed_job_killed_mid_run_resumes_bit_exact() {
    let setup = setup();
    let (reference_status, success) = run_job(&setup, "reference", "", false);
    assert!(success, "{reference_status}");
    assert_eq!(reference_status["start_step"], 0);

    // Every worker dies right after step 5; rank 0 waited for its checkpoint of step 4.
    let (status, success) = run_job(&setup, "killed", "abort-after-step=5", true);
    assert!(!success, "the job cannot finish without workers: {status}");
    assert_eq!(status["phase"], "failed", "{status}");
    let run = setup.run_dir("killed");
    let committed = latest_checkpoint(&run).unwrap().expect("a checkpoint").step;
    assert_eq!(committed, 4, "the checkpoint of step 4 was waited for");

    // The same command again continues from there, and ends where the uninterrupted run did.
    let (status, success) = run_job(&setup, "killed", "", false);
    assert!(success, "{status}");
    assert_eq!(status["start_step"], committed, "{status}");
    assert_eq!(status["replicas_identical"], true, "{status}");
    let resumed = latest_checkpoint(&run).unwrap().unwrap();
    let reference = latest_checkpoint(&setup.run_dir("reference"))
        .unwrap()
        .unwrap();
    assert_eq!(resumed.step, 8);
    assert_eq!(
        resumed.parameters_sha256(),
        reference.parameters_sha256(),
        "2 workers resumed at step {committed} must match the uninterrupted 2-worker run bit for bit"
    );
    // The replicas' own checksums (same function, computed by the workers) agree as well.
    assert_eq!(
        status["workers"][0]["final_checksum"],
        reference_status["workers"][0]["final_checksum"]
    );
    assert_eq!(
        status["workers"][0]["final_checksum"].as_str(),
        Some(resumed.parameters_sha256().as_str())
    );
    // The manifest records every rank's data position and the job without credentials.
    let positions = resumed.manifest["data_positions"].as_array().unwrap();
    assert_eq!(positions.len(), 2);
    assert_eq!(positions[1]["rank"], 1);
    assert_eq!(positions[1]["next_step"], 8);
    let manifest_text = resumed.manifest.to_string();
    assert!(!manifest_text.contains(S3_SECRET_KEY), "{manifest_text}");
    assert_eq!(resumed.manifest["job"]["global_batch"], 8);
}

#[test]
fn missing_bucket_or_wrong_credentials_fail_at_start_naming_the_output() {
    let setup = setup();
    let start = |output: &str, options: &[String]| {
        let mut args = strings(&["start", "--listen", "127.0.0.1:0", "--local-workers", "1"]);
        args.extend(job_args(setup.data.path(), output, "4"));
        args.extend_from_slice(options);
        Command::new(anygan_tests::binary("coordinator"))
            .args(&args)
            .output()
            .expect("coordinator runs")
    };
    let missing = start("s3://no-such-bucket/job", &setup.options);
    let log = stderr(&missing);
    assert!(!missing.status.success());
    assert!(
        log.contains("s3://no-such-bucket/job") && log.contains("is not writable"),
        "{log}"
    );
    assert!(
        !String::from_utf8_lossy(&missing.stdout).contains("listening"),
        "nothing was served, no worker started"
    );

    let wrong_key = setup.server.store_options(S3_ACCESS_KEY, "not-the-secret");
    let refused = start("s3://out/job", &wrong_key);
    let log = stderr(&refused);
    assert!(!refused.status.success());
    assert!(
        log.contains("s3://out/job") && log.contains("is not writable"),
        "{log}"
    );
    assert!(!log.contains("not-the-secret"), "no secret printed: {log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        checkpoint_prefixes(&setup.run_dir("job"))
            .unwrap()
            .is_empty()
    );

    // `worker train` checks its output before the first step too.
    let mut args = train_args(setup.data.path(), "s3://no-such-bucket/run", 4, 2);
    args.extend_from_slice(&setup.options);
    let train = worker(&args, "");
    let log = stderr(&train);
    assert!(!train.status.success());
    assert!(
        log.contains("s3://no-such-bucket/run") && !log.contains("step=1 "),
        "{log}"
    );
}

/// Lines of a child's stderr as they come.
fn stderr_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// Reads lines until one satisfies `found`; every line read is appended to `seen`.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    found: impl Fn(&str) -> bool,
) {
    loop {
        let line = lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no line with {what}; log:\n{}", seen.join("\n")));
        seen.push(line);
        if found(seen.last().unwrap()) {
            return;
        }
    }
}

fn step_of(line: &str) -> Option<u64> {
    let rest = &line[line.find(" step=")? + 6..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn an_unreachable_store_fails_checkpoints_but_not_training() {
    let setup = setup();
    let target: std::net::SocketAddr = setup
        .server
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FlakyProxy::start(target).expect("proxy");
    let mut args = train_args(setup.data.path(), "s3://out/flaky", 100_000, 2);
    // Background uploads, the default: the point is that training does not wait for them.
    args.retain(|arg| arg != "--wait-for-checkpoints");
    args.extend(strings(&["--log-every", "1"]));
    args.extend(setup.server.store_options(S3_ACCESS_KEY, S3_SECRET_KEY));
    args.extend(strings(&[
        "--store-option",
        &format!("aws_endpoint={}", proxy.endpoint()),
    ]));
    let mut child = Command::new(anygan_tests::binary("worker"))
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .env("ANYGAN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let lines = stderr_lines(&mut child);
    let mut seen = Vec::new();
    wait_for_line(&lines, &mut seen, "a committed checkpoint", |l| {
        l.contains("checkpoint committed")
    });
    let committed_before = latest_checkpoint(&setup.run_dir("flaky"))
        .unwrap()
        .expect("committed")
        .step;

    proxy.set_mode(ProxyMode::Refuse);
    wait_for_line(&lines, &mut seen, "a failed checkpoint", |l| {
        l.contains("checkpoint failed after retries")
    });
    let failed_line = seen.last().unwrap().clone();
    let failed_step = step_of(&failed_line).expect("the failure names its step");
    // Training went on while the upload was failing: later steps finished before it gave up.
    let trained_meanwhile = seen
        .iter()
        .filter(|l| l.contains(" step") && !l.contains("checkpoint"))
        .filter_map(|l| step_of(l))
        .any(|step| step > failed_step + 2);
    assert!(trained_meanwhile, "training stalled: {}", seen.join("\n"));
    // `latest` never moved to anything incomplete.
    let during = latest_checkpoint(&setup.run_dir("flaky")).unwrap().unwrap();
    assert!(during.step >= committed_before && during.step < failed_step);

    proxy.set_mode(ProxyMode::Pass);
    wait_for_line(&lines, &mut seen, "a checkpoint after the outage", |l| {
        l.contains("checkpoint committed") && step_of(l).is_some_and(|s| s > failed_step)
    });
    let _ = child.kill();
    let _ = child.wait();
    let after = latest_checkpoint(&setup.run_dir("flaky")).unwrap().unwrap();
    assert!(after.step > failed_step, "{} <= {failed_step}", after.step);
    assert!(
        checkpoint_prefixes(&setup.run_dir("flaky"))
            .unwrap()
            .iter()
            .filter(|(_, has_manifest)| *has_manifest)
            .count()
            <= 2,
        "retention still applies"
    );
}

#[test]
fn credentials_from_a_file_reach_the_bucket() {
    let setup = setup();
    let file = setup.data.path().join("store.env");
    std::fs::write(
        &file,
        format!(
            "# mounted from a secret\naws_endpoint={}\naws_allow_http=true\naws_region=us-east-1\n\
             aws_access_key_id={S3_ACCESS_KEY}\naws_secret_access_key={S3_SECRET_KEY}\n",
            setup.server.endpoint
        ),
    )
    .unwrap();
    let mut args = train_args(setup.data.path(), "s3://out/from-file", 2, 2);
    args.extend(["--store-options-file".into(), file.to_str().unwrap().into()]);
    let output = worker(&args, "");
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(!log.contains(S3_SECRET_KEY), "{log}");
    assert_eq!(
        latest_checkpoint(&setup.run_dir("from-file"))
            .unwrap()
            .unwrap()
            .step,
        2
    );
}

#[test]
fn the_latest_pointer_is_a_conditional_put_on_s3() {
    use anygan_store::{Error, StoreLocation};
    use bytes::Bytes;
    let setup = setup();
    let options: Vec<(String, String)> = setup
        .options
        .chunks(2)
        .filter_map(|pair| pair[1].split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let root = StoreLocation::parse("s3://out/pointer", options, false).unwrap();
        root.put_if("latest", Bytes::from_static(b"one"), None)
            .await
            .unwrap();
        let err = root
            .put_if("latest", Bytes::from_static(b"two"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PointerConflict { .. }), "{err}");
        let (_, first) = root.get_versioned("latest").await.unwrap().unwrap();
        root.put_if("latest", Bytes::from_static(b"two"), Some(first.clone()))
            .await
            .unwrap();
        // A writer still holding the first version is refused (If-Match).
        let err = root
            .put_if("latest", Bytes::from_static(b"three"), Some(first))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PointerConflict { .. }), "{err}");
        assert_eq!(&root.get("latest").await.unwrap()[..], b"two");
    });
}
