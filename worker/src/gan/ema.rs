//! An exponential moving average of the generator's weights (Yazıcı et al. 2019, "The Unusual
//! Effectiveness of Averaging in GAN Training"): after every generator step,
//! `averaged ← d · averaged + (1 − d) · current`, with `d = min(decay, (1 + n) / (10 + n))`
//! after n updates — the warm-up of TensorFlow's `ExponentialMovingAverage`: a fresh run's
//! first generators are noise, and a plain 0.999 average would still hold 12 % of the random
//! initialization at step 2000. GAN weights orbit around a good point
//! rather than settle on it; their average samples from closer to that point than any single
//! step does. Training never reads the average, so it changes nothing about the run's arithmetic;
//! generation uses it. It stays on the device: the update is one fused multiply-add per tensor.
//! Every replica applies the same update to the same weights, so the averages stay identical.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use super::model::Generator;
use crate::error::{Error, Result};

/// The averaged generator and how it is being averaged.
#[derive(Module, Debug)]
pub struct GeneratorEma<B: Backend> {
    pub(crate) generator: Generator<B>,
}

/// How a run averages: the decay and the step the average started from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmaSettings {
    pub decay: f32,
    /// The step whose weights the average started from (0 for a fresh run; the resumed step
    /// when a run without an average was resumed with one).
    pub since_step: u64,
}

impl EmaSettings {
    /// The decay of the update that brings the step count to `step`: `decay`, or less while
    /// the average is young.
    pub fn effective_decay(&self, step: u64) -> f32 {
        let updates = step.saturating_sub(self.since_step + 1) as f64;
        (self.decay as f64).min((1.0 + updates) / (10.0 + updates)) as f32
    }

    /// A decay is in (0, 1): 0 would be no averaging (ask for none instead), 1 would never move.
    pub fn validate_decay(decay: f32) -> Result<()> {
        if decay.is_finite() && decay > 0.0 && decay < 1.0 {
            Ok(())
        } else {
            Err(Error::config(
                "generator_ema",
                format!("decay {decay} is not in (0, 1) (0 turns averaging off)"),
            ))
        }
    }
}

impl<B: Backend> GeneratorEma<B> {
    /// An average that starts at `generator`'s weights.
    pub fn starting_at(generator: Generator<B>) -> Self {
        Self { generator }
    }

    /// One averaging step towards `current` (the generator just updated).
    pub fn update(&mut self, current: &Generator<B>, decay: f32) {
        let mut collect = Flatten(Vec::new());
        current.visit(&mut collect);
        let mut mix = Mix {
            current: collect.0.into_iter(),
            decay,
        };
        self.generator = self.generator.clone().map(&mut mix);
    }
}

/// Every float parameter of a module, flattened, in module order.
struct Flatten<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

/// Maps each averaged parameter to its next value, reading the current one in the same order
/// (both modules are the same architecture, so their visit orders agree).
struct Mix<B: Backend> {
    current: std::vec::IntoIter<Tensor<B, 1>>,
    decay: f32,
}

impl<B: Backend> ModuleMapper<B> for Mix<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, averaged, mapper) = param.consume();
        let next = match self.current.next() {
            Some(current) => {
                let current: Tensor<B, D> = current.reshape(averaged.shape());
                averaged.mul_scalar(self.decay) + current.mul_scalar(1.0 - self.decay)
            }
            // Unreachable for the same architecture; keeping the value is the safe answer.
            None => averaged,
        };
        Param::from_mapped_value(id, next, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ComputeBackend;
    use crate::gan::GanConfig;
    use crate::gan::params::{force_init, named_tensors};

    fn two_generators() -> (Generator<ComputeBackend>, Generator<ComputeBackend>) {
        let device = Default::default();
        let config = GanConfig::new(3).with_width(8).with_latent_dim(4);
        let (first, _) = crate::gan::train::seeded_init::<ComputeBackend, _>(&device, 1, || {
            config.init(&device).map(|(g, d)| (force_init(g), d))
        })
        .expect("model");
        let (second, _) = crate::gan::train::seeded_init::<ComputeBackend, _>(&device, 2, || {
            config.init(&device).map(|(g, d)| (force_init(g), d))
        })
        .expect("model");
        (first, second)
    }

    #[test]
    fn each_update_moves_every_weight_by_one_minus_decay_towards_the_current_one() {
        let (start, current) = two_generators();
        let mut ema = GeneratorEma::starting_at(start.clone());
        ema.update(&current, 0.75);
        let (start, current, averaged) = (
            named_tensors(&start),
            named_tensors(&current),
            named_tensors(&ema.generator),
        );
        assert_eq!(averaged.len(), current.len());
        let mut compared = 0;
        for ((s, c), a) in start.iter().zip(&current).zip(&averaged) {
            assert_eq!((&a.name, &a.shape), (&c.name, &c.shape));
            for ((sv, cv), av) in s.values.iter().zip(&c.values).zip(&a.values) {
                let expected = 0.75 * sv + 0.25 * cv;
                assert!(
                    (av - expected).abs() <= 1e-6,
                    "{}: {av} vs {expected}",
                    c.name
                );
                compared += 1;
            }
        }
        assert!(compared > 1000, "compared {compared} weights");
        assert_ne!(start[0].values, averaged[0].values, "the average moved");
    }

    #[test]
    fn repeated_updates_converge_on_a_fixed_generator() {
        let (start, current) = two_generators();
        let mut ema = GeneratorEma::starting_at(start.clone());
        for _ in 0..200 {
            ema.update(&current, 0.9);
        }
        // 0.9^200 ≈ 7e-10 of the start is left.
        for (a, c) in named_tensors(&ema.generator)
            .iter()
            .zip(&named_tensors(&current))
        {
            for (av, cv) in a.values.iter().zip(&c.values) {
                assert!((av - cv).abs() <= 1e-5, "{}: {av} vs {cv}", a.name);
            }
        }
    }

    #[test]
    fn a_young_average_follows_the_weights_closely() {
        let settings = EmaSettings {
            decay: 0.999,
            since_step: 100,
        };
        // The first update (step 100 → 101) after the start keeps 1/10 of the average.
        assert!((settings.effective_decay(101) - 0.1).abs() < 1e-6);
        assert!((settings.effective_decay(111) - 11.0 / 20.0).abs() < 1e-6);
        // After about 9000 updates the asked-for decay holds.
        assert!(settings.effective_decay(1100) < 0.999);
        assert_eq!(settings.effective_decay(9200), 0.999);
        assert_eq!(settings.effective_decay(1_000_000), 0.999);
    }

    #[test]
    fn decays_outside_zero_one_are_refused_by_name() {
        for bad in [0.0, 1.0, -0.5, 1.5, f32::NAN] {
            let err = EmaSettings::validate_decay(bad)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("generator_ema"), "{err}");
        }
        EmaSettings::validate_decay(0.999).expect("accepted");
    }
}
