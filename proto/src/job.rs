//! The job specification the coordinator hands every worker (as JSON in `RegisterResponse`).
//! Plain data: the worker turns it into its model and training configs and validates it.

use crate::shard::Sampling;
use serde::{Deserialize, Serialize};

/// BENCHMARK.md's long-tailed training counts per class (imbalance ratio 100, GAMO / DeepSMOTE).
pub const LONG_TAIL_TRAIN_COUNTS: [usize; 10] = [4000, 2000, 1000, 750, 500, 350, 200, 100, 60, 40];

/// Which files make the dataset and how they are laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DatasetFormat {
    /// Debian's `dataset-fashion-mnist` files; `test` picks the t10k split.
    FashionMnist { test: bool },
    /// An IDX images file and labels file relative to the location; no names → "0", "1", ...
    Idx {
        images: String,
        labels: String,
        class_names: Vec<String>,
    },
    /// `<class>/<image>.png|jpg` under the location.
    Folder,
}

/// A dataset and the per-class subset to train on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSource {
    /// A local directory or `s3://bucket/prefix`.
    pub location: String,
    pub format: DatasetFormat,
    /// Keep this many records of each class (e.g. BENCHMARK.md's long tail); none keeps all.
    pub class_counts: Option<Vec<usize>>,
    /// Seed of the per-class draw.
    pub subset_seed: u64,
}

/// The cDCGAN's architecture, less the class count (which the data decides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub width: usize,
    pub image_size: usize,
    pub channels: usize,
    pub latent_dim: usize,
    pub dropout: f64,
    /// The discriminator adds a projection term to its logit (`GanConfig::projection`).
    #[serde(default)]
    pub projection_discriminator: bool,
    /// Weight of the auxiliary classifier's terms (AC-GAN, `GanConfig::auxiliary_classifier`);
    /// none: no auxiliary classifier, the recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auxiliary_classifier: Option<f32>,
    /// The discriminator's weights are spectrally normalized (`GanConfig::spectral_norm`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spectral_norm: bool,
    /// Weight of the unconditional half-resolution terms (UTLO,
    /// `GanConfig::unconditional_low_resolution`); none: the recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconditional_low_resolution: Option<f32>,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            width: 64,
            image_size: 28,
            channels: 1,
            latent_dim: 100,
            dropout: 0.4,
            projection_discriminator: false,
            auxiliary_classifier: None,
            spectral_norm: false,
            unconditional_low_resolution: None,
        }
    }
}

/// The decay of the generator's moving average unless told otherwise: a horizon of about a
/// thousand steps.
pub const DEFAULT_GENERATOR_EMA: f32 = 0.999;

/// The widest model measured to train without DiffAugment. Measured 2026-12-01 on long-tailed
/// Fashion-MNIST, global batch 64, class-balanced real batches: W = 96 and 112 trained;
/// W = 128 (seeds 0 and 1, also at learning rate 1e-4, with a 200- or 500-step learning-rate
/// warm-up, without the weight average) and W = 160 drove the generator to all-black images
/// within 20–200 steps, the discriminator rejecting every generated image from then on;
/// `color,translation,cutout` kept W = 128 training.
pub const WIDEST_MEASURED_WITHOUT_DIFF_AUGMENT: usize = 112;

/// The largest shift, in pixels along each axis, that keeps more than half of an image whose
/// shorter side is `side` in its frame: the bound on every shift of images anygan makes (the
/// GAN's shifted real images, the classifier's augmentation, method (f)'s shifted copies).
pub fn largest_image_shift(side: usize) -> usize {
    side.div_ceil(2).saturating_sub(1)
}

/// A warning for a model wider than any measured to train without DiffAugment, when it has
/// none; None otherwise.
pub fn width_warning(width: usize, diff_augment: Option<&str>) -> Option<String> {
    let augmented = diff_augment.is_some_and(|policy| !matches!(policy, "" | "none"));
    (width > WIDEST_MEASURED_WITHOUT_DIFF_AUGMENT && !augmented).then(|| {
        format!(
            "width {width} without DiffAugment: every run measured wider than \
             {WIDEST_MEASURED_WITHOUT_DIFF_AUGMENT} (W = 128 and 160 on long-tailed \
             Fashion-MNIST) collapsed to all-black images within 200 steps; add \
             --diff-augment color,translation,cutout, which kept W = 128 training"
        )
    })
}

/// Everything a worker needs to train its replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub job_id: String,
    pub dataset: DatasetSource,
    pub model: ModelSpec,
    /// Train until this many steps are complete.
    pub steps: u64,
    /// Images per step over all workers; each worker takes `global_batch / world_size`.
    pub global_batch: usize,
    /// Adam's rate for the generator, and for the discriminator unless it has its own.
    pub learning_rate: f64,
    /// The discriminator's own Adam rate (two time-scale update rule); none: `learning_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discriminator_learning_rate: Option<f64>,
    pub seed: u64,
    /// Draw generated images' labels uniformly instead of with the data's class frequencies.
    pub uniform_fake_labels: bool,
    /// How the discriminator's real batches are drawn; class-balanced implies uniform fake
    /// labels (the discriminator must see real and generated images of a class equally often).
    #[serde(default)]
    pub real_sampling: Sampling,
    /// Where results go: a local directory or `s3://bucket/prefix`.
    pub output: String,
    /// Object-store options (endpoint, region, ...), KEY=VALUE pairs.
    pub store_options: Vec<(String, String)>,
    /// Sample grid every N steps (0: only at the end).
    pub sample_every: u64,
    /// Replicas report a parameter checksum every N steps (0: only at the end).
    pub checksum_every: u64,
    /// Rank 0 commits a checkpoint every N steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Rank 0 waits for each periodic checkpoint to commit (the ring waits with it) instead of
    /// skipping one that is due while the previous is still uploading.
    #[serde(default)]
    pub wait_for_checkpoints: bool,
    /// Newest checkpoints kept; older ones are deleted.
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
    pub min_workers: usize,
    pub max_workers: usize,
    /// A collective whose peer does not answer within this fails instead of hanging.
    pub collective_timeout_ms: u64,
    /// Class-targeted generation after training; none: training only.
    #[serde(default)]
    pub generation: Option<crate::generation::GenerationSpec>,
    /// The evaluation after generation; none: no evaluation.
    #[serde(default)]
    pub evaluation: Option<crate::generation::EvaluationSettings>,
    /// A generation-only job: no training, generate from this checkpoint (a prefix under
    /// `<output>/checkpoints/`).
    #[serde(default)]
    pub generate_from: Option<String>,
    /// Lay the shard plan out for this many ranks instead of the actual world size, so a run
    /// with fewer workers replays exactly the global batches of a run with more (a multiple of
    /// the world size). None: the actual world size.
    #[serde(default)]
    pub shard_world_size: Option<usize>,
    /// Keep a moving average of the generator's weights with this decay, for generation to
    /// sample from; none: no average. Training itself never reads it.
    #[serde(default)]
    pub generator_ema: Option<f32>,
    /// DiffAugment policy for the discriminator's inputs (`color,translation,cutout`); none:
    /// the images as they are.
    #[serde(default)]
    pub diff_augment: Option<String>,
    /// Weight of the mode-seeking term in the generator's loss (pairs of images of one class
    /// must differ as their noise does); none: off.
    #[serde(default)]
    pub mode_seeking: Option<f32>,
    /// Weight of the discriminator's mismatched-label term (real images under wrong labels
    /// count as fakes); none: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatched_labels: Option<f32>,
    /// Shift every real image the discriminator sees by up to this many pixels each way, so
    /// the generator learns to draw each class at varied positions; none: as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_shift: Option<usize>,
    /// Train with the hinge loss instead of the recipe's binary cross-entropy
    /// (`TrainConfig::adversarial_loss`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hinge_loss: bool,
}

/// Refuses an optional loss weight that is not positive and finite, naming `field`.
fn check_weight(field: &str, weight: Option<f32>) -> Result<(), String> {
    match weight {
        Some(weight) if !(weight > 0.0 && weight.is_finite()) => {
            Err(format!("{field} {weight} is not a positive weight"))
        }
        _ => Ok(()),
    }
}

fn default_keep_checkpoints() -> usize {
    3
}

impl JobSpec {
    /// The spec as checkpoint manifests record it: object-store options (credentials among
    /// them) removed.
    pub fn without_secrets(&self) -> Self {
        Self {
            store_options: Vec::new(),
            ..self.clone()
        }
    }

    /// Why a checkpoint written under `saved` cannot continue this job, naming the first field
    /// that changes the training itself; `None` when it can. Steps, workers, timeouts, where
    /// outputs go and how often things are written may all change between runs.
    pub fn resume_conflict(&self, saved: &JobSpec) -> Option<String> {
        let differs = |field: &str, ours: String, theirs: String| {
            (ours != theirs)
                .then(|| format!("`{field}` is {ours} here but {theirs} in the checkpoint"))
        };
        differs(
            "dataset",
            format!("{:?}", self.dataset),
            format!("{:?}", saved.dataset),
        )
        .or_else(|| {
            differs(
                "model",
                format!("{:?}", self.model),
                format!("{:?}", saved.model),
            )
        })
        .or_else(|| {
            differs(
                "global_batch",
                self.global_batch.to_string(),
                saved.global_batch.to_string(),
            )
        })
        .or_else(|| {
            differs(
                "learning_rate",
                self.learning_rate.to_string(),
                saved.learning_rate.to_string(),
            )
        })
        .or_else(|| {
            differs(
                "discriminator_learning_rate",
                format!("{:?}", self.discriminator_learning_rate),
                format!("{:?}", saved.discriminator_learning_rate),
            )
        })
        .or_else(|| differs("seed", self.seed.to_string(), saved.seed.to_string()))
        .or_else(|| {
            differs(
                "uniform_fake_labels",
                self.uniform_fake_labels.to_string(),
                saved.uniform_fake_labels.to_string(),
            )
        })
        .or_else(|| {
            differs(
                "real_sampling",
                format!("{:?}", self.real_sampling),
                format!("{:?}", saved.real_sampling),
            )
        })
        .or_else(|| {
            differs(
                "real_shift",
                format!("{:?}", self.real_shift),
                format!("{:?}", saved.real_shift),
            )
        })
        .or_else(|| {
            differs(
                "hinge_loss",
                self.hinge_loss.to_string(),
                saved.hinge_loss.to_string(),
            )
        })
    }

    /// Whether generated images' labels are drawn uniformly during training.
    pub fn fake_labels_uniform(&self) -> bool {
        self.uniform_fake_labels || self.real_sampling == Sampling::ClassBalanced
    }

    /// Images each of `world_size` workers takes per step; the global batch must divide evenly.
    pub fn local_batch(&self, world_size: usize) -> Result<usize, String> {
        if world_size == 0 || !self.global_batch.is_multiple_of(world_size) {
            return Err(format!(
                "global_batch {} is not divisible by {world_size} workers",
                self.global_batch
            ));
        }
        Ok(self.global_batch / world_size)
    }

    /// The world size the shard plan is laid out for, given the actual one.
    pub fn plan_world(&self, world_size: usize) -> Result<usize, String> {
        let plan = self.shard_world_size.unwrap_or(world_size);
        if world_size == 0
            || !plan.is_multiple_of(world_size)
            || !self.global_batch.is_multiple_of(plan)
        {
            return Err(format!(
                "shard_world_size {plan} must be a multiple of the {world_size} workers and divide global_batch {}",
                self.global_batch
            ));
        }
        Ok(plan)
    }

    /// Checks the fields that do not need the data; names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        check_weight("mode_seeking", self.mode_seeking)?;
        check_weight("mismatched_labels", self.mismatched_labels)?;
        check_weight(
            "model auxiliary_classifier",
            self.model.auxiliary_classifier,
        )?;
        check_weight(
            "model unconditional_low_resolution",
            self.model.unconditional_low_resolution,
        )?;
        if self.mode_seeking.is_some() && !self.global_batch.is_multiple_of(2) {
            return Err(format!(
                "mode_seeking pairs the generator's images, but global_batch {} is odd",
                self.global_batch
            ));
        }
        if let Some(policy) = &self.diff_augment
            && let Some(unknown) = policy
                .split(',')
                .map(str::trim)
                .find(|name| !["color", "translation", "cutout", "none", ""].contains(name))
        {
            return Err(format!(
                "diff_augment `{unknown}` is not color, translation, cutout or none"
            ));
        }
        if let Some(shift) = self.real_shift {
            let largest = largest_image_shift(self.model.image_size);
            if shift == 0 || shift > largest {
                return Err(format!(
                    "real_shift {shift} must be 1 to {largest} pixels for {0}×{0} images (0 on the command line turns it off)",
                    self.model.image_size
                ));
            }
        }
        if let Some(decay) = self.generator_ema
            && !(decay.is_finite() && decay > 0.0 && decay < 1.0)
        {
            return Err(format!(
                "generator_ema decay {decay} is not in (0, 1) (0 on the command line turns it off)"
            ));
        }
        if self.min_workers == 0 || self.max_workers < self.min_workers {
            return Err(format!(
                "min_workers {} and max_workers {} must satisfy 1 <= min <= max",
                self.min_workers, self.max_workers
            ));
        }
        if self.global_batch == 0 {
            return Err("global_batch must be positive".into());
        }
        if self.keep_checkpoints == 0 {
            return Err("keep_checkpoints must be at least 1".into());
        }
        if let Some(generation) = &self.generation {
            generation.validate()?;
        }
        if let Some(evaluation) = &self.evaluation {
            evaluation.validate()?;
            if evaluation.validation_per_class > 0 && self.dataset.class_counts.is_none() {
                return Err(
                    "evaluation validation_per_class holds images out of the training \
                     split's per-class subset, and the dataset has no class_counts: every image \
                     trains, none is left to validate on"
                        .into(),
                );
            }
        }
        if self.generate_from.is_some() && self.generation.is_none() {
            return Err("generate_from needs generation settings".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(format!(
                "learning_rate {} must be positive",
                self.learning_rate
            ));
        }
        if let Some(rate) = self.discriminator_learning_rate
            && !(rate > 0.0 && rate.is_finite())
        {
            return Err(format!(
                "discriminator_learning_rate {rate} must be positive"
            ));
        }
        if let Some(plan) = self.shard_world_size
            && (plan == 0 || !self.global_batch.is_multiple_of(plan))
        {
            return Err(format!(
                "shard_world_size {plan} must be positive and divide global_batch {}",
                self.global_batch
            ));
        }
        if self.collective_timeout_ms == 0 {
            return Err("collective_timeout_ms must be positive".into());
        }
        Ok(())
    }
}

/// A small valid job (Fashion-MNIST at `/data`, 10 steps, global batch 64, 1–4 workers, no
/// option switched on), for the tests of every crate that takes a job spec: each names only what
/// it is about (`JobSpec { steps: 2, ..JobSpec::for_tests() }`), so a new field is one line
/// here, not one in every test's literal. Feature `test-util`.
#[cfg(any(test, feature = "test-util"))]
impl JobSpec {
    pub fn for_tests() -> Self {
        JobSpec {
            job_id: "j".into(),
            dataset: DatasetSource {
                location: "/data".into(),
                format: DatasetFormat::FashionMnist { test: false },
                class_counts: None,
                subset_seed: 0,
            },
            model: ModelSpec::default(),
            steps: 10,
            global_batch: 64,
            learning_rate: 2e-4,
            discriminator_learning_rate: None,
            seed: 0,
            uniform_fake_labels: false,
            real_sampling: Sampling::AsIs,
            output: "out".into(),
            store_options: vec![],
            sample_every: 0,
            checksum_every: 0,
            checkpoint_every: 0,
            wait_for_checkpoints: false,
            keep_checkpoints: 3,
            generation: None,
            evaluation: None,
            generate_from: None,
            min_workers: 1,
            max_workers: 4,
            collective_timeout_ms: 1000,
            shard_world_size: None,
            generator_ema: None,
            diff_augment: None,
            mode_seeking: None,
            mismatched_labels: None,
            real_shift: None,
            hinge_loss: false,
        }
    }
}

#[cfg(test)]
mod tests;
