//! The random draws of one training step, each from a stream keyed by (seed, step, rank) and
//! made for the global batch, this replica keeping its own rows: noise and labels, the real
//! images' shifts, their mismatched labels, the discriminator's augmentations and dropout masks.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::Rng;

use super::{FakeLabels, GanTrainer};
use crate::error::{Error, Result};
use crate::rng::{Purpose, fill_standard_normal_at, standard_normal_words, stream};

impl<B: AutodiffBackend> GanTrainer<B> {
    /// Noise `[local batch * latent]` and labels for this step and purpose: drawn for the
    /// global batch, this replica's rows kept. `paired`: global rows 2i and 2i + 1 share row
    /// 2i's label (the mode-seeking pairs; replicas hold even row counts, so no pair straddles
    /// two of them).
    pub(super) fn noise_and_labels(&self, purpose: Purpose, paired: bool) -> (Vec<f32>, Vec<u16>) {
        let global = self.config.batch_size;
        let latent = self.config.gan.latent_dim;
        let rows = self.replica_rows();
        // The stream holds the global batch's noise, then its labels (one f64, two words, each);
        // this replica enters it at its own rows (ChaCha is addressable), drawing nothing else.
        let mut rng = stream(self.config.seed, purpose, self.step, 0);
        let mut noise = vec![0f32; rows.len() * latent];
        fill_standard_normal_at(&mut rng, rows.start * latent, &mut noise);
        // A paired odd row copies the row before it, which may belong to the previous replica.
        let first_label = if paired {
            rows.start - rows.start % 2
        } else {
            rows.start
        };
        rng.set_word_pos(standard_normal_words(global * latent) + 2 * first_label as u128);
        let mut labels: Vec<u16> = (first_label..rows.end)
            .map(|_| draw_label(&self.label_cdf, rng.random::<f64>()))
            .collect();
        if paired {
            // `first_label` is even, so odd local indices are odd global rows.
            for row in (1..labels.len()).step_by(2) {
                labels[row] = labels[row - 1];
            }
        }
        labels.drain(..rows.start - first_label);
        (noise, labels)
    }

    /// A wrong label for each of this replica's real images (`labels`, its rows of the global
    /// batch): label + k mod C with k uniform in 1..C, so every other class is equally likely
    /// and the true one never drawn. One f64 (two words) per global row, so each replica enters
    /// the stream at its own rows and n replicas draw what one replica draws for the batch.
    pub(super) fn wrong_labels(&self, labels: &[u16]) -> Vec<u16> {
        let classes = self.config.gan.num_classes;
        let others = classes - 1;
        let mut rng = stream(self.config.seed, Purpose::MismatchedLabels, self.step, 0);
        rng.set_word_pos(2 * self.replica_rows().start as u128);
        labels
            .iter()
            .map(|&label| {
                let offset = 1 + ((rng.random::<f64>() * others as f64) as usize).min(others - 1);
                ((usize::from(label) + offset) % classes) as u16
            })
            .collect()
    }

    /// This replica's real images as the discriminator sees them: shifted when the run asks
    /// for it (see `super::real_shift`).
    pub(super) fn real_images(&self, images: &[f32]) -> Vec<f32> {
        let mut images = images.to_vec();
        if let Some(shift) = self.config.real_shift {
            crate::gan::real_shift::shift_rows(
                &mut images,
                self.config.gan.image_shape(),
                shift,
                (self.config.seed, self.step),
                self.replica_rows(),
            );
        }
        images
    }

    /// Rows of the global batch that belong to this replica.
    pub(super) fn replica_rows(&self) -> std::ops::Range<usize> {
        let local = self.local_batch();
        self.rank * local..(self.rank + 1) * local
    }

    /// The discriminator's input for `pass` of this step, augmented when the run asks for it.
    pub(super) fn augment(&self, images: Tensor<B, 4>, pass: u64) -> Tensor<B, 4> {
        match &self.diff_augment {
            Some(augment) => augment.apply(
                images,
                self.replica_rows(),
                self.config.batch_size,
                (self.config.seed, self.step, pass),
            ),
            None => images,
        }
    }

    /// Inverted-dropout keep mask for the discriminator's `pass` of this step, or none; drawn
    /// for the global batch like the noise.
    pub(super) fn dropout_mask(&self, pass: u64) -> Option<Tensor<B, 2>> {
        let p = self.config.gan.dropout;
        if p == 0.0 {
            return None;
        }
        let features = self.discriminator.feature_len();
        let rows = self.replica_rows();
        let mask = crate::gan::dropout::keep_mask(
            stream(self.config.seed, Purpose::Dropout, self.step, pass),
            p,
            rows.start * features,
            rows.len() * features,
        );
        Some(Tensor::from_data(
            TensorData::new(mask, [rows.len(), features]),
            &self.device,
        ))
    }

    pub(super) fn tensor_2d<K: Backend<Device = B::Device>>(
        &self,
        values: Vec<f32>,
        cols: usize,
    ) -> Tensor<K, 2> {
        let rows = values.len() / cols;
        Tensor::from_data(TensorData::new(values, [rows, cols]), &self.device)
    }
}

pub(crate) fn labels_tensor<B: Backend>(labels: &[u16], device: &B::Device) -> Tensor<B, 1, Int> {
    let values: Vec<i32> = labels.iter().map(|&l| i32::from(l)).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}

/// Cumulative label weights for drawing generated images' labels.
pub(super) fn label_cdf(policy: FakeLabels, class_counts: &[usize]) -> Result<Vec<f64>> {
    let weights: Vec<f64> = match policy {
        FakeLabels::Uniform => vec![1.0; class_counts.len()],
        FakeLabels::Empirical => class_counts.iter().map(|&c| c as f64).collect(),
    };
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Err(Error::config(
            "class_counts",
            "the training set has no images",
        ));
    }
    let mut running = 0.0;
    Ok(weights
        .iter()
        .map(|w| {
            running += w / total;
            running
        })
        .collect())
}

pub(super) fn draw_label(cdf: &[f64], u: f64) -> u16 {
    let class = cdf.partition_point(|&edge| edge <= u).min(cdf.len() - 1);
    class as u16
}
