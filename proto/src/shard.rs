//! The shard plan: which records each rank trains on in each epoch. A pure function of
//! (labels, seed, epoch, world size), computed alike by every worker, so the coordinator only
//! publishes its parameters.
//!
//! Per epoch, every class's records are shuffled, the classes are laid end to end and the
//! sequence is dealt round-robin to the ranks. So every shard holds each class in proportion
//! (within one record), shard sizes differ by at most one, and the shards of an epoch cover the
//! dataset exactly once. Each shard is then shuffled on its own, so batches mix classes.
//!
//! With [`Sampling::ClassBalanced`] an epoch instead takes as many records of every class as the
//! largest class has: a rare class's records are cycled, reshuffled on every pass. The
//! discriminator then sees every class equally often, which is what lets the generator learn a
//! class it has 40 real examples of (BAGAN's observation); the dealing is the same.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::rng::{Purpose, stream};

/// Which records an epoch visits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Every record once.
    #[default]
    AsIs,
    /// Every class as often as the largest one (rare classes' records repeat).
    ClassBalanced,
}

fn records_by_class(labels: &[u16]) -> Vec<Vec<usize>> {
    let num_classes = labels
        .iter()
        .map(|&l| usize::from(l) + 1)
        .max()
        .unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[usize::from(label)].push(index);
    }
    by_class
}

/// Records one epoch visits (over all ranks).
pub fn epoch_records(labels: &[u16], sampling: Sampling) -> usize {
    match sampling {
        Sampling::AsIs => labels.len(),
        Sampling::ClassBalanced => {
            let by_class = records_by_class(labels);
            let largest = by_class.iter().map(Vec::len).max().unwrap_or(0);
            largest
                * by_class
                    .iter()
                    .filter(|members| !members.is_empty())
                    .count()
        }
    }
}

/// `class`'s records in `epoch`, shuffled; under class-balanced sampling cycled (each pass
/// shuffled anew) up to `largest` records.
fn class_sequence(
    members: &[usize],
    sampling: Sampling,
    largest: usize,
    seed: u64,
    epoch: u64,
    class: usize,
) -> Vec<usize> {
    let mut first_pass = members.to_vec();
    first_pass.shuffle(&mut stream(seed, Purpose::ShardDeal, epoch, class as u64));
    if sampling == Sampling::AsIs || members.is_empty() {
        return first_pass;
    }
    let mut sequence = first_pass;
    let mut pass = 1u64;
    while sequence.len() < largest {
        let mut again = members.to_vec();
        // Passes after the first get their own streams: (epoch, class) keys the first.
        again.shuffle(&mut stream(
            seed,
            Purpose::BalancedPass,
            epoch,
            ((class as u64) << 32) | pass,
        ));
        sequence.extend(again);
        pass += 1;
    }
    sequence.truncate(largest);
    sequence
}

/// Record indices of `rank`'s shard in `epoch`, in the order the rank visits them.
pub fn shard_for_epoch(
    labels: &[u16],
    sampling: Sampling,
    seed: u64,
    epoch: u64,
    world_size: usize,
    rank: usize,
) -> Vec<usize> {
    let world_size = world_size.max(1);
    let by_class = records_by_class(labels);
    let largest = by_class.iter().map(Vec::len).max().unwrap_or(0);
    let mut shard = Vec::with_capacity(epoch_records(labels, sampling) / world_size + 1);
    let mut position = 0usize;
    for (class, members) in by_class.iter().enumerate() {
        for record in class_sequence(members, sampling, largest, seed, epoch, class) {
            if position % world_size == rank {
                shard.push(record);
            }
            position += 1;
        }
    }
    shard.shuffle(&mut stream(seed, Purpose::ShardOrder, epoch, rank as u64));
    shard
}

/// Steps per epoch when every rank takes `local_batch` records per step: bounded by the
/// smallest shard, so all ranks step together.
pub fn steps_per_epoch(records: usize, world_size: usize, local_batch: usize) -> u64 {
    if local_batch == 0 || world_size == 0 {
        return 0;
    }
    ((records / world_size) / local_batch) as u64
}

/// Records `rank` trains on at global step `step`.
pub fn batch_for_step(
    labels: &[u16],
    sampling: Sampling,
    seed: u64,
    world_size: usize,
    rank: usize,
    local_batch: usize,
    step: u64,
) -> Option<Vec<usize>> {
    let per_epoch = steps_per_epoch(epoch_records(labels, sampling), world_size, local_batch);
    if per_epoch == 0 {
        return None;
    }
    let epoch = step / per_epoch;
    let start = (step % per_epoch) as usize * local_batch;
    let shard = shard_for_epoch(labels, sampling, seed, epoch, world_size, rank);
    Some(shard[start..start + local_batch].to_vec())
}

/// The batches of one replica, step after step, when the plan is laid out for `plan_world`
/// ranks and the job runs `world_size` replicas (`plan_world` a multiple of `world_size`):
/// replica `rank` takes plan ranks `rank * k .. (rank + 1) * k` (k = plan_world / world_size),
/// concatenated. With `plan_world == world_size` a batch is [`batch_for_step`]'s; with a larger
/// plan, fewer replicas replay exactly the global batches of a bigger run. The shards are
/// computed once per epoch, not once per step.
#[derive(Debug, Clone)]
pub struct ReplicaBatches<'a> {
    labels: &'a [u16],
    sampling: Sampling,
    seed: u64,
    plan_world: usize,
    plan_ranks: std::ops::Range<usize>,
    plan_batch: usize,
    steps_per_epoch: u64,
    /// The epoch whose shards (one per plan rank of this replica) are held.
    cached: Option<(u64, Vec<Vec<usize>>)>,
}

impl<'a> ReplicaBatches<'a> {
    /// None when the plan cannot be split that way or the data cannot fill one step.
    pub fn new(
        labels: &'a [u16],
        sampling: Sampling,
        seed: u64,
        plan_world: usize,
        world_size: usize,
        rank: usize,
        global_batch: usize,
    ) -> Option<Self> {
        if world_size == 0
            || !plan_world.is_multiple_of(world_size)
            || !global_batch.is_multiple_of(plan_world)
        {
            return None;
        }
        let per_replica = plan_world / world_size;
        let plan_batch = global_batch / plan_world;
        let steps_per_epoch =
            steps_per_epoch(epoch_records(labels, sampling), plan_world, plan_batch);
        if steps_per_epoch == 0 {
            return None;
        }
        Some(Self {
            labels,
            sampling,
            seed,
            plan_world,
            plan_ranks: rank * per_replica..(rank + 1) * per_replica,
            plan_batch,
            steps_per_epoch,
            cached: None,
        })
    }

    /// Steps in one epoch of the plan (the same for every replica).
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Records this replica trains on at `step`.
    pub fn batch(&mut self, step: u64) -> Vec<usize> {
        let epoch = step / self.steps_per_epoch;
        if self
            .cached
            .as_ref()
            .is_none_or(|(cached, _)| *cached != epoch)
        {
            let shards = self
                .plan_ranks
                .clone()
                .map(|plan_rank| {
                    shard_for_epoch(
                        self.labels,
                        self.sampling,
                        self.seed,
                        epoch,
                        self.plan_world,
                        plan_rank,
                    )
                })
                .collect();
            self.cached = Some((epoch, shards));
        }
        let start = (step % self.steps_per_epoch) as usize * self.plan_batch;
        self.cached
            .as_ref()
            .map(|(_, shards)| {
                shards
                    .iter()
                    .flat_map(|shard| shard[start..start + self.plan_batch].iter().copied())
                    .collect()
            })
            .unwrap_or_default() // filled just above
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AS_IS: Sampling = Sampling::AsIs;

    /// One step's records of one replica; see [`ReplicaBatches`].
    #[allow(clippy::too_many_arguments)] // each is one coordinate of the plan
    fn replica_batch(
        labels: &[u16],
        sampling: Sampling,
        seed: u64,
        plan_world: usize,
        world_size: usize,
        rank: usize,
        global_batch: usize,
        step: u64,
    ) -> Option<Vec<usize>> {
        ReplicaBatches::new(
            labels,
            sampling,
            seed,
            plan_world,
            world_size,
            rank,
            global_batch,
        )
        .map(|mut b| b.batch(step))
    }

    fn labels_strategy() -> impl Strategy<Value = Vec<u16>> {
        prop::collection::vec(0u16..12, 0..400)
    }

    proptest! {
        #[test]
        fn shards_cover_the_dataset_exactly(labels in labels_strategy(), seed in any::<u64>(), epoch in 0u64..5, world in 1usize..7) {
            let mut all: Vec<usize> = (0..world).flat_map(|r| shard_for_epoch(&labels, AS_IS, seed, epoch, world, r)).collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        }

        #[test]
        fn every_shard_holds_each_class_in_proportion(labels in labels_strategy(), seed in any::<u64>(), world in 1usize..7) {
            let classes = labels.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0);
            let mut sizes = Vec::new();
            for rank in 0..world {
                let shard = shard_for_epoch(&labels, AS_IS, seed, 0, world, rank);
                sizes.push(shard.len());
                for class in 0..classes {
                    let total = labels.iter().filter(|&&l| usize::from(l) == class).count();
                    let mine = shard.iter().filter(|&&i| usize::from(labels[i]) == class).count();
                    // total / world, rounded either way
                    prop_assert!(mine * world + world > total && mine * world < total + world,
                        "class {} has {} of {} on rank {} of {}", class, mine, total, rank, world);
                }
            }
            prop_assert!(sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0) <= 1);
        }

        #[test]
        fn plan_is_deterministic(labels in labels_strategy(), seed in any::<u64>(), world in 1usize..5) {
            for rank in 0..world {
                prop_assert_eq!(shard_for_epoch(&labels, AS_IS, seed, 1, world, rank), shard_for_epoch(&labels, AS_IS, seed, 1, world, rank));
            }
        }
    }

    #[test]
    fn rare_class_is_spread_over_workers_and_epochs_reshuffle() {
        // 40 records of class 9 among 9,000 over 4 workers: 10 each.
        let mut labels = vec![0u16; 8960];
        labels.extend(std::iter::repeat_n(9u16, 40));
        for rank in 0..4 {
            let shard = shard_for_epoch(&labels, AS_IS, 3, 0, 4, rank);
            assert_eq!(shard.iter().filter(|&&i| labels[i] == 9).count(), 10);
        }
        assert_ne!(
            shard_for_epoch(&labels, AS_IS, 3, 0, 4, 0),
            shard_for_epoch(&labels, AS_IS, 3, 1, 4, 0)
        );
        assert_ne!(
            shard_for_epoch(&labels, AS_IS, 3, 0, 4, 0),
            shard_for_epoch(&labels, AS_IS, 4, 0, 4, 0)
        );
    }

    #[test]
    fn batches_step_through_the_shard() {
        let labels: Vec<u16> = (0..20).map(|i| (i % 2) as u16).collect();
        assert_eq!(steps_per_epoch(20, 2, 3), 3);
        let shard = shard_for_epoch(&labels, AS_IS, 0, 0, 2, 1);
        assert_eq!(
            batch_for_step(&labels, AS_IS, 0, 2, 1, 3, 1).expect("batch"),
            shard[3..6].to_vec()
        );
        let next_epoch = shard_for_epoch(&labels, AS_IS, 0, 1, 2, 1);
        assert_eq!(
            batch_for_step(&labels, AS_IS, 0, 2, 1, 3, 3).expect("batch"),
            next_epoch[0..3].to_vec()
        );
        assert_eq!(batch_for_step(&labels, AS_IS, 0, 2, 1, 30, 0), None);
    }

    #[test]
    fn cached_batches_agree_with_the_plan_across_epochs() {
        let labels: Vec<u16> = (0..30).map(|i| (i % 4) as u16).collect();
        let mut batches = ReplicaBatches::new(&labels, AS_IS, 4, 2, 2, 1, 6).expect("plan");
        for step in 0..16 {
            // 15 records per shard, 3 per step: 5 steps an epoch, so 3 epochs and a bit
            assert_eq!(
                batches.batch(step),
                batch_for_step(&labels, AS_IS, 4, 2, 1, 3, step).expect("batch")
            );
        }
    }

    #[test]
    fn fewer_replicas_replay_a_larger_plan() {
        let labels: Vec<u16> = (0..40).map(|i| (i % 3) as u16).collect();
        for step in 0..5 {
            let rank0 = batch_for_step(&labels, AS_IS, 9, 2, 0, 4, step).expect("batch");
            let rank1 = batch_for_step(&labels, AS_IS, 9, 2, 1, 4, step).expect("batch");
            let single = replica_batch(&labels, AS_IS, 9, 2, 1, 0, 8, step).expect("batch");
            assert_eq!(single, [rank0.clone(), rank1].concat());
            assert_eq!(
                replica_batch(&labels, AS_IS, 9, 2, 2, 0, 8, step).expect("batch"),
                rank0
            );
        }
        assert_eq!(
            replica_batch(&labels, AS_IS, 9, 3, 2, 0, 12, 0),
            None,
            "3 plan ranks over 2 replicas"
        );
        assert_eq!(
            replica_batch(&labels, AS_IS, 9, 2, 1, 0, 7, 0),
            None,
            "7 images over 2 plan ranks"
        );
    }

    #[test]
    fn class_balanced_epochs_visit_every_class_as_often_as_the_largest() {
        // 12 of class 0, 3 of class 1, 1 of class 2, none of class 3, 5 of class 4.
        let mut labels = vec![0u16; 12];
        labels.extend([1, 1, 1, 2, 4, 4, 4, 4, 4]);
        let balanced = Sampling::ClassBalanced;
        assert_eq!(epoch_records(&labels, balanced), 4 * 12);
        for epoch in 0..3 {
            let mut all: Vec<usize> = (0..3)
                .flat_map(|rank| shard_for_epoch(&labels, balanced, 7, epoch, 3, rank))
                .collect();
            assert_eq!(all.len(), 48);
            for class in [0u16, 1, 2, 4] {
                let visits = all.iter().filter(|&&i| labels[i] == class).count();
                assert_eq!(visits, 12, "class {class} in epoch {epoch}");
            }
            // Class 1 cycles four full passes: each of its records 4 times.
            all.sort_unstable();
            for record in 12..15 {
                assert_eq!(all.iter().filter(|&&i| i == record).count(), 4);
            }
        }
        assert_eq!(steps_per_epoch(epoch_records(&labels, balanced), 3, 4), 4);
        assert_ne!(
            shard_for_epoch(&labels, balanced, 7, 0, 3, 0),
            shard_for_epoch(&labels, balanced, 7, 1, 3, 0)
        );
    }

    #[test]
    fn a_partial_pass_takes_different_records_in_different_epochs() {
        // 10 of class 0, 4 of class 1: class 1 is cycled 2.5 times; the half pass must not
        // always favour the same two records.
        let mut labels = vec![0u16; 10];
        labels.extend([1, 1, 1, 1]);
        let favoured: std::collections::BTreeSet<Vec<usize>> = (0..8)
            .map(|epoch| {
                let shard = shard_for_epoch(&labels, Sampling::ClassBalanced, 1, epoch, 1, 0);
                let mut thrice: Vec<usize> = (10..14)
                    .filter(|&r| shard.iter().filter(|&&i| i == r).count() == 3)
                    .collect();
                thrice.sort_unstable();
                assert_eq!(thrice.len(), 2, "epoch {epoch}");
                thrice
            })
            .collect();
        assert!(favoured.len() > 1, "always the same records: {favoured:?}");
    }
}
