//! The evaluation as tasks of a job (scheduled by the coordinator after generation): one task
//! trains and scores the classifier for one method and seed and writes its results; the report
//! task gathers them all. Under `<generation root>/evaluation/`: `runs/<method>-seed<N>.json`,
//! then `report.md` and `results.json`.

use anygan_proto::generation::{EvaluationSettings, GenerationPlan};
use anygan_proto::job::{DatasetFormat, DatasetSource};
use anygan_store::StoreLocation;

use super::methods::{Method, Sources};
use super::run::{EvaluationSpec, RunResult, TestSet, VALIDATION_SET, evaluate, full_report};
use crate::data::{
    ImageDataset, ImageShape, LONG_TAIL_TEST_COUNTS, held_out_subset, load_source, per_class_subset,
};
use crate::error::{Error, Result};
use crate::generate::TaskOutcome;

/// Where evaluation results go under a generation root.
pub const EVALUATION_DIR: &str = "evaluation";

fn shape(plan: &GenerationPlan) -> ImageShape {
    ImageShape {
        channels: plan.model.channels,
        height: plan.model.image_size,
        width: plan.model.image_size,
    }
}

fn settings(plan: &GenerationPlan) -> Result<&EvaluationSettings> {
    plan.evaluation
        .as_ref()
        .ok_or_else(|| Error::config("evaluation", "the plan has no evaluation settings"))
}

fn parse_method(name: &str) -> Result<Method> {
    Method::parse(name)
        .ok_or_else(|| Error::config("method", format!("unknown evaluation method `{name}`")))
}

/// The validation set: `per_class` images of every class from `full_split` (the training split
/// `dataset` takes its per-class subset of) that the subset leaves out.
pub fn held_out_validation(
    full_split: &ImageDataset,
    dataset: &DatasetSource,
    per_class: usize,
) -> Result<ImageDataset> {
    let Some(used_counts) = &dataset.class_counts else {
        return Err(Error::config(
            "validation_per_class",
            "the training data is not a per-class subset (no class counts): every image \
             trains, none is left to validate on",
        ));
    };
    let indices = held_out_subset(
        full_split.labels(),
        used_counts,
        per_class,
        dataset.subset_seed,
    )?;
    full_split.select(&indices)
}

/// The balanced test split and BENCHMARK's imbalanced subset of it; with
/// `validation_per_class`, the validation set held out of the training split last.
async fn test_sets(
    plan: &GenerationPlan,
    store_options: &[(String, String)],
) -> Result<Vec<TestSet>> {
    let DatasetFormat::FashionMnist { .. } = plan.dataset.format else {
        return Err(Error::config(
            "evaluation",
            "the test sets come from Fashion-MNIST's test split",
        ));
    };
    let source = DatasetSource {
        format: DatasetFormat::FashionMnist { test: true },
        class_counts: None,
        ..plan.dataset.clone()
    };
    let balanced = load_source(&source, shape(plan), store_options).await?;
    let mut sets = Vec::new();
    if balanced.num_classes() == LONG_TAIL_TEST_COUNTS.len() {
        let indices = per_class_subset(
            balanced.labels(),
            &LONG_TAIL_TEST_COUNTS,
            plan.dataset.subset_seed,
        )?;
        sets.push(TestSet {
            name: "imbalanced".into(),
            data: balanced.select(&indices)?,
        });
    }
    sets.insert(
        0,
        TestSet {
            name: "balanced".into(),
            data: balanced,
        },
    );
    let per_class = settings(plan)?.validation_per_class;
    if per_class > 0 {
        let full_split = DatasetSource {
            class_counts: None,
            ..plan.dataset.clone()
        };
        let full_split = load_source(&full_split, shape(plan), store_options).await?;
        sets.push(TestSet {
            name: VALIDATION_SET.into(),
            data: held_out_validation(&full_split, &plan.dataset, per_class)?,
        });
    }
    Ok(sets)
}

/// The rebalanced set (originals + generated) the generation run wrote as IDX.
async fn rebalanced(
    plan: &GenerationPlan,
    root: &StoreLocation,
    class_names: &[String],
    store_options: &[(String, String)],
) -> Result<ImageDataset> {
    let source = DatasetSource {
        location: root.join("rebalanced/idx").to_string(),
        format: DatasetFormat::Idx {
            images: "images.idx".into(),
            labels: "labels.idx".into(),
            class_names: class_names.to_vec(),
        },
        class_counts: None,
        subset_seed: 0,
    };
    load_source(&source, shape(plan), store_options).await
}

/// Trains and scores the classifier for one method and seed; writes its results.
pub fn run_evaluate_task(
    plan: &GenerationPlan,
    method: &str,
    seed: u64,
    output: &StoreLocation,
    store_options: &[(String, String)],
    io: &tokio::runtime::Handle,
) -> Result<TaskOutcome> {
    let started = std::time::Instant::now();
    let settings = settings(plan)?;
    let method = parse_method(method)?;
    let root = output.join(&plan.root);
    let long_tail = io.block_on(load_source(&plan.dataset, shape(plan), store_options))?;
    let tests = io.block_on(test_sets(plan, store_options))?;
    let needs_generated = matches!(method, Method::Anygan | Method::Cas | Method::FullReal);
    let rebalanced = if needs_generated {
        Some(io.block_on(rebalanced(
            plan,
            &root,
            long_tail.class_names(),
            store_options,
        ))?)
    } else {
        None
    };
    let full_real = if method == Method::FullReal {
        let full = DatasetSource {
            class_counts: None,
            ..plan.dataset.clone()
        };
        Some(io.block_on(load_source(&full, shape(plan), store_options))?)
    } else {
        None
    };
    let target = long_tail.class_counts().into_iter().max().unwrap_or(0);
    let spec = EvaluationSpec::new(settings, vec![method], vec![seed], target);
    let sources = Sources {
        long_tail: &long_tail,
        rebalanced: rebalanced.as_ref(),
        full_real: full_real.as_ref(),
        judged: None,
    };
    let results = evaluate(sources, &tests, &spec, super::run::log_result)?;
    let name = format!("{EVALUATION_DIR}/runs/{}-seed{seed}.json", method.key());
    let json = serde_json::to_vec_pretty(&results).map_err(|e| Error::Encode {
        what: name.clone(),
        reason: e.to_string(),
    })?;
    io.block_on(root.put(&name, json))?;
    Ok(TaskOutcome {
        images: results.first().map_or(0, |r| r.train_images as u64),
        generated: 0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Gathers every run's results into `report.md` and `results.json`; a missing run is an error
/// naming it.
pub fn run_report_task(
    plan: &GenerationPlan,
    output: &StoreLocation,
    io: &tokio::runtime::Handle,
) -> Result<TaskOutcome> {
    let started = std::time::Instant::now();
    let settings = settings(plan)?;
    let root = output.join(&plan.root);
    let mut results: Vec<RunResult> = Vec::new();
    for (method, seed) in settings.runs() {
        let key = parse_method(&method)?.key();
        {
            let name = format!("{EVALUATION_DIR}/runs/{key}-seed{seed}.json");
            let bytes = io.block_on(root.get(&name))?;
            let runs: Vec<RunResult> = serde_json::from_slice(&bytes).map_err(|e| {
                Error::checkpoint(root.describe(&name), format!("is not a run result: {e}"))
            })?;
            results.extend(runs);
        }
    }
    let class_names: Vec<String> = plan.classes.iter().map(|c| c.name.clone()).collect();
    // The assemble task recorded the weights; reading its manifest spares loading the
    // checkpoint a second time.
    let manifest_name = crate::generate::GENERATION_MANIFEST;
    let manifest: crate::generate::GenerationManifest =
        serde_json::from_slice(&io.block_on(root.get(manifest_name))?).map_err(|e| {
            Error::checkpoint(
                root.describe(manifest_name),
                format!("is not a generation manifest: {e}"),
            )
        })?;
    let weights = manifest.sampled_weights;
    let noise = noise_description(&plan.spec);
    let generator = format!(
        "checkpoint `{}` (step {}), weights {weights}, {noise}, generation `{}`",
        plan.checkpoint, plan.checkpoint_step, plan.root
    );
    let (report, files) = full_report(&generator, settings, &results, &class_names)?;
    for (name, bytes) in files {
        io.block_on(root.put(&format!("{EVALUATION_DIR}/{name}"), bytes))?;
    }
    io.block_on(root.put(&format!("{EVALUATION_DIR}/report.md"), report))?;
    let json = serde_json::to_vec_pretty(&results).map_err(|e| Error::Encode {
        what: "results.json".into(),
        reason: e.to_string(),
    })?;
    io.block_on(root.put(&format!("{EVALUATION_DIR}/results.json"), json))?;
    tracing::info!(runs = results.len(), location = %root.join(EVALUATION_DIR), "evaluation report written");
    Ok(TaskOutcome {
        images: 0,
        generated: 0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// How a generation chose its noise, for the report: truncation and ranking, or anchors
/// (anchored codes are neither truncated nor ranked).
fn noise_description(spec: &anygan_proto::generation::GenerationSpec) -> String {
    if spec.anchors > 0 {
        return format!(
            "anchored on up to {} real images per class ({} inversion steps)",
            spec.anchors, spec.inversion_steps
        );
    }
    let ranking = match spec.candidates {
        0 | 1 => String::new(),
        k => format!(", each image the best of {k} candidates to the discriminator"),
    };
    format!("truncation {}{ranking}", spec.truncation)
}

#[cfg(test)]
mod tests {
    use anygan_proto::generation::GenerationSpec;

    use super::noise_description;

    #[test]
    fn the_report_says_how_the_noise_was_chosen() {
        let plain = GenerationSpec::default();
        assert_eq!(noise_description(&plain), "truncation 0.5");
        let ranked = GenerationSpec {
            candidates: 4,
            ..GenerationSpec::default()
        };
        assert_eq!(
            noise_description(&ranked),
            "truncation 0.5, each image the best of 4 candidates to the discriminator"
        );
        let anchored = GenerationSpec {
            anchors: 100,
            inversion_steps: 30,
            ..GenerationSpec::default()
        };
        assert_eq!(
            noise_description(&anchored),
            "anchored on up to 100 real images per class (30 inversion steps)"
        );
    }
}
