//! Real stand-ins for generated images: what method (d) would score with a perfect generator.
//!
//! A generation run's `rebalanced/idx` holds every class's originals, then its generated images.
//! A stand-in run writes the same layout with real training images in the generated images'
//! place — images that neither the long-tailed set nor the validation set holds, so no
//! classifier of the evaluation has seen them. They are samples of the very distribution the
//! generator learns to imitate: evaluated as (d) is (`worker evaluate --generation <root>`), they
//! give the most any generator can add in (d)'s mix. With a number of distinct images per class,
//! each class's stand-ins are that many real images repeated: a generator's (d) can then be read
//! against how many new real images of each class it is worth.

use serde::{Deserialize, Serialize};

use crate::data::{ImageDataset, per_class_subset, stand_in_subset};
use crate::error::{Error, Result};

/// Where a stand-in run describes itself, beside `rebalanced/idx`.
pub const STAND_IN_RECORD: &str = "STAND-IN.json";

/// What to stand in: the per-class totals (originals + stand-ins, as a generation run's
/// targets), the validation set to keep clear of, and how many distinct images per class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInSpec {
    /// Originals plus stand-ins per class; a class with as many originals or more gets none.
    pub targets: Vec<usize>,
    /// The evaluation's `--validation-per-class`: those images are held out too (0: none).
    pub validation_per_class: usize,
    /// Each class's stand-ins are at most this many real images, repeated in turn to fill its
    /// share (None: every stand-in a different image).
    pub distinct_per_class: Option<usize>,
}

/// One class of a stand-in run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandInClass {
    pub index: usize,
    pub name: String,
    pub original: usize,
    pub target: usize,
    /// Stand-in images written after the originals.
    pub stand_ins: usize,
    /// Different real images among them.
    pub distinct: usize,
    /// The distinct images' record indices in the full training split.
    pub records: Vec<usize>,
}

/// `STAND-IN.json`: how a stand-in run was drawn, so that it can be drawn again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandInRecord {
    pub what: &'static str,
    pub subset_seed: u64,
    pub validation_per_class: usize,
    pub distinct_per_class: Option<usize>,
    pub classes: Vec<StandInClass>,
}

/// The rebalanced set of a stand-in run — every class's originals (the long-tailed set drawn
/// from `full_split` by `used_counts` and `subset_seed`, in its order), then its stand-ins — and
/// its record.
pub fn stand_in_set(
    full_split: &ImageDataset,
    used_counts: &[usize],
    subset_seed: u64,
    spec: &StandInSpec,
) -> Result<(ImageDataset, StandInRecord)> {
    let num_classes = full_split.num_classes();
    if spec.targets.len() != num_classes {
        return Err(Error::config(
            "targets",
            format!(
                "{} targets were given for the {num_classes} classes of the training split",
                spec.targets.len()
            ),
        ));
    }
    if spec.distinct_per_class == Some(0) {
        return Err(Error::config(
            "distinct_per_class",
            "0 distinct images cannot fill a class; leave it out for all different",
        ));
    }
    let labels = full_split.labels();
    let class_of = |record: usize| usize::from(labels[record]);
    // The long-tailed set is these records in this (ascending) order, as `load_source` keeps it.
    let long_tail = per_class_subset(labels, used_counts, subset_seed)?;
    let mut originals = vec![0usize; num_classes];
    for &record in &long_tail {
        originals[class_of(record)] += 1;
    }
    let stand_ins: Vec<usize> = (0..num_classes)
        .map(|k| spec.targets[k].saturating_sub(originals[k]))
        .collect();
    let distinct: Vec<usize> = stand_ins
        .iter()
        .map(|&n| spec.distinct_per_class.map_or(n, |d| d.min(n)))
        .collect();
    let drawn = stand_in_subset(
        labels,
        used_counts,
        spec.validation_per_class,
        &distinct,
        subset_seed,
    )?;
    let mut records: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for record in drawn {
        records[class_of(record)].push(record);
    }
    // Class by class, as a generation run writes it: originals first, then the stand-ins,
    // each distinct image in turn until the class's share is full.
    let mut order = Vec::with_capacity(long_tail.len() + stand_ins.iter().sum::<usize>());
    for class in 0..num_classes {
        order.extend(long_tail.iter().copied().filter(|&r| class_of(r) == class));
        order.extend(records[class].iter().cycle().take(stand_ins[class]));
    }
    let rebalanced = full_split.select(&order)?;
    let classes = (0..num_classes)
        .map(|k| StandInClass {
            index: k,
            name: full_split.class_names()[k].clone(),
            original: originals[k],
            target: spec.targets[k],
            stand_ins: stand_ins[k],
            distinct: distinct[k],
            records: std::mem::take(&mut records[k]),
        })
        .collect();
    let record = StandInRecord {
        what: "real training images outside the long-tailed and validation sets, in the \
               generated images' place",
        subset_seed,
        validation_per_class: spec.validation_per_class,
        distinct_per_class: spec.distinct_per_class,
        classes,
    };
    Ok((rebalanced, record))
}

/// What an evaluation checks of a `STAND-IN.json` before it trusts the stand-ins.
#[derive(Deserialize)]
struct StandInDraw {
    subset_seed: u64,
    validation_per_class: usize,
    classes: Vec<DrawnClass>,
}

#[derive(Deserialize)]
struct DrawnClass {
    original: usize,
}

/// Refuses stand-ins drawn for another long-tailed set or another validation set: some of
/// them could then be images the evaluation trains on or scores with, and the ceiling would
/// flatter. `record` is the `STAND-IN.json` read from `name`; `originals` the evaluation's
/// long-tailed class counts. An evaluation without a validation set accepts any.
pub fn check_stand_in_draw(
    record: &[u8],
    name: &str,
    subset_seed: u64,
    originals: &[usize],
    validation_per_class: usize,
) -> Result<()> {
    let draw: StandInDraw = serde_json::from_slice(record)
        .map_err(|e| Error::dataset(name, format!("is not a stand-in record: {e}")))?;
    let drawn: Vec<usize> = draw.classes.iter().map(|c| c.original).collect();
    let mismatch = if draw.subset_seed != subset_seed {
        Some(format!(
            "subset_seed: the stand-ins were drawn beside the long-tailed set of seed {}, this              evaluation's is {subset_seed}",
            draw.subset_seed
        ))
    } else if drawn != originals {
        Some(format!(
            "class_counts: the stand-ins were drawn beside a long-tailed set of {drawn:?}, this              evaluation's is {originals:?}"
        ))
    } else if validation_per_class != 0 && draw.validation_per_class != validation_per_class {
        Some(format!(
            "validation_per_class: the stand-ins were kept clear of a validation set of {} per              class, this evaluation's has {validation_per_class}",
            draw.validation_per_class
        ))
    } else {
        None
    };
    match mismatch {
        Some(reason) => Err(Error::dataset(
            name,
            format!("{reason}; some stand-ins could be images it trains or scores on"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
