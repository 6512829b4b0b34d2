//! The job spec's validation, JSON form and resume rules.

use super::*;

#[test]
fn a_validation_set_needs_a_per_class_subset_to_hold_images_out_of() {
    let mut whole_split = spec();
    whole_split.evaluation = Some(crate::generation::EvaluationSettings {
        validation_per_class: 100,
        ..Default::default()
    });
    let err = whole_split.validate().unwrap_err();
    assert!(err.contains("validation_per_class"), "{err}");
    let long_tail = JobSpec {
        dataset: DatasetSource {
            class_counts: Some(LONG_TAIL_TRAIN_COUNTS.to_vec()),
            ..whole_split.dataset.clone()
        },
        ..whole_split
    };
    assert!(long_tail.validate().is_ok());
}

fn spec() -> JobSpec {
    JobSpec::for_tests()
}

#[test]
fn json_round_trip_and_validation() {
    let original = spec();
    let json = serde_json::to_string(&original).expect("serializes");
    assert_eq!(
        serde_json::from_str::<JobSpec>(&json).expect("parses"),
        original
    );
    assert!(original.validate().is_ok());
    assert_eq!(original.local_batch(4), Ok(16));
    assert!(
        original
            .local_batch(3)
            .expect_err("64 % 3")
            .contains("divisible by 3")
    );
    let bad = JobSpec {
        min_workers: 0,
        ..spec()
    };
    assert!(bad.validate().is_err());
    let keeps_nothing = JobSpec {
        keep_checkpoints: 0,
        ..spec()
    };
    assert!(
        keeps_nothing
            .validate()
            .unwrap_err()
            .contains("keep_checkpoints")
    );
    for decay in [1.0, 0.0, -0.1, f32::NAN] {
        let err = JobSpec {
            generator_ema: Some(decay),
            ..spec()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("generator_ema"), "{err}");
    }
    let augmented = JobSpec {
        diff_augment: Some("color,translation,cutout".into()),
        ..spec()
    };
    assert!(augmented.validate().is_ok());
    let err = JobSpec {
        diff_augment: Some("color,flip".into()),
        ..spec()
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("diff_augment `flip`"), "{err}");
    let err = JobSpec {
        mode_seeking: Some(1.0),
        global_batch: 63,
        ..spec()
    }
    .validate()
    .expect_err("odd batch");
    assert!(err.contains("mode_seeking") && err.contains("63"), "{err}");
    let err = JobSpec {
        mode_seeking: Some(-1.0),
        ..spec()
    }
    .validate()
    .expect_err("negative weight");
    assert!(err.contains("mode_seeking -1"), "{err}");
    assert_eq!(
        JobSpec {
            mode_seeking: Some(1.0),
            ..spec()
        }
        .validate(),
        Ok(())
    );
    for weight in [0.0, -0.5, f32::INFINITY] {
        let err = JobSpec {
            mismatched_labels: Some(weight),
            ..spec()
        }
        .validate()
        .expect_err("not a weight");
        assert!(err.contains("mismatched_labels"), "{err}");
    }
    assert_eq!(
        JobSpec {
            mismatched_labels: Some(0.5),
            ..spec()
        }
        .validate(),
        Ok(())
    );
    // 28-pixel images: a shift of 13 keeps more than half of an image in its frame, 14 not.
    let shifted = |shift| JobSpec {
        real_shift: Some(shift),
        ..spec()
    };
    assert_eq!(shifted(2).validate(), Ok(()));
    assert_eq!(shifted(13).validate(), Ok(()));
    for refused in [0, 14] {
        let err = shifted(refused).validate().expect_err("out of range");
        assert!(
            err.contains(&format!("real_shift {refused}")) && err.contains("1 to 13"),
            "{err}"
        );
    }
}

#[test]
fn resume_conflicts_name_the_training_field_and_ignore_the_rest() {
    let saved = spec();
    let longer_elsewhere = JobSpec {
        steps: 500,
        output: "s3://other/place".into(),
        store_options: vec![("aws_secret_access_key".into(), "x".into())],
        min_workers: 2,
        max_workers: 8,
        checkpoint_every: 7,
        wait_for_checkpoints: true,
        ..spec()
    };
    assert_eq!(longer_elsewhere.resume_conflict(&saved), None);
    let other_rate = JobSpec {
        learning_rate: 1e-3,
        ..spec()
    };
    let conflict = other_rate.resume_conflict(&saved).expect("conflict");
    assert!(conflict.contains("learning_rate"), "{conflict}");
    let own_discriminator_rate = JobSpec {
        discriminator_learning_rate: Some(4e-4),
        ..spec()
    };
    let conflict = own_discriminator_rate
        .resume_conflict(&saved)
        .expect("conflict");
    assert!(
        conflict.contains("discriminator_learning_rate"),
        "{conflict}"
    );
    let shifted = JobSpec {
        real_shift: Some(2),
        ..spec()
    };
    let conflict = shifted.resume_conflict(&saved).expect("conflict");
    assert!(conflict.contains("real_shift"), "{conflict}");
    let other_model = JobSpec {
        model: ModelSpec {
            width: 128,
            ..ModelSpec::default()
        },
        ..spec()
    };
    assert!(
        other_model
            .resume_conflict(&saved)
            .expect("conflict")
            .contains("model")
    );
    let with_projection = JobSpec {
        model: ModelSpec {
            projection_discriminator: true,
            ..ModelSpec::default()
        },
        ..spec()
    };
    let conflict = with_projection.resume_conflict(&saved).expect("conflict");
    assert!(
        conflict.contains("projection_discriminator: true"),
        "{conflict}"
    );
}

#[test]
fn model_weights_must_be_positive_and_a_resume_keeps_them() {
    type WithWeight = fn(f32) -> JobSpec;
    let options: [(&str, WithWeight); 2] = [
        ("auxiliary_classifier", |weight| JobSpec {
            model: ModelSpec {
                auxiliary_classifier: Some(weight),
                ..ModelSpec::default()
            },
            ..spec()
        }),
        ("unconditional_low_resolution", |weight| JobSpec {
            model: ModelSpec {
                unconditional_low_resolution: Some(weight),
                ..ModelSpec::default()
            },
            ..spec()
        }),
    ];
    let recipe = serde_json::to_string(&spec()).expect("json");
    for (field, with_weight) in options {
        assert_eq!(with_weight(1.0).validate(), Ok(()));
        for refused in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let err = with_weight(refused).validate().expect_err("refused");
            assert!(err.contains(&format!("model {field}")), "{err}");
        }
        let saved = with_weight(1.0);
        assert_eq!(with_weight(1.0).resume_conflict(&saved), None);
        let conflict = with_weight(0.5)
            .resume_conflict(&saved)
            .expect("another weight is another model");
        assert!(conflict.contains(field), "{conflict}");
        assert!(
            !recipe.contains(field),
            "the recipe's spec is written as before the option existed"
        );
    }
}

#[test]
fn spectral_norm_and_the_hinge_loss_are_kept_by_a_resume_and_absent_from_the_recipes_spec() {
    let saved = JobSpec {
        model: ModelSpec {
            spectral_norm: true,
            ..ModelSpec::default()
        },
        hinge_loss: true,
        ..spec()
    };
    assert_eq!(saved.clone().resume_conflict(&saved), None);
    let unnormalized = JobSpec {
        model: ModelSpec::default(),
        ..saved.clone()
    };
    let conflict = unnormalized.resume_conflict(&saved).expect("another model");
    assert!(conflict.contains("spectral_norm: true"), "{conflict}");
    let cross_entropy = JobSpec {
        hinge_loss: false,
        ..saved.clone()
    };
    let conflict = cross_entropy.resume_conflict(&saved).expect("another loss");
    assert!(
        conflict.starts_with("`hinge_loss` is false here"),
        "{conflict}"
    );
    let written = serde_json::to_string(&saved).expect("json");
    assert!(written.contains("\"spectral_norm\":true") && written.contains("\"hinge_loss\":true"));
    let recipe = serde_json::to_string(&spec()).expect("json");
    assert!(
        !recipe.contains("spectral_norm") && !recipe.contains("hinge_loss"),
        "the recipe's spec is written as before the options existed: {recipe}"
    );
    let read: JobSpec = serde_json::from_str(&recipe).expect("reads");
    assert_eq!(read, spec());
}

#[test]
fn a_model_recorded_before_the_projection_existed_reads_without_it() {
    let mut recorded = serde_json::to_value(ModelSpec::default()).expect("json");
    recorded
        .as_object_mut()
        .expect("object")
        .remove("projection_discriminator")
        .expect("the field is written");
    let read: ModelSpec = serde_json::from_value(recorded).expect("still reads");
    assert_eq!(read, ModelSpec::default());
}

#[test]
fn the_recorded_spec_carries_no_store_options() {
    let with_secret = JobSpec {
        store_options: vec![("aws_secret_access_key".into(), "hunter2".into())],
        ..spec()
    };
    let recorded = serde_json::to_string(&with_secret.without_secrets()).expect("json");
    assert!(!recorded.contains("hunter2"), "{recorded}");
}

#[test]
fn widths_beyond_the_measured_bound_without_diff_augment_are_warned_about() {
    let bound = WIDEST_MEASURED_WITHOUT_DIFF_AUGMENT;
    assert_eq!(width_warning(bound, None), None);
    assert_eq!(
        width_warning(bound + 1, Some("color,translation,cutout")),
        None
    );
    for none in [None, Some("none"), Some("")] {
        let warning = width_warning(128, none).expect("warned");
        assert!(
            warning.contains("width 128 without DiffAugment"),
            "{warning}"
        );
    }
}
