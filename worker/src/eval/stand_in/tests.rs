use std::collections::HashSet;

use super::*;
use crate::data::{ImageShape, held_out_subset, idx_set_files, parse_idx_pair};
use crate::eval::methods::generated_only;

const USED: [usize; 4] = [30, 12, 5, 1];
const PER_CLASS: usize = 50;
const VALIDATION: usize = 6;

/// 4 classes of 50 images; every image's 4 pixels spell its record index, so a record can be
/// told from its pixels wherever it ends up.
fn full_split() -> ImageDataset {
    let count = 4 * PER_CLASS;
    let labels: Vec<u16> = (0..count).map(|i| (i % 4) as u16).collect();
    let pixels = (0..count as u32).flat_map(u32::to_le_bytes).collect();
    let shape = ImageShape {
        channels: 1,
        height: 2,
        width: 2,
    };
    let names = ["a", "b", "c", "d"].map(String::from).to_vec();
    ImageDataset::new(shape, pixels, labels, names).expect("dataset")
}

fn record_of(data: &ImageDataset, index: usize) -> usize {
    let bytes: [u8; 4] = data.image(index).try_into().expect("4 pixels");
    u32::from_le_bytes(bytes) as usize
}

fn spec(distinct_per_class: Option<usize>) -> StandInSpec {
    StandInSpec {
        targets: vec![40, 40, 40, 0],
        validation_per_class: VALIDATION,
        distinct_per_class,
    }
}

#[test]
fn originals_come_first_then_real_images_no_classifier_trains_or_scores_on() {
    let full = full_split();
    let (rebalanced, record) = stand_in_set(&full, &USED, 9, &spec(None)).expect("stand-ins");
    assert_eq!(rebalanced.class_counts(), [40, 40, 40, 1]);
    let long_tail = per_class_subset(full.labels(), &USED, 9).expect("long tail");
    let validation = held_out_subset(full.labels(), &USED, VALIDATION, 9).expect("validation");
    // The originals as the evaluation loads them: class by class, in the long-tailed order.
    let mut expected_originals: Vec<usize> = Vec::new();
    let mut at = 0;
    for class in 0..4 {
        let originals: Vec<usize> = long_tail
            .iter()
            .copied()
            .filter(|&r| usize::from(full.labels()[r]) == class)
            .collect();
        let written: Vec<usize> = (at..at + originals.len())
            .map(|i| record_of(&rebalanced, i))
            .collect();
        assert_eq!(written, originals, "class {class}'s originals");
        expected_originals.extend(originals);
        at += rebalanced.class_counts()[class];
    }
    let stand_ins = generated_only(&rebalanced, &USED).expect("the evaluation's reader");
    assert_eq!(
        stand_ins.class_counts(),
        [10, 28, 35, 0],
        "target − originals"
    );
    let records: Vec<usize> = (0..stand_ins.len())
        .map(|i| record_of(&stand_ins, i))
        .collect();
    let taken: HashSet<usize> = long_tail.iter().chain(&validation).copied().collect();
    assert!(records.iter().all(|r| !taken.contains(r)), "{records:?}");
    let distinct: HashSet<usize> = records.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        records.len(),
        "every stand-in a different image"
    );
    for (i, &r) in records.iter().enumerate() {
        assert_eq!(
            full.labels()[r],
            stand_ins.labels()[i],
            "record {r} keeps its label"
        );
    }
    let class_b = &record.classes[1];
    assert_eq!(
        (class_b.original, class_b.stand_ins, class_b.distinct),
        (12, 28, 28)
    );
    assert_eq!(
        record.classes[3].stand_ins, 0,
        "a class at its target gets none"
    );
    assert_eq!(record.validation_per_class, VALIDATION);
}

#[test]
fn a_few_distinct_images_repeated_in_turn_fill_each_class() {
    let full = full_split();
    let (rebalanced, record) = stand_in_set(&full, &USED, 9, &spec(Some(3))).expect("stand-ins");
    assert_eq!(rebalanced.class_counts(), [40, 40, 40, 1]);
    let stand_ins = generated_only(&rebalanced, &USED).expect("stand-ins");
    let records: Vec<usize> = (0..stand_ins.len())
        .map(|i| record_of(&stand_ins, i))
        .collect();
    // Class a's 10 stand-ins are 3 images in turn.
    let class_a = &records[..10];
    assert_eq!(class_a[..3], record.classes[0].records[..]);
    for (i, &r) in class_a.iter().enumerate() {
        assert_eq!(r, class_a[i % 3], "stand-in {i}");
    }
    for class in &record.classes[..3] {
        assert_eq!(class.distinct, 3, "class {}", class.name);
        assert_eq!(class.records.len(), 3);
    }
    let (all_different, _) = stand_in_set(&full, &USED, 9, &spec(None)).expect("stand-ins");
    assert_ne!(all_different, rebalanced);
}

#[test]
fn refuses_what_it_cannot_draw_naming_the_field() {
    let full = full_split();
    let mut too_many = spec(None);
    // Class a: 50 − 30 originals − 6 validation = 14 left, 15 asked for.
    too_many.targets[0] = 45;
    let err = stand_in_set(&full, &USED, 9, &too_many).expect_err("too many");
    assert!(
        err.to_string().contains("stand_ins")
            && err.to_string().contains("class 0 has 14 records outside"),
        "{err}"
    );
    let mut short = spec(None);
    short.targets.pop();
    let err = stand_in_set(&full, &USED, 9, &short).expect_err("3 targets");
    assert!(
        err.to_string()
            .contains("3 targets were given for the 4 classes"),
        "{err}"
    );
    let err = stand_in_set(&full, &USED, 9, &spec(Some(0))).expect_err("none distinct");
    assert!(err.to_string().contains("distinct_per_class"), "{err}");
}

#[test]
fn the_set_reads_back_from_its_idx_files_unchanged() {
    let full = full_split();
    let (rebalanced, _) = stand_in_set(&full, &USED, 9, &spec(Some(2))).expect("stand-ins");
    let [
        (images_name, images),
        (labels_name, labels),
        (classes_name, classes),
    ] = idx_set_files(&rebalanced).expect("idx");
    assert_eq!(
        [images_name, labels_name, classes_name],
        ["images.idx", "labels.idx", "classes.txt"]
    );
    assert_eq!(String::from_utf8(classes).expect("utf-8"), "a\nb\nc\nd\n");
    let names = rebalanced.class_names().to_vec();
    let read = parse_idx_pair(&images, images_name, &labels, labels_name, names).expect("parse");
    assert_eq!(read, rebalanced);
}

#[test]
fn an_evaluation_refuses_stand_ins_drawn_beside_other_sets() {
    let full = full_split();
    let (_, record) = stand_in_set(&full, &USED, 9, &spec(None)).expect("stand-ins");
    let json = serde_json::to_vec(&record).expect("json");
    let check = |seed, originals: &[usize], validation| {
        check_stand_in_draw(&json, "s/STAND-IN.json", seed, originals, validation)
    };
    check(9, &USED, VALIDATION).expect("drawn for this evaluation");
    check(9, &USED, 0).expect("no validation set: nothing to overlap");
    for (err, field) in [
        (check(8, &USED, VALIDATION), "subset_seed"),
        (check(9, &[30, 12, 5, 2], VALIDATION), "class_counts"),
        (check(9, &USED, VALIDATION + 1), "validation_per_class"),
    ] {
        let message = err.expect_err(field).to_string();
        assert!(
            message.contains("s/STAND-IN.json") && message.contains(field),
            "{message}"
        );
    }
    let err = check_stand_in_draw(b"{}", "s/STAND-IN.json", 9, &USED, 0).expect_err("not one");
    assert!(
        err.to_string().contains("is not a stand-in record"),
        "{err}"
    );
}
