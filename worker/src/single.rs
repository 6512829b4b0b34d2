//! Training on one device: the loop around [`GanTrainer::train_step`] that samples batches,
//! writes sample grids, and saves a resumable snapshot and the exported generator.

use burn::tensor::backend::AutodiffBackend;

use crate::data::{EpochSampler, ImageDataset};
use crate::error::{Error, Result};
use crate::gan::state::{SNAPSHOT_DESCRIPTION, load_snapshot};
use crate::gan::{Batch, GanTrainer, StepLosses, TrainConfig};
use crate::outputs::RunOutputs;
use crate::storage::StoreLocation;

/// A single-device training run.
#[derive(Debug, Clone)]
pub struct SingleDeviceRun {
    pub train: TrainConfig,
    /// Train until this many steps are complete (a resumed run counts its earlier steps).
    pub steps: u64,
    /// Write a sample grid every this many steps (0: only at the end).
    pub sample_every: u64,
    /// Save the snapshot every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Samples per class in a grid.
    pub grid_columns: usize,
    pub output: StoreLocation,
    /// Continue from the snapshot under `output` when there is one.
    pub resume: bool,
}

/// What a step reports to the caller (for progress display).
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: u64,
    pub epoch: u64,
    pub losses: StepLosses,
    pub seconds: f64,
}

/// Trains on `dataset` and writes grids, snapshot and export to `run.output`. Blocking: call it
/// from a thread that may block; `io` runs the object-store writes.
pub fn run_single_device<B: AutodiffBackend>(
    run: &SingleDeviceRun,
    dataset: &ImageDataset,
    device: &B::Device,
    io: &tokio::runtime::Handle,
    mut on_step: impl FnMut(&StepReport),
) -> Result<GanTrainer<B>> {
    let config = &run.train;
    if dataset.shape() != config.gan.image_shape() {
        return Err(Error::config(
            "image_shape",
            format!(
                "the data is {:?}, the model wants {:?}",
                dataset.shape(),
                config.gan.image_shape()
            ),
        ));
    }
    let outputs = RunOutputs {
        location: run.output.clone(),
        io,
        grid_columns: run.grid_columns,
        class_names: dataset.class_names().to_vec(),
        class_counts: dataset.class_counts(),
    };
    let mut trainer = match resume_from(run, &outputs.model_location(), io, device)? {
        Some(trainer) => trainer,
        None => GanTrainer::<B>::new(config.clone(), &outputs.class_counts, device)?,
    };
    let mut sampler = EpochSampler::new(dataset.len(), config.batch_size, config.seed)?;

    while trainer.step() < run.steps {
        let step = trainer.step();
        let started = std::time::Instant::now();
        let (images, labels) = dataset.normalized_batch(sampler.batch(step));
        let losses = trainer.train_step(&Batch { images, labels })?;
        on_step(&StepReport {
            step: trainer.step(),
            epoch: sampler.epoch_of(step),
            losses,
            seconds: started.elapsed().as_secs_f64(),
        });
        let done = trainer.step();
        if run.sample_every > 0 && done % run.sample_every == 0 && done < run.steps {
            outputs.write_grid(&trainer, &format!("step-{done:07}.png"))?;
        }
        if run.checkpoint_every > 0 && done % run.checkpoint_every == 0 && done < run.steps {
            outputs.save(&trainer)?;
        }
    }
    outputs.finish(&trainer)?;
    Ok(trainer)
}

fn resume_from<B: AutodiffBackend>(
    run: &SingleDeviceRun,
    model_dir: &StoreLocation,
    io: &tokio::runtime::Handle,
    device: &B::Device,
) -> Result<Option<GanTrainer<B>>> {
    if !run.resume {
        return Ok(None);
    }
    let exists = io
        .block_on(model_dir.list(""))?
        .iter()
        .any(|(key, _)| key == SNAPSHOT_DESCRIPTION);
    if !exists {
        return Ok(None);
    }
    let snapshot = io.block_on(load_snapshot(model_dir))?;
    if snapshot.description.config != run.train {
        return Err(Error::checkpoint(
            model_dir.describe(SNAPSHOT_DESCRIPTION),
            "was trained with a different config; use another --output or the same settings",
        ));
    }
    tracing::info!(step = snapshot.description.step, location = %model_dir, "resuming");
    GanTrainer::restore(snapshot, device).map(Some)
}
