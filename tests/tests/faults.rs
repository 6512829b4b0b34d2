//! Fault tolerance with real processes: workers SIGKILLed at random points mid-run, and a
//! worker SIGSTOPped past the heartbeat timeout. The survivors keep training in a re-formed
//! ring (no restart, no checkpoint read), lose at most the step in flight, finish with
//! identical replicas; a stopped worker that wakes up is fenced. Prints detection and
//! recovery times.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::path::Path;
use std::time::{Duration, Instant};

use anygan_proto::v1;
use anygan_tests::{
    CoordinatorProcess, WorkerProcess, job_status, tiny_job_args, wait_for_status, write_tiny_idx,
};

const DEADLINE: Duration = Duration::from_secs(180);

/// A tiny job in a temporary directory, set up for failures: heartbeats every 200 ms, lost
/// after 1 s, and a global batch of 12, which splits among 4, 3, 2 and 1 workers so that every
/// survivor stays in the ring.
struct Job {
    dir: tempfile::TempDir,
    output: std::path::PathBuf,
    log: std::path::PathBuf,
    args: Vec<String>,
}

impl Job {
    /// `steps` steps with up to `max_workers`; `overrides` replace flags' values, `extra` adds
    /// flags.
    fn new(steps: &str, max_workers: &str, overrides: &[(&str, &str)], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_tiny_idx(dir.path(), 96).expect("data");
        let output = dir.path().join("out");
        let log = dir.path().join("coordinator.log");
        let data = dir.path().to_str().expect("utf-8");
        let mut args: Vec<String> =
            tiny_job_args(data, output.to_str().expect("utf-8"), steps, max_workers)
                .iter()
                .map(|s| s.to_string())
                .collect();
        let defaults = [
            ("--global-batch", "12"),
            ("--checksum-every", "5"),
            ("--min-workers", "1"),
            ("--heartbeat-timeout-ms", "1000"),
        ];
        for (flag, value) in defaults.iter().chain(overrides) {
            match args.iter().position(|a| a == flag) {
                Some(at) => args[at + 1] = value.to_string(),
                None => args.extend([flag.to_string(), value.to_string()]),
            }
        }
        args.extend(
            [
                "--no-generation",
                "--heartbeat-interval-ms",
                "200",
                "--collective-timeout-ms",
                "10000",
            ]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
        );
        if !args.iter().any(|a| a == "--start-grace-ms") {
            args.extend(["--start-grace-ms".into(), "30000".into()]);
        }
        Self {
            dir,
            output,
            log,
            args,
        }
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Starts the coordinator, its log in `coordinator.log`.
    fn start(&self) -> CoordinatorProcess {
        CoordinatorProcess::start_logged("start", &self.args(), DEADLINE, Some(&self.log))
            .expect("coordinator")
    }
}

/// The number logged as ` name=` on `line`.
fn log_field(line: &str, name: &str) -> u64 {
    let key = format!(" {name}=");
    let start = line.find(&key).expect(name) + key.len();
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

/// The coordinator log's lines that contain `event`.
fn log_events(log: &Path, event: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .expect("coordinator log")
        .lines()
        .filter(|l| l.contains(event))
        .map(str::to_string)
        .collect()
}

/// (detection ms, recovery ms, step) of every recovery the coordinator logged.
fn recoveries(log: &Path) -> Vec<(u64, u64, u64)> {
    log_events(log, "recovered: every survivor")
        .iter()
        .map(|l| {
            (
                log_field(l, "detection_ms"),
                log_field(l, "recovery_ms"),
                log_field(l, "step"),
            )
        })
        .collect()
}

fn reform_steps(log: &Path) -> Vec<u64> {
    log_events(log, "ring re-formed")
        .iter()
        .map(|l| log_field(l, "step"))
        .collect()
}

/// Waits for the job to end and checks it succeeded with identical replicas; its final status.
async fn finished(coordinator: CoordinatorProcess) -> serde_json::Value {
    let (status, success) = tokio::task::spawn_blocking(move || coordinator.wait(DEADLINE))
        .await
        .expect("join")
        .expect("job ends");
    assert!(success, "{status}");
    assert_eq!(status["phase"], "done", "{status}");
    assert_eq!(status["replicas_identical"], true, "{status}");
    status
}

/// `worker join` processes for `ids`.
fn join_all(address: &str, ids: &[&str]) -> Vec<WorkerProcess> {
    ids.iter()
        .map(|id| WorkerProcess::join(address, id).expect("worker"))
        .collect()
}

fn median_and_worst(mut values: Vec<u64>) -> (u64, u64) {
    values.sort_unstable();
    (values[values.len() / 2], *values.last().expect("values"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_leave_survivors_training_to_identical_replicas() {
    const KILLS: u64 = 8;
    let job = Job::new("700", "4", &[], &[]);
    let log = job.log.clone();
    let coordinator = job.start();
    let address = coordinator.address.clone();
    let mut workers: Vec<(String, WorkerProcess)> = (0..4)
        .map(|i| {
            let id = format!("w{i}");
            let worker = WorkerProcess::join(&address, &id).expect("worker");
            (id, worker)
        })
        .collect();

    // Kills at pseudo-random points: a random step to reach, then a random delay within the
    // step (a step takes a few milliseconds here), so the kill lands anywhere in it. After
    // each, a fresh worker joins, so the ring is back to four for the next kill.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut completed_before_kill = Vec::new();
    let first_generation = wait_for_status(&address, DEADLINE, "training", |s| {
        s.phase == v1::JobPhase::Training as i32
    })
    .await
    .generation;
    let mut target = 0;
    for kill in 0..KILLS {
        target += 30 + next(40);
        let seen = wait_for_status(&address, DEADLINE, "training progress", |s| {
            s.phase == v1::JobPhase::Training as i32 && s.completed_steps >= target
        })
        .await;
        tokio::time::sleep(Duration::from_micros(next(20_000))).await;
        let victim = next(workers.len() as u64) as usize;
        let (id, mut worker) = workers.remove(victim);
        worker.child.kill().expect("SIGKILL");
        worker.child.wait().expect("reaped");
        completed_before_kill.push(seen.completed_steps);
        eprintln!(
            "kill {kill}: SIGKILL {id} after step {}",
            seen.completed_steps
        );
        // The survivors re-form; then a replacement joins.
        let generation = seen.generation;
        let reformed = wait_for_status(&address, DEADLINE, "the re-formed ring", |s| {
            s.generation > generation && s.workers.len() == 3
        })
        .await;
        let fresh = format!("r{kill}");
        workers.push((
            fresh.clone(),
            WorkerProcess::join(&address, &fresh).expect("replacement"),
        ));
        wait_for_status(&address, DEADLINE, "the replacement in the ring", |s| {
            s.generation > reformed.generation && s.workers.len() == 4
        })
        .await;
    }

    let final_status = finished(coordinator).await;
    assert_eq!(final_status["completed_steps"], 700);
    assert_eq!(
        final_status["membership_generation"].as_u64(),
        Some(first_generation + 2 * KILLS),
        "a re-formed ring per loss and per join"
    );
    for (id, worker) in &mut workers {
        assert!(worker.wait(DEADLINE).expect("exits"), "worker {id} failed");
    }
    let log_text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !log_text.contains("resuming"),
        "no worker restarted from a checkpoint"
    );

    // Each ring re-formed after a loss starts no earlier than the steps every worker had
    // completed before the kill: only the step in flight is lost.
    let reforms = reform_steps(&log);
    assert_eq!(reforms.len() as u64, 2 * KILLS, "{log_text}");
    for (reform, before) in reforms.iter().step_by(2).zip(&completed_before_kill) {
        assert!(
            reform >= before,
            "re-formed at {reform}, {before} were complete"
        );
    }
    let detections = lost_silences(&log);
    assert_eq!(detections.len() as u64, KILLS);
    let (detection_median, detection_worst) = median_and_worst(detections.clone());
    let recoveries: Vec<u64> = recoveries(&log).iter().map(|m| m.1).collect();
    assert!(!recoveries.is_empty());
    let (recovery_median, recovery_worst) = median_and_worst(recoveries.clone());
    eprintln!(
        "SIGKILL x{KILLS}: detection median {detection_median} ms, worst {detection_worst} ms (timeout 1000 ms); \
         recovery median {recovery_median} ms, worst {recovery_worst} ms ({} rings measured)",
        recoveries.len()
    );
    assert!(
        detections.iter().all(|&d| d >= 1000),
        "declared before the timeout: {detections:?}"
    );
}

/// How long each lost worker had been silent when it was declared lost (ms).
fn lost_silences(log: &Path) -> Vec<u64> {
    log_events(log, "worker lost")
        .iter()
        .map(|l| log_field(l, "silent_ms"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_joining_mid_run_gets_the_state_from_a_peer_and_ends_identical() {
    // Start with 2 of at most 3 workers, at once.
    let job = Job::new(
        "300",
        "3",
        &[("--min-workers", "2"), ("--start-grace-ms", "0")],
        &[],
    );
    let (dir, log) = (job.dir.path(), job.log.clone());
    let coordinator = job.start();
    let address = coordinator.address.clone();
    let mut workers = join_all(&address, &["w0", "w1"]);
    let before = wait_for_status(&address, DEADLINE, "training progress", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps >= 60
    })
    .await;
    let joiner_log = dir.join("w2.log");
    workers.push(
        WorkerProcess::join_with(&address, "w2", &[], &[], Some(&joiner_log)).expect("joiner"),
    );
    let joined = wait_for_status(&address, DEADLINE, "the ring with the new worker", |s| {
        s.generation > before.generation && s.workers.len() == 3
    })
    .await;

    let status = finished(coordinator).await;
    // The joiner's final parameters equal the others': it received the right state.
    assert_eq!(
        status["workers"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    assert_eq!(status["completed_steps"], 300);
    for worker in &mut workers {
        assert!(worker.wait(DEADLINE).expect("exits"), "a worker failed");
    }
    let said = std::fs::read_to_string(&joiner_log).expect("joiner log");
    assert!(said.contains("state received from a peer"), "{said}");
    assert!(!said.contains("resuming"), "the joiner read no checkpoint");
    let reforms = reform_steps(&log);
    assert_eq!(reforms.len(), 1);
    assert!(
        reforms[0] >= before.completed_steps,
        "admitted at step {}, {} were complete",
        reforms[0],
        before.completed_steps
    );
    let measured = recoveries(&log);
    eprintln!(
        "elastic join at step {} (generation +{}): the ring of 3 completed its first step {} ms after admission",
        reforms[0],
        joined.generation - before.generation,
        measured.first().map_or(0, |m| m.1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_min_workers_the_job_pauses_visibly_and_resumes_when_a_worker_returns() {
    let job = Job::new("200", "2", &[("--min-workers", "2")], &[]);
    let coordinator = job.start();
    let address = coordinator.address.clone();
    let mut workers = join_all(&address, &["w0", "w1"]);
    let before = wait_for_status(&address, DEADLINE, "training progress", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps >= 50
    })
    .await;
    let mut lost = workers.pop().expect("w1");
    lost.child.kill().expect("SIGKILL");
    lost.child.wait().expect("reaped");
    let paused = wait_for_status(&address, DEADLINE, "the pause", |s| {
        s.phase == v1::JobPhase::Paused as i32
    })
    .await;
    assert_eq!(paused.workers.len(), 1);
    // Longer than the collective timeout: the survivor keeps its state while paused.
    tokio::time::sleep(Duration::from_millis(12_000)).await;
    let still = job_status(&address).await.expect("status");
    assert_eq!(still.phase, v1::JobPhase::Paused as i32, "{still:?}");
    assert_eq!(
        still.completed_steps, paused.completed_steps,
        "no training while paused"
    );
    workers.push(WorkerProcess::join(&address, "w2").expect("a worker returns"));
    wait_for_status(&address, DEADLINE, "training again", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps > paused.completed_steps
    })
    .await;
    let status = finished(coordinator).await;
    assert_eq!(status["completed_steps"], 200);
    for worker in &mut workers {
        assert!(worker.wait(DEADLINE).expect("exits"), "a worker failed");
    }
    assert!(paused.completed_steps >= before.completed_steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordinator_restarts_from_the_newest_checkpoint_with_the_same_workers() {
    let job = Job::new("300", "2", &[], &["--checkpoint-every", "20"]);
    let (dir, output) = (job.dir.path(), job.output.clone());
    let args = job.args();
    let mut first =
        CoordinatorProcess::start_logged("start", &args, DEADLINE, Some(&dir.join("first.log")))
            .expect("coordinator");
    let address = first.address.clone();
    let mut workers = join_all(&address, &["w0", "w1"]);
    let before = wait_for_status(&address, DEADLINE, "training progress", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps >= 110
    })
    .await;
    first.kill().expect("SIGKILL the coordinator");
    let committed = anygan_tests::latest_checkpoint(&output)
        .expect("readable")
        .expect("a checkpoint before the kill");
    eprintln!(
        "coordinator killed after step {}; newest checkpoint: step {}",
        before.completed_steps, committed.step
    );

    // The same command again, on the same address; the workers find it by themselves.
    let restarted_at = Instant::now();
    let second = CoordinatorProcess::start_listening(
        "start",
        &address,
        &args,
        DEADLINE,
        Some(&dir.join("second.log")),
    )
    .expect("restarted coordinator");
    let resumed = wait_for_status(&address, DEADLINE, "training again", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps > s.start_step
    })
    .await;
    let resume_ms = restarted_at.elapsed().as_millis();
    // Rank 0 may still commit the upload it had in flight when the coordinator died, so the
    // newest checkpoint can be newer than the one read right after the kill, never older.
    assert!(
        resumed.start_step >= committed.step && resumed.start_step % 20 == 0,
        "continues from the newest checkpoint (step {}), nothing before it lost; resumed at {}",
        committed.step,
        resumed.start_step
    );
    assert!(
        resumed.generation > before.generation,
        "a new incarnation's generation"
    );

    let status = finished(second).await;
    assert_eq!(status["completed_steps"], 300);
    for worker in &mut workers {
        assert!(
            worker.wait(DEADLINE).expect("exits"),
            "a worker did not survive the coordinator's restart"
        );
    }
    eprintln!(
        "coordinator restart: training resumed {resume_ms} ms after the new process started, at step {}",
        committed.step
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_is_fenced_when_it_wakes_and_rejoins() {
    let job = Job::new("300", "3", &[], &[]);
    let (dir, log) = (job.dir.path(), job.log.clone());
    let coordinator = job.start();
    let address = coordinator.address.clone();
    let stopped_log = dir.join("w2.log");
    let mut survivors = join_all(&address, &["w0", "w1"]);
    let sleeper =
        WorkerProcess::join_with(&address, "w2", &[], &[], Some(&stopped_log)).expect("worker");
    let seen = wait_for_status(&address, DEADLINE, "training progress", |s| {
        s.phase == v1::JobPhase::Training as i32 && s.completed_steps >= 50
    })
    .await;
    let pid = sleeper.child.id().to_string();
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {name}");
    };
    signal("-STOP");
    // Stopped past the timeout: the others re-form without it.
    wait_for_status(&address, DEADLINE, "the re-formed ring", |s| {
        s.generation > seen.generation && s.workers.len() == 2
    })
    .await;
    let fenced_at =
        wait_for_status(&address, DEADLINE, "training on", |s| s.workers.len() == 2).await;
    signal("-CONT");
    // Awake, it learns it was declared lost, drops its stale state and joins again: admitted
    // into a re-formed ring with rank 0's state.
    let rejoined = wait_for_status(&address, DEADLINE, "the rejoined ring", |s| {
        s.generation > fenced_at.generation && s.workers.len() == 3
    })
    .await;
    assert!(rejoined.workers.iter().any(|w| w.worker_id == "w2"));
    survivors.push(sleeper);

    let final_status = finished(coordinator).await;
    assert_eq!(final_status["completed_steps"], 300);
    assert_eq!(
        final_status["workers"].as_array().map(Vec::len),
        Some(3),
        "the rejoined worker ends with the others: {final_status}"
    );
    for worker in &mut survivors {
        assert!(worker.wait(DEADLINE).expect("exits"));
    }
    let said = std::fs::read_to_string(&stopped_log).expect("log");
    assert!(said.contains("fenced; joining again"), "{said}");
    assert!(said.contains("state received from a peer"), "{said}");
    // One recovery per re-formed ring, unless the rejoin re-formed it again before the ring
    // without it had stepped.
    let measured = recoveries(&log);
    assert!(!measured.is_empty() && measured.len() <= 2, "{measured:?}");
    eprintln!(
        "SIGSTOP: detection {} ms (timeout 1000 ms), recovery {} ms",
        measured[0].0, measured[0].1
    );
}
