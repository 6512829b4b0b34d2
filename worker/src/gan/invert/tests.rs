use burn::module::{AutodiffModule, ModuleMapper, Param};

use super::*;
use crate::backend::{ComputeBackend, TrainBackend};
use crate::gan::params::force_init;
use crate::gan::sample::generate_from_noise;
use crate::gan::train::seeded_init;

fn config() -> GanConfig {
    GanConfig::new(3).with_width(8).with_latent_dim(16)
}

/// Multiplies every weight: DCGAN's N(0, 0.02) initialization makes a fresh generator's image
/// almost independent of its noise; scaled up, different codes give clearly different images,
/// as a trained generator's do.
struct ScaleWeights(f32);

impl<B: Backend> ModuleMapper<B> for ScaleWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let factor = self.0;
        param.map(|tensor| tensor.mul_scalar(factor))
    }
}

fn generator() -> Generator<TrainBackend> {
    seeded_init::<TrainBackend, _>(&Default::default(), 3, || {
        let (generator, _) = config()
            .init::<TrainBackend>(&Default::default())
            .expect("init");
        force_init(generator).map(&mut ScaleWeights(4.0))
    })
}

/// Images the generator itself made from known codes, normalized to [-1, 1].
fn generated_targets(generator: &Generator<TrainBackend>, labels: &[u16]) -> Vec<f32> {
    let latent = config().latent_dim;
    let mut noise = vec![0f32; labels.len() * latent];
    fill_standard_normal(&mut stream(99, Purpose::SampleGrid, 0, 0), &mut noise);
    let device = Default::default();
    let pixels = generate_from_noise::<ComputeBackend>(
        &generator.valid(),
        &config(),
        labels,
        noise,
        &device,
    );
    pixels
        .into_iter()
        .map(|p| f32::from(p) / 127.5 - 1.0)
        .collect()
}

fn key(seed: u64, first: u64) -> StartKey {
    StartKey {
        seed,
        class: 0,
        first,
    }
}

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len() as f32
}

#[test]
fn inversion_finds_codes_that_reproduce_generated_images_far_better_than_its_starts() {
    let generator = generator();
    let labels = [0u16, 1, 2, 1];
    let targets = generated_targets(&generator, &labels);
    let device = Default::default();
    let settings = InversionSettings {
        starts: 4,
        steps: 150,
        ..InversionSettings::default()
    };
    let unoptimized = InversionSettings {
        steps: 0,
        ..settings
    };
    let start = invert(
        &generator,
        &config(),
        &targets,
        &labels,
        unoptimized,
        key(1, 0),
        &device,
    )
    .expect("starts");
    let found = invert(
        &generator,
        &config(),
        &targets,
        &labels,
        settings,
        key(1, 0),
        &device,
    )
    .expect("inverts");
    assert_eq!(found.latents.len(), labels.len() * config().latent_dim);
    assert_eq!(found.errors.len(), labels.len());
    for (image, (after, before)) in found.errors.iter().zip(&start.errors).enumerate() {
        assert!(
            *after < before * 0.2,
            "image {image}: error {after} after inversion against {before} at its start"
        );
    }
    // The reported errors are the codes' own: regenerating from them gives the same error.
    let regenerated = generate_from_noise::<ComputeBackend>(
        &generator.valid(),
        &config(),
        &labels,
        found.latents.clone(),
        &device,
    );
    let pixel_error: Vec<f32> = regenerated
        .iter()
        .zip(&targets)
        .map(|(&p, &t)| (f32::from(p) / 127.5 - 1.0 - t).powi(2))
        .collect();
    let regenerated_error = mean(&pixel_error);
    assert!(
        (regenerated_error - mean(&found.errors)).abs() < 1e-3,
        "{regenerated_error} vs {}",
        mean(&found.errors)
    );
}

#[test]
fn the_best_of_more_starts_is_never_worse_and_images_do_not_interact() {
    let generator = generator();
    let labels = [2u16, 0, 1];
    let targets = generated_targets(&generator, &labels);
    let device = Default::default();
    let starts_only = |starts| InversionSettings {
        starts,
        steps: 0,
        ..InversionSettings::default()
    };
    let one = invert(
        &generator,
        &config(),
        &targets,
        &labels,
        starts_only(1),
        key(5, 0),
        &device,
    )
    .expect("one start");
    let eight = invert(
        &generator,
        &config(),
        &targets,
        &labels,
        starts_only(8),
        key(5, 0),
        &device,
    )
    .expect("eight starts");
    for (best, first) in eight.errors.iter().zip(&one.errors) {
        assert!(best <= first, "{best} > {first}");
    }
    // The first image inverted alone ends where it ends in the batch.
    let settings = InversionSettings {
        starts: 2,
        steps: 20,
        ..InversionSettings::default()
    };
    let pixels = config().image_shape().pixel_count();
    let batch = invert(
        &generator,
        &config(),
        &targets,
        &labels,
        settings,
        key(5, 0),
        &device,
    )
    .expect("batch");
    let alone = invert(
        &generator,
        &config(),
        &targets[..pixels],
        &labels[..1],
        settings,
        key(5, 0),
        &device,
    )
    .expect("alone");
    let latent = config().latent_dim;
    for (a, b) in alone.latents.iter().zip(&batch.latents[..latent]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // So does the second, keyed by its position: a code does not depend on the batch split.
    let second = invert(
        &generator,
        &config(),
        &targets[pixels..2 * pixels],
        &labels[1..2],
        settings,
        key(5, 1),
        &device,
    )
    .expect("second alone");
    for (a, b) in second
        .latents
        .iter()
        .zip(&batch.latents[latent..2 * latent])
    {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn a_wrong_number_of_pixels_is_refused_by_name() {
    let generator = generator();
    let error = invert(
        &generator,
        &config(),
        &[0.0; 10],
        &[0, 1],
        InversionSettings::default(),
        key(0, 0),
        &Default::default(),
    )
    .expect_err("10 values are not two images");
    assert!(error.to_string().contains("images"), "{error}");
}
