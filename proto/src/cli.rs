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
    /// Object-store options, KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000); they override
    /// the file's and the `AWS_*` environment's.
    #[arg(long = "store-option", value_parser = parse_key_value)]
    pub store_options: Vec<(String, String)>,
    /// A file of object-store options, one KEY=VALUE per line (`#` comments), e.g. credentials
    /// mounted from a secret. Its values are never printed.
    #[arg(long, env = "ANYGAN_STORE_OPTIONS_FILE")]
    pub store_options_file: Option<std::path::PathBuf>,
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

impl DataArgs {
    /// The file's options, then the flags' (later ones win).
    pub fn all_store_options(&self) -> Result<Vec<(String, String)>, String> {
        let mut options = match &self.store_options_file {
            Some(path) => read_store_options(path)?,
            None => Vec::new(),
        };
        options.extend(self.store_options.iter().cloned());
        Ok(options)
    }
}

/// Reads a KEY=VALUE file; an error names the file and line but never echoes a value.
pub fn read_store_options(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("store options file {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            line.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    format!(
                        "store options file {} line {number}: not KEY=VALUE",
                        path.display()
                    )
                })
        })
        .collect()
}

/// TLS and authentication of every gRPC connection (see [`crate::security`]). The same flags
/// on the coordinator and on every worker; a job is all TLS or all plaintext.
#[derive(Args, Debug, Clone, Default)]
pub struct SecurityArgs {
    /// PEM file of the CA that signs the cluster's certificates (enables mutual TLS together
    /// with --tls-cert and --tls-key).
    #[arg(long, env = "ANYGAN_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM certificate this process presents, as server and as client.
    #[arg(long, env = "ANYGAN_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ANYGAN_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Name clients expect in the server certificate.
    #[arg(long, env = "ANYGAN_TLS_SERVER_NAME", default_value = crate::security::DEFAULT_SERVER_NAME)]
    pub tls_server_name: String,
    /// File holding the shared token every call must carry (at least 16 printable
    /// characters); its content is never printed.
    #[arg(long, env = "ANYGAN_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

impl SecurityArgs {
    /// The configuration these flags name; an error names the missing flag or the bad file.
    pub fn security(&self) -> Result<crate::security::Security, String> {
        use crate::security::{Security, TlsMaterial, Token};
        let tls = match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(TlsMaterial::from_files(
                ca,
                cert,
                key,
                self.tls_server_name.clone(),
            )?),
            _ => {
                let missing: Vec<&str> = [
                    ("--tls-ca", self.tls_ca.is_none()),
                    ("--tls-cert", self.tls_cert.is_none()),
                    ("--tls-key", self.tls_key.is_none()),
                ]
                .into_iter()
                .filter_map(|(flag, missing)| missing.then_some(flag))
                .collect();
                return Err(format!("TLS needs {} as well", missing.join(" and ")));
            }
        };
        let token = self
            .token_file
            .as_deref()
            .map(Token::from_file)
            .transpose()?;
        Ok(Security::new(tls, token))
    }

    /// The same flags again, for a worker process this one starts.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: &std::path::Path| {
            args.push(flag.into());
            args.push(value.as_os_str().to_owned());
        };
        for (flag, value) in [
            ("--tls-ca", &self.tls_ca),
            ("--tls-cert", &self.tls_cert),
            ("--tls-key", &self.tls_key),
            ("--token-file", &self.token_file),
        ] {
            if let Some(value) = value {
                push(flag, value);
            }
        }
        args.push("--tls-server-name".into());
        args.push(self.tls_server_name.clone().into());
        args
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
    init_tracing_to(
        json,
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    );
}

/// [`init_tracing`] writing through `writer` (e.g. one that keeps progress bars intact).
pub fn init_tracing_to(json: bool, writer: tracing_subscriber::fmt::writer::BoxMakeWriter) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANYGAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves with the name of the first stop signal (SIGTERM, SIGINT) this process gets: what a
/// terminal's Ctrl-C and Kubernetes' pod deletion send.
pub async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = terminate => "SIGTERM",
        interrupted = tokio::signal::ctrl_c() => match interrupted {
            Ok(()) => "SIGINT",
            Err(error) => {
                tracing::warn!(%error, "cannot watch for SIGINT");
                std::future::pending().await
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_options_file_skips_comments_and_names_bad_lines_without_values() {
        let dir = std::env::temp_dir().join(format!("anygan-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good.env");
        std::fs::write(
            &good,
            "# credentials\naws_access_key_id = AKIA\n\naws_secret_access_key=s3cr=t\n",
        )
        .expect("write");
        assert_eq!(
            read_store_options(&good).expect("parses"),
            vec![
                ("aws_access_key_id".to_string(), "AKIA".to_string()),
                ("aws_secret_access_key".to_string(), "s3cr=t".to_string()),
            ]
        );
        let bad = dir.join("bad.env");
        std::fs::write(&bad, "aws_region=eu\nhunter2\n").expect("write");
        let error = read_store_options(&bad).expect_err("line 2");
        assert!(error.contains("bad.env line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let missing = read_store_options(&dir.join("missing.env")).expect_err("missing");
        assert!(missing.contains("missing.env"), "{missing}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
