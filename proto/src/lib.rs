//! anygan's wire protocol and the contracts both sides compute alike: the `anygan.v1` gRPC
//! services, the protocol version, the job specification, and the shard plan.

#[cfg(feature = "cli")]
pub mod cli;
pub mod error_text;
pub mod generation;
pub mod job;
pub mod metrics;
pub mod rng;
pub mod security;
pub mod shard;

/// Version of the wire protocol; a peer with another version is refused at registration.
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated code of the `anygan.v1` package.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("anygan.v1");
}
