//! One replica's training, on a thread of its own: the step loop, its reports, samples and
//! checkpoints, and what happens when the membership changes under it.
//!
//! When a peer is lost the coordinator re-forms the ring (a new membership generation, the
//! survivors in a new rank order, the data re-sharded for the new world size) and names the
//! step every survivor continues from: the lowest one any survivor completed. A survivor
//! learns of it from its heartbeat (which wakes a ring operation blocked on the dead peer), a
//! failed all-reduce, or a refused step report. It drops the step it was in and rolls back to
//! the agreed step from the states it keeps of its last completed steps: replicas are
//! identical, so no state has to travel and nothing is read from the store.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anygan_proto::job::JobSpec;
use anygan_proto::security::{AuthedChannel, Security};
use anygan_proto::shard::ReplicaBatches;
use anygan_proto::v1;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_store::checkpoint::DataPosition;
use anygan_store::{CheckpointOptions, StoreLocation};

use crate::backend::TrainBackend;
use crate::checkpointing::{Checkpointer, RunDescription, checkpoint_store};
use crate::collective::{BlockingRing, DEFAULT_CHUNK_VALUES, Inbox, RingAllReduce, RingConfig};
use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::gan::augment::DiffAugment;
use crate::gan::state::Snapshot;
use crate::gan::watch::CollapseWatch;
use crate::gan::{Batch, GanTrainer};
use crate::job::train_config;
use crate::join::{
    Progress, TrainingOutcome, coordinator_call_error, coordinator_error, wait_for_assignment,
};
use crate::outputs::RunOutputs;

mod transfer;

/// Rank 0 logs progress every this many steps.
const PROGRESS_EVERY: u64 = 10;

/// States of the last completed steps kept for a roll-back. Two suffice: a survivor can be at
/// most one step ahead of the slowest (every all-reduce needs every rank), and may be in the
/// middle of the step after that.
const KEPT_STATES: usize = 2;

/// One replica's training, run on its own thread.
pub(crate) struct Replica {
    pub spec: JobSpec,
    pub dataset: ImageDataset,
    pub assignment: v1::Assignment,
    pub worker_id: String,
    pub coordinator: String,
    pub client: CoordinatorClient<AuthedChannel>,
    pub progress: Arc<Progress>,
    pub runtime: tokio::runtime::Handle,
    pub inbox: Arc<Inbox>,
    pub security: Security,
    /// Rank 0 warns when the discriminator has rejected every generated image for long.
    pub collapse_watch: CollapseWatch,
}

/// This replica's place in one membership generation.
struct Membership<'a> {
    assignment: v1::Assignment,
    rank: usize,
    world_size: usize,
    plan_world: usize,
    ring: BlockingRing,
    batches: ReplicaBatches<'a>,
}

/// Why a step did not complete.
enum StepFailure {
    /// The membership changed (or a peer failed): wait for the re-formed ring. `completed`
    /// when the step itself finished and only its report was refused.
    Membership { reason: String, completed: bool },
    /// Anything else ends this replica.
    Fatal(Error),
}

impl From<Error> for StepFailure {
    fn from(error: Error) -> Self {
        match error {
            Error::Collective { peer, reason } => StepFailure::Membership {
                reason: format!("collective with {peer}: {reason}"),
                completed: false,
            },
            other => StepFailure::Fatal(other),
        }
    }
}

impl Replica {
    pub(crate) fn train(mut self) -> Result<TrainingOutcome> {
        let spec = self.spec.clone();
        let device = crate::backend::selected_device();
        let class_counts = self.dataset.class_counts();
        let config = train_config(&spec, self.dataset.num_classes());
        let output = StoreLocation::parse(&spec.output, spec.store_options.iter().cloned(), true)?;
        let checkpoint_options = CheckpointOptions {
            keep: spec.keep_checkpoints,
            ..CheckpointOptions::default()
        };
        let mut trainer = if !self.assignment.state_source.is_empty() {
            self.fetch_state(config, &device)?
        } else if self.assignment.resume_checkpoint.is_empty() {
            GanTrainer::<TrainBackend>::new(config, &class_counts, &device)?
        } else {
            self.restore(&output, checkpoint_options, config, &device)?
        };
        // Every replica starts (or continues) the average from the same weights at the same
        // step, so the averages stay identical like the weights.
        trainer.set_generator_ema(spec.generator_ema)?;
        trainer.set_diff_augment(DiffAugment::parse(
            spec.diff_augment.as_deref().unwrap_or("none"),
        )?);
        trainer.set_mode_seeking(spec.mode_seeking)?;
        trainer.set_mismatched_labels(spec.mismatched_labels)?;
        let labels = self.dataset.labels().to_vec();
        let runtime = self.runtime.clone();
        let outputs = RunOutputs {
            location: output.clone(),
            io: &runtime,
            grid_columns: 10,
        };
        let mut membership = self.join_ring(&labels, self.assignment.clone(), &mut trainer)?;
        let mut checkpointer = self.checkpointer_for(&membership, &output, checkpoint_options)?;
        let mut kept: VecDeque<GanTrainer<TrainBackend>> = VecDeque::new();
        let mut checksum = String::new();
        if trainer.step() >= spec.steps {
            // Resumed from the final checkpoint (the coordinator restarted after training):
            // the final checksum is all the coordinator still needs.
            checksum = self.report_finished(&trainer, &membership)?;
        }
        while trainer.step() < spec.steps {
            let before = trainer.clone();
            match self.step(
                &mut trainer,
                &mut membership,
                checkpointer.as_mut(),
                &outputs,
            ) {
                Ok(step_checksum) => {
                    checksum = step_checksum;
                    kept.push_back(before);
                    if kept.len() > KEPT_STATES {
                        kept.pop_front();
                    }
                }
                Err(StepFailure::Fatal(error)) => return Err(error),
                Err(StepFailure::Membership { reason, completed }) => {
                    let current = membership.assignment.generation;
                    tracing::warn!(generation = current, step = before.step() + 1, %reason, "step aborted; waiting for the re-formed ring");
                    let started = Instant::now();
                    let assignment = self.next_assignment(current)?;
                    // The candidates, newest first: the finished step (when only its report
                    // was refused), the state before it, then the kept ones.
                    let mut candidates: Vec<GanTrainer<TrainBackend>> = Vec::new();
                    if completed {
                        candidates.push(trainer);
                    }
                    candidates.push(before);
                    candidates.extend(kept.drain(..).rev());
                    let wanted = assignment.start_step;
                    let held: Vec<u64> = candidates.iter().map(GanTrainer::step).collect();
                    trainer = candidates
                        .into_iter()
                        .find(|t| t.step() == wanted)
                        .ok_or_else(|| {
                            coordinator_error(
                                &self.coordinator,
                                format!("re-formed the ring at step {wanted}; this replica holds steps {held:?} and must rejoin"),
                            )
                        })?;
                    self.progress.step.store(wanted, Ordering::Relaxed);
                    if let Some(old) = checkpointer.as_mut() {
                        old.flush();
                    }
                    membership = self.join_ring(&labels, assignment, &mut trainer)?;
                    checkpointer =
                        self.checkpointer_for(&membership, &output, checkpoint_options)?;
                    tracing::info!(
                        generation = membership.assignment.generation,
                        rank = membership.rank,
                        world_size = membership.world_size,
                        step = wanted,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "continuing in the re-formed ring"
                    );
                }
            }
        }
        if let Some(checkpointer) = &checkpointer {
            let stats = &checkpointer.stats;
            tracing::info!(
                committed = stats.committed,
                failed = stats.failed,
                skipped = stats.skipped,
                capture_ms_max = format!("{:.1}", stats.capture_seconds_max * 1e3),
                wait_s_total = format!("{:.3}", stats.wait_seconds_total),
                "checkpoints"
            );
        }
        Ok(TrainingOutcome {
            rank: membership.rank,
            world_size: membership.world_size,
            steps: trainer.step(),
            parameter_checksum: checksum,
        })
    }

    /// The ring, data plan and trainer placement of `assignment`.
    fn join_ring<'a>(
        &self,
        labels: &'a [u16],
        assignment: v1::Assignment,
        trainer: &mut GanTrainer<TrainBackend>,
    ) -> Result<Membership<'a>> {
        let spec = &self.spec;
        let rank = assignment.rank as usize;
        let world_size = assignment.world_size as usize;
        let local_batch = spec
            .local_batch(world_size)
            .map_err(|reason| Error::config("global_batch", reason))?;
        let plan_world = spec
            .plan_world(world_size)
            .map_err(|reason| Error::config("shard_world_size", reason))?;
        let right = assignment
            .peers
            .get((rank + 1) % world_size)
            .ok_or_else(|| {
                coordinator_error(&self.coordinator, "assignment lacks the right neighbour")
            })?;
        self.runtime
            .block_on(self.inbox.reset(assignment.generation));
        self.progress
            .generation
            .store(assignment.generation, Ordering::Relaxed);
        tracing::info!(rank, world_size, generation = assignment.generation, right = %right.collective_address, "assigned");
        let ring = RingAllReduce::new(
            RingConfig {
                rank,
                world_size,
                generation: assignment.generation,
                right_address: right.collective_address.clone(),
                timeout: Duration::from_millis(spec.collective_timeout_ms),
                chunk_values: DEFAULT_CHUNK_VALUES,
                security: self.security.clone(),
            },
            Arc::clone(&self.inbox),
        );
        trainer.set_replica(rank, world_size)?;
        if rank == 0 && world_size > 1 {
            self.offer_state(trainer, assignment.generation)?;
        }
        let batches = ReplicaBatches::new(
            labels,
            spec.real_sampling,
            assignment.shard_seed,
            plan_world,
            world_size,
            rank,
            spec.global_batch,
        )
        .ok_or_else(|| {
            Error::config(
                "global_batch",
                format!(
                    "{} records cannot feed {plan_world} shards at {local_batch} images per worker",
                    labels.len()
                ),
            )
        })?;
        Ok(Membership {
            assignment,
            rank,
            world_size,
            plan_world,
            ring: BlockingRing::new(ring, self.runtime.clone()),
            batches,
        })
    }

    /// Rank 0 writes checkpoints; its store is checked before its first step.
    fn checkpointer_for(
        &self,
        membership: &Membership<'_>,
        output: &StoreLocation,
        options: CheckpointOptions,
    ) -> Result<Option<Checkpointer>> {
        if membership.rank != 0 {
            return Ok(None);
        }
        self.runtime.block_on(output.check_writable())?;
        Ok(Some(
            Checkpointer::new(
                output,
                options,
                RunDescription {
                    writer: self.worker_id.clone(),
                    job: serde_json::to_value(self.spec.without_secrets()).map_err(|e| {
                        Error::checkpoint("job spec", format!("cannot encode: {e}"))
                    })?,
                    world_size: membership.world_size,
                    class_names: self.dataset.class_names().to_vec(),
                    class_counts: self.dataset.class_counts(),
                },
                self.runtime.clone(),
            )?
            .waiting_for_periodic(self.spec.wait_for_checkpoints),
        ))
    }

    /// Waits for an assignment of a generation after `current` (the coordinator re-forms the
    /// ring once it declares the lost peer, within its heartbeat timeout). If none comes within
    /// the collective timeout, no peer was lost as far as the coordinator can tell (a peer is
    /// stuck, or the link between two workers is cut): this worker gives up, so the
    /// coordinator declares it lost and the others go on without it, instead of all waiting.
    fn next_assignment(&mut self, current: u64) -> Result<v1::Assignment> {
        if self.progress.fenced.load(Ordering::Relaxed) {
            return Err(fenced(&self.coordinator));
        }
        let patience = Duration::from_millis(self.spec.collective_timeout_ms);
        let (client, worker_id, coordinator) =
            (&mut self.client, &self.worker_id, &self.coordinator);
        let incarnation = self.progress.incarnation.load(Ordering::Relaxed);
        // The timer is made inside the runtime: this thread is not one of its workers.
        self.runtime.block_on(async {
            loop {
                match tokio::time::timeout(
                    patience,
                    wait_for_assignment(client, worker_id, coordinator, current, incarnation),
                )
                .await
                {
                    Ok(assignment) => return assignment,
                    Err(_) => {
                        // Paused for want of workers: the state this replica holds is what
                        // the job resumes from, so it waits as long as the pause lasts.
                        let paused = client
                            .get_status(v1::StatusRequest {})
                            .await
                            .is_ok_and(|s| s.get_ref().phase == v1::JobPhase::Paused as i32);
                        if !paused {
                            return Err(coordinator_error(
                                coordinator,
                                format!(
                                    "kept generation {current} for {patience:?} after its ring failed; leaving the job so that the others can continue"
                                ),
                            ));
                        }
                        tracing::info!(generation = current, "the job is paused; waiting for workers");
                    }
                }
            }
        })
    }

    /// Runs one step and its bookkeeping; returns the checksum reported (empty when none).
    fn step(
        &mut self,
        trainer: &mut GanTrainer<TrainBackend>,
        membership: &mut Membership<'_>,
        checkpointer: Option<&mut Checkpointer>,
        outputs: &RunOutputs<'_>,
    ) -> std::result::Result<String, StepFailure> {
        let spec = &self.spec;
        if self.progress.job_failed.load(Ordering::Relaxed) {
            return Err(StepFailure::Fatal(coordinator_error(
                &self.coordinator,
                "the job failed; stopping this replica",
            )));
        }
        if self.progress.fenced.load(Ordering::Relaxed) {
            return Err(StepFailure::Fatal(fenced(&self.coordinator)));
        }
        let step = trainer.step();
        let rank = membership.rank;
        let started = Instant::now();
        let indices = membership.batches.batch(step);
        let (images, batch_labels) = self.dataset.normalized_batch(&indices);
        let losses = trainer.train_step_with(
            &Batch {
                images,
                labels: batch_labels,
            },
            &mut membership.ring,
        )?;
        let done = step + 1;
        self.progress.step.store(done, Ordering::Relaxed);
        let last = done == spec.steps;
        let checksum =
            if last || (spec.checksum_every > 0 && done.is_multiple_of(spec.checksum_every)) {
                trainer.parameter_checksum()
            } else {
                String::new()
            };
        let (all_reduce_seconds, all_reduce_bytes) = membership.ring.take_traffic();
        let (checkpoints_committed, last_checkpoint_seconds) =
            checkpointer.as_deref().map_or((0, 0.0), |c| {
                let last = c.stats.last.as_ref().map_or(0.0, |l| l.seconds);
                (c.stats.committed, last)
            });
        let report = v1::StepReport {
            worker_id: self.worker_id.clone(),
            generation: membership.assignment.generation,
            step: done,
            parameter_checksum: checksum.clone(),
            discriminator_loss: losses.discriminator,
            generator_loss: losses.generator,
            step_seconds: started.elapsed().as_secs_f64(),
            all_reduce_seconds,
            all_reduce_bytes,
            checkpoints_committed,
            last_checkpoint_seconds,
            class_loss_real: losses.class_real,
            class_loss_generated: losses.class_generated,
        };
        self.progress.metrics.update(|m| {
            anygan_proto::metrics::record_step(m, &report, &[]);
            m.add(
                "anygan_all_reduce_bytes_total",
                "Bytes sent to the ring neighbour in all-reduces.",
                &[],
                report.all_reduce_bytes as f64,
            );
        });
        if rank == 0 && (done.is_multiple_of(PROGRESS_EVERY) || last) {
            let seconds = report.step_seconds;
            let [class_real, class_generated] = losses.class_losses_text();
            let [low_d, low_g] = losses.low_resolution_losses_text();
            tracing::info!(
                step = done,
                of = spec.steps,
                d_loss = format!("{:.4}", losses.discriminator),
                g_loss = format!("{:.4}", losses.generator),
                d_real = format!("{:.3}", losses.real_score),
                d_fake = format!("{:.3}", losses.fake_score),
                d_mismatched = losses.mismatched_score.map(|score| format!("{score:.3}")),
                class_real = class_real.as_deref(),
                class_generated = class_generated.as_deref(),
                low_resolution_d_loss = low_d.as_deref(),
                low_resolution_g_loss = low_g.as_deref(),
                step_s = format!("{seconds:.3}"),
                all_reduce_s = format!("{:.4}", report.all_reduce_seconds),
                images_per_s = format!("{:.1}", spec.global_batch as f64 / seconds),
                "step"
            );
        }
        if rank == 0
            && let Some(collapse) = self.collapse_watch.observe(done, &losses)
        {
            tracing::warn!("{}", collapse.advice());
        }
        let positions = |next_step: u64| -> (u64, Vec<DataPosition>) {
            let per_epoch = membership.batches.steps_per_epoch();
            let epoch = next_step / per_epoch;
            let positions = (0..membership.world_size)
                .map(|rank| DataPosition {
                    rank,
                    next_step,
                    epoch,
                    batch_in_epoch: next_step % per_epoch,
                    shard_seed: membership.assignment.shard_seed,
                    plan_world: membership.plan_world,
                })
                .collect();
            (epoch, positions)
        };
        let mut checkpointer = checkpointer;
        if last && let Some(checkpointer) = checkpointer.as_deref_mut() {
            // Before the last report: when the coordinator says done, the result is durable.
            let (epoch, positions) = positions(done);
            checkpointer.save_and_wait(trainer, epoch, positions)?;
            outputs.finish(trainer)?;
        }
        let ack = match self.runtime.block_on(self.client.report_step(report)) {
            Ok(ack) => ack.into_inner(),
            // The ring was re-formed while this step ran: the step stands locally, the new
            // generation decides whether it counts.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::NotFound
                ) =>
            {
                return Err(StepFailure::Membership {
                    reason: format!("step report refused: {}", status.message()),
                    completed: true,
                });
            }
            Err(status) => {
                return Err(StepFailure::Fatal(coordinator_call_error(
                    &self.coordinator,
                    "refused a step report",
                    &status,
                )));
            }
        };
        if !ack.proceed && !last {
            return Err(StepFailure::Fatal(coordinator_error(
                &self.coordinator,
                "stopped the job",
            )));
        }
        if rank == 0 && spec.sample_every > 0 && done.is_multiple_of(spec.sample_every) && !last {
            outputs.write_grid(trainer, &format!("step-{done:07}.png"))?;
        }
        if let Some(checkpointer) = checkpointer
            && spec.checkpoint_every > 0
            && done.is_multiple_of(spec.checkpoint_every)
            && !last
        {
            let (epoch, positions) = positions(done);
            checkpointer.save_periodic(trainer, epoch, positions)?;
        }
        anygan_store::failpoint::hit("abort-after-step", done);
        Ok(checksum)
    }

    /// Reports the step this replica already holds, with its checksum.
    fn report_finished(
        &mut self,
        trainer: &GanTrainer<TrainBackend>,
        membership: &Membership<'_>,
    ) -> Result<String> {
        let checksum = trainer.parameter_checksum();
        let report = v1::StepReport {
            worker_id: self.worker_id.clone(),
            generation: membership.assignment.generation,
            step: trainer.step(),
            parameter_checksum: checksum.clone(),
            ..Default::default()
        };
        self.progress.step.store(trainer.step(), Ordering::Relaxed);
        self.runtime
            .block_on(self.client.report_step(report))
            .map_err(|status| {
                coordinator_call_error(&self.coordinator, "refused a step report", &status)
            })?;
        Ok(checksum)
    }

    /// The trainer saved in the checkpoint the coordinator assigned (it verified it; the store
    /// verifies every object again as it reads).
    fn restore(
        &self,
        output: &StoreLocation,
        options: CheckpointOptions,
        config: crate::gan::TrainConfig,
        device: &burn::tensor::Device<TrainBackend>,
    ) -> Result<GanTrainer<TrainBackend>> {
        let prefix = &self.assignment.resume_checkpoint;
        let store = checkpoint_store(output, options)?;
        let checkpoint = self.runtime.block_on(store.load(prefix, None))?;
        let snapshot = Snapshot::from_checkpoint(&checkpoint)?;
        let where_ = store.location().describe(prefix);
        if snapshot.description.config != config {
            return Err(Error::checkpoint(
                where_,
                "was trained with a different model or optimizer config than this job",
            ));
        }
        if snapshot.description.step != self.assignment.start_step {
            return Err(Error::checkpoint(
                where_,
                format!(
                    "holds step {}, the coordinator assigned step {}",
                    snapshot.description.step, self.assignment.start_step
                ),
            ));
        }
        tracing::info!(step = snapshot.description.step, checkpoint = %where_, "resuming");
        GanTrainer::restore(snapshot, device)
    }
}

fn fenced(coordinator: &str) -> Error {
    Error::Fenced {
        address: coordinator.to_string(),
        reason: "declared this worker lost and re-formed the ring without it".into(),
    }
}
