use super::*;
use crate::data::ImageShape;
use crate::eval::methods::Method;
use crate::eval::metrics::ConfusionMatrix;

const SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 1,
    width: 4,
};

fn set(images: &[([u8; 4], u16)], classes: usize) -> ImageDataset {
    let pixels = images.iter().flat_map(|(p, _)| *p).collect();
    let labels = images.iter().map(|(_, l)| *l).collect();
    let names = (0..classes).map(|k| format!("c{k}")).collect();
    ImageDataset::new(SHAPE, pixels, labels, names).expect("set")
}

#[test]
fn medians_of_nearest_original_distances_by_hand() {
    // Class 0's originals are all 0 and all 100; class 1 has none.
    let originals = set(&[([0; 4], 0), ([100; 4], 0)], 2);
    // Generated class 0: distances to the nearest original 0, 10 (90 → 100), 4 (mean of
    // 4, 4, 4, 4 from 0): median of [0, 10, 4] is 4. Class 1 has no originals: not measured.
    let generated = set(&[([0; 4], 0), ([90; 4], 0), ([4; 4], 0), ([7; 4], 1)], 2);
    // Held out: 50 (a tie, 50 from both) and one pixel 20 from 0: 5 → median 27.5.
    let held_out = set(&[([50; 4], 0), ([20, 0, 0, 0], 0)], 2);
    let novelty = Novelty::of(&originals, &generated, &held_out).expect("measured");
    assert_eq!(novelty.generated_images, [3, 0]);
    assert_eq!(novelty.generated_median, [4.0, 0.0]);
    assert_eq!(novelty.held_out_images, [2, 0]);
    assert_eq!(novelty.held_out_median, [27.5, 0.0]);
}

#[test]
fn copies_of_the_originals_are_at_distance_zero_and_new_images_are_not() {
    let originals = set(&[([10, 20, 30, 40], 0), ([200, 0, 200, 0], 0)], 1);
    let copies = originals.clone();
    let held_out = set(&[([12, 20, 30, 40], 0)], 1);
    let novelty = Novelty::of(&originals, &copies, &held_out).expect("measured");
    assert_eq!(novelty.generated_median, [0.0]);
    assert_eq!(novelty.held_out_median, [0.5]);
}

#[test]
fn only_the_first_queries_of_a_class_are_measured() {
    let originals = set(&[([0; 4], 0)], 1);
    let many: Vec<([u8; 4], u16)> = (0..NOVELTY_QUERIES_PER_CLASS + 3)
        .map(|i| {
            (
                [if i < NOVELTY_QUERIES_PER_CLASS {
                    1
                } else {
                    255
                }; 4],
                0,
            )
        })
        .collect();
    let novelty = Novelty::of(&originals, &set(&many, 1), &set(&many, 1)).expect("measured");
    assert_eq!(novelty.generated_images, [NOVELTY_QUERIES_PER_CLASS]);
    assert_eq!(
        novelty.generated_median,
        [1.0],
        "the 255s past the limit are not read"
    );
}

#[test]
fn sets_of_another_shape_or_class_count_are_refused_by_name() {
    let originals = set(&[([0; 4], 0)], 1);
    let other_classes = set(&[([0; 4], 1)], 2);
    let err = Novelty::of(&originals, &originals, &other_classes).expect_err("2 classes");
    assert!(err.to_string().contains("held-out images"), "{err}");
    let wide = ImageDataset::new(
        ImageShape {
            channels: 1,
            height: 2,
            width: 4,
        },
        vec![0; 8],
        vec![0],
        vec!["c0".into()],
    )
    .expect("wide");
    let err = Novelty::of(&originals, &wide, &originals).expect_err("shape");
    assert!(err.to_string().contains("generated images"), "{err}");
}

#[test]
fn the_report_gives_both_medians_and_their_ratio() {
    let confusion = ConfusionMatrix::from_labels(&[0, 1], &[0, 1], 2).expect("confusion");
    let run = |novelty| RunResult {
        method: Method::Cas,
        seed: 0,
        test_set: "balanced".into(),
        train_images: 1,
        train_seconds: 0.0,
        metrics: confusion.metrics(),
        confusion: confusion.clone(),
        generated_fidelity: None,
        generated_novelty: novelty,
        generated_kept: None,
        mean_probability: vec![0.5; 2],
    };
    let names = ["tee".to_string(), "boot".to_string()];
    assert_eq!(
        novelty_report(&[run(None)], &names),
        "",
        "nothing measured, no section"
    );
    let measured = Novelty {
        generated_images: vec![500, 0],
        generated_median: vec![12.0, 0.0],
        held_out_images: vec![500, 500],
        held_out_median: vec![24.0, 30.0],
    };
    let report = novelty_report(&[run(Some(measured))], &names);
    assert!(report.contains("| generated | 12.0 | – |"), "{report}");
    assert!(
        report.contains("| held-out real | 24.0 | 30.0 |"),
        "{report}"
    );
    assert!(report.contains("| ratio | 0.50 | – |"), "{report}");
}
