//! The worker processes a coordinator starts itself (`--local-workers`): nobody else restarts
//! them, so the coordinator watches them.

use tokio::process::Child;
use tokio::task::JoinSet;

use anygan_proto::v1;

use crate::actor::{Command, StateHandle};

/// One worker process this coordinator started.
#[derive(Debug)]
pub struct LocalWorker {
    pub worker_id: String,
    pub child: Child,
}

/// Waits for every local worker to exit; returns whether all exited successfully. A worker that
/// exits with a failure is dropped from the job at once, as if it had left (a crash needs no
/// heartbeat timeout to be noticed; one that said why before exiting is already gone). When all
/// have exited while the job still waits for workers, nobody else is coming: the job fails,
/// naming them.
pub(crate) async fn watch(state: StateHandle, workers: Vec<LocalWorker>, incarnation: u64) -> bool {
    if workers.is_empty() {
        return true;
    }
    let mut exits = JoinSet::new();
    for LocalWorker {
        worker_id,
        mut child,
    } in workers
    {
        exits.spawn(async move { (worker_id, child.wait().await) });
    }
    let mut all_succeeded = true;
    while let Some(exit) = exits.join_next().await {
        let Ok((worker_id, status)) = exit else {
            all_succeeded = false;
            continue;
        };
        let failure = match status {
            Ok(status) if status.success() => continue,
            Ok(status) => format!("its process exited ({status})"),
            Err(error) => format!("its process cannot be waited for: {error}"),
        };
        all_succeeded = false;
        tracing::warn!(%worker_id, %failure, "local worker exited");
        let leave = v1::LeaveRequest {
            worker_id,
            incarnation,
            reason: failure,
        };
        if state
            .ask(|reply| Command::Leave(leave, reply))
            .await
            .is_err()
        {
            return false; // the coordinator is shutting down
        }
    }
    let _ = state.ask(Command::LocalWorkersGone).await;
    all_succeeded
}
