//! The cDCGAN's loss terms, apart from the training step that combines them.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, relu};

use super::train::AdversarialLoss;

/// Mean binary cross-entropy of `logits` against an all-1 or all-0 target, in the stable
/// log-sigmoid form: -log σ(x) for target 1, -log σ(-x) for target 0.
pub(crate) fn bce_with_logits<B: Backend>(logits: Tensor<B, 2>, target_real: bool) -> Tensor<B, 1> {
    let signed = if target_real { logits } else { logits.neg() };
    log_sigmoid(signed).mean().neg()
}

/// The discriminator's term for `logits` of images it should call real (`target_real`) or
/// generated: binary cross-entropy, or the hinge max(0, 1 ∓ x) averaged.
pub(crate) fn discriminator_term<B: Backend>(
    loss: AdversarialLoss,
    logits: Tensor<B, 2>,
    target_real: bool,
) -> Tensor<B, 1> {
    match loss {
        AdversarialLoss::NonSaturating => bce_with_logits(logits, target_real),
        AdversarialLoss::Hinge => {
            let signed = if target_real { logits } else { logits.neg() };
            relu(signed.neg().add_scalar(1.0)).mean()
        }
    }
}

/// The generator's term for the discriminator's `logits` on its images: the non-saturating
/// −log σ(x), or the hinge loss's −x, both averaged.
pub(crate) fn generator_term<B: Backend>(
    loss: AdversarialLoss,
    logits: Tensor<B, 2>,
) -> Tensor<B, 1> {
    match loss {
        AdversarialLoss::NonSaturating => bce_with_logits(logits, true),
        AdversarialLoss::Hinge => logits.mean().neg(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ComputeBackend as B;

    fn logits(values: &[f32]) -> Tensor<B, 2> {
        Tensor::<B, 1>::from_floats(values, &Default::default()).reshape([values.len(), 1])
    }

    #[test]
    fn the_hinge_terms_by_hand() {
        let hinge = AdversarialLoss::Hinge;
        let scores = [2.0, -0.5, 0.25];
        // Real: max(0, 1 − x) = 0, 1.5, 0.75.
        let real = discriminator_term(hinge, logits(&scores), true).into_scalar();
        assert!((real - 0.75).abs() < 1e-6, "{real}");
        // Generated: max(0, 1 + x) = 3, 0.5, 1.25.
        let generated = discriminator_term(hinge, logits(&scores), false).into_scalar();
        assert!((generated - 1.5833334).abs() < 1e-6, "{generated}");
        // The generator: −mean x.
        let generator = generator_term(hinge, logits(&scores)).into_scalar();
        assert!((generator + 0.5833333).abs() < 1e-6, "{generator}");
    }

    #[test]
    fn the_recipes_terms_are_binary_cross_entropy() {
        let recipe = AdversarialLoss::NonSaturating;
        let scores = [2.0f32, -0.5];
        let softplus = |x: f32| (1.0 + x.exp()).ln();
        // −log σ(x) = softplus(−x); −log σ(−x) = softplus(x).
        let real = discriminator_term(recipe, logits(&scores), true).into_scalar();
        let expected = (softplus(-2.0) + softplus(0.5)) / 2.0;
        assert!((real - expected).abs() < 1e-6, "{real} against {expected}");
        let generated = discriminator_term(recipe, logits(&scores), false).into_scalar();
        let expected = (softplus(2.0) + softplus(-0.5)) / 2.0;
        assert!(
            (generated - expected).abs() < 1e-6,
            "{generated} against {expected}"
        );
        let generator = generator_term(recipe, logits(&scores)).into_scalar();
        assert!(
            (generator - real).abs() < 1e-6,
            "the generator's target is 'real'"
        );
    }
}
