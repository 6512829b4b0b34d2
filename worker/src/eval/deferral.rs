//! Deferred re-balancing (Cao et al., 2019): which sets a method's classifier trains on, in
//! which order — optionally the long-tailed set as it is first, then the method's own set, then
//! (b)'s set to finish. The features are learned before a remedy's re-balancing places the class
//! boundaries.

use super::classifier::{ClassifierTraining, TrainingPhase};
use super::methods::{Method, TrainingSet, random_oversample};
use super::run::EvaluationSpec;
use crate::data::ImageDataset;
use crate::error::Result;

/// The set a method's training finishes on: (b)'s, drawn as (b) draws it for the seed, when
/// the spec defers re-sampling and the method is a remedy other than (b).
pub fn finishing_set(
    method: Method,
    long_tail: &ImageDataset,
    spec: &EvaluationSpec,
    seed: u64,
) -> Result<Option<ImageDataset>> {
    let deferred = spec.finish_oversampled_epochs > 0
        && method != Method::RandomOversampling
        && !Method::QUALITY.contains(&method);
    if !deferred {
        return Ok(None);
    }
    random_oversample(long_tail, spec.balance.target, seed).map(Some)
}

/// What `method` trains on, in order: with deferred re-balancing first the long-tailed set
/// as it is (unweighted, every method but the quality runs); then the method's own set (its
/// class weights with it) for its epochs, less the finish's; then the finishing set,
/// unweighted, for the rest. With `rebalance_head_only`, every phase after the long-tailed
/// start trains the classifier's head alone.
pub fn training_phases<'a>(
    method: Method,
    set: &'a TrainingSet,
    finish: Option<&'a ImageDataset>,
    long_tail: &'a ImageDataset,
    training: &ClassifierTraining,
    spec: &EvaluationSpec,
) -> Vec<TrainingPhase<'a>> {
    let mut phases = Vec::with_capacity(3);
    let long_tail_start = spec.long_tail_first_epochs > 0 && !Method::QUALITY.contains(&method);
    if long_tail_start {
        phases.push(TrainingPhase {
            data: long_tail,
            epochs: spec.long_tail_first_epochs,
            class_weights: None,
            frozen_features: false,
        });
    }
    let frozen_features = long_tail_start && spec.rebalance_head_only;
    let finish_epochs = finish.map_or(0, |_| spec.finish_oversampled_epochs.min(training.epochs));
    phases.push(TrainingPhase {
        data: &set.data,
        epochs: training.epochs - finish_epochs,
        class_weights: set.class_weights.as_deref(),
        frozen_features,
    });
    if let Some(finish) = finish {
        phases.push(TrainingPhase {
            data: finish,
            epochs: finish_epochs,
            class_weights: None,
            frozen_features,
        });
    }
    phases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::methods::{Sources, training_set};

    #[test]
    fn deferred_resampling_finishes_every_remedy_but_b_on_bs_own_draw() {
        let shape = crate::data::ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let pixels: Vec<u8> = (0..5 * 16).map(|i| i as u8).collect();
        let long_tail = ImageDataset::new(
            shape,
            pixels,
            vec![0, 0, 0, 0, 1],
            vec!["a".into(), "b".into()],
        )
        .expect("dataset");
        let sources = Sources {
            long_tail: &long_tail,
            rebalanced: None,
            full_real: None,
            judged: None,
        };
        let settings = anygan_proto::generation::EvaluationSettings {
            epochs: 3,
            finish_oversampled_epochs: 1,
            ..Default::default()
        };
        let spec = EvaluationSpec::new(&settings, vec![], vec![7], 4);
        let oversampled = random_oversample(&long_tail, 4, 7).expect("oversampled");
        for method in [
            Method::LongTail,
            Method::ClassWeighted,
            Method::Anygan,
            Method::Smote,
        ] {
            let finish = finishing_set(method, &long_tail, &spec, 7).expect("finish");
            assert_eq!(finish.as_ref(), Some(&oversampled), "{method:?}");
        }
        for method in [Method::RandomOversampling, Method::Cas, Method::FullReal] {
            let finish = finishing_set(method, &long_tail, &spec, 7).expect("finish");
            assert!(finish.is_none(), "{method:?}");
        }
        // (c): its weighted set for the first 2 epochs, (b)'s unweighted for the last.
        let weighted = training_set(Method::ClassWeighted, sources, spec.balance, 7).expect("set");
        let training = ClassifierTraining::new().with_epochs(3);
        let phases = training_phases(
            Method::ClassWeighted,
            &weighted,
            Some(&oversampled),
            &long_tail,
            &training,
            &spec,
        );
        let shape_of = |p: &TrainingPhase<'_>| {
            assert!(!p.frozen_features, "features frozen without being asked to");
            (p.data.len(), p.epochs, p.class_weights.is_some())
        };
        let shapes: Vec<_> = phases.iter().map(shape_of).collect();
        assert_eq!(shapes, vec![(5, 2, true), (8, 1, false)]);
        // Without a finish, the method's set for every epoch.
        let plain = EvaluationSpec::new(
            &anygan_proto::generation::EvaluationSettings {
                finish_oversampled_epochs: 0,
                ..settings.clone()
            },
            vec![],
            vec![7],
            4,
        );
        assert!(
            finishing_set(Method::Anygan, &long_tail, &plain, 7)
                .expect("finish")
                .is_none()
        );
        let phases = training_phases(
            Method::ClassWeighted,
            &weighted,
            None,
            &long_tail,
            &training,
            &plain,
        );
        let shapes: Vec<_> = phases.iter().map(shape_of).collect();
        assert_eq!(shapes, vec![(5, 3, true)]);
        // Deferred re-balancing: 4 epochs of the long-tailed set, unweighted, before every
        // method's own (here (b)'s 8 images and (c)'s weighted 5); not before a quality run.
        let deferred = EvaluationSpec::new(
            &anygan_proto::generation::EvaluationSettings {
                finish_oversampled_epochs: 0,
                long_tail_first_epochs: 4,
                ..settings
            },
            vec![],
            vec![7],
            4,
        );
        let oversampled_set =
            training_set(Method::RandomOversampling, sources, deferred.balance, 7).expect("set");
        for (method, set, expected) in [
            (
                Method::RandomOversampling,
                &oversampled_set,
                vec![(5, 4, false), (8, 3, false)],
            ),
            (
                Method::ClassWeighted,
                &weighted,
                vec![(5, 4, false), (5, 3, true)],
            ),
            (Method::Cas, &weighted, vec![(5, 3, true)]),
        ] {
            let phases = training_phases(method, set, None, &long_tail, &training, &deferred);
            let shapes: Vec<_> = phases.iter().map(shape_of).collect();
            assert_eq!(shapes, expected, "{method:?}");
        }
        // Head-only re-balancing: the same sets, the features frozen after the long-tailed
        // start; a quality run, without that start, trains everything.
        let head_only = EvaluationSpec {
            rebalance_head_only: true,
            ..deferred
        };
        let frozen = |method, set| {
            training_phases(method, set, None, &long_tail, &training, &head_only)
                .iter()
                .map(|p| (p.data.len(), p.frozen_features))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            frozen(Method::RandomOversampling, &oversampled_set),
            vec![(5, false), (8, true)]
        );
        assert_eq!(frozen(Method::Cas, &weighted), vec![(5, false)]);
    }
}
