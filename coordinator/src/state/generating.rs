//! The generation phase of the job state: the task board's life inside [`JobState`] — waiting
//! for the plan, handing out tasks, taking reports, releasing a lost worker's tasks.

use std::time::Instant;

use anygan_proto::v1;

use super::{JobState, Phase};
use crate::error::{Error, Result};
use crate::generation::{Board, Next};

impl JobState {
    /// The clock-driven part of the generation phase: a silent worker's tasks go back to the
    /// queue; with every worker silent and work left, the job fails. Returns whether anything
    /// changed.
    pub(super) fn tick_generating(&mut self, now: Instant) -> bool {
        let Phase::Generating { board, .. } = &self.phase else {
            return false;
        };
        let timeout = self.heartbeat_timeout;
        let lost: Vec<String> = board
            .as_ref()
            .map(|b| b.holders())
            .unwrap_or_default()
            .into_iter()
            .filter(|holder| {
                self.members.iter().any(|m| {
                    m.worker_id == *holder && now.duration_since(m.last_heartbeat) > timeout
                })
            })
            .collect();
        let all_silent = !self.members.is_empty()
            && self
                .members
                .iter()
                .all(|m| now.duration_since(m.last_heartbeat) > timeout);
        let Phase::Generating { board, .. } = &mut self.phase else {
            return false;
        };
        let Some(board) = board else {
            return false;
        };
        let mut changed = false;
        for worker_id in lost {
            let released = board.release(&worker_id);
            tracing::warn!(%worker_id, tasks = ?released, "worker lost during generation; its tasks go to others");
            changed = true;
        }
        if all_silent && !board.finished() {
            self.phase = Phase::Failed {
                reason: self.events.failure_naming_departures(format!(
                    "no worker sent a heartbeat for {timeout:?}; generation cannot go on"
                )),
            };
            return true;
        }
        changed
    }

    /// After a worker left during generation: its tasks go to the others; with nobody left and
    /// work to do, the job fails naming who stopped and why.
    pub(super) fn release_tasks_of_departed(&mut self, worker_id: &str) {
        let Phase::Generating { board, .. } = &mut self.phase else {
            return;
        };
        let unfinished = match board {
            Some(board) => {
                let released = board.release(worker_id);
                tracing::warn!(%worker_id, tasks = ?released, "worker left during generation; its tasks go to others");
                !board.finished()
            }
            None => true,
        };
        if self.members.is_empty() && unfinished {
            self.phase = Phase::Failed {
                reason: self.events.failure_naming_departures(
                    "every worker left; generation cannot go on".to_string(),
                ),
            };
        }
    }

    /// Whether generation waits for its plan (the supervisor reads it from the store).
    pub fn needs_generation_plan(&self) -> bool {
        matches!(self.phase, Phase::Generating { board: None, .. })
    }

    /// Starts handing out the plan's tasks.
    pub fn start_generation(&mut self, plan: anygan_proto::generation::GenerationPlan) {
        if let Phase::Generating { board, .. } = &mut self.phase {
            *board = Some(Box::new(Board::new(plan)));
        }
    }

    /// Fails the job (e.g. the generation plan cannot be made).
    pub fn fail(&mut self, reason: String) {
        if !self.is_finished() {
            self.phase = Phase::Failed { reason };
        }
    }

    /// The next task for `worker_id`: `None` to wait for a change, a response otherwise.
    pub fn next_task(&mut self, worker_id: &str, now: Instant) -> Result<Option<v1::TaskResponse>> {
        let member = self.member_mut(worker_id)?;
        member.last_heartbeat = now;
        let finished = v1::TaskResponse {
            task: None,
            finished: true,
        };
        match &mut self.phase {
            Phase::Generating {
                board: Some(board), ..
            } => Ok(match board.next(worker_id, now) {
                Next::Task(task) => Some(*task),
                Next::Wait => None,
                Next::Finished => Some(finished),
            }),
            Phase::Generating { board: None, .. }
            | Phase::WaitingForWorkers { .. }
            | Phase::Training
            | Phase::Paused { .. } => Ok(None),
            Phase::Done { .. } | Phase::Failed { .. } => Ok(Some(finished)),
        }
    }

    /// Records a task's outcome; the job is done when the last task is.
    pub fn report_task(&mut self, report: &v1::TaskReport, now: Instant) -> Result<()> {
        self.member_mut(&report.worker_id)?.last_heartbeat = now;
        let Phase::Generating {
            board: Some(board),
            replicas_identical,
        } = &mut self.phase
        else {
            return Err(Error::InvalidArgument {
                field: "task_id",
                reason: "no generation is running".into(),
            });
        };
        let replicas_identical = *replicas_identical;
        if let Err(reason) = board.report(report) {
            self.phase = Phase::Failed { reason };
        } else if board.finished() {
            // Keep the board: the final status still shows the per-class counts.
            if let Phase::Generating { board, .. } =
                std::mem::replace(&mut self.phase, Phase::Done { replicas_identical })
            {
                self.finished_board = board;
            }
        }
        Ok(())
    }
}
