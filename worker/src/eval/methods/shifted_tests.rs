//! Tests of method (f)'s shifted copies and of (d) drawing its real copies the same way
//! (`shifted_copies`), on images of one lit pixel whose place tells how far a copy moved.

use super::tests::{assert_begins_with, balance, tiny};
use super::*;
use crate::data::ImageShape;

/// 6×6 images with one lit pixel each: class 0 has 40 (level 1, at the centre), class 1 two,
/// level 100 at (2, 3) and level 200 at (3, 2). Where a copy's lit pixel sits tells how far it
/// moved.
fn lit_pixels() -> ImageDataset {
    let shape = ImageShape {
        channels: 1,
        height: 6,
        width: 6,
    };
    let one_lit = |y: usize, x: usize, level: u8| {
        let mut image = [0u8; 36];
        image[y * 6 + x] = level;
        image
    };
    let mut pixels: Vec<u8> = (0..40).flat_map(|_| one_lit(3, 3, 1)).collect();
    pixels.extend(one_lit(2, 3, 100));
    pixels.extend(one_lit(3, 2, 200));
    let mut labels = vec![0; 40];
    labels.extend([1, 1]);
    ImageDataset::new(shape, pixels, labels, vec!["a".into(), "b".into()]).unwrap()
}

/// The level and (y, x) of record `i`'s one lit pixel, after checking it is a class-1 record
/// with exactly one.
fn only_lit_pixel(set: &ImageDataset, i: usize) -> (u8, usize, usize) {
    assert_eq!(set.labels()[i], 1);
    let image = set.image(i);
    let lit: Vec<(u8, usize, usize)> = (0..image.len())
        .filter(|&p| image[p] > 0)
        .map(|p| (image[p], p / 6, p % 6))
        .collect();
    let [only] = lit[..] else {
        panic!("record {i} is not one lit pixel: {lit:?}");
    };
    only
}

/// Where [`lit_pixels`] lights class 1's original of `level`.
fn original_position(level: u8) -> (usize, usize) {
    if level == 100 { (2, 3) } else { (3, 2) }
}

/// Records `records` of `set` are exact copies of class 1's originals.
fn assert_exact_copies(set: &ImageDataset, records: std::ops::Range<usize>) {
    for i in records {
        let (level, y, x) = only_lit_pixel(set, i);
        assert_eq!(
            (y, x),
            original_position(level),
            "record {i} is an exact copy"
        );
    }
}

/// Records `records` of `set` are class 1's originals each moved by at most 2 pixels each way,
/// and at least half of them really moved.
fn assert_shifted_copies(set: &ImageDataset, records: std::ops::Range<usize>) {
    let count = records.len();
    let mut moved = 0;
    for i in records {
        let (level, y, x) = only_lit_pixel(set, i);
        let (oy, ox) = original_position(level);
        assert!(
            matches!(level, 100 | 200) && y.abs_diff(oy) <= 2 && x.abs_diff(ox) <= 2,
            "record {i}: {level} at ({y}, {x})"
        );
        moved += usize::from((y, x) != (oy, ox));
    }
    assert!(
        2 * moved >= count,
        "only {moved} of {count} shifted copies moved"
    );
}

#[test]
fn shifted_oversampling_fills_a_quarter_of_the_target_with_shifted_copies() {
    let data = lit_pixels();
    let set = shifted_oversample(&data, 40, 3).unwrap();
    assert_eq!(set.class_counts(), vec![40, 40]);
    // Class 0 is at the target and untouched; the originals come first, in order.
    assert_begins_with(&set, &data);
    // Exact copies up to three quarters of 40: 28 more after the 2 originals; the last 10
    // shifted.
    assert_exact_copies(&set, 42..70);
    assert_shifted_copies(&set, 70..80);
    assert_eq!(shifted_oversample(&data, 40, 3).unwrap(), set, "seeded");
    assert_ne!(
        shifted_oversample(&data, 40, 4).unwrap(),
        set,
        "the seed draws"
    );
    // The method builds exactly this set.
    let sources = Sources {
        long_tail: &data,
        rebalanced: None,
        full_real: None,
        judged: None,
    };
    let built = training_set(Method::ShiftedOversampling, sources, balance(40), 3).unwrap();
    assert_eq!(built.data, set);
    assert!(built.class_weights.is_none());
}

#[test]
fn shifted_oversampling_never_moves_a_small_image_off_its_frame() {
    // 2×2 images cannot move by even a pixel without losing half of themselves: exact copies.
    let set = shifted_oversample(&tiny(), 6, 1).unwrap();
    assert_eq!(set.class_counts(), vec![6, 6]);
    for i in 6..12 {
        let image = set.image(i);
        assert!(matches!(image[0], 100 | 200), "record {i}: {image:?}");
        assert!(
            image.iter().all(|&p| p == image[0]),
            "record {i}: {image:?}"
        );
    }
}

/// `count` generated 6×6 images per class of [`lit_pixels`]: one pixel of level 50 + class at
/// (0, 0), where no shifted original can land.
fn generated_lit_pixels(count: usize) -> ImageDataset {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for class in 0..2u8 {
        for _ in 0..count {
            let mut image = [0u8; 36];
            image[0] = 50 + class;
            pixels.extend(image);
            labels.push(u16::from(class));
        }
    }
    let data = lit_pixels();
    ImageDataset::new(data.shape(), pixels, labels, data.class_names().to_vec()).unwrap()
}

#[test]
fn shifted_copies_draw_the_mixes_real_copies_as_shifted_oversampling_does() {
    let data = lit_pixels();
    let generated = generated_lit_pixels(12);
    let three_quarters = Balance {
        target: 40,
        real_share: 0.75,
        shifted_copies: true,
        ..balance(40)
    };
    // Class 1 of target 40: its 2 originals, 18 exact copies, the last 10 of its 30 real
    // images shifted (a quarter of the target, as in (f)), then 10 generated. Class 0 is at
    // the target and untouched.
    let mixed = mix_generated(&data, &generated, three_quarters, 3).unwrap();
    assert_eq!(mixed.class_counts(), vec![40, 40]);
    assert_begins_with(&mixed, &data);
    assert_exact_copies(&mixed, 42..60);
    assert_shifted_copies(&mixed, 60..70);
    for i in 70..80 {
        assert_eq!(
            only_lit_pixel(&mixed, i),
            (51, 0, 0),
            "record {i} is generated"
        );
    }
    // Without the option the same 28 copies are all exact.
    let exact = mix_generated(
        &data,
        &generated,
        Balance {
            shifted_copies: false,
            ..three_quarters
        },
        3,
    )
    .unwrap();
    assert_exact_copies(&exact, 42..70);
    // The same mix: class 0 (40 originals) keeps 30 of them, none shifted (it needs no
    // copies, as in (f)), and takes 10 generated; class 1 is built as above.
    let same_mix = mix_generated(
        &data,
        &generated,
        Balance {
            same_mix: true,
            ..three_quarters
        },
        3,
    )
    .unwrap();
    assert_eq!(same_mix.class_counts(), vec![40, 40]);
    let class_0: Vec<&[u8]> = (0..same_mix.len())
        .filter(|&i| same_mix.labels()[i] == 0)
        .map(|i| same_mix.image(i))
        .collect();
    let at_centre = class_0.iter().filter(|image| image[3 * 6 + 3] == 1).count();
    let generated_0 = class_0.iter().filter(|image| image[0] == 50).count();
    assert_eq!((at_centre, generated_0), (30, 10));
    let shifted_1 = (0..same_mix.len())
        .filter(|&i| same_mix.labels()[i] == 1 && same_mix.image(i)[0] == 0)
        .filter(|&i| {
            let (level, y, x) = only_lit_pixel(&same_mix, i);
            (y, x) != original_position(level)
        })
        .count();
    assert!(shifted_1 >= 5, "only {shifted_1} of class 1's copies moved");
}

#[test]
fn shifted_copies_put_shifted_oversamplings_set_under_the_added_generated_images() {
    let data = lit_pixels();
    let generated = generated_lit_pixels(12);
    let added = Balance {
        added_generated: 4,
        shifted_copies: true,
        ..balance(40)
    };
    let extended = add_generated(&data, &generated, added, 5).unwrap();
    let shifted = shifted_oversample(&data, 40, 5).unwrap();
    assert_ne!(shifted, random_oversample(&data, 40, 5).unwrap());
    assert_eq!(extended.len(), shifted.len() + 8);
    assert_begins_with(&extended, &shifted);
    assert_eq!(
        extended.class_counts(),
        vec![44, 44],
        "4 generated of every class on top"
    );
}
