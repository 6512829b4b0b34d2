//! How new the generated images are: does the generator draw images as far from the originals
//! it trained on as new real images of the class lie, or near-copies of them?
//!
//! The data-copying test of Meehan, Chaudhuri and Dasgupta (AISTATS 2020), in its simplest form:
//! per class, the distance from each generated image to its nearest original (the class's
//! images in the training set), beside the same distance for real images the training set does
//! not hold — the validation set. A generator that samples the class's distribution gives the
//! two the same median; one that reproduces its originals gives the generated images a smaller
//! one. Distance: the mean absolute difference in gray levels (0–255) over the pixels, as
//! `bench/class_spread.py` measures variety.

use serde::{Deserialize, Serialize};

use super::methods::indices_by_class;
use super::run::RunResult;
use crate::data::ImageDataset;
use crate::error::{Error, Result};

/// Images per class, generated and held out each, whose nearest original is looked for: the
/// first of each class, enough for a median to two significant figures.
pub const NOVELTY_QUERIES_PER_CLASS: usize = 500;

/// Per class: the median distance of generated and of held-out real images to their nearest
/// original of the class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Novelty {
    /// Generated images measured per class (0 where the class has none, or no originals).
    pub generated_images: Vec<usize>,
    /// Median distance of a generated image to its nearest original (gray levels, 0–255).
    pub generated_median: Vec<f64>,
    /// Held-out real images measured per class.
    pub held_out_images: Vec<usize>,
    /// Median distance of a held-out real image to its nearest original.
    pub held_out_median: Vec<f64>,
}

impl Novelty {
    /// Measures the first [`NOVELTY_QUERIES_PER_CLASS`] generated and held-out images of every
    /// class against all of the class's originals. The three sets must share shape and classes.
    pub fn of(
        originals: &ImageDataset,
        generated: &ImageDataset,
        held_out: &ImageDataset,
    ) -> Result<Self> {
        for (name, set) in [
            ("generated images", generated),
            ("held-out images", held_out),
        ] {
            if set.shape() != originals.shape() || set.num_classes() != originals.num_classes() {
                return Err(Error::config(
                    "novelty",
                    format!(
                        "the {name} ({:?}, {} classes) do not match the originals ({:?}, {} classes)",
                        set.shape(),
                        set.num_classes(),
                        originals.shape(),
                        originals.num_classes()
                    ),
                ));
            }
        }
        let classes = originals.num_classes();
        let originals_of = indices_by_class(originals);
        let measure = |set: &ImageDataset| -> (Vec<usize>, Vec<f64>) {
            let mut queries = indices_by_class(set);
            for class in &mut queries {
                class.truncate(NOVELTY_QUERIES_PER_CLASS);
            }
            (0..classes)
                .map(|k| {
                    if originals_of[k].is_empty() {
                        return (0, 0.0);
                    }
                    let mut distances: Vec<f64> = queries[k]
                        .iter()
                        .map(|&q| nearest_distance(set.image(q), originals, &originals_of[k]))
                        .collect();
                    (distances.len(), median(&mut distances))
                })
                .unzip()
        };
        let (generated_images, generated_median) = measure(generated);
        let (held_out_images, held_out_median) = measure(held_out);
        Ok(Self {
            generated_images,
            generated_median,
            held_out_images,
            held_out_median,
        })
    }
}

/// Mean absolute gray-level difference from `image` to the nearest of `candidates`.
fn nearest_distance(image: &[u8], set: &ImageDataset, candidates: &[usize]) -> f64 {
    let nearest = candidates
        .iter()
        .map(|&c| {
            image
                .iter()
                .zip(set.image(c))
                .map(|(&a, &b)| u32::from(a.abs_diff(b)))
                .sum::<u32>()
        })
        .min()
        .unwrap_or(0);
    f64::from(nearest) / image.len().max(1) as f64
}

/// The median (the mean of the middle two of an even count); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// The report's section: per class the two medians and their ratio, from the first run that
/// measured them (every run measures the same images).
pub(super) fn novelty_report(results: &[RunResult], class_names: &[String]) -> String {
    let Some(novelty) = results.iter().find_map(|r| r.generated_novelty.as_ref()) else {
        return String::new();
    };
    let row = |values: Vec<String>| values.join(" | ");
    let figures = |medians: &[f64], counts: &[usize]| {
        row((0..class_names.len())
            .map(|k| match counts.get(k) {
                Some(&n) if n > 0 => format!("{:.1}", medians[k]),
                _ => "–".into(),
            })
            .collect())
    };
    let ratios = row((0..class_names.len())
        .map(|k| {
            let measured = novelty.generated_images.get(k).is_some_and(|&n| n > 0)
                && novelty.held_out_images.get(k).is_some_and(|&n| n > 0)
                && novelty.held_out_median[k] > 0.0;
            if measured {
                format!(
                    "{:.2}",
                    novelty.generated_median[k] / novelty.held_out_median[k]
                )
            } else {
                "–".into()
            }
        })
        .collect());
    format!(
        "\n#### How new the generated images are\n\nMedian distance to the nearest original of the class (mean absolute gray-level difference, 0–255), of up to {NOVELTY_QUERIES_PER_CLASS} images per class: generated, and real images the training set does not hold (the validation set). A ratio near 1: the generator draws images as new as real ones; well below 1: near-copies of its originals (data copying).\n\n| | {} |\n|---|{}\n| generated | {} |\n| held-out real | {} |\n| ratio | {} |\n",
        class_names.join(" | "),
        "---|".repeat(class_names.len()),
        figures(&novelty.generated_median, &novelty.generated_images),
        figures(&novelty.held_out_median, &novelty.held_out_images),
        ratios,
    )
}

#[cfg(test)]
mod tests;
