use super::*;

#[test]
fn fidelity_counts_each_class_own_label_share() {
    // Class 0: 4 generated, 3 labelled 0; class 1: none; class 2: 2, both labelled 1.
    let labels = [0u16, 0, 0, 0, 2, 2];
    let predicted = [0u16, 0, 1, 0, 1, 1];
    let fidelity = Fidelity::of(&labels, &predicted, 3);
    assert_eq!(fidelity.images, vec![4, 0, 2]);
    assert_eq!(fidelity.correct, vec![0.75, 0.0, 0.0]);
}

fn result(method: Method, acsa: f64, fidelity: Option<Fidelity>) -> RunResult {
    let confusion = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2).expect("confusion");
    let mut metrics = confusion.metrics();
    metrics.acsa = acsa;
    RunResult {
        method,
        seed: 0,
        test_set: "balanced".into(),
        train_images: 1,
        train_seconds: 0.0,
        metrics,
        confusion,
        generated_fidelity: fidelity,
        generated_kept: None,
        mean_probability: vec![0.5, 0.5],
    }
}

#[test]
fn quality_section_reports_cas_and_per_class_fidelity() {
    let names = vec!["a".to_string(), "b".to_string()];
    let fidelity = Fidelity {
        images: vec![0, 8],
        correct: vec![0.0, 0.625],
    };
    let report = markdown_report(
        &[
            result(Method::Cas, 0.5, None),
            result(Method::FullReal, 0.9, Some(fidelity)),
        ],
        &names,
    );
    assert!(
        report.contains("CAS (classifier trained on the generated images only"),
        "{report}"
    );
    assert!(report.contains("50.00 ± 0.00 %"), "{report}");
    assert!(report.contains("| – | 62.5 |"), "{report}");
    assert!(report.contains("ACSA 90.00 ± 0.00 %"), "{report}");
    assert!(!report.contains("judge"), "no filter, no judge: {report}");
    // (d)'s filter: the share kept per class is the mean over seeds.
    let judged = |kept: f64| RunResult {
        generated_kept: Some(Fidelity {
            images: vec![0, 4],
            correct: vec![0.0, kept],
        }),
        ..result(Method::Anygan, 0.8, None)
    };
    let filtered = markdown_report(&[judged(0.5), judged(0.75)], &names);
    assert!(filtered.contains("(d)'s judge"), "{filtered}");
    assert!(filtered.contains("| – | 62.5 |"), "{filtered}");
    // Without quality runs there is no such section.
    let plain = markdown_report(&[result(Method::LongTail, 0.5, None)], &names);
    assert!(!plain.contains("The generator itself"));
}

#[test]
fn the_report_says_which_copies_method_d_draws() {
    use anygan_proto::generation::EvaluationSettings;
    let mix = EvaluationSettings {
        real_share: 0.75,
        same_mix: true,
        ..EvaluationSettings::default()
    };
    let plain = anygan_set_text(&mix);
    assert!(
        plain.contains("75 % of every class") && plain.contains("the originals repeated;"),
        "{plain}"
    );
    assert!(!plain.contains("shifted"), "{plain}");
    let shifted = anygan_set_text(&EvaluationSettings {
        shifted_copies: true,
        ..mix.clone()
    });
    assert!(
        shifted.contains("75 % of every class")
            && shifted
                .contains("the originals repeated and, as in (f), up to 25 % of each class's target copies shifted by up to 2 pixels;"),
        "{shifted}"
    );
    let added = EvaluationSettings {
        added_generated: 1000,
        ..EvaluationSettings::default()
    };
    let on_b = anygan_set_text(&added);
    assert!(
        on_b.contains("random oversampling's set, as (b) draws it, plus 1000"),
        "{on_b}"
    );
    let on_f = anygan_set_text(&EvaluationSettings {
        shifted_copies: true,
        ..added
    });
    assert!(
        on_f.contains("(f) shifted oversampling's set, as (f) draws it, plus 1000"),
        "{on_f}"
    );
}
