use super::*;

#[test]
fn quality_runs_once_with_the_first_seed() {
    let settings = EvaluationSettings {
        methods: vec!["long-tail".into(), "anygan".into()],
        seeds: vec![3, 4],
        ..Default::default()
    };
    let runs: Vec<(String, u64)> = settings.runs();
    let expected: Vec<(String, u64)> = [
        ("long-tail", 3),
        ("long-tail", 4),
        ("anygan", 3),
        ("anygan", 4),
        ("cas", 3),
        ("full-real", 3),
    ]
    .iter()
    .map(|(m, s)| (m.to_string(), *s))
    .collect();
    assert_eq!(runs, expected);
    let without = EvaluationSettings {
        quality: false,
        ..settings
    };
    assert_eq!(without.runs().len(), 4);
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

#[test]
fn deficits_against_the_largest_class() {
    let plans = class_plans(&names(4), &[4000, 40, 350, 4000], &Targets::Largest).unwrap();
    let generate: Vec<usize> = plans.iter().map(|p| p.generate).collect();
    assert_eq!(generate, vec![0, 3960, 3650, 0]);
    assert!(plans.iter().all(|p| p.target == 4000));
    assert_eq!(plans[1].name, "c1");
    assert_eq!(plans[1].original, 40);
}

#[test]
fn user_targets_and_classes_already_above_them() {
    let plans = class_plans(
        &names(3),
        &[500, 40, 100],
        &Targets::PerClass(vec![300, 100, 100]),
    )
    .unwrap();
    let generate: Vec<usize> = plans.iter().map(|p| p.generate).collect();
    assert_eq!(generate, vec![0, 60, 0], "above or at the target: nothing");
    let wrong = class_plans(&names(3), &[1, 2, 3], &Targets::PerClass(vec![5, 5]));
    assert!(
        wrong
            .unwrap_err()
            .contains("2 generation targets for 3 classes")
    );
    assert!(class_plans(&names(2), &[1, 2, 3], &Targets::Largest).is_err());
}

#[test]
fn tasks_cover_each_deficit_exactly_in_aligned_ranges() {
    let plans = class_plans(&names(3), &[1000, 0, 1000 - 1030 % 1000], &Targets::Largest).unwrap();
    let tasks = split_tasks(&plans, 256);
    for plan in &plans {
        let mine: Vec<&TaskRange> = tasks.iter().filter(|t| t.class == plan.index).collect();
        let mut next = 0;
        for task in &mine {
            assert_eq!(task.first, next, "contiguous, no overlap");
            assert_eq!(task.first % 256, 0, "aligned");
            next += task.count;
        }
        assert_eq!(next, plan.generate as u64, "no gap at the end");
    }
    let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids, (0..tasks.len() as u64).collect::<Vec<_>>());
    // 1000 → 4 tasks (256, 256, 256, 232); 970 → 4.
    assert_eq!(tasks.iter().filter(|t| t.class == 1).count(), 4);
    assert_eq!(
        tasks
            .iter()
            .find(|t| t.class == 1 && t.first == 768)
            .unwrap()
            .count,
        232
    );
    assert!(
        split_tasks(
            &class_plans(&names(1), &[5], &Targets::Largest).unwrap(),
            64
        )
        .is_empty()
    );
}

#[test]
fn anchor_tasks_cover_min_of_originals_and_cap_for_classes_that_generate() {
    // 4000 (generates nothing), 200, 40, 130 originals; cap 150.
    let classes = class_plans(&names(4), &[4000, 200, 40, 130], &Targets::Largest).unwrap();
    let tasks = split_anchor_tasks(&classes, 150).unwrap();
    let per_class = |class: usize| -> Vec<(u64, u64)> {
        tasks
            .iter()
            .filter(|t| t.class == class)
            .map(|t| (t.first, t.count))
            .collect()
    };
    assert!(
        per_class(0).is_empty(),
        "a class at its target has no anchors"
    );
    assert_eq!(
        per_class(1),
        vec![(0, 64), (64, 64), (128, 22)],
        "capped at 150"
    );
    assert_eq!(per_class(2), vec![(0, 40)]);
    assert_eq!(per_class(3), vec![(0, 64), (64, 64), (128, 2)]);
    let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids, (0..tasks.len() as u64).collect::<Vec<_>>());
    assert!(
        split_anchor_tasks(&classes, 0).unwrap().is_empty(),
        "plain generation"
    );
    // A class with a target but no originals has nothing to anchor on.
    let empty = class_plans(&names(2), &[10, 0], &Targets::Largest).unwrap();
    let err = split_anchor_tasks(&empty, 50).unwrap_err();
    assert!(err.contains("class c1"), "{err}");
}

#[test]
fn anchored_generation_names_its_own_root_and_needs_inversion_steps() {
    let plain = GenerationSpec::default();
    let anchored = GenerationSpec {
        anchors: 200,
        ..GenerationSpec::default()
    };
    let longer = GenerationSpec {
        inversion_steps: 300,
        ..anchored.clone()
    };
    assert!(anchored.validate().is_ok());
    assert_ne!(plan_root("step-1", &plain), plan_root("step-1", &anchored));
    assert_ne!(plan_root("step-1", &anchored), plan_root("step-1", &longer));
    // Inversion steps mean nothing to plain generation, so they do not move its root.
    let plain_other_steps = GenerationSpec {
        inversion_steps: 7,
        ..GenerationSpec::default()
    };
    assert_eq!(
        plan_root("step-1", &plain),
        plan_root("step-1", &plain_other_steps)
    );
    let err = GenerationSpec {
        inversion_steps: 0,
        ..anchored.clone()
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("inversion step"), "{err}");
    let ranked = GenerationSpec {
        candidates: 4,
        ..anchored.clone()
    };
    assert!(ranked.validate().unwrap_err().contains("candidates"));
    // Plans written before anchored generation read as plain generation.
    let old: GenerationSpec = serde_json::from_str(
        r#"{"targets":{"kind":"largest"},"seed":0,"batch":64,"task_images":512,"rebalanced_set":true}"#,
    )
    .unwrap();
    assert_eq!(
        (old.anchors, old.inversion_steps),
        (0, DEFAULT_INVERSION_STEPS)
    );
}

#[test]
fn truncation_is_zero_or_a_sensible_bound_and_names_its_own_root() {
    let plain = GenerationSpec {
        truncation: 0.0,
        ..GenerationSpec::default()
    };
    let truncated = GenerationSpec {
        truncation: 0.7,
        ..GenerationSpec::default()
    };
    assert!(plain.validate().is_ok());
    assert!(truncated.validate().is_ok());
    for bad in [0.1, -1.0, f32::NAN] {
        let err = GenerationSpec {
            truncation: bad,
            ..GenerationSpec::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("truncation"), "{err}");
    }
    assert_ne!(plan_root("step-1", &plain), plan_root("step-1", &truncated));
}

#[test]
fn spec_validation_and_stable_roots() {
    assert!(GenerationSpec::default().validate().is_ok());
    let unaligned = GenerationSpec {
        task_images: 100,
        ..GenerationSpec::default()
    };
    assert!(
        unaligned
            .validate()
            .unwrap_err()
            .contains("multiple of the batch")
    );
    let root = plan_root("step-0000000300-abcd", &GenerationSpec::default());
    assert_eq!(
        root,
        plan_root("step-0000000300-abcd", &GenerationSpec::default())
    );
    let other_seed = GenerationSpec {
        seed: 1,
        ..GenerationSpec::default()
    };
    assert_ne!(root, plan_root("step-0000000300-abcd", &other_seed));
    assert!(root.starts_with("generations/step-0000000300-abcd-"));
    let as_trained = GenerationSpec {
        weights: GeneratorWeights::AsTrained,
        ..GenerationSpec::default()
    };
    assert_ne!(
        root,
        plan_root("step-0000000300-abcd", &as_trained),
        "the weights as trained are other images than their average"
    );
    let ranked = GenerationSpec {
        candidates: 4,
        ..GenerationSpec::default()
    };
    assert_ne!(root, plan_root("step-0000000300-abcd", &ranked));
    for bad in [0, MAX_CANDIDATES + 1] {
        let err = GenerationSpec {
            candidates: bad,
            ..GenerationSpec::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("candidates"), "{err}");
    }
    assert_eq!(image_name(42), "gen-000042.png");
    assert_eq!(class_folder(0, "T-shirt/top"), "00-T-shirt_top");
    assert_eq!(class_folder(9, "Ankle boot"), "09-Ankle_boot");
}

#[test]
fn learning_rate_schedules() {
    let constant = LearningRateSchedule::Constant;
    assert_eq!(constant.rate(0.01, 7, 10), 0.01);
    let cosine = LearningRateSchedule::Cosine;
    assert_eq!(cosine.rate(0.01, 0, 10), 0.01);
    assert!((cosine.rate(0.01, 5, 10) - 0.005).abs() < 1e-12);
    let last = cosine.rate(0.01, 9, 10);
    assert!(last > 0.0 && last < 0.0003, "{last}");
    let rates: Vec<f64> = (0..10).map(|step| cosine.rate(0.01, step, 10)).collect();
    assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    assert_eq!(
        cosine.rate(0.01, 0, 0),
        0.01,
        "no steps is no division by zero"
    );
    for schedule in [constant, cosine] {
        assert_eq!(schedule.to_string().parse(), Ok(schedule));
    }
    let err = "linear".parse::<LearningRateSchedule>().unwrap_err();
    assert!(err.contains("linear") && err.contains("cosine"), "{err}");
    let old: EvaluationSettings = serde_json::from_str(
        r#"{"methods":["anygan"],"seeds":[0],"epochs":2,"batch_size":128,"learning_rate":0.001,"width":32}"#,
    )
    .unwrap();
    assert_eq!(
        old.schedule,
        LearningRateSchedule::Constant,
        "settings saved before it"
    );
    assert_eq!(
        EvaluationSettings::default().schedule,
        LearningRateSchedule::Cosine
    );
}

#[test]
fn added_generated_and_the_same_mix_are_refused_when_the_job_starts() {
    let added = EvaluationSettings {
        added_generated: 4000,
        ..Default::default()
    };
    assert!(added.validate().is_ok());
    let both = EvaluationSettings {
        same_mix: true,
        ..added
    };
    let err = both.validate().unwrap_err();
    assert!(
        err.contains("added_generated") && err.contains("same_mix"),
        "{err}"
    );
}

#[test]
fn an_oversampled_finish_must_leave_the_method_an_epoch() {
    let deferred = EvaluationSettings {
        epochs: 4,
        finish_oversampled_epochs: 2,
        ..Default::default()
    };
    assert!(deferred.validate().is_ok());
    for finish in [4, 5] {
        let all = EvaluationSettings {
            finish_oversampled_epochs: finish,
            ..deferred.clone()
        };
        let err = all.validate().unwrap_err();
        assert!(
            err.contains("finish_oversampled_epochs") && err.contains("(4)"),
            "{err}"
        );
    }
    // Settings saved before the field existed finish on the method's own set.
    let loaded = saved_without(&deferred, &["finish_oversampled_epochs"]);
    assert_eq!(loaded.finish_oversampled_epochs, 0);
}

#[test]
fn deferred_rebalancing_starts_or_finishes_not_both() {
    let start = EvaluationSettings {
        long_tail_first_epochs: 9,
        ..Default::default()
    };
    assert!(start.validate().is_ok());
    let both = EvaluationSettings {
        finish_oversampled_epochs: 1,
        ..start.clone()
    };
    let err = both.validate().unwrap_err();
    assert!(
        err.contains("long_tail_first_epochs") && err.contains("finish_oversampled_epochs"),
        "{err}"
    );
    let loaded = saved_without(&start, &["long_tail_first_epochs"]);
    assert_eq!(loaded.long_tail_first_epochs, 0);
}

#[test]
fn head_only_rebalancing_needs_a_long_tailed_start() {
    let head_only = EvaluationSettings {
        long_tail_first_epochs: 9,
        rebalance_head_only: true,
        ..Default::default()
    };
    assert!(head_only.validate().is_ok());
    let without_start = EvaluationSettings {
        long_tail_first_epochs: 0,
        ..head_only.clone()
    };
    let err = without_start.validate().unwrap_err();
    assert!(
        err.contains("rebalance_head_only") && err.contains("long_tail_first_epochs"),
        "{err}"
    );
    // Settings saved before the field existed re-train the whole classifier.
    let loaded = saved_without(&head_only, &["rebalance_head_only"]);
    assert!(!loaded.rebalance_head_only);
}

#[test]
fn classifier_augmentation_is_bounded_and_defaults_to_none() {
    let augmented = EvaluationSettings {
        augment_shift: 2,
        augment_flip_probability: 0.5,
        ..Default::default()
    };
    assert!(augmented.validate().is_ok());
    let too_far = EvaluationSettings {
        augment_shift: MAX_AUGMENT_SHIFT + 1,
        ..augmented.clone()
    };
    let err = too_far.validate().unwrap_err();
    assert!(err.contains("augment_shift 14"), "{err}");
    for bad in [-0.1, 1.5, f64::NAN] {
        let not_a_chance = EvaluationSettings {
            augment_flip_probability: bad,
            ..augmented.clone()
        };
        let err = not_a_chance.validate().unwrap_err();
        assert!(err.contains("augment_flip_probability"), "{bad}: {err}");
    }
    // Settings saved before the fields existed train on the images as they are.
    let loaded = saved_without(&augmented, &["augment_shift", "augment_flip_probability"]);
    assert_eq!(
        (loaded.augment_shift, loaded.augment_flip_probability),
        (0, 0.0)
    );
}

#[test]
fn validation_set_defaults_to_none() {
    let loaded = saved_without(&EvaluationSettings::default(), &["validation_per_class"]);
    assert_eq!(
        loaded.validation_per_class, 0,
        "older settings: no validation set"
    );
}

#[test]
fn the_judge_keeps_a_share_only_with_a_judge_and_parses_by_name() {
    let least_sure = EvaluationSettings {
        filter_generated: true,
        judge_keeps: "least-sure:0.25".parse().unwrap(),
        ..Default::default()
    };
    assert_eq!(least_sure.judge_keeps, JudgeKeeps::LeastSure(0.25));
    assert!(least_sure.validate().is_ok());
    assert_eq!("most-sure:1".parse(), Ok(JudgeKeeps::MostSure(1.0)));
    assert_eq!("all".parse(), Ok(JudgeKeeps::All));
    for kept in [
        JudgeKeeps::All,
        JudgeKeeps::LeastSure(0.5),
        JudgeKeeps::MostSure(0.1),
    ] {
        assert_eq!(kept.to_string().parse(), Ok(kept));
    }
    for bad in ["least-sure", "most-sure:half", "all:0.5", "hardest:0.5"] {
        assert!(bad.parse::<JudgeKeeps>().is_err(), "{bad}");
    }
    let without_judge = EvaluationSettings {
        filter_generated: false,
        ..least_sure.clone()
    };
    let err = without_judge.validate().unwrap_err();
    assert!(
        err.contains("least-sure:0.25") && err.contains("filter_generated"),
        "{err}"
    );
    for share in [0.0, 1.5, -0.5, f64::NAN] {
        let out_of_range = EvaluationSettings {
            judge_keeps: JudgeKeeps::MostSure(share),
            ..least_sure.clone()
        };
        let err = out_of_range.validate().unwrap_err();
        assert!(err.contains("judge_keeps most-sure"), "{share}: {err}");
    }
    // Settings saved before the field existed keep every image the judge labels right.
    let mut saved = serde_json::to_value(&least_sure).unwrap();
    assert_eq!(
        saved["judge_keeps"],
        serde_json::json!({"keep": "least-sure", "share": 0.25})
    );
    saved.as_object_mut().unwrap().remove("judge_keeps");
    let loaded: EvaluationSettings = serde_json::from_value(saved).unwrap();
    assert_eq!(loaded.judge_keeps, JudgeKeeps::All);
}

#[test]
fn a_start_floor_needs_a_long_tailed_start() {
    let floored = EvaluationSettings {
        long_tail_first_epochs: 9,
        long_tail_start_floor: 350,
        ..Default::default()
    };
    assert!(floored.validate().is_ok());
    let without_start = EvaluationSettings {
        long_tail_first_epochs: 0,
        ..floored.clone()
    };
    let err = without_start.validate().unwrap_err();
    assert!(
        err.contains("long_tail_start_floor 350") && err.contains("long_tail_first_epochs is 0"),
        "{err}"
    );
    // Settings saved before the field existed start on the long-tailed set as it is.
    let loaded = saved_without(&floored, &["long_tail_start_floor"]);
    assert_eq!(loaded.long_tail_start_floor, 0);
}

/// `settings` as saved before `fields` existed: written to JSON without them and read back.
fn saved_without(settings: &EvaluationSettings, fields: &[&str]) -> EvaluationSettings {
    let mut saved = serde_json::to_value(settings).unwrap();
    let object = saved.as_object_mut().unwrap();
    for field in fields {
        object.remove(*field);
    }
    serde_json::from_value(saved).unwrap()
}
