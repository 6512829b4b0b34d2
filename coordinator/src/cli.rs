//! Command-line interface of the `coordinator` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anygan_coordinator::progress::Terminal;
use anygan_coordinator::{LocalWorker, ServeOptions, Timing, prepare_output, serve};
use anygan_proto::cli::{DataArgs, SecurityArgs};

mod inspect;
mod job_args;
use anygan_proto::job::{JobSpec, ModelSpec};
use anygan_proto::shard::Sampling;
use anygan_proto::v1;
use anygan_store::{CheckpointOptions, CheckpointStore, StoreLocation};
use clap::{Args, Parser, Subcommand};
use inspect::{CredentialsArgs, StatusArgs, credentials, status, status_json};
use job_args::{EvaluationArgs, GenerationArgs};

#[derive(Parser, Debug)]
#[command(
    name = "coordinator",
    version,
    about = "anygan coordinator: runs one distributed cDCGAN job"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "ANYGAN_LOG_JSON")]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a job: wait for workers, assign ranks, track steps until every replica is done.
    Start(Box<StartArgs>),
    /// Generate the images a committed checkpoint's classes lack, with workers that join
    /// (or --local-workers): a generation-only job, no training.
    Generate(Box<GenerateArgs>),
    /// Print the status of a running job.
    Status(StatusArgs),
    /// Write a fresh cluster CA, one certificate + key for every process (server and client,
    /// named --tls-server-name) and a random token: ca.crt, tls.crt, tls.key, token.
    Credentials(CredentialsArgs),
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[arg(long, env = "ANYGAN_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// The job's output: a directory or s3://bucket/prefix holding `checkpoints/`.
    #[arg(long, env = "ANYGAN_OUTPUT", default_value = "out/job")]
    output: String,
    /// The checkpoint to generate from: `latest`, its step (`1500`), or its prefix under
    /// checkpoints/ (`step-0000001500-c813a6ed`, or a unique start of it).
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    #[command(flatten)]
    generation: GenerationArgs,
    #[command(flatten)]
    evaluation: EvaluationArgs,
    /// Object-store options, KEY=VALUE.
    #[arg(long = "store-option", value_parser = anygan_proto::cli::parse_key_value)]
    store_options: Vec<(String, String)>,
    /// A file of object-store options, one KEY=VALUE per line.
    #[arg(long, env = "ANYGAN_STORE_OPTIONS_FILE")]
    store_options_file: Option<PathBuf>,
    #[arg(long, env = "ANYGAN_JOB_ID", default_value = "anygan-generate")]
    job_id: String,
    #[arg(long, default_value_t = 1)]
    min_workers: usize,
    #[arg(long, default_value_t = 64)]
    max_workers: usize,
    #[command(flatten)]
    serving: ServingArgs,
}

/// How a job is served: the same for training jobs and generation-only jobs.
#[derive(Args, Debug)]
struct ServingArgs {
    /// Once min workers are in, wait this long for more before starting.
    #[arg(long, default_value_t = 2000)]
    start_grace_ms: u64,
    /// After the job ends, keep serving status and metrics this long, then exit (a cluster
    /// deployment sets hours, so the finished job stays visible and the pod is not restarted).
    #[arg(long, default_value_t = 1)]
    linger_s: u64,
    #[arg(long, default_value_t = 500)]
    heartbeat_interval_ms: u64,
    /// A worker silent this long is declared lost (its ring is re-formed, its tasks go to
    /// others). Heartbeats come from their own task, not the training thread, so a long step
    /// does not delay them.
    #[arg(long, default_value_t = 5_000)]
    heartbeat_timeout_ms: u64,
    /// Also start this many `worker join` processes on this machine (0: workers join by themselves).
    #[arg(long, default_value_t = 0)]
    local_workers: usize,
    /// The worker binary for --local-workers (default: `worker` beside this binary).
    #[arg(long)]
    worker_binary: Option<PathBuf>,
    #[command(flatten)]
    security: SecurityArgs,
    /// Where the Prometheus endpoint (/metrics, /healthz) listens, e.g. 0.0.0.0:9090.
    #[arg(long, env = "ANYGAN_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// No progress bars, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct StartArgs {
    /// Address the gRPC service listens on (port 0: any free port, printed at start).
    #[arg(long, env = "ANYGAN_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataArgs,
    /// Where results go: a directory or s3://bucket/prefix.
    #[arg(long, env = "ANYGAN_OUTPUT", default_value = "out/job")]
    output: String,
    #[arg(long, env = "ANYGAN_JOB_ID", default_value = "anygan-job")]
    job_id: String,
    /// Feature width W: 128 standard, 64 the small CPU preset.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Image side: 28 or 32.
    #[arg(long, default_value_t = 28)]
    image_size: usize,
    /// Image channels: 1 or 3.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    #[arg(long, default_value_t = 100)]
    latent_dim: usize,
    /// Dropout before the discriminator's last layer.
    #[arg(long, default_value_t = 0.4)]
    dropout: f64,
    /// Add a projection term to the discriminator's logit (Miyato & Koyama 2018): a per-class
    /// vector dotted with the features its last layer reads, beside the recipe's label channel.
    #[arg(long)]
    projection_discriminator: bool,
    /// Train an auxiliary classifier beside the discriminator with this weight on its terms
    /// (AC-GAN, Odena et al. 2017): it learns the classes from the real images without their
    /// labels, and the generator's images of a class must be classified as that class.
    #[arg(long, value_name = "WEIGHT")]
    auxiliary_classifier: Option<f32>,
    /// Divide each of the discriminator's weights by its largest singular value at every
    /// forward pass (spectral normalization, Miyato et al. 2018): no layer can stretch its
    /// input by more than 1.
    #[arg(long)]
    spectral_norm: bool,
    /// Share the common classes' coarse shapes with the rare ones (UTLO, Khorram et al. 2024),
    /// with this weight on the unconditional terms: the generator's stages below the full
    /// resolution see no label and also draw a half-size image, which the discriminator's
    /// lower stages judge without the label against the real images pooled to that size.
    #[arg(long, value_name = "WEIGHT")]
    unconditional_low_resolution: Option<f32>,
    /// Train with the hinge loss (SAGAN, BigGAN) instead of the recipe's binary cross-entropy.
    #[arg(long)]
    hinge_loss: bool,
    /// Train until this many steps are complete.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Images per step over all workers (divided evenly among them).
    #[arg(long, default_value_t = 64)]
    global_batch: usize,
    /// Adam's rate for the generator, and for the discriminator unless
    /// --discriminator-learning-rate gives it its own.
    #[arg(long, default_value_t = 2e-4)]
    learning_rate: f64,
    /// The discriminator's own Adam rate (two time-scale update rule, e.g. 4e-4 with
    /// --learning-rate 1e-4); default: --learning-rate, as the recipe has it.
    #[arg(long)]
    discriminator_learning_rate: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Draw generated images' labels uniformly instead of with the data's class frequencies.
    #[arg(long)]
    uniform_fake_labels: bool,
    /// How the discriminator's real batches are drawn: `as-is` (every record once an epoch)
    /// or `class-balanced` (every class as often as the largest; implies uniform fake labels).
    #[arg(long, value_enum, default_value_t = RealSamplingArg::AsIs)]
    real_sampling: RealSamplingArg,
    /// Sample grid every N steps (0: only at the end).
    #[arg(long, default_value_t = 100)]
    sample_every: u64,
    /// Replicas report a parameter checksum every N steps (0: only at the end).
    #[arg(long, default_value_t = 50)]
    checksum_every: u64,
    /// Commit a checkpoint every N steps (0: only at the end). A job started again with the
    /// same --output continues from the newest valid checkpoint.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Rank 0 waits for each periodic checkpoint to commit, and the ring with it; without it a
    /// checkpoint due while the previous one is still uploading is skipped so that a slow store
    /// never stalls training.
    #[arg(long)]
    wait_for_checkpoints: bool,
    /// Keep this many of the newest checkpoints; older ones are deleted.
    #[arg(long, default_value_t = 3)]
    keep_checkpoints: usize,
    #[arg(long, env = "ANYGAN_MIN_WORKERS", default_value_t = 1)]
    min_workers: usize,
    #[arg(long, env = "ANYGAN_MAX_WORKERS", default_value_t = 64)]
    max_workers: usize,
    /// An all-reduce hop that does not arrive within this fails.
    #[arg(long, default_value_t = 30_000)]
    collective_timeout_ms: u64,
    /// Lay the data order out for this many workers (a multiple of the actual number): a run
    /// with fewer workers then sees exactly the global batches of the larger one.
    #[arg(long)]
    shard_world_size: Option<usize>,
    /// Keep a moving average of the generator's weights with this decay; generation samples
    /// from it (0: none). A resumed run without one starts it at the resumed step.
    #[arg(long, default_value_t = anygan_proto::job::DEFAULT_GENERATOR_EMA)]
    generator_ema: f32,
    /// Send every discriminator input, real or generated, through these differentiable
    /// transforms (DiffAugment): a comma-separated list of color, translation, cutout; none:
    /// as is. Keeps the discriminator from memorizing classes with few images. Widths above
    /// 112 need it: without it W = 128 collapsed to all-black images within 200 steps.
    #[arg(long, default_value = "none")]
    diff_augment: String,
    /// Add WEIGHT × the mode-seeking term to the generator's loss (Mao et al. 2019): pairs of
    /// generated images of one class must differ as their noise does (0: off).
    #[arg(long, default_value_t = 0.0)]
    mode_seeking: f32,
    /// Add WEIGHT × BCE(D(real image, wrong label), 0) to the discriminator's loss (Reed et al.
    /// 2016): every real image is shown again under another class's label, as a fake, so the
    /// discriminator checks that an image is of its class and the generator must draw classes
    /// that differ, e.g. shirts that are not t-shirts (0: off).
    #[arg(long, default_value_t = 0.0)]
    mismatched_labels: f32,
    /// Shift every real image the discriminator sees by up to N pixels each way (the background
    /// coming in), so the generator learns to draw each class at varied positions — a prior a
    /// rare class's few originals do not show (0: off). Not DiffAugment: generated images are
    /// not shifted, so the generator's output carries the shifts.
    #[arg(long, default_value_t = 0)]
    real_shift: usize,
    #[command(flatten)]
    generation: GenerationArgs,
    #[command(flatten)]
    evaluation: EvaluationArgs,
    /// Train only: no generation after training.
    #[arg(long)]
    no_generation: bool,
    #[command(flatten)]
    serving: ServingArgs,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let bars_wanted = !cli.log_json
        && match &cli.command {
            Command::Start(args) => !args.serving.no_progress,
            Command::Generate(args) => !args.serving.no_progress,
            Command::Status(_) | Command::Credentials(_) => false,
        };
    let terminal = Terminal::interactive(bars_wanted);
    match &terminal {
        Some(terminal) => anygan_proto::cli::init_tracing_to(cli.log_json, terminal.make_writer()),
        None => anygan_proto::cli::init_tracing(cli.log_json),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Start(args) => runtime.block_on(start(*args, terminal)),
        Command::Generate(args) => runtime.block_on(generate(*args, terminal)),
        Command::Status(args) => runtime.block_on(status(args)),
        Command::Credentials(args) => credentials(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "error: {}",
                anygan_proto::error_text::describe(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn job_spec(args: &StartArgs) -> anyhow::Result<JobSpec> {
    let spec = JobSpec {
        job_id: args.job_id.clone(),
        dataset: args.data.source().map_err(anyhow::Error::msg)?,
        model: ModelSpec {
            width: args.width,
            image_size: args.image_size,
            channels: args.channels,
            latent_dim: args.latent_dim,
            dropout: args.dropout,
            projection_discriminator: args.projection_discriminator,
            auxiliary_classifier: args.auxiliary_classifier,
            spectral_norm: args.spectral_norm,
            unconditional_low_resolution: args.unconditional_low_resolution,
        },
        steps: args.steps,
        global_batch: args.global_batch,
        learning_rate: args.learning_rate,
        discriminator_learning_rate: args.discriminator_learning_rate,
        seed: args.seed,
        uniform_fake_labels: args.uniform_fake_labels,
        real_sampling: match args.real_sampling {
            RealSamplingArg::AsIs => Sampling::AsIs,
            RealSamplingArg::ClassBalanced => Sampling::ClassBalanced,
        },
        output: args.output.clone(),
        store_options: args.data.all_store_options().map_err(anyhow::Error::msg)?,
        sample_every: args.sample_every,
        checksum_every: args.checksum_every,
        checkpoint_every: args.checkpoint_every,
        wait_for_checkpoints: args.wait_for_checkpoints,
        keep_checkpoints: args.keep_checkpoints,
        generation: (!args.no_generation).then(|| args.generation.spec()),
        evaluation: args.evaluation.settings(),
        generate_from: None,
        min_workers: args
            .min_workers
            .max(args.serving.local_workers.min(args.max_workers)),
        max_workers: args.max_workers,
        collective_timeout_ms: args.collective_timeout_ms,
        shard_world_size: args.shard_world_size,
        generator_ema: (args.generator_ema != 0.0).then_some(args.generator_ema),
        diff_augment: (!matches!(args.diff_augment.as_str(), "" | "none"))
            .then(|| args.diff_augment.clone()),
        mode_seeking: (args.mode_seeking != 0.0).then_some(args.mode_seeking),
        mismatched_labels: (args.mismatched_labels != 0.0).then_some(args.mismatched_labels),
        real_shift: (args.real_shift != 0).then_some(args.real_shift),
        hinge_loss: args.hinge_loss,
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    Ok(spec)
}

async fn start(args: StartArgs, terminal: Option<Terminal>) -> anyhow::Result<ExitCode> {
    let spec = job_spec(&args)?;
    if let Some(warning) =
        anygan_proto::job::width_warning(spec.model.width, spec.diff_augment.as_deref())
    {
        tracing::warn!("{warning}");
    }
    // Before any worker starts: the output must be writable, and a checkpoint there decides
    // where training starts.
    // Local configuration first: a bad certificate path fails at once, before any store IO.
    let security = args
        .serving
        .security
        .security()
        .map_err(anyhow::Error::msg)?;
    let resume = prepare_output(&spec).await?;
    let start_step = resume.as_ref().map_or(0, |r| r.step);
    let description = format!("training from step {start_step}");
    launch(
        spec,
        resume,
        &args.serving,
        security,
        terminal,
        args.listen,
        &description,
    )
    .await
}

/// Binds the endpoints, starts the local workers and serves `spec` until it ends.
async fn launch(
    spec: JobSpec,
    resume: Option<anygan_coordinator::ResumePoint>,
    serving: &ServingArgs,
    security: anygan_proto::security::Security,
    terminal: Option<Terminal>,
    listen: SocketAddr,
    description: &str,
) -> anyhow::Result<ExitCode> {
    let metrics = bind_metrics(serving.metrics_listen).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to learn the port.
    println!("coordinator listening on {address}");
    tracing::info!(%address, job = %spec.job_id, min_workers = spec.min_workers, max_workers = spec.max_workers, steps = spec.steps, security = security.describe(), "serving: {description}");
    let workers = spawn_local_workers(
        serving.local_workers,
        serving.worker_binary.as_ref(),
        address,
        &serving.security,
        terminal.as_ref(),
    )?;
    let options = ServeOptions {
        timing: Timing {
            heartbeat_interval: Duration::from_millis(serving.heartbeat_interval_ms),
            heartbeat_timeout: Duration::from_millis(serving.heartbeat_timeout_ms),
            start_grace: Duration::from_millis(serving.start_grace_ms),
            linger: Duration::from_secs(serving.linger_s),
        },
        security,
        metrics,
        progress: terminal,
        local_workers: workers,
    };
    serve_until_done(listener, spec, resume, options).await
}

/// Binds the metrics endpoint; prints its address first (scripts and tests read it).
async fn bind_metrics(
    address: Option<SocketAddr>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(address) = address else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-listen {address}: {e}"))?;
    println!("metrics listening on {}", listener.local_addr()?);
    Ok(Some(listener))
}

/// Serves the job until it ends (or SIGINT / SIGTERM), then waits for local workers and reports.
async fn serve_until_done(
    listener: tokio::net::TcpListener,
    spec: JobSpec,
    resume: Option<anygan_coordinator::ResumePoint>,
    options: ServeOptions,
) -> anyhow::Result<ExitCode> {
    let stopped = async {
        let signal = anygan_proto::cli::stop_signal().await;
        tracing::warn!(signal, "stopping before the job is over");
    };
    let served = serve(listener, spec, resume, options, stopped).await?;
    finish(served.status, served.local_workers_succeeded)
}

/// Prints the final status line and turns it (and the local workers' exits) into the exit code.
fn finish(status: v1::JobStatus, workers_ok: bool) -> anyhow::Result<ExitCode> {
    let done = status.phase == v1::JobPhase::Done as i32 && status.replicas_identical == Some(true);
    println!("{}", status_json(&status));
    Ok(if done && workers_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A generation-only job from a committed checkpoint: the job's data and model come from the
/// checkpoint's manifest.
async fn generate(args: GenerateArgs, terminal: Option<Terminal>) -> anyhow::Result<ExitCode> {
    let mut store_options = match &args.store_options_file {
        Some(path) => anygan_proto::cli::read_store_options(path).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    store_options.extend(args.store_options.iter().cloned());
    let output = StoreLocation::parse(&args.output, store_options.iter().cloned(), false)?;
    output.check_writable().await?;
    let store = CheckpointStore::for_output(&output, CheckpointOptions::default())?;
    let checkpoint = store.resolve(&args.checkpoint).await?;
    let (manifest, _) = store.manifest(&checkpoint).await?;
    let saved: JobSpec = serde_json::from_value(manifest.job.clone()).map_err(|e| {
        anyhow::anyhow!(
            "{}: the manifest holds no job spec this coordinator reads: {e}",
            store.location().describe(&checkpoint)
        )
    })?;
    let spec = JobSpec {
        job_id: args.job_id.clone(),
        output: args.output.clone(),
        store_options,
        generation: Some(args.generation.spec()),
        evaluation: args.evaluation.settings(),
        generate_from: Some(checkpoint.clone()),
        min_workers: args
            .min_workers
            .max(args.serving.local_workers.min(args.max_workers)),
        max_workers: args.max_workers,
        ..saved
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    let security = args
        .serving
        .security
        .security()
        .map_err(anyhow::Error::msg)?;
    let description = format!(
        "generation only, from checkpoint {checkpoint} (step {})",
        manifest.step
    );
    launch(
        spec,
        None,
        &args.serving,
        security,
        terminal,
        args.listen,
        &description,
    )
    .await
}

fn spawn_local_workers(
    count: usize,
    worker_binary: Option<&PathBuf>,
    address: SocketAddr,
    security: &SecurityArgs,
    terminal: Option<&Terminal>,
) -> anyhow::Result<Vec<LocalWorker>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let binary = match worker_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?.with_file_name("worker"),
    };
    anyhow::ensure!(
        binary.exists(),
        "worker binary {} not found (build it, or pass --worker-binary)",
        binary.display()
    );
    let coordinator = format!("127.0.0.1:{}", address.port());
    (0..count)
        .map(|index| {
            let worker_id = format!("local-{index}");
            tokio::process::Command::new(&binary)
                .args([
                    "join",
                    "--coordinator",
                    &coordinator,
                    "--worker-id",
                    &worker_id,
                ])
                .args(security.to_args())
                .stderr(if terminal.is_some() {
                    std::process::Stdio::piped()
                } else {
                    std::process::Stdio::inherit()
                })
                .kill_on_drop(true)
                .spawn()
                .map(|mut child| {
                    // On a terminal the workers' logs scroll above the progress bars.
                    if let (Some(terminal), Some(stderr)) = (terminal, child.stderr.take()) {
                        tokio::spawn(forward_lines(stderr, terminal.clone()));
                    }
                    LocalWorker { worker_id, child }
                })
                .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))
        })
        .collect()
}

async fn forward_lines(stderr: tokio::process::ChildStderr, terminal: Terminal) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        terminal.write_lines(format!("{line}\n").as_bytes());
    }
}

/// `--real-sampling` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RealSamplingArg {
    AsIs,
    ClassBalanced,
}
