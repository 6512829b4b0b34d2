//! What one training step reports: its losses and the discriminator's scores, and whether they
//! are still numbers.

use crate::error::{Error, Result};

/// Losses and discriminator scores of one step, read back from the device.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepLosses {
    pub discriminator: f32,
    pub generator: f32,
    /// Mean sigmoid(D(real)): how real the discriminator finds real images.
    pub real_score: f32,
    /// Mean sigmoid(D(G(z))) before the generator update.
    pub fake_score: f32,
    /// With mismatched labels ([`super::GanTrainer::set_mismatched_labels`]): mean sigmoid(D)
    /// of this step's real images under wrong labels — how real the discriminator finds a real
    /// image of another class; below `real_score` when it checks the label. Not in the losses
    /// above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatched_score: Option<f32>,
    /// With an auxiliary classifier ([`crate::gan::GanConfig::auxiliary_classifier`]): its
    /// cross-entropy on this step's real images (is it learning the classes?) and on the
    /// generator's images against the classes they were drawn for (does the generator draw
    /// recognisable classes?). Neither is in the two losses above. None without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_real: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_generated: Option<f32>,
    /// With UTLO's unconditional half-resolution terms
    /// ([`crate::gan::GanConfig::unconditional_low_resolution`]): the discriminator's term
    /// (real and generated half-resolution images) and the generator's, unweighted. Neither is
    /// in the two losses above. None in the recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_resolution_discriminator: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_resolution_generator: Option<f32>,
}

impl StepLosses {
    /// The run has diverged when a loss or score the step reports is not a number: which one
    /// and its value; none when all are finite.
    pub fn non_finite(&self) -> Option<String> {
        let reported = [
            ("discriminator loss", Some(self.discriminator)),
            ("generator loss", Some(self.generator)),
            ("mean sigmoid D(real)", Some(self.real_score)),
            ("mean sigmoid D(G(z))", Some(self.fake_score)),
            ("mismatched-label score", self.mismatched_score),
            ("auxiliary classifier loss on real images", self.class_real),
            (
                "auxiliary classifier loss on generated images",
                self.class_generated,
            ),
            (
                "unconditional half-resolution discriminator loss",
                self.low_resolution_discriminator,
            ),
            (
                "unconditional half-resolution generator loss",
                self.low_resolution_generator,
            ),
        ];
        reported.into_iter().find_map(|(name, value)| {
            value
                .filter(|v| !v.is_finite())
                .map(|v| format!("the {name} is {v}"))
        })
    }

    /// [`StepLosses::non_finite`] as the error that stops a run after `step`.
    pub(crate) fn check_finite(&self, step: u64) -> Result<()> {
        match self.non_finite() {
            Some(reason) => Err(Error::Diverged { step, reason }),
            None => Ok(()),
        }
    }

    /// `class_real` and `class_generated` as the step logs print them (three decimals); none
    /// without an auxiliary classifier.
    pub fn class_losses_text(&self) -> [Option<String>; 2] {
        [self.class_real, self.class_generated].map(|loss| loss.map(|loss| format!("{loss:.3}")))
    }

    /// `low_resolution_discriminator` and `low_resolution_generator` as the step logs print
    /// them (three decimals); none in the recipe.
    pub fn low_resolution_losses_text(&self) -> [Option<String>; 2] {
        [
            self.low_resolution_discriminator,
            self.low_resolution_generator,
        ]
        .map(|loss| loss.map(|loss| format!("{loss:.3}")))
    }
}
