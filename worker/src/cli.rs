//! Command-line interface of the `worker` binary: arguments, validation, and starting things.

use std::process::ExitCode;

use std::net::SocketAddr;
use std::time::Duration;

use anygan_proto::cli::{DataArgs, SecurityArgs};
use anygan_proto::generation::LearningRateSchedule;
use anygan_store::CheckpointOptions;
use anygan_store::StoreLocation;
use anygan_worker::backend::{BACKEND_NAME, TrainBackend, device};
use anygan_worker::data::load_source;
use anygan_worker::gan::kernels::{GeneratorKernels, OutputLayer, Upsampling};
use anygan_worker::gan::{AdversarialLoss, FakeLabels, GanConfig, TrainConfig};
use anygan_worker::join::{JoinConfig, join};
use anygan_worker::single::{SingleDeviceRun, StepReport, run_single_device};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod evaluate;
mod stand_in;
use evaluate::{EvaluateArgs, evaluate};
use stand_in::{StandInArgs, stand_in};

#[derive(Parser, Debug)]
#[command(
    name = "worker",
    version,
    about = "anygan worker: trains and samples the cDCGAN"
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
    /// Train the cDCGAN on one device, writing sample grids, a snapshot and the generator.
    Train(TrainArgs),
    /// Join a coordinator's job and train one data-parallel replica on this device.
    Join(JoinArgs),
    /// Train the fixed classifier on the long-tailed set with each rebalancing method (and
    /// anygan's generated images) and report ACSA, GM, GM-ovr, macro-F1 and per-class recall.
    Evaluate(EvaluateArgs),
    /// Write a generation run's rebalanced set with real images in the generated images'
    /// place — training images the long-tailed and validation sets leave out — so that
    /// `evaluate --generation` measures what a perfect generator would add (the ceiling of (d)).
    StandIn(StandInArgs),
}

#[derive(Args, Debug)]
struct JoinArgs {
    /// The coordinator's host:port.
    #[arg(long, env = "ANYGAN_COORDINATOR")]
    coordinator: String,
    /// This worker's id, unique in the job (default: hostname-pid).
    #[arg(long, env = "ANYGAN_WORKER_ID")]
    worker_id: Option<String>,
    /// Where this worker's collective service listens for its ring neighbour.
    #[arg(long, env = "ANYGAN_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Host name or IP peers use to reach this worker (default: the listen IP).
    #[arg(long, env = "ANYGAN_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// Keep retrying to reach the coordinator for this many seconds.
    #[arg(long, default_value_t = 60)]
    connect_timeout_s: u64,
    #[command(flatten)]
    security: SecurityArgs,
    /// The device to compute on: cuda:N (builds with the `cuda` feature; default cuda:0) or
    /// cpu (the default build).
    #[arg(long, env = "ANYGAN_DEVICE")]
    device: Option<String>,
    #[command(flatten)]
    kernels: KernelCacheArgs,
    #[command(flatten)]
    generator_kernels: GeneratorKernelArgs,
    /// Where this worker's Prometheus endpoint (/metrics, /healthz) listens, e.g. 0.0.0.0:9091.
    #[arg(long, env = "ANYGAN_WORKER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Args, Debug)]
struct GeneratorKernelArgs {
    /// How the generator computes its up-sampling layers: `transposed` (burn's transposed
    /// convolution, the default) or `phases` (the same layer as one ordinary convolution over
    /// the four output phases). A choice of kernels, not of model, like --output-layer: same
    /// weights and checkpoints, numbers equal up to float rounding (so a run continues bit for
    /// bit only with the choices it was trained with). See worker/src/gan/kernels.rs.
    #[arg(long, env = "ANYGAN_UPSAMPLING")]
    upsampling: Option<Upsampling>,
    /// How the generator computes its output layer: `convolution` (the default on GPUs) or
    /// `transposed` (the same layer as a transposed convolution, whose backward pass is the
    /// cheap one on the CPU; the default on CPU builds).
    #[arg(long, env = "ANYGAN_OUTPUT_LAYER")]
    output_layer: Option<OutputLayer>,
}

impl GeneratorKernelArgs {
    /// Makes the choices for every generator this process builds, the backend's defaults where
    /// none is given: call once, at start-up.
    fn select(&self) {
        let defaults = GeneratorKernels::default();
        anygan_worker::backend::select_generator_kernels(GeneratorKernels {
            upsampling: self.upsampling.unwrap_or(defaults.upsampling),
            output_layer: self.output_layer.unwrap_or(defaults.output_layer),
        });
    }
}

#[derive(Args, Debug)]
struct KernelCacheArgs {
    /// Where a GPU worker keeps the kernels it compiles and their autotune results, so the next
    /// worker on this machine skips that work (default: $XDG_CACHE_HOME/anygan/kernels or
    /// ~/.cache/anygan/kernels; share it only between machines with the same GPU model).
    #[arg(long, env = "ANYGAN_KERNEL_CACHE")]
    kernel_cache: Option<std::path::PathBuf>,
}

impl KernelCacheArgs {
    /// Sets up the kernel cache, then checks that the selected device computes: call once, after
    /// `--device` is chosen and before anything touches the device.
    fn prepare_device(&self) -> anyhow::Result<()> {
        use anygan_worker::backend::{check_device, default_kernel_cache, use_kernel_cache};
        match (&self.kernel_cache, default_kernel_cache()) {
            (Some(dir), _) => use_kernel_cache(dir).map_err(anyhow::Error::msg)?,
            // The default is a convenience: without it the worker only compiles again.
            (None, Some(dir)) => {
                if let Err(reason) = use_kernel_cache(&dir) {
                    tracing::warn!(%reason, "running without a kernel cache");
                }
            }
            (None, None) => {}
        }
        check_device().map_err(anyhow::Error::msg)
    }
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    kernels: KernelCacheArgs,
    #[command(flatten)]
    generator_kernels: GeneratorKernelArgs,
    /// Where grids, snapshot and the exported generator go: a directory or s3://bucket/prefix.
    #[arg(long, env = "ANYGAN_OUTPUT", default_value = "out/train")]
    output: String,
    /// Feature width W: 128 standard, 64 the small CPU preset.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Image side: 28 or 32 (images are resized to it).
    #[arg(long, default_value_t = 28)]
    image_size: usize,
    /// Image channels: 1 (gray) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    channels: usize,
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
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Train until this many steps are complete.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Adam's rate for the generator, and for the discriminator unless
    /// --discriminator-learning-rate gives it its own.
    #[arg(long, default_value_t = 2e-4)]
    learning_rate: f64,
    /// The discriminator's own Adam rate (two time-scale update rule); default: --learning-rate.
    #[arg(long)]
    discriminator_learning_rate: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Labels of generated images during training: empirical class frequencies, or uniform.
    #[arg(long, value_enum, default_value = "empirical")]
    fake_labels: FakeLabelsArg,
    /// Keep a moving average of the generator's weights with this decay; the sample grids and
    /// the exported generator use it (0: none).
    #[arg(long, default_value_t = anygan_proto::job::DEFAULT_GENERATOR_EMA)]
    generator_ema: f32,
    /// Send every discriminator input through these differentiable transforms (DiffAugment):
    /// a comma-separated list of color, translation, cutout; none: as is. Widths above 112 need
    /// it: without it W = 128 collapsed to all-black images within 200 steps.
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
    /// Shift every real image the discriminator sees by up to N pixels each way, so the
    /// generator learns to draw each class at varied positions (0: off).
    #[arg(long, default_value_t = 0)]
    real_shift: usize,
    /// Write a sample grid every N steps (0: only at the end).
    #[arg(long, default_value_t = 100)]
    sample_every: u64,
    /// Commit a checkpoint every N steps (0: only at the end); uploads run in the background.
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Training waits for each periodic checkpoint to commit; without it a checkpoint due while
    /// the previous one is still uploading is skipped so that a slow store never stalls training.
    #[arg(long)]
    wait_for_checkpoints: bool,
    /// Keep this many of the newest checkpoints; older ones are deleted.
    #[arg(long, default_value_t = 3)]
    keep_checkpoints: usize,
    /// Samples per class in each grid.
    #[arg(long, default_value_t = 10)]
    grid_columns: usize,
    /// Continue from the newest valid checkpoint in --output when there is one.
    #[arg(long)]
    resume: bool,
    /// Print a progress line every N steps.
    #[arg(long, default_value_t = 10)]
    log_every: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FakeLabelsArg {
    Empirical,
    Uniform,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    anygan_proto::cli::init_tracing(cli.log_json);
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Join(args) => join_job(args),
        Command::Evaluate(args) => evaluate(args),
        Command::StandIn(args) => stand_in(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "error: {}",
                anygan_proto::error_text::describe(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let probe = GanConfig::new(1)
        .with_channels(args.channels)
        .with_image_size(args.image_size)
        .with_width(args.width)
        .with_projection(args.projection_discriminator.then_some(true))
        .with_auxiliary_classifier(args.auxiliary_classifier)
        .with_spectral_norm(args.spectral_norm.then_some(true))
        .with_unconditional_low_resolution(args.unconditional_low_resolution);
    probe.validate()?;
    if let Some(warning) = anygan_proto::job::width_warning(args.width, Some(&args.diff_augment)) {
        tracing::warn!("{warning}");
    }
    let source = args.data.source().map_err(anyhow::Error::msg)?;
    let store_options = args.data.all_store_options().map_err(anyhow::Error::msg)?;
    let dataset = runtime.block_on(load_source(&source, probe.image_shape(), &store_options))?;
    let gan = GanConfig {
        num_classes: dataset.num_classes(),
        ..probe
    };
    let train = TrainConfig::new(gan)
        .with_batch_size(args.batch_size)
        .with_learning_rate(args.learning_rate)
        .with_discriminator_learning_rate(args.discriminator_learning_rate)
        .with_seed(args.seed)
        .with_real_shift((args.real_shift != 0).then_some(args.real_shift))
        .with_adversarial_loss(args.hinge_loss.then_some(AdversarialLoss::Hinge))
        .with_fake_labels(match args.fake_labels {
            FakeLabelsArg::Empirical => FakeLabels::Empirical,
            FakeLabelsArg::Uniform => FakeLabels::Uniform,
        });
    let output = StoreLocation::parse(&args.output, store_options, true)?;
    tracing::info!(
        backend = BACKEND_NAME,
        images = dataset.len(),
        classes = dataset.num_classes(),
        counts = ?dataset.class_counts(),
        width = args.width,
        batch = args.batch_size,
        steps = args.steps,
        output = %output,
        "training"
    );
    let job = serde_json::json!({
        "mode": "single-device",
        "dataset": source,
        "steps": args.steps,
        "train": train,
    });
    let run = SingleDeviceRun {
        train,
        steps: args.steps,
        sample_every: args.sample_every,
        checkpoint_every: args.checkpoint_every,
        wait_for_checkpoints: args.wait_for_checkpoints,
        checkpoint_options: CheckpointOptions {
            keep: args.keep_checkpoints,
            ..CheckpointOptions::default()
        },
        job,
        grid_columns: args.grid_columns,
        output,
        resume: args.resume,
        generator_ema: (args.generator_ema != 0.0).then_some(args.generator_ema),
        diff_augment: anygan_worker::gan::augment::DiffAugment::parse(&args.diff_augment)?,
        mode_seeking: (args.mode_seeking != 0.0).then_some(args.mode_seeking),
        mismatched_labels: (args.mismatched_labels != 0.0).then_some(args.mismatched_labels),
    };
    let log_every = args.log_every.max(1);
    args.generator_kernels.select();
    args.kernels.prepare_device()?;
    let device = device(0);
    let mut window = (0.0f64, 0u64);
    let mut collapse_watch = anygan_worker::gan::watch::CollapseWatch::default();
    let outcome = run_single_device::<TrainBackend>(
        &run,
        &dataset,
        &device,
        runtime.handle(),
        |report: &StepReport| {
            if let Some(collapse) = collapse_watch.observe(report.step, &report.losses) {
                tracing::warn!("{}", collapse.advice());
            }
            window.0 += report.seconds;
            window.1 += 1;
            if report.step.is_multiple_of(log_every) || report.step == run.steps {
                let step_seconds = window.0 / window.1 as f64;
                let [class_real, class_generated] = report.losses.class_losses_text();
                let [low_d, low_g] = report.losses.low_resolution_losses_text();
                tracing::info!(
                    step = report.step,
                    epoch = report.epoch,
                    d_loss = format!("{:.4}", report.losses.discriminator),
                    g_loss = format!("{:.4}", report.losses.generator),
                    d_real = format!("{:.3}", report.losses.real_score),
                    d_fake = format!("{:.3}", report.losses.fake_score),
                    d_mismatched = report
                        .losses
                        .mismatched_score
                        .map(|score| format!("{score:.3}")),
                    class_real = class_real.as_deref(),
                    class_generated = class_generated.as_deref(),
                    low_resolution_d_loss = low_d.as_deref(),
                    low_resolution_g_loss = low_g.as_deref(),
                    step_s = format!("{step_seconds:.3}"),
                    images_per_s = format!("{:.1}", run.train.batch_size as f64 / step_seconds),
                    "step"
                );
                window = (0.0, 0);
            }
        },
    )?;
    let stats = &outcome.checkpoints;
    tracing::info!(
        output = %run.output,
        resumed_from = outcome.resumed_from,
        checkpoints = stats.committed,
        checkpoints_failed = stats.failed,
        checkpoints_skipped = stats.skipped,
        capture_ms_max = format!("{:.1}", stats.capture_seconds_max * 1e3),
        "done: samples/final.png, checkpoints/, generator.safetensors"
    );
    Ok(())
}

fn join_job(args: JoinArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let worker_id = args.worker_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "worker".into());
        format!("{}-{}", host.trim(), std::process::id())
    });
    if let Some(device) = &args.device {
        anygan_worker::backend::select_device(
            anygan_worker::backend::parse_device(device).map_err(anyhow::Error::msg)?,
        );
    }
    // Before joining: a worker that cannot compute would only stall the job's start.
    args.generator_kernels.select();
    args.kernels.prepare_device()?;
    let config = JoinConfig {
        coordinator: args.coordinator,
        worker_id,
        listen: args.listen,
        advertise_host: args.advertise_host,
        connect_timeout: Duration::from_secs(args.connect_timeout_s),
        security: args.security.security().map_err(anyhow::Error::msg)?,
        metrics_listen: args.metrics_listen,
    };
    let outcome = runtime.block_on(join(config))?;
    if let Some(training) = &outcome.training {
        tracing::info!(
            rank = training.rank,
            world_size = training.world_size,
            steps = training.steps,
            checksum = %training.parameter_checksum,
            "replica finished"
        );
    }
    if outcome.tasks.tasks > 0 {
        tracing::info!(
            tasks = outcome.tasks.tasks,
            generated = outcome.tasks.generated,
            seconds = format!("{:.2}", outcome.tasks.seconds),
            "tasks finished"
        );
    }
    Ok(())
}
