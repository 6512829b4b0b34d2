//! The gRPC `Coordinator` service: validate, convert, ask the state task, map errors.

use std::time::Duration;

use tonic::{Request, Response, Status};

use anygan_proto::v1;
use anygan_proto::v1::coordinator_server::{Coordinator, CoordinatorServer};

use crate::actor::{Command, StateHandle};

/// Largest request or response the coordinator handles; its messages are small, so anything
/// bigger is refused (OUT_OF_RANGE) before it is buffered.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Longest text a worker may send as a task's error or its reason for leaving.
const MAX_REASON_BYTES: usize = 16 * 1024;
/// How long a NextTask call waits for a free task before answering "nothing yet".
const NEXT_TASK_POLL: Duration = Duration::from_secs(10);

/// Serves the coordinator's RPCs for one job.
#[derive(Debug, Clone)]
pub struct CoordinatorService {
    state: StateHandle,
    job_spec_json: String,
    heartbeat_interval: Duration,
    incarnation: u64,
}

impl CoordinatorService {
    pub fn new(
        state: StateHandle,
        job_spec_json: String,
        heartbeat_interval: Duration,
        incarnation: u64,
    ) -> Self {
        Self {
            state,
            job_spec_json,
            heartbeat_interval,
            incarnation,
        }
    }

    pub fn into_server(self) -> CoordinatorServer<Self> {
        CoordinatorServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// A worker's free text (a task's error, a reason for leaving) longer than
/// [`MAX_REASON_BYTES`] is refused, naming `what` it is.
fn refuse_long_text(text: &str, what: &str) -> Result<(), Status> {
    if text.len() > MAX_REASON_BYTES {
        return Err(Status::invalid_argument(format!(
            "{what} longer than {} KiB",
            MAX_REASON_BYTES / 1024
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let request = request.into_inner();
        self.state
            .ask(|reply| Command::Register(request, reply))
            .await??;
        Ok(Response::new(v1::RegisterResponse {
            job_id: String::new(),
            job_spec_json: self.job_spec_json.clone(),
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u32,
            incarnation: self.incarnation,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            self.state
                .ask(|reply| Command::Heartbeat(request, reply))
                .await??,
        ))
    }

    /// Long-polls: answers as soon as training starts; the client's deadline bounds the wait.
    async fn get_assignment(
        &self,
        request: Request<v1::AssignmentRequest>,
    ) -> Result<Response<v1::Assignment>, Status> {
        let request = request.into_inner();
        let (worker_id, after) = (request.worker_id, request.after_generation);
        let mut changes = self.state.watch();
        loop {
            let id = worker_id.clone();
            if let Some(assignment) = self
                .state
                .ask(|reply| Command::Assignment(id, reply))
                .await??
                && assignment.generation > after
            {
                return Ok(Response::new(assignment));
            }
            let phase = changes.borrow_and_update().phase;
            if phase == v1::JobPhase::Failed as i32 || phase == v1::JobPhase::Done as i32 {
                return Err(Status::failed_precondition("the job is over"));
            }
            if changes.changed().await.is_err() {
                return Err(Status::unavailable("the coordinator is shutting down"));
            }
        }
    }

    async fn report_step(
        &self,
        request: Request<v1::StepReport>,
    ) -> Result<Response<v1::StepAck>, Status> {
        let report = request.into_inner();
        let proceed = self
            .state
            .ask(|reply| Command::ReportStep(report, reply))
            .await??;
        Ok(Response::new(v1::StepAck { proceed }))
    }

    /// Long-polls until a task is free or the work is over; the client's deadline bounds it.
    async fn next_task(
        &self,
        request: Request<v1::TaskRequest>,
    ) -> Result<Response<v1::TaskResponse>, Status> {
        let worker_id = request.into_inner().worker_id;
        let mut changes = self.state.watch();
        // Answer "nothing yet" before a client's deadline would cut the call.
        let give_up = tokio::time::sleep(NEXT_TASK_POLL);
        tokio::pin!(give_up);
        loop {
            // Mark the current status seen before asking, so a change published after the
            // answer wakes the wait below.
            changes.borrow_and_update();
            let id = worker_id.clone();
            if let Some(response) = self
                .state
                .ask(|reply| Command::NextTask(id, reply))
                .await??
            {
                return Ok(Response::new(response));
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() {
                    return Err(Status::unavailable("the coordinator is shutting down"));
                },
                _ = &mut give_up => return Ok(Response::new(v1::TaskResponse {
                    task: None,
                    finished: false,
                })),
            }
        }
    }

    async fn report_task(
        &self,
        request: Request<v1::TaskReport>,
    ) -> Result<Response<v1::TaskAck>, Status> {
        let report = request.into_inner();
        refuse_long_text(&report.error, "task error text")?;
        self.state
            .ask(|reply| Command::ReportTask(report, reply))
            .await??;
        Ok(Response::new(v1::TaskAck {}))
    }

    async fn leave(
        &self,
        request: Request<v1::LeaveRequest>,
    ) -> Result<Response<v1::LeaveAck>, Status> {
        let request = request.into_inner();
        refuse_long_text(&request.reason, "leave reason")?;
        self.state
            .ask(|reply| Command::Leave(request, reply))
            .await?;
        Ok(Response::new(v1::LeaveAck {}))
    }

    async fn get_status(
        &self,
        _request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::JobStatus>, Status> {
        Ok(Response::new(self.state.ask(Command::Status).await?))
    }
}
