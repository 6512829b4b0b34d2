//! One cDCGAN training step (discriminator update, then generator update, two Adam optimizers)
//! and the state it advances. Every random draw comes from a stream keyed by (seed, step, rank),
//! so a step is a pure function of the state and the batch: runs with one seed are identical
//! and a resumed run continues bit for bit.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::augment::DiffAugment;
use super::ema::{EmaSettings, GeneratorEma};
use super::losses::{cross_entropy, discriminator_term, generator_term, mode_seeking_term};
use super::model::{Discriminator, Generator};
use super::params::force_init;
use super::sync::average_gradients;
use crate::collective::{GradientAllReduce, SingleReplica};
use crate::error::{Error, Result};
use crate::rng::Purpose;

mod config;
mod draws;
mod step_losses;
pub use config::{AdversarialLoss, FakeLabels, TrainConfig};
use draws::label_cdf;
pub(crate) use draws::labels_tensor;
pub use step_losses::StepLosses;

/// One real batch: pixels in [-1, 1], channel-first, and one label per image.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u16>,
}

type GeneratorOptim<B> = OptimizerAdaptor<Adam, Generator<B>, B>;
type DiscriminatorOptim<B> = OptimizerAdaptor<Adam, Discriminator<B>, B>;

/// Serializes model initialization: burn draws initial weights from a process-global RNG, so
/// two models initialized at once on different threads would interleave their draws. Every
/// initialization in this crate goes through [`seeded_init`].
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `init` holding the init lock with the backend's RNG seeded by `seed`. `init` must
/// materialize every parameter it creates (burn initializes lazily, at first use), e.g. with
/// [`force_init`], so that no draw happens later, outside the lock.
pub(crate) fn seeded_init<B: Backend, T>(
    device: &B::Device,
    seed: u64,
    init: impl FnOnce() -> T,
) -> T {
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, seed);
    init()
}

/// The models, their optimizers and the step counter.
#[derive(Clone)]
pub struct GanTrainer<B: AutodiffBackend> {
    pub(crate) config: TrainConfig,
    pub(crate) generator: Generator<B>,
    pub(crate) discriminator: Discriminator<B>,
    pub(crate) generator_optim: GeneratorOptim<B>,
    pub(crate) discriminator_optim: DiscriminatorOptim<B>,
    /// Steps completed.
    pub(crate) step: u64,
    /// The moving average of the generator's weights that generation samples from, if the run
    /// keeps one. Training never reads it.
    pub(crate) generator_ema: Option<(EmaSettings, GeneratorEma<B::InnerBackend>)>,
    /// The transforms every discriminator input goes through, if any.
    pub(crate) diff_augment: Option<DiffAugment>,
    /// Weight of the mode-seeking term in the generator's loss, if any (see
    /// [`GanTrainer::set_mode_seeking`]).
    pub(crate) mode_seeking: Option<f32>,
    /// Weight of the discriminator's mismatched-label term, if any (see
    /// [`GanTrainer::set_mismatched_labels`]).
    pub(crate) mismatched_labels: Option<f32>,
    /// Cumulative class weights used to draw labels of generated images.
    label_cdf: Vec<f64>,
    /// This replica's rank and the number of replicas. Random draws are made for the whole
    /// global batch and each rank keeps its rows, so n replicas at batch B/n see exactly what
    /// one replica at batch B sees.
    rank: usize,
    world_size: usize,
    device: B::Device,
}

impl<B: AutodiffBackend> GanTrainer<B> {
    /// Fresh models initialized from `config.seed`. `class_counts` (the training set's) shapes
    /// the label distribution of generated images under [`FakeLabels::Empirical`].
    pub fn new(config: TrainConfig, class_counts: &[usize], device: &B::Device) -> Result<Self> {
        if class_counts.len() != config.gan.num_classes {
            return Err(Error::config(
                "num_classes",
                format!(
                    "the model has {} classes, the data {}",
                    config.gan.num_classes,
                    class_counts.len()
                ),
            ));
        }
        if config.batch_size == 0 {
            return Err(Error::config("batch_size", "must be positive"));
        }
        for (field, rate) in [
            ("learning_rate", config.learning_rate),
            ("discriminator_learning_rate", config.discriminator_rate()),
        ] {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(Error::config(field, format!("{rate} is not positive")));
            }
        }
        super::real_shift::check(config.real_shift, config.gan.image_shape())?;
        let (generator, discriminator) = seeded_init::<B, _>(device, config.seed, || {
            let (generator, discriminator) = config.gan.init::<B>(device)?;
            // Parameters initialize lazily; draw them all while the seed is ours.
            Ok::<_, Error>((force_init(generator), force_init(discriminator)))
        })?;
        let label_cdf = label_cdf(config.fake_labels, class_counts)?;
        Ok(Self {
            generator_optim: config.adam().init(),
            discriminator_optim: config.adam().init(),
            config,
            generator,
            discriminator,
            step: 0,
            generator_ema: None,
            diff_augment: None,
            mode_seeking: None,
            mismatched_labels: None,
            label_cdf,
            rank: 0,
            world_size: 1,
            device: device.clone(),
        })
    }

    /// Makes this trainer replica `rank` of `world_size`; each then trains on
    /// `batch_size / world_size` images per step.
    pub fn set_replica(&mut self, rank: usize, world_size: usize) -> Result<()> {
        if world_size == 0
            || rank >= world_size
            || !self.config.batch_size.is_multiple_of(world_size)
        {
            return Err(Error::config(
                "world_size",
                format!(
                    "rank {rank} of {world_size} replicas cannot split a batch of {}",
                    self.config.batch_size
                ),
            ));
        }
        self.rank = rank;
        self.world_size = world_size;
        Ok(())
    }

    /// Images this replica trains on per step.
    pub fn local_batch(&self) -> usize {
        self.config.batch_size / self.world_size
    }

    /// Restarts the step counter at `step` (a replica admitted into a running job).
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The generator without autodiff, as trained.
    pub fn generator(&self) -> Generator<B::InnerBackend> {
        self.generator.valid()
    }

    /// The generator to sample from: the weights' moving average when the run keeps one, else
    /// the generator as trained.
    pub fn sampling_generator(&self) -> Generator<B::InnerBackend> {
        match &self.generator_ema {
            Some((_, ema)) => ema.generator.clone(),
            None => self.generator(),
        }
    }

    /// Sends every discriminator input, real or generated, through `augment` (none: as is).
    /// It changes the training from this step on; a resumed run must ask for the same to
    /// continue bit for bit.
    pub fn set_diff_augment(&mut self, augment: Option<DiffAugment>) {
        self.diff_augment = augment;
    }

    pub fn diff_augment(&self) -> Option<DiffAugment> {
        self.diff_augment
    }

    /// Adds `weight` × the mode-seeking term to the generator's loss (Mao et al., "Mode Seeking
    /// Generative Adversarial Networks for Diverse Image Synthesis", 2019); none: off. The
    /// generator's batch is drawn in pairs (global rows 2i and 2i + 1) with one label and two
    /// noise vectors, and each pair adds 1 / (d(G(z₁), G(z₂)) / d(z₁, z₂) + ε), mean absolute
    /// differences: a generator that maps different noise to one image of a class — the
    /// collapse that leaves a rare class with one kind of shirt — pays for it. Every replica
    /// must then train on an even number of images. Like DiffAugment it changes the training
    /// from this step on.
    pub fn set_mode_seeking(&mut self, weight: Option<f32>) -> Result<()> {
        Error::check_weight("mode_seeking", weight)?;
        self.mode_seeking = weight;
        Ok(())
    }

    pub fn mode_seeking(&self) -> Option<f32> {
        self.mode_seeking
    }

    /// Adds `weight` × BCE(D(real image, wrong label), 0) to the discriminator's loss (the
    /// matching-aware discriminator of Reed et al., "Generative Adversarial Text to Image
    /// Synthesis", 2016); none: off. Each real image is shown again under a label drawn from the
    /// other classes, as a fake: the discriminator must check that an image is of its class,
    /// not only that it is realistic, so a generated "shirt" that is a realistic t-shirt is
    /// refused — the confusion the recipe's concatenated label leaves open between similar
    /// classes. Like mode seeking it changes the training from this step on.
    pub fn set_mismatched_labels(&mut self, weight: Option<f32>) -> Result<()> {
        Error::check_weight("mismatched_labels", weight)?;
        if weight.is_some() && self.config.gan.num_classes < 2 {
            return Err(Error::config(
                "mismatched_labels",
                "needs at least two classes to draw a wrong label from",
            ));
        }
        self.mismatched_labels = weight;
        Ok(())
    }

    pub fn mismatched_labels(&self) -> Option<f32> {
        self.mismatched_labels
    }

    /// How the generator's weights are being averaged, if they are.
    pub fn generator_ema(&self) -> Option<EmaSettings> {
        self.generator_ema.as_ref().map(|(settings, _)| *settings)
    }

    /// Keeps (`Some(decay)`) or drops (`None`) the moving average of the generator's weights.
    /// An average already kept (restored from a checkpoint) continues with the new decay; a new
    /// one starts at the current weights and step.
    pub fn set_generator_ema(&mut self, decay: Option<f32>) -> Result<()> {
        let Some(decay) = decay else {
            self.generator_ema = None;
            return Ok(());
        };
        EmaSettings::validate_decay(decay)?;
        match &mut self.generator_ema {
            Some((settings, _)) => settings.decay = decay,
            None => {
                self.generator_ema = Some((
                    EmaSettings {
                        decay,
                        since_step: self.step,
                    },
                    GeneratorEma::starting_at(self.generator.valid()),
                ));
            }
        }
        Ok(())
    }

    pub fn discriminator(&self) -> Discriminator<B::InnerBackend> {
        self.discriminator.valid()
    }

    /// Runs one step on `batch` and advances the step counter (single replica).
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepLosses> {
        self.train_step_with(batch, &mut SingleReplica)
    }

    /// Runs one step on this replica's `batch`, averaging both networks' gradients with the
    /// other replicas through `reducer` before each optimizer step. A step whose losses or
    /// scores are not finite fails with [`Error::Diverged`].
    pub fn train_step_with(
        &mut self,
        batch: &Batch,
        reducer: &mut dyn GradientAllReduce,
    ) -> Result<StepLosses> {
        if reducer.world_size() != self.world_size {
            return Err(Error::config(
                "world_size",
                format!(
                    "the trainer is one of {}, the all-reduce one of {}",
                    self.world_size,
                    reducer.world_size()
                ),
            ));
        }
        let size = self.local_batch();
        if self.mode_seeking.is_some() && !size.is_multiple_of(2) {
            return Err(Error::config(
                "mode_seeking",
                format!(
                    "pairs images within a replica, but this one trains on {size} (global batch {} over {} replicas)",
                    self.config.batch_size, self.world_size
                ),
            ));
        }
        let shape = self.config.gan.image_shape();
        if batch.labels.len() != size || batch.images.len() != size * shape.pixel_count() {
            return Err(Error::config(
                "batch",
                format!(
                    "{} labels and {} values do not make a batch of {size} {shape:?} images",
                    batch.labels.len(),
                    batch.images.len()
                ),
            ));
        }
        if let Some(&label) = batch
            .labels
            .iter()
            .find(|&&label| usize::from(label) >= self.config.gan.num_classes)
        {
            return Err(Error::config(
                "batch",
                format!(
                    "label {label} is not one of the model's {} classes",
                    self.config.gan.num_classes
                ),
            ));
        }
        let generator_rate = self.config.learning_rate;
        let discriminator_rate = self.config.discriminator_rate();
        let device = self.device.clone();
        // Graph building, backward passes and optimizer steps hold the process's autodiff lock
        // (see `crate::autodiff`); the all-reduces between them do not.
        let section = crate::autodiff::section();
        let real = Tensor::<B, 4>::from_data(
            TensorData::new(
                self.real_images(&batch.images),
                [size, shape.channels, shape.height, shape.width],
            ),
            &device,
        );
        let real_labels = labels_tensor::<B>(&batch.labels, &device);

        // Discriminator update: real batch (target 1) and a generated batch (target 0). The
        // generated batch comes from the non-autodiff generator, so no graph is built for it.
        let (noise, fake_labels) = self.noise_and_labels(Purpose::DiscriminatorNoise, false);
        let (fake, fake_low_resolution) = self.generator.valid().forward_with_low_resolution(
            self.tensor_2d::<B::InnerBackend>(noise, self.config.gan.latent_dim),
            labels_tensor(&fake_labels, &device),
        );
        let fake = Tensor::<B, 4>::from_inner(fake);
        // UTLO's unconditional terms: the real images pooled to half their side (before
        // augmentation, which each resolution draws for itself) against the generator's
        // half-resolution images.
        let low_resolution = fake_low_resolution.map(|fake_low_resolution| {
            (
                half_resolution(real.clone()),
                Tensor::<B, 4>::from_inner(fake_low_resolution),
            )
        });
        let fake_labels = labels_tensor::<B>(&fake_labels, &device);
        let real = self.augment(real, 0);
        let real_logits =
            self.discriminator
                .forward(real.clone(), real_labels, self.dropout_mask(0));
        let fake_logits =
            self.discriminator
                .forward(self.augment(fake, 1), fake_labels, self.dropout_mask(1));
        let real_score = burn::tensor::activation::sigmoid(real_logits.clone()).mean();
        let fake_score = burn::tensor::activation::sigmoid(fake_logits.clone()).mean();
        let loss = self.config.loss();
        let d_loss = discriminator_term(loss, real_logits, true)
            + discriminator_term(loss, fake_logits, false);
        // The same (augmented) real images under wrong labels, as fakes. Optimized, but kept
        // out of the reported loss so that runs with and without the term compare.
        let mismatched = self.mismatched_labels.map(|weight| {
            let wrong = labels_tensor::<B>(&self.wrong_labels(&batch.labels), &device);
            let logits = self
                .discriminator
                .forward(real.clone(), wrong, self.dropout_mask(3));
            let score = burn::tensor::activation::sigmoid(logits.clone()).mean();
            (
                discriminator_term(loss, logits, false).mul_scalar(weight),
                score,
            )
        });
        // The auxiliary classifier learns the classes from the real images only. Like the
        // mode-seeking term, its terms are optimized but reported apart from the losses.
        let class_real = self
            .discriminator
            .classify(real)
            .map(|class_logits| cross_entropy(class_logits, &batch.labels));
        let low_resolution_d = low_resolution.and_then(|(real_low, fake_low)| {
            let real_logits = self.discriminator.forward_low_resolution(
                self.augment(real_low, LOW_RESOLUTION_PASSES[0]),
                self.dropout_mask(LOW_RESOLUTION_PASSES[0]),
            )?;
            let fake_logits = self.discriminator.forward_low_resolution(
                self.augment(fake_low, LOW_RESOLUTION_PASSES[1]),
                self.dropout_mask(LOW_RESOLUTION_PASSES[1]),
            )?;
            Some(
                discriminator_term(loss, real_logits, true)
                    + discriminator_term(loss, fake_logits, false),
            )
        });
        let mut d_objective = d_loss.clone();
        if let Some((term, _)) = &mismatched {
            d_objective = d_objective + term.clone();
        }
        let d_objective = self.plus_low_resolution(d_objective, low_resolution_d.as_ref());
        let d_objective = self.plus_auxiliary(d_objective, class_real.as_ref());
        let mut d_grads = GradientsParams::from_grads(d_objective.backward(), &self.discriminator);
        drop(section);
        average_gradients(&self.discriminator, &mut d_grads, reducer)?;
        let section = crate::autodiff::section();
        self.discriminator =
            self.discriminator_optim
                .step(discriminator_rate, self.discriminator.clone(), d_grads);

        // Generator update: fresh noise and labels, target 1 through the updated discriminator.
        // The discriminator is frozen for this pass, so no gradient is computed for its weights.
        let (noise, label_values) =
            self.noise_and_labels(Purpose::GeneratorNoise, self.mode_seeking.is_some());
        let labels = labels_tensor::<B>(&label_values, &device);
        let noise = self.tensor_2d::<B>(noise, self.config.gan.latent_dim);
        let (fake, fake_low_resolution) = self
            .generator
            .forward_with_low_resolution(noise.clone(), labels.clone());
        let frozen = self.discriminator.clone().no_grad();
        let low_resolution_g = fake_low_resolution.and_then(|fake_low| {
            frozen
                .forward_low_resolution(
                    self.augment(fake_low, LOW_RESOLUTION_PASSES[2]),
                    self.dropout_mask(LOW_RESOLUTION_PASSES[2]),
                )
                .map(|logits| generator_term(loss, logits))
        });
        let seen = self.augment(fake.clone(), 2);
        let g_loss = generator_term(
            loss,
            frozen.forward(seen.clone(), labels, self.dropout_mask(2)),
        );
        let g_objective = match self.mode_seeking {
            Some(weight) => g_loss.clone() + mode_seeking_term(fake, noise).mul_scalar(weight),
            None => g_loss.clone(),
        };
        // An image drawn for class y must be classified as y.
        let class_generated = frozen
            .classify(seen)
            .map(|class_logits| cross_entropy(class_logits, &label_values));
        let g_objective = self.plus_auxiliary(g_objective, class_generated.as_ref());
        let g_objective = self.plus_low_resolution(g_objective, low_resolution_g.as_ref());
        let mut g_grads = GradientsParams::from_grads(g_objective.backward(), &self.generator);
        drop(section);
        average_gradients(&self.generator, &mut g_grads, reducer)?;
        let section = crate::autodiff::section();
        self.generator = self
            .generator_optim
            .step(generator_rate, self.generator.clone(), g_grads);
        drop(section);
        self.step += 1;
        if let Some((settings, ema)) = &mut self.generator_ema {
            ema.update(&self.generator.valid(), settings.effective_decay(self.step));
        }
        // Off the autodiff graph: reading the values builds nothing to differentiate.
        let mut scalars = vec![
            d_loss.inner(),
            g_loss.inner(),
            real_score.inner(),
            fake_score.inner(),
        ];
        let optional = [
            mismatched.map(|(_, score)| score),
            class_real,
            class_generated,
            low_resolution_d,
            low_resolution_g,
        ];
        let present = optional.each_ref().map(Option::is_some);
        scalars.extend(optional.into_iter().flatten().map(|value| value.inner()));
        let values = read_scalars(scalars)?;
        // The optional values follow the four in `optional`'s order, the absent ones skipped.
        let mut rest = values[4..].iter().copied();
        let [
            mismatched_score,
            class_real,
            class_generated,
            low_resolution_discriminator,
            low_resolution_generator,
        ] = present.map(|is_present| if is_present { rest.next() } else { None });
        let losses = StepLosses {
            discriminator: values[0],
            generator: values[1],
            real_score: values[2],
            fake_score: values[3],
            mismatched_score,
            class_real,
            class_generated,
            low_resolution_discriminator,
            low_resolution_generator,
        };
        // Here, where the values are read, so that no loop around the trainer reports or
        // checkpoints a step that trained on NaN.
        losses.check_finite(self.step)?;
        Ok(losses)
    }

    /// `objective` plus UTLO's unconditional `term` at its weight; the objective alone in the
    /// recipe (then there is no term).
    fn plus_low_resolution(
        &self,
        objective: Tensor<B, 1>,
        term: Option<&Tensor<B, 1>>,
    ) -> Tensor<B, 1> {
        match (self.config.gan.unconditional_low_resolution, term) {
            (Some(weight), Some(term)) => objective + term.clone().mul_scalar(weight),
            _ => objective,
        }
    }

    /// `objective` plus the auxiliary classifier's cross-entropy `term` at its weight; the
    /// objective alone when the model has no auxiliary classifier (then there is no term).
    fn plus_auxiliary(&self, objective: Tensor<B, 1>, term: Option<&Tensor<B, 1>>) -> Tensor<B, 1> {
        match (self.config.gan.auxiliary_classifier, term) {
            (Some(weight), Some(term)) => objective + term.clone().mul_scalar(weight),
            _ => objective,
        }
    }
}

/// The augmentation and dropout passes of UTLO's unconditional terms: the real and the
/// generated half-resolution images in the discriminator's update, the generated ones in the
/// generator's (passes 0–3 are the full-resolution ones and the mismatched labels').
const LOW_RESOLUTION_PASSES: [u64; 3] = [4, 5, 6];

/// `images` average-pooled to half their side: what the unconditional terms compare the
/// generator's half-resolution images with.
fn half_resolution<B: Backend>(images: Tensor<B, 4>) -> Tensor<B, 4> {
    burn::tensor::module::avg_pool2d(images, [2, 2], [2, 2], [0, 0], true, false)
}

/// The values of one-element tensors, read from the device in one transfer: a GPU is waited
/// for once per step, not once per value.
fn read_scalars<B: Backend>(tensors: Vec<Tensor<B, 1>>) -> Result<Vec<f32>> {
    let count = tensors.len();
    let joined = Tensor::cat(tensors.into_iter().map(|t| t.reshape([1])).collect(), 0);
    let values = joined
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|error| Error::config("losses", format!("not readable as f32: {error:?}")))?;
    if values.len() != count {
        return Err(Error::config(
            "losses",
            format!("{} values for {count} losses", values.len()),
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests;
