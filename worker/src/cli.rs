//! Command-line interface of the `worker` binary: arguments, validation, and starting things.

use std::process::ExitCode;

use anygan_worker::backend::{BACKEND_NAME, TrainBackend, device};
use anygan_worker::data::{
    DatasetLayout, DatasetSpec, FASHION_MNIST_CLASSES, ImageDataset, LONG_TAIL_TRAIN_COUNTS,
    load_dataset, per_class_subset,
};
use anygan_worker::gan::{FakeLabels, GanConfig, TrainConfig};
use anygan_worker::single::{SingleDeviceRun, StepReport, run_single_device};
use anygan_worker::storage::StoreLocation;
use clap::{Args, Parser, Subcommand, ValueEnum};

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
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DataFormat {
    /// The Debian `dataset-fashion-mnist` files (IDX, gzip) with Fashion-MNIST class names.
    FashionMnist,
    /// An IDX images file and labels file, named by --idx-images and --idx-labels.
    Idx,
    /// Class sub-folders of PNG/JPEG images: <data>/<class>/*.png.
    Folder,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Split {
    Train,
    Test,
}

#[derive(Args, Debug)]
struct DataArgs {
    /// Dataset location: a directory, or s3://bucket/prefix.
    #[arg(
        long,
        env = "ANYGAN_DATA",
        default_value = "/usr/share/datasets/fashion-mnist"
    )]
    data: String,
    #[arg(
        long,
        value_enum,
        env = "ANYGAN_DATA_FORMAT",
        default_value = "fashion-mnist"
    )]
    format: DataFormat,
    /// Which split of a fashion-mnist dataset.
    #[arg(long, value_enum, default_value = "train")]
    split: Split,
    /// IDX images file, relative to --data (format idx).
    #[arg(long)]
    idx_images: Option<String>,
    /// IDX labels file, relative to --data (format idx).
    #[arg(long)]
    idx_labels: Option<String>,
    /// Class names of an IDX dataset, comma-separated (default: 0..=max label).
    #[arg(long, value_delimiter = ',')]
    class_names: Vec<String>,
    /// Keep BENCHMARK.md's long-tailed counts (4000, 2000, ..., 40) per class.
    #[arg(long)]
    long_tail: bool,
    /// Keep this many images of each class instead, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "long_tail")]
    class_counts: Vec<usize>,
    /// Seed of the per-class draw.
    #[arg(long, default_value_t = 0)]
    subset_seed: u64,
    /// Object-store options, KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000).
    #[arg(long = "store-option", value_parser = parse_key_value)]
    store_options: Vec<(String, String)>,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
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
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Train until this many steps are complete.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    #[arg(long, default_value_t = 2e-4)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Labels of generated images during training: empirical class frequencies, or uniform.
    #[arg(long, value_enum, default_value = "empirical")]
    fake_labels: FakeLabelsArg,
    /// Write a sample grid every N steps (0: only at the end).
    #[arg(long, default_value_t = 100)]
    sample_every: u64,
    /// Save a resumable snapshot every N steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Samples per class in each grid.
    #[arg(long, default_value_t = 10)]
    grid_columns: usize,
    /// Continue from the snapshot in --output when there is one.
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

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{raw}` is not KEY=VALUE"))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let result = match cli.command {
        Command::Train(args) => train(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANYGAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// Loads the dataset the arguments describe, resized to `shape`, with any per-class subset.
async fn load(
    args: &DataArgs,
    shape: anygan_worker::data::ImageShape,
) -> anyhow::Result<ImageDataset> {
    let location = StoreLocation::parse(&args.data, args.store_options.clone(), false)?;
    let layout = match args.format {
        DataFormat::FashionMnist => {
            let prefix = match args.split {
                Split::Train => "train",
                Split::Test => "t10k",
            };
            DatasetLayout::Idx {
                images: format!("{prefix}-images-idx3-ubyte.gz"),
                labels: format!("{prefix}-labels-idx1-ubyte.gz"),
                class_names: FASHION_MNIST_CLASSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }
        }
        DataFormat::Idx => {
            let (Some(images), Some(labels)) = (&args.idx_images, &args.idx_labels) else {
                anyhow::bail!("--format idx needs --idx-images and --idx-labels");
            };
            let class_names = if args.class_names.is_empty() {
                (0..=255).map(|i: u16| i.to_string()).collect()
            } else {
                args.class_names.clone()
            };
            DatasetLayout::Idx {
                images: images.clone(),
                labels: labels.clone(),
                class_names,
            }
        }
        DataFormat::Folder => DatasetLayout::ImageFolder,
    };
    let mut dataset = load_dataset(&DatasetSpec {
        location,
        layout,
        shape,
    })
    .await?;
    if matches!(args.format, DataFormat::Idx) && args.class_names.is_empty() {
        // Without names, the classes are 0..=max label, no more.
        let max = dataset.labels().iter().copied().max().unwrap_or(0);
        dataset = dataset.with_class_names((0..=max).map(|i| i.to_string()).collect())?;
    }
    let counts: Option<Vec<usize>> = if args.long_tail {
        Some(LONG_TAIL_TRAIN_COUNTS.to_vec())
    } else if !args.class_counts.is_empty() {
        Some(args.class_counts.clone())
    } else {
        None
    };
    if let Some(counts) = counts {
        let keep = per_class_subset(dataset.labels(), &counts, args.subset_seed)?;
        dataset = dataset.select(&keep)?;
    }
    Ok(dataset)
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let probe = GanConfig::new(1)
        .with_channels(args.channels)
        .with_image_size(args.image_size)
        .with_width(args.width);
    probe.validate()?;
    let dataset = runtime.block_on(load(&args.data, probe.image_shape()))?;
    let gan = GanConfig {
        num_classes: dataset.num_classes(),
        ..probe
    };
    let train = TrainConfig::new(gan)
        .with_batch_size(args.batch_size)
        .with_learning_rate(args.learning_rate)
        .with_seed(args.seed)
        .with_fake_labels(match args.fake_labels {
            FakeLabelsArg::Empirical => FakeLabels::Empirical,
            FakeLabelsArg::Uniform => FakeLabels::Uniform,
        });
    let output = StoreLocation::parse(&args.output, args.data.store_options.clone(), true)?;
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
    let run = SingleDeviceRun {
        train,
        steps: args.steps,
        sample_every: args.sample_every,
        checkpoint_every: args.checkpoint_every,
        grid_columns: args.grid_columns,
        output,
        resume: args.resume,
    };
    let log_every = args.log_every.max(1);
    let device = device(0);
    let mut window = (0.0f64, 0u64);
    run_single_device::<TrainBackend>(
        &run,
        &dataset,
        &device,
        runtime.handle(),
        |report: &StepReport| {
            window.0 += report.seconds;
            window.1 += 1;
            if report.step % log_every == 0 || report.step == run.steps {
                let step_seconds = window.0 / window.1 as f64;
                tracing::info!(
                    step = report.step,
                    epoch = report.epoch,
                    d_loss = format!("{:.4}", report.losses.discriminator),
                    g_loss = format!("{:.4}", report.losses.generator),
                    d_real = format!("{:.3}", report.losses.real_score),
                    d_fake = format!("{:.3}", report.losses.fake_score),
                    step_s = format!("{step_seconds:.3}"),
                    images_per_s = format!("{:.1}", run.train.batch_size as f64 / step_seconds),
                    "step"
                );
                window = (0.0, 0);
            }
        },
    )?;
    tracing::info!(output = %run.output, "done: samples/final.png, model/, generator.safetensors");
    Ok(())
}
