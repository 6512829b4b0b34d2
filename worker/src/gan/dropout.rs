//! The discriminator's dropout masks, drawn on the host from the step's random stream so that
//! every replica, world size and backend applies the same mask to the same global row.

use rand::Rng;

/// Inverted-dropout keep mask for elements `first..first + count` of a global batch's mask:
/// element i is 0 with probability `p` (the stream's i-th 32-bit word below `p`·2³²), else
/// 1/(1-p). One word per element, drawn in bulk, and the stream is entered at `first` directly
/// (ChaCha is addressable by word), so a replica draws only its own rows yet every world size
/// sees the same global mask. This runs on the host three times a step and once cost more than
/// a whole GPU step's compute; `cargo bench --bench host_draws` measures it.
pub fn keep_mask(mut rng: rand_chacha::ChaCha8Rng, p: f64, first: usize, count: usize) -> Vec<f32> {
    // p < 1 (validated), so the threshold fits in 32 bits.
    let threshold = (p * 4_294_967_296.0).round().min(f64::from(u32::MAX)) as u32;
    let keep = (1.0 / (1.0 - p)) as f32;
    rng.set_word_pos(first as u128);
    let mut words = vec![0u32; count];
    rng.fill(&mut words[..]);
    words
        .into_iter()
        .map(|word| if word < threshold { 0.0 } else { keep })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, stream};

    fn mask(first: usize, count: usize) -> Vec<f32> {
        keep_mask(stream(7, Purpose::Dropout, 3, 1), 0.4, first, count)
    }

    #[test]
    fn a_replica_draws_its_own_rows_of_the_global_mask() {
        let global = mask(0, 4 * 96);
        // Replica 1 of 2, and rows starting mid-block (ChaCha blocks are 16 words).
        assert_eq!(mask(2 * 96, 2 * 96), global[2 * 96..]);
        assert_eq!(mask(37, 101), global[37..138]);
        assert_ne!(mask(0, 96), global[96..192], "rows differ from each other");
    }

    #[test]
    fn elements_are_dropped_with_probability_p_and_kept_scaled() {
        let keep = 1.0 / 0.6_f64;
        let values = mask(0, 200_000);
        let dropped = values.iter().filter(|&&v| v == 0.0).count();
        assert!(values.iter().all(|&v| v == 0.0 || v == keep as f32));
        // 200,000 Bernoulli(0.4) draws: the share is within 0.004 of p (about 3.7 std).
        let share = dropped as f64 / values.len() as f64;
        assert!((share - 0.4).abs() < 0.004, "dropped share {share}");
        // p = 0 keeps everything unscaled; a tiny p still drops.
        let none = keep_mask(stream(7, Purpose::Dropout, 3, 1), 0.0, 0, 1000);
        assert!(none.iter().all(|&v| v == 1.0));
        let few = keep_mask(stream(7, Purpose::Dropout, 3, 1), 0.01, 0, 100_000);
        let share = few.iter().filter(|&&v| v == 0.0).count() as f64 / 1e5;
        assert!((share - 0.01).abs() < 0.002, "dropped share {share}");
    }
}
