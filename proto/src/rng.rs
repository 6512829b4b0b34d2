//! Deterministic random streams. Every random draw anygan makes comes from a stream keyed by
//! (job seed, purpose, step or epoch, ...), so a run's randomness is a pure function of its
//! position: resuming at step s needs no saved RNG state, and no global RNG is shared between
//! threads or tests.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is used for; part of its key so two purposes never share draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    ClassSubset = 1,
    EpochOrder = 2,
    DiscriminatorNoise = 3,
    GeneratorNoise = 4,
    Dropout = 5,
    SampleGrid = 6,
    ShardDeal = 8,
    ShardOrder = 9,
    Generation = 10,
    Oversampling = 11,
    BalancedPass = 12,
    GenerationCandidates = 13,
    DiffAugment = 14,
    GenerationInversion = 15,
    AnchorChoice = 16,
    ClassifierAugmentation = 17,
    ValidationSubset = 18,
    RealShift = 19,
    MismatchedLabels = 20,
    StandInSubset = 21,
}

/// A ChaCha8 stream keyed by the seed, the purpose and two indices (e.g. step and rank).
pub fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(purpose as u64).to_le_bytes());
    key[16..24].copy_from_slice(&a.to_le_bytes());
    key[24..].copy_from_slice(&b.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// Standard normal samples (Box–Muller), written into `out`.
pub fn fill_standard_normal(rng: &mut impl rand::Rng, out: &mut [f32]) {
    for pair in out.chunks_mut(2) {
        // 1 - u keeps the logarithm's argument in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        pair[0] = (radius * angle.cos()) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (radius * angle.sin()) as f32;
        }
    }
}

/// Stream words (32-bit) that [`fill_standard_normal`] consumes for `count` samples: two f64
/// draws of two words each per pair, a last odd sample taking a whole pair.
pub const fn standard_normal_words(count: usize) -> u128 {
    count.div_ceil(2) as u128 * 4
}

/// Writes samples `first..first + out.len()` of what [`fill_standard_normal`] would write from
/// the start of `rng`'s stream, without drawing the ones before: ChaCha is addressable by word,
/// so a replica draws only its own rows of a global batch's noise.
pub fn fill_standard_normal_at(rng: &mut ChaCha8Rng, first: usize, out: &mut [f32]) {
    if out.is_empty() {
        return;
    }
    rng.set_word_pos(standard_normal_words(first - first % 2));
    if first % 2 == 1 {
        // `first` is the second sample of its pair: draw the pair, keep its second.
        let mut pair = [0f32; 2];
        fill_standard_normal(rng, &mut pair);
        out[0] = pair[1];
        fill_standard_normal(rng, &mut out[1..]);
    } else {
        fill_standard_normal(rng, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_every_key_part() {
        let first = |seed, purpose, a, b| stream(seed, purpose, a, b).random::<u64>();
        let base = first(1, Purpose::Dropout, 2, 3);
        assert_eq!(base, first(1, Purpose::Dropout, 2, 3));
        assert_ne!(base, first(9, Purpose::Dropout, 2, 3));
        assert_ne!(base, first(1, Purpose::EpochOrder, 2, 3));
        assert_ne!(base, first(1, Purpose::Dropout, 9, 3));
        assert_ne!(base, first(1, Purpose::Dropout, 2, 9));
    }

    #[test]
    fn normal_samples_can_be_drawn_from_any_position() {
        let fresh = || stream(5, Purpose::GeneratorNoise, 1, 0);
        let mut whole = vec![0f32; 41];
        let mut rng = fresh();
        fill_standard_normal(&mut rng, &mut whole);
        assert_eq!(rng.get_word_pos(), standard_normal_words(41));
        for first in 0..12 {
            for len in 0..12 {
                let mut part = vec![f32::NAN; len];
                fill_standard_normal_at(&mut fresh(), first, &mut part);
                assert_eq!(part, whole[first..first + len], "samples {first}..+{len}");
            }
        }
        // After a part, the stream stands where it would after the whole run up to its end.
        let mut rng = fresh();
        fill_standard_normal_at(&mut rng, 3, &mut [0f32; 6]);
        assert_eq!(rng.get_word_pos(), standard_normal_words(9));
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let mut values = vec![0f32; 100_001];
        fill_standard_normal(&mut stream(7, Purpose::GeneratorNoise, 0, 0), &mut values);
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
