//! The `coordinator start` / `generate` argument groups that become the job's generation and
//! evaluation settings.

use anygan_proto::generation::{
    EvaluationSettings, GenerationSpec, GeneratorWeights, JudgeKeeps, LearningRateSchedule, Targets,
};
use clap::Args;

/// How the images each class lacks are generated.
#[derive(Args, Debug, Clone)]
pub(super) struct GenerationArgs {
    /// Per-class targets, comma-separated (default: every class up to the largest one).
    #[arg(long, value_delimiter = ',')]
    generation_targets: Vec<usize>,
    #[arg(long, default_value_t = 0)]
    generation_seed: u64,
    /// Images per generator forward pass.
    #[arg(long, default_value_t = 64)]
    generation_batch: usize,
    /// Images per task (a multiple of --generation-batch); tasks are spread over the workers.
    #[arg(long, default_value_t = 512)]
    generation_task_images: usize,
    /// Do not write the rebalanced dataset (originals + generated, as image folders and IDX).
    #[arg(long)]
    no_rebalanced_set: bool,
    /// The truncation trick: noise components beyond ±T are drawn again, giving more typical
    /// images of each class at the cost of variety (0: plain N(0, 1) noise; else ≥ 0.2).
    #[arg(long, default_value_t = anygan_proto::generation::DEFAULT_TRUNCATION)]
    generation_truncation: f32,
    /// Sample from the generator's weights as trained at the checkpoint instead of their
    /// moving average (see --generator-ema).
    #[arg(long)]
    generation_as_trained_weights: bool,
    /// Draw this many candidates per image and keep the one the checkpoint's discriminator
    /// finds most real for its class (1: no ranking).
    #[arg(long, default_value_t = 1)]
    generation_candidates: usize,
    /// Anchored generation: invert up to N real images of each class into the generator's
    /// noise space and draw every image between one of them and a near one (0: sample the
    /// noise prior). Costs --generation-inversion-steps generator passes per anchor.
    #[arg(long, default_value_t = 0)]
    generation_anchors: usize,
    /// Optimizer steps of each anchor's inversion.
    #[arg(long, default_value_t = anygan_proto::generation::DEFAULT_INVERSION_STEPS)]
    generation_inversion_steps: usize,
}

impl GenerationArgs {
    pub(super) fn spec(&self) -> GenerationSpec {
        GenerationSpec {
            targets: if self.generation_targets.is_empty() {
                Targets::Largest
            } else {
                Targets::PerClass(self.generation_targets.clone())
            },
            seed: self.generation_seed,
            batch: self.generation_batch,
            truncation: self.generation_truncation,
            weights: if self.generation_as_trained_weights {
                GeneratorWeights::AsTrained
            } else {
                GeneratorWeights::Averaged
            },
            candidates: self.generation_candidates,
            task_images: self.generation_task_images,
            rebalanced_set: !self.no_rebalanced_set,
            anchors: self.generation_anchors,
            inversion_steps: self.generation_inversion_steps,
        }
    }
}

/// The evaluation scheduled after generation (Fashion-MNIST data only: it needs the test split).
#[derive(Args, Debug, Clone)]
pub(super) struct EvaluationArgs {
    /// No evaluation after generation.
    #[arg(long)]
    no_evaluation: bool,
    /// Methods: long-tail, random-oversampling, class-weighted, anygan, smote,
    /// shifted-oversampling.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = anygan_proto::generation::EVALUATION_METHODS.map(String::from)
    )]
    eval_methods: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    eval_seeds: Vec<u64>,
    /// Classifier epochs (the benchmark uses 10; 2 keeps the main job short on CPU).
    #[arg(long, default_value_t = 2)]
    eval_epochs: usize,
    #[arg(long, default_value_t = 128)]
    eval_batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    eval_learning_rate: f64,
    /// The classifier's learning rate over its steps: cosine (down to 0) or
    /// constant.
    #[arg(long, default_value_t = LearningRateSchedule::Cosine)]
    eval_schedule: LearningRateSchedule,
    /// Width of the classifier's first convolution.
    #[arg(long, default_value_t = 32)]
    eval_width: usize,
    /// Skip measuring the generator itself (CAS and the reference classifier's labels of the
    /// generated images; one run each, first seed).
    #[arg(long)]
    no_eval_quality: bool,
    /// Method (d): the share of each rare class that is its real images repeated; generated
    /// images fill the rest (0: the long-tailed set plus every generated image).
    #[arg(long, default_value_t = anygan_proto::generation::DEFAULT_REAL_SHARE)]
    eval_real_share: f64,
    /// Method (d) trains only on the generated images a classifier trained on the oversampled
    /// long-tailed set labels as their class (costs one more classifier per seed).
    #[arg(long)]
    eval_filter_generated: bool,
    /// With --eval-filter-generated: which of the images the judge labels as their class (d)
    /// keeps — all, or per class the share it is least or most sure of (least-sure:0.5,
    /// most-sure:0.5).
    #[arg(long, default_value_t = JudgeKeeps::All)]
    eval_judge_keeps: JudgeKeeps,
    /// Method (d): every class, the largest included, is the real share real and the rest
    /// generated (originals subsampled where a class has more). The largest class needs
    /// generated images too: give --generation-targets above its count.
    #[arg(long)]
    eval_same_mix: bool,
    /// Method (d): random oversampling's set (as (b) draws it) plus this many generated images
    /// of every class, the largest included, instead of the real share; the generation targets
    /// must leave every class that many (e.g. every target 8000 for 4000 here).
    #[arg(long, default_value_t = 0, conflicts_with_all = ["eval_real_share", "eval_same_mix"])]
    eval_added_generated: usize,
    /// Method (d): its real copies drawn as method (f) draws its own (the last quarter of each
    /// class's target shifted by up to 2 pixels, the rest exact); with --eval-added-generated,
    /// (f)'s set instead of (b)'s.
    #[arg(long)]
    eval_shifted_copies: bool,
    /// Every remedy but (b): the classifier's last N epochs train on random oversampling's set
    /// (as (b) draws it) instead of the method's own — deferred re-sampling. Below
    /// --eval-epochs; 0 (the default) keeps each method's set throughout.
    #[arg(long, default_value_t = 0)]
    eval_finish_oversampled_epochs: usize,
    /// Every method: this many epochs on the long-tailed set as it is before its --eval-epochs
    /// on its own set — deferred re-balancing ((b) then is deferred re-sampling). 0: none.
    #[arg(long, default_value_t = 0)]
    eval_long_tail_first_epochs: usize,
    /// With --eval-long-tail-first-epochs: after that start only the classifier's head trains
    /// on each method's set, the convolutions frozen (classifier re-training).
    #[arg(long)]
    eval_rebalance_head_only: bool,
    /// With --eval-long-tail-first-epochs: during that start every class below N images is
    /// topped up to N — method (d) with generated images, every other method with exact
    /// copies. 0 (the default): the long-tailed set as it is.
    #[arg(long, default_value_t = 0)]
    eval_long_tail_start_floor: usize,
    /// Every method's classifier: each training image shifted by up to N pixels each way,
    /// drawn anew every step. 0 (the default): not shifted.
    #[arg(long, default_value_t = 0)]
    eval_augment_shift: usize,
    /// Every method's classifier: the chance that a training image is flipped left to right.
    /// 0 (the default): never.
    #[arg(long, default_value_t = 0.0)]
    eval_augment_flip_probability: f64,
    /// Also score every classifier on a balanced validation set of N images per class held
    /// out of the training split (outside the long-tailed set), to choose settings on
    /// without the test sets. 0 (the default): none.
    #[arg(long, default_value_t = 0)]
    eval_validation_per_class: usize,
}

impl EvaluationArgs {
    pub(super) fn settings(&self) -> Option<EvaluationSettings> {
        (!self.no_evaluation).then(|| EvaluationSettings {
            methods: self.eval_methods.clone(),
            seeds: self.eval_seeds.clone(),
            epochs: self.eval_epochs,
            batch_size: self.eval_batch_size,
            learning_rate: self.eval_learning_rate,
            schedule: self.eval_schedule,
            width: self.eval_width,
            quality: !self.no_eval_quality,
            real_share: self.eval_real_share,
            filter_generated: self.eval_filter_generated,
            judge_keeps: self.eval_judge_keeps,
            same_mix: self.eval_same_mix,
            added_generated: self.eval_added_generated,
            shifted_copies: self.eval_shifted_copies,
            finish_oversampled_epochs: self.eval_finish_oversampled_epochs,
            long_tail_first_epochs: self.eval_long_tail_first_epochs,
            rebalance_head_only: self.eval_rebalance_head_only,
            long_tail_start_floor: self.eval_long_tail_start_floor,
            augment_shift: self.eval_augment_shift,
            augment_flip_probability: self.eval_augment_flip_probability,
            validation_per_class: self.eval_validation_per_class,
        })
    }
}
