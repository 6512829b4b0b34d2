//! `worker join`: register with the coordinator, serve the collective, load the data, receive a
//! rank, and train this replica in step with its peers on a dedicated thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anygan_proto::job::JobSpec;
use anygan_proto::metrics::Registry;
use anygan_proto::security::{AuthedChannel, Security};
use anygan_proto::shard::ReplicaBatches;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_proto::v1::{self, JobPhase};
use tokio::net::TcpListener;

use anygan_store::checkpoint::DataPosition;
use anygan_store::{CheckpointOptions, StoreLocation};

use crate::backend::{BACKEND_NAME, TrainBackend};
use crate::checkpointing::{Checkpointer, RunDescription, checkpoint_store};
use crate::collective::{
    BlockingRing, DEFAULT_CHUNK_VALUES, Inbox, RingAllReduce, RingConfig, serve_collective,
};
use crate::data::{ImageDataset, load_source};
use crate::error::{Error, Result};
use crate::gan::state::Snapshot;
use crate::gan::{Batch, GanTrainer};
use crate::job::{gan_config, train_config};
use crate::outputs::RunOutputs;
use crate::tasks::{TaskSummary, run_tasks};

/// Rank 0 logs progress every this many steps.
const PROGRESS_EVERY: u64 = 10;

/// How a worker joins a job.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// host:port of the coordinator.
    pub coordinator: String,
    pub worker_id: String,
    /// Where the collective service listens (port 0: any free port).
    pub listen: SocketAddr,
    /// Host peers use to reach this worker; the listen address's host when none.
    pub advertise_host: Option<String>,
    /// Give up connecting to the coordinator after this long.
    pub connect_timeout: Duration,
    /// TLS and token of every connection (coordinator, ring neighbours, own server).
    pub security: Security,
    /// Where this worker's Prometheus endpoint listens, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// What a worker did in a job.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    /// None in a generation-only job.
    pub training: Option<TrainingOutcome>,
    pub tasks: TaskSummary,
}

/// How a replica's training ended.
#[derive(Debug, Clone)]
pub struct TrainingOutcome {
    pub rank: usize,
    pub world_size: usize,
    pub steps: u64,
    /// SHA-256 of the final parameters (generator then discriminator).
    pub parameter_checksum: String,
}

pub(crate) fn coordinator_error(address: &str, reason: impl std::fmt::Display) -> Error {
    Error::Coordinator {
        address: address.to_string(),
        reason: reason.to_string(),
    }
}

/// Connects to the coordinator, retrying with backoff until `timeout`: workers may start first.
async fn connect(
    address: &str,
    timeout: Duration,
    security: &Security,
) -> Result<CoordinatorClient<AuthedChannel>> {
    let endpoint = security
        .endpoint(address)
        .map_err(|e| coordinator_error(address, e))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(50);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(CoordinatorClient::new(security.authed(channel))),
            Err(error) if Instant::now() + backoff < deadline => {
                tracing::debug!(%address, %error, "coordinator not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(coordinator_error(address, format!("unreachable: {error}"))),
        }
    }
}

/// Runs one worker from registration to the end of training.
pub async fn join(config: JoinConfig) -> Result<JoinOutcome> {
    let address = config.coordinator.clone();
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Io {
            path: config.listen.to_string().into(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        path: config.listen.to_string().into(),
        source,
    })?;
    let host = config
        .advertise_host
        .clone()
        .unwrap_or_else(|| local.ip().to_string());
    let collective_address = format!("{host}:{}", local.port());
    let inbox = Arc::new(Inbox::default());
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_collective(
        listener,
        Arc::clone(&inbox),
        config.security.clone(),
        async {
            let _ = server_stopped.await;
        },
    ));

    let mut client = connect(&address, config.connect_timeout, &config.security).await?;
    let registered = client
        .register(v1::RegisterRequest {
            protocol_version: anygan_proto::PROTOCOL_VERSION,
            worker_id: config.worker_id.clone(),
            collective_address: collective_address.clone(),
            device: BACKEND_NAME.to_string(),
        })
        .await
        .map_err(|status| {
            coordinator_error(
                &address,
                format!("refused registration: {}", status.message()),
            )
        })?
        .into_inner();
    let spec: JobSpec = serde_json::from_str(&registered.job_spec_json)
        .map_err(|e| coordinator_error(&address, format!("sent an unreadable job spec: {e}")))?;
    spec.validate()
        .map_err(|e| coordinator_error(&address, format!("sent an invalid job: {e}")))?;
    tracing::info!(worker_id = %config.worker_id, job = %spec.job_id, %collective_address, "registered");

    let progress = Arc::new(Progress::default());
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(metrics_listen) = config.metrics_listen {
        let listener = TcpListener::bind(metrics_listen)
            .await
            .map_err(|source| Error::Io {
                path: format!("--metrics-listen {metrics_listen}").into(),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| Error::Io {
            path: metrics_listen.to_string().into(),
            source,
        })?;
        tracing::info!(address = %bound, "metrics listening");
        let registry = progress.metrics.clone();
        tokio::spawn(anygan_proto::metrics::serve_metrics(
            listener,
            move || {
                let registry = registry.clone();
                async move { registry.render() }
            },
            async {
                let _ = metrics_stopped.await;
            },
        ));
    }
    let heartbeats = tokio::spawn(heartbeat_loop(
        client.clone(),
        config.worker_id.clone(),
        Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(50))),
        Arc::clone(&progress),
    ));

    let runtime = tokio::runtime::Handle::current();
    let work = async {
        let training = match spec.generate_from {
            None => Some(
                train_replica(
                    &spec,
                    &config.worker_id,
                    &address,
                    client.clone(),
                    inbox,
                    Arc::clone(&progress),
                    &config.security,
                )
                .await?,
            ),
            Some(_) => None,
        };
        // A replica that failed never gets here: it does not go on to generation.
        let tasks = match spec.generation {
            Some(_) => {
                run_tasks(
                    &mut client,
                    &config.worker_id,
                    &address,
                    &spec,
                    &runtime,
                    &progress.metrics,
                )
                .await?
            }
            None => TaskSummary::default(),
        };
        Ok(JoinOutcome { training, tasks })
    };
    let outcome = work.await;
    let _ = stop_metrics.send(());
    stop(&progress, heartbeats, stop_server, server).await;
    outcome
}

async fn stop(
    progress: &Progress,
    heartbeats: tokio::task::JoinHandle<()>,
    stop_server: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<()>>,
) {
    progress.finished.store(true, Ordering::Relaxed);
    heartbeats.abort();
    let _ = stop_server.send(());
    let _ = server.await;
}

/// Trains this replica: data, assignment, ring, and the training thread.
async fn train_replica(
    spec: &JobSpec,
    worker_id: &str,
    address: &str,
    mut client: CoordinatorClient<AuthedChannel>,
    inbox: Arc<Inbox>,
    progress: Arc<Progress>,
    security: &Security,
) -> Result<TrainingOutcome> {
    // Data first: loading can take a while and the assignment waits for the slowest worker.
    let probe = gan_config(spec, 1);
    probe.validate()?;
    let dataset = load_source(&spec.dataset, probe.image_shape(), &spec.store_options).await?;
    let assignment = wait_for_assignment(&mut client, worker_id, address).await?;
    let rank = assignment.rank as usize;
    let world_size = assignment.world_size as usize;
    let right = assignment
        .peers
        .get((rank + 1) % world_size)
        .ok_or_else(|| coordinator_error(address, "assignment lacks the right neighbour"))?;
    inbox.reset(assignment.generation).await;
    progress
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
            security: security.clone(),
        },
        inbox,
    );

    let replica = Replica {
        spec: spec.clone(),
        dataset,
        assignment,
        worker_id: worker_id.to_string(),
        coordinator: address.to_string(),
        client,
        progress,
        runtime: tokio::runtime::Handle::current(),
    };
    // Training blocks for seconds at a time: it gets a thread of its own so heartbeats and the
    // collective service keep running.
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("train-rank-{rank}"))
        .spawn(move || {
            let _ = done.send(replica.train(ring));
        })
        .map_err(|source| Error::Io {
            path: "training thread".into(),
            source,
        })?;
    finished
        .await
        .map_err(|_| Error::config("training", "the training thread panicked"))?
}

/// What the heartbeat task and the training thread share.
#[derive(Debug, Default)]
struct Progress {
    step: AtomicU64,
    generation: AtomicU64,
    /// Set when the coordinator says the job failed: the training thread stops.
    job_failed: AtomicBool,
    finished: AtomicBool,
    /// What this worker's metrics endpoint serves.
    metrics: Registry,
}

async fn heartbeat_loop(
    mut client: CoordinatorClient<AuthedChannel>,
    worker_id: String,
    interval: Duration,
    progress: Arc<Progress>,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        if progress.finished.load(Ordering::Relaxed) {
            return;
        }
        let request = v1::HeartbeatRequest {
            worker_id: worker_id.clone(),
            generation: progress.generation.load(Ordering::Relaxed),
            step: progress.step.load(Ordering::Relaxed),
        };
        match client.heartbeat(request).await {
            Ok(response) if response.get_ref().phase == JobPhase::Failed as i32 => {
                progress.job_failed.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(status) => {
                tracing::warn!(%worker_id, error = %status.message(), "heartbeat failed")
            }
        }
    }
}

async fn wait_for_assignment(
    client: &mut CoordinatorClient<AuthedChannel>,
    worker_id: &str,
    address: &str,
) -> Result<v1::Assignment> {
    loop {
        let mut request = tonic::Request::new(v1::AssignmentRequest {
            worker_id: worker_id.to_string(),
        });
        request.set_timeout(Duration::from_secs(30));
        match client.get_assignment(request).await {
            Ok(response) => return Ok(response.into_inner()),
            // A client-side timeout surfaces as CANCELLED ("Timeout expired").
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ) =>
            {
                tracing::info!(%worker_id, "still waiting for enough workers");
            }
            Err(status) => {
                return Err(coordinator_error(
                    address,
                    format!("gave no assignment: {}", status.message()),
                ));
            }
        }
    }
}
/// One replica's training, run on its own thread.
struct Replica {
    spec: JobSpec,
    dataset: ImageDataset,
    assignment: v1::Assignment,
    worker_id: String,
    coordinator: String,
    client: CoordinatorClient<AuthedChannel>,
    progress: Arc<Progress>,
    runtime: tokio::runtime::Handle,
}

impl Replica {
    fn train(mut self, ring: RingAllReduce) -> Result<TrainingOutcome> {
        let spec = &self.spec;
        let rank = self.assignment.rank as usize;
        let world_size = self.assignment.world_size as usize;
        let local_batch = spec
            .local_batch(world_size)
            .map_err(|reason| Error::config("global_batch", reason))?;
        let plan_world = spec
            .plan_world(world_size)
            .map_err(|reason| Error::config("shard_world_size", reason))?;
        let device = crate::backend::device(0);
        let class_counts = self.dataset.class_counts();
        let config = train_config(spec, self.dataset.num_classes());
        let output = StoreLocation::parse(&spec.output, spec.store_options.iter().cloned(), true)?;
        let checkpoint_options = CheckpointOptions {
            keep: spec.keep_checkpoints,
            ..CheckpointOptions::default()
        };
        let mut trainer = if self.assignment.resume_checkpoint.is_empty() {
            GanTrainer::<TrainBackend>::new(config, &class_counts, &device)?
        } else {
            self.restore(&output, checkpoint_options, config, &device)?
        };
        trainer.set_replica(rank, world_size)?;
        let mut ring = BlockingRing::new(ring, self.runtime.clone());
        let outputs = RunOutputs {
            location: output.clone(),
            io: &self.runtime,
            grid_columns: 10,
        };
        // Rank 0 writes; its store is checked before the first step, not at the first save.
        let mut checkpointer = if rank == 0 {
            self.runtime.block_on(output.check_writable())?;
            Some(Checkpointer::new(
                &output,
                checkpoint_options,
                RunDescription {
                    writer: self.worker_id.clone(),
                    job: serde_json::to_value(spec.without_secrets()).map_err(|e| {
                        Error::checkpoint("job spec", format!("cannot encode: {e}"))
                    })?,
                    world_size,
                    class_names: self.dataset.class_names().to_vec(),
                    class_counts: class_counts.clone(),
                },
                self.runtime.clone(),
            )?)
        } else {
            None
        };
        let labels = self.dataset.labels().to_vec();
        let mut checksum = String::new();
        let mut batches = ReplicaBatches::new(
            &labels,
            spec.real_sampling,
            self.assignment.shard_seed,
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
        let steps_per_epoch = batches.steps_per_epoch();
        let positions = |next_step: u64| -> (u64, Vec<DataPosition>) {
            let epoch = next_step / steps_per_epoch;
            let positions = (0..world_size)
                .map(|rank| DataPosition {
                    rank,
                    next_step,
                    epoch,
                    batch_in_epoch: next_step % steps_per_epoch,
                    shard_seed: self.assignment.shard_seed,
                    plan_world,
                })
                .collect();
            (epoch, positions)
        };
        for step in trainer.step()..spec.steps {
            if self.progress.job_failed.load(Ordering::Relaxed) {
                return Err(coordinator_error(
                    &self.coordinator,
                    "the job failed; stopping this replica",
                ));
            }
            let started = Instant::now();
            let indices = batches.batch(step);
            let (images, batch_labels) = self.dataset.normalized_batch(&indices);
            let losses = trainer.train_step_with(
                &Batch {
                    images,
                    labels: batch_labels,
                },
                &mut ring,
            )?;
            let done = step + 1;
            self.progress.step.store(done, Ordering::Relaxed);
            let last = done == spec.steps;
            checksum = if last || (spec.checksum_every > 0 && done % spec.checksum_every == 0) {
                parameter_checksum(&trainer)
            } else {
                String::new()
            };
            let (all_reduce_seconds, all_reduce_bytes) = ring.take_traffic();
            let (checkpoints_committed, last_checkpoint_seconds) =
                checkpointer.as_ref().map_or((0, 0.0), |c| {
                    let last = c.stats.last.as_ref().map_or(0.0, |l| l.seconds);
                    (c.stats.committed, last)
                });
            let report = v1::StepReport {
                worker_id: self.worker_id.clone(),
                generation: self.assignment.generation,
                step: done,
                parameter_checksum: checksum.clone(),
                discriminator_loss: losses.discriminator,
                generator_loss: losses.generator,
                step_seconds: started.elapsed().as_secs_f64(),
                all_reduce_seconds,
                all_reduce_bytes,
                checkpoints_committed,
                last_checkpoint_seconds,
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
            if rank == 0 && (done % PROGRESS_EVERY == 0 || last) {
                let seconds = report.step_seconds;
                tracing::info!(
                    step = done,
                    of = spec.steps,
                    d_loss = format!("{:.4}", losses.discriminator),
                    g_loss = format!("{:.4}", losses.generator),
                    d_real = format!("{:.3}", losses.real_score),
                    d_fake = format!("{:.3}", losses.fake_score),
                    step_s = format!("{seconds:.3}"),
                    all_reduce_s = format!("{:.4}", report.all_reduce_seconds),
                    images_per_s = format!("{:.1}", spec.global_batch as f64 / seconds),
                    "step"
                );
            }
            if last && let Some(checkpointer) = checkpointer.as_mut() {
                // Before the last report: when the coordinator says done, the result is durable.
                let (epoch, positions) = positions(done);
                checkpointer.save_and_wait(&trainer, epoch, positions)?;
                outputs.finish(&trainer)?;
            }
            let ack = self
                .runtime
                .block_on(self.client.report_step(report))
                .map_err(|status| {
                    coordinator_error(
                        &self.coordinator,
                        format!("refused a step report: {}", status.message()),
                    )
                })?;
            if !ack.into_inner().proceed && !last {
                return Err(coordinator_error(&self.coordinator, "stopped the job"));
            }
            if rank == 0 && spec.sample_every > 0 && done % spec.sample_every == 0 && !last {
                outputs.write_grid(&trainer, &format!("step-{done:07}.png"))?;
            }
            if let Some(checkpointer) = checkpointer.as_mut()
                && spec.checkpoint_every > 0
                && done % spec.checkpoint_every == 0
                && !last
            {
                let (epoch, positions) = positions(done);
                checkpointer.save_in_background(&trainer, epoch, positions)?;
            }
            anygan_store::failpoint::hit("abort-after-step", done);
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
            rank,
            world_size,
            steps: trainer.step(),
            parameter_checksum: checksum,
        })
    }
}

impl Replica {
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

/// SHA-256 over the bits of every parameter, generator then discriminator.
pub fn parameter_checksum(trainer: &GanTrainer<TrainBackend>) -> String {
    trainer.parameter_checksum()
}
