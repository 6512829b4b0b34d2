//! `worker join`: register with the coordinator, serve the collective, load the data, receive a
//! rank, and train this replica in step with its peers on a dedicated thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anygan_proto::error_text;
use anygan_proto::job::JobSpec;
use anygan_proto::metrics::Registry;
use anygan_proto::security::{AuthedChannel, Security};
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_proto::v1::{self, JobPhase};
use tokio::net::TcpListener;

use crate::backend::TrainBackend;
use crate::collective::{Inbox, serve_collective};
use crate::data::load_source;
use crate::error::{Error, Result};
use crate::gan::GanTrainer;
use crate::job::gan_config;
use crate::replica::Replica;
use crate::tasks::{TaskSummary, run_tasks};

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

/// A failed call to the coordinator: lost (unreachable, connection broken) or a refusal.
pub(crate) fn coordinator_call_error(address: &str, what: &str, status: &tonic::Status) -> Error {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            Error::CoordinatorLost {
                address: address.to_string(),
                reason: format!("{what}: {}", status.message()),
            }
        }
        _ => coordinator_error(address, format!("{what}: {}", status.message())),
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

    let metrics = Registry::default();
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
        let registry = metrics.clone();
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
    // The registration a worker stopped by a signal tells it is leaving.
    let registration = Registration::default();
    // A coordinator that dies is restarted (by its supervisor, or by hand) and continues from
    // the newest checkpoint: this worker reconnects with backoff and registers again.
    let sessions = async {
        loop {
            let (counter, help) = match session(
                &config,
                &collective_address,
                &inbox,
                &metrics,
                &registration,
            )
            .await
            {
                Err(Error::CoordinatorLost { address, reason }) => {
                    tracing::warn!(%address, %reason, "coordinator lost; reconnecting");
                    (
                        "anygan_coordinator_reconnects_total",
                        "Times this worker lost the coordinator and registered again.",
                    )
                }
                // Fenced: its state is stale. It registers again and, admitted into the running
                // ring, fetches the current state from rank 0.
                Err(Error::Fenced { address, reason }) => {
                    tracing::warn!(%address, %reason, "fenced; joining again");
                    (
                        "anygan_rejoins_total",
                        "Times this worker was fenced and joined the job again.",
                    )
                }
                other => break other,
            };
            metrics.update(|m| m.add(counter, help, &[], 1.0));
        }
    };
    let outcome = tokio::select! {
        outcome = sessions => outcome,
        signal = anygan_proto::cli::stop_signal() => {
            let error = Error::Stopped { signal };
            tracing::warn!(%error, "stopping");
            registration.leave(&config.worker_id, &error).await;
            Err(error)
        }
    };
    let _ = stop_metrics.send(());
    let _ = stop_server.send(());
    let _ = server.await;
    outcome
}

/// One registration with the coordinator: training (from its assignment) then tasks.
async fn session(
    config: &JoinConfig,
    collective_address: &str,
    inbox: &Arc<Inbox>,
    metrics: &Registry,
    registration: &Registration,
) -> Result<JoinOutcome> {
    // What an earlier session heard of generations says nothing about this one.
    inbox.forget_newest();
    let address = config.coordinator.clone();
    let mut client = connect(&address, config.connect_timeout, &config.security).await?;
    let registered = client
        .register(v1::RegisterRequest {
            protocol_version: anygan_proto::PROTOCOL_VERSION,
            worker_id: config.worker_id.clone(),
            collective_address: collective_address.to_string(),
            device: crate::backend::device_name(),
        })
        .await
        .map_err(|status| coordinator_call_error(&address, "refused registration", &status))?
        .into_inner();
    registration.set(client.clone(), registered.incarnation);
    let outcome = registered_session(
        config,
        collective_address,
        inbox,
        metrics,
        client,
        registered,
    )
    .await;
    match &outcome {
        // Lost or fenced, this worker registers again. (After a failed job the leave changes
        // nothing: the coordinator ignores it.)
        Err(Error::CoordinatorLost { .. } | Error::Fenced { .. }) | Ok(_) => {}
        Err(error) => registration.leave(&config.worker_id, error).await,
    }
    outcome
}

/// A session once registered: the job spec, training, then tasks.
async fn registered_session(
    config: &JoinConfig,
    collective_address: &str,
    inbox: &Arc<Inbox>,
    metrics: &Registry,
    mut client: CoordinatorClient<AuthedChannel>,
    registered: v1::RegisterResponse,
) -> Result<JoinOutcome> {
    let address = config.coordinator.clone();
    let spec: JobSpec = serde_json::from_str(&registered.job_spec_json)
        .map_err(|e| coordinator_error(&address, format!("sent an unreadable job spec: {e}")))?;
    spec.validate()
        .map_err(|e| coordinator_error(&address, format!("sent an invalid job: {e}")))?;
    tracing::info!(worker_id = %config.worker_id, job = %spec.job_id, %collective_address, device = %crate::backend::device_name(), kernels = %crate::backend::selected_generator_kernels(), "registered");

    let progress = Arc::new(Progress {
        metrics: metrics.clone(),
        incarnation: AtomicU64::new(registered.incarnation),
        ..Progress::default()
    });
    // Stopped with the session, also when a stop signal drops it mid-way.
    let _heartbeats = AbortOnDrop(tokio::spawn(heartbeat_loop(
        client.clone(),
        config.worker_id.clone(),
        Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(50))),
        Arc::clone(&progress),
        Arc::clone(inbox),
    )));

    let runtime = tokio::runtime::Handle::current();
    let work = async {
        let training = match spec.generate_from {
            None => Some(
                train_replica(
                    &spec,
                    &config.worker_id,
                    &address,
                    client.clone(),
                    Arc::clone(inbox),
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
    progress.finished.store(true, Ordering::Relaxed);
    outcome
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
    let incarnation = progress.incarnation.load(Ordering::Relaxed);
    let assignment = wait_for_assignment(&mut client, worker_id, address, 0, incarnation).await?;
    let rank = assignment.rank;
    let replica = Replica {
        spec: spec.clone(),
        dataset,
        assignment,
        worker_id: worker_id.to_string(),
        coordinator: address.to_string(),
        client,
        progress,
        runtime: tokio::runtime::Handle::current(),
        inbox,
        security: security.clone(),
        collapse_watch: Default::default(),
    };
    // Training blocks for seconds at a time: it gets a thread of its own so heartbeats and the
    // collective service keep running.
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("train-rank-{rank}"))
        .spawn(move || {
            let _ = done.send(replica.train());
        })
        .map_err(|source| Error::Io {
            path: "training thread".into(),
            source,
        })?;
    finished
        .await
        .map_err(|_| Error::config("training", "the training thread panicked"))?
}

/// A task aborted when this is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a stopping worker waits for the coordinator to take its Leave.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest reason a Leave carries (the coordinator refuses more than 16 KiB).
const LEAVE_REASON_BYTES: usize = 8 * 1024;

/// The coordinator this worker is registered with now, so that a worker that stops — on an
/// error or a signal — can tell it why.
#[derive(Default)]
struct Registration(std::sync::Mutex<Option<(CoordinatorClient<AuthedChannel>, u64)>>);

impl Registration {
    fn set(&self, client: CoordinatorClient<AuthedChannel>, incarnation: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((client, incarnation));
    }

    /// Tells the coordinator this worker stops because of `error`, once; gives up after
    /// [`LEAVE_TIMEOUT`] (the coordinator then finds out from the missing heartbeats).
    async fn leave(&self, worker_id: &str, error: &Error) {
        let taken = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some((mut client, incarnation)) = taken else {
            return;
        };
        let reason = error_text::truncated(&error_text::describe(error), LEAVE_REASON_BYTES);
        let mut request = tonic::Request::new(v1::LeaveRequest {
            worker_id: worker_id.to_string(),
            incarnation,
            reason,
        });
        request.set_timeout(LEAVE_TIMEOUT);
        match tokio::time::timeout(LEAVE_TIMEOUT, client.leave(request)).await {
            Ok(Ok(_)) => tracing::info!(%worker_id, "told the coordinator this worker stops"),
            Ok(Err(status)) => {
                tracing::warn!(%worker_id, error = %status.message(), "could not tell the coordinator this worker stops")
            }
            Err(_) => {
                tracing::warn!(%worker_id, "the coordinator did not take this worker's leave in time")
            }
        }
    }
}

/// What the heartbeat task and the training thread share.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub step: AtomicU64,
    pub generation: AtomicU64,
    /// Set when the coordinator says the job failed: the training thread stops.
    pub job_failed: AtomicBool,
    /// Set when the coordinator no longer knows this worker (declared lost): the training
    /// thread stops instead of touching the re-formed ring.
    pub fenced: AtomicBool,
    /// The coordinator incarnation this worker registered with.
    pub incarnation: AtomicU64,
    pub finished: AtomicBool,
    /// What this worker's metrics endpoint serves.
    pub metrics: Registry,
}

async fn heartbeat_loop(
    mut client: CoordinatorClient<AuthedChannel>,
    worker_id: String,
    interval: Duration,
    progress: Arc<Progress>,
    inbox: Arc<Inbox>,
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
                inbox.supersede(u64::MAX);
            }
            Ok(response) => {
                // A newer generation: the ring was re-formed; wake an all-reduce still
                // waiting on the old ring's peers.
                inbox.supersede(response.get_ref().generation);
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                let registered = progress.incarnation.load(Ordering::Relaxed);
                if restarted(&mut client, registered).await {
                    // A new coordinator process: the training thread re-registers when its
                    // next step report is refused.
                    tracing::warn!(%worker_id, "the coordinator restarted");
                } else {
                    tracing::error!(%worker_id, error = %status.message(), "the coordinator no longer knows this worker: fenced");
                    progress.fenced.store(true, Ordering::Relaxed);
                    inbox.supersede(u64::MAX);
                }
            }
            Err(status) => {
                tracing::warn!(%worker_id, error = %status.message(), "heartbeat failed")
            }
        }
    }
}

/// Whether the coordinator answering now is another process than the one this worker
/// registered with (`registered` incarnation): an unknown worker is then not fenced, the
/// coordinator only forgot everybody.
pub(crate) async fn restarted(
    client: &mut CoordinatorClient<AuthedChannel>,
    registered: u64,
) -> bool {
    client
        .get_status(v1::StatusRequest {})
        .await
        .is_ok_and(|status| status.get_ref().incarnation != registered)
}

/// Long-polls for this worker's assignment of a generation after `after_generation`. An
/// unknown-worker answer from a restarted coordinator (not `incarnation`) is a lost
/// coordinator: the caller registers again.
pub(crate) async fn wait_for_assignment(
    client: &mut CoordinatorClient<AuthedChannel>,
    worker_id: &str,
    address: &str,
    after_generation: u64,
    incarnation: u64,
) -> Result<v1::Assignment> {
    loop {
        let mut request = tonic::Request::new(v1::AssignmentRequest {
            worker_id: worker_id.to_string(),
            after_generation,
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
            Err(status)
                if status.code() == tonic::Code::NotFound
                    && restarted(client, incarnation).await =>
            {
                return Err(Error::CoordinatorLost {
                    address: address.to_string(),
                    reason: "it restarted and no longer knows this worker".into(),
                });
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(Error::Fenced {
                    address: address.to_string(),
                    reason: status.message().to_string(),
                });
            }
            Err(status) => {
                return Err(coordinator_call_error(
                    address,
                    "gave no assignment",
                    &status,
                ));
            }
        }
    }
}
/// SHA-256 over the bits of every parameter, generator then discriminator.
pub fn parameter_checksum(trainer: &GanTrainer<TrainBackend>) -> String {
    trainer.parameter_checksum()
}
