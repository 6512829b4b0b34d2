use super::*;

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
        generated_novelty: None,
        generated_kept: None,
        mean_probability: vec![0.5, 0.5],
    }
}

#[test]
fn quality_section_reports_cas_and_per_class_fidelity() {
    let names = vec!["a".to_string(), "b".to_string()];
    // Shares only, as results written before the labels were recorded.
    let fidelity = Fidelity::from_counts(vec![0, 8], &[0, 5]);
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
    assert!(
        !report.contains("What the reference calls the rest"),
        "no labels recorded, no table of them: {report}"
    );
    // (d)'s filter: the share kept per class is the mean over seeds.
    let judged = |kept: f64| RunResult {
        generated_kept: Some(Fidelity::from_counts(
            vec![0, 4],
            &[0, (4.0 * kept) as usize],
        )),
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
