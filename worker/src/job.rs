//! Turning a coordinator's [`JobSpec`] into this worker's model and training configuration.

use anygan_proto::job::JobSpec;

use crate::gan::{AdversarialLoss, FakeLabels, GanConfig, TrainConfig};

/// The cDCGAN architecture a job asks for, before the data tells the class count.
pub fn gan_config(spec: &JobSpec, num_classes: usize) -> GanConfig {
    GanConfig::new(num_classes)
        .with_width(spec.model.width)
        .with_image_size(spec.model.image_size)
        .with_channels(spec.model.channels)
        .with_latent_dim(spec.model.latent_dim)
        .with_dropout(spec.model.dropout)
        .with_projection(spec.model.projection_discriminator.then_some(true))
        .with_auxiliary_classifier(spec.model.auxiliary_classifier)
        .with_spectral_norm(spec.model.spectral_norm.then_some(true))
        .with_unconditional_low_resolution(spec.model.unconditional_low_resolution)
}

/// The training arithmetic of a job (the global batch; replicas split it).
pub fn train_config(spec: &JobSpec, num_classes: usize) -> TrainConfig {
    TrainConfig::new(gan_config(spec, num_classes))
        .with_batch_size(spec.global_batch)
        .with_learning_rate(spec.learning_rate)
        .with_discriminator_learning_rate(spec.discriminator_learning_rate)
        .with_seed(spec.seed)
        .with_real_shift(spec.real_shift)
        .with_adversarial_loss(spec.hinge_loss.then_some(AdversarialLoss::Hinge))
        .with_fake_labels(if spec.fake_labels_uniform() {
            FakeLabels::Uniform
        } else {
            FakeLabels::Empirical
        })
}
