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
        let x = self.pool.forward(relu(self.conv1.forward(images)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
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
            let (values, labels) = phase.data.normalized_batch(sampler.batch(phase_step));
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
}

/// [`predict`], plus each class's mean softmax probability over the images.
pub fn predict_scored<B: Backend>(
    model: &Classifier<B>,
    data: &ImageDataset,
    device: &B::Device,
) -> Scored {
    let mut predicted = Vec::with_capacity(data.len());
    let mut probability_sums: Vec<f64> = Vec::new();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(512) {
        let (values, _) = data.normalized_batch(chunk);
        let logits = model.forward(images_tensor::<B>(data, values, chunk.len(), device));
        let [_, classes] = logits.dims();
        let column_sums = softmax(logits.clone(), 1)
            .sum_dim(0)
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap_or_default(); // converted just above
        probability_sums.resize(classes, 0.0);
        for (sum, value) in probability_sums.iter_mut().zip(column_sums) {
            *sum += value;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::TrainBackend;
    use crate::data::ImageShape;
    use crate::eval::metrics::ConfusionMatrix;

    /// Class 0: bright left half; class 1: bright top half; a little per-image variation.
    fn two_patterns(per_class: usize) -> ImageDataset {
        two_patterns_labelled(per_class, false)
    }

    /// [`two_patterns`], with the two labels exchanged when `swapped`.
    fn two_patterns_labelled(per_class: usize, swapped: bool) -> ImageDataset {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..2 * per_class {
            let class = i % 2;
            for y in 0..28 {
                for x in 0..28 {
                    let on = if class == 0 { x < 14 } else { y < 14 };
                    pixels.push(if on {
                        200 + (i % 7) as u8
                    } else {
                        20 + (i % 5) as u8
                    });
                }
            }
            labels.push((class ^ usize::from(swapped)) as u16);
        }
        let shape = ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        ImageDataset::new(shape, pixels, labels, vec!["left".into(), "top".into()])
            .expect("dataset")
    }

    /// The logits of the first `count` images of `data`.
    fn first_logits(
        model: &Classifier<crate::backend::ComputeBackend>,
        data: &ImageDataset,
        count: usize,
    ) -> Vec<f32> {
        let (values, _) = data.normalized_batch(&(0..count).collect::<Vec<_>>());
        let device = Default::default();
        model
            .forward(images_tensor::<crate::backend::ComputeBackend>(
                data, values, count, &device,
            ))
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32")
    }

    fn recalls(weights: Option<&[f32]>) -> Vec<f64> {
        let data = two_patterns(32);
        let config = ClassifierConfig::new(2).with_width(4);
        let training = ClassifierTraining::new().with_epochs(3).with_batch_size(16);
        let device = Default::default();
        let model = train_classifier::<TrainBackend>(&data, &config, &training, weights, &device)
            .expect("trains");
        let predicted = predict(&model, &data, &device);
        ConfusionMatrix::from_labels(data.labels(), &predicted, 2)
            .expect("matrix")
            .recalls()
    }

    #[test]
    fn learns_two_patterns() {
        assert_eq!(recalls(None), vec![1.0, 1.0]);
    }

    #[test]
    fn mean_probabilities_are_the_softmax_averaged_over_the_images() {
        let data = two_patterns(4);
        let config = ClassifierConfig::new(2).with_width(4);
        let training = ClassifierTraining::new().with_epochs(1).with_batch_size(8);
        let device = Default::default();
        let model = train_classifier::<TrainBackend>(&data, &config, &training, None, &device)
            .expect("trains");
        let scored = predict_scored(&model, &data, &device);
        assert_eq!(scored.predicted, predict(&model, &data, &device));
        // By hand: softmax of each image's two logits, averaged.
        let (values, _) = data.normalized_batch(&(0..data.len()).collect::<Vec<_>>());
        let logits = model
            .forward(images_tensor::<crate::backend::ComputeBackend>(
                &data,
                values,
                data.len(),
                &device,
            ))
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .expect("f64");
        let mut expected = [0.0f64; 2];
        for pair in logits.chunks(2) {
            let top = pair[0].max(pair[1]);
            let (a, b) = ((pair[0] - top).exp(), (pair[1] - top).exp());
            expected[0] += a / (a + b) / data.len() as f64;
            expected[1] += b / (a + b) / data.len() as f64;
        }
        for (got, want) in scored.mean_probability.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        let total: f64 = scored.mean_probability.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
    }

    #[test]
    fn class_weights_steer_the_loss() {
        // With class 0 weighted 0, nothing pushes the model towards class 0.
        let ignored = recalls(Some(&[0.0, 1.0]));
        assert_eq!(ignored[1], 1.0);
        assert!(ignored[0] < 0.5, "{ignored:?}");
    }

    #[test]
    fn same_seed_same_predictions_and_bad_weights_refused() {
        let data = two_patterns(8);
        let config = ClassifierConfig::new(2).with_width(4);
        let training = ClassifierTraining::new().with_epochs(1).with_batch_size(8);
        let device = Default::default();
        let a = train_classifier::<TrainBackend>(&data, &config, &training, None, &device)
            .expect("trains");
        let b = train_classifier::<TrainBackend>(&data, &config, &training, None, &device)
            .expect("trains");
        let logits = |m: &Classifier<_>| first_logits(m, &data, 3);
        assert_eq!(logits(&a), logits(&b));
        let constant = train_classifier::<TrainBackend>(
            &data,
            &config,
            &training
                .clone()
                .with_schedule(LearningRateSchedule::Constant),
            None,
            &device,
        )
        .expect("trains");
        assert_ne!(
            logits(&constant),
            logits(&a),
            "the schedule reaches the optimizer"
        );
        let Err(err) =
            train_classifier::<TrainBackend>(&data, &config, &training, Some(&[1.0]), &device)
        else {
            panic!("one weight for two classes must be refused");
        };
        assert!(err.to_string().contains("class_weights"), "{err}");
    }

    #[test]
    fn phases_continue_one_run_and_each_phase_trains_on_its_own_set() {
        let data = two_patterns(32);
        let swapped = two_patterns_labelled(32, true);
        let config = ClassifierConfig::new(2).with_width(4);
        let training = ClassifierTraining::new().with_epochs(4).with_batch_size(16);
        let device = Default::default();
        let phase = |data, epochs| TrainingPhase {
            data,
            epochs,
            class_weights: None,
            frozen_features: false,
        };
        let logits = |m: &Classifier<_>| first_logits(m, &data, 4);
        let whole = train_classifier::<TrainBackend>(&data, &config, &training, None, &device)
            .expect("trains");
        let split = train_classifier_in_phases::<TrainBackend>(
            &[phase(&data, 1), phase(&data, 3)],
            &config,
            &training,
            &device,
        )
        .expect("trains");
        assert_eq!(logits(&whole), logits(&split), "one set in two phases");
        // The last phase teaches the opposite labels for longer: the model ends with them.
        let turned = train_classifier_in_phases::<TrainBackend>(
            &[phase(&data, 1), phase(&swapped, 8)],
            &config,
            &training,
            &device,
        )
        .expect("trains");
        let predicted = predict(&turned, &data, &device);
        let recalls = ConfusionMatrix::from_labels(data.labels(), &predicted, 2)
            .expect("matrix")
            .recalls();
        assert!(recalls.iter().all(|&r| r < 0.5), "{recalls:?}");
        let Err(err) = train_classifier_in_phases::<TrainBackend>(
            &[
                phase(&data, 1),
                TrainingPhase {
                    class_weights: Some(&[1.0]),
                    ..phase(&swapped, 1)
                },
            ],
            &config,
            &training,
            &device,
        ) else {
            panic!("one weight for two classes must be refused");
        };
        assert!(err.to_string().contains("phase 1"), "{err}");
    }

    /// Both convolutions' weights and biases, as numbers.
    fn conv_parameters(model: &Classifier<crate::backend::ComputeBackend>) -> Vec<f32> {
        let mut tensors = vec![model.conv1.weight.val(), model.conv2.weight.val()];
        tensors.extend(model.conv1.bias.iter().chain(&model.conv2.bias).map(|b| {
            let n = b.val().dims()[0];
            b.val().reshape([n, 1, 1, 1])
        }));
        tensors
            .into_iter()
            .flat_map(|t| {
                t.into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .expect("f32")
            })
            .collect()
    }

    #[test]
    fn a_phase_with_frozen_features_trains_the_head_alone() {
        let data = two_patterns(32);
        let swapped = two_patterns_labelled(32, true);
        let config = ClassifierConfig::new(2).with_width(4);
        let training = ClassifierTraining::new().with_batch_size(16);
        let device = Default::default();
        let phase = |data, epochs, frozen_features| TrainingPhase {
            data,
            epochs,
            class_weights: None,
            frozen_features,
        };
        let run = |phases: &[TrainingPhase<'_>]| {
            train_classifier_in_phases::<TrainBackend>(phases, &config, &training, &device)
        };
        // The same first phase, then 8 frozen epochs of either labelling: the convolutions end
        // where the first phase left them whatever the second taught, the head follows it.
        let kept = run(&[phase(&data, 1, false), phase(&data, 8, true)]).expect("trains");
        let turned = run(&[phase(&data, 1, false), phase(&swapped, 8, true)]).expect("trains");
        assert_eq!(conv_parameters(&kept), conv_parameters(&turned));
        let recalls = |model: &Classifier<_>| {
            let predicted = predict(model, &data, &device);
            ConfusionMatrix::from_labels(data.labels(), &predicted, 2)
                .expect("matrix")
                .recalls()
        };
        assert!(
            recalls(&turned).iter().all(|&r| r < 0.5),
            "{:?}",
            recalls(&turned)
        );
        assert!(
            recalls(&kept).iter().all(|&r| r > 0.5),
            "{:?}",
            recalls(&kept)
        );
        // Unfrozen, the second phase moves the convolutions too.
        let retrained = run(&[phase(&data, 1, false), phase(&swapped, 8, false)]).expect("trains");
        assert_ne!(conv_parameters(&retrained), conv_parameters(&turned));
        // Features frozen once stay frozen.
        let Err(err) = run(&[phase(&data, 1, true), phase(&data, 1, false)]) else {
            panic!("a phase that trains the convolutions after a frozen one must be refused");
        };
        assert!(
            err.to_string().contains("phase 1") && err.to_string().contains("phase 0"),
            "{err}"
        );
    }
}
