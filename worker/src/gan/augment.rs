//! Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020):
//! every image the discriminator sees, real or generated, in its own update and in the
//! generator's, goes through the same kind of random transform first. With 40 images of a
//! class the discriminator otherwise memorizes them within a few hundred epochs and the
//! generator learns the memorized details rather than the class; augmenting only the real
//! images would teach the generator to draw the augmentations. The transforms are tensor ops,
//! so the generator's gradient flows through them.
//!
//! Transforms (DiffAugment's `color,translation,cutout`, colour as brightness and contrast,
//! which also apply to gray images):
//! - brightness: + U(−0.5, 0.5) per image (pixels are in [−1, 1]);
//! - contrast: (x − mean) · U(0.5, 1.5) + mean per image;
//! - translation: a shift by up to ⅛ of the side in each direction, zeros coming in, as
//!   `Sy · x · Sxᵀ` with per-image shift matrices (batched matmuls, no per-image slicing);
//! - cutout: a square of half the side, at a random centre, set to 0.
//!
//! Parameters are drawn for the whole global batch from a stream keyed by (seed, step, pass)
//! and each replica keeps its rows, like the noise and dropout masks, so n replicas at batch
//! B/n still see exactly what one replica at batch B sees and a resumed run continues bit for
//! bit.

use burn::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// Which transforms the discriminator's inputs go through.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub struct DiffAugment {
    pub color: bool,
    pub translation: bool,
    pub cutout: bool,
}

impl DiffAugment {
    /// The policy named by a comma-separated list of `color`, `translation`, `cutout`
    /// (`none` or empty: no augmentation).
    pub fn parse(policy: &str) -> Result<Option<Self>> {
        let mut augment = Self {
            color: false,
            translation: false,
            cutout: false,
        };
        for name in policy.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "color" => augment.color = true,
                "translation" => augment.translation = true,
                "cutout" => augment.cutout = true,
                "none" => {}
                other => {
                    return Err(Error::config(
                        "diff_augment",
                        format!("`{other}` is not color, translation, cutout or none"),
                    ));
                }
            }
        }
        Ok((augment.color || augment.translation || augment.cutout).then_some(augment))
    }

    /// The policy as `parse` reads it.
    pub fn name(&self) -> String {
        [
            (self.color, "color"),
            (self.translation, "translation"),
            (self.cutout, "cutout"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
    }

    /// Transforms `images` (`[rows, channels, side, side]`, rows `rows` of the global batch of
    /// `global` images) with the parameters of `(seed, step, pass)`.
    pub fn apply<B: Backend>(
        &self,
        images: Tensor<B, 4>,
        rows: std::ops::Range<usize>,
        global: usize,
        key: (u64, u64, u64),
    ) -> Tensor<B, 4> {
        let [batch, channels, height, width] = images.dims();
        let device = images.device();
        let draws = Draws::new(global, height, width, key);
        let draws = &draws.per_image[rows];
        let per_image = |values: Vec<f32>| -> Tensor<B, 4> {
            Tensor::from_data(TensorData::new(values, [batch, 1, 1, 1]), &device)
        };
        let mut x = images;
        if self.color {
            x = x + per_image(draws.iter().map(|d| d.brightness).collect());
            let mean = x.clone().mean_dim(1).mean_dim(2).mean_dim(3);
            x = (x - mean.clone()) * per_image(draws.iter().map(|d| d.contrast).collect()) + mean;
        }
        if self.translation {
            let rows_shift = shift_matrices::<B>(draws.iter().map(|d| d.dy), height, &device)
                .repeat_dim(1, channels);
            let columns_shift = shift_matrices::<B>(draws.iter().map(|d| d.dx), width, &device)
                .swap_dims(2, 3)
                .repeat_dim(1, channels);
            x = rows_shift.matmul(x).matmul(columns_shift);
        }
        if self.cutout {
            let mut keep = vec![1f32; batch * height * width];
            let (half_h, half_w) = (height / 4, width / 4); // a square of half the side
            for (image, d) in draws.iter().enumerate() {
                for y in d.cut_y.saturating_sub(half_h)..(d.cut_y + half_h).min(height) {
                    for x in d.cut_x.saturating_sub(half_w)..(d.cut_x + half_w).min(width) {
                        keep[(image * height + y) * width + x] = 0.0;
                    }
                }
            }
            let keep = Tensor::<B, 4>::from_data(
                TensorData::new(keep, [batch, 1, height, width]),
                &device,
            );
            x = x * keep;
        }
        x
    }
}

/// One image's transform parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    brightness: f32,
    contrast: f32,
    dx: i64,
    dy: i64,
    cut_x: usize,
    cut_y: usize,
}

struct Draws {
    per_image: Vec<Draw>,
}

impl Draws {
    /// Every parameter of every image of the global batch, drawn in one fixed order.
    fn new(global: usize, height: usize, width: usize, key: (u64, u64, u64)) -> Self {
        let (seed, step, pass) = key;
        let mut rng = stream(seed, Purpose::DiffAugment, step, pass);
        let reach = |side: usize| (side / 8) as i64;
        let per_image = (0..global)
            .map(|_| Draw {
                brightness: rng.random::<f32>() - 0.5,
                contrast: rng.random::<f32>() + 0.5,
                dx: rng.random_range(-reach(width)..=reach(width)),
                dy: rng.random_range(-reach(height)..=reach(height)),
                cut_x: rng.random_range(0..width),
                cut_y: rng.random_range(0..height),
            })
            .collect();
        Self { per_image }
    }
}

/// `[images, 1, side, side]` matrices `S` with `(S · v)[i] = v[i − shift]` (0 outside).
fn shift_matrices<B: Backend>(
    shifts: impl Iterator<Item = i64>,
    side: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut values = Vec::new();
    let mut images = 0;
    for shift in shifts {
        images += 1;
        for i in 0..side as i64 {
            for j in 0..side as i64 {
                values.push(if j == i - shift { 1.0f32 } else { 0.0 });
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [images, 1, side, side]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ComputeBackend;

    type B = ComputeBackend;

    fn ramp(batch: usize, side: usize) -> Tensor<B, 4> {
        let values: Vec<f32> = (0..batch * side * side)
            .map(|i| (i % (side * side)) as f32 / 100.0)
            .collect();
        Tensor::from_data(
            TensorData::new(values, [batch, 1, side, side]),
            &Default::default(),
        )
    }

    fn values(tensor: Tensor<B, 4>) -> Vec<f32> {
        tensor.into_data().into_vec::<f32>().expect("f32")
    }

    #[test]
    fn policies_parse_by_name_and_unknown_names_are_refused() {
        let all = DiffAugment::parse("color,translation,cutout")
            .expect("valid")
            .expect("some");
        assert!(all.color && all.translation && all.cutout);
        assert_eq!(all.name(), "color,translation,cutout");
        assert_eq!(DiffAugment::parse("none").expect("valid"), None);
        assert_eq!(DiffAugment::parse("").expect("valid"), None);
        let err = DiffAugment::parse("color,flip").expect_err("refused");
        assert!(err.to_string().contains("flip"), "{err}");
    }

    #[test]
    fn translation_moves_pixels_and_lets_zeros_in() {
        let translation = DiffAugment::parse("translation").unwrap().unwrap();
        let side = 16;
        let input = ramp(8, side);
        let key = (3, 5, 0);
        let output = values(translation.apply(input.clone(), 0..8, 8, key));
        let draws = Draws::new(8, side, side, key);
        let input = values(input);
        let mut moved = 0;
        for (image, d) in draws.per_image.iter().enumerate() {
            assert!(d.dx.abs() <= 2 && d.dy.abs() <= 2, "⅛ of 16");
            moved += usize::from(d.dx != 0 || d.dy != 0);
            for y in 0..side as i64 {
                for x in 0..side as i64 {
                    let (sy, sx) = (y - d.dy, x - d.dx);
                    let expected =
                        if (0..side as i64).contains(&sy) && (0..side as i64).contains(&sx) {
                            input[image * side * side + (sy as usize) * side + sx as usize]
                        } else {
                            0.0
                        };
                    let got = output[image * side * side + (y as usize) * side + x as usize];
                    assert!((got - expected).abs() < 1e-6, "image {image} ({y},{x})");
                }
            }
        }
        assert!(moved > 0, "some image moved");
    }

    #[test]
    fn a_replicas_rows_get_the_global_batchs_transforms() {
        let all = DiffAugment::parse("color,translation,cutout")
            .unwrap()
            .unwrap();
        let input = ramp(8, 12);
        let key = (1, 2, 3);
        let whole = values(all.apply(input.clone(), 0..8, 8, key));
        let second_half = values(all.apply(input.narrow(0, 4, 4), 4..8, 8, key));
        let size = 12 * 12;
        for (a, b) in whole[4 * size..].iter().zip(&second_half) {
            assert!((a - b).abs() < 1e-6);
        }
        let other_step = values(all.apply(ramp(8, 12), 0..8, 8, (1, 3, 3)));
        assert_ne!(whole, other_step, "another step, other transforms");
    }

    #[test]
    fn cutout_zeroes_a_square_of_half_the_side() {
        let cutout = DiffAugment::parse("cutout").unwrap().unwrap();
        let ones = Tensor::<B, 4>::ones([4, 1, 16, 16], &Default::default());
        let output = values(cutout.apply(ones, 0..4, 4, (0, 0, 0)));
        for image in output.chunks(256) {
            let zeros = image.iter().filter(|&&v| v == 0.0).count();
            assert!((16..=64).contains(&zeros), "{zeros} zeroed");
            assert!(image.iter().all(|&v| v == 0.0 || v == 1.0));
        }
    }

    #[test]
    fn gradients_flow_through_the_transforms() {
        use burn::backend::Autodiff;
        type A = Autodiff<B>;
        let all = DiffAugment::parse("color,translation,cutout")
            .unwrap()
            .unwrap();
        let _section = crate::autodiff::section(); // other tests train meanwhile
        let input = Tensor::<A, 4>::ones([2, 1, 8, 8], &Default::default()).require_grad();
        let output = all.apply(input.clone(), 0..2, 2, (0, 1, 0));
        let grads = output.sum().backward();
        let grad = input.grad(&grads).expect("a gradient");
        let grad: Vec<f32> = grad.into_data().into_vec().expect("f32");
        assert!(grad.iter().any(|g| *g != 0.0));
    }
}
