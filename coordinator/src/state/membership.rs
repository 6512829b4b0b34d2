//! Membership changes while training: re-forming the ring after a loss or a join, pausing
//! below the minimum, and the events counted for logs and metrics.

use std::collections::VecDeque;
use std::time::Instant;

use super::{JobState, Phase};

/// Departures a failure message names: the newest few, each reason cut to a readable length.
const DEPARTURES_KEPT: usize = 4;
const DEPARTURE_REASON_BYTES: usize = 2048;

/// A worker that stopped and said why (the Leave call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub worker_id: String,
    pub reason: String,
}

/// Counts and timings of membership changes.
#[derive(Debug, Default, Clone)]
pub struct MembershipEvents {
    pub workers_lost: u64,
    /// Workers that said they stop (not counted in `workers_lost`, which the timeout declares).
    pub workers_left: u64,
    /// The newest departures, oldest first, for failure messages.
    pub departures: VecDeque<Departure>,
    /// Workers admitted into a running job.
    pub joins: u64,
    /// Workers dropped from a re-formed ring because the global batch does not divide among
    /// all survivors.
    pub workers_dropped: u64,
    pub reforms: u64,
    /// Silence of the last lost worker when it was declared lost.
    pub last_detection_seconds: f64,
    /// From declaring a worker lost to every survivor completing a step in the new ring.
    pub last_recovery_seconds: f64,
    /// The re-formed ring not yet recovered: since when, and its step.
    pub recovering: Option<(Instant, u64)>,
}

impl MembershipEvents {
    fn record_departure(&mut self, worker_id: &str, reason: &str) {
        self.workers_left += 1;
        if self.departures.len() == DEPARTURES_KEPT {
            self.departures.pop_front();
        }
        self.departures.push_back(Departure {
            worker_id: worker_id.to_string(),
            reason: anygan_proto::error_text::truncated(reason, DEPARTURE_REASON_BYTES),
        });
    }

    /// `reason`, followed by the workers that stopped and why, if any did: a job that fails for
    /// want of workers says what became of them.
    pub(super) fn failure_naming_departures(&self, reason: String) -> String {
        if self.departures.is_empty() {
            return reason;
        }
        let stopped: Vec<String> = self
            .departures
            .iter()
            .map(|d| format!("{} stopped: {}", d.worker_id, d.reason))
            .collect();
        format!("{reason}. {}", stopped.join("; "))
    }
}

impl JobState {
    /// A worker stopping and saying why (the Leave call): dropped at once, as a lost worker is
    /// after the heartbeat timeout, and remembered for the failure message should the job fail
    /// for want of workers. Unknown workers (already dropped, or never here) change nothing.
    /// Returns whether the published status changed.
    pub fn leave(&mut self, worker_id: &str, reason: &str, now: Instant) -> bool {
        let Some(at) = self.members.iter().position(|m| m.worker_id == worker_id) else {
            return false;
        };
        match self.phase {
            Phase::Done { .. } | Phase::Failed { .. } => return false,
            // A replica that completed the last step has done its part; its final checksum still
            // counts, as when it exits silently (see `tick`).
            Phase::Training if self.members[at].step >= self.spec.steps => return false,
            _ => {}
        }
        let departed = self.members.remove(at);
        self.events.record_departure(worker_id, reason);
        match self.phase {
            Phase::WaitingForWorkers { .. } => {
                if self.members.len() < self.spec.min_workers {
                    // The grace period starts again when the minimum is reached again.
                    self.phase = Phase::WaitingForWorkers {
                        min_reached_at: None,
                    };
                }
            }
            Phase::Training | Phase::Paused { .. } => {
                // What a timeout would have waited for is the silence it left behind.
                let silence = now.duration_since(departed.last_heartbeat);
                self.events.last_detection_seconds = silence.as_secs_f64();
                self.joining.remove(worker_id);
                self.reform(now);
            }
            Phase::Generating { .. } => self.release_tasks_of_departed(worker_id),
            Phase::Done { .. } | Phase::Failed { .. } => {}
        }
        true
    }

    /// The clock-driven part of waiting for workers: silent ones are dropped (a worker that died
    /// before it could say so must not be given a rank), and once the minimum is in, training
    /// (or generation) starts when the job is full or the grace period is over. Returns whether
    /// the published status changed.
    pub(super) fn tick_waiting(&mut self, now: Instant) -> bool {
        let timeout = self.heartbeat_timeout;
        let before = self.members.len();
        self.members.retain(|m| {
            let silent = now.duration_since(m.last_heartbeat);
            let alive = silent <= timeout;
            if !alive {
                tracing::warn!(worker_id = %m.worker_id, silent_ms = silent.as_millis() as u64, "worker lost before the job started");
            }
            alive
        });
        let lost = before - self.members.len();
        self.events.workers_lost += lost as u64;
        let Phase::WaitingForWorkers { min_reached_at } = self.phase else {
            return lost > 0;
        };
        if self.members.len() < self.spec.min_workers {
            // The grace period starts again when the minimum is reached again.
            self.phase = Phase::WaitingForWorkers {
                min_reached_at: None,
            };
            return lost > 0;
        }
        let reached = min_reached_at.unwrap_or(now);
        if self.members.len() < self.spec.max_workers
            && now.duration_since(reached) < self.start_grace
        {
            self.phase = Phase::WaitingForWorkers {
                min_reached_at: Some(reached),
            };
            return lost > 0;
        }
        if self.spec.generate_from.is_some() {
            // Nothing to train: no ranks, no replicas to disagree.
            self.phase = Phase::Generating {
                replicas_identical: true,
                board: None,
            };
            return true;
        }
        // Every worker's share of the batch and of the shard plan must be whole; starting
        // anyway would only fail later, on every worker at once.
        let world = self.members.len();
        if let Err(reason) = self
            .spec
            .local_batch(world)
            .and_then(|_| self.spec.plan_world(world))
        {
            self.phase = Phase::Failed { reason };
            return true;
        }
        self.generation += 1;
        self.phase = Phase::Training;
        true
    }

    /// Every worker process the coordinator started itself has exited: if the job still waits
    /// for workers and has none, nobody else is coming, and it fails naming who stopped.
    pub fn local_workers_gone(&mut self) {
        if matches!(self.phase, Phase::WaitingForWorkers { .. }) && self.members.is_empty() {
            self.phase = Phase::Failed {
                reason: self.events.failure_naming_departures(
                    "every local worker exited before the job could start".to_string(),
                ),
            };
        }
    }

    /// The largest ring of at least `min_workers` the members can form that the global batch
    /// splits among.
    pub(super) fn usable_world(&self) -> Option<usize> {
        let members = self.members.len();
        (self.spec.min_workers.max(1)..=members).rev().find(|&n| {
            self.spec
                .local_batch(n)
                .and_then(|_| self.spec.plan_world(n))
                .is_ok()
        })
    }

    /// Members that hold the training state (not still joining).
    fn holders(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !self.joining.contains(&m.worker_id))
            .count()
    }

    /// After a loss or a join: the members continue in a new ring (a new generation) from the
    /// lowest step any holder of the state completed; with too few to train the job pauses,
    /// and with nobody holding the state it fails.
    pub(super) fn reform(&mut self, now: Instant) {
        let survivors = self.members.len();
        let Some(world) = self.usable_world() else {
            if self.holders() == 0 {
                self.phase = Phase::Failed {
                    reason: self.events.failure_naming_departures(format!(
                        "{survivors} worker(s) remain and none holds the training state; start the job again to resume from the newest checkpoint"
                    )),
                };
                return;
            }
            if !matches!(self.phase, Phase::Paused { .. }) {
                tracing::warn!(
                    workers = survivors,
                    min_workers = self.spec.min_workers,
                    global_batch = self.spec.global_batch,
                    "paused: too few workers to train; waiting for more"
                );
                self.phase = Phase::Paused { since: now };
            }
            return;
        };
        for dropped in self.members.split_off(world) {
            // The global batch does not split among all survivors; this one leaves the ring.
            tracing::warn!(worker_id = %dropped.worker_id, world, "not part of the re-formed ring");
            self.events.workers_dropped += 1;
        }
        let step = self
            .members
            .iter()
            .filter(|m| !self.joining.contains(&m.worker_id))
            .map(|m| m.step)
            .min()
            .unwrap_or(self.start_step());
        for member in &mut self.members {
            member.step = step;
            // Checksums past the agreed step belong to steps that will be run again.
            member.checksums.retain(|&s, _| s <= step);
            // Survivors get a fresh timeout while they re-form.
            member.last_heartbeat = now;
        }
        self.generation += 1;
        self.reform_step = Some(step);
        self.events.reforms += 1;
        if let Phase::Paused { since } = self.phase {
            tracing::info!(
                paused_ms = now.duration_since(since).as_millis() as u64,
                "resumed"
            );
        }
        self.phase = Phase::Training;
        self.events.recovering = Some((now, step));
        tracing::info!(
            generation = self.generation,
            world_size = world,
            step,
            workers = ?self.members.iter().map(|m| m.worker_id.as_str()).collect::<Vec<_>>(),
            "ring re-formed"
        );
    }
}
