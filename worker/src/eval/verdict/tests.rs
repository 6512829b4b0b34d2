use super::*;
use crate::eval::metrics::ConfusionMatrix;

/// A scored run of `method` with balanced accuracy `acsa` (the rest is not read here).
fn run(method: Method, seed: u64, test_set: &str, acsa: f64) -> RunResult {
    let confusion = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2).expect("confusion");
    let mut metrics = confusion.metrics();
    metrics.acsa = acsa;
    RunResult {
        method,
        seed,
        test_set: test_set.into(),
        train_images: 1,
        train_seconds: 0.0,
        metrics,
        confusion,
        generated_fidelity: None,
        generated_novelty: None,
        generated_kept: None,
        mean_probability: vec![0.5, 0.5],
    }
}

/// `method` on the balanced test set with seeds 0, 1, 2 scoring `acsa`.
fn three_seeds(method: Method, acsa: [f64; 3]) -> Vec<RunResult> {
    (0..3)
        .map(|seed| run(method, seed, "balanced", acsa[seed as usize]))
        .collect()
}

fn summary(mean: f64, std: f64, seeds: usize) -> SeedSummary {
    SeedSummary { mean, std, seeds }
}

#[test]
fn a_difference_counts_only_beyond_the_larger_spread() {
    // ((d), other, standing)
    let cases = [
        // 0.02 apart, each spread 0.01: ahead; the other way round: behind.
        (
            summary(0.88, 0.01, 3),
            summary(0.86, 0.01, 3),
            Standing::Ahead,
        ),
        (
            summary(0.84, 0.01, 3),
            summary(0.86, 0.01, 3),
            Standing::Behind,
        ),
        // 0.005 apart: beyond (d)'s spread (0.003) but not the other's (0.01), so level.
        (
            summary(0.865, 0.003, 3),
            summary(0.86, 0.01, 3),
            Standing::Level,
        ),
        (
            summary(0.86, 0.01, 3),
            summary(0.865, 0.003, 3),
            Standing::Level,
        ),
        // One seed has no spread to compare with, however large the difference.
        (
            summary(0.95, 0.0, 1),
            summary(0.80, 0.01, 3),
            Standing::OneSeed,
        ),
        (
            summary(0.95, 0.01, 3),
            summary(0.80, 0.0, 1),
            Standing::OneSeed,
        ),
    ];
    for (anygan, other, expected) in cases {
        assert_eq!(
            standing(anygan, other),
            expected,
            "{anygan:?} against {other:?}"
        );
    }
}

#[test]
fn anygan_is_compared_with_every_other_remedy_on_every_set() {
    let mut results = three_seeds(Method::Anygan, [0.87, 0.88, 0.89]);
    results.extend(three_seeds(Method::RandomOversampling, [0.85, 0.86, 0.87]));
    results.extend(three_seeds(Method::ShiftedOversampling, [0.89, 0.90, 0.91]));
    results.extend(three_seeds(Method::LongTail, [0.862, 0.865, 0.868]));
    // The generator's quality runs are measurements, not remedies to beat.
    results.push(run(Method::Cas, 0, "balanced", 0.60));
    results.push(run(Method::FullReal, 0, "balanced", 0.95));
    // A second set, scored for (d) and (b) only, one seed each.
    results.push(run(Method::Anygan, 0, "validation", 0.90));
    results.push(run(Method::RandomOversampling, 0, "validation", 0.80));

    let comparisons = compare_with_other_remedies(&results);
    let found: Vec<(&str, &str, Standing)> = comparisons
        .iter()
        .map(|c| (c.test_set.as_str(), c.against.as_str(), c.standing))
        .collect();
    // Remedies in the benchmark's order, sets in order of appearance.
    assert_eq!(
        found,
        vec![
            ("balanced", "long-tail", Standing::Ahead),
            ("balanced", "random-oversampling", Standing::Ahead),
            ("balanced", "shifted-oversampling", Standing::Behind),
            ("validation", "random-oversampling", Standing::OneSeed),
        ]
    );
    let against_b = &comparisons[1];
    assert!((against_b.anygan.mean - 0.88).abs() < 1e-12);
    assert!((against_b.anygan.std - 0.01).abs() < 1e-12);
    assert!((against_b.other.mean - 0.86).abs() < 1e-12);
    assert!((against_b.difference() - 0.02).abs() < 1e-12);
    let paired = against_b.paired_difference.expect("same seeds");
    assert_eq!(paired.seeds, 3);
    assert!((paired.mean - 0.02).abs() < 1e-12);
    assert!(paired.std < 1e-12, "every seed 0.02 apart: {paired:?}");
}

#[test]
fn the_paired_difference_uses_only_the_seeds_both_ran() {
    // (d) ran seeds 0, 1, 2; (b) seeds 1, 2, 3: paired over seeds 1 and 2 only.
    let mut results = three_seeds(Method::Anygan, [0.80, 0.86, 0.90]);
    results.extend((1..4).map(|seed| {
        run(
            Method::RandomOversampling,
            seed,
            "balanced",
            [0.0, 0.85, 0.86, 0.99][seed as usize],
        )
    }));
    let comparisons = compare_with_other_remedies(&results);
    let paired = comparisons[0].paired_difference.expect("seeds 1 and 2");
    // Differences 0.86 − 0.85 = 0.01 and 0.90 − 0.86 = 0.04: mean 0.025, std 0.03/√2.
    assert_eq!(paired.seeds, 2);
    assert!((paired.mean - 0.025).abs() < 1e-12, "{paired:?}");
    assert!(
        (paired.std - 0.03 / 2f64.sqrt()).abs() < 1e-12,
        "{paired:?}"
    );
    // No seed in common: no paired difference, the standing still by the means.
    let mut apart = three_seeds(Method::Anygan, [0.80, 0.86, 0.90]);
    apart.extend((3..5).map(|seed| run(Method::ClassWeighted, seed, "balanced", 0.5)));
    let comparison = &compare_with_other_remedies(&apart)[0];
    assert_eq!(comparison.paired_difference, None);
    assert_eq!(comparison.standing, Standing::Ahead);
}

#[test]
fn without_anygan_there_is_nothing_to_answer() {
    let results = three_seeds(Method::RandomOversampling, [0.85, 0.86, 0.87]);
    assert!(compare_with_other_remedies(&results).is_empty());
    assert_eq!(verdict_report(&[]), "");
}

#[test]
fn the_report_states_the_rule_and_each_answer() {
    let mut results = three_seeds(Method::Anygan, [0.87, 0.88, 0.89]);
    results.extend(three_seeds(Method::RandomOversampling, [0.85, 0.86, 0.87]));
    results.extend(three_seeds(Method::ClassWeighted, [0.865, 0.875, 0.885]));
    results.extend(three_seeds(Method::ShiftedOversampling, [0.89, 0.90, 0.91]));
    let report = verdict_report(&compare_with_other_remedies(&results));
    assert!(
        report.contains("larger of the two standard deviations"),
        "{report}"
    );
    assert!(
        report.contains(
            "| balanced | (b) random oversampling | 88.00 ± 1.00 | 86.00 ± 1.00 | +2.00 | +2.00 ± 0.00 (3) | **ahead** |"
        ),
        "{report}"
    );
    assert!(
        report.contains("| +0.50 | +0.50 ± 0.00 (3) | level |"),
        "(c): 0.5 apart, each spread 1.0: {report}"
    );
    assert!(
        report.contains("| -2.00 | -2.00 ± 0.00 (3) | behind |"),
        "{report}"
    );
}

#[test]
fn comparisons_read_back_from_json() {
    let mut results = three_seeds(Method::Anygan, [0.87, 0.88, 0.89]);
    results.push(run(Method::Smote, 0, "balanced", 0.8));
    let comparisons = compare_with_other_remedies(&results);
    let json = serde_json::to_string(&comparisons).expect("json");
    assert!(json.contains("\"standing\":\"one-seed\""), "{json}");
    assert!(json.contains("\"against\":\"smote\""), "{json}");
    let read: Vec<Comparison> = serde_json::from_str(&json).expect("reads back");
    // serde_json may round the last bit of a float: compare the numbers within that.
    assert_eq!(read.len(), 1);
    let (read, written) = (&read[0], &comparisons[0]);
    assert_eq!(
        (&read.test_set, &read.against, read.standing),
        (&written.test_set, &written.against, written.standing)
    );
    assert_eq!(read.anygan.seeds, 3);
    assert!((read.anygan.std - written.anygan.std).abs() < 1e-15);
    assert!((read.difference() - written.difference()).abs() < 1e-15);
}
