//! Workers that stop say why, with real processes: one that cannot read its data, one sent
//! SIGTERM mid-run. The heartbeat timeout is set far beyond the test's deadline, so only the
//! worker's own word (the Leave call) or the coordinator watching its local workers can end
//! or re-form the job in time.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::time::{Duration, Instant};

use anygan_proto::v1;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_tests::{CoordinatorProcess, WorkerProcess, binary, tiny_job_args, write_tiny_idx};

const DEADLINE: Duration = Duration::from_secs(120);
/// Ten minutes: a test that needed it would miss its deadline.
const NEVER_TIMES_OUT_MS: &str = "600000";

/// `coordinator start` arguments of a tiny job reading `data`, writing under `dir`.
fn job_args(dir: &std::path::Path, data: &str, steps: &str, workers: &str) -> Vec<String> {
    let output = dir.join("out");
    let mut args: Vec<String> =
        tiny_job_args(data, output.to_str().expect("utf-8"), steps, workers)
            .iter()
            .map(|s| s.to_string())
            .collect();
    for (flag, value) in [
        ("--heartbeat-timeout-ms", NEVER_TIMES_OUT_MS),
        ("--min-workers", "1"),
    ] {
        let at = args
            .iter()
            .position(|a| a == flag)
            .expect("set by tiny_job_args");
        args[at + 1] = value.into();
    }
    args.extend(
        [
            "--no-generation",
            "--heartbeat-interval-ms",
            "200",
            "--collective-timeout-ms",
            "5000",
        ]
        .map(String::from),
    );
    args
}

async fn status(address: &str) -> Option<v1::JobStatus> {
    let mut client = CoordinatorClient::connect(format!("http://{address}"))
        .await
        .ok()?;
    client
        .get_status(v1::StatusRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_worker_that_cannot_read_its_data_fails_the_job_at_once_naming_it_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-data");
    let mut args = job_args(dir.path(), missing.to_str().expect("utf-8"), "4", "1");
    let worker = binary("worker");
    args.extend([
        "--local-workers".into(),
        "1".into(),
        "--worker-binary".into(),
        worker.to_str().expect("utf-8").into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coordinator = CoordinatorProcess::start(&args, DEADLINE).expect("coordinator");
    let (status, success) = tokio::task::spawn_blocking(move || coordinator.wait(DEADLINE))
        .await
        .expect("join")
        .expect("the job ends without waiting out the heartbeat timeout");
    assert!(!success, "{status}");
    assert_eq!(status["phase"], "failed", "{status}");
    let failure = status["failure"].as_str().expect("a failure");
    assert!(failure.contains("local-0 stopped: "), "{failure}");
    assert!(
        failure.contains(missing.to_str().expect("utf-8")),
        "the failure names the missing data: {failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sent_sigterm_leaves_at_once_and_the_survivor_finishes_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 96).expect("data");
    let data = dir.path().to_str().expect("utf-8");
    let args = job_args(dir.path(), data, "200", "2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("coordinator.log");
    let coordinator = CoordinatorProcess::start_logged("start", &args, DEADLINE, Some(&log))
        .expect("coordinator");
    let address = coordinator.address.clone();
    let mut survivor = WorkerProcess::join(&address, "w0").expect("w0");
    let leaver_log = dir.path().join("w1.log");
    let mut leaver =
        WorkerProcess::join_with(&address, "w1", &[], &[], Some(&leaver_log)).expect("w1");

    let until = Instant::now() + DEADLINE;
    let training = loop {
        if let Some(s) = status(&address).await
            && s.phase == v1::JobPhase::Training as i32
            && s.completed_steps >= 5
        {
            break s;
        }
        assert!(Instant::now() < until, "training did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(training.workers.len(), 2);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &leaver.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    assert!(
        !leaver.wait(DEADLINE).expect("w1 exits"),
        "stopped before the job was done: a failure"
    );

    let (status, success) = tokio::task::spawn_blocking(move || coordinator.wait(DEADLINE))
        .await
        .expect("join")
        .expect("the job ends without waiting out the heartbeat timeout");
    assert!(success, "{status}");
    assert_eq!(status["phase"], "done", "{status}");
    assert_eq!(status["completed_steps"], 200, "{status}");
    let workers = status["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "{status}");
    assert_eq!(workers[0]["worker_id"], "w0", "{status}");
    assert!(survivor.wait(DEADLINE).expect("w0 exits"));

    let said = std::fs::read_to_string(&log).expect("coordinator log");
    let left = said
        .lines()
        .find(|l| l.contains("worker left"))
        .expect("the coordinator logs the leave");
    assert!(
        left.contains("w1") && left.contains("stopped by SIGTERM"),
        "{left}"
    );
    assert!(
        !said.contains("worker lost worker_id=w1 silent_ms"),
        "{said}"
    );
    let recovered = said
        .lines()
        .find(|l| l.contains("recovered: every survivor"))
        .expect("the survivor steps in the re-formed ring");
    eprintln!("SIGTERM: {recovered}");
    let leaver_said = std::fs::read_to_string(&leaver_log).expect("w1 log");
    assert!(
        leaver_said.contains("told the coordinator this worker stops"),
        "{leaver_said}"
    );
}
