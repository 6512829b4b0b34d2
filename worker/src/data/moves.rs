//! Moving an image by whole pixels (and flipping it), the background coming in: the classifier's
//! augmentation, method (f)'s shifted copies and the GAN's shifted real images all move images
//! this one way.

use rand::Rng;

use crate::data::ImageShape;

/// The background a shift brings in: pixel value 0 scaled to [-1, 1].
pub(crate) const BACKGROUND: f32 = -1.0;

/// The largest shift, along each axis, that keeps more than half of an image of `shape` in
/// its frame.
pub(crate) fn largest_shift(shape: ImageShape) -> usize {
    anygan_proto::job::largest_image_shift(shape.height.min(shape.width))
}

/// One image's move: down `dy` and right `dx` pixels (negative: up, left), after a left-right
/// flip when `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Move {
    pub dy: isize,
    pub dx: isize,
    pub flip: bool,
}

impl Move {
    /// A random move: down and right by up to `max_shift` pixels each way (two draws), then a
    /// flip with `flip_probability` (a third draw, only when that is above 0).
    pub fn draw(rng: &mut impl Rng, max_shift: usize, flip_probability: f64) -> Self {
        let shift = max_shift as i64;
        let dy = rng.random_range(-shift..=shift) as isize;
        let dx = rng.random_range(-shift..=shift) as isize;
        let flip = flip_probability > 0.0 && rng.random::<f64>() < flip_probability;
        Self { dy, dx, flip }
    }

    /// Moves `image` (of `shape`, channel-first) in place; pixels moved in from outside are
    /// `background`. `scratch` is reused between calls.
    pub fn apply<T: Copy>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        background: T,
        scratch: &mut Vec<T>,
    ) {
        let (height, width) = (shape.height, shape.width);
        let plane = height * width;
        for channel in image.chunks_exact_mut(plane) {
            scratch.clear();
            scratch.resize(plane, background);
            for y in 0..height {
                let Some(source_y) = y.checked_add_signed(-self.dy).filter(|&s| s < height) else {
                    continue;
                };
                for x in 0..width {
                    // The output pixel x shows the flipped image's pixel x - dx.
                    let Some(shifted_x) = x.checked_add_signed(-self.dx).filter(|&s| s < width)
                    else {
                        continue;
                    };
                    let source_x = if self.flip {
                        width - 1 - shifted_x
                    } else {
                        shifted_x
                    };
                    scratch[y * width + x] = channel[source_y * width + source_x];
                }
            }
            channel.copy_from_slice(scratch);
        }
    }
}
