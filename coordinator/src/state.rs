//! The job's state as plain data and the only legal transitions between its phases. No I/O and
//! no clocks of its own (the caller passes `now`), so every rule is unit-testable.
//!
//! ```text
//!   WaitingForWorkers ──(min reached, then max or grace elapsed)──▶ Training
//!          │                                                          │
//!          └──────────── worker lost / replicas diverged ──▶ Failed ◀─┤
//!                                                                     ▼
//!                                       every replica reported the last step ──▶ Done
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anygan_proto::job::JobSpec;
use anygan_proto::v1;

use crate::error::{Error, Result};
use crate::generation::Board;
use crate::recovery::ResumePoint;

mod generating;
mod membership;

pub use membership::{Departure, MembershipEvents};

/// A registered worker.
#[derive(Debug, Clone)]
pub struct Member {
    pub worker_id: String,
    pub collective_address: String,
    pub device: String,
    pub last_heartbeat: Instant,
    /// Steps this worker reports as completed.
    pub step: u64,
    /// Parameter checksums reported, by step.
    pub checksums: BTreeMap<u64, String>,
    /// The newest step report (timings, losses, traffic), for metrics.
    pub last_report: Option<v1::StepReport>,
}

/// Where the job is in its life.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Collecting workers; `min_reached_at` starts the grace period for more to join.
    WaitingForWorkers {
        min_reached_at: Option<Instant>,
    },
    /// Training with the members in rank order.
    Training,
    /// Too few workers remain to train; the survivors hold the state and wait for more.
    Paused {
        since: Instant,
    },
    /// Training is over (every replica reported the last step, or a generation-only job has
    /// its workers): generation tasks run. `board` is `None` until the plan is read from the
    /// store.
    Generating {
        replicas_identical: bool,
        board: Option<Box<Board>>,
    },
    /// Every replica reported the last step (and generation, if asked for, is complete).
    Done {
        replicas_identical: bool,
    },
    Failed {
        reason: String,
    },
}

/// Job state owned by the coordinator's state task.
#[derive(Debug)]
pub struct JobState {
    pub spec: JobSpec,
    pub heartbeat_timeout: Duration,
    /// How long to wait for more than `min_workers` before starting.
    pub start_grace: Duration,
    /// Members in rank order (registration order).
    pub members: Vec<Member>,
    pub phase: Phase,
    /// Membership generation: 0 before training, bumped whenever the ring is (re)formed.
    generation: u64,
    /// Seconds per step of rank 0, smoothed, for throughput.
    step_seconds: Option<f64>,
    /// The checkpoint training continues from; none for a fresh job.
    resume: Option<ResumePoint>,
    /// The generation board once every task is done, for the final status.
    finished_board: Option<Box<Board>>,
    /// The step the current generation's ring starts from when it was re-formed mid-training
    /// (None: the job's start step).
    reform_step: Option<u64>,
    /// Membership events, for logs and metrics.
    pub events: MembershipEvents,
    incarnation: u64,
    /// Workers admitted into a running ring that still fetch their state from rank 0.
    joining: std::collections::BTreeSet<String>,
    /// Steps every replica had completed when last looked at: what the job reports as done
    /// once no worker is left to ask (none: the start step).
    completed_when_last_seen: Option<u64>,
}

impl JobState {
    pub fn new(spec: JobSpec, heartbeat_timeout: Duration, start_grace: Duration) -> Result<Self> {
        spec.validate().map_err(Error::InvalidJob)?;
        Ok(Self {
            spec,
            heartbeat_timeout,
            start_grace,
            members: Vec::new(),
            phase: Phase::WaitingForWorkers {
                min_reached_at: None,
            },
            generation: 0,
            step_seconds: None,
            resume: None,
            finished_board: None,
            reform_step: None,
            events: MembershipEvents::default(),
            incarnation: 0,
            joining: std::collections::BTreeSet::new(),
            completed_when_last_seen: None,
        })
    }

    /// Membership generations of this coordinator start above `base`. A restarted
    /// coordinator passes a base derived from its start time, so its generations are above
    /// every generation of its predecessor and chunks or reports still in flight from the old
    /// rings are refused as stale, with nothing persisted.
    pub fn with_generation_base(mut self, base: u64) -> Self {
        self.generation = base;
        self
    }

    /// This coordinator process: generations start at `incarnation << 16`.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Marks this state as the coordinator process `incarnation` (its start in ms since the
    /// epoch); its generations then start above every earlier incarnation's.
    pub fn of_incarnation(self, incarnation: u64) -> Self {
        Self {
            incarnation,
            ..self.with_generation_base(incarnation << 16)
        }
    }

    /// Training starts from `resume`'s step, every replica restoring that checkpoint.
    pub fn resuming_from(mut self, resume: Option<ResumePoint>) -> Self {
        self.resume = resume;
        self
    }

    /// The step training starts from.
    pub fn start_step(&self) -> u64 {
        self.resume.as_ref().map_or(0, |r| r.step)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn member_mut(&mut self, worker_id: &str) -> Result<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.worker_id == worker_id)
            .ok_or_else(|| Error::UnknownWorker(worker_id.to_string()))
    }

    /// Admits a worker while the job is collecting workers.
    pub fn register(&mut self, request: &v1::RegisterRequest, now: Instant) -> Result<()> {
        if request.protocol_version != anygan_proto::PROTOCOL_VERSION {
            return Err(Error::ProtocolVersion {
                worker_id: request.worker_id.clone(),
                theirs: request.protocol_version,
                ours: anygan_proto::PROTOCOL_VERSION,
            });
        }
        if request.worker_id.is_empty() || request.worker_id.len() > 128 {
            return Err(Error::InvalidArgument {
                field: "worker_id",
                reason: "must be 1 to 128 characters".into(),
            });
        }
        if request
            .collective_address
            .parse::<std::net::SocketAddr>()
            .is_err()
            && !request.collective_address.contains(':')
        {
            return Err(Error::InvalidArgument {
                field: "collective_address",
                reason: format!("`{}` is not host:port", request.collective_address),
            });
        }
        if self
            .members
            .iter()
            .any(|m| m.worker_id == request.worker_id)
        {
            return Err(Error::DuplicateWorker(request.worker_id.clone()));
        }
        let mut joins_training = false;
        match self.phase {
            Phase::WaitingForWorkers { .. } | Phase::Generating { .. }
                if self.members.len() < self.spec.max_workers => {}
            // Elastic join: admitted into a re-formed ring at once, its state from rank 0.
            Phase::Training if self.members.len() < self.spec.max_workers => {
                let world = self.members.len() + 1;
                if let Err(reason) = self
                    .spec
                    .local_batch(world)
                    .and_then(|_| self.spec.plan_world(world))
                {
                    return Err(Error::JobFull(format!(
                        "a ring of {world} cannot take this worker: {reason}"
                    )));
                }
                joins_training = true;
            }
            Phase::Paused { .. } if self.members.len() < self.spec.max_workers => {
                joins_training = true;
            }
            Phase::WaitingForWorkers { .. } => {
                return Err(Error::JobFull(format!(
                    "{} of {} workers",
                    self.members.len(),
                    self.spec.max_workers
                )));
            }
            _ => return Err(Error::JobFull("training has started".into())),
        }
        self.members.push(Member {
            worker_id: request.worker_id.clone(),
            collective_address: request.collective_address.clone(),
            device: request.device.clone(),
            last_heartbeat: now,
            step: self.start_step(),
            checksums: BTreeMap::new(),
            last_report: None,
        });
        if joins_training {
            self.joining.insert(request.worker_id.clone());
            self.events.joins += 1;
            tracing::info!(worker_id = %request.worker_id, "worker joins the running job");
            if matches!(self.phase, Phase::Training) || self.usable_world().is_some() {
                self.reform(now);
            }
        }
        Ok(())
    }

    pub fn heartbeat(&mut self, worker_id: &str, now: Instant) -> Result<()> {
        self.member_mut(worker_id)?.last_heartbeat = now;
        Ok(())
    }

    /// Advances time-driven transitions: starting after the grace period, failing on a lost
    /// worker. Returns true when the phase changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        match &self.phase {
            Phase::WaitingForWorkers { .. } => self.tick_waiting(now),
            Phase::Training => {
                // A worker that finished its last step may exit; only the others must beat.
                let (lost, alive): (Vec<Member>, Vec<Member>) = std::mem::take(&mut self.members)
                    .into_iter()
                    .partition(|m| {
                        m.step < self.spec.steps
                            && now.duration_since(m.last_heartbeat) > self.heartbeat_timeout
                    });
                self.members = alive;
                if lost.is_empty() {
                    return false;
                }
                for member in &lost {
                    let silent = now.duration_since(member.last_heartbeat);
                    self.events.last_detection_seconds = silent.as_secs_f64();
                    tracing::warn!(worker_id = %member.worker_id, silent_ms = silent.as_millis() as u64, step = member.step, "worker lost");
                }
                self.events.workers_lost += lost.len() as u64;
                self.reform(now);
                true
            }
            Phase::Paused { .. } => {
                let before = self.members.len();
                self.members
                    .retain(|m| now.duration_since(m.last_heartbeat) <= self.heartbeat_timeout);
                let lost = before - self.members.len();
                if lost == 0 {
                    return false;
                }
                self.events.workers_lost += lost as u64;
                // Still paused (or failed, when nobody holds the state any more).
                self.reform(now);
                true
            }
            Phase::Generating { .. } => self.tick_generating(now),
            Phase::Done { .. } | Phase::Failed { .. } => false,
        }
    }

    /// The assignment of `worker_id`, once training has started.
    pub fn assignment(&self, worker_id: &str) -> Result<Option<v1::Assignment>> {
        let Some(rank) = self.members.iter().position(|m| m.worker_id == worker_id) else {
            return Err(Error::UnknownWorker(worker_id.to_string()));
        };
        let Phase::Training = self.phase else {
            return Ok(None);
        };
        let generation = self.generation;
        Ok(Some(v1::Assignment {
            generation,
            rank: rank as u32,
            world_size: self.members.len() as u32,
            peers: self
                .members
                .iter()
                .enumerate()
                .map(|(rank, m)| v1::Peer {
                    worker_id: m.worker_id.clone(),
                    rank: rank as u32,
                    collective_address: m.collective_address.clone(),
                })
                .collect(),
            shard_seed: self.spec.seed,
            start_step: self.reform_step.unwrap_or(self.start_step()),
            state_source: if self.joining.contains(worker_id) {
                self.members
                    .first()
                    .map(|m| m.collective_address.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            },
            resume_checkpoint: self
                .resume
                .as_ref()
                .map(|r| r.prefix.clone())
                .unwrap_or_default(),
        }))
    }

    /// Records a completed step; fails the job when two replicas disagree on a checksum.
    /// Returns whether the worker should go on.
    pub fn report_step(&mut self, report: &v1::StepReport, now: Instant) -> Result<bool> {
        let current = self.generation();
        if report.generation != current {
            return Err(Error::StaleGeneration {
                worker_id: report.worker_id.clone(),
                theirs: report.generation,
                current,
            });
        }
        if report.step > self.spec.steps {
            return Err(Error::InvalidArgument {
                field: "step",
                reason: format!(
                    "{} is past the job's {} steps",
                    report.step, self.spec.steps
                ),
            });
        }
        let rank = self
            .members
            .iter()
            .position(|m| m.worker_id == report.worker_id);
        let member = self.member_mut(&report.worker_id)?;
        member.step = report.step;
        member.last_heartbeat = now;
        member.last_report = Some(v1::StepReport {
            parameter_checksum: String::new(),
            ..report.clone()
        });

        if !report.parameter_checksum.is_empty() {
            member
                .checksums
                .insert(report.step, report.parameter_checksum.clone());
        }
        self.joining.remove(&report.worker_id);
        self.completed_when_last_seen = Some(self.completed_steps());
        if let Some((since, step)) = self.events.recovering
            && self.members.iter().all(|m| m.step > step)
        {
            let seconds = now.duration_since(since).as_secs_f64();
            self.events.last_recovery_seconds = seconds;
            self.events.recovering = None;
            tracing::info!(
                generation = current,
                step = step + 1,
                recovery_ms = (seconds * 1e3) as u64,
                detection_ms = (self.events.last_detection_seconds * 1e3) as u64,
                "recovered: every survivor completed a step in the re-formed ring"
            );
        }
        if rank == Some(0) && report.step_seconds > 0.0 {
            let previous = self.step_seconds.unwrap_or(report.step_seconds);
            self.step_seconds = Some(0.9 * previous + 0.1 * report.step_seconds);
        }
        if let Some(diverged) = self.diverged_step() {
            self.phase = Phase::Failed {
                reason: format!("replicas hold different parameters after step {diverged}"),
            };
        } else if self
            .members
            .iter()
            .all(|m| m.checksums.contains_key(&self.spec.steps))
        {
            self.phase = if self.spec.generation.is_some() {
                Phase::Generating {
                    replicas_identical: true,
                    board: None,
                }
            } else {
                Phase::Done {
                    replicas_identical: true,
                }
            };
        }
        Ok(
            matches!(self.phase, Phase::Training) && report.step < self.spec.steps
                || matches!(self.phase, Phase::Done { .. } | Phase::Generating { .. }),
        )
    }

    /// Steps every replica has completed: the slowest member's, or with no members left the
    /// last value seen.
    pub fn completed_steps(&self) -> u64 {
        self.members
            .iter()
            .map(|m| m.step)
            .min()
            .or(self.completed_when_last_seen)
            .unwrap_or(self.start_step())
    }

    /// The first step at which two replicas reported different checksums.
    fn diverged_step(&self) -> Option<u64> {
        let first = self.members.first()?;
        first.checksums.iter().find_map(|(step, checksum)| {
            self.members
                .iter()
                .filter_map(|m| m.checksums.get(step))
                .any(|other| other != checksum)
                .then_some(*step)
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done { .. } | Phase::Failed { .. })
    }

    pub fn phase_code(&self) -> v1::JobPhase {
        match self.phase {
            Phase::WaitingForWorkers { .. } => v1::JobPhase::WaitingForWorkers,
            Phase::Training => v1::JobPhase::Training,
            Phase::Paused { .. } => v1::JobPhase::Paused,
            Phase::Generating { .. } => v1::JobPhase::Generating,
            Phase::Done { .. } => v1::JobPhase::Done,
            Phase::Failed { .. } => v1::JobPhase::Failed,
        }
    }

    pub fn status(&self) -> v1::JobStatus {
        let (replicas_identical, failure) = match &self.phase {
            Phase::Done { replicas_identical }
            | Phase::Generating {
                replicas_identical, ..
            } => (Some(*replicas_identical), String::new()),
            Phase::Failed { reason } => (None, reason.clone()),
            _ => (None, String::new()),
        };
        let board = match &self.phase {
            Phase::Generating {
                board: Some(board), ..
            } => Some(board),
            _ => self.finished_board.as_ref(),
        };
        v1::JobStatus {
            incarnation: self.incarnation,
            generation_progress: board.map(|b| b.progress()).unwrap_or_default(),
            generation_root: board.map(|b| b.plan().root.clone()).unwrap_or_default(),
            job_id: self.spec.job_id.clone(),
            phase: self.phase_code() as i32,
            generation: self.generation(),
            target_steps: self.spec.steps,
            start_step: self.start_step(),
            resumed_checkpoint: self
                .resume
                .as_ref()
                .map(|r| r.prefix.clone())
                .unwrap_or_default(),
            completed_steps: self.completed_steps(),
            workers: self
                .members
                .iter()
                .enumerate()
                .map(|(rank, m)| v1::WorkerStatus {
                    worker_id: m.worker_id.clone(),
                    rank: rank as u32,
                    step: m.step,
                    device: m.device.clone(),
                    final_checksum: m
                        .checksums
                        .get(&self.spec.steps)
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
            replicas_identical,
            failure,
            images_per_second: self
                .step_seconds
                .map(|s| self.spec.global_batch as f64 / s)
                .unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests;
