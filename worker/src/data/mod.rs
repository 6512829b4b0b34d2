//! Datasets: an in-memory labelled image set, its parsers (IDX, image folders), loading from an
//! object store, long-tailed subsets and the deterministic batch order. Pure Rust: no tokio here.

mod folder;
mod idx;
pub(crate) mod moves;
mod sampler;
mod source;
mod subset;

pub use folder::{ImageFolderEntry, decode_image_folder};
pub use idx::{IdxArray, encode_idx, idx_set_files, parse_idx, parse_idx_pair};
pub use sampler::EpochSampler;
pub use source::{DatasetLayout, DatasetSpec, load_dataset, load_source};
pub use subset::{
    FASHION_MNIST_CLASSES, LONG_TAIL_TEST_COUNTS, LONG_TAIL_TRAIN_COUNTS, held_out_subset,
    per_class_subset, stand_in_subset,
};

use crate::error::{Error, Result};

/// Channels and size of every image of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// 28×28 grayscale, the shape of (Fashion-)MNIST.
    pub const GRAY_28: Self = Self {
        channels: 1,
        height: 28,
        width: 28,
    };

    /// Values per image.
    pub fn pixel_count(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A labelled image set held in memory as 8-bit pixels.
///
/// Pixels are stored channel-first per image (`[c, h, w]`), the layout burn's convolutions want,
/// so a batch is one copy and one scaling away from a tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    shape: ImageShape,
    pixels: Vec<u8>,
    labels: Vec<u16>,
    class_names: Vec<String>,
}

impl ImageDataset {
    /// Builds a dataset, checking that pixels, labels and classes agree.
    pub fn new(
        shape: ImageShape,
        pixels: Vec<u8>,
        labels: Vec<u16>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        if shape.pixel_count() == 0 {
            return Err(Error::config(
                "image_shape",
                "images must have at least one pixel",
            ));
        }
        if class_names.is_empty() || class_names.len() > usize::from(u16::MAX) {
            return Err(Error::config(
                "class_names",
                format!("need 1..=65535 classes, got {}", class_names.len()),
            ));
        }
        if pixels.len() != labels.len() * shape.pixel_count() {
            return Err(Error::config(
                "pixels",
                format!(
                    "{} pixel values do not make {} images of {:?}",
                    pixels.len(),
                    labels.len(),
                    shape
                ),
            ));
        }
        if let Some((record, label)) = labels
            .iter()
            .enumerate()
            .find(|(_, label)| usize::from(**label) >= class_names.len())
        {
            return Err(Error::config(
                "labels",
                format!(
                    "record {record}: label {label} is outside the {} classes",
                    class_names.len()
                ),
            ));
        }
        Ok(Self {
            shape,
            pixels,
            labels,
            class_names,
        })
    }

    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// Pixels of image `index`, channel-first.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.shape.pixel_count();
        &self.pixels[index * size..(index + 1) * size]
    }

    /// How many images each class has, indexed by class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }

    /// The same records under other class names (as many as the labels need, or more).
    pub fn with_class_names(self, class_names: Vec<String>) -> Result<Self> {
        Self::new(self.shape, self.pixels, self.labels, class_names)
    }

    /// A new dataset made of the given records, in the given order.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::config(
                "indices",
                format!("record {bad} is past the {} records", self.len()),
            ));
        }
        let mut pixels = Vec::with_capacity(indices.len() * self.shape.pixel_count());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self::new(self.shape, pixels, labels, self.class_names.clone())
    }

    /// Appends another dataset with the same shape and classes (e.g. generated images).
    pub fn extend(&mut self, other: &ImageDataset) -> Result<()> {
        if other.shape != self.shape {
            return Err(Error::config(
                "image_shape",
                format!("cannot join {:?} images to {:?}", other.shape, self.shape),
            ));
        }
        if other.class_names != self.class_names {
            return Err(Error::config(
                "class_names",
                format!(
                    "classes differ: {:?} vs {:?}",
                    other.class_names, self.class_names
                ),
            ));
        }
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
        Ok(())
    }

    /// The same images resized (bilinear) and converted to `shape`'s channel count.
    pub fn resized(&self, shape: ImageShape) -> Result<Self> {
        if shape == self.shape {
            return Ok(self.clone());
        }
        let mut pixels = Vec::with_capacity(self.len() * shape.pixel_count());
        for index in 0..self.len() {
            let image = chw_to_dynamic_image(self.image(index), self.shape)?;
            pixels.extend(dynamic_image_to_chw(&image, shape));
        }
        Self::new(shape, pixels, self.labels.clone(), self.class_names.clone())
    }

    /// Images `indices` scaled to [-1, 1], channel-first, ready for a `[batch, c, h, w]` tensor.
    pub fn normalized_batch(&self, indices: &[usize]) -> (Vec<f32>, Vec<u16>) {
        let mut values = Vec::with_capacity(indices.len() * self.shape.pixel_count());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            values.extend(self.image(i).iter().map(|&p| f32::from(p) / 127.5 - 1.0));
            labels.push(self.labels[i]);
        }
        (values, labels)
    }
}

/// Converts channel-first pixels into an `image` crate buffer (gray or RGB).
pub fn chw_to_dynamic_image(chw: &[u8], shape: ImageShape) -> Result<image::DynamicImage> {
    let (w, h) = (shape.width as u32, shape.height as u32);
    let plane = shape.height * shape.width;
    let invalid = || {
        Error::config(
            "image_shape",
            format!("{shape:?} is not a gray or RGB image"),
        )
    };
    match shape.channels {
        1 => image::GrayImage::from_raw(w, h, chw.to_vec())
            .map(image::DynamicImage::ImageLuma8)
            .ok_or_else(invalid),
        3 => {
            let mut interleaved = Vec::with_capacity(chw.len());
            for p in 0..plane {
                interleaved.extend([chw[p], chw[plane + p], chw[2 * plane + p]]);
            }
            image::RgbImage::from_raw(w, h, interleaved)
                .map(image::DynamicImage::ImageRgb8)
                .ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

/// Resizes and converts a decoded image to channel-first pixels of `shape`.
pub(crate) fn dynamic_image_to_chw(image: &image::DynamicImage, shape: ImageShape) -> Vec<u8> {
    let (w, h) = (shape.width as u32, shape.height as u32);
    let resized = if image.width() == w && image.height() == h {
        image.clone()
    } else {
        image.resize_exact(w, h, image::imageops::FilterType::Triangle)
    };
    if shape.channels == 1 {
        resized.to_luma8().into_raw()
    } else {
        let rgb = resized.to_rgb8();
        let plane = shape.height * shape.width;
        let mut chw = vec![0u8; 3 * plane];
        for (p, pixel) in rgb.pixels().enumerate() {
            for c in 0..3 {
                chw[c * plane + p] = pixel.0[c];
            }
        }
        chw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(labels: Vec<u16>) -> ImageDataset {
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        let pixels = labels.iter().flat_map(|&l| [l as u8; 4]).collect();
        ImageDataset::new(
            shape,
            pixels,
            labels,
            vec!["a".into(), "b".into(), "c".into()],
        )
        .expect("valid tiny dataset")
    }

    #[test]
    fn counts_select_and_extend() {
        let mut data = tiny(vec![0, 2, 2, 1]);
        assert_eq!(data.class_counts(), vec![1, 1, 2]);
        let picked = data.select(&[2, 0]).expect("in range");
        assert_eq!(picked.labels(), &[2, 0]);
        assert_eq!(picked.image(0), &[2, 2, 2, 2]);
        assert!(data.select(&[4]).is_err());
        data.extend(&picked).expect("same shape");
        assert_eq!(data.class_counts(), vec![2, 1, 3]);
    }

    #[test]
    fn rejects_label_outside_classes() {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 1,
        };
        let err = ImageDataset::new(shape, vec![0, 0], vec![0, 5], vec!["a".into()])
            .expect_err("label 5 of 1 class");
        assert!(err.to_string().contains("record 1"), "{err}");
    }

    #[test]
    fn normalizes_to_unit_range() {
        let data = tiny(vec![0]);
        let shape = data.shape();
        let full = ImageDataset::new(
            shape,
            vec![0, 255, 0, 255],
            vec![0],
            data.class_names().to_vec(),
        )
        .expect("valid");
        let (values, labels) = full.normalized_batch(&[0]);
        assert_eq!(values, vec![-1.0, 1.0, -1.0, 1.0]);
        assert_eq!(labels, vec![0]);
    }

    #[test]
    fn resizes_gray_to_rgb() {
        let data = tiny(vec![1]);
        let rgb = data
            .resized(ImageShape {
                channels: 3,
                height: 4,
                width: 4,
            })
            .expect("resize");
        assert_eq!(rgb.image(0).len(), 48);
        assert!(rgb.image(0).iter().all(|&p| p == 1));
    }
}
