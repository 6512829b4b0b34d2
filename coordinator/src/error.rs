//! The coordinator library's error type and its one mapping to gRPC status codes.

/// Why the coordinator refused a request or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("worker {worker_id} speaks protocol version {theirs}, this coordinator {ours}")]
    ProtocolVersion {
        worker_id: String,
        theirs: u32,
        ours: u32,
    },
    #[error("worker id `{0}` is already in the job")]
    DuplicateWorker(String),
    #[error("the job is full or has started: {0}")]
    JobFull(String),
    #[error("unknown worker `{0}`: register first")]
    UnknownWorker(String),
    #[error("worker {worker_id} speaks for generation {theirs}, the current one is {current}")]
    StaleGeneration {
        worker_id: String,
        theirs: u64,
        current: u64,
    },
    #[error("invalid request field `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("invalid job configuration: {0}")]
    InvalidJob(String),
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    #[error("io on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("security configuration: {0}")]
    Security(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Storage(#[from] anygan_store::Error),
    #[error("checkpoint {location}: {reason}")]
    Checkpoint { location: String, reason: String },
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        use tonic::Code;
        let code = match &error {
            Error::ProtocolVersion { .. } | Error::StaleGeneration { .. } => {
                Code::FailedPrecondition
            }
            Error::DuplicateWorker(_) => Code::AlreadyExists,
            Error::JobFull(_) => Code::ResourceExhausted,
            Error::UnknownWorker(_) => Code::NotFound,
            Error::InvalidArgument { .. } | Error::InvalidJob(_) => Code::InvalidArgument,
            Error::ShuttingDown => Code::Unavailable,
            Error::Io { .. }
            | Error::Transport(_)
            | Error::Security(_)
            | Error::Storage(_)
            | Error::Checkpoint { .. } => Code::Internal,
        };
        tonic::Status::new(code, error.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
