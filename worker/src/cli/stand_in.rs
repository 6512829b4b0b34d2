//! `worker stand-in`: a generation-shaped set whose generated images are real ones, the ceiling
//! of method (d) (see `anygan_worker::eval::stand_in`).

use super::*;

#[derive(Args, Debug)]
pub(super) struct StandInArgs {
    /// The training data as the evaluation names it; it must be a per-class subset
    /// (--long-tail or --class-counts), whose left-out images stand in.
    #[command(flatten)]
    data: DataArgs,
    /// Originals plus stand-ins per class, comma-separated, as --generation-targets (every
    /// class below its target is filled with real images from outside the subset).
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<usize>,
    /// The --validation-per-class the evaluation will use: its images are kept out of the
    /// stand-ins (0: no validation set).
    #[arg(long, default_value_t = 0)]
    validation_per_class: usize,
    /// Each class's stand-ins are at most this many different real images, repeated in turn
    /// (default: every stand-in a different image).
    #[arg(long)]
    distinct_per_class: Option<usize>,
    /// Where `rebalanced/idx` and STAND-IN.json go (a directory or s3://...): pass it to
    /// `worker evaluate --generation`.
    #[arg(long)]
    output: String,
}

pub(super) fn stand_in(args: StandInArgs) -> anyhow::Result<()> {
    use anygan_proto::job::DatasetSource;
    use anygan_worker::data::idx_set_files;
    use anygan_worker::eval::stand_in::{STAND_IN_RECORD, StandInSpec, stand_in_set};

    let source = args.data.source().map_err(anyhow::Error::msg)?;
    let Some(used_counts) = source.class_counts.clone() else {
        anyhow::bail!(
            "stand-in: the training data is not a per-class subset (--long-tail or \
             --class-counts), so no real image is left over to stand in"
        );
    };
    let store_options = args.data.all_store_options().map_err(anyhow::Error::msg)?;
    let runtime = runtime()?;
    let full_split = DatasetSource {
        class_counts: None,
        ..source.clone()
    };
    let shape = GanConfig::new(1).image_shape();
    let full_split = runtime.block_on(load_source(&full_split, shape, &store_options))?;
    let spec = StandInSpec {
        targets: args.targets,
        validation_per_class: args.validation_per_class,
        distinct_per_class: args.distinct_per_class,
    };
    let (rebalanced, record) = stand_in_set(&full_split, &used_counts, source.subset_seed, &spec)?;
    let output = StoreLocation::parse(&args.output, store_options, true)?;
    let idx = output.join("rebalanced/idx");
    for (name, bytes) in idx_set_files(&rebalanced)? {
        runtime.block_on(idx.put(name, bytes))?;
    }
    runtime.block_on(output.put(STAND_IN_RECORD, serde_json::to_vec_pretty(&record)?))?;
    for class in &record.classes {
        tracing::info!(
            class = %class.name,
            originals = class.original,
            stand_ins = class.stand_ins,
            distinct = class.distinct,
            "stood in"
        );
    }
    tracing::info!(output = %output, images = rebalanced.len(), "wrote rebalanced/idx and {STAND_IN_RECORD}");
    Ok(())
}
