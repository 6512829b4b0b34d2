//! Augmentation of the classifier's training images: each step, every image of the batch is
//! shifted by a random whole number of pixels (up to `max_shift` each way, the background
//! coming in) and flipped left to right with `flip_probability`. With it the repeated copies
//! of a rare class's 40 originals stop being exact copies, the variety that measured (the
//! ninth session's control, `bench/augmented_copies.py`) 0.6 points of balanced ACSA above
//! plain random oversampling. It is applied alike to every method, so a remedy is judged
//! against baselines that have it too.
//!
//! The draws come from a stream keyed by (seed, step): a run repeats exactly, and two
//! methods with the same seed shift their k-th batch the same way.

use crate::data::ImageShape;
use crate::data::moves::{BACKGROUND, Move, largest_shift};
use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// How the classifier's training images are varied (all zero: not at all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierAugmentation {
    /// Largest shift, in pixels, along each axis.
    pub max_shift: usize,
    /// Chance that an image is flipped left to right.
    pub flip_probability: f64,
}

impl From<&anygan_proto::generation::EvaluationSettings> for ClassifierAugmentation {
    fn from(settings: &anygan_proto::generation::EvaluationSettings) -> Self {
        Self {
            max_shift: settings.augment_shift,
            flip_probability: settings.augment_flip_probability,
        }
    }
}

impl ClassifierAugmentation {
    /// Every image as it is.
    pub const NONE: Self = Self {
        max_shift: 0,
        flip_probability: 0.0,
    };

    /// Whether it leaves every image as it is.
    pub fn is_identity(&self) -> bool {
        *self == Self::NONE
    }

    /// Refuses settings that cannot apply to images of `shape`, naming the field.
    pub fn validate(&self, shape: ImageShape) -> Result<()> {
        let largest = largest_shift(shape);
        if self.max_shift > largest {
            return Err(Error::config(
                "augment_shift",
                format!(
                    "a shift of up to {} pixels would move a {}×{} image off itself; at most {}",
                    self.max_shift, shape.height, shape.width, largest
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.flip_probability) {
            return Err(Error::config(
                "augment_flip_probability",
                format!("{} is not a probability in [0, 1]", self.flip_probability),
            ));
        }
        Ok(())
    }

    /// Varies the batch `values` (images of `shape`, channel-first, one after another, in
    /// [-1, 1]) in place with the draws of (`seed`, `step`).
    pub fn apply(&self, values: &mut [f32], shape: ImageShape, seed: u64, step: u64) {
        if self.is_identity() {
            return;
        }
        let mut rng = stream(seed, Purpose::ClassifierAugmentation, step, 0);
        let mut scratch = Vec::new();
        for image in values.chunks_exact_mut(shape.pixel_count()) {
            Move::draw(&mut rng, self.max_shift, self.flip_probability).apply(
                image,
                shape,
                BACKGROUND,
                &mut scratch,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape {
        channels: 1,
        height: 4,
        width: 5,
    };

    /// A 4×5 image whose pixel (y, x) is 10y + x, scaled down to stay in [-1, 1].
    fn ramp() -> Vec<f32> {
        (0..4)
            .flat_map(|y| (0..5).map(move |x| (10 * y + x) as f32 / 100.0))
            .collect()
    }

    /// Draws until one image of a one-image batch moves by (dy, dx), flipped as asked.
    fn find_step(augment: ClassifierAugmentation, want: impl Fn(&[f32]) -> bool) -> Vec<f32> {
        (0..10_000)
            .map(|step| {
                let mut image = ramp();
                augment.apply(&mut image, SHAPE, 7, step);
                image
            })
            .find(|image| want(image))
            .expect("some step draws the wanted transform")
    }

    #[test]
    fn a_shift_moves_every_pixel_and_brings_in_background() {
        let augment = ClassifierAugmentation {
            max_shift: 1,
            flip_probability: 0.0,
        };
        // Down one row and right one column: (y, x) shows (y-1, x-1); row 0 and column 0 are
        // background.
        let moved = find_step(augment, |image| image[6] == 0.0 && image[0] == BACKGROUND);
        for y in 0..4 {
            for x in 0..5 {
                let expected = if y == 0 || x == 0 {
                    BACKGROUND
                } else {
                    (10 * (y - 1) + (x - 1)) as f32 / 100.0
                };
                assert_eq!(moved[y * 5 + x], expected, "pixel ({y}, {x})");
            }
        }
    }

    #[test]
    fn a_flip_mirrors_each_row() {
        let augment = ClassifierAugmentation {
            max_shift: 0,
            flip_probability: 0.5,
        };
        let flipped = find_step(augment, |image| image != ramp().as_slice());
        for y in 0..4 {
            for x in 0..5 {
                assert_eq!(flipped[y * 5 + x], (10 * y + (4 - x)) as f32 / 100.0);
            }
        }
    }

    #[test]
    fn draws_repeat_for_a_step_and_vary_between_steps_and_images() {
        let augment = ClassifierAugmentation {
            max_shift: 2,
            flip_probability: 0.5,
        };
        let batch = |step| {
            let mut values: Vec<f32> = (0..8).flat_map(|_| ramp()).collect();
            augment.apply(&mut values, SHAPE, 3, step);
            values
        };
        assert_eq!(batch(5), batch(5));
        assert_ne!(batch(5), batch(6));
        let values = batch(5);
        let first = &values[..20];
        let distinct = values.chunks(20).filter(|image| image != &first).count();
        assert!(distinct > 0, "8 images of one batch all moved alike");
    }

    #[test]
    fn identity_leaves_the_batch_and_bad_settings_are_refused() {
        let mut values = ramp();
        ClassifierAugmentation {
            max_shift: 0,
            flip_probability: 0.0,
        }
        .apply(&mut values, SHAPE, 1, 1);
        assert_eq!(values, ramp());
        let too_far = ClassifierAugmentation {
            max_shift: 2,
            flip_probability: 0.0,
        };
        let err = too_far.validate(SHAPE).unwrap_err().to_string();
        assert!(
            err.contains("augment_shift") && err.contains("at most 1"),
            "{err}"
        );
        let not_a_chance = ClassifierAugmentation {
            max_shift: 1,
            flip_probability: 1.5,
        };
        let err = not_a_chance.validate(SHAPE).unwrap_err().to_string();
        assert!(err.contains("augment_flip_probability"), "{err}");
        assert!(
            ClassifierAugmentation {
                max_shift: 1,
                flip_probability: f64::NAN
            }
            .validate(SHAPE)
            .is_err()
        );
    }
}
