//! Watching a run for the failure a GAN does not recover from: the discriminator rejects
//! every generated image for hundreds of steps. Measured here (2026-12-01): the standard width
//! W = 128 without DiffAugment drives the generator to all-black images within 100–200 steps
//! (mean sigmoid D(G(z)) 0.017 at step 100, 0.001 at 400); `tanh` is then saturated at −1,
//! its gradient vanishes and the generator never comes back, so every later step is wasted.
//! A healthy run's score moves around 0.2–0.6. The watch says so in the log once the score
//! has stayed below [`COLLAPSED_FAKE_SCORE`] for [`COLLAPSE_STEPS`] steps in a row, with what
//! to change; it does not stop the run (a user may be watching on purpose).

use super::train::StepLosses;

/// Mean sigmoid(D(G(z))) below which the discriminator counts as rejecting every generated
/// image.
pub const COLLAPSED_FAKE_SCORE: f32 = 0.02;
/// Steps in a row below it before the watch speaks.
pub const COLLAPSE_STEPS: u64 = 200;

/// What the watch saw: the score has been below the line since `since_step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Collapse {
    pub since_step: u64,
    pub step: u64,
    pub fake_score: f32,
}

impl Collapse {
    /// The warning a user reads: what happened and what to change.
    pub fn advice(&self) -> String {
        format!(
            "the discriminator has rejected every generated image since step {} (mean \
             sigmoid D(G(z)) {:.4} at step {}, below {COLLAPSED_FAKE_SCORE} for {} steps): the \
             generator has most likely collapsed (all-black or constant images) and will not \
             recover; look at the sample grids, and restart with --diff-augment \
             color,translation,cutout or a smaller --width",
            self.since_step,
            self.fake_score,
            self.step,
            self.step + 1 - self.since_step,
        )
    }
}

/// Counts the steps in a row the discriminator has rejected every generated image.
#[derive(Debug, Clone, Default)]
pub struct CollapseWatch {
    below_since: Option<u64>,
    reported: bool,
}

impl CollapseWatch {
    /// Takes step `step`'s scores; returns the collapse once, the step the run has been
    /// collapsed for [`COLLAPSE_STEPS`], and again only after the score has recovered and
    /// fallen again. A score that is not a number counts as no rejection.
    pub fn observe(&mut self, step: u64, losses: &StepLosses) -> Option<Collapse> {
        let rejected = losses.fake_score < COLLAPSED_FAKE_SCORE; // false for NaN
        if !rejected {
            *self = Self::default();
            return None;
        }
        let since_step = *self.below_since.get_or_insert(step);
        if self.reported || step + 1 - since_step < COLLAPSE_STEPS {
            return None;
        }
        self.reported = true;
        Some(Collapse {
            since_step,
            step,
            fake_score: losses.fake_score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(fake_score: f32) -> StepLosses {
        StepLosses {
            discriminator: 0.01,
            generator: 7.0,
            real_score: 0.99,
            fake_score,
        }
    }

    #[test]
    fn speaks_once_after_the_steps_in_a_row_and_again_after_a_recovery() {
        let mut watch = CollapseWatch::default();
        let run = |watch: &mut CollapseWatch, from: u64, to: u64, score: f32| {
            (from..to)
                .filter_map(|step| watch.observe(step, &scores(score)))
                .collect::<Vec<_>>()
        };
        assert!(run(&mut watch, 1, 100, 0.3).is_empty(), "healthy");
        assert!(
            run(&mut watch, 100, 100 + COLLAPSE_STEPS - 1, 0.001).is_empty(),
            "one step short"
        );
        let seen = run(&mut watch, 100 + COLLAPSE_STEPS - 1, 1000, 0.001);
        assert_eq!(
            seen,
            vec![Collapse {
                since_step: 100,
                step: 100 + COLLAPSE_STEPS - 1,
                fake_score: 0.001
            }]
        );
        let advice = seen[0].advice();
        assert!(
            advice.contains("since step 100") && advice.contains("--diff-augment"),
            "{advice}"
        );
        // One healthy step resets the count.
        assert!(run(&mut watch, 1000, 1001, 0.4).is_empty());
        let again = run(&mut watch, 1001, 1001 + COLLAPSE_STEPS, 0.005);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].since_step, 1001);
    }

    #[test]
    fn a_dip_shorter_than_the_window_and_a_nan_do_not_count() {
        let mut watch = CollapseWatch::default();
        for step in 0..3 * COLLAPSE_STEPS {
            // Below the line every step but every 150th, when the score is not a number.
            let score = if step % 150 == 149 { f32::NAN } else { 0.001 };
            assert_eq!(watch.observe(step, &scores(score)), None, "step {step}");
        }
    }
}
