//! The cDCGAN as pure burn code: model, parameters, training step, sampling, serialization.
//! No tokio or tonic here; callers run it on a dedicated thread.

pub mod augment;
pub mod dropout;
pub mod ema;
pub mod invert;
pub mod kernels;
mod losses;
pub mod model;
pub mod params;
mod real_shift;
pub mod sample;
pub mod spectral;
pub mod state;
pub mod sync;
pub mod train;
pub mod watch;

pub use model::{Discriminator, GanConfig, Generator};
pub use train::{AdversarialLoss, Batch, FakeLabels, GanTrainer, StepLosses, TrainConfig};

#[cfg(test)]
mod tests;
