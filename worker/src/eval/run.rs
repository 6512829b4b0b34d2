//! Running the evaluation: every method × seed trains the fixed classifier and is scored on the
//! balanced and the imbalanced test set; the results become a markdown table and a JSON file.

use std::time::Instant;

use super::augment::ClassifierAugmentation;
use super::classifier::{
    ClassifierConfig, ClassifierTraining, predict, predict_scored, train_classifier_in_phases,
};
use super::deferral::MethodSets;
pub use super::fidelity::Fidelity;
use super::fidelity::{filter_report, labelled_as_picture, quality_report};
use super::judge::judged_generated;
use super::methods::{Balance, Method, SHIFTED_COPIES_MAX_SHIFT, SHIFTED_COPIES_SHARE, Sources};
use super::metrics::{ConfusionMatrix, Metrics, mean_std};
use super::novelty::{Novelty, novelty_report};
use super::verdict::{compare_with_other_remedies, verdict_report};
use crate::backend::TrainBackend;
use crate::data::ImageDataset;
use crate::error::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct EvaluationSpec {
    pub methods: Vec<Method>,
    pub seeds: Vec<u64>,
    pub training: ClassifierTraining,
    pub width: usize,
    /// How oversampling, SMOTE and (d) fill the classes.
    pub balance: Balance,
    /// (d) trains on the generated images a judge — the same classifier trained on the
    /// randomly oversampled long-tailed set, nothing the user would not have — labels as their
    /// own class, not on all of them.
    pub filter_generated: bool,
    /// Which of the images the judge labels as their class (d) keeps.
    pub judge_keeps: anygan_proto::generation::JudgeKeeps,
    /// Every remedy but (b): the last this many of the classifier's epochs train on (b)'s set
    /// (deferred re-sampling); 0: the method's own set throughout.
    pub finish_oversampled_epochs: usize,
    /// Every method starts with this many epochs on the long-tailed set as it is (deferred
    /// re-balancing); 0: none.
    pub long_tail_first_epochs: usize,
    /// After the long-tailed start, only the classifier's head trains (cRT).
    pub rebalance_head_only: bool,
    /// During the long-tailed start every class below this many images is topped up to it:
    /// (d) with generated images, every other method with exact copies; 0: none.
    pub long_tail_start_floor: usize,
}

impl EvaluationSpec {
    /// What an evaluation's `settings` ask of `methods` × `seeds`, filling classes to `target`.
    pub fn new(
        settings: &anygan_proto::generation::EvaluationSettings,
        methods: Vec<Method>,
        seeds: Vec<u64>,
        target: usize,
    ) -> Self {
        Self {
            methods,
            seeds,
            training: ClassifierTraining::new()
                .with_epochs(settings.epochs)
                .with_batch_size(settings.batch_size)
                .with_learning_rate(settings.learning_rate)
                .with_schedule(settings.schedule)
                .with_augmentation(settings.into()),
            width: settings.width,
            balance: Balance {
                target,
                real_share: settings.real_share,
                same_mix: settings.same_mix,
                added_generated: settings.added_generated,
                shifted_copies: settings.shifted_copies,
            },
            filter_generated: settings.filter_generated,
            judge_keeps: settings.judge_keeps,
            finish_oversampled_epochs: settings.finish_oversampled_epochs,
            long_tail_first_epochs: settings.long_tail_first_epochs,
            rebalance_head_only: settings.rebalance_head_only,
            long_tail_start_floor: settings.long_tail_start_floor,
        }
    }
}

/// The name of the balanced validation set held out of the training split (`--validation-per-class`).
pub const VALIDATION_SET: &str = "validation";

/// A test set with its name.
#[derive(Debug, Clone)]
pub struct TestSet {
    pub name: String,
    pub data: ImageDataset,
}

/// One classifier's scores on one test set.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    pub method: Method,
    pub seed: u64,
    pub test_set: String,
    pub train_images: usize,
    pub train_seconds: f64,
    pub metrics: Metrics,
    pub confusion: ConfusionMatrix,
    /// The reference classifier's labels on the generated images: per class, the share of
    /// that class's generated images it labels as that class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_fidelity: Option<Fidelity>,
    /// CAS runs with a validation set: how near the generated images lie to the originals,
    /// beside the validation set's real images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_novelty: Option<Novelty>,
    /// (d) with the filter: per class, the share of the generated images the judge kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_kept: Option<Fidelity>,
    /// Per class, the classifier's softmax probability averaged over the test set: a class
    /// bias shows as values away from 1/C on the balanced test (empty in older results).
    #[serde(default)]
    pub mean_probability: Vec<f64>,
}

/// Trains and scores every method × seed; `on_result` sees each result as it comes.
pub fn evaluate(
    sources: Sources<'_>,
    test_sets: &[TestSet],
    spec: &EvaluationSpec,
    mut on_result: impl FnMut(&RunResult),
) -> Result<Vec<RunResult>> {
    let long_tail = sources.long_tail;
    let device = crate::backend::selected_device();
    let shape = long_tail.shape();
    let config = ClassifierConfig::new(long_tail.num_classes())
        .with_channels(shape.channels)
        .with_image_size(shape.height)
        .with_width(spec.width);
    let mut results = Vec::new();
    for &method in &spec.methods {
        for &seed in &spec.seeds {
            let mut training = ClassifierTraining {
                seed,
                ..spec.training.clone()
            };
            if Method::QUALITY.contains(&method) {
                // The generator's own measures stay comparable with runs that had none.
                training = training.with_augmentation(ClassifierAugmentation::NONE);
            }
            let judged = if method == Method::Anygan && spec.filter_generated {
                Some(judged_generated(
                    sources, spec, &config, &training, &device,
                )?)
            } else {
                None
            };
            let sets = MethodSets::build(
                method,
                Sources {
                    judged: judged.as_ref().map(|(kept, _)| kept),
                    ..sources
                },
                spec,
                seed,
            )?;
            let set = &sets.own;
            let generated_kept = judged.map(|(_, share)| share);
            let phases = sets.phases(method, long_tail, &training, spec);
            let started = Instant::now();
            let model =
                train_classifier_in_phases::<TrainBackend>(&phases, &config, &training, &device)?;
            let train_seconds = started.elapsed().as_secs_f64();
            let generated_fidelity = match (method, sources.rebalanced) {
                (Method::FullReal, Some(_)) => {
                    let generated = sources.generated()?;
                    let predicted = predict(&model, &generated, &device);
                    Some(Fidelity::of(
                        generated.labels(),
                        &predicted,
                        long_tail.num_classes(),
                    )?)
                }
                _ => None,
            };
            let held_out = test_sets.iter().find(|t| t.name == VALIDATION_SET);
            let generated_novelty = match (method, sources.rebalanced, held_out) {
                (Method::Cas, Some(_), Some(held_out)) => Some(Novelty::of(
                    long_tail,
                    &sources.generated()?,
                    &held_out.data,
                )?),
                _ => None,
            };
            for test in test_sets {
                let scored = predict_scored(&model, &test.data, &device);
                let confusion = ConfusionMatrix::from_labels(
                    test.data.labels(),
                    &scored.predicted,
                    long_tail.num_classes(),
                )
                .map_err(|reason| crate::error::Error::config("predictions", reason))?;
                let result = RunResult {
                    method,
                    seed,
                    test_set: test.name.clone(),
                    train_images: set.data.len(),
                    train_seconds,
                    metrics: confusion.metrics(),
                    confusion,
                    generated_fidelity: generated_fidelity.clone(),
                    generated_novelty: generated_novelty.clone(),
                    generated_kept: generated_kept.clone(),
                    mean_probability: scored.mean_probability,
                };
                on_result(&result);
                results.push(result);
            }
        }
    }
    Ok(results)
}

/// The report's line on what method (d) trains on.
fn anygan_set_text(settings: &anygan_proto::generation::EvaluationSettings) -> String {
    use anygan_proto::generation::JudgeKeeps;
    let filter = match (settings.filter_generated, settings.judge_keeps) {
        (false, _) => String::new(),
        (true, JudgeKeeps::All) => ", only those the judge labels as their class".into(),
        (true, keeps) => format!(
            ", only those the judge labels as their class and of those per class the {:.0} % \
             it is {} sure of",
            100.0 * keeps.share(),
            if matches!(keeps, JudgeKeeps::MostSure(_)) {
                "most"
            } else {
                "least"
            }
        ),
    };
    let (copies, copies_by, shifted) = if settings.shifted_copies {
        let shifted = format!(
            " and, as in (f), up to {:.0} % of each class's target copies shifted by up to {} pixels",
            100.0 * SHIFTED_COPIES_SHARE,
            SHIFTED_COPIES_MAX_SHIFT
        );
        ("(f) shifted oversampling", "(f)", shifted)
    } else {
        ("random oversampling", "(b)", String::new())
    };
    if settings.added_generated > 0 {
        let added = settings.added_generated;
        format!(
            "(d): {copies}'s set, as {copies_by} draws it, plus {added} generated images of every \
             class{filter}.\n"
        )
    } else {
        let classes = if settings.same_mix {
            "every class, the largest included (originals subsampled where a class has more)"
        } else {
            "each rare class"
        };
        format!(
            "(d): real images are {} % of {classes}, the originals repeated{shifted}; generated \
             images the rest{filter}.\n",
            100.0 * settings.real_share
        )
    }
}

/// The whole report: what was evaluated and how, the tables, the pictures' legend and the
/// published rows; with the files that go beside it (the pictures it refers to, and
/// `comparisons.json`: (d) against each other remedy, see `verdict`).
pub fn full_report(
    generator: &str,
    settings: &anygan_proto::generation::EvaluationSettings,
    results: &[RunResult],
    class_names: &[String],
) -> Result<(String, Vec<ReportFile>)> {
    let anygan_set = anygan_set_text(settings);
    let finish = match settings.finish_oversampled_epochs {
        0 => String::new(),
        n => format!(
            "Deferred re-sampling: every method but (b) trains its first {} epochs on its own \
             set and the last {n} on (b)'s (random oversampling, as (b) draws it, unweighted); \
             the learning-rate schedule spans both.\n",
            settings.epochs.saturating_sub(n)
        ),
    };
    let head = if settings.rebalance_head_only {
        " — the fully connected head alone, the convolutions frozen as the long-tailed set \
         left them (classifier re-training)"
    } else {
        ""
    };
    let start_set = match settings.long_tail_start_floor {
        0 => "the long-tailed set as it is".to_string(),
        floor => format!(
            "the long-tailed set with every class below {floor} images topped up to {floor} \
             ((d) with generated images, every other method with exact copies)"
        ),
    };
    let start = match settings.long_tail_first_epochs {
        0 => String::new(),
        n => format!(
            "Deferred re-balancing: every method first trains {n} epochs on {start_set} \
             (unweighted), then its {} epochs on its own set{head}; the learning-rate \
             schedule spans both.\n",
            settings.epochs
        ),
    };
    let augmentation = if ClassifierAugmentation::from(settings).is_identity() {
        String::new()
    } else {
        format!(
            "Augmentation, every method alike (not the quality runs): each training image \
             shifted by up to {} pixels each way and flipped left to right with probability {}, \
             drawn anew every step.\n",
            settings.augment_shift, settings.augment_flip_probability
        )
    };
    let mut report = format!(
        "# anygan evaluation\n\nGenerator: {generator}.\n\
         Classifier: small CNN (width {}), Adam lr {} ({} schedule), batch {}, {} epochs, seeds {:?}.\n\
         {anygan_set}{finish}{start}{augmentation}",
        settings.width,
        settings.learning_rate,
        settings.schedule,
        settings.batch_size,
        settings.epochs,
        settings.seeds,
    );
    // The answer first, then the tables it was read from.
    let comparisons = compare_with_other_remedies(results);
    report.push_str(&verdict_report(&comparisons));
    report.push_str(&markdown_report(results, class_names));
    let (mut files, legend) = charts(results)?;
    report.push_str(&legend);
    report.push_str(PUBLISHED);
    let json = serde_json::to_vec_pretty(&comparisons).map_err(|e| Error::Encode {
        what: COMPARISONS_FILE.into(),
        reason: e.to_string(),
    })?;
    files.push((COMPARISONS_FILE.to_string(), json));
    Ok((report, files))
}

/// BENCHMARK.md's published rows, to read beside ours (their protocol: ResNet-18, 5-fold CV).
const PUBLISHED: &str = "
#### Published (DeepSMOTE, IEEE TNNLS 2022; ResNet-18, 5-fold CV), ACSA / GM-ovr / macro-F1 %

| method | imbalanced test | balanced test |
|---|---|---|
| SMOTE | 67.94 / 74.84 / 67.12 | 70.58 / 76.39 / 68.06 |
| BAGAN | 82.50 / 90.51 / 82.96 | 81.48 / 89.31 / 80.93 |
| GAMO | 83.05 / 90.76 / 83.00 | 83.03 / 90.26 / 82.50 |
| DeepSMOTE | 84.88 / 91.63 / 83.79 | 83.63 / 90.61 / 83.27 |
";

/// One log line per scored run.
pub fn log_result(r: &RunResult) {
    tracing::info!(
        method = r.method.label(),
        seed = r.seed,
        test = %r.test_set,
        acsa = format!("{:.2}", 100.0 * r.metrics.acsa),
        gm_ovr = format!("{:.2}", 100.0 * r.metrics.gm_ovr),
        macro_f1 = format!("{:.2}", 100.0 * r.metrics.macro_f1),
        train_images = r.train_images,
        train_s = format!("{:.0}", r.train_seconds),
        "scored"
    );
}

/// How the report names a scored set: "balanced test set", or for the set held out of the
/// training split, "validation set (held out of the training split)".
fn set_title(name: &str) -> String {
    if name == VALIDATION_SET {
        "validation set (held out of the training split)".to_string()
    } else {
        format!("{name} test set")
    }
}

pub(super) fn cell(values: &[f64]) -> String {
    let (mean, std) = mean_std(values);
    format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * std)
}

/// The BENCHMARK.md-style table: per method and test set, ACSA / GM / GM-ovr / macro-F1 in %,
/// mean ± std over seeds; then per-class recall (mean over seeds) per method.
pub fn markdown_report(results: &[RunResult], class_names: &[String]) -> String {
    let (methods, tests) = methods_and_tests(results);
    let mut out = String::new();
    for test in &tests {
        let set = set_title(test);
        out.push_str(&format!(
            "\n#### {set} (%, mean ± std over seeds)\n\n| method | ACSA | GM | GM-ovr | macro-F1 | seeds |\n|---|---|---|---|---|---|\n"
        ));
        for &method in &methods {
            let runs = runs_of(results, method, test);
            let pick =
                |f: fn(&Metrics) -> f64| runs.iter().map(|r| f(&r.metrics)).collect::<Vec<_>>();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                method.label(),
                cell(&pick(|m| m.acsa)),
                cell(&pick(|m| m.gm)),
                cell(&pick(|m| m.gm_ovr)),
                cell(&pick(|m| m.macro_f1)),
                runs.len()
            ));
        }
        out.push_str(&format!(
            "\nPer-class recall on the {set} (%, mean over seeds):\n\n| method | {} |\n|---|{}\n",
            class_names.join(" | "),
            "---|".repeat(class_names.len())
        ));
        for &method in &methods {
            let runs = runs_of(results, method, test);
            let recalls: Vec<String> = (0..class_names.len())
                .map(|k| {
                    let values: Vec<f64> = runs
                        .iter()
                        .map(|r| r.metrics.recalls.get(k).copied().unwrap_or(0.0))
                        .collect();
                    format!("{:.1}", 100.0 * mean_std(&values).0)
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} |\n",
                method.label(),
                recalls.join(" | ")
            ));
        }
    }
    out.push_str(&quality_report(results, class_names));
    out.push_str(&novelty_report(results, class_names));
    out.push_str(&filter_report(results, class_names));
    out
}

/// The methods and test sets of `results`, in order of first appearance.
pub(super) fn methods_and_tests(results: &[RunResult]) -> (Vec<Method>, Vec<String>) {
    let mut methods: Vec<Method> = Vec::new();
    let mut tests: Vec<String> = Vec::new();
    for r in results {
        if !methods.contains(&r.method) {
            methods.push(r.method);
        }
        if !tests.contains(&r.test_set) {
            tests.push(r.test_set.clone());
        }
    }
    (methods, tests)
}

/// Every seed's result of `method` on `test`.
pub(super) fn runs_of<'a>(
    results: &'a [RunResult],
    method: Method,
    test: &str,
) -> Vec<&'a RunResult> {
    results
        .iter()
        .filter(|r| r.method == method && r.test_set == test)
        .collect()
}

/// A file the report writes beside `report.md`: its name and its bytes.
pub type ReportFile = (String, Vec<u8>);

/// (d) against each other remedy, by the benchmark's rule (`verdict::Comparison`, a list).
pub const COMPARISONS_FILE: &str = "comparisons.json";

/// The report's pictures: per test set, per-class recall by method (mean over seeds) as
/// `recall-<test>.png`, and each method's confusion matrix of its first seed as
/// `confusion-<method>-<test>.png`. Returns (file name, PNG) pairs and the legend text.
pub fn charts(results: &[RunResult]) -> Result<(Vec<ReportFile>, String)> {
    use super::charts::{confusion_png, recall_bars_png};
    let (methods, tests) = methods_and_tests(results);
    let mut files = Vec::new();
    for test in &tests {
        let recalls: Vec<Vec<f64>> = methods
            .iter()
            .map(|&m| {
                let runs = runs_of(results, m, test);
                let classes = runs.first().map_or(0, |r| r.metrics.recalls.len());
                (0..classes)
                    .map(|k| {
                        mean_std(
                            &runs
                                .iter()
                                .map(|r| r.metrics.recalls[k])
                                .collect::<Vec<_>>(),
                        )
                        .0
                    })
                    .collect()
            })
            .collect();
        files.push((format!("recall-{test}.png"), recall_bars_png(&recalls)?));
        for &m in &methods {
            if let Some(first) = results
                .iter()
                .find(|r| r.method == m && &r.test_set == test)
            {
                files.push((
                    format!("confusion-{}-{test}.png", m.key()),
                    confusion_png(&first.confusion)?,
                ));
            }
        }
    }
    let colours = [
        "grey", "blue", "orange", "green", "red", "purple", "brown", "pink",
    ];
    let mut legend = format!(
        "\nPictures: `recall-<test>.png` — per class (left to right, class order), one bar per method: {}; grid lines at 25/50/75/100 %. `confusion-<method>-<test>.png` — rows true class, columns prediction, darker = larger share of the row, diagonal in green (first seed).\n",
        methods
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{} {}", colours[i % colours.len()], m.label()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(picture) = labelled_as_picture(results)? {
        files.push(picture);
        legend.push_str(
            "`generated-labelled-as.png` — the reference classifier's labels on the generated images: rows the class generated, columns the label it gave, shaded as the confusion matrices.\n",
        );
    }
    Ok((files, legend))
}

#[cfg(test)]
mod tests;
