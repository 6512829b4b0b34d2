//! anygan worker library: datasets, the burn cDCGAN (model, training step, sampling,
//! serialization), storage, and the single-device training loop.

pub mod autodiff;
pub mod backend;
pub mod checkpointing;
pub mod collective;
pub mod data;
pub mod error;
pub mod eval;
pub mod gan;
pub mod generate;
pub mod job;
pub mod join;
pub mod outputs;
mod replica;
pub mod rng;
pub mod single;
pub mod tasks;

pub use anygan_store::StoreLocation;
pub use error::{Error, Result};
