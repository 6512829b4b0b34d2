//! What a training run leaves in its output location besides checkpoints (see
//! [`crate::checkpointing`]): sample grids and the generator exported as safetensors. Shared by
//! `worker train` and rank 0 of `worker join`.

use burn::tensor::backend::AutodiffBackend;

use crate::error::Result;
use crate::gan::GanTrainer;
use crate::gan::sample::sample_grid_png;
use crate::gan::state::generator_safetensors;
use anygan_store::StoreLocation;

/// Where sample grids are written under the output location.
pub const SAMPLES_DIR: &str = "samples";
/// The exported generator, under the output location.
pub const GENERATOR_EXPORT: &str = "generator.safetensors";

/// Writes a run's artifacts under one location. Blocking: `io` runs the object-store calls.
pub struct RunOutputs<'a> {
    pub location: StoreLocation,
    pub io: &'a tokio::runtime::Handle,
    /// Samples per class in a grid.
    pub grid_columns: usize,
}

impl RunOutputs<'_> {
    /// `samples/<name>`: one row per class, on the run's fixed noise.
    pub fn write_grid<B: AutodiffBackend>(
        &self,
        trainer: &GanTrainer<B>,
        name: &str,
    ) -> Result<()> {
        let config = trainer.config();
        let png = sample_grid_png(
            &trainer.sampling_generator(),
            &config.gan,
            self.grid_columns,
            config.seed,
            trainer.device(),
        )?;
        Ok(self
            .io
            .block_on(self.location.join(SAMPLES_DIR).put(name, png))?)
    }

    /// The final grid and the generator export.
    pub fn finish<B: AutodiffBackend>(&self, trainer: &GanTrainer<B>) -> Result<()> {
        self.write_grid(trainer, "final.png")?;
        let export = generator_safetensors(&trainer.sampling_generator(), &trainer.config().gan)?;
        Ok(self
            .io
            .block_on(self.location.put(GENERATOR_EXPORT, export))?)
    }
}
