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
/// naming them. Once `stop` turns true (the coordinator stops before the job is over) the ones
/// still running are killed: nobody would serve them, and what they committed is safe (a
/// checkpoint commit is atomic).
pub(crate) async fn watch(
    state: StateHandle,
    workers: Vec<LocalWorker>,
    incarnation: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    if workers.is_empty() {
        return true;
    }
    let mut exits = JoinSet::new();
    for LocalWorker {
        worker_id,
        mut child,
    } in workers
    {
        let mut stop = stop.clone();
        exits.spawn(async move {
            let stopped = async move {
                // Only a stop sent kills; a sender gone without one leaves the exit to wait for.
                // (The guard `wait_for` returns is not Send: dropped within the condition.)
                if stop.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                status = child.wait() => (worker_id, status, false),
                () = stopped => {
                    let _ = child.start_kill();
                    (worker_id, child.wait().await, true)
                }
            }
        });
    }
    let mut all_succeeded = true;
    while let Some(exit) = exits.join_next().await {
        let Ok((worker_id, status, killed)) = exit else {
            all_succeeded = false;
            continue;
        };
        let failure = match status {
            Ok(status) if status.success() => continue,
            Ok(_) if killed => "stopped with the coordinator before the job was over".to_string(),
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
