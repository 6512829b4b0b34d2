//! anygan coordinator: one job's state (membership, ranks, shard plan parameters, step
//! progress, replica agreement), served over gRPC to the workers.

pub mod actor;
pub mod error;
pub mod generation;
pub mod local_workers;
pub mod metrics;
pub mod progress;
pub mod recovery;
pub mod server;
pub mod service;
pub mod state;

pub use error::{Error, Result};
pub use local_workers::LocalWorker;
pub use recovery::{ResumePoint, prepare_output};
pub use server::{ServeOptions, Served, Timing, serve};
