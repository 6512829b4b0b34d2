//! Method (d)'s judge: the evaluation's classifier trained on what the user has (the long-tailed
//! set randomly oversampled) labels every generated image, and (d) trains only on those it
//! labels as their own class — all of them, or per class the share it is least or most sure of.

use std::time::Instant;

use anygan_proto::generation::JudgeKeeps;

use super::classifier::{
    ClassifierConfig, ClassifierTraining, predict_scored, train_classifier_in_phases,
};
use super::deferral::MethodSets;
use super::fidelity::Fidelity;
use super::methods::{Method, Sources};
use super::run::EvaluationSpec;
use crate::backend::TrainBackend;
use crate::data::ImageDataset;
use crate::error::Result;

/// The generated images the judge keeps, and per class the share of them kept. The judge is
/// (b)'s classifier: the evaluation's classifier trained (same settings, phases and seed) on
/// the long-tailed set randomly oversampled to the target — it knows only what the user has.
pub(super) fn judged_generated(
    sources: Sources<'_>,
    spec: &EvaluationSpec,
    config: &ClassifierConfig,
    training: &ClassifierTraining,
    device: &burn::prelude::Device<crate::backend::ComputeBackend>,
) -> Result<(ImageDataset, Fidelity)> {
    let long_tail = sources.long_tail;
    let generated = sources.generated()?;
    // (b)'s sets and phases for the seed — with deferred re-balancing its long-tailed start
    // too — so the judge is (b)'s classifier, not a shorter cousin of it.
    let oversampled = Method::RandomOversampling;
    let judge_sets = MethodSets::build(oversampled, sources, spec, training.seed)?;
    let started = Instant::now();
    let phases = judge_sets.phases(oversampled, long_tail, training, spec);
    let judge = train_classifier_in_phases::<TrainBackend>(&phases, config, training, device)?;
    let scored = predict_scored(&judge, &generated, device);
    let kept = judge_kept(
        generated.labels(),
        &scored.predicted,
        &scored.label_probability,
        spec.judge_keeps,
    );
    let share = kept_share(generated.labels(), &kept, long_tail.num_classes());
    tracing::info!(
        generated = generated.len(),
        kept = kept.len(),
        keeps = %spec.judge_keeps,
        judge_s = format!("{:.0}", started.elapsed().as_secs_f64()),
        "filtered the generated images"
    );
    Ok((generated.select(&kept)?, share))
}

/// The indices, in the set's order, of the images the judge keeps: those it labels as their
/// own class, and of those per class the `keeps` share (rounded up, so a share above 0 keeps at
/// least one) with the lowest or highest probability of their label; ties go to the earlier
/// image.
pub fn judge_kept(
    labels: &[u16],
    predicted: &[u16],
    label_probability: &[f32],
    keeps: JudgeKeeps,
) -> Vec<usize> {
    let right = |i: &usize| predicted.get(*i) == labels.get(*i);
    let classes = labels
        .iter()
        .map(|&l| usize::from(l) + 1)
        .max()
        .unwrap_or(0);
    let mut by_class = vec![Vec::new(); classes];
    for i in (0..labels.len()).filter(right) {
        by_class[usize::from(labels[i])].push(i);
    }
    let sureness = |i: usize| label_probability.get(i).copied().unwrap_or(0.0);
    let mut kept = Vec::new();
    for mut members in by_class {
        // Stable: equally sure images stay in the set's order. (`All` keeps every one, so
        // its order does not matter.)
        match keeps {
            JudgeKeeps::MostSure(_) => {
                members.sort_by(|&a, &b| sureness(b).total_cmp(&sureness(a)))
            }
            JudgeKeeps::LeastSure(_) | JudgeKeeps::All => {
                members.sort_by(|&a, &b| sureness(a).total_cmp(&sureness(b)))
            }
        }
        let count = (keeps.share() * members.len() as f64).ceil() as usize;
        kept.extend_from_slice(&members[..count.min(members.len())]);
    }
    kept.sort_unstable();
    kept
}

/// Per class, how many generated images there were and the share of them kept.
fn kept_share(labels: &[u16], kept: &[usize], classes: usize) -> Fidelity {
    let mut images = vec![0usize; classes];
    let mut chosen = vec![0usize; classes];
    for &label in labels {
        if let Some(count) = images.get_mut(usize::from(label)) {
            *count += 1;
        }
    }
    for &i in kept {
        if let Some(count) = chosen.get_mut(usize::from(labels[i])) {
            *count += 1;
        }
    }
    Fidelity::from_counts(images, &chosen)
}

#[cfg(test)]
mod tests;
