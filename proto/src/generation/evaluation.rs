//! The evaluation a generation plan schedules: which methods and seeds, how the fixed
//! classifier trains, and how method (d) uses the generated images.

use serde::{Deserialize, Serialize};

/// The evaluation scheduled after generation (issue 6): the fixed classifier trained per
/// method and seed, then one report. Runs only when the data has a test split (Fashion-MNIST).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSettings {
    /// `long-tail`, `random-oversampling`, `class-weighted`, `anygan`, `smote`,
    /// `shifted-oversampling` (and the quality runs `cas`, `full-real`).
    pub methods: Vec<String>,
    pub seeds: Vec<u64>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// How the classifier's learning rate moves over its steps.
    #[serde(default = "LearningRateSchedule::saved_without_one")]
    pub schedule: LearningRateSchedule,
    /// Width of the classifier's first convolution.
    pub width: usize,
    /// Also measure the generator itself, once (first seed): `cas` (a classifier trained on
    /// the generated images only) and `full-real` (the reference trained on the whole real
    /// training split, which labels the generated images).
    #[serde(default)]
    pub quality: bool,
    /// Method (d): the share of each rare class that is its real images repeated, the rest
    /// generated (0: the long-tailed set plus every generated image).
    #[serde(default)]
    pub real_share: f64,
    /// Method (d): train on the generated images a judge (the classifier trained on the
    /// randomly oversampled long-tailed set) labels as their class, not on all of them.
    #[serde(default)]
    pub filter_generated: bool,
    /// Method (d) with `filter_generated`: which of the images the judge labels as their class
    /// it keeps — all of them, or per class the share it is least (or most) sure of.
    #[serde(default)]
    pub judge_keeps: JudgeKeeps,
    /// Method (d): every class, the largest included, is `real_share` real and the rest
    /// generated (the largest class needs generated images too, e.g. from
    /// `--generation-targets`), so being generated says nothing about an image's class.
    #[serde(default)]
    pub same_mix: bool,
    /// Method (d): when above 0, random oversampling's set (as (b) draws it) plus this many
    /// generated images of every class, the largest included, instead of the real share.
    #[serde(default)]
    pub added_generated: usize,
    /// Method (d): its real copies drawn as (f) draws its own — a quarter of each class's
    /// target shifted by up to 2 pixels where copies reach that far, the rest exact; with
    /// `added_generated`, (f)'s set instead of (b)'s. Asks whether the generated images add
    /// anything on top of (f).
    #[serde(default)]
    pub shifted_copies: bool,
    /// Every remedy but (b): the classifier's last this many of its `epochs` train on random
    /// oversampling's set (as (b) draws it, unweighted) instead of the method's own — deferred
    /// re-sampling: the method's set shapes the features, the real copies place the class
    /// boundaries last. 0: the method's set throughout. The quality runs are not affected.
    #[serde(default)]
    pub finish_oversampled_epochs: usize,
    /// Every method: this many epochs on the long-tailed set as it is, unweighted, before its
    /// `epochs` on its own set — deferred re-balancing (Cao et al., 2019): the features are
    /// learned from the real data as it comes, each remedy re-balances last. (b) with it is
    /// deferred re-sampling, (c) deferred re-weighting. 0: no such start. The quality runs are
    /// not affected.
    #[serde(default)]
    pub long_tail_first_epochs: usize,
    /// With `long_tail_first_epochs`: after that start only the classifier's fully connected
    /// head trains; its convolutional features stay as the long-tailed set left them, so a
    /// remedy's set re-places the class boundaries without re-learning (or memorizing into)
    /// the features — classifier re-training (cRT, Kang et al., 2020).
    #[serde(default)]
    pub rebalance_head_only: bool,
    /// With `long_tail_first_epochs`: during that start every class below this many images is
    /// topped up to it — method (d) with generated images (those its judge keeps, with
    /// `filter_generated`), every other method with exact copies drawn as (b) draws them — so
    /// the features see the rare classes more often before the re-balancing, and (d)'s see
    /// new images of them rather than repeats. 0: the long-tailed set as it is.
    #[serde(default)]
    pub long_tail_start_floor: usize,
    /// Every method's classifier: each training image shifted by up to this many pixels each
    /// way, drawn anew every step (0: not shifted). The quality runs are not affected.
    #[serde(default)]
    pub augment_shift: usize,
    /// Every method's classifier: the chance that a training image is flipped left to right,
    /// drawn anew every step (0: never). The quality runs are not affected.
    #[serde(default)]
    pub augment_flip_probability: f64,
    /// Also score every classifier on a balanced validation set of this many images per
    /// class, held out of the training split (outside the job's per-class subset), so that
    /// settings can be chosen without the test sets (0: none).
    #[serde(default)]
    pub validation_per_class: usize,
}

/// Which of the generated images labelled as their own class method (d)'s judge keeps. The
/// least sure are the ones nearest another class in the judge's eyes: where the classifier
/// trained on (d)'s set most needs examples (shirts that look like t-shirts), or where the
/// generator drew least well. The most sure are the control.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "keep", content = "share")]
pub enum JudgeKeeps {
    /// Every image the judge labels as its class.
    #[default]
    All,
    /// Per class, this share of them with the lowest probability of their class.
    LeastSure(f64),
    /// Per class, this share of them with the highest probability of their class.
    MostSure(f64),
}

impl JudgeKeeps {
    /// The share of each class's correctly labelled images kept (1 for all).
    pub fn share(self) -> f64 {
        match self {
            Self::All => 1.0,
            Self::LeastSure(share) | Self::MostSure(share) => share,
        }
    }
}

impl std::str::FromStr for JudgeKeeps {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, share) = match text.split_once(':') {
            Some((kind, share)) => (kind, Some(share)),
            None => (text, None),
        };
        let parse_share = |share: Option<&str>| -> Result<f64, String> {
            let share = share.ok_or_else(|| format!("`{kind}` needs a share, e.g. {kind}:0.5"))?;
            share
                .parse::<f64>()
                .map_err(|_| format!("`{share}` in `{text}` is not a number"))
        };
        match kind {
            "all" if share.is_none() => Ok(Self::All),
            "least-sure" => Ok(Self::LeastSure(parse_share(share)?)),
            "most-sure" => Ok(Self::MostSure(parse_share(share)?)),
            _ => Err(format!(
                "unknown judge choice `{text}` (all, least-sure:SHARE or most-sure:SHARE)"
            )),
        }
    }
}

impl std::fmt::Display for JudgeKeeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::LeastSure(share) => write!(f, "least-sure:{share}"),
            Self::MostSure(share) => write!(f, "most-sure:{share}"),
        }
    }
}

/// The largest classifier shift: images are at least 28 pixels a side, and a shift of half
/// the side would leave nothing of the image.
pub const MAX_AUGMENT_SHIFT: usize = 13;

/// The classifier's learning rate over its training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearningRateSchedule {
    /// The same rate at every step.
    Constant,
    /// From the rate down to 0 along half a cosine over all steps (the default): the last
    /// steps move the weights little, so the result depends less on the last few batches a
    /// seed happens to draw. On the benchmark it cut (b)'s seed std from 0.71 to 0.07 points.
    Cosine,
}

impl LearningRateSchedule {
    /// Settings saved before the schedule was one ran with a constant rate.
    pub fn saved_without_one() -> Self {
        Self::Constant
    }

    /// The rate at `step` of `steps` for the base rate `base`.
    pub fn rate(self, base: f64, step: u64, steps: u64) -> f64 {
        match self {
            Self::Constant => base,
            Self::Cosine => {
                let progress = step as f64 / steps.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

impl std::str::FromStr for LearningRateSchedule {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            other => Err(format!(
                "unknown learning-rate schedule `{other}` (constant or cosine)"
            )),
        }
    }
}

impl std::fmt::Display for LearningRateSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Constant => "constant",
            Self::Cosine => "cosine",
        })
    }
}

/// Method (d)'s default share of real images per rare class (see the README's benchmark).
pub const DEFAULT_REAL_SHARE: f64 = 0.5;

/// The evaluation's quality runs: the generator is measured once, with the first seed.
pub const QUALITY_METHODS: [&str; 2] = ["cas", "full-real"];

/// The remedies an evaluation compares, (a) to (f).
pub const EVALUATION_METHODS: [&str; 6] = [
    "long-tail",
    "random-oversampling",
    "class-weighted",
    "anygan",
    "smote",
    "shifted-oversampling",
];

impl EvaluationSettings {
    /// Names the first bad field: checked when the job starts, not hours later when the
    /// evaluation runs.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(unknown) = self.methods.iter().find(|m| {
            !EVALUATION_METHODS.contains(&m.as_str()) && !QUALITY_METHODS.contains(&m.as_str())
        }) {
            return Err(format!(
                "unknown evaluation method `{unknown}`; known: {}, {}",
                EVALUATION_METHODS.join(", "),
                QUALITY_METHODS.join(", ")
            ));
        }
        if self.seeds.is_empty() {
            return Err("evaluation needs at least one seed".into());
        }
        if !(0.0..=1.0).contains(&self.real_share) {
            return Err(format!(
                "the real share of method (d) must lie between 0 and 1, not {}",
                self.real_share
            ));
        }
        if self.judge_keeps != JudgeKeeps::All {
            let share = self.judge_keeps.share();
            if !self.filter_generated {
                return Err(format!(
                    "judge_keeps {} chooses among the images method (d)'s judge keeps, and \
                     filter_generated is off: there is no judge",
                    self.judge_keeps
                ));
            }
            if !(share > 0.0 && share <= 1.0) {
                return Err(format!(
                    "judge_keeps {}: the share kept must lie in (0, 1]",
                    self.judge_keeps
                ));
            }
        }
        if self.added_generated > 0 && self.same_mix {
            return Err(
                "method (d) either adds generated images to the oversampled set \
                 (added_generated) or mixes every class the same way (same_mix), not both"
                    .into(),
            );
        }
        if self.finish_oversampled_epochs >= self.epochs && self.finish_oversampled_epochs > 0 {
            return Err(format!(
                "finish_oversampled_epochs ({}) must be below the classifier's epochs ({}): \
                 every method would train on (b)'s set alone",
                self.finish_oversampled_epochs, self.epochs
            ));
        }
        if self.finish_oversampled_epochs > 0 && self.long_tail_first_epochs > 0 {
            return Err(
                "deferred re-balancing either starts every method on the long-tailed set \
                 (long_tail_first_epochs) or finishes it on (b)'s set (finish_oversampled_epochs), \
                 not both"
                    .into(),
            );
        }
        if self.rebalance_head_only && self.long_tail_first_epochs == 0 {
            return Err(
                "rebalance_head_only re-trains the classifier's head after the long-tailed \
                 start, and long_tail_first_epochs is 0: there is no start to keep the features of"
                    .into(),
            );
        }
        if self.long_tail_start_floor > 0 && self.long_tail_first_epochs == 0 {
            return Err(format!(
                "long_tail_start_floor {} tops up the long-tailed start, and \
                 long_tail_first_epochs is 0: there is no start to top up",
                self.long_tail_start_floor
            ));
        }
        if self.augment_shift > MAX_AUGMENT_SHIFT {
            return Err(format!(
                "augment_shift {} would move a 28×28 image off itself; at most {MAX_AUGMENT_SHIFT}",
                self.augment_shift
            ));
        }
        if !(0.0..=1.0).contains(&self.augment_flip_probability) {
            return Err(format!(
                "augment_flip_probability {} is not a probability in [0, 1]",
                self.augment_flip_probability
            ));
        }
        if self.epochs == 0 || self.batch_size == 0 || self.width == 0 {
            return Err(format!(
                "evaluation epochs ({}), batch size ({}) and width ({}) must be positive",
                self.epochs, self.batch_size, self.width
            ));
        }
        Ok(())
    }

    /// Every (method, seed) run: each method with each seed, then the quality runs.
    pub fn runs(&self) -> Vec<(String, u64)> {
        let mut runs: Vec<(String, u64)> = self
            .methods
            .iter()
            .flat_map(|m| self.seeds.iter().map(move |&s| (m.clone(), s)))
            .collect();
        if self.quality
            && let Some(&first) = self.seeds.first()
        {
            for method in QUALITY_METHODS {
                if !self.methods.iter().any(|m| m == method) {
                    runs.push((method.to_string(), first));
                }
            }
        }
        runs
    }

    /// Where `method`'s runs stand when runs go out longest first (lower first): the full real
    /// split, then the methods training on the rebalanced set (long-tailed set plus generated
    /// images or copies), then the generated images alone, then the long-tailed set alone. (d)
    /// goes with the full split when it trains more than one rebalanced set's worth: a judge
    /// classifier first, or generated images added on top.
    pub fn longest_first_rank(&self, method: &str) -> u8 {
        match method {
            "full-real" => 0,
            "anygan" if self.filter_generated || self.added_generated > 0 => 0,
            "cas" => 2,
            "long-tail" | "class-weighted" => 3,
            _ => 1,
        }
    }
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        Self {
            methods: EVALUATION_METHODS.map(String::from).to_vec(),
            seeds: vec![0, 1, 2],
            epochs: 2,
            batch_size: 128,
            learning_rate: 1e-3,
            schedule: LearningRateSchedule::Cosine,
            width: 32,
            quality: true,
            real_share: DEFAULT_REAL_SHARE,
            filter_generated: false,
            judge_keeps: JudgeKeeps::All,
            same_mix: false,
            added_generated: 0,
            shifted_copies: false,
            finish_oversampled_epochs: 0,
            long_tail_first_epochs: 0,
            rebalance_head_only: false,
            long_tail_start_floor: 0,
            augment_shift: 0,
            augment_flip_probability: 0.0,
            validation_per_class: 0,
        }
    }
}
