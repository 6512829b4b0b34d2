//! `worker join`: register with the coordinator, serve the collective, load the data, receive a
//! rank, and train this replica in step with its peers on a dedicated thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anygan_proto::job::JobSpec;
use anygan_proto::shard::ReplicaBatches;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_proto::v1::{self, JobPhase};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

use crate::backend::{BACKEND_NAME, TrainBackend};
use crate::collective::{
    BlockingRing, DEFAULT_CHUNK_VALUES, Inbox, RingAllReduce, RingConfig, serve_collective,
};
use crate::data::{ImageDataset, load_source};
use crate::error::{Error, Result};
use crate::gan::params::parameter_bits;
use crate::gan::{Batch, GanTrainer};
use crate::job::{gan_config, train_config};
use crate::outputs::RunOutputs;
use crate::storage::StoreLocation;

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
}

/// How a replica's training ended.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub rank: usize,
    pub world_size: usize,
    pub steps: u64,
    /// SHA-256 of the final parameters (generator then discriminator).
    pub parameter_checksum: String,
}

fn coordinator_error(address: &str, reason: impl std::fmt::Display) -> Error {
    Error::Coordinator {
        address: address.to_string(),
        reason: reason.to_string(),
    }
}

/// Connects to the coordinator, retrying with backoff until `timeout`: workers may start first.
async fn connect(address: &str, timeout: Duration) -> Result<CoordinatorClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| coordinator_error(address, format!("bad address: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(50);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(CoordinatorClient::new(channel)),
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
    let server = tokio::spawn(serve_collective(listener, Arc::clone(&inbox), async {
        let _ = server_stopped.await;
    }));

    let mut client = connect(&address, config.connect_timeout).await?;
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
    let heartbeats = tokio::spawn(heartbeat_loop(
        client.clone(),
        config.worker_id.clone(),
        Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(50))),
        Arc::clone(&progress),
    ));

    // Data first: loading can take a while and the assignment waits for the slowest worker.
    let probe = gan_config(&spec, 1);
    probe.validate()?;
    let dataset = load_source(&spec.dataset, probe.image_shape(), &spec.store_options).await?;
    let assignment = wait_for_assignment(&mut client, &config.worker_id, &address).await?;
    let rank = assignment.rank as usize;
    let world_size = assignment.world_size as usize;
    let right = assignment
        .peers
        .get((rank + 1) % world_size)
        .ok_or_else(|| coordinator_error(&address, "assignment lacks the right neighbour"))?;
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
        },
        inbox,
    );

    let replica = Replica {
        spec,
        dataset,
        assignment,
        worker_id: config.worker_id.clone(),
        coordinator: address.clone(),
        client,
        progress: Arc::clone(&progress),
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
    let outcome = finished
        .await
        .map_err(|_| Error::config("training", "the training thread panicked"))?;
    progress.finished.store(true, Ordering::Relaxed);
    heartbeats.abort();
    let _ = stop_server.send(());
    let _ = server.await;
    outcome
}

/// What the heartbeat task and the training thread share.
#[derive(Debug, Default)]
struct Progress {
    step: AtomicU64,
    generation: AtomicU64,
    /// Set when the coordinator says the job failed: the training thread stops.
    job_failed: AtomicBool,
    finished: AtomicBool,
}

async fn heartbeat_loop(
    mut client: CoordinatorClient<Channel>,
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
    client: &mut CoordinatorClient<Channel>,
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
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
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
    client: CoordinatorClient<Channel>,
    progress: Arc<Progress>,
    runtime: tokio::runtime::Handle,
}

impl Replica {
    fn train(mut self, ring: RingAllReduce) -> Result<JoinOutcome> {
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
        let mut trainer = GanTrainer::<TrainBackend>::new(config, &class_counts, &device)?;
        trainer.set_replica(rank, world_size)?;
        let mut ring = BlockingRing::new(ring, self.runtime.clone());
        let outputs = RunOutputs {
            location: StoreLocation::parse(&spec.output, spec.store_options.iter().cloned(), true)?,
            io: &self.runtime,
            grid_columns: 10,
            class_names: self.dataset.class_names().to_vec(),
            class_counts: class_counts.clone(),
        };
        let labels = self.dataset.labels().to_vec();
        let mut checksum = String::new();
        let mut batches = ReplicaBatches::new(
            &labels,
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
        for step in 0..spec.steps {
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
            let report = v1::StepReport {
                worker_id: self.worker_id.clone(),
                generation: self.assignment.generation,
                step: done,
                parameter_checksum: checksum.clone(),
                discriminator_loss: losses.discriminator,
                generator_loss: losses.generator,
                step_seconds: started.elapsed().as_secs_f64(),
                all_reduce_seconds: ring.take_seconds(),
            };
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
        }
        if rank == 0 {
            outputs.finish(&trainer)?;
        }
        Ok(JoinOutcome {
            rank,
            world_size,
            steps: trainer.step(),
            parameter_checksum: checksum,
        })
    }
}

/// SHA-256 over the bits of every parameter, generator then discriminator.
pub fn parameter_checksum(trainer: &GanTrainer<TrainBackend>) -> String {
    let mut hasher = Sha256::new();
    for bits in parameter_bits(&trainer.generator())
        .into_iter()
        .chain(parameter_bits(&trainer.discriminator()))
    {
        hasher.update(bits.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
