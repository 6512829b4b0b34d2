//! Running the coordinator: a listener in, a shutdown future, and the job's final status out.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use anygan_proto::job::JobSpec;
use anygan_proto::security::Security;
use anygan_proto::v1;
use tonic::service::interceptor::InterceptedService;

use crate::actor::{Command, StateHandle};
use crate::error::{Error, Result};
use crate::local_workers::LocalWorker;
use crate::recovery::ResumePoint;
use crate::service::CoordinatorService;
use crate::state::JobState;

/// Timing of failure detection and start-up.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// Once `min_workers` are in, wait this long for more (up to `max_workers`).
    pub start_grace: Duration,
    /// After the job ends, keep answering this long so workers read the final phase.
    pub linger: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(5),
            start_grace: Duration::from_secs(2),
            linger: Duration::from_secs(1),
        }
    }
}

/// How the coordinator serves, besides the job itself.
#[derive(Debug, Default)]
pub struct ServeOptions {
    pub timing: Timing,
    /// TLS and token of the gRPC service.
    pub security: Security,
    /// Where the Prometheus endpoint (`/metrics`, `/healthz`) listens, if anywhere.
    pub metrics: Option<TcpListener>,
    /// Draw progress bars on this terminal.
    pub progress: Option<crate::progress::Terminal>,
    /// Worker processes this coordinator started (`--local-workers`), watched while it serves.
    pub local_workers: Vec<LocalWorker>,
}

/// How serving ended.
#[derive(Debug)]
pub struct Served {
    /// The job's last status.
    pub status: v1::JobStatus,
    /// Whether every local worker exited successfully (true without any).
    pub local_workers_succeeded: bool,
}

/// Serves `spec` on `listener`, from `resume` when given, until the job ends (then lingers) or
/// `shutdown` resolves, then waits for the local workers to exit.
pub async fn serve(
    listener: TcpListener,
    spec: JobSpec,
    resume: Option<ResumePoint>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<Served> {
    let ServeOptions {
        timing,
        security,
        metrics,
        progress,
        local_workers,
    } = options;
    let mut server = security.server().map_err(Error::Security)?;
    let job_spec_json =
        serde_json::to_string(&spec).map_err(|e| Error::InvalidJob(e.to_string()))?;
    let spec_for_plan = spec.clone();
    let state = StateHandle::spawn(
        JobState::new(spec, timing.heartbeat_timeout, timing.start_grace)?
            .resuming_from(resume)
            .of_incarnation(incarnation()),
    );
    let incarnation = state.watch().borrow().incarnation;
    let service = CoordinatorService::new(
        state.clone(),
        job_spec_json,
        timing.heartbeat_interval,
        incarnation,
    );
    let planner = tokio::spawn(plan_generation_when_due(state.clone(), spec_for_plan));
    let (stop_local_workers, local_workers_stop) = tokio::sync::watch::channel(false);
    let local_workers = tokio::spawn(crate::local_workers::watch(
        state.clone(),
        local_workers,
        incarnation,
        local_workers_stop,
    ));
    if let Some(terminal) = progress {
        tokio::spawn(terminal.follow(state.watch()));
    }
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(metrics) = metrics {
        let state = state.clone();
        tokio::spawn(anygan_proto::metrics::serve_metrics(
            metrics,
            move || {
                let state = state.clone();
                async move {
                    state
                        .ask(Command::Metrics)
                        .await
                        .unwrap_or_else(|_| String::new())
                }
            },
            async {
                let _ = metrics_stopped.await;
            },
        ));
    }
    let mut finished = state.watch();
    let job_over = async move {
        loop {
            let phase = finished.borrow_and_update().phase;
            if phase == v1::JobPhase::Done as i32 || phase == v1::JobPhase::Failed as i32 {
                tokio::time::sleep(timing.linger).await;
                return;
            }
            if finished.changed().await.is_err() {
                return;
            }
        }
    };
    let stop = async move {
        tokio::select! {
            _ = job_over => {}
            _ = shutdown => {}
        }
    };
    server
        .add_service(InterceptedService::new(
            service.into_server(),
            security.require_token(),
        ))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stop)
        .await?;
    planner.abort();
    let _ = stop_metrics.send(());
    // Stopped before the job is over (a signal): nobody will serve the local workers now.
    let phase = state.watch().borrow().phase;
    if phase != v1::JobPhase::Done as i32 && phase != v1::JobPhase::Failed as i32 {
        let _ = stop_local_workers.send(true);
    }
    // The status after the local workers are gone: what became of them is part of it.
    let local_workers_succeeded = local_workers.await.unwrap_or(false);
    let status = match state.ask(Command::Status).await {
        Ok(status) => status,
        Err(_) => state.watch().borrow().clone(),
    };
    Ok(Served {
        status,
        local_workers_succeeded,
    })
}

/// This process's incarnation: milliseconds since the Unix epoch at start. Its generations
/// start at incarnation × 2^16, room for 65,536 re-formed rings, above every predecessor's.
fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Once training is over (or a generation-only job has its workers), reads the generation plan
/// from the store and hands it to the state task; a plan that cannot be made fails the job,
/// with the reason. The store IO stays out of the state task.
async fn plan_generation_when_due(state: StateHandle, spec: JobSpec) {
    let mut changes = state.watch();
    loop {
        let phase = changes.borrow_and_update().phase;
        if phase == v1::JobPhase::Done as i32 || phase == v1::JobPhase::Failed as i32 {
            return;
        }
        if phase == v1::JobPhase::Generating as i32
            && matches!(state.ask(Command::NeedsPlan).await, Ok(true))
        {
            let command = match crate::recovery::generation_plan(&spec).await {
                Ok(plan) => {
                    let plan = Box::new(plan);
                    state
                        .ask(|reply| Command::StartGeneration(plan, reply))
                        .await
                }
                Err(error) => {
                    let reason = format!("cannot plan generation: {error}");
                    state.ask(|reply| Command::Fail(reason, reply)).await
                }
            };
            if command.is_err() {
                return;
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}
