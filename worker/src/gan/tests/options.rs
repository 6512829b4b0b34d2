//! Training options beyond the recipe (DiffAugment, the projection discriminator, the
//! auxiliary classifier, mode seeking, mismatched labels, the discriminator's own rate, shifted
//! real images): each changes what it says it changes, is recorded in the checkpoint and
//! resumes bit for bit.

use super::*;

/// Trains `config` for 6 steps with `setting` applied, and again for 3 steps, through a real
/// checkpoint and 3 more after restoring; checks the two end bit for bit equal and returns the
/// uninterrupted trainer and the checkpoint's snapshot (what it recorded).
fn resumes_bit_for_bit(
    config: TrainConfig,
    setting: impl Fn(&mut GanTrainer<Train>),
) -> (GanTrainer<Train>, Snapshot) {
    let run = |steps: u64, from: Option<GanTrainer<Train>>| {
        let mut trainer = from.unwrap_or_else(|| {
            let mut fresh = GanTrainer::<Train>::new(config.clone(), &[4, 4], &Default::default())
                .expect("trainer");
            setting(&mut fresh);
            fresh
        });
        while trainer.step() < steps {
            let step = trainer.step();
            trainer.train_step(&two_class_batch(step)).expect("step");
        }
        trainer
    };
    let uninterrupted = run(6, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = through_checkpoint(&run(3, None), dir.path());
    let restored =
        GanTrainer::<Train>::restore(loaded.clone(), &Default::default()).expect("restore");
    let resumed = run(6, Some(restored));
    assert_eq!(
        all_bits(&resumed),
        all_bits(&uninterrupted),
        "resume must be bit-exact"
    );
    (uninterrupted, loaded)
}

#[test]
fn augmented_training_differs_from_plain_and_resumes_bit_for_bit() {
    use super::augment::DiffAugment;
    let policy = DiffAugment::parse("color,translation,cutout").expect("policy");
    let (augmented, loaded) =
        resumes_bit_for_bit(tiny_config(16), |trainer| trainer.set_diff_augment(policy));
    assert_ne!(
        all_bits(&augmented),
        all_bits(&trained(16, 6)),
        "the discriminator saw other images"
    );
    assert_eq!(loaded.description.diff_augment, policy, "recorded");
}

#[test]
fn a_projection_discriminator_learns_class_vectors_and_resumes_bit_for_bit() {
    let mut config = tiny_config(17);
    config.gan.projection = Some(true);
    let (trainer, loaded) = resumes_bit_for_bit(config, |_| {});
    let discriminator = trainer.discriminator();
    assert!(discriminator.has_projection());
    let class_vectors = named_tensors(&discriminator)
        .into_iter()
        .find(|tensor| tensor.name.starts_with("class_projection"))
        .expect("the class vectors are parameters");
    assert!(
        class_vectors.values.iter().any(|&v| v != 0.0),
        "the zero-initialized class vectors must be trained"
    );
    assert!(loaded.description.config.gan.projects(), "recorded");
}

#[test]
fn an_auxiliary_classifier_changes_the_generator_and_resumes_bit_for_bit() {
    let mut config = tiny_config(19);
    config.gan.auxiliary_classifier = Some(1.0);
    let (classified, loaded) = resumes_bit_for_bit(config, |_| {});
    assert_eq!(
        loaded.description.config.gan.auxiliary_classifier,
        Some(1.0),
        "recorded"
    );
    assert_ne!(
        parameter_bits(&classified.generator()),
        parameter_bits(&trained(19, 6).generator()),
        "the generator's loss has the classifier's term"
    );
}

/// Class logits → the class each row is given.
fn predicted_classes(logits: Tensor<ComputeBackend, 2>) -> Vec<u16> {
    let [_, classes] = logits.dims();
    logits
        .into_data()
        .to_vec::<f32>()
        .expect("f32")
        .chunks_exact(classes)
        .map(|row| {
            let best = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("classes");
            best as u16
        })
        .collect()
}

#[test]
fn the_auxiliary_classifier_learns_the_classes_and_the_generator_draws_what_it_recognises() {
    let device = Default::default();
    let mut config = learning_config(2);
    config.gan.auxiliary_classifier = Some(1.0);
    let mut trainer = GanTrainer::<Train>::new(config.clone(), &[4, 4], &device).expect("trainer");
    let class_logits = |trainer: &GanTrainer<Train>, pixels: Vec<f32>, rows: usize| {
        let images = Tensor::<ComputeBackend, 1>::from_floats(pixels.as_slice(), &device)
            .reshape([rows, 1, 28, 28]);
        trainer
            .discriminator()
            .classify(images)
            .expect("a classifier")
    };
    let real_cross_entropy = |trainer: &GanTrainer<Train>, batch: &Batch| {
        let logits = class_logits(trainer, batch.images.clone(), batch.labels.len());
        crate::gan::losses::cross_entropy(logits, &batch.labels).into_scalar()
    };
    let real = two_class_batch(0);
    // DCGAN's small initial weights give near-zero logits: a cross-entropy near ln 2.
    let untrained = real_cross_entropy(&trainer, &real);
    assert!(untrained > 0.6, "untrained cross-entropy {untrained}");
    let mut reported = None;
    for step in 0..100 {
        reported = trainer
            .train_step(&two_class_batch(step))
            .expect("step")
            .class_real;
    }
    let learned = real_cross_entropy(&trainer, &real);
    let reported = reported.expect("the step reports the classifier's loss");
    assert!(
        reported < untrained,
        "reported {reported}, untrained {untrained}"
    );
    assert!(
        learned < 0.1,
        "the classifier did not learn the real classes: cross-entropy {untrained} -> {learned}"
    );
    assert_eq!(
        predicted_classes(class_logits(&trainer, real.images.clone(), 8)),
        real.labels
    );
    // The generator was asked that its images of each class be recognised as that class.
    let labels: Vec<u16> = (0..32).map(|i| (i % 2) as u16).collect();
    let generated: Vec<f32> = generate_images(
        &trainer.generator(),
        &config.gan,
        &labels,
        (9, Purpose::SampleGrid, 0, 0),
        &device,
    )
    .into_iter()
    .map(|gray| f32::from(gray) / 127.5 - 1.0)
    .collect();
    let recognised = predicted_classes(class_logits(&trainer, generated, 32))
        .iter()
        .zip(&labels)
        .filter(|(predicted, wanted)| predicted == wanted)
        .count();
    assert!(
        recognised >= 30,
        "{recognised} of 32 generated images recognised as their class"
    );
}

#[test]
fn mode_seeking_changes_the_generator_and_resumes_bit_for_bit() {
    let (seeking, loaded) = resumes_bit_for_bit(tiny_config(18), |trainer| {
        trainer.set_mode_seeking(Some(1.0)).expect("weight")
    });
    assert_eq!(loaded.description.mode_seeking, Some(1.0), "recorded");
    let plain = trained(18, 6);
    assert_ne!(
        parameter_bits(&seeking.generator()),
        parameter_bits(&plain.generator()),
        "the generator's loss has the term"
    );
}

#[test]
fn mismatched_labels_change_the_discriminator_and_resume_bit_for_bit() {
    let (mismatched, mut loaded) = resumes_bit_for_bit(tiny_config(19), |trainer| {
        trainer.set_mismatched_labels(Some(1.0)).expect("weight")
    });
    assert_eq!(loaded.description.mismatched_labels, Some(1.0), "recorded");
    let plain = trained(19, 6);
    assert_ne!(
        parameter_bits(&mismatched.discriminator()),
        parameter_bits(&plain.discriminator()),
        "the discriminator's loss has the term"
    );
    loaded.description.mismatched_labels = Some(-1.0);
    let error = GanTrainer::<Train>::restore(loaded, &Default::default())
        .err()
        .expect("a negative weight in the description");
    assert!(error.to_string().contains("mismatched_labels"), "{error}");
}

#[test]
fn with_mismatched_labels_the_discriminator_refuses_a_real_image_of_another_class() {
    let device = Default::default();
    let real = two_class_batch(0);
    let swapped: Vec<u16> = real.labels.iter().map(|&label| 1 - label).collect();
    let images = Tensor::<ComputeBackend, 1>::from_floats(real.images.as_slice(), &device)
        .reshape([8, 1, 28, 28]);
    // Trains 60 steps; returns the mean logit of the real images under their own labels minus
    // under the other class's, and the last step's report.
    let train = |weight: Option<f32>| {
        let mut trainer =
            GanTrainer::<Train>::new(learning_config(3), &[4, 4], &device).expect("trainer");
        trainer.set_mismatched_labels(weight).expect("weight");
        let mut last = None;
        for step in 0..60 {
            last = Some(trainer.train_step(&two_class_batch(step)).expect("step"));
        }
        let mean_logit = |labels: &[u16]| {
            trainer
                .discriminator()
                .forward(
                    images.clone(),
                    crate::gan::train::labels_tensor(labels, &device),
                    None,
                )
                .mean()
                .into_scalar()
                .elem::<f32>()
        };
        (
            mean_logit(&real.labels) - mean_logit(&swapped),
            last.expect("steps"),
        )
    };
    let (plain_gap, plain) = train(None);
    let (gap, losses) = train(Some(1.0));
    assert_eq!(
        plain.mismatched_score, None,
        "nothing to report without the term"
    );
    let mismatched_score = losses.mismatched_score.expect("reported with the term");
    assert!(
        mismatched_score < losses.real_score - 0.3,
        "real images scored {} under their labels, {mismatched_score} under others",
        losses.real_score
    );
    assert!(
        gap > plain_gap + 1.0,
        "logit gap between right and wrong labels: {gap} with the term, {plain_gap} without"
    );
}

/// The snapshot's description as a run from before `config_field` existed wrote it.
fn written_before(loaded: &Snapshot, config_field: &str) -> super::state::SnapshotDescription {
    let mut older = serde_json::to_value(&loaded.description).expect("json");
    older["config"]
        .as_object_mut()
        .expect("config object")
        .remove(config_field);
    serde_json::from_value(older).expect("older description")
}

/// The largest change of any parameter between two parameter lists of one network.
fn largest_move(before: &[params::NamedTensor], after: &[params::NamedTensor]) -> f32 {
    before
        .iter()
        .zip(after)
        .flat_map(|(b, a)| b.values.iter().zip(&a.values).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

#[test]
fn each_network_takes_its_own_rate_and_the_rate_is_recorded() {
    // Adam's first step moves every parameter with a gradient by almost exactly the rate
    // (m̂ / √v̂ = ±1), so each network's largest move shows the rate it was given.
    let first_moves = |config: TrainConfig| {
        let mut trainer =
            GanTrainer::<Train>::new(config, &[4, 4], &Default::default()).expect("trainer");
        let generator = named_tensors(&trainer.generator());
        let discriminator = named_tensors(&trainer.discriminator());
        trainer.train_step(&two_class_batch(0)).expect("step");
        (
            largest_move(&generator, &named_tensors(&trainer.generator())),
            largest_move(&discriminator, &named_tensors(&trainer.discriminator())),
        )
    };
    let near = |moved: f32, rate: f64| (f64::from(moved) - rate).abs() < rate * 0.01;
    let (generator, discriminator) = first_moves(tiny_config(19).with_learning_rate(1e-4));
    assert!(
        near(generator, 1e-4) && near(discriminator, 1e-4),
        "shared: {generator} {discriminator}"
    );
    let two_rates = tiny_config(19)
        .with_learning_rate(1e-4)
        .with_discriminator_learning_rate(Some(4e-4));
    let (generator, discriminator) = first_moves(two_rates.clone());
    assert!(near(generator, 1e-4), "generator moved {generator}");
    assert!(
        near(discriminator, 4e-4),
        "discriminator moved {discriminator}"
    );

    let (_, loaded) = resumes_bit_for_bit(two_rates, |_| {});
    assert_eq!(
        loaded.description.config.discriminator_learning_rate,
        Some(4e-4),
        "recorded"
    );
    // A description written before the field existed has none: the shared rate.
    let older = written_before(&loaded, "discriminator_learning_rate");
    assert_eq!(older.config.discriminator_learning_rate, None);
    assert_eq!(older.config.discriminator_rate(), 1e-4);

    let refused = GanTrainer::<Train>::new(
        tiny_config(19).with_discriminator_learning_rate(Some(0.0)),
        &[4, 4],
        &Default::default(),
    )
    .err()
    .expect("a zero rate");
    assert!(
        refused.to_string().contains("discriminator_learning_rate"),
        "{refused}"
    );
}

#[test]
fn shifted_real_images_change_training_are_recorded_and_resume_bit_for_bit() {
    let (shifted, loaded) = resumes_bit_for_bit(tiny_config(20).with_real_shift(Some(2)), |_| {});
    assert_ne!(
        all_bits(&shifted),
        all_bits(&trained(20, 6)),
        "the discriminator saw the real images shifted"
    );
    assert_eq!(loaded.description.config.real_shift, Some(2), "recorded");
    // A description written before the field existed has none: no shift.
    let older = written_before(&loaded, "real_shift");
    assert_eq!(older.config.real_shift, None);
}

#[test]
fn spectral_norm_and_the_hinge_loss_change_training_are_recorded_and_resume_bit_for_bit() {
    let mut config = tiny_config(23);
    config.gan.spectral_norm = Some(true);
    config.adversarial_loss = Some(AdversarialLoss::Hinge);
    let (trainer, loaded) = resumes_bit_for_bit(config.clone(), |_| {});
    // With the projection's zero-initialized class vectors too (dividing them by their σ = 0
    // was the first version's NaN at step 1).
    config.gan.projection = Some(true);
    let mut projecting =
        GanTrainer::<Train>::new(config, &[4, 4], &Default::default()).expect("trainer");
    for step in 0..4 {
        let losses = projecting.train_step(&two_class_batch(step)).expect("step");
        let values = [
            losses.discriminator,
            losses.generator,
            losses.real_score,
            losses.fake_score,
        ];
        assert!(
            values.iter().all(|v| v.is_finite()),
            "step {step}: {losses:?}"
        );
    }
    assert!(trainer.discriminator().is_spectrally_normalized());
    assert!(
        loaded.description.config.gan.spectrally_normalized(),
        "recorded"
    );
    assert_eq!(
        loaded.description.config.loss(),
        AdversarialLoss::Hinge,
        "recorded"
    );
    assert_ne!(
        all_bits(&trainer),
        all_bits(&trained(23, 6)),
        "another discriminator, another loss"
    );
    // Each alone changes the training too.
    for (spectral_norm, loss) in [(Some(true), None), (None, Some(AdversarialLoss::Hinge))] {
        let mut alone = tiny_config(23);
        alone.gan.spectral_norm = spectral_norm;
        alone.adversarial_loss = loss;
        let mut trainer =
            GanTrainer::<Train>::new(alone, &[4, 4], &Default::default()).expect("trainer");
        let first = trainer.train_step(&two_class_batch(0)).expect("step");
        for step in 1..6 {
            trainer.train_step(&two_class_batch(step)).expect("step");
        }
        assert_ne!(
            all_bits(&trainer),
            all_bits(&trained(23, 6)),
            "{spectral_norm:?} {loss:?}"
        );
        // DCGAN's small initial weights give logits near 0: the hinge loss starts near 1 + 1
        // where the cross-entropy starts near 2 ln 2.
        if loss.is_some() {
            assert!(
                (first.discriminator - 2.0).abs() < 0.1,
                "hinge: {}",
                first.discriminator
            );
        }
    }
}

#[test]
fn unconditional_low_resolution_stages_train_their_layers_are_recorded_and_resume_bit_for_bit() {
    let mut config = tiny_config(29);
    config.gan.unconditional_low_resolution = Some(1.0);
    let fresh =
        GanTrainer::<Train>::new(config.clone(), &[4, 4], &Default::default()).expect("trainer");
    let (trainer, loaded) = resumes_bit_for_bit(config.clone(), |_| {});
    assert_eq!(
        loaded.description.config.gan.unconditional_low_resolution,
        Some(1.0),
        "recorded"
    );
    // The half-resolution layers are parameters, and training moves them: the generator's
    // half-resolution output, the discriminator's input convolution and logit.
    let moved = |before: Vec<params::NamedTensor>, after: Vec<params::NamedTensor>, name: &str| {
        let pick = |tensors: Vec<params::NamedTensor>| -> Vec<f32> {
            tensors
                .into_iter()
                .filter(|tensor| tensor.name.starts_with(name))
                .flat_map(|tensor| tensor.values)
                .collect()
        };
        let (before, after) = (pick(before), pick(after));
        assert!(!before.is_empty(), "{name} is a parameter");
        assert_ne!(before, after, "{name} is trained");
    };
    moved(
        named_tensors(&fresh.generator()),
        named_tensors(&trainer.generator()),
        "low_resolution_output",
    );
    moved(
        named_tensors(&fresh.discriminator()),
        named_tensors(&trainer.discriminator()),
        "low_resolution",
    );
    // Each step reports the unconditional terms; the weight scales them into the objectives,
    // so another weight trains other weights.
    let mut reporting =
        GanTrainer::<Train>::new(config.clone(), &[4, 4], &Default::default()).expect("trainer");
    let losses = reporting.train_step(&two_class_batch(0)).expect("step");
    let (d, g) = (
        losses.low_resolution_discriminator.expect("reported"),
        losses.low_resolution_generator.expect("reported"),
    );
    // Near the no-information values at the start, as the conditional terms: 2 ln 2 and ln 2.
    assert!((d - 2.0 * std::f32::consts::LN_2).abs() < 0.2, "{d}");
    assert!((g - std::f32::consts::LN_2).abs() < 0.2, "{g}");
    config.gan.unconditional_low_resolution = Some(0.25);
    let mut lighter =
        GanTrainer::<Train>::new(config, &[4, 4], &Default::default()).expect("trainer");
    for step in 0..6 {
        lighter.train_step(&two_class_batch(step)).expect("step");
    }
    assert_ne!(all_bits(&lighter), all_bits(&trainer), "the weight counts");
    // The recipe reports none.
    let mut recipe =
        GanTrainer::<Train>::new(tiny_config(29), &[4, 4], &Default::default()).expect("trainer");
    let losses = recipe.train_step(&two_class_batch(0)).expect("step");
    assert_eq!(
        (
            losses.low_resolution_discriminator,
            losses.low_resolution_generator
        ),
        (None, None)
    );
}
