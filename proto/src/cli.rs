//! Command-line arguments both binaries take to name a dataset (feature `cli`).

use clap::{Args, ValueEnum};

use crate::job::{DatasetFormat, DatasetSource, LONG_TAIL_TRAIN_COUNTS};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DataFormat {
    /// The Debian `dataset-fashion-mnist` files (IDX, gzip) with Fashion-MNIST class names.
    FashionMnist,
    /// An IDX images file and labels file, named by --idx-images and --idx-labels.
    Idx,
    /// Class sub-folders of PNG/JPEG images: <data>/<class>/*.png.
    Folder,
}

/// Where the training data is and which part of it to use.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset location: a directory, or s3://bucket/prefix.
    #[arg(
        long,
        env = "ANYGAN_DATA",
        default_value = "/usr/share/datasets/fashion-mnist"
    )]
    pub data: String,
    #[arg(
        long,
        value_enum,
        env = "ANYGAN_DATA_FORMAT",
        default_value = "fashion-mnist"
    )]
    pub format: DataFormat,
    /// Use the test split of a fashion-mnist dataset.
    #[arg(long)]
    pub test_split: bool,
    /// IDX images file, relative to --data (format idx).
    #[arg(long)]
    pub idx_images: Option<String>,
    /// IDX labels file, relative to --data (format idx).
    #[arg(long)]
    pub idx_labels: Option<String>,
    /// Class names of an IDX dataset, comma-separated (default: 0..=max label).
    #[arg(long, value_delimiter = ',')]
    pub class_names: Vec<String>,
    /// Keep BENCHMARK.md's long-tailed counts (4000, 2000, ..., 40) per class.
    #[arg(long)]
    pub long_tail: bool,
    /// Keep this many images of each class instead, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "long_tail")]
    pub class_counts: Vec<usize>,
    /// Seed of the per-class draw.
    #[arg(long, default_value_t = 0)]
    pub subset_seed: u64,
    /// Object-store options, KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000).
    #[arg(long = "store-option", value_parser = parse_key_value)]
    pub store_options: Vec<(String, String)>,
}

impl DataArgs {
    /// The dataset these arguments name; an error names the missing flag.
    pub fn source(&self) -> Result<DatasetSource, String> {
        let format = match self.format {
            DataFormat::FashionMnist => DatasetFormat::FashionMnist {
                test: self.test_split,
            },
            DataFormat::Idx => {
                let (Some(images), Some(labels)) = (&self.idx_images, &self.idx_labels) else {
                    return Err("--format idx needs --idx-images and --idx-labels".into());
                };
                DatasetFormat::Idx {
                    images: images.clone(),
                    labels: labels.clone(),
                    class_names: self.class_names.clone(),
                }
            }
            DataFormat::Folder => DatasetFormat::Folder,
        };
        let class_counts = if self.long_tail {
            Some(LONG_TAIL_TRAIN_COUNTS.to_vec())
        } else if self.class_counts.is_empty() {
            None
        } else {
            Some(self.class_counts.clone())
        };
        Ok(DatasetSource {
            location: self.data.clone(),
            format,
            class_counts,
            subset_seed: self.subset_seed,
        })
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{raw}` is not KEY=VALUE"))
}

/// Logs to stderr, filtered by `ANYGAN_LOG` (default `info`), as JSON lines when `json`, with
/// colours only on a terminal.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANYGAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
