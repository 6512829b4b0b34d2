//! Sampling the generator: images for given labels, and the PNG grid of one row per class.

use burn::prelude::*;

use super::model::{Discriminator, GanConfig, Generator};
use super::train::labels_tensor;
use crate::data::{ImageShape, chw_to_dynamic_image};
use crate::error::{Error, Result};
use crate::rng::{Purpose, fill_standard_normal, stream};

/// Pixels between grid cells.
const GRID_GAP: usize = 2;

/// Generates one image per label with noise from `(seed, purpose, stream_a, stream_b)`, returned
/// as 8-bit channel-first pixels, image after image.
pub fn generate_images<B: Backend>(
    generator: &Generator<B>,
    config: &GanConfig,
    labels: &[u16],
    noise_key: (u64, Purpose, u64, u64),
    device: &B::Device,
) -> Vec<u8> {
    if labels.is_empty() {
        return Vec::new();
    }
    let (seed, purpose, a, b) = noise_key;
    let mut noise = vec![0f32; labels.len() * config.latent_dim];
    fill_standard_normal(&mut stream(seed, purpose, a, b), &mut noise);
    generate_from_noise(generator, config, labels, noise, device)
}

/// Generates one image per label from the given noise (`labels.len() × latent_dim` values),
/// returned as 8-bit channel-first pixels, image after image.
pub fn generate_from_noise<B: Backend>(
    generator: &Generator<B>,
    config: &GanConfig,
    labels: &[u16],
    noise: Vec<f32>,
    device: &B::Device,
) -> Vec<u8> {
    if labels.is_empty() {
        return Vec::new();
    }
    let noise = Tensor::<B, 2>::from_data(
        TensorData::new(noise, [labels.len(), config.latent_dim]),
        device,
    );
    let images = generator.forward(noise, labels_tensor(labels, device));
    images
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default() // converted to f32 just above
        .into_iter()
        .map(to_pixel)
        .collect()
}

/// Generates one image per label, each the one of `candidates` that `discriminator` scores
/// most real for its label (the highest logit; the first on ties). `noise` holds
/// `labels.len() × candidates` rows, image after image: rows `i·candidates ..` are image `i`'s
/// candidates. Returned as 8-bit channel-first pixels, image after image.
pub fn generate_ranked<B: Backend>(
    generator: &Generator<B>,
    discriminator: &Discriminator<B>,
    config: &GanConfig,
    labels: &[u16],
    candidates: usize,
    noise: Vec<f32>,
    device: &B::Device,
) -> Vec<u8> {
    let candidates = candidates.max(1);
    if labels.is_empty() {
        return Vec::new();
    }
    let rows = labels.len() * candidates;
    let candidate_labels: Vec<u16> = labels
        .iter()
        .flat_map(|&label| std::iter::repeat_n(label, candidates))
        .collect();
    let noise =
        Tensor::<B, 2>::from_data(TensorData::new(noise, [rows, config.latent_dim]), device);
    let images = generator.forward(noise, labels_tensor(&candidate_labels, device));
    let scores = if candidates == 1 {
        vec![0.0; rows]
    } else {
        floats(discriminator.forward(
            images.clone(),
            labels_tensor(&candidate_labels, device),
            None,
        ))
    };
    let values = floats(images);
    let size = config.image_shape().pixel_count();
    scores
        .chunks(candidates)
        .enumerate()
        .flat_map(|(image, scores)| {
            let best = best_candidate(scores);
            let row = image * candidates + best;
            values[row * size..(row + 1) * size]
                .iter()
                .copied()
                .map(to_pixel)
        })
        .collect()
}

/// Index of the highest score, the first one on ties (a NaN never wins over a number).
fn best_candidate(scores: &[f32]) -> usize {
    let mut best = 0;
    for (index, &score) in scores.iter().enumerate().skip(1) {
        if score > scores[best] || scores[best].is_nan() && !score.is_nan() {
            best = index;
        }
    }
    best
}

pub(crate) fn floats<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default() // converted to f32 just above
}

/// Maps a generator output in [-1, 1] to an 8-bit pixel.
pub fn to_pixel(value: f32) -> u8 {
    ((value + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// A PNG with one row per class and `columns` samples per row, on a fixed noise key so grids of
/// successive steps show the same latent points.
pub fn sample_grid_png<B: Backend>(
    generator: &Generator<B>,
    config: &GanConfig,
    columns: usize,
    seed: u64,
    device: &B::Device,
) -> Result<Vec<u8>> {
    let labels: Vec<u16> = (0..config.num_classes)
        .flat_map(|class| std::iter::repeat_n(class as u16, columns))
        .collect();
    let pixels = generate_images(
        generator,
        config,
        &labels,
        (seed, Purpose::SampleGrid, 0, 0),
        device,
    );
    grid_png(&pixels, config.image_shape(), config.num_classes, columns)
}

/// Lays out `rows * columns` channel-first images (row-major) as one PNG.
pub fn grid_png(pixels: &[u8], shape: ImageShape, rows: usize, columns: usize) -> Result<Vec<u8>> {
    let size = shape.pixel_count();
    if pixels.len() != rows * columns * size {
        return Err(Error::Encode {
            what: "sample grid".into(),
            reason: format!("{} values are not {rows}x{columns} images", pixels.len()),
        });
    }
    let cell_w = shape.width + GRID_GAP;
    let cell_h = shape.height + GRID_GAP;
    let mut canvas = image::RgbImage::new(
        (columns * cell_w + GRID_GAP) as u32,
        (rows * cell_h + GRID_GAP) as u32,
    );
    for (index, chw) in pixels.chunks_exact(size).enumerate() {
        let tile = chw_to_dynamic_image(chw, shape)?.to_rgb8();
        let x = GRID_GAP + (index % columns) * cell_w;
        let y = GRID_GAP + (index / columns) * cell_h;
        image::imageops::replace(&mut canvas, &tile, x as i64, y as i64);
    }
    encode_png(&image::DynamicImage::ImageRgb8(canvas), "sample grid")
}

pub fn encode_png(image: &image::DynamicImage, what: &str) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Encode {
            what: what.into(),
            reason: e.to_string(),
        })?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_candidate_is_the_first_highest_score() {
        assert_eq!(best_candidate(&[0.5]), 0);
        assert_eq!(best_candidate(&[0.1, 0.7, -2.0]), 1);
        assert_eq!(best_candidate(&[0.7, 0.7, 0.1]), 0, "first on ties");
        assert_eq!(best_candidate(&[f32::NAN, -5.0]), 1, "a number beats NaN");
        assert_eq!(best_candidate(&[-5.0, f32::NAN]), 0);
    }

    #[test]
    fn pixels_cover_the_range() {
        assert_eq!(to_pixel(-1.0), 0);
        assert_eq!(to_pixel(1.0), 255);
        assert_eq!(to_pixel(-7.0), 0);
        assert_eq!(to_pixel(0.0), 128);
    }

    #[test]
    fn grid_has_the_right_size() {
        let shape = ImageShape {
            channels: 1,
            height: 3,
            width: 4,
        };
        let png = grid_png(&[200; 6 * 12], shape, 2, 3).expect("grid");
        let decoded = image::load_from_memory(&png).expect("decodes");
        assert_eq!(decoded.width() as usize, 3 * (4 + GRID_GAP) + GRID_GAP);
        assert_eq!(decoded.height() as usize, 2 * (3 + GRID_GAP) + GRID_GAP);
        assert!(grid_png(&[0; 5], shape, 2, 3).is_err());
    }
}
