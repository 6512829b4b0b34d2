//! Gradient all-reduce behind a trait, so the training step does not care how values travel:
//! the ring over gRPC streams between worker processes today, another transport (e.g. NCCL on
//! GPUs) later.

mod inbox;
mod local;
mod ring;
mod segments;
mod service;

pub use inbox::{Inbox, OfferedState, Queue};
pub use local::{LoopbackRing, serve_collective};
pub use ring::{BlockingRing, DEFAULT_CHUNK_VALUES, RingAllReduce, RingConfig};
pub use segments::segment_bounds;
pub use service::{CollectiveService, MAX_CHUNK_MESSAGE_BYTES};

use crate::error::Result;

/// Averages a flat vector of values element-wise over every replica of the job.
///
/// Called from the training thread, in the same order with the same lengths on every rank.
pub trait GradientAllReduce: Send {
    /// Replaces `values` by the element-wise mean over all ranks.
    fn average(&mut self, values: &mut [f32]) -> Result<()>;

    /// Number of replicas taking part.
    fn world_size(&self) -> usize;
}

/// The all-reduce of a job with one worker: nothing to exchange.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleReplica;

impl GradientAllReduce for SingleReplica {
    fn average(&mut self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn world_size(&self) -> usize {
        1
    }
}
