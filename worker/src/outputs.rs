//! What a training run leaves in its output location: sample grids, the resumable snapshot and
//! the generator exported as safetensors. Shared by `worker train` and rank 0 of `worker join`.

use burn::tensor::backend::AutodiffBackend;

use crate::error::Result;
use crate::gan::GanTrainer;
use crate::gan::sample::sample_grid_png;
use crate::gan::state::{generator_safetensors, save_snapshot};
use crate::storage::StoreLocation;

/// Where the snapshot lives under the output location.
pub const MODEL_DIR: &str = "model";
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
    pub class_names: Vec<String>,
    pub class_counts: Vec<usize>,
}

impl RunOutputs<'_> {
    pub fn model_location(&self) -> StoreLocation {
        self.location.join(MODEL_DIR)
    }

    /// `samples/<name>`: one row per class, on the run's fixed noise.
    pub fn write_grid<B: AutodiffBackend>(
        &self,
        trainer: &GanTrainer<B>,
        name: &str,
    ) -> Result<()> {
        let config = trainer.config();
        let png = sample_grid_png(
            &trainer.generator(),
            &config.gan,
            self.grid_columns,
            config.seed,
            trainer.device(),
        )?;
        self.io
            .block_on(self.location.join(SAMPLES_DIR).put(name, png))
    }

    /// `model/`: models, optimizers, step and config (description last).
    pub fn save<B: AutodiffBackend>(&self, trainer: &GanTrainer<B>) -> Result<()> {
        let snapshot = trainer.snapshot(&self.class_names, &self.class_counts)?;
        self.io
            .block_on(save_snapshot(&self.model_location(), &snapshot))
    }

    /// The final grid, snapshot and generator export.
    pub fn finish<B: AutodiffBackend>(&self, trainer: &GanTrainer<B>) -> Result<()> {
        self.write_grid(trainer, "final.png")?;
        self.save(trainer)?;
        let export = generator_safetensors(&trainer.generator(), &trainer.config().gan)?;
        self.io
            .block_on(self.location.put(GENERATOR_EXPORT, export))
    }
}
