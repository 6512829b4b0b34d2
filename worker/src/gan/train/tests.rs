//! The trainer's label draws (generated images' and the real images' wrong ones), its
//! mode-seeking and cross-entropy terms, and the batches it refuses.

use super::draws::draw_label;
use super::*;
use crate::gan::losses::MODE_SEEKING_EPSILON;
use crate::gan::model::GanConfig;

#[test]
fn label_draws_follow_the_policy() {
    let cdf = label_cdf(FakeLabels::Empirical, &[3, 0, 1]).expect("cdf");
    assert_eq!(draw_label(&cdf, 0.0), 0);
    assert_eq!(draw_label(&cdf, 0.74), 0);
    assert_eq!(draw_label(&cdf, 0.76), 2, "an empty class is never drawn");
    assert_eq!(draw_label(&cdf, 0.999_999), 2);
    let uniform = label_cdf(FakeLabels::Uniform, &[3, 0, 1]).expect("cdf");
    assert_eq!(draw_label(&uniform, 0.5), 1);
    assert!(label_cdf(FakeLabels::Empirical, &[0, 0]).is_err());
}

type B = crate::backend::ComputeBackend;

#[test]
fn the_mode_seeking_term_by_hand() {
    let device = Default::default();
    // Two pairs of 1×1×2 images. Pair 0: images differ by (0.2, 0.4), mean 0.3; noise by
    // (1, 3), mean 2: ratio 0.15. Pair 1: identical images, ratio 0.
    let images = Tensor::<B, 1>::from_floats([0.1, 0.5, 0.3, 0.1, 0.7, 0.7, 0.7, 0.7], &device)
        .reshape([4, 1, 1, 2]);
    let noise = Tensor::<B, 1>::from_floats([0.0, 1.0, 1.0, -2.0, 0.5, 0.5, -0.5, 0.5], &device)
        .reshape([4, 2]);
    let term = mode_seeking_term(images, noise).into_scalar().elem::<f64>();
    let expected = (1.0 / (0.15 + MODE_SEEKING_EPSILON) + 1.0 / MODE_SEEKING_EPSILON) / 2.0;
    assert!(
        (term - expected).abs() < 1e-3 * expected,
        "{term} vs {expected}"
    );
}

#[test]
fn the_cross_entropy_by_hand() {
    let device = Default::default();
    // Row 0: logits (0, ln 3), label 1: p = 3/4, loss -ln 0.75. Row 1: logits (2, 2), label 0:
    // p = 1/2, loss ln 2.
    let logits = Tensor::<B, 1>::from_floats([0.0, 3f32.ln(), 2.0, 2.0], &device).reshape([2, 2]);
    let loss = crate::gan::losses::cross_entropy(logits, &[1, 0])
        .into_scalar()
        .elem::<f64>();
    let expected = (-(0.75f64.ln()) + 2f64.ln()) / 2.0;
    assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
}

fn tiny_trainer(batch: usize) -> GanTrainer<crate::backend::TrainBackend> {
    let config = TrainConfig::new(GanConfig::new(3).with_width(4).with_latent_dim(4))
        .with_batch_size(batch)
        .with_fake_labels(FakeLabels::Uniform);
    GanTrainer::new(config, &[1, 1, 1], &Default::default()).expect("trainer")
}

#[test]
fn mode_seeking_pairs_labels_across_the_global_batch_and_needs_even_replicas() {
    let whole = tiny_trainer(8);
    let (noise, labels) = whole.noise_and_labels(Purpose::GeneratorNoise, true);
    let (plain_noise, plain_labels) = whole.noise_and_labels(Purpose::GeneratorNoise, false);
    assert_eq!(noise, plain_noise, "the noise is not paired");
    for pair in 0..4 {
        assert_eq!(labels[2 * pair], plain_labels[2 * pair]);
        assert_eq!(labels[2 * pair + 1], labels[2 * pair], "pair {pair}");
    }
    assert_ne!(labels, plain_labels, "these draws leave some pair mixed");
    let mut second = tiny_trainer(8);
    second.set_replica(1, 2).expect("replica");
    let (_, half) = second.noise_and_labels(Purpose::GeneratorNoise, true);
    assert_eq!(
        half,
        labels[4..],
        "replica 1 of 2 holds the global batch's last pairs"
    );

    let mut odd = tiny_trainer(7);
    assert!(odd.set_mode_seeking(Some(0.0)).is_err());
    odd.set_mode_seeking(Some(1.0)).expect("weight");
    let batch = Batch {
        images: vec![0.0; 7 * 784],
        labels: vec![0; 7],
    };
    let error = odd.train_step(&batch).expect_err("7 images make no pairs");
    assert!(error.to_string().contains("mode_seeking"), "{error}");
}

#[test]
fn a_batch_with_a_label_outside_the_model_is_refused_by_name() {
    let mut trainer = tiny_trainer(2);
    let batch = Batch {
        images: vec![0.0; 2 * 784],
        labels: vec![0, 3],
    };
    let error = trainer.train_step(&batch).expect_err("class 3 of 3");
    assert!(
        error
            .to_string()
            .contains("label 3 is not one of the model's 3 classes"),
        "{error}"
    );
    assert_eq!(trainer.step(), 0, "nothing was trained");
}

#[test]
fn wrong_labels_are_every_other_class_and_replicas_draw_their_rows_of_them() {
    let mut whole = tiny_trainer(8);
    let labels: Vec<u16> = vec![0, 1, 2, 0, 1, 2, 0, 1];
    let mut drawn = [[0usize; 3]; 3];
    for step in 0..200 {
        whole.set_step(step);
        for (&label, wrong) in labels.iter().zip(whole.wrong_labels(&labels)) {
            drawn[usize::from(label)][usize::from(wrong)] += 1;
        }
    }
    for (label, counts) in drawn.iter().enumerate() {
        assert_eq!(
            counts[label], 0,
            "class {label} drawn as its own wrong label"
        );
        let others: Vec<usize> = (0..3).filter(|&c| c != label).map(|c| counts[c]).collect();
        // Class 0 has 600 rows over the steps, 300 expected for each other class; the bound
        // is about five standard deviations.
        let expected = counts.iter().sum::<usize>() / 2;
        for count in others {
            assert!(
                count.abs_diff(expected) < 5 * expected.isqrt() + 5,
                "class {label}: {counts:?}"
            );
        }
    }
    whole.set_step(7);
    let global = whole.wrong_labels(&labels);
    let mut second = tiny_trainer(8);
    second.set_replica(1, 2).expect("replica");
    second.set_step(7);
    assert_eq!(
        second.wrong_labels(&labels[4..]),
        global[4..],
        "replica 1 of 2"
    );
    whole.set_step(8);
    assert_ne!(whole.wrong_labels(&labels), global, "each step draws anew");
}

#[test]
fn mismatched_labels_need_a_positive_weight_and_two_classes() {
    let mut trainer = tiny_trainer(2);
    for weight in [0.0, -1.0, f32::NAN] {
        let error = trainer
            .set_mismatched_labels(Some(weight))
            .expect_err("not a weight");
        assert!(error.to_string().contains("mismatched_labels"), "{error}");
    }
    trainer.set_mismatched_labels(Some(0.5)).expect("weight");
    assert_eq!(trainer.mismatched_labels(), Some(0.5));
    let one_class = TrainConfig::new(GanConfig::new(1).with_width(4).with_latent_dim(4));
    let mut single =
        GanTrainer::<crate::backend::TrainBackend>::new(one_class, &[1], &Default::default())
            .expect("trainer");
    let error = single
        .set_mismatched_labels(Some(1.0))
        .expect_err("no other class");
    assert!(error.to_string().contains("two classes"), "{error}");
}

#[test]
fn a_step_whose_losses_are_not_numbers_stops_the_run_naming_the_step_and_the_value() {
    let finite = StepLosses {
        discriminator: 1.2,
        generator: 0.8,
        real_score: 0.6,
        fake_score: 0.4,
        mismatched_score: None,
        class_real: None,
        class_generated: None,
        low_resolution_discriminator: None,
        low_resolution_generator: None,
    };
    assert_eq!(finite.non_finite(), None);
    assert!(finite.check_finite(7).is_ok());
    let diverged = StepLosses {
        fake_score: f32::NAN,
        ..finite
    };
    let error = diverged
        .check_finite(7)
        .expect_err("NaN stops the run")
        .to_string();
    assert!(
        error.contains("step 7") && error.contains("sigmoid D(G(z)) is NaN"),
        "{error}"
    );
    // An optional loss that is reported and not finite stops the run too, by name.
    let names_the_loss = |losses: StepLosses, expected: &str| {
        let reason = losses.non_finite();
        assert!(
            reason.as_deref().is_some_and(|r| r.contains(expected)),
            "{reason:?}"
        );
    };
    names_the_loss(
        StepLosses {
            class_generated: Some(f32::INFINITY),
            ..finite
        },
        "generated images is inf",
    );
    names_the_loss(
        StepLosses {
            low_resolution_generator: Some(f32::NAN),
            ..finite
        },
        "half-resolution generator loss is NaN",
    );
}
