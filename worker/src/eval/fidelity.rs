//! How recognisable the generated images are to a real-data classifier, and the report sections
//! that show it: the generator's own quality (CAS; per class the share of its images the
//! reference labels as that class, and what it calls the rest) and method (d)'s filter.

use super::methods::Method;
use super::metrics::{ConfusionMatrix, mean_std};
use super::run::{ReportFile, RunResult, cell, runs_of};
use crate::error::{Error, Result};

/// How recognisable the generated images of each class are to a real-data classifier.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fidelity {
    /// Generated images per class that were labelled.
    pub images: Vec<usize>,
    /// Share of them labelled as their own class (0 where a class has none).
    pub correct: Vec<f64>,
    /// `counts[generated class][label the classifier gave]`: where a class's share above is low,
    /// which class its images look like instead. Absent where only shares were counted ((d)'s
    /// filter) and in results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_as: Option<ConfusionMatrix>,
}

impl Fidelity {
    /// Tallies the classifier's labels (`predicted`) of generated images of class `labels`; a
    /// label outside `0..classes` is an error naming the image.
    pub(super) fn of(labels: &[u16], predicted: &[u16], classes: usize) -> Result<Self> {
        let labelled_as = ConfusionMatrix::from_labels(labels, predicted, classes)
            .map_err(|reason| Error::config("generated images", reason))?;
        let images: Vec<usize> = labelled_as
            .counts
            .iter()
            .map(|row| row.iter().sum::<u64>() as usize)
            .collect();
        let right: Vec<usize> = (0..classes)
            .map(|k| labelled_as.counts[k][k] as usize)
            .collect();
        Ok(Self {
            labelled_as: Some(labelled_as),
            ..Self::from_counts(images, &right)
        })
    }

    /// Per class `images` and how many of them count (`right`): the share, 0 where none.
    pub(super) fn from_counts(images: Vec<usize>, right: &[usize]) -> Self {
        let correct = images
            .iter()
            .zip(right)
            .map(|(&n, &r)| if n == 0 { 0.0 } else { r as f64 / n as f64 })
            .collect();
        Self {
            images,
            correct,
            labelled_as: None,
        }
    }
}

/// One `record` per run: each run's results repeat it on every test set, so it is read from the
/// balanced test set's.
fn per_run(
    results: &[RunResult],
    record: impl Fn(&RunResult) -> Option<&Fidelity>,
) -> Vec<&Fidelity> {
    results
        .iter()
        .filter(|r| r.test_set == "balanced")
        .filter_map(record)
        .collect()
}

/// The reference classifier's labels on the generated images, one record per reference run.
fn reference_fidelity(results: &[RunResult]) -> Vec<&Fidelity> {
    per_run(results, |r| r.generated_fidelity.as_ref())
}

/// The labels the reference runs gave the generated images, summed over the runs; `None`
/// where no run recorded them.
fn pooled_labelled_as(fidelity: &[&Fidelity]) -> Option<ConfusionMatrix> {
    let mut matrices = fidelity.iter().filter_map(|f| f.labelled_as.as_ref());
    let mut pooled = matrices.next()?.clone();
    for matrix in matrices {
        for (sum, row) in pooled.counts.iter_mut().zip(&matrix.counts) {
            for (total, &count) in sum.iter_mut().zip(row) {
                *total += count;
            }
        }
    }
    Some(pooled)
}

/// The generator's own quality: CAS (ACSA of the classifier trained on generated images only,
/// on the balanced test set), the per-class share of generated images the reference classifier
/// (trained on the full real training split) labels as their class, and per class the other
/// class it names most often.
pub(super) fn quality_report(results: &[RunResult], class_names: &[String]) -> String {
    let mut out = String::new();
    let cas: Vec<f64> = runs_of(results, Method::Cas, "balanced")
        .iter()
        .map(|r| r.metrics.acsa)
        .collect();
    let fidelity = reference_fidelity(results);
    if cas.is_empty() && fidelity.is_empty() {
        return out;
    }
    out.push_str("\n#### The generator itself\n\n");
    if !cas.is_empty() {
        out.push_str(&format!(
            "CAS (classifier trained on the generated images only, ACSA on the balanced test set): {} % ({} run(s)).\n",
            cell(&cas),
            cas.len()
        ));
    }
    if !fidelity.is_empty() {
        let reference: Vec<f64> = runs_of(results, Method::FullReal, "balanced")
            .iter()
            .map(|r| r.metrics.acsa)
            .collect();
        out.push_str(&format!(
            "\nShare of each class's generated images that the reference classifier (full real training split, balanced-test ACSA {} %) labels as that class (%; classes with no generated images show –):\n\n{}",
            cell(&reference),
            per_class_share_table(&fidelity, class_names)
        ));
    }
    if let Some(pooled) = pooled_labelled_as(&fidelity) {
        out.push_str(&format!(
            "\nWhat the reference calls the rest: per class, the other class it names most often and the share of the class's generated images it gives that label (%, every reference run pooled; – where it names none; the whole matrix is `generated-labelled-as.png`):\n\n{}",
            most_named_other_table(&pooled, class_names)
        ));
    }
    out
}

/// Method (d)'s filter: per class, the share of the generated images its judge kept.
pub(super) fn filter_report(results: &[RunResult], class_names: &[String]) -> String {
    let kept = per_run(results, |r| r.generated_kept.as_ref());
    if kept.is_empty() {
        return String::new();
    }
    format!(
        "\n#### (d)'s filter\n\nShare of each class's generated images that (d)'s judge (the classifier trained on the randomly oversampled long-tailed set) labels as that class and (d) therefore trains on (%, mean over seeds):\n\n{}",
        per_class_share_table(&kept, class_names)
    )
}

/// The reference's labels on the generated images as a confusion-matrix picture (rows the
/// class generated, columns the label given), named `generated-labelled-as.png`; `None` where
/// no reference run recorded them.
pub(super) fn labelled_as_picture(results: &[RunResult]) -> Result<Option<ReportFile>> {
    match pooled_labelled_as(&reference_fidelity(results)) {
        Some(pooled) => Ok(Some((
            "generated-labelled-as.png".to_string(),
            super::charts::confusion_png(&pooled)?,
        ))),
        None => Ok(None),
    }
}

/// A one-row table of per-class shares in %, the mean over `shares`; – where a class had no
/// generated images.
fn per_class_share_table(shares: &[&Fidelity], class_names: &[String]) -> String {
    let row: Vec<String> = (0..class_names.len())
        .map(|k| {
            let values: Vec<f64> = shares
                .iter()
                .filter(|f| f.images.get(k).copied().unwrap_or(0) > 0)
                .map(|f| f.correct[k])
                .collect();
            if values.is_empty() {
                "–".to_string()
            } else {
                format!("{:.1}", 100.0 * mean_std(&values).0)
            }
        })
        .collect();
    one_row_table(class_names, &row)
}

/// A one-row table: per generated class, the other label given most often and its share of the
/// class's images in %; – where every image of the class got its own label or there were none.
/// Ties go to the lower class index.
fn most_named_other_table(labelled_as: &ConfusionMatrix, class_names: &[String]) -> String {
    let row: Vec<String> = (0..class_names.len())
        .map(|k| {
            let Some(counts) = labelled_as.counts.get(k) else {
                return "–".to_string();
            };
            let total: u64 = counts.iter().sum();
            let other = counts
                .iter()
                .enumerate()
                .filter(|&(label, &count)| label != k && count > 0)
                .max_by(|(a, x), (b, y)| x.cmp(y).then(b.cmp(a)));
            match other {
                Some((label, &count)) => format!(
                    "{} {:.1}",
                    class_names.get(label).map_or("?", String::as_str),
                    100.0 * count as f64 / total as f64
                ),
                None => "–".to_string(),
            }
        })
        .collect();
    one_row_table(class_names, &row)
}

fn one_row_table(class_names: &[String], row: &[String]) -> String {
    format!(
        "| {} |\n|{}\n| {} |\n",
        class_names.join(" | "),
        "---|".repeat(class_names.len()),
        row.join(" | ")
    )
}

#[cfg(test)]
mod tests;
