//! The storage crate's error type: every variant names the object or location at fault.

/// Errors of object-store access and of the checkpoint protocol.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store refused or failed an operation on `location`.
    #[error("object store {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// A local directory could not be created.
    #[error("directory {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A location cannot be listed, written, read back or deleted.
    #[error("{location} is not writable: {reason}")]
    NotWritable { location: String, reason: String },

    /// A location or option is not usable.
    #[error("storage config `{field}`: {reason}")]
    Config { field: String, reason: String },

    /// A checkpoint (or one of its objects) is incomplete, corrupt or unusable.
    #[error("checkpoint {location}: {reason}")]
    Checkpoint { location: String, reason: String },

    /// Another writer advanced the `latest` pointer between our read and our write.
    #[error("checkpoint pointer {location} was moved by another writer; not overwriting it")]
    PointerConflict { location: String },
}

impl Error {
    pub fn store(location: impl Into<String>, source: object_store::Error) -> Self {
        Self::Store {
            location: location.into(),
            source,
        }
    }

    pub fn checkpoint(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether trying again may help: network trouble and server errors, not refusals.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store { source, .. } => matches!(
                source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            _ => false,
        }
    }
}

/// Result alias of the storage crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
