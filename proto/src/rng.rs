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
