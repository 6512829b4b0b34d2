//! Membership changes while training: re-forming the ring after a loss or a join, pausing
//! below the minimum, and the events counted for logs and metrics.

use std::time::Instant;

use super::{JobState, Phase};

/// Counts and timings of membership changes.
#[derive(Debug, Default, Clone)]
pub struct MembershipEvents {
    pub workers_lost: u64,
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

impl JobState {
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
                    reason: format!(
                        "{survivors} worker(s) remain and none holds the training state; start the job again to resume from the newest checkpoint"
                    ),
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
