//! Real images shifted before the discriminator sees them (`TrainConfig::real_shift`): each
//! image of the real batch moves by a random whole number of pixels, up to the setting each
//! way, the background coming in. Generated images are not shifted, so — unlike DiffAugment,
//! which transforms both alike — the generator learns to draw every class at varied positions:
//! a prior that the 40–200 originals of a rare class do not show by themselves, and one that,
//! as shifted copies of the originals, measured worth more to the evaluation's classifier than
//! exact copies (the thirteenth session's controls in docs/evaluation-investigation.md).
//!
//! The moves are drawn for the global batch from (seed, step) and each replica keeps its rows,
//! like the noise and dropout masks: n replicas at batch B/n shift exactly as one replica at
//! batch B, and a resumed run continues bit for bit.

use std::ops::Range;

use crate::data::ImageShape;
use crate::data::moves::{BACKGROUND, Move, largest_shift};
use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// Refuses a shift of 0 (none means no shift) or one that would move an image of `shape` more
/// than half off itself, naming the field.
pub(crate) fn check(shift: Option<usize>, shape: ImageShape) -> Result<()> {
    let Some(shift) = shift else {
        return Ok(());
    };
    let largest = largest_shift(shape);
    if shift == 0 || shift > largest {
        return Err(Error::config(
            "real_shift",
            format!(
                "{shift} pixels: a shift must be 1 to {largest} for {}×{} images (none: no shift)",
                shape.height, shape.width
            ),
        ));
    }
    Ok(())
}

/// Shifts `images` — rows `rows` of a global batch, of `shape`, channel-first, in [-1, 1] — in
/// place with the moves of (`seed`, `step`), up to `shift` pixels each way.
pub(crate) fn shift_rows(
    images: &mut [f32],
    shape: ImageShape,
    shift: usize,
    (seed, step): (u64, u64),
    rows: Range<usize>,
) {
    let moves = global_moves(shift, seed, step, rows.end);
    let mut scratch = Vec::new();
    for (image, moved) in images
        .chunks_exact_mut(shape.pixel_count())
        .zip(&moves[rows.start..])
    {
        moved.apply(image, shape, BACKGROUND, &mut scratch);
    }
}

/// The moves of the first `count` rows of step `step`'s global batch.
fn global_moves(shift: usize, seed: u64, step: u64, count: usize) -> Vec<Move> {
    let mut rng = stream(seed, Purpose::RealShift, step, 0);
    (0..count)
        .map(|_| Move::draw(&mut rng, shift, 0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape::GRAY_28;

    /// `count` images on the background, image i with one pixel of value i / 10 at (14, 14).
    fn dotted(count: usize) -> Vec<f32> {
        let mut images = vec![BACKGROUND; count * SHAPE.pixel_count()];
        for (i, image) in images.chunks_exact_mut(SHAPE.pixel_count()).enumerate() {
            image[14 * 28 + 14] = i as f32 / 10.0;
        }
        images
    }

    /// Where each image's dot went, as (dy, dx) from (14, 14).
    fn dot_moves(images: &[f32]) -> Vec<(isize, isize)> {
        images
            .chunks_exact(SHAPE.pixel_count())
            .map(|image| {
                let lit: Vec<usize> = (0..image.len())
                    .filter(|&p| image[p] != BACKGROUND)
                    .collect();
                assert_eq!(lit.len(), 1, "the dot moves whole, nothing else appears");
                ((lit[0] / 28) as isize - 14, (lit[0] % 28) as isize - 14)
            })
            .collect()
    }

    #[test]
    fn every_image_moves_within_the_shift_and_replicas_split_the_global_draws() {
        let mut whole = dotted(8);
        shift_rows(&mut whole, SHAPE, 2, (7, 3), 0..8);
        let moves = dot_moves(&whole);
        assert!(
            moves.iter().all(|&(dy, dx)| dy.abs() <= 2 && dx.abs() <= 2),
            "{moves:?}"
        );
        assert!(
            moves.iter().any(|&m| m != (0, 0)),
            "some image moved: {moves:?}"
        );
        assert!(
            moves.iter().any(|&(dy, _)| dy != moves[0].0),
            "moves differ: {moves:?}"
        );
        for (i, image) in whole.chunks_exact(SHAPE.pixel_count()).enumerate() {
            assert!(
                image.contains(&(i as f32 / 10.0)),
                "image {i} keeps its own dot"
            );
        }

        // Replica 1 of 2 holds global rows 4..8 and shifts them exactly as the whole batch did.
        let mut second_half = dotted(8).split_off(4 * SHAPE.pixel_count());
        shift_rows(&mut second_half, SHAPE, 2, (7, 3), 4..8);
        assert_eq!(second_half, whole[4 * SHAPE.pixel_count()..]);

        let mut next_step = dotted(8);
        shift_rows(&mut next_step, SHAPE, 2, (7, 4), 0..8);
        assert_ne!(dot_moves(&next_step), moves, "each step draws anew");
    }

    #[test]
    fn shifts_that_are_none_or_would_move_an_image_off_itself_are_refused_by_name() {
        assert!(check(None, SHAPE).is_ok());
        assert!(check(Some(13), SHAPE).is_ok());
        for refused in [0, 14] {
            let err = check(Some(refused), SHAPE)
                .expect_err("refused")
                .to_string();
            assert!(
                err.contains("real_shift") && err.contains("1 to 13"),
                "{err}"
            );
        }
    }
}
