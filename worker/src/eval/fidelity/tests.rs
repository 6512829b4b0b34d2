use super::*;
use crate::eval::run::charts;

#[test]
fn fidelity_counts_each_class_own_label_share_and_what_the_rest_are_called() {
    // Class 0: 4 generated, 3 labelled 0 and 1 labelled 1; class 1: none; class 2: 2, both
    // labelled 1.
    let labels = [0u16, 0, 0, 0, 2, 2];
    let predicted = [0u16, 0, 1, 0, 1, 1];
    let fidelity = Fidelity::of(&labels, &predicted, 3).expect("labels in range");
    assert_eq!(fidelity.images, vec![4, 0, 2]);
    assert_eq!(fidelity.correct, vec![0.75, 0.0, 0.0]);
    let labelled_as = fidelity.labelled_as.expect("labels recorded");
    assert_eq!(
        labelled_as.counts,
        vec![vec![3, 1, 0], vec![0, 0, 0], vec![0, 2, 0]]
    );
}

#[test]
fn a_generated_label_outside_the_classes_is_an_error_naming_the_image() {
    let error = Fidelity::of(&[0, 5], &[0, 1], 3).expect_err("class 5 of 3");
    let text = error.to_string();
    assert!(
        text.contains("generated images") && text.contains("record 1"),
        "{text}"
    );
}

fn reference_run(labels: &[u16], predicted: &[u16]) -> RunResult {
    let confusion = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 1, 2], 3).expect("confusion");
    RunResult {
        method: Method::FullReal,
        seed: 0,
        test_set: "balanced".into(),
        train_images: 1,
        train_seconds: 0.0,
        metrics: confusion.metrics(),
        confusion,
        generated_fidelity: Some(Fidelity::of(labels, predicted, 3).expect("in range")),
        generated_novelty: None,
        generated_kept: None,
        mean_probability: vec![1.0 / 3.0; 3],
    }
}

#[test]
fn the_report_names_the_class_the_reference_gives_each_class_most_often_pooled_over_runs() {
    let names: Vec<String> = ["tee", "shirt", "coat"].map(String::from).into();
    // Run 1: shirts 1 right, 2 called tee, 1 called coat; coats all right; no tees generated.
    // Run 2: shirts 2 called coat. Pooled, shirts: 1 right, tee 2, coat 3 of 6 → coat 50.0.
    let first = reference_run(&[1, 1, 1, 1, 2, 2], &[1, 0, 0, 2, 2, 2]);
    let second = reference_run(&[1, 1], &[2, 2]);
    let report = quality_report(&[first, second], &names);
    assert!(
        report.contains("| tee | shirt | coat |\n|---|---|---|\n| – | coat 50.0 | – |"),
        "{report}"
    );
    // A tie goes to the lower class index: 1 tee and 1 coat among 2 shirts.
    let tied = reference_run(&[1, 1, 2], &[0, 2, 2]);
    let report = quality_report(&[tied], &names);
    assert!(report.contains("| – | tee 50.0 | – |"), "{report}");
}

#[test]
fn the_pictures_show_the_generated_labels_only_where_they_were_recorded() {
    let recorded = reference_run(&[0, 1, 2], &[0, 0, 2]);
    let (files, legend) = charts(std::slice::from_ref(&recorded)).expect("charts");
    assert!(
        files
            .iter()
            .any(|(name, png)| name == "generated-labelled-as.png" && !png.is_empty()),
        "{:?}",
        files.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    assert!(legend.contains("generated-labelled-as.png"), "{legend}");
    let older = RunResult {
        generated_fidelity: Some(Fidelity::from_counts(vec![1, 1, 1], &[1, 0, 1])),
        ..recorded
    };
    let (files, legend) = charts(&[older]).expect("charts");
    assert!(
        files
            .iter()
            .all(|(name, _)| name != "generated-labelled-as.png")
    );
    assert!(!legend.contains("generated-labelled-as.png"), "{legend}");
}

#[test]
fn results_written_before_the_label_matrix_still_read_and_new_ones_round_trip() {
    let older: Fidelity =
        serde_json::from_str(r#"{"images":[2,0],"correct":[0.5,0.0]}"#).expect("older result");
    assert_eq!(older, Fidelity::from_counts(vec![2, 0], &[1, 0]));
    let newer = Fidelity::of(&[0, 0, 1], &[0, 1, 1], 2).expect("in range");
    let text = serde_json::to_string(&newer).expect("serialize");
    assert!(text.contains("labelled_as"), "{text}");
    let read: Fidelity = serde_json::from_str(&text).expect("read back");
    assert_eq!(read, newer);
}
