//! Workers that stop say why, with real processes: one that cannot read its data, one sent
//! SIGTERM mid-run. The heartbeat timeout is set far beyond the test's deadline, so only the
//! worker's own word (the Leave call) or the coordinator watching its local workers can end
//! or re-form the job in time. And a coordinator sent SIGTERM stops its local workers instead
//! of leaving them behind.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::time::Duration;

use anygan_proto::v1;
use anygan_tests::{
    CoordinatorProcess, WorkerProcess, binary, tiny_job_args, wait_for_status, write_tiny_idx,
};

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

/// Adds `--local-workers count` with the workspace's worker binary.
fn with_local_workers(args: &mut Vec<String>, count: &str) {
    let worker = binary("worker");
    args.extend([
        "--local-workers".into(),
        count.into(),
        "--worker-binary".into(),
        worker.to_str().expect("utf-8").into(),
    ]);
}

/// Waits until the job trains and every replica has completed `steps`; its status then.
async fn training_past(address: &str, steps: u64) -> v1::JobStatus {
    wait_for_status(address, DEADLINE, "training to get going", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps >= steps
    })
    .await
}

/// The coordinator's final status line and whether it exited successfully.
async fn final_status(coordinator: CoordinatorProcess, what: &str) -> (serde_json::Value, bool) {
    tokio::task::spawn_blocking(move || coordinator.wait(DEADLINE))
        .await
        .expect("join")
        .expect(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_worker_that_cannot_read_its_data_fails_the_job_at_once_naming_it_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-data");
    let mut args = job_args(dir.path(), missing.to_str().expect("utf-8"), "4", "1");
    with_local_workers(&mut args, "1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coordinator = CoordinatorProcess::start(&args, DEADLINE).expect("coordinator");
    let (status, success) = final_status(
        coordinator,
        "the job ends without waiting out the heartbeat timeout",
    )
    .await;
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

    let training = training_past(&address, 5).await;
    assert_eq!(training.workers.len(), 2);
    send_signal("-TERM", leaver.child.id());
    assert!(
        !leaver.wait(DEADLINE).expect("w1 exits"),
        "stopped before the job was done: a failure"
    );

    let (status, success) = final_status(
        coordinator,
        "the job ends without waiting out the heartbeat timeout",
    )
    .await;
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

/// Sends `signal` (e.g. "-TERM") to `pid` with kill(1).
fn send_signal(signal: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {signal} {pid}");
}

/// The process ids of `parent`'s children, from /proc/<pid>/stat (the parent is the second
/// field after the command name, which may itself hold spaces or parentheses).
fn children_of(parent: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("/proc");
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after_name = &stat[stat.rfind(')')? + 1..];
                    after_name.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_sent_sigterm_stops_its_local_workers_and_reports_the_steps_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 96).expect("data");
    let data = dir.path().to_str().expect("utf-8");
    let mut args = job_args(dir.path(), data, "100000", "2");
    with_local_workers(&mut args, "2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coordinator = CoordinatorProcess::start(&args, DEADLINE).expect("coordinator");
    let address = coordinator.address.clone();
    training_past(&address, 5).await;
    let workers = children_of(coordinator.pid());
    assert_eq!(workers.len(), 2, "the two local workers: {workers:?}");
    send_signal("-TERM", coordinator.pid());
    let (status, success) =
        final_status(coordinator, "the coordinator ends with a final status").await;
    assert!(!success, "stopped before the job was over: {status}");
    assert!(
        status["completed_steps"].as_u64().expect("steps") >= 5,
        "the steps done are reported: {status}"
    );
    let failure = status["failure"].as_str().expect("a failure");
    assert!(
        failure.contains("local-0 stopped: stopped with the coordinator"),
        "{failure}"
    );
    // Reaped by the coordinator before it exited: not left running, orphaned, on the machine.
    for pid in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "local worker {pid} outlived the coordinator"
        );
    }
}
