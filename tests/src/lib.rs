//! `TestCluster`: a real coordinator process and real worker processes on 127.0.0.1, driven
//! like a user would, with every wait bounded by a deadline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The directory holding the workspace's binaries (`coordinator`, `worker`): the test
/// executable lives in `<target>/<profile>/deps/`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// Writes an IDX pair of `count` 28×28 images over two classes into `dir`
/// (`images.idx`, `labels.idx`).
pub fn write_tiny_idx(dir: &Path, count: u32) -> anyhow::Result<()> {
    let mut images = vec![0, 0, 8, 3];
    for dim in [count, 28, 28] {
        images.extend(dim.to_be_bytes());
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(count.to_be_bytes());
    for i in 0..count {
        let class = (i % 2) as u8;
        labels.push(class);
        images.extend((0..784u32).map(|p| {
            if class == 1 {
                200
            } else {
                ((p % 28) * 8) as u8
            }
        }));
    }
    std::fs::write(dir.join("images.idx"), images)?;
    std::fs::write(dir.join("labels.idx"), labels)?;
    Ok(())
}

/// `worker train` arguments of a tiny single-device run (W = 8, batch 8, no sample grids) on
/// [`write_tiny_idx`] data in `data`, writing to `output`; callers add steps and checkpointing.
pub fn tiny_train_args(data: &Path, output: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--format",
        "idx",
        "--idx-images",
        "images.idx",
        "--idx-labels",
        "labels.idx",
        "--width",
        "8",
        "--batch-size",
        "8",
        "--sample-every",
        "0",
        "--grid-columns",
        "2",
        "--output",
        output,
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--data".into(), data.display().to_string()]);
    args
}

/// `coordinator start` arguments of a tiny job (W = 8) on [`write_tiny_idx`] data in `data`.
pub fn tiny_job_args<'a>(
    data: &'a str,
    output: &'a str,
    steps: &'a str,
    workers: &'a str,
) -> Vec<&'a str> {
    vec![
        "--data",
        data,
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
        "--steps",
        steps,
        "--sample-every",
        "0",
        "--checksum-every",
        "2",
        "--output",
        output,
        "--min-workers",
        workers,
        "--max-workers",
        workers,
        "--heartbeat-timeout-ms",
        "20000",
    ]
}

/// A running coordinator process.
pub struct CoordinatorProcess {
    child: Child,
    pub address: String,
    /// The Prometheus endpoint's address, when started with --metrics-listen.
    pub metrics_address: Option<String>,
    lines: mpsc::Receiver<String>,
}

impl CoordinatorProcess {
    /// Starts `coordinator start --listen 127.0.0.1:0 <args>` and waits for its address.
    pub fn start(args: &[&str], deadline: Duration) -> anyhow::Result<Self> {
        Self::start_subcommand("start", args, deadline)
    }

    /// `coordinator <subcommand> --listen 127.0.0.1:0 <args>` (`start` or `generate`).
    pub fn start_subcommand(
        subcommand: &str,
        args: &[&str],
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_logged(subcommand, args, deadline, None)
    }

    /// Like [`Self::start_subcommand`], its log (stderr) written to `log` when given.
    pub fn start_logged(
        subcommand: &str,
        args: &[&str],
        deadline: Duration,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Self::start_listening(subcommand, "127.0.0.1:0", args, deadline, log)
    }

    /// Like [`Self::start_logged`], listening on `listen` (e.g. a restarted coordinator on its
    /// predecessor's address).
    pub fn start_listening(
        subcommand: &str,
        listen: &str,
        args: &[&str],
        deadline: Duration,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("coordinator"))
            .arg(subcommand)
            .args(["--listen", listen])
            .args(args)
            .env("ANYGAN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_to(log)?)
            .spawn()
            .context("starting the coordinator")?;
        let lines = read_lines(child.stdout.take().context("coordinator stdout")?);
        let mut metrics_address = None;
        loop {
            let line = lines
                .recv_timeout(deadline)
                .context("the coordinator did not print its address in time")?;
            if let Some(metrics) = line.strip_prefix("metrics listening on ") {
                metrics_address = Some(metrics.to_string());
                continue;
            }
            let Some(address) = line.strip_prefix("coordinator listening on ") else {
                bail!("unexpected line from the coordinator: {line}");
            };
            return Ok(Self {
                address: address.to_string(),
                metrics_address,
                child,
                lines,
            });
        }
    }

    /// Waits for the coordinator to exit; returns its final status line as JSON and whether it
    /// exited successfully.
    pub fn wait(mut self, deadline: Duration) -> anyhow::Result<(serde_json::Value, bool)> {
        let line = self
            .lines
            .recv_timeout(deadline)
            .context("the coordinator did not finish in time")?;
        let status = serde_json::from_str(&line)
            .with_context(|| format!("final line is not JSON: {line}"))?;
        let success = wait_child(&mut self.child, Duration::from_secs(10))?;
        Ok((status, success))
    }
}

impl CoordinatorProcess {
    /// The process id (to signal it, or find its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a child's stderr goes: a new file, or this process's stderr.
fn log_to(log: Option<&Path>) -> anyhow::Result<Stdio> {
    Ok(match log {
        Some(path) => std::fs::File::create(path)
            .with_context(|| format!("creating {}", path.display()))?
            .into(),
        None => Stdio::inherit(),
    })
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// Waits for a child with a deadline; kills it when the deadline passes.
pub fn wait_child(child: &mut Child, deadline: Duration) -> anyhow::Result<bool> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if Instant::now() > until {
            let _ = child.kill();
            bail!("process {} did not exit in time", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `worker join` process.
pub struct WorkerProcess {
    pub child: Child,
}

impl WorkerProcess {
    pub fn join(coordinator: &str, worker_id: &str) -> anyhow::Result<Self> {
        Self::join_with_env(coordinator, worker_id, &[])
    }

    /// Like [`Self::join`], with extra environment (e.g. `ANYGAN_FAILPOINTS`).
    pub fn join_with_env(
        coordinator: &str,
        worker_id: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::join_with(coordinator, worker_id, &[], env, None)
    }

    /// `worker join` with extra arguments and environment, its log written to `log` when given.
    pub fn join_with(
        coordinator: &str,
        worker_id: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let child = Command::new(binary("worker"))
            .envs(env.iter().copied())
            .args([
                "join",
                "--coordinator",
                coordinator,
                "--worker-id",
                worker_id,
            ])
            .args(args)
            .env("ANYGAN_LOG", "info")
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(log_to(log)?)
            .spawn()
            .context("starting a worker")?;
        Ok(Self { child })
    }

    pub fn wait(&mut self, deadline: Duration) -> anyhow::Result<bool> {
        wait_child(&mut self.child, deadline)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The job's status from the (plaintext) coordinator at `address`; none when it does not answer.
pub async fn job_status(address: &str) -> Option<anygan_proto::v1::JobStatus> {
    use anygan_proto::v1;
    let mut client =
        v1::coordinator_client::CoordinatorClient::connect(format!("http://{address}"))
            .await
            .ok()?;
    client
        .get_status(v1::StatusRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// Polls the job's status every 10 ms until `done` holds and returns it; fails the test, naming
/// `what` it waited for, once `deadline` has passed.
pub async fn wait_for_status(
    address: &str,
    deadline: Duration,
    what: &str,
    done: impl Fn(&anygan_proto::v1::JobStatus) -> bool,
) -> anygan_proto::v1::JobStatus {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = job_status(address).await
            && done(&status)
        {
            return status;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !condition().await {
        if Instant::now() > until {
            bail!("condition not reached within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A committed checkpoint as found on disk (a local output, or an s3s-fs bucket folder).
#[derive(Debug, Clone)]
pub struct CheckpointOnDisk {
    pub prefix: String,
    pub step: u64,
    pub manifest: serde_json::Value,
}

impl CheckpointOnDisk {
    /// SHA-256 of the parameter values: equal across runs exactly when the models are
    /// bit-identical (the objects' bytes are not comparable across processes: burn records carry
    /// per-process parameter ids).
    pub fn parameters_sha256(&self) -> String {
        self.manifest["parameters_sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `name → sha256` of every object the manifest lists.
    pub fn object_checksums(&self) -> std::collections::BTreeMap<String, String> {
        self.manifest["objects"]
            .as_array()
            .map(|objects| {
                objects
                    .iter()
                    .map(|o| {
                        (
                            o["name"].as_str().unwrap_or_default().to_string(),
                            o["sha256"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The checkpoint `<output>/checkpoints/latest` names, with its manifest; `None` when there is
/// no pointer yet.
pub fn latest_checkpoint(output: &Path) -> anyhow::Result<Option<CheckpointOnDisk>> {
    let checkpoints = output.join("checkpoints");
    let pointer = match std::fs::read(checkpoints.join("latest")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let pointer: serde_json::Value = serde_json::from_slice(&pointer)?;
    let prefix = pointer["prefix"]
        .as_str()
        .context("pointer without prefix")?
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(
        checkpoints.join(&prefix).join("MANIFEST.json"),
    )?)?;
    let step = manifest["step"].as_u64().context("manifest without step")?;
    anyhow::ensure!(
        pointer["step"] == manifest["step"],
        "pointer and manifest disagree"
    );
    Ok(Some(CheckpointOnDisk {
        prefix,
        step,
        manifest,
    }))
}

/// Whether `dir` holds a file anywhere below it (S3 has no directories: s3s-fs leaves empty
/// ones behind when objects are deleted).
fn holds_a_file(dir: &Path) -> anyhow::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file()
            || (entry.file_type()?.is_dir() && holds_a_file(&entry.path())?)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checkpoint prefixes under `<output>/checkpoints` that hold objects, sorted, each with
/// whether it has a manifest.
pub fn checkpoint_prefixes(output: &Path) -> anyhow::Result<Vec<(String, bool)>> {
    let mut prefixes = Vec::new();
    let dir = output.join("checkpoints");
    if !dir.exists() {
        return Ok(prefixes);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type()?.is_dir() && name.starts_with("step-") && holds_a_file(&entry.path())?
        {
            prefixes.push((name, entry.path().join("MANIFEST.json").is_file()));
        }
    }
    prefixes.sort();
    Ok(prefixes)
}

mod servers;
pub use servers::{FlakyProxy, ProxyMode, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};
