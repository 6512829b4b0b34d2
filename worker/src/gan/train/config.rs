//! What decides a training run's arithmetic: the model, the batch, the optimizers' settings,
//! the seed, and how generated labels are drawn and the networks' losses computed.

use burn::optim::AdamConfig;
use burn::prelude::*;

use crate::gan::model::GanConfig;

/// How the labels of generated images are drawn during training.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum FakeLabels {
    /// With the class frequencies of the training set, so the discriminator cannot learn that a
    /// rare label means "generated".
    Empirical,
    /// Uniformly over classes.
    Uniform,
}

/// What the two networks are trained to minimize.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum AdversarialLoss {
    /// The recipe: binary cross-entropy for the discriminator, −log D(G(z)) for the generator
    /// (Goodfellow et al.'s non-saturating form).
    NonSaturating,
    /// The hinge loss of SAGAN and BigGAN: max(0, 1 − D(x)) + max(0, 1 + D(G(z))) for the
    /// discriminator, −D(G(z)) for the generator. A discriminator sure of an image by a
    /// margin of 1 stops learning from it — on a rare class it cannot keep sharpening on the
    /// few real images it has.
    Hinge,
}

/// Everything that decides a training run's arithmetic.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    pub gan: GanConfig,
    /// Images per step (the global batch).
    #[config(default = 64)]
    pub batch_size: usize,
    /// Adam's rate for the generator, and for the discriminator unless
    /// `discriminator_learning_rate` is set.
    #[config(default = 2e-4)]
    pub learning_rate: f64,
    /// The discriminator's own rate (two time-scale update rule, Heusel et al. 2017): none
    /// means `learning_rate`, as the recipe has it. Snapshots written before it existed have
    /// none.
    pub discriminator_learning_rate: Option<f64>,
    #[config(default = 0.5)]
    pub beta1: f32,
    #[config(default = 0.999)]
    pub beta2: f32,
    /// PyTorch's Adam default, so runs compare with the reference implementation.
    #[config(default = 1e-8)]
    pub epsilon: f32,
    #[config(default = 0)]
    pub seed: u64,
    #[config(default = "FakeLabels::Empirical")]
    pub fake_labels: FakeLabels,
    /// Shift every real image the discriminator sees by up to this many pixels each way (see
    /// `super::real_shift`); none: the images as they are. Snapshots written before it existed
    /// have none.
    pub real_shift: Option<usize>,
    /// None: [`AdversarialLoss::NonSaturating`], the recipe (and what snapshots written before
    /// the option existed read as). Ask [`TrainConfig::loss`].
    pub adversarial_loss: Option<AdversarialLoss>,
}

impl TrainConfig {
    /// The adversarial loss both networks train with.
    pub fn loss(&self) -> AdversarialLoss {
        self.adversarial_loss
            .unwrap_or(AdversarialLoss::NonSaturating)
    }

    /// The discriminator's Adam rate: its own, or the shared one.
    pub fn discriminator_rate(&self) -> f64 {
        self.discriminator_learning_rate
            .unwrap_or(self.learning_rate)
    }

    pub(super) fn adam(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta1)
            .with_beta_2(self.beta2)
            .with_epsilon(self.epsilon)
    }
}
