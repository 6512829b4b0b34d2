//! The order in which training records are visited: a fresh permutation every epoch, a pure
//! function of (seed, epoch), so the batch of any step can be recomputed after a restart.

use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// Maps a global step to the record indices of its batch. The last partial batch of an epoch is
/// dropped, so every step has exactly `batch_size` records.
#[derive(Debug, Clone)]
pub struct EpochSampler {
    len: usize,
    batch_size: usize,
    seed: u64,
    cached: Option<(u64, Vec<usize>)>,
}

impl EpochSampler {
    pub fn new(len: usize, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 || len < batch_size {
            return Err(Error::config(
                "batch_size",
                format!("a batch of {batch_size} needs 1..={len} records (the dataset size)"),
            ));
        }
        Ok(Self {
            len,
            batch_size,
            seed,
            cached: None,
        })
    }

    pub fn batches_per_epoch(&self) -> u64 {
        (self.len / self.batch_size) as u64
    }

    /// The epoch that step `step` belongs to.
    pub fn epoch_of(&self, step: u64) -> u64 {
        step / self.batches_per_epoch()
    }

    /// The permutation of all records used in `epoch`.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut stream(self.seed, Purpose::EpochOrder, epoch, 0));
        order
    }

    /// Record indices of the batch trained at `step`.
    pub fn batch(&mut self, step: u64) -> &[usize] {
        let epoch = self.epoch_of(step);
        if self
            .cached
            .as_ref()
            .is_none_or(|(cached, _)| *cached != epoch)
        {
            self.cached = Some((epoch, self.epoch_order(epoch)));
        }
        let start = (step % self.batches_per_epoch()) as usize * self.batch_size;
        let order = match &self.cached {
            Some((_, order)) => order,
            None => unreachable!("filled just above"),
        };
        &order[start..start + self.batch_size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_permutation_and_reshuffles() {
        let mut sampler = EpochSampler::new(10, 3, 5).expect("valid");
        assert_eq!(sampler.batches_per_epoch(), 3);
        let epoch0: Vec<usize> = (0..3).flat_map(|s| sampler.batch(s).to_vec()).collect();
        let epoch1: Vec<usize> = (3..6).flat_map(|s| sampler.batch(s).to_vec()).collect();
        for seen in [&epoch0, &epoch1] {
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 9, "no record twice within an epoch");
        }
        assert_ne!(epoch0, epoch1);
        // Random access agrees with sequential access.
        let mut fresh = EpochSampler::new(10, 3, 5).expect("valid");
        assert_eq!(fresh.batch(4), &epoch1[3..6]);
    }

    #[test]
    fn refuses_batches_larger_than_the_data() {
        assert!(EpochSampler::new(3, 4, 0).is_err());
        assert!(EpochSampler::new(3, 0, 0).is_err());
    }
}
