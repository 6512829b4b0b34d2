//! Inverting the generator: for each real image, the noise vector whose generated image (with the
//! image's own label) comes closest to it. Generation anchored on these codes covers the classes
//! as the real images spread, not only the typical part the generator samples most often.
//!
//! Per image: the best of a few random starts (pixel distance), then Adam on the noise alone,
//! the generator frozen, minimizing the mean squared pixel error plus a small pull of the noise
//! toward the prior's typical norm — a code far outside N(0, I) reproduces its image but
//! interpolates badly. Images never interact (the generator has no batch statistics), so a
//! batch is only a way to use the hardware.

use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::model::{GanConfig, Generator};
use super::train::labels_tensor;
use crate::error::{Error, Result};
use crate::rng::{Purpose, fill_standard_normal, stream};

/// How hard the inversion works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InversionSettings {
    /// Random noise vectors tried per image before optimizing the best one.
    pub starts: usize,
    /// Adam steps on the noise.
    pub steps: usize,
    pub learning_rate: f32,
    /// Weight of (|z|²/d − 1)², which keeps the code at the prior's typical norm.
    pub prior_weight: f32,
}

impl Default for InversionSettings {
    fn default() -> Self {
        Self {
            starts: 8,
            steps: 200,
            learning_rate: 0.05,
            prior_weight: 0.01,
        }
    }
}

/// Whose random starts: image i's come from the stream `(seed, GenerationInversion, class,
/// first + i)`, so with `first` = the position of the batch's first image among the class's
/// anchors, an image's code does not depend on which batch carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartKey {
    pub seed: u64,
    pub class: u64,
    pub first: u64,
}

/// The codes found, image after image (`latent_dim` values each), and each image's mean squared
/// pixel error (on the [-1, 1] scale) at its code.
#[derive(Debug, Clone)]
pub struct Inversion {
    pub latents: Vec<f32>,
    pub errors: Vec<f32>,
}

const ADAM_BETA1: f32 = 0.9;
const ADAM_BETA2: f32 = 0.999;
const ADAM_EPSILON: f32 = 1e-8;

/// Inverts `images` (normalized to [-1, 1], channel-first, image after image) with their
/// `labels`, the random starts keyed by `key`.
pub fn invert<B: AutodiffBackend>(
    generator: &Generator<B>,
    config: &GanConfig,
    images: &[f32],
    labels: &[u16],
    settings: InversionSettings,
    key: StartKey,
    device: &B::Device,
) -> Result<Inversion> {
    let count = labels.len();
    let pixels = config.image_shape().pixel_count();
    if images.len() != count * pixels {
        return Err(Error::config(
            "images",
            format!(
                "{} values for {count} images of {pixels} pixels",
                images.len()
            ),
        ));
    }
    if count == 0 {
        return Ok(Inversion {
            latents: Vec::new(),
            errors: Vec::new(),
        });
    }
    let latent = config.latent_dim;
    let frozen = generator.clone().no_grad();
    let targets = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(images.to_vec(), [count, pixels]),
        device,
    );
    let inner = frozen.valid();
    let inner_labels = labels_tensor::<B::InnerBackend>(labels, device);
    let starts = best_starts(
        &inner,
        config,
        &targets,
        &inner_labels,
        settings.starts,
        key,
        device,
    );

    let label_tensor = labels_tensor::<B>(labels, device);
    let targets_ad = Tensor::<B, 2>::from_inner(targets.clone());
    let mut codes = starts;
    let mut first_moment = codes.zeros_like();
    let mut second_moment = codes.zeros_like();
    for step in 1..=settings.steps {
        // The graph and its backward under the process's autodiff lock.
        let section = crate::autodiff::section();
        let code = Tensor::<B, 2>::from_inner(codes.clone()).require_grad();
        // Summed over images so each image's gradient is its own loss's, whatever the batch.
        let reconstruction =
            squared_errors(&frozen, &code, label_tensor.clone(), &targets_ad).sum();
        let norm_gap = code
            .clone()
            .powf_scalar(2.0)
            .mean_dim(1)
            .sub_scalar(1.0)
            .powf_scalar(2.0)
            .sum();
        let loss = reconstruction + norm_gap.mul_scalar(settings.prior_weight);
        let gradients = loss.backward();
        let Some(gradient) = code.grad(&gradients) else {
            return Err(Error::config("inversion", "the noise received no gradient"));
        };
        drop(section);
        first_moment =
            first_moment.mul_scalar(ADAM_BETA1) + gradient.clone().mul_scalar(1.0 - ADAM_BETA1);
        second_moment = second_moment.mul_scalar(ADAM_BETA2)
            + gradient.powf_scalar(2.0).mul_scalar(1.0 - ADAM_BETA2);
        let corrected_first = first_moment
            .clone()
            .div_scalar(1.0 - ADAM_BETA1.powi(step as i32));
        let corrected_second = second_moment
            .clone()
            .div_scalar(1.0 - ADAM_BETA2.powi(step as i32));
        codes = codes
            - corrected_first.mul_scalar(settings.learning_rate)
                / corrected_second.sqrt().add_scalar(ADAM_EPSILON);
    }

    let errors = into_vec(
        squared_errors(&inner, &codes, inner_labels, &targets),
        count,
    )?;
    let latents = into_vec(codes, latent * count)?;
    Ok(Inversion { latents, errors })
}

/// For each image the start (of `starts` random noise vectors) whose generated image is closest.
fn best_starts<B: Backend>(
    generator: &Generator<B>,
    config: &GanConfig,
    targets: &Tensor<B, 2>,
    labels: &Tensor<B, 1, Int>,
    starts: usize,
    key: StartKey,
    device: &B::Device,
) -> Tensor<B, 2> {
    let [count, _] = targets.dims();
    let latent = config.latent_dim;
    let starts = starts.max(1);
    // Image i's starts come one after another from its own stream: its first k starts are the
    // same whatever `starts` is, so more starts can only find a closer one.
    let mut drawn = vec![vec![0f32; count * latent]; starts];
    for image in 0..count {
        let mut rng = stream(
            key.seed,
            Purpose::GenerationInversion,
            key.class,
            key.first + image as u64,
        );
        for noise in &mut drawn {
            fill_standard_normal(&mut rng, &mut noise[image * latent..(image + 1) * latent]);
        }
    }
    let mut best: Option<(Tensor<B, 2>, Tensor<B, 1>)> = None;
    for noise in drawn {
        let codes = Tensor::<B, 2>::from_data(TensorData::new(noise, [count, latent]), device);
        let errors = squared_errors(generator, &codes, labels.clone(), targets);
        best = Some(match best {
            None => (codes, errors),
            Some((best_codes, best_errors)) => {
                let better = errors.clone().lower(best_errors.clone());
                let chosen = best_codes.mask_where(
                    better.clone().unsqueeze_dim::<2>(1).expand([count, latent]),
                    codes,
                );
                (chosen, best_errors.mask_where(better, errors))
            }
        });
    }
    match best {
        Some((codes, _)) => codes,
        None => Tensor::zeros([count, latent], device),
    }
}

/// Each image's mean squared pixel error at its code, `[count]`.
fn squared_errors<B: Backend>(
    generator: &Generator<B>,
    codes: &Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    targets: &Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [count, pixels] = targets.dims();
    let generated = generator
        .forward(codes.clone(), labels)
        .reshape([count, pixels]);
    (generated - targets.clone())
        .powf_scalar(2.0)
        .mean_dim(1)
        .reshape([count])
}

fn into_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>, expected: usize) -> Result<Vec<f32>> {
    let values = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::config("inversion", format!("cannot read values: {e:?}")))?;
    if values.len() != expected {
        return Err(Error::config(
            "inversion",
            format!("{} values, expected {expected}", values.len()),
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests;
