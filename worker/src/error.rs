//! The worker library's one error type: every variant names the file, record or field at fault.

use std::path::PathBuf;

/// Errors of the anygan worker library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dataset file or object could not be parsed.
    #[error("dataset {source_name}: {reason}")]
    Dataset { source_name: String, reason: String },

    /// One image inside an image-folder dataset could not be decoded.
    #[error("dataset {source_name}: image {image} does not decode: {reason}")]
    ImageDecode {
        source_name: String,
        image: String,
        reason: String,
    },

    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid config field `{field}`: {reason}")]
    Config { field: &'static str, reason: String },

    /// Object-store access or the checkpoint protocol failed (names the object).
    #[error(transparent)]
    Storage(#[from] anygan_store::Error),

    /// A local file could not be read or written.
    #[error("file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Saved model or optimizer state could not be restored.
    #[error("checkpoint {location}: {reason}")]
    Checkpoint { location: String, reason: String },

    /// A collective operation failed or timed out; `peer` names the other side.
    #[error("collective with {peer}: {reason}")]
    Collective { peer: String, reason: String },

    /// The coordinator refused or failed a request.
    #[error("coordinator {address}: {reason}")]
    Coordinator { address: String, reason: String },

    /// The coordinator declared this worker lost and went on without it (fenced): the worker
    /// drops its state and joins again as a new member.
    #[error("coordinator {address} fenced this worker: {reason}")]
    Fenced { address: String, reason: String },

    /// The coordinator stopped answering (it died or restarts): the worker reconnects and
    /// registers again; the restarted coordinator continues from the newest checkpoint.
    #[error("coordinator {address} lost: {reason}")]
    CoordinatorLost { address: String, reason: String },

    /// The process was asked to stop (SIGTERM, SIGINT) before its work was done.
    #[error("stopped by {signal} before the job was done")]
    Stopped { signal: &'static str },

    /// A training step's losses stopped being numbers: every later step would train on NaN
    /// weights, so the run stops before that step is reported or checkpointed.
    #[error(
        "training diverged at step {step}: {reason}; it stopped there, and the checkpoints \
         already committed are intact (lower the learning rates, or resume from an earlier one)"
    )]
    Diverged { step: u64, reason: String },

    /// An image could not be encoded (sample grids, exported images).
    #[error("encoding {what}: {reason}")]
    Encode { what: String, reason: String },
}

impl Error {
    pub(crate) fn dataset(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Dataset {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    /// Refuses an optional loss weight that is not positive and finite, naming `field`.
    pub(crate) fn check_weight(field: &'static str, weight: Option<f32>) -> Result<()> {
        match weight {
            Some(weight) if !(weight > 0.0 && weight.is_finite()) => Err(Self::config(
                field,
                format!("{weight} is not a positive weight"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn checkpoint(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias of the worker library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
