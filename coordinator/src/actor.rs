//! The one task that owns the job state. gRPC handlers send it commands over a bounded channel
//! and wait for the answer on a oneshot; it also ticks the clock-driven transitions and
//! publishes every change on a watch channel (for waiters and shutdown).

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use anygan_proto::v1;

use crate::error::{Error, Result};
use crate::state::JobState;

/// Commands the state task answers.
#[derive(Debug)]
pub enum Command {
    Register(v1::RegisterRequest, oneshot::Sender<Result<()>>),
    Heartbeat(
        v1::HeartbeatRequest,
        oneshot::Sender<Result<v1::HeartbeatResponse>>,
    ),
    Assignment(String, oneshot::Sender<Result<Option<v1::Assignment>>>),
    ReportStep(v1::StepReport, oneshot::Sender<Result<bool>>),
    Status(oneshot::Sender<v1::JobStatus>),
    /// The Prometheus text of the job now.
    Metrics(oneshot::Sender<String>),
    NextTask(String, oneshot::Sender<Result<Option<v1::TaskResponse>>>),
    ReportTask(v1::TaskReport, oneshot::Sender<Result<()>>),
    /// A worker stopping, and why.
    Leave(v1::LeaveRequest, oneshot::Sender<()>),
    /// Every worker process this coordinator started has exited.
    LocalWorkersGone(oneshot::Sender<()>),
    /// The generation plan, read from the store by the supervisor.
    StartGeneration(
        Box<anygan_proto::generation::GenerationPlan>,
        oneshot::Sender<()>,
    ),
    /// Whether generation waits for its plan.
    NeedsPlan(oneshot::Sender<bool>),
    Fail(String, oneshot::Sender<()>),
}

/// Commands waiting for the state task; past this, handlers wait (backpressure).
const COMMAND_QUEUE: usize = 256;
/// How often time-driven transitions (start after grace, lost workers) are checked.
const TICK: Duration = Duration::from_millis(100);

/// The handle handlers use to talk to the state task.
#[derive(Debug, Clone)]
pub struct StateHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<v1::JobStatus>,
}

impl StateHandle {
    /// Starts the state task for `state`.
    pub fn spawn(state: JobState) -> Self {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (publish, status) = watch::channel(state.status());
        tokio::spawn(run(state, receiver, publish));
        Self { commands, status }
    }

    pub async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)
    }

    /// A receiver that sees every published status.
    pub fn watch(&self) -> watch::Receiver<v1::JobStatus> {
        self.status.clone()
    }
}

async fn run(
    mut state: JobState,
    mut commands: mpsc::Receiver<Command>,
    publish: watch::Sender<v1::JobStatus>,
) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                handle(&mut state, command)
            }
            _ = ticker.tick() => {
                let before = state.phase_code();
                let changed = state.tick(Instant::now());
                let after = state.phase_code();
                if before != after {
                    log_phase(&state);
                }
                // Published on any change (e.g. tasks released by a lost worker), so
                // long-polls waiting for one wake up.
                changed || before != after
            }
        };
        if changed {
            publish.send_replace(state.status());
        }
    }
}

fn log_phase(state: &JobState) {
    let status = state.status();
    match state.phase_code() {
        v1::JobPhase::Training => tracing::info!(
            workers = status.workers.len(),
            generation = status.generation,
            "training started"
        ),
        v1::JobPhase::Generating => tracing::info!("training over; generating"),
        v1::JobPhase::Done => {
            tracing::info!(steps = status.target_steps, replicas_identical = ?status.replicas_identical, "job done")
        }
        v1::JobPhase::Failed => tracing::error!(reason = %status.failure, "job failed"),
        _ => {}
    }
}

/// Applies one command; returns whether the published status changed.
fn handle(state: &mut JobState, command: Command) -> bool {
    let now = Instant::now();
    match command {
        Command::Register(request, reply) => {
            let result = state.register(&request, now);
            if result.is_ok() {
                tracing::info!(worker_id = %request.worker_id, address = %request.collective_address, "worker registered");
            } else if let Err(error) = &result {
                tracing::warn!(worker_id = %request.worker_id, %error, "registration refused");
            }
            let changed = result.is_ok();
            let _ = reply.send(result);
            changed
        }
        Command::Heartbeat(request, reply) => {
            let result = state
                .heartbeat(&request.worker_id, now)
                .map(|()| v1::HeartbeatResponse {
                    generation: state.generation(),
                    phase: state.phase_code() as i32,
                });
            let _ = reply.send(result);
            false
        }
        Command::Assignment(worker_id, reply) => {
            let _ = reply.send(state.assignment(&worker_id));
            false
        }
        Command::ReportStep(report, reply) => {
            let before = state.phase_code();
            let result = state.report_step(&report, now);
            if before != state.phase_code() {
                log_phase(state);
            }
            let _ = reply.send(result);
            true
        }
        Command::Status(reply) => {
            let _ = reply.send(state.status());
            false
        }
        Command::Metrics(reply) => {
            let _ = reply.send(crate::metrics::render(state));
            false
        }
        Command::NextTask(worker_id, reply) => {
            let result = state.next_task(&worker_id, now);
            let handed_out = matches!(&result, Ok(Some(r)) if r.task.is_some());
            let _ = reply.send(result);
            handed_out
        }
        Command::ReportTask(report, reply) => {
            let before = state.phase_code();
            let result = state.report_task(&report, now);
            if report.error.is_empty() {
                let progress = state.status().generation_progress;
                let done: u64 = progress.iter().map(|c| c.done).sum();
                let wanted: u64 = progress.iter().map(|c| c.wanted).sum();
                tracing::info!(worker_id = %report.worker_id, task = report.task_id, images = report.images, seconds = format!("{:.2}", report.seconds), done, wanted, "task done");
            } else {
                tracing::warn!(worker_id = %report.worker_id, task = report.task_id, error = %report.error, "task failed");
            }
            if before != state.phase_code() {
                log_phase(state);
            }
            let _ = reply.send(result);
            true
        }
        Command::Leave(request, reply) => {
            if request.incarnation != state.incarnation() {
                // Registered with an earlier coordinator process: this one never knew it.
                tracing::info!(worker_id = %request.worker_id, reason = %request.reason, "a worker of an earlier coordinator left");
                let _ = reply.send(());
                return false;
            }
            let before = state.phase_code();
            let changed = state.leave(&request.worker_id, &request.reason, now);
            if changed {
                tracing::warn!(worker_id = %request.worker_id, reason = %request.reason, "worker left");
            }
            if before != state.phase_code() {
                log_phase(state);
            }
            let _ = reply.send(());
            changed
        }
        Command::LocalWorkersGone(reply) => {
            let before = state.phase_code();
            state.local_workers_gone();
            let _ = reply.send(());
            let changed = before != state.phase_code();
            if changed {
                log_phase(state);
            }
            changed
        }
        Command::StartGeneration(plan, reply) => {
            tracing::info!(checkpoint = %plan.checkpoint, root = %plan.root, tasks = plan.tasks.len(), invert_tasks = plan.anchor_tasks.len(), wanted = ?plan.classes.iter().map(|c| c.generate).collect::<Vec<_>>(), "generation planned");
            state.start_generation(*plan);
            let _ = reply.send(());
            true
        }
        Command::NeedsPlan(reply) => {
            let _ = reply.send(state.needs_generation_plan());
            false
        }
        Command::Fail(reason, reply) => {
            state.fail(reason);
            log_phase(state);
            let _ = reply.send(());
            true
        }
    }
}
