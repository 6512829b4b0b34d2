//! anygan worker library: datasets, the burn cDCGAN (model, training step, sampling,
//! serialization), storage, and the single-device training loop.

pub mod backend;
pub mod collective;
pub mod data;
pub mod error;
pub mod gan;
pub mod job;
pub mod join;
pub mod outputs;
pub mod rng;
pub mod single;
pub mod storage;

pub use error::{Error, Result};
