//! Deferred re-balancing (Cao et al., 2019): which sets a method's classifier trains on, in
//! which order — optionally the long-tailed set as it is first (or topped up to a floor), then
//! the method's own set, then (b)'s set to finish. The features are learned before a remedy's
//! re-balancing places the class boundaries.

use super::classifier::{ClassifierTraining, TrainingPhase};
use super::methods::{
    Balance, Method, Sources, TrainingSet, mix_generated, random_oversample, training_set,
};
use super::run::EvaluationSpec;
use crate::data::ImageDataset;
use crate::error::Result;

/// Every set one method's classifier trains on for one seed, owned; [`MethodSets::phases`]
/// lends them out in order. (d)'s judge builds (b)'s, so it is (b)'s classifier exactly.
pub struct MethodSets {
    /// The long-tailed start topped up to the spec's floor; `None`: the long-tailed set as it is.
    pub start: Option<ImageDataset>,
    pub own: TrainingSet,
    pub finish: Option<ImageDataset>,
}

impl MethodSets {
    /// The sets of `method` for `seed`; (d) draws on `sources.judged` when it is given.
    pub fn build(
        method: Method,
        sources: Sources<'_>,
        spec: &EvaluationSpec,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            start: long_tail_start_set(method, sources, spec, seed)?,
            own: training_set(method, sources, spec.balance, seed)?,
            finish: finishing_set(method, sources.long_tail, spec, seed)?,
        })
    }

    /// The phases these sets train in (see [`training_phases`]).
    pub fn phases<'a>(
        &'a self,
        method: Method,
        long_tail: &'a ImageDataset,
        training: &ClassifierTraining,
        spec: &EvaluationSpec,
    ) -> Vec<TrainingPhase<'a>> {
        let start = self.start.as_ref().unwrap_or(long_tail);
        training_phases(
            method,
            &self.own,
            self.finish.as_ref(),
            start,
            training,
            spec,
        )
    }
}

/// The long-tailed start with every class below the spec's floor topped up to it: (d) with
/// generated images (the same draw that opens its own mix, so the start's are among those it
/// trains on later) and exact copies where too few were generated; every other method with
/// exact copies, drawn as (b) draws its own. `None` when there is no floor, no start, or the
/// method is a quality run (which has no start).
pub fn long_tail_start_set(
    method: Method,
    sources: Sources<'_>,
    spec: &EvaluationSpec,
    seed: u64,
) -> Result<Option<ImageDataset>> {
    let floor = spec.long_tail_start_floor;
    if floor == 0 || spec.long_tail_first_epochs == 0 || Method::QUALITY.contains(&method) {
        return Ok(None);
    }
    let long_tail = sources.long_tail;
    if method != Method::Anygan {
        return random_oversample(long_tail, floor, seed).map(Some);
    }
    let generated = sources.generated_for_anygan()?;
    let top_up = Balance {
        target: floor,
        real_share: 0.0,
        same_mix: false,
        added_generated: 0,
        shifted_copies: false,
    };
    mix_generated(long_tail, &generated, top_up, seed).map(Some)
}

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

/// What `method` trains on, in order: with deferred re-balancing first `start` — the
/// long-tailed set, as it is or topped up to the floor — unweighted (every method but the
/// quality runs); then the method's own set (its class weights with it) for its epochs, less
/// the finish's; then the finishing set, unweighted, for the rest. With `rebalance_head_only`,
/// every phase after the start trains the classifier's head alone.
pub fn training_phases<'a>(
    method: Method,
    set: &'a TrainingSet,
    finish: Option<&'a ImageDataset>,
    start: &'a ImageDataset,
    training: &ClassifierTraining,
    spec: &EvaluationSpec,
) -> Vec<TrainingPhase<'a>> {
    let mut phases = Vec::with_capacity(3);
    let long_tail_start = spec.long_tail_first_epochs > 0 && !Method::QUALITY.contains(&method);
    if long_tail_start {
        phases.push(TrainingPhase {
            data: start,
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

    /// Class 0: 4 originals (levels 0..4); class 1: one original (level 50). The generation
    /// run's set: those originals, then 3 generated class-1 images (levels 200, 201, 202).
    fn rare_class_with_generated() -> (ImageDataset, ImageDataset) {
        let shape = crate::data::ImageShape {
            channels: 1,
            height: 1,
            width: 1,
        };
        let names = vec!["common".to_string(), "rare".to_string()];
        let long_tail = ImageDataset::new(
            shape,
            vec![0, 1, 2, 3, 50],
            vec![0, 0, 0, 0, 1],
            names.clone(),
        )
        .expect("long tail");
        let rebalanced = ImageDataset::new(
            shape,
            vec![0, 1, 2, 3, 50, 200, 201, 202],
            vec![0, 0, 0, 0, 1, 1, 1, 1],
            names,
        )
        .expect("rebalanced");
        (long_tail, rebalanced)
    }

    fn rare_levels(data: &ImageDataset) -> Vec<u8> {
        let mut levels: Vec<u8> = (0..data.len())
            .filter(|&i| data.labels()[i] == 1)
            .map(|i| data.image(i)[0])
            .collect();
        levels.sort_unstable();
        levels
    }

    #[test]
    fn the_long_tailed_start_is_topped_up_to_the_floor_with_generated_images_for_d_only() {
        let (long_tail, rebalanced) = rare_class_with_generated();
        let sources = Sources {
            long_tail: &long_tail,
            rebalanced: Some(&rebalanced),
            full_real: None,
            judged: None,
        };
        let settings = anygan_proto::generation::EvaluationSettings {
            epochs: 2,
            long_tail_first_epochs: 3,
            long_tail_start_floor: 3,
            real_share: 0.5,
            ..Default::default()
        };
        let spec = EvaluationSpec::new(&settings, vec![], vec![5], 4);
        let training = ClassifierTraining::new().with_epochs(2);
        // (d): the original and two of the generated images; the common class untouched.
        let anygan = MethodSets::build(Method::Anygan, sources, &spec, 5).expect("(d)'s sets");
        let start = anygan.start.as_ref().expect("a topped-up start");
        assert_eq!(start.class_counts(), vec![4, 3]);
        let levels = rare_levels(start);
        assert_eq!(levels[0], 50, "{levels:?}");
        assert!(levels[1..].iter().all(|&l| l >= 200), "{levels:?}");
        assert_ne!(
            levels[1], levels[2],
            "two different generated images: {levels:?}"
        );
        let own_levels = rare_levels(&anygan.own.data);
        assert!(
            levels[1..].iter().all(|l| own_levels.contains(l)),
            "the start's generated images are among those (d)'s own set trains on: \
             {levels:?} against {own_levels:?}"
        );
        let phases = anygan.phases(Method::Anygan, &long_tail, &training, &spec);
        let shapes: Vec<_> = phases.iter().map(|p| (p.data.len(), p.epochs)).collect();
        assert_eq!(
            shapes,
            vec![(7, 3), (8, 2)],
            "the start, then (d)'s own set"
        );
        // The other methods: exact copies of the one original, as (b) draws them.
        for method in [Method::RandomOversampling, Method::LongTail, Method::Smote] {
            let sets = MethodSets::build(method, sources, &spec, 5).expect("sets");
            let start = sets.start.as_ref().expect("a topped-up start");
            assert_eq!(rare_levels(start), vec![50, 50, 50], "{method:?}");
            assert_eq!(start, &random_oversample(&long_tail, 3, 5).expect("(b)"));
        }
        // Too few generated for the floor: the rest are copies.
        let deeper = EvaluationSpec {
            long_tail_start_floor: 6,
            ..spec.clone()
        };
        let anygan = MethodSets::build(Method::Anygan, sources, &deeper, 5).expect("(d)'s sets");
        let levels = rare_levels(anygan.start.as_ref().expect("a topped-up start"));
        assert_eq!(levels, vec![50, 50, 50, 200, 201, 202]);
        // No floor, no start, or a quality run: the long-tailed set as it is.
        for (method, spec) in [
            (
                Method::Anygan,
                EvaluationSpec {
                    long_tail_start_floor: 0,
                    ..spec.clone()
                },
            ),
            (
                Method::RandomOversampling,
                EvaluationSpec {
                    long_tail_first_epochs: 0,
                    ..spec.clone()
                },
            ),
            (Method::Cas, spec.clone()),
        ] {
            let sets = MethodSets::build(method, sources, &spec, 5).expect("sets");
            assert!(sets.start.is_none(), "{method:?}");
            let phases = sets.phases(method, &long_tail, &training, &spec);
            assert!(
                phases.iter().all(|p| p.data.len() != 7),
                "{method:?}: no topped-up phase"
            );
        }
    }
}
