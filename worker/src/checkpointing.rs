//! Checkpoints of a training run. The training thread only captures the trainer's state as
//! bytes (models and optimizers, a few milliseconds); the checkpoint store uploads it in the
//! background while training goes on. One upload is in flight at a time: a checkpoint due while
//! the previous one is still uploading is skipped (and counted), so a slow or unreachable store
//! never stalls training; the final checkpoint waits for the store and must commit. A run that
//! wants every periodic checkpoint (a deterministic resume point, or a store known to be fast)
//! waits for each instead: training pauses for the upload and nothing is skipped.

use std::time::Instant;

use anygan_store::checkpoint::{DataPosition, RngState};
use anygan_store::{CheckpointOptions, CheckpointStore, Committed, Manifest, StoreLocation};
use burn::tensor::backend::AutodiffBackend;

use crate::error::{Error, Result};
use crate::gan::GanTrainer;
use crate::gan::state::Snapshot;

/// How the random state is described in manifests.
const RNG_SCHEME: &str = "chacha8 streams keyed by (seed, purpose, step, ...)";

/// What a manifest says about the run besides the trainer.
#[derive(Debug, Clone)]
pub struct RunDescription {
    /// Worker id of the writer.
    pub writer: String,
    /// The job's configuration, secrets removed.
    pub job: serde_json::Value,
    pub world_size: usize,
    pub class_names: Vec<String>,
    pub class_counts: Vec<usize>,
}

/// Counters a run reports at the end (and the metrics endpoint will).
#[derive(Debug, Clone, Default)]
pub struct CheckpointStats {
    pub committed: u64,
    pub failed: u64,
    /// Due while the previous upload was still running.
    pub skipped: u64,
    /// Time the training thread spent capturing state, total and worst.
    pub capture_seconds_total: f64,
    pub capture_seconds_max: f64,
    /// Time the training thread waited for uploads (the final checkpoint only, normally).
    pub wait_seconds_total: f64,
    pub last: Option<Committed>,
}

type Upload = tokio::task::JoinHandle<anygan_store::Result<Committed>>;

/// Writes a run's checkpoints; blocking methods, for the training thread.
pub struct Checkpointer {
    store: CheckpointStore,
    io: tokio::runtime::Handle,
    run: RunDescription,
    in_flight: Option<(u64, Upload)>,
    /// Periodic checkpoints block until committed instead of uploading in the background.
    wait_for_periodic: bool,
    pub stats: CheckpointStats,
}

impl Checkpointer {
    /// Checkpoints under `<output>/checkpoints`.
    pub fn new(
        output: &StoreLocation,
        options: CheckpointOptions,
        run: RunDescription,
        io: tokio::runtime::Handle,
    ) -> Result<Self> {
        Ok(Self {
            store: checkpoint_store(output, options)?,
            io,
            run,
            in_flight: None,
            wait_for_periodic: false,
            stats: CheckpointStats::default(),
        })
    }

    /// Makes [`Self::save_periodic`] wait for each checkpoint to commit (or fail) before
    /// training goes on, so none is skipped.
    pub fn waiting_for_periodic(mut self, wait: bool) -> Self {
        self.wait_for_periodic = wait;
        self
    }

    pub fn store(&self) -> &CheckpointStore {
        &self.store
    }

    /// A periodic checkpoint: in the background (skipped while one is still uploading), or,
    /// when waiting for periodic checkpoints, committed before this returns. Either way a
    /// failed upload is counted and logged and training goes on.
    pub fn save_periodic<B: AutodiffBackend>(
        &mut self,
        trainer: &GanTrainer<B>,
        epoch: u64,
        data_positions: Vec<DataPosition>,
    ) -> Result<()> {
        self.save_in_background(trainer, epoch, data_positions)?;
        if self.wait_for_periodic {
            self.reap(true);
        }
        Ok(())
    }

    /// Starts a checkpoint of `trainer` in the background unless one is still uploading.
    pub fn save_in_background<B: AutodiffBackend>(
        &mut self,
        trainer: &GanTrainer<B>,
        epoch: u64,
        data_positions: Vec<DataPosition>,
    ) -> Result<()> {
        self.reap(false);
        if let Some((step, _)) = &self.in_flight {
            self.stats.skipped += 1;
            tracing::warn!(
                step = trainer.step(),
                uploading = step,
                "checkpoint skipped: the previous one is still uploading"
            );
            return Ok(());
        }
        let (manifest, objects) = self.capture(trainer, epoch, data_positions)?;
        let store = self.store.clone();
        let step = manifest.step;
        let upload = self
            .io
            .spawn(async move { store.commit(manifest, objects).await });
        self.in_flight = Some((step, upload));
        Ok(())
    }

    /// Checkpoints `trainer` and waits until it is committed (after any upload in flight).
    pub fn save_and_wait<B: AutodiffBackend>(
        &mut self,
        trainer: &GanTrainer<B>,
        epoch: u64,
        data_positions: Vec<DataPosition>,
    ) -> Result<Committed> {
        self.reap(true);
        let (manifest, objects) = self.capture(trainer, epoch, data_positions)?;
        let started = Instant::now();
        let result = self.io.block_on(self.store.commit(manifest, objects));
        self.stats.wait_seconds_total += started.elapsed().as_secs_f64();
        let committed = result?;
        self.record(&committed);
        Ok(committed)
    }

    /// Waits for the upload in flight, if any.
    pub fn flush(&mut self) {
        self.reap(true);
    }

    fn capture<B: AutodiffBackend>(
        &mut self,
        trainer: &GanTrainer<B>,
        epoch: u64,
        data_positions: Vec<DataPosition>,
    ) -> Result<(Manifest, Vec<(String, bytes::Bytes)>)> {
        let started = Instant::now();
        let snapshot: Snapshot = trainer.snapshot(&self.run.class_names, &self.run.class_counts)?;
        let seconds = started.elapsed().as_secs_f64();
        self.stats.capture_seconds_total += seconds;
        self.stats.capture_seconds_max = self.stats.capture_seconds_max.max(seconds);
        let step = trainer.step();
        let manifest = Manifest {
            format: 0,
            step,
            epoch,
            created_unix_ms: 0,
            writer: self.run.writer.clone(),
            world_size: self.run.world_size,
            data_positions,
            rng: RngState {
                scheme: RNG_SCHEME.into(),
                seed: trainer.config().seed,
                next_step: step,
            },
            job: self.run.job.clone(),
            trainer: serde_json::to_value(&snapshot.description).map_err(|e| {
                Error::checkpoint("trainer description", format!("cannot encode: {e}"))
            })?,
            parameters_sha256: trainer.parameter_checksum(),
            objects: Vec::new(),
        };
        Ok((manifest, snapshot.blobs))
    }

    fn reap(&mut self, wait: bool) {
        let Some((step, upload)) = self.in_flight.take() else {
            return;
        };
        if !wait && !upload.is_finished() {
            self.in_flight = Some((step, upload));
            return;
        }
        let started = Instant::now();
        let result = self.io.block_on(upload);
        self.stats.wait_seconds_total += started.elapsed().as_secs_f64();
        match result {
            Ok(Ok(committed)) => self.record(&committed),
            Ok(Err(error)) => {
                self.stats.failed += 1;
                let latest = self.stats.last.as_ref().map(|c| c.step);
                tracing::error!(step, %error, ?latest, "checkpoint failed after retries; training goes on and `latest` still names the previous checkpoint");
            }
            Err(join) => {
                self.stats.failed += 1;
                tracing::error!(step, error = %join, "checkpoint upload task died");
            }
        }
    }

    fn record(&mut self, committed: &Committed) {
        self.stats.committed += 1;
        tracing::info!(
            step = committed.step,
            prefix = %committed.prefix,
            mib = format!("{:.1}", committed.bytes as f64 / (1 << 20) as f64),
            seconds = format!("{:.3}", committed.seconds),
            retries = committed.retries,
            deleted = committed.deleted.len(),
            "checkpoint committed"
        );
        self.stats.last = Some(committed.clone());
    }
}

/// The checkpoint store under a run's output location.
pub fn checkpoint_store(
    output: &StoreLocation,
    options: CheckpointOptions,
) -> Result<CheckpointStore> {
    Ok(CheckpointStore::for_output(output, options)?)
}

/// The newest checkpoint under `output` that verifies, as a snapshot; refusals are logged.
pub async fn newest_snapshot(
    output: &StoreLocation,
    options: CheckpointOptions,
) -> Result<Option<(Snapshot, anygan_store::LoadedCheckpoint)>> {
    let store = checkpoint_store(output, options)?;
    let (loaded, refusals) = store.load_newest_valid().await?;
    for refusal in &refusals {
        tracing::warn!(%refusal, "checkpoint refused");
    }
    loaded
        .map(|checkpoint| Ok((Snapshot::from_checkpoint(&checkpoint)?, checkpoint)))
        .transpose()
}
