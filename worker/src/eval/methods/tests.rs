//! Tests of the training sets each method builds, on hand-made data.

use super::*;
use crate::data::ImageShape;

/// Class 0: 6 images of level 10·i; class 1: 2 images, levels 100 and 200. 2×2 pixels.
pub(super) fn tiny() -> ImageDataset {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..6u8 {
        pixels.extend([10 * i; 4]);
        labels.push(0);
    }
    for level in [100u8, 200] {
        pixels.extend([level; 4]);
        labels.push(1);
    }
    let shape = ImageShape {
        channels: 1,
        height: 2,
        width: 2,
    };
    ImageDataset::new(shape, pixels, labels, vec!["a".into(), "b".into()]).unwrap()
}

#[test]
fn oversampling_reaches_the_target_with_copies_of_members() {
    let data = random_oversample(&tiny(), 6, 1).unwrap();
    assert_eq!(data.class_counts(), vec![6, 6]);
    for i in 0..data.len() {
        if data.labels()[i] == 1 {
            assert!(matches!(data.image(i)[0], 100 | 200));
        }
    }
    assert_eq!(random_oversample(&tiny(), 6, 1).unwrap(), data, "seeded");
}

#[test]
fn smote_interpolates_between_same_class_neighbours() {
    let data = smote(&tiny(), 6, 5, 3).unwrap();
    assert_eq!(data.class_counts(), vec![6, 6]);
    for i in 8..12 {
        assert_eq!(data.labels()[i], 1);
        let level = data.image(i)[0];
        assert!((100..=200).contains(&level), "on the segment: {level}");
        assert!(
            data.image(i).iter().all(|&p| p == level),
            "same gap for every pixel"
        );
    }
    // The 6 originals of class 0 are kept and nothing is added to it.
    assert_eq!(&data.labels()[..6], &[0; 6]);
}

/// Asserts that `set`'s first records are `head`, in order: a built set keeps the records it
/// was built on before those it adds.
pub(super) fn assert_begins_with(set: &ImageDataset, head: &ImageDataset) {
    let first: Vec<usize> = (0..head.len()).collect();
    assert_eq!(set.select(&first).unwrap(), *head);
}

pub(super) fn balance(target: usize) -> Balance {
    Balance {
        target,
        real_share: 0.0,
        same_mix: false,
        added_generated: 0,
        shifted_copies: false,
    }
}

/// Target 6 with `real_share`.
fn share(real_share: f64) -> Balance {
    Balance {
        target: 6,
        real_share,
        same_mix: false,
        added_generated: 0,
        shifted_copies: false,
    }
}

fn only(data: &ImageDataset) -> Sources<'_> {
    Sources {
        long_tail: data,
        rebalanced: None,
        full_real: None,
        judged: None,
    }
}

#[test]
fn methods_build_their_sets() {
    let data = tiny();
    let weighted = training_set(Method::ClassWeighted, only(&data), balance(6), 0).unwrap();
    let weights = weighted.class_weights.unwrap();
    assert!(weights[1] > weights[0], "the rare class weighs more");
    assert_eq!(weighted.data, data);
    assert!(
        training_set(Method::LongTail, only(&data), balance(6), 0)
            .unwrap()
            .class_weights
            .is_none()
    );
    let err = training_set(Method::Anygan, only(&data), balance(6), 0).unwrap_err();
    assert!(err.to_string().contains("rebalanced"), "{err}");
    let err = training_set(Method::FullReal, only(&data), balance(6), 0).unwrap_err();
    assert!(err.to_string().contains("full real"), "{err}");
}

/// `count` generated images of class 1 at levels 150, 151, ...
fn generated_of_class_1(count: u8) -> ImageDataset {
    let data = tiny();
    let mut pixels = Vec::new();
    for i in 0..count {
        pixels.extend([150 + i; 4]);
    }
    ImageDataset::new(
        data.shape(),
        pixels,
        vec![1; usize::from(count)],
        data.class_names().to_vec(),
    )
    .unwrap()
}

#[test]
fn mix_keeps_the_real_share_and_fills_with_generated() {
    let data = tiny();
    let levels_of_class_1 = |mixed: &ImageDataset| -> Vec<u8> {
        (0..mixed.len())
            .filter(|&i| mixed.labels()[i] == 1)
            .map(|i| mixed.image(i)[0])
            .collect()
    };
    // Target 6, half real: class 1 (2 originals) gets 3 real (one a copy) + 3 generated;
    // class 0 already holds 6 and is untouched.
    let generated = generated_of_class_1(10);
    let mixed = mix_generated(&data, &generated, share(0.5), 7).unwrap();
    assert_eq!(mixed.class_counts(), vec![6, 6]);
    let levels = levels_of_class_1(&mixed);
    let real = levels.iter().filter(|&&l| l == 100 || l == 200).count();
    assert_eq!(real, 3);
    assert!(
        levels.contains(&100) && levels.contains(&200),
        "every original kept"
    );
    let mut chosen: Vec<u8> = levels
        .iter()
        .copied()
        .filter(|l| (150..160).contains(l))
        .collect();
    chosen.sort_unstable();
    chosen.dedup();
    assert_eq!(
        chosen.len(),
        3,
        "three different generated images: {levels:?}"
    );
    assert_eq!(
        mix_generated(&data, &generated, share(0.5), 7).unwrap(),
        mixed
    );
    assert_ne!(
        levels_of_class_1(&mix_generated(&data, &generated, share(0.5), 8).unwrap()),
        levels,
        "another seed chooses other generated images"
    );
    // Share 0: the originals once, generated images for the rest.
    let none = mix_generated(&data, &generated, share(0.0), 7).unwrap();
    let levels = levels_of_class_1(&none);
    assert_eq!(levels.iter().filter(|&&l| l == 100 || l == 200).count(), 2);
    // Too few generated images: real copies fill the gap.
    let scarce = mix_generated(&data, &generated_of_class_1(1), share(0.0), 7).unwrap();
    assert_eq!(scarce.class_counts(), vec![6, 6]);
    assert_eq!(
        levels_of_class_1(&scarce)
            .iter()
            .filter(|&&l| l == 150)
            .count(),
        1
    );
    // Share 1 is random oversampling; a share outside [0, 1] is refused by name.
    let all_real = mix_generated(&data, &generated, share(1.0), 7).unwrap();
    assert!(
        levels_of_class_1(&all_real)
            .iter()
            .all(|&l| l == 100 || l == 200)
    );
    let err = mix_generated(&data, &generated, share(1.5), 7).unwrap_err();
    assert!(err.to_string().contains("real_share"), "{err}");
}

/// Generated: class 0 at levels 71..=74, class 1 at 150..=159.
fn generated_of_both_classes() -> ImageDataset {
    let data = tiny();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for level in 71..=74u8 {
        pixels.extend([level; 4]);
        labels.push(0);
    }
    for level in 150..160u8 {
        pixels.extend([level; 4]);
        labels.push(1);
    }
    ImageDataset::new(data.shape(), pixels, labels, data.class_names().to_vec()).unwrap()
}

#[test]
fn the_same_mix_gives_every_class_the_same_real_share() {
    let data = tiny();
    let generated = generated_of_both_classes();
    let same_mix = Balance {
        same_mix: true,
        ..share(0.5)
    };
    let mixed = mix_generated(&data, &generated, same_mix, 7).unwrap();
    assert_eq!(mixed.class_counts(), vec![6, 6]);
    let levels = |class: u16| -> Vec<u8> {
        (0..mixed.len())
            .filter(|&i| mixed.labels()[i] == class)
            .map(|i| mixed.image(i)[0])
            .collect()
    };
    // Class 0: 3 of its 6 originals (a subset, no copies) and 3 of its generated images.
    let class_0 = levels(0);
    let mut originals: Vec<u8> = class_0.iter().copied().filter(|l| l % 10 == 0).collect();
    originals.sort_unstable();
    originals.dedup();
    assert_eq!(originals.len(), 3, "three different originals: {class_0:?}");
    assert_eq!(
        class_0.iter().filter(|l| (71..=74).contains(*l)).count(),
        3,
        "{class_0:?}"
    );
    // Class 1: both originals, one copy, 3 generated.
    let class_1 = levels(1);
    assert_eq!(class_1.iter().filter(|&&l| l == 100 || l == 200).count(), 3);
    assert!(class_1.contains(&100) && class_1.contains(&200));
    assert_eq!(
        class_1.iter().filter(|l| (150..160).contains(*l)).count(),
        3
    );
    // Another seed keeps other originals of class 0.
    let reseeded = mix_generated(&data, &generated, same_mix, 8).unwrap();
    assert_ne!(reseeded, mixed);
    // Without the same mix class 0 keeps its 6 originals and takes nothing generated.
    let rare_only = mix_generated(&data, &generated, share(0.5), 7).unwrap();
    let class_0: Vec<u8> = (0..rare_only.len())
        .filter(|&i| rare_only.labels()[i] == 0)
        .map(|i| rare_only.image(i)[0])
        .collect();
    assert_eq!(class_0, vec![0, 10, 20, 30, 40, 50]);
}

#[test]
fn generated_only_drops_each_class_originals() {
    // As the generation run writes it: class 0's 6 originals then 1 generated (level 77),
    // class 1's 2 originals then 3 generated (levels 150, 160, 170).
    let data = tiny();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..data.len() {
        if data.labels()[i] == 0 {
            pixels.extend_from_slice(data.image(i));
            labels.push(0);
        }
    }
    pixels.extend([77u8; 4]);
    labels.push(0);
    for i in 6..8 {
        pixels.extend_from_slice(data.image(i));
        labels.push(1);
    }
    for level in [150u8, 160, 170] {
        pixels.extend([level; 4]);
        labels.push(1);
    }
    let rebalanced =
        ImageDataset::new(data.shape(), pixels, labels, data.class_names().to_vec()).unwrap();
    let sources = Sources {
        long_tail: &data,
        rebalanced: Some(&rebalanced),
        full_real: None,
        judged: None,
    };
    let generated = training_set(Method::Cas, sources, balance(6), 0)
        .unwrap()
        .data;
    assert_eq!(generated.class_counts(), vec![1, 3]);
    let levels: Vec<u8> = (0..generated.len())
        .map(|i| generated.image(i)[0])
        .collect();
    assert_eq!(levels, vec![77, 150, 160, 170]);
    // A rebalanced set with fewer images of a class than its originals is refused.
    let err = generated_only(&generated, &[6, 2]).unwrap_err();
    assert!(err.to_string().contains("class 0"), "{err}");
    assert_eq!(Method::parse("cas"), Some(Method::Cas));
    // The names the coordinator accepts are the ones the worker runs.
    for name in anygan_proto::generation::EVALUATION_METHODS
        .iter()
        .chain(&anygan_proto::generation::QUALITY_METHODS)
    {
        assert!(Method::parse(name).is_some(), "{name}");
    }
    assert_eq!(Method::parse("full-real"), Some(Method::FullReal));
}

#[test]
fn added_generated_extends_the_oversampled_set_with_every_class() {
    let data = tiny();
    let generated = generated_of_both_classes();
    let added = Balance {
        added_generated: 3,
        ..share(0.5)
    };
    let extended = add_generated(&data, &generated, added, 5).unwrap();
    // The real part is exactly (b)'s set for the seed, whatever the real share says.
    let oversampled = random_oversample(&data, 6, 5).unwrap();
    assert_eq!(extended.len(), oversampled.len() + 6);
    assert_begins_with(&extended, &oversampled);
    // Then 3 different generated images of each class, the largest included.
    let added_levels = |class: u16| -> Vec<u8> {
        let mut levels: Vec<u8> = (oversampled.len()..extended.len())
            .filter(|&i| extended.labels()[i] == class)
            .map(|i| extended.image(i)[0])
            .collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    };
    let class_0 = added_levels(0);
    assert_eq!(class_0.len(), 3, "{class_0:?}");
    assert!(class_0.iter().all(|l| (71..=74).contains(l)), "{class_0:?}");
    let class_1 = added_levels(1);
    assert_eq!(class_1.len(), 3, "{class_1:?}");
    assert!(
        class_1.iter().all(|l| (150..160).contains(l)),
        "{class_1:?}"
    );
    assert_eq!(
        add_generated(&data, &generated, added, 5).unwrap(),
        extended
    );
    assert_ne!(
        add_generated(&data, &generated, added, 6).unwrap(),
        extended
    );
}

#[test]
fn added_generated_names_a_class_with_too_few_and_refuses_the_same_mix() {
    let data = tiny();
    let generated = generated_of_both_classes();
    let too_many = Balance {
        added_generated: 5,
        ..share(0.5)
    };
    let err = add_generated(&data, &generated, too_many, 0).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("class 0 (a) has 4") && message.contains("added_generated"),
        "{message}"
    );
    let only_class_1 = generated_of_class_1(9);
    let err = add_generated(
        &data,
        &only_class_1,
        Balance {
            added_generated: 2,
            ..share(0.5)
        },
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("class 0 (a) has 0"), "{err}");
    let with_same_mix = Balance {
        added_generated: 2,
        same_mix: true,
        ..share(0.5)
    };
    let err = add_generated(&data, &generated, with_same_mix, 0).unwrap_err();
    assert!(err.to_string().contains("same_mix"), "{err}");
}
