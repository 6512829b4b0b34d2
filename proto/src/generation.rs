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

/// The evaluation scheduled after generation (issue 6): the fixed classifier trained per
/// method and seed, then one report. Runs only when the data has a test split (Fashion-MNIST).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSettings {
    /// `long-tail`, `random-oversampling`, `class-weighted`, `anygan`, `smote`.
    pub methods: Vec<String>,
    pub seeds: Vec<u64>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
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
    /// Method (d): every class, the largest included, is `real_share` real and the rest
    /// generated (the largest class needs generated images too, e.g. from
    /// `--generation-targets`), so being generated says nothing about an image's class.
    #[serde(default)]
    pub same_mix: bool,
}

/// Method (d)'s default share of real images per rare class (see the README's benchmark).
pub const DEFAULT_REAL_SHARE: f64 = 0.5;

/// The evaluation's quality runs: the generator is measured once, with the first seed.
pub const QUALITY_METHODS: [&str; 2] = ["cas", "full-real"];

/// The remedies an evaluation compares, (a) to (e).
pub const EVALUATION_METHODS: [&str; 5] = [
    "long-tail",
    "random-oversampling",
    "class-weighted",
    "anygan",
    "smote",
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
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        Self {
            methods: EVALUATION_METHODS.map(String::from).to_vec(),
            seeds: vec![0, 1, 2],
            epochs: 2,
            batch_size: 128,
            learning_rate: 1e-3,
            width: 32,
            quality: true,
            real_share: DEFAULT_REAL_SHARE,
            filter_generated: false,
            same_mix: false,
        }
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
mod tests {
    use super::*;

    #[test]
    fn quality_runs_once_with_the_first_seed() {
        let settings = EvaluationSettings {
            methods: vec!["long-tail".into(), "anygan".into()],
            seeds: vec![3, 4],
            ..Default::default()
        };
        let runs: Vec<(String, u64)> = settings.runs();
        let expected: Vec<(String, u64)> = [
            ("long-tail", 3),
            ("long-tail", 4),
            ("anygan", 3),
            ("anygan", 4),
            ("cas", 3),
            ("full-real", 3),
        ]
        .iter()
        .map(|(m, s)| (m.to_string(), *s))
        .collect();
        assert_eq!(runs, expected);
        let without = EvaluationSettings {
            quality: false,
            ..settings
        };
        assert_eq!(without.runs().len(), 4);
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn deficits_against_the_largest_class() {
        let plans = class_plans(&names(4), &[4000, 40, 350, 4000], &Targets::Largest).unwrap();
        let generate: Vec<usize> = plans.iter().map(|p| p.generate).collect();
        assert_eq!(generate, vec![0, 3960, 3650, 0]);
        assert!(plans.iter().all(|p| p.target == 4000));
        assert_eq!(plans[1].name, "c1");
        assert_eq!(plans[1].original, 40);
    }

    #[test]
    fn user_targets_and_classes_already_above_them() {
        let plans = class_plans(
            &names(3),
            &[500, 40, 100],
            &Targets::PerClass(vec![300, 100, 100]),
        )
        .unwrap();
        let generate: Vec<usize> = plans.iter().map(|p| p.generate).collect();
        assert_eq!(generate, vec![0, 60, 0], "above or at the target: nothing");
        let wrong = class_plans(&names(3), &[1, 2, 3], &Targets::PerClass(vec![5, 5]));
        assert!(
            wrong
                .unwrap_err()
                .contains("2 generation targets for 3 classes")
        );
        assert!(class_plans(&names(2), &[1, 2, 3], &Targets::Largest).is_err());
    }

    #[test]
    fn tasks_cover_each_deficit_exactly_in_aligned_ranges() {
        let plans =
            class_plans(&names(3), &[1000, 0, 1000 - 1030 % 1000], &Targets::Largest).unwrap();
        let tasks = split_tasks(&plans, 256);
        for plan in &plans {
            let mine: Vec<&TaskRange> = tasks.iter().filter(|t| t.class == plan.index).collect();
            let mut next = 0;
            for task in &mine {
                assert_eq!(task.first, next, "contiguous, no overlap");
                assert_eq!(task.first % 256, 0, "aligned");
                next += task.count;
            }
            assert_eq!(next, plan.generate as u64, "no gap at the end");
        }
        let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
        assert_eq!(ids, (0..tasks.len() as u64).collect::<Vec<_>>());
        // 1000 → 4 tasks (256, 256, 256, 232); 970 → 4.
        assert_eq!(tasks.iter().filter(|t| t.class == 1).count(), 4);
        assert_eq!(
            tasks
                .iter()
                .find(|t| t.class == 1 && t.first == 768)
                .unwrap()
                .count,
            232
        );
        assert!(
            split_tasks(
                &class_plans(&names(1), &[5], &Targets::Largest).unwrap(),
                64
            )
            .is_empty()
        );
    }

    #[test]
    fn anchor_tasks_cover_min_of_originals_and_cap_for_classes_that_generate() {
        // 4000 (generates nothing), 200, 40, 130 originals; cap 150.
        let classes = class_plans(&names(4), &[4000, 200, 40, 130], &Targets::Largest).unwrap();
        let tasks = split_anchor_tasks(&classes, 150).unwrap();
        let per_class = |class: usize| -> Vec<(u64, u64)> {
            tasks
                .iter()
                .filter(|t| t.class == class)
                .map(|t| (t.first, t.count))
                .collect()
        };
        assert!(
            per_class(0).is_empty(),
            "a class at its target has no anchors"
        );
        assert_eq!(
            per_class(1),
            vec![(0, 64), (64, 64), (128, 22)],
            "capped at 150"
        );
        assert_eq!(per_class(2), vec![(0, 40)]);
        assert_eq!(per_class(3), vec![(0, 64), (64, 64), (128, 2)]);
        let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
        assert_eq!(ids, (0..tasks.len() as u64).collect::<Vec<_>>());
        assert!(
            split_anchor_tasks(&classes, 0).unwrap().is_empty(),
            "plain generation"
        );
        // A class with a target but no originals has nothing to anchor on.
        let empty = class_plans(&names(2), &[10, 0], &Targets::Largest).unwrap();
        let err = split_anchor_tasks(&empty, 50).unwrap_err();
        assert!(err.contains("class c1"), "{err}");
    }

    #[test]
    fn anchored_generation_names_its_own_root_and_needs_inversion_steps() {
        let plain = GenerationSpec::default();
        let anchored = GenerationSpec {
            anchors: 200,
            ..GenerationSpec::default()
        };
        let longer = GenerationSpec {
            inversion_steps: 300,
            ..anchored.clone()
        };
        assert!(anchored.validate().is_ok());
        assert_ne!(plan_root("step-1", &plain), plan_root("step-1", &anchored));
        assert_ne!(plan_root("step-1", &anchored), plan_root("step-1", &longer));
        // Inversion steps mean nothing to plain generation, so they do not move its root.
        let plain_other_steps = GenerationSpec {
            inversion_steps: 7,
            ..GenerationSpec::default()
        };
        assert_eq!(
            plan_root("step-1", &plain),
            plan_root("step-1", &plain_other_steps)
        );
        let err = GenerationSpec {
            inversion_steps: 0,
            ..anchored.clone()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("inversion step"), "{err}");
        let ranked = GenerationSpec {
            candidates: 4,
            ..anchored.clone()
        };
        assert!(ranked.validate().unwrap_err().contains("candidates"));
        // Plans written before anchored generation read as plain generation.
        let old: GenerationSpec = serde_json::from_str(
            r#"{"targets":{"kind":"largest"},"seed":0,"batch":64,"task_images":512,"rebalanced_set":true}"#,
        )
        .unwrap();
        assert_eq!(
            (old.anchors, old.inversion_steps),
            (0, DEFAULT_INVERSION_STEPS)
        );
    }

    #[test]
    fn truncation_is_zero_or_a_sensible_bound_and_names_its_own_root() {
        let plain = GenerationSpec {
            truncation: 0.0,
            ..GenerationSpec::default()
        };
        let truncated = GenerationSpec {
            truncation: 0.7,
            ..GenerationSpec::default()
        };
        assert!(plain.validate().is_ok());
        assert!(truncated.validate().is_ok());
        for bad in [0.1, -1.0, f32::NAN] {
            let err = GenerationSpec {
                truncation: bad,
                ..GenerationSpec::default()
            }
            .validate()
            .unwrap_err();
            assert!(err.contains("truncation"), "{err}");
        }
        assert_ne!(plan_root("step-1", &plain), plan_root("step-1", &truncated));
    }

    #[test]
    fn spec_validation_and_stable_roots() {
        assert!(GenerationSpec::default().validate().is_ok());
        let unaligned = GenerationSpec {
            task_images: 100,
            ..GenerationSpec::default()
        };
        assert!(
            unaligned
                .validate()
                .unwrap_err()
                .contains("multiple of the batch")
        );
        let root = plan_root("step-0000000300-abcd", &GenerationSpec::default());
        assert_eq!(
            root,
            plan_root("step-0000000300-abcd", &GenerationSpec::default())
        );
        let other_seed = GenerationSpec {
            seed: 1,
            ..GenerationSpec::default()
        };
        assert_ne!(root, plan_root("step-0000000300-abcd", &other_seed));
        assert!(root.starts_with("generations/step-0000000300-abcd-"));
        let as_trained = GenerationSpec {
            weights: GeneratorWeights::AsTrained,
            ..GenerationSpec::default()
        };
        assert_ne!(
            root,
            plan_root("step-0000000300-abcd", &as_trained),
            "the weights as trained are other images than their average"
        );
        let ranked = GenerationSpec {
            candidates: 4,
            ..GenerationSpec::default()
        };
        assert_ne!(root, plan_root("step-0000000300-abcd", &ranked));
        for bad in [0, MAX_CANDIDATES + 1] {
            let err = GenerationSpec {
                candidates: bad,
                ..GenerationSpec::default()
            }
            .validate()
            .unwrap_err();
            assert!(err.contains("candidates"), "{err}");
        }
        assert_eq!(image_name(42), "gen-000042.png");
        assert_eq!(class_folder(0, "T-shirt/top"), "00-T-shirt_top");
        assert_eq!(class_folder(9, "Ankle boot"), "09-Ankle_boot");
    }
}
