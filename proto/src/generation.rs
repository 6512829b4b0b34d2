//! Class-targeted generation: how many images each class lacks, and how that work is cut into
//! tasks. Pure arithmetic, shared by the coordinator (which plans) and the workers (which run
//! tasks and assemble the result).
//!
//! Image `i` of class `c` always has the file name `gen-<i:06>.png` and the noise of the
//! stream keyed by (seed, generation, c, i), and tasks are cut at multiples of the batch size,
//! so every image belongs to exactly one batch whatever task carries it: a task run twice, or
//! by another worker after its first worker died, writes the same bytes to the same names.
//! Duplicates are impossible by construction and gaps are found by counting.

use serde::{Deserialize, Serialize};

use crate::job::{DatasetSource, ModelSpec};

mod evaluation;
pub use evaluation::{
    DEFAULT_REAL_SHARE, EVALUATION_METHODS, EvaluationSettings, JudgeKeeps, LearningRateSchedule,
    MAX_AUGMENT_SHIFT, QUALITY_METHODS,
};

/// What each class should reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "counts", rename_all = "kebab-case")]
pub enum Targets {
    /// Every class up to the largest class's count.
    Largest,
    /// One target per class; a class already above its target gets nothing.
    PerClass(Vec<usize>),
}

/// Generation settings of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSpec {
    pub targets: Targets,
    /// Seed of the generation noise (independent of the training seed).
    pub seed: u64,
    /// Images per generator forward pass.
    pub batch: usize,
    /// Images per task, a multiple of `batch`: small enough to spread over the workers and to
    /// lose little when a worker dies, large enough to amortize loading the generator.
    pub task_images: usize,
    /// Also write originals + generated as one dataset (image folders and IDX).
    pub rebalanced_set: bool,
    /// The truncation trick (BigGAN): noise components beyond ±truncation are drawn again,
    /// trading variety for more typical images of each class. 0 draws plain N(0, 1) noise.
    #[serde(default)]
    pub truncation: f32,
    /// Which of the checkpoint's generator weights to sample from.
    #[serde(default)]
    pub weights: GeneratorWeights,
    /// Each image is the one of this many candidates (drawn from the image's own streams)
    /// that the checkpoint's discriminator finds most real for the class; 1: no ranking.
    #[serde(default = "one_candidate")]
    pub candidates: usize,
    /// Anchored generation: up to this many real images of each class are inverted into the
    /// generator's noise space and every image is drawn between an anchor and one of its nearest
    /// anchors; 0 samples the noise prior (plain generation).
    #[serde(default)]
    pub anchors: usize,
    /// Optimizer steps per anchor's inversion.
    #[serde(default = "default_inversion_steps")]
    pub inversion_steps: usize,
}

fn default_inversion_steps() -> usize {
    DEFAULT_INVERSION_STEPS
}

/// Optimizer steps an anchor's inversion takes unless told otherwise.
pub const DEFAULT_INVERSION_STEPS: usize = 100;

/// Anchors one invert task inverts (one batch through the generator).
pub const ANCHORS_PER_TASK: usize = 64;

fn one_candidate() -> usize {
    1
}

/// The most candidates an image may be picked from.
pub const MAX_CANDIDATES: usize = 64;

/// A checkpoint's generator weights: as trained at its step, or their moving average over the
/// steps before it (kept when the run was trained with one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorWeights {
    /// The moving average when the checkpoint has one, else the weights as trained.
    #[default]
    Averaged,
    AsTrained,
}

impl GeneratorWeights {
    pub fn name(self) -> &'static str {
        match self {
            Self::Averaged => "averaged",
            Self::AsTrained => "as-trained",
        }
    }
}

/// The truncation anygan generates with unless told otherwise: on the Fashion-MNIST benchmark
/// it lifted method (d) (README, "Evaluation").
pub const DEFAULT_TRUNCATION: f32 = 0.5;

/// The smallest truncation accepted: below it most draws would be thrown away.
pub const MIN_TRUNCATION: f32 = 0.2;

impl Default for GenerationSpec {
    fn default() -> Self {
        Self {
            targets: Targets::Largest,
            seed: 0,
            batch: 64,
            task_images: 512,
            rebalanced_set: true,
            truncation: DEFAULT_TRUNCATION,
            weights: GeneratorWeights::Averaged,
            candidates: 1,
            anchors: 0,
            inversion_steps: DEFAULT_INVERSION_STEPS,
        }
    }
}

impl GenerationSpec {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.truncation == 0.0
            || self.truncation.is_finite() && self.truncation >= MIN_TRUNCATION)
        {
            return Err(format!(
                "generation truncation {} must be 0 (none) or at least {MIN_TRUNCATION}",
                self.truncation
            ));
        }
        if self.batch == 0 {
            return Err("generation batch must be positive".into());
        }
        if !(1..=MAX_CANDIDATES).contains(&self.candidates) {
            return Err(format!(
                "generation candidates {} must be in 1..={MAX_CANDIDATES}",
                self.candidates
            ));
        }
        if self.anchors > 0 && self.inversion_steps == 0 {
            return Err("anchored generation needs at least 1 inversion step".into());
        }
        if self.anchors > 0 && self.candidates > 1 {
            return Err(format!(
                "anchored generation draws one image per code; generation candidates {} must be 1",
                self.candidates
            ));
        }
        if self.task_images == 0 || !self.task_images.is_multiple_of(self.batch) {
            return Err(format!(
                "generation task_images {} must be a positive multiple of the batch {}",
                self.task_images, self.batch
            ));
        }
        Ok(())
    }
}

/// One class's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassPlan {
    pub index: usize,
    pub name: String,
    /// Images of the class in the training data.
    pub original: usize,
    pub target: usize,
    /// `target - original`, or 0 when the class already reaches its target.
    pub generate: usize,
}

/// A contiguous range of one class's image indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRange {
    pub id: u64,
    pub class: usize,
    pub first: u64,
    pub count: u64,
}

/// A contiguous range of one class's anchors (positions in its anchor choice), inverted by
/// one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRange {
    pub id: u64,
    pub class: usize,
    pub first: u64,
    pub count: u64,
}

/// Everything a generation run needs and records: written as its manifest at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationPlan {
    /// Checkpoint prefix under `<output>/checkpoints/` whose generator is used.
    pub checkpoint: String,
    pub checkpoint_step: u64,
    /// Where this run writes, relative to the job's output.
    pub root: String,
    pub spec: GenerationSpec,
    pub classes: Vec<ClassPlan>,
    pub tasks: Vec<TaskRange>,
    /// Anchored generation's invert tasks, run before `tasks`; none for plain generation.
    #[serde(default)]
    pub anchor_tasks: Vec<AnchorRange>,
    /// The training data (for the rebalanced set) and the model.
    pub dataset: DatasetSource,
    pub model: ModelSpec,
    /// The evaluation after generation, if any.
    #[serde(default)]
    pub evaluation: Option<EvaluationSettings>,
}

/// Per-class numbers for `counts` (the training data's) against `targets`.
pub fn class_plans(
    names: &[String],
    counts: &[usize],
    targets: &Targets,
) -> Result<Vec<ClassPlan>, String> {
    if names.len() != counts.len() {
        return Err(format!(
            "{} class names for {} class counts",
            names.len(),
            counts.len()
        ));
    }
    let wanted: Vec<usize> = match targets {
        Targets::Largest => {
            let largest = counts.iter().copied().max().unwrap_or(0);
            vec![largest; counts.len()]
        }
        Targets::PerClass(per_class) => {
            if per_class.len() != counts.len() {
                return Err(format!(
                    "{} generation targets for {} classes",
                    per_class.len(),
                    counts.len()
                ));
            }
            per_class.clone()
        }
    };
    Ok(names
        .iter()
        .zip(counts)
        .zip(wanted)
        .enumerate()
        .map(|(index, ((name, &original), target))| ClassPlan {
            index,
            name: name.clone(),
            original,
            target,
            generate: target.saturating_sub(original),
        })
        .collect())
}

/// `(first, count)` of consecutive ranges of at most `per_range` covering `0..total`.
pub fn ranges(total: u64, per_range: u64) -> impl Iterator<Item = (u64, u64)> {
    let per_range = per_range.max(1);
    (0..total.div_ceil(per_range)).map(move |k| {
        let first = k * per_range;
        (first, per_range.min(total - first))
    })
}

/// Cuts every class's deficit into tasks of `task_images` (the last of a class shorter),
/// numbered from 0 in class order.
pub fn split_tasks(classes: &[ClassPlan], task_images: usize) -> Vec<TaskRange> {
    let cuts = classes.iter().flat_map(|class| {
        ranges(class.generate as u64, task_images as u64)
            .map(|(first, count)| (class.index, first, count))
    });
    cuts.enumerate()
        .map(|(id, (class, first, count))| TaskRange {
            id: id as u64,
            class,
            first,
            count,
        })
        .collect()
}

/// The anchors of every class that generates anything: `min(original, cap)` of them, cut into
/// tasks of [`ANCHORS_PER_TASK`], numbered from 0 in class order. A class that must generate
/// but has no original to anchor on is refused by name.
pub fn split_anchor_tasks(classes: &[ClassPlan], cap: usize) -> Result<Vec<AnchorRange>, String> {
    if cap == 0 {
        return Ok(Vec::new());
    }
    let mut cuts = Vec::new();
    for class in classes.iter().filter(|c| c.generate > 0) {
        let anchors = class.original.min(cap) as u64;
        if anchors == 0 {
            return Err(format!(
                "class {} has no original image to anchor generation on",
                class.name
            ));
        }
        cuts.extend(
            ranges(anchors, ANCHORS_PER_TASK as u64)
                .map(|(first, count)| (class.index, first, count)),
        );
    }
    Ok(cuts
        .into_iter()
        .enumerate()
        .map(|(id, (class, first, count))| AnchorRange {
            id: id as u64,
            class,
            first,
            count,
        })
        .collect())
}

/// The folder of class `index` in image-folder layouts: the index first, so folders sort in
/// class order (anygan's folder reader sorts them), then the name made path-safe
/// (`T-shirt/top` → `00-T-shirt_top`).
pub fn class_folder(index: usize, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{index:02}-{safe}")
}

/// File name of generated image `index` of a class (zero-padded, so names sort in index
/// order).
pub fn image_name(index: u64) -> String {
    format!("gen-{index:06}.png")
}

/// A directory name for a plan: the checkpoint plus a short hash of the seed and targets, so
/// the same request lands in the same place (idempotent) and a different one never mixes in.
pub fn plan_root(checkpoint: &str, spec: &GenerationSpec) -> String {
    use std::hash::{Hash, Hasher};
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    spec.seed.hash(&mut hasher);
    serde_json::to_string(&spec.targets)
        .unwrap_or_default()
        .hash(&mut hasher);
    spec.batch.hash(&mut hasher);
    // Untruncated runs keep the names they had before truncation existed.
    if spec.truncation != 0.0 {
        spec.truncation.to_bits().hash(&mut hasher);
    }
    // Sampling from the average is the default and names nothing, so checkpoints without an
    // average keep their roots; the weights as trained are a different set of images.
    if spec.weights == GeneratorWeights::AsTrained {
        spec.weights.name().hash(&mut hasher);
    }
    if spec.candidates != 1 {
        spec.candidates.hash(&mut hasher);
    }
    if spec.anchors > 0 {
        ("anchors", spec.anchors, spec.inversion_steps).hash(&mut hasher);
    }
    format!("generations/{checkpoint}-{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests;
