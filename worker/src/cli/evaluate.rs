//! `worker evaluate`: the fixed classifier per method and seed on one machine, outside a job.

use super::*;

#[derive(Args, Debug)]
pub(super) struct EvaluateArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    kernels: KernelCacheArgs,
    /// A generation run's root (`<output>/generations/<...>`, a directory or s3://...): its
    /// `rebalanced/idx` set is method (d). Without it, (d) is skipped.
    #[arg(long)]
    generation: Option<String>,
    /// Methods, comma-separated: long-tail, random-oversampling, class-weighted, anygan, smote,
    /// shifted-oversampling;
    /// and the generator's quality: cas (trained on generated images only) and full-real (the
    /// reference on the full real training split, which also labels the generated images).
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = anygan_proto::generation::EVALUATION_METHODS.map(String::from)
    )]
    methods: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// The classifier's learning rate over its steps: cosine (down to 0) or
    /// constant.
    #[arg(long, default_value_t = LearningRateSchedule::Cosine)]
    schedule: LearningRateSchedule,
    /// Width of the classifier's first convolution.
    #[arg(long, default_value_t = 32)]
    classifier_width: usize,
    /// Method (d): the share of each rare class that is its real images repeated; generated
    /// images fill the rest (0: the long-tailed set plus every generated image).
    #[arg(long, default_value_t = anygan_proto::generation::DEFAULT_REAL_SHARE)]
    real_share: f64,
    /// Method (d) trains only on the generated images a classifier trained on the oversampled
    /// long-tailed set labels as their class (costs one more classifier per seed).
    #[arg(long)]
    filter_generated: bool,
    /// With --filter-generated: which of the images the judge labels as their class (d) keeps
    /// — all, or per class the share it is least or most sure of (least-sure:0.5,
    /// most-sure:0.5).
    #[arg(long, default_value_t = anygan_proto::generation::JudgeKeeps::All)]
    judge_keeps: anygan_proto::generation::JudgeKeeps,
    /// Method (d): every class, the largest included, is the real share real and the rest
    /// generated (originals subsampled where a class has more), so being generated says
    /// nothing about an image's class. The largest class needs generated images too.
    #[arg(long)]
    same_mix: bool,
    /// Method (d): random oversampling's set (as (b) draws it) plus this many generated images
    /// of every class, the largest included, instead of the real share; the generation run
    /// must have left every class that many (e.g. --generation-targets 8000,... for 4000 here).
    #[arg(long, default_value_t = 0, conflicts_with_all = ["real_share", "same_mix"])]
    added_generated: usize,
    /// Method (d): its real copies drawn as method (f) draws its own (the last quarter of each
    /// class's target shifted by up to 2 pixels, the rest exact); with --added-generated, (f)'s
    /// set instead of (b)'s. Whether the generated images add anything on top of (f).
    #[arg(long)]
    shifted_copies: bool,
    /// Every remedy but (b): the classifier's last N epochs train on random oversampling's set
    /// (as (b) draws it) instead of the method's own — deferred re-sampling. Below --epochs;
    /// 0 (the default) keeps each method's set throughout.
    #[arg(long, default_value_t = 0)]
    finish_oversampled_epochs: usize,
    /// Every method: this many epochs on the long-tailed set as it is before its --epochs on
    /// its own set — deferred re-balancing ((b) then is deferred re-sampling, (c) deferred
    /// re-weighting). 0 (the default): none.
    #[arg(
        long,
        default_value_t = 0,
        conflicts_with = "finish_oversampled_epochs"
    )]
    long_tail_first_epochs: usize,
    /// With --long-tail-first-epochs: after the long-tailed start only the classifier's fully
    /// connected head trains on each method's set; the convolutional features stay as the
    /// long-tailed set left them (classifier re-training, cRT).
    #[arg(long)]
    rebalance_head_only: bool,
    /// With --long-tail-first-epochs: during the long-tailed start every class below N images
    /// is topped up to N — method (d) with generated images (those its judge keeps, with
    /// --filter-generated), every other method with exact copies drawn as (b) draws them.
    /// 0 (the default): the long-tailed set as it is
    #[arg(long, default_value_t = 0)]
    long_tail_start_floor: usize,
    /// Every method's classifier: each training image shifted by up to N pixels each way,
    /// drawn anew every step (0, the default: not shifted).
    #[arg(long, default_value_t = 0)]
    augment_shift: usize,
    /// Every method's classifier: the chance that a training image is flipped left to right,
    /// drawn anew every step (0, the default: never).
    #[arg(long, default_value_t = 0.0)]
    augment_flip_probability: f64,
    /// Also score every classifier on a balanced validation set of this many images per
    /// class, drawn from the training split's images outside the long-tailed set (0, the
    /// default: none). Choose settings — a generator checkpoint, a real share — on it, so the
    /// test sets stay unseen.
    #[arg(long, default_value_t = 0)]
    validation_per_class: usize,
    /// Where report.md and results.json go: a directory or s3://bucket/prefix.
    #[arg(long, default_value = "out/eval")]
    output: String,
}

pub(super) fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    use anygan_proto::job::{DatasetFormat, DatasetSource};
    use anygan_worker::data::LONG_TAIL_TEST_COUNTS;
    use anygan_worker::eval::methods::Method;
    use anygan_worker::eval::run::{EvaluationSpec, TestSet};

    let settings = anygan_proto::generation::EvaluationSettings {
        methods: args.methods.clone(),
        seeds: args.seeds.clone(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        schedule: args.schedule,
        width: args.classifier_width,
        quality: false,
        real_share: args.real_share,
        filter_generated: args.filter_generated,
        judge_keeps: args.judge_keeps,
        same_mix: args.same_mix,
        added_generated: args.added_generated,
        shifted_copies: args.shifted_copies,
        finish_oversampled_epochs: args.finish_oversampled_epochs,
        long_tail_first_epochs: args.long_tail_first_epochs,
        rebalance_head_only: args.rebalance_head_only,
        long_tail_start_floor: args.long_tail_start_floor,
        augment_shift: args.augment_shift,
        augment_flip_probability: args.augment_flip_probability,
        validation_per_class: args.validation_per_class,
    };
    // Refused before any data is read.
    settings
        .validate()
        .map_err(|reason| anyhow::anyhow!("evaluate: {reason}"))?;
    args.kernels.prepare_device()?;
    let runtime = runtime()?;
    let store_options = args.data.all_store_options().map_err(anyhow::Error::msg)?;
    let source = args.data.source().map_err(anyhow::Error::msg)?;
    if args.validation_per_class > 0 && source.class_counts.is_none() {
        anyhow::bail!(
            "--validation-per-class holds images out of a per-class subset of the training \
             split, and none was asked for (--long-tail or --class-counts): every image trains, \
             none is left to validate on"
        );
    }
    let shape = GanConfig::new(1).image_shape();
    let long_tail = runtime.block_on(load_source(&source, shape, &store_options))?;
    let test_source = DatasetSource {
        format: match &source.format {
            DatasetFormat::FashionMnist { .. } => DatasetFormat::FashionMnist { test: true },
            _ => anyhow::bail!(
                "the evaluation's test sets come from --format fashion-mnist's test split"
            ),
        },
        class_counts: None,
        ..source.clone()
    };
    let balanced = runtime.block_on(load_source(&test_source, shape, &store_options))?;
    let imbalanced_indices = anygan_worker::data::per_class_subset(
        balanced.labels(),
        &LONG_TAIL_TEST_COUNTS,
        args.data.subset_seed,
    )?;
    let imbalanced = balanced.select(&imbalanced_indices)?;
    let rebalanced = match &args.generation {
        Some(root) => {
            check_stand_ins(
                root,
                &store_options,
                &args,
                &long_tail.class_counts(),
                &runtime,
            )?;
            let classes: Vec<String> = long_tail.class_names().to_vec();
            let idx = DatasetSource {
                location: format!("{}/rebalanced/idx", root.trim_end_matches('/')),
                format: DatasetFormat::Idx {
                    images: "images.idx".into(),
                    labels: "labels.idx".into(),
                    class_names: classes,
                },
                class_counts: None,
                subset_seed: 0,
            };
            Some(runtime.block_on(load_source(&idx, shape, &store_options))?)
        }
        None => None,
    };
    let mut methods = Vec::new();
    for name in &args.methods {
        let method = Method::parse(name)
            .ok_or_else(|| anyhow::anyhow!("--methods: unknown method `{name}`"))?;
        if matches!(method, Method::Anygan | Method::Cas) && rebalanced.is_none() {
            tracing::warn!(method = method.key(), "no --generation given: skipping");
            continue;
        }
        methods.push(method);
    }
    // The reference classifier trains on the whole real training split; the validation set
    // is drawn from the part of it the long-tailed set leaves out.
    let wants_validation = args.validation_per_class > 0;
    let full_split = if methods.contains(&Method::FullReal) || wants_validation {
        let full = DatasetSource {
            class_counts: None,
            ..source.clone()
        };
        Some(runtime.block_on(load_source(&full, shape, &store_options))?)
    } else {
        None
    };
    let validation = match (&full_split, wants_validation) {
        (Some(full), true) => Some(anygan_worker::eval::tasks::held_out_validation(
            full,
            &source,
            args.validation_per_class,
        )?),
        _ => None,
    };
    let full_real = full_split.filter(|_| methods.contains(&Method::FullReal));
    let target = long_tail.class_counts().into_iter().max().unwrap_or(0);
    let spec = EvaluationSpec::new(&settings, methods, args.seeds.clone(), target);
    tracing::info!(
        train = ?long_tail.class_counts(),
        rebalanced = ?rebalanced.as_ref().map(|r| r.class_counts()),
        balanced_test = balanced.len(),
        imbalanced_test = imbalanced.len(),
        validation = validation.as_ref().map_or(0, |v| v.len()),
        methods = ?spec.methods,
        seeds = ?spec.seeds,
        epochs = args.epochs,
        "evaluating"
    );
    let mut tests = vec![
        TestSet {
            name: "balanced".into(),
            data: balanced,
        },
        TestSet {
            name: "imbalanced".into(),
            data: imbalanced,
        },
    ];
    if let Some(data) = validation {
        tests.push(TestSet {
            name: anygan_worker::eval::run::VALIDATION_SET.into(),
            data,
        });
    }
    let sources = anygan_worker::eval::methods::Sources {
        long_tail: &long_tail,
        rebalanced: rebalanced.as_ref(),
        full_real: full_real.as_ref(),
        judged: None,
    };
    let results = anygan_worker::eval::run::evaluate(
        sources,
        &tests,
        &spec,
        anygan_worker::eval::run::log_result,
    )?;
    let generator = args
        .generation
        .as_deref()
        .map_or("none (method (d) not run)".to_string(), |root| {
            format!("generation `{root}`")
        });
    let (report, files) = anygan_worker::eval::run::full_report(
        &generator,
        &settings,
        &results,
        long_tail.class_names(),
    )?;
    println!("{report}");
    let output = StoreLocation::parse(&args.output, store_options, true)?;
    for (name, bytes) in files {
        runtime.block_on(output.put(&name, bytes))?;
    }
    runtime.block_on(output.put("report.md", report))?;
    runtime.block_on(output.put("results.json", serde_json::to_vec_pretty(&results)?))?;
    tracing::info!(output = %output, "wrote report.md, results.json and comparisons.json");
    Ok(())
}

/// A `worker stand-in` directory given as the generation must have been drawn beside this
/// evaluation's long-tailed and validation sets; a generation run (no `STAND-IN.json`) passes.
fn check_stand_ins(
    root: &str,
    store_options: &[(String, String)],
    args: &EvaluateArgs,
    originals: &[usize],
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    use anygan_worker::eval::stand_in::{STAND_IN_RECORD, check_stand_in_draw};
    let location = StoreLocation::parse(root, store_options.iter().cloned(), false)?;
    if let Some((record, _)) = runtime.block_on(location.get_versioned(STAND_IN_RECORD))? {
        check_stand_in_draw(
            &record,
            &location.describe(STAND_IN_RECORD),
            args.data.subset_seed,
            originals,
            args.validation_per_class,
        )?;
    }
    Ok(())
}
