//! Where anygan keeps what it writes: object-store locations (local disk or an S3-compatible
//! bucket behind one `object_store` code path) and the checkpoint commit protocol on top.

pub mod checkpoint;
pub mod error;
pub mod failpoint;
pub mod location;

pub use checkpoint::{
    CheckpointOptions, CheckpointStore, Committed, LatestPointer, LoadedCheckpoint, Manifest,
    ObjectEntry, RetryPolicy,
};
pub use error::{Error, Result};
pub use location::StoreLocation;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
