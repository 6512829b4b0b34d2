//! The one classifier every rebalancing method is judged with: a small CNN, identical for all
//! methods, seeds and data, trained with Adam (by default the learning rate falls to 0 along a
//! cosine) and (weighted) cross-entropy.
//!
//! Architecture (28×28 or 32×32, C channels, K classes, width w = 32):
//! Conv(C→w, 3×3, pad 1) → ReLU → MaxPool 2 → Conv(w→2w, 3×3, pad 1) → ReLU → MaxPool 2
//! → flatten → Linear(2w·(S/4)², 128) → ReLU → Linear(128, K).

use burn::module::AutodiffModule;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::backend::AutodiffBackend;

pub use anygan_proto::generation::LearningRateSchedule;

use super::augment::ClassifierAugmentation;
use crate::data::{EpochSampler, ImageDataset};
use crate::error::{Error, Result};
use crate::gan::params::force_init;

/// Hidden units of the first fully connected layer.
const HIDDEN: usize = 128;

/// The classifier's shape.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    pub num_classes: usize,
    #[config(default = 1)]
    pub channels: usize,
    #[config(default = 28)]
    pub image_size: usize,
    #[config(default = 32)]
    pub width: usize,
}

/// How it is trained: the same for every method.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierTraining {
    #[config(default = 10)]
    pub epochs: usize,
    #[config(default = 128)]
    pub batch_size: usize,
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    #[config(default = "LearningRateSchedule::Cosine")]
    pub schedule: LearningRateSchedule,
    #[config(default = 0)]
    pub seed: u64,
    /// Every training image is shifted by up to this many pixels each way, a fresh draw each
    /// step (see `augment`); 0: not shifted.
    #[config(default = 0)]
    pub augment_shift: usize,
    /// Chance that a training image is flipped left to right, a fresh draw each step.
    #[config(default = 0.0)]
    pub augment_flip_probability: f64,
}

impl ClassifierTraining {
    /// How the training images are varied.
    pub fn augmentation(&self) -> ClassifierAugmentation {
        ClassifierAugmentation {
            max_shift: self.augment_shift,
            flip_probability: self.augment_flip_probability,
        }
    }

    /// The same training with the images varied as `augmentation` says.
    pub fn with_augmentation(self, augmentation: ClassifierAugmentation) -> Self {
        self.with_augment_shift(augmentation.max_shift)
            .with_augment_flip_probability(augmentation.flip_probability)
    }
}

#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    pool: MaxPool2d,
    hidden: Linear<B>,
    output: Linear<B>,
}

impl ClassifierConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Classifier<B>> {
        if !self.image_size.is_multiple_of(4) || self.image_size == 0 {
            return Err(Error::config(
                "image_size",
                format!("{} is not a positive multiple of 4", self.image_size),
            ));
        }
        let reduced = self.image_size / 4;
        Ok(Classifier {
            conv1: Conv2dConfig::new([self.channels, self.width], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            conv2: Conv2dConfig::new([self.width, 2 * self.width], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            hidden: LinearConfig::new(2 * self.width * reduced * reduced, HIDDEN).init(device),
            output: LinearConfig::new(HIDDEN, self.num_classes).init(device),
        })
    }
}

impl<B: Backend> Classifier<B> {
    /// Logits `[n, K]` of images `[n, C, S, S]` in [-1, 1].
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        // Pooling before the ReLU computes exactly ReLU-then-pool (max and max(·, 0) commute,
        // and the gradients agree: where a window's maximum is ≤ 0 both are 0; a test checks
        // it bit for bit), with the ReLU and its backward on a quarter of the values. On the
        // CPU backend a step at batch 128 takes 150 ms instead of 177 (`--bench classifier`).
        let x = relu(self.pool.forward(self.conv1.forward(images)));
        let x = relu(self.pool.forward(self.conv2.forward(x)));
        let x: Tensor<B, 2> = x.flatten(1, 3);
        self.output.forward(relu(self.hidden.forward(x)))
    }
}

fn images_tensor<B: Backend>(
    dataset: &ImageDataset,
    values: Vec<f32>,
    n: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let shape = dataset.shape();
    Tensor::from_data(
        TensorData::new(values, [n, shape.channels, shape.height, shape.width]),
        device,
    )
}

/// Mean cross-entropy, each image weighted by its class's weight and normalized by the batch's
/// total weight (PyTorch's `CrossEntropyLoss(weight=...)`); unweighted when `weights` is None.
fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: &[u16],
    weights: Option<&[f32]>,
    device: &B::Device,
) -> Tensor<B, 1> {
    let n = labels.len();
    let targets: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, 1]), device);
    let picked = log_softmax(logits, 1).gather(1, targets).reshape([n]);
    let per_image: Vec<f32> = labels
        .iter()
        .map(|&l| weights.map_or(1.0, |w| w[usize::from(l)]))
        .collect();
    let total: f32 = per_image.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    let per_image = Tensor::<B, 1>::from_data(TensorData::new(per_image, [n]), device);
    (picked * per_image).sum().neg() / total
}

/// Trains a fresh classifier on `data` (deterministic for a seed: initialization and epoch
/// order come from it) and returns it ready for inference.
pub fn train_classifier<B: AutodiffBackend>(
    data: &ImageDataset,
    config: &ClassifierConfig,
    training: &ClassifierTraining,
    class_weights: Option<&[f32]>,
    device: &B::Device,
) -> Result<Classifier<B::InnerBackend>> {
    let whole = TrainingPhase {
        data,
        epochs: training.epochs,
        class_weights,
        frozen_features: false,
    };
    train_classifier_in_phases::<B>(&[whole], config, training, device)
}

/// One stretch of a classifier's training: `epochs` passes over `data`, each image's loss
/// weighted by its class's weight (unweighted when None).
#[derive(Debug, Clone, Copy)]
pub struct TrainingPhase<'a> {
    pub data: &'a ImageDataset,
    pub epochs: usize,
    pub class_weights: Option<&'a [f32]>,
    /// Only the fully connected head trains; the convolutions keep what the phases before
    /// taught them. Once a phase freezes them, every later phase must too.
    pub frozen_features: bool,
}

/// Trains a fresh classifier through `phases` in order, as one run: one optimizer, and the
/// learning-rate schedule spans the steps of all phases (`training.epochs` is not used; each
/// phase has its own). The epoch count runs on across phases — a phase's first epoch draws
/// the order its index in the whole run gives — so splitting one set's epochs into phases
/// trains exactly what one phase would.
pub fn train_classifier_in_phases<B: AutodiffBackend>(
    phases: &[TrainingPhase<'_>],
    config: &ClassifierConfig,
    training: &ClassifierTraining,
    device: &B::Device,
) -> Result<Classifier<B::InnerBackend>> {
    let augmentation = training.augmentation();
    let mut planned = Vec::with_capacity(phases.len());
    for (index, phase) in phases.iter().enumerate() {
        if let Some(weights) = phase.class_weights
            && weights.len() != config.num_classes
        {
            return Err(Error::config(
                "class_weights",
                format!(
                    "{} weights for {} classes (training phase {index})",
                    weights.len(),
                    config.num_classes
                ),
            ));
        }
        if !phase.frozen_features
            && let Some(frozen) = phases[..index].iter().position(|p| p.frozen_features)
        {
            return Err(Error::config(
                "frozen_features",
                format!(
                    "training phase {index} would train the convolutions again after phase \
                     {frozen} froze them"
                ),
            ));
        }
        augmentation.validate(phase.data.shape())?;
        let batch = training.batch_size.min(phase.data.len()).max(1);
        let sampler = EpochSampler::new(phase.data.len(), batch, training.seed)?;
        planned.push((phase, sampler));
    }
    let steps: u64 = planned
        .iter()
        .map(|(phase, sampler)| sampler.batches_per_epoch() * phase.epochs as u64)
        .sum();
    let mut model = crate::gan::train::seeded_init::<B, _>(device, training.seed, || {
        config.init::<B>(device).map(force_init)
    })?;
    let mut optim = AdamConfig::new().init();
    let (mut step, mut epochs_before) = (0u64, 0u64);
    for (phase, mut sampler) in planned {
        if phase.frozen_features {
            // Parameters that need no gradient get none, so Adam leaves them as they are.
            model.conv1 = model.conv1.no_grad();
            model.conv2 = model.conv2.no_grad();
        }
        let first = epochs_before * sampler.batches_per_epoch();
        let phase_steps = sampler.batches_per_epoch() * phase.epochs as u64;
        for phase_step in first..first + phase_steps {
            let (mut values, labels) = phase.data.normalized_batch(sampler.batch(phase_step));
            augmentation.apply(&mut values, phase.data.shape(), training.seed, step);
            // One step's graph, backward and update under the process's autodiff lock.
            let _section = crate::autodiff::section();
            let images = images_tensor::<B>(phase.data, values, labels.len(), device);
            let logits = model.forward(images);
            let loss = cross_entropy(logits, &labels, phase.class_weights, device);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let learning_rate = training.schedule.rate(training.learning_rate, step, steps);
            model = optim.step(learning_rate, model, grads);
            step += 1;
        }
        epochs_before += phase.epochs as u64;
    }
    Ok(model.valid())
}

/// The predicted class of every image, in batches.
pub fn predict<B: Backend>(
    model: &Classifier<B>,
    data: &ImageDataset,
    device: &B::Device,
) -> Vec<u16> {
    predict_scored(model, data, device).predicted
}

/// Predictions and how much probability the classifier puts on each class on average.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The predicted class of every image.
    pub predicted: Vec<u16>,
    /// Per class, the softmax probability averaged over all images: where the classifier's
    /// belief goes on this data, 1/C per class for one without a class bias on a balanced set.
    pub mean_probability: Vec<f64>,
    /// Per image, the softmax probability of the image's own label: how sure the classifier is
    /// of the right answer (0 for a label it has no class for).
    pub label_probability: Vec<f32>,
}

/// [`predict`], plus each class's mean softmax probability over the images and each image's
/// probability of its label.
pub fn predict_scored<B: Backend>(
    model: &Classifier<B>,
    data: &ImageDataset,
    device: &B::Device,
) -> Scored {
    let mut predicted = Vec::with_capacity(data.len());
    let mut label_probability = Vec::with_capacity(data.len());
    let mut probability_sums: Vec<f64> = Vec::new();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(512) {
        let (values, _) = data.normalized_batch(chunk);
        let logits = model.forward(images_tensor::<B>(data, values, chunk.len(), device));
        let [_, classes] = logits.dims();
        let probabilities = softmax(logits.clone(), 1)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap_or_default(); // converted just above
        probability_sums.resize(classes, 0.0);
        for (row, &index) in probabilities.chunks(classes.max(1)).zip(chunk) {
            for (sum, &value) in probability_sums.iter_mut().zip(row) {
                *sum += f64::from(value);
            }
            let label = usize::from(data.labels()[index]);
            label_probability.push(row.get(label).copied().unwrap_or(0.0));
        }
        let best = logits.argmax(1).reshape([chunk.len()]);
        predicted.extend(
            best.into_data()
                .convert::<i64>()
                .into_vec::<i64>()
                .unwrap_or_default() // converted just above
                .into_iter()
                .map(|c| c as u16),
        );
    }
    let images = data.len().max(1) as f64;
    Scored {
        predicted,
        mean_probability: probability_sums.into_iter().map(|s| s / images).collect(),
        label_probability,
    }
}

#[cfg(test)]
mod tests;
