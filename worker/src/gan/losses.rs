//! The cDCGAN's loss terms, apart from the training step that combines them.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax};

/// Mean binary cross-entropy of `logits` against an all-1 or all-0 target, in the stable
/// log-sigmoid form: -log σ(x) for target 1, -log σ(-x) for target 0.
pub(crate) fn bce_with_logits<B: Backend>(logits: Tensor<B, 2>, target_real: bool) -> Tensor<B, 1> {
    let signed = if target_real { logits } else { logits.neg() };
    log_sigmoid(signed).mean().neg()
}

/// Mean cross-entropy of class `logits` `[rows, classes]` against `labels` (one per row). The
/// one-hot targets are built on the host, where the labels are.
pub(crate) fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: &[u16]) -> Tensor<B, 1> {
    let [rows, classes] = logits.dims();
    let mut one_hot = vec![0f32; rows * classes];
    for (row, &label) in labels.iter().enumerate().take(rows) {
        one_hot[row * classes + usize::from(label)] = 1.0;
    }
    let targets = Tensor::from_data(TensorData::new(one_hot, [rows, classes]), &logits.device());
    (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
}

/// Keeps the mode-seeking term finite for a pair of identical images.
pub(crate) const MODE_SEEKING_EPSILON: f64 = 1e-5;

/// The mode-seeking term over consecutive pairs of rows (same label, different noise): the
/// mean over pairs of 1 / (mean|G(z₁) − G(z₂)| / mean|z₁ − z₂| + ε). A mean over pairs, so
/// replicas' gradients average to the global batch's.
pub(crate) fn mode_seeking_term<B: Backend>(
    images: Tensor<B, 4>,
    noise: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [rows, channels, height, width] = images.dims();
    let [_, latent] = noise.dims();
    let pairs = rows / 2;
    let pixels = channels * height * width;
    let pair_distance = |values: Tensor<B, 2>, len: usize| {
        // [2·pairs, len] → [pairs, 2, len]: row 2i beside row 2i + 1
        let paired = values.reshape([pairs, 2, len]);
        let first = paired.clone().narrow(1, 0, 1);
        let second = paired.narrow(1, 1, 1);
        // [pairs, 1, len] → [pairs, 1, 1] → [pairs]
        (first - second).abs().mean_dim(2).reshape([pairs])
    };
    let image_distance = pair_distance(images.reshape([rows, pixels]), pixels);
    let noise_distance = pair_distance(noise, latent);
    (image_distance / noise_distance)
        .add_scalar(MODE_SEEKING_EPSILON)
        .recip()
        .mean()
}
