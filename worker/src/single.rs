//! Training on one device: the loop around [`GanTrainer::train_step`] that samples batches,
//! writes sample grids, and saves a resumable snapshot and the exported generator.

use anygan_store::checkpoint::DataPosition;
use anygan_store::{CheckpointOptions, StoreLocation};
use burn::tensor::backend::AutodiffBackend;

use crate::checkpointing::{CheckpointStats, Checkpointer, RunDescription, newest_snapshot};
use crate::data::{EpochSampler, ImageDataset};
use crate::error::{Error, Result};
use crate::gan::{Batch, GanTrainer, StepLosses, TrainConfig};
use crate::outputs::RunOutputs;

/// A single-device training run.
#[derive(Debug, Clone)]
pub struct SingleDeviceRun {
    pub train: TrainConfig,
    /// Train until this many steps are complete (a resumed run counts its earlier steps).
    pub steps: u64,
    /// Write a sample grid every this many steps (0: only at the end).
    pub sample_every: u64,
    /// Commit a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Training waits for each periodic checkpoint to commit instead of skipping one that is
    /// due while the previous is still uploading.
    pub wait_for_checkpoints: bool,
    /// How checkpoints are kept and uploaded.
    pub checkpoint_options: CheckpointOptions,
    /// What the manifests record as the job (dataset and settings; no secrets).
    pub job: serde_json::Value,
    /// Samples per class in a grid.
    pub grid_columns: usize,
    pub output: StoreLocation,
    /// Continue from the newest valid checkpoint under `output` when there is one.
    pub resume: bool,
    /// Decay of the generator weights' moving average; none: no average.
    pub generator_ema: Option<f32>,
    /// The discriminator's input transforms; none: as is.
    pub diff_augment: Option<crate::gan::augment::DiffAugment>,
    /// Weight of the generator's mode-seeking term; none: off.
    pub mode_seeking: Option<f32>,
    /// Weight of the discriminator's mismatched-label term; none: off.
    pub mismatched_labels: Option<f32>,
}

/// A finished single-device run.
pub struct SingleDeviceOutcome<B: AutodiffBackend> {
    pub trainer: GanTrainer<B>,
    /// The step the run started from (non-zero when resumed).
    pub resumed_from: u64,
    pub checkpoints: CheckpointStats,
}

/// What a step reports to the caller (for progress display).
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: u64,
    pub epoch: u64,
    pub losses: StepLosses,
    pub seconds: f64,
}

/// Trains on `dataset` and writes grids, checkpoints and export to `run.output`. Blocking: call
/// it from a thread that may block; `io` runs the object-store writes.
pub fn run_single_device<B: AutodiffBackend>(
    run: &SingleDeviceRun,
    dataset: &ImageDataset,
    device: &B::Device,
    io: &tokio::runtime::Handle,
    mut on_step: impl FnMut(&StepReport),
) -> Result<SingleDeviceOutcome<B>> {
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
    // Before any training: a wrong key or a missing bucket fails here, not at the first save.
    io.block_on(run.output.check_writable())?;
    let outputs = RunOutputs {
        location: run.output.clone(),
        io,
        grid_columns: run.grid_columns,
    };
    let class_counts = dataset.class_counts();
    let mut checkpointer = Checkpointer::new(
        &run.output,
        run.checkpoint_options,
        RunDescription {
            writer: "single-device".into(),
            job: run.job.clone(),
            world_size: 1,
            class_names: dataset.class_names().to_vec(),
            class_counts: class_counts.clone(),
        },
        io.clone(),
    )?
    .waiting_for_periodic(run.wait_for_checkpoints);
    let mut trainer = match resume_from(run, io, device)? {
        Some(trainer) => trainer,
        None => GanTrainer::<B>::new(config.clone(), &class_counts, device)?,
    };
    trainer.set_generator_ema(run.generator_ema)?;
    trainer.set_diff_augment(run.diff_augment);
    trainer.set_mode_seeking(run.mode_seeking)?;
    trainer.set_mismatched_labels(run.mismatched_labels)?;
    let resumed_from = trainer.step();
    let mut sampler = EpochSampler::new(dataset.len(), config.batch_size, config.seed)?;
    let position = |sampler: &EpochSampler, step: u64| {
        (
            sampler.epoch_of(step),
            vec![DataPosition {
                rank: 0,
                next_step: step,
                epoch: sampler.epoch_of(step),
                batch_in_epoch: step % sampler.batches_per_epoch(),
                shard_seed: config.seed,
                plan_world: 1,
            }],
        )
    };

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
            let (epoch, positions) = position(&sampler, done);
            checkpointer.save_periodic(&trainer, epoch, positions)?;
        }
        anygan_store::failpoint::hit("abort-after-step", done);
    }
    let (epoch, positions) = position(&sampler, trainer.step());
    checkpointer.save_and_wait(&trainer, epoch, positions)?;
    outputs.finish(&trainer)?;
    Ok(SingleDeviceOutcome {
        trainer,
        resumed_from,
        checkpoints: checkpointer.stats,
    })
}

fn resume_from<B: AutodiffBackend>(
    run: &SingleDeviceRun,
    io: &tokio::runtime::Handle,
    device: &B::Device,
) -> Result<Option<GanTrainer<B>>> {
    if !run.resume {
        return Ok(None);
    }
    let Some((snapshot, checkpoint)) =
        io.block_on(newest_snapshot(&run.output, run.checkpoint_options))?
    else {
        return Ok(None);
    };
    let manifest = format!("{}/checkpoints/{}", run.output, checkpoint.prefix);
    if snapshot.description.config != run.train {
        return Err(Error::checkpoint(
            manifest,
            "was trained with a different config; use another --output or the same settings",
        ));
    }
    tracing::info!(step = snapshot.description.step, checkpoint = %manifest, "resuming");
    GanTrainer::restore(snapshot, device).map(Some)
}
