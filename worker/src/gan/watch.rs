//! Watching a run for the failure a GAN does not recover from: the discriminator rejects
//! every generated image for hundreds of steps. Measured here (2026-12-01): the standard width
//! W = 128 without DiffAugment drives the generator to all-black images within 100–200 steps
//! (mean sigmoid D(G(z)) 0.017 at step 100, 0.001 at 400); `tanh` is then saturated at −1,
//! its gradient vanishes and the generator never comes back, so every later step is wasted.
//! A healthy run's score moves around 0.2–0.6. The watch says so in the log once the median
//! score of the last [`COLLAPSE_STEPS`] steps is below [`COLLAPSED_FAKE_SCORE`] — the median,
//! because a collapsed discriminator still passes an odd image now and then (a batch of 64
//! with two images scored 1 has a mean of 0.031), with what to change; it does not stop the
//! run (a user may be watching on purpose).

use std::collections::VecDeque;

use super::train::StepLosses;

/// Median of the mean sigmoid(D(G(z))) below which the discriminator counts as rejecting every
/// generated image.
pub const COLLAPSED_FAKE_SCORE: f32 = 0.02;
/// Steps whose median the watch reads.
pub const COLLAPSE_STEPS: usize = 200;

/// What the watch saw at `step`: the median score of the steps before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Collapse {
    pub step: u64,
    pub median_fake_score: f32,
}

impl Collapse {
    /// The warning a user reads: what happened and what to change.
    pub fn advice(&self) -> String {
        format!(
            "the discriminator rejects every generated image: the median of its mean score \
             sigmoid D(G(z)) over steps {}–{} is {:.4}, below {COLLAPSED_FAKE_SCORE}; the \
             generator has most likely collapsed (all-black or constant images) and will not \
             recover. Look at the sample grids, and restart with --diff-augment \
             color,translation,cutout or a smaller --width",
            (self.step + 1).saturating_sub(COLLAPSE_STEPS as u64),
            self.step,
            self.median_fake_score,
        )
    }
}

/// The discriminator's scores of generated images over the last [`COLLAPSE_STEPS`] steps.
#[derive(Debug, Clone, Default)]
pub struct CollapseWatch {
    recent: VecDeque<f32>,
    reported: bool,
}

impl CollapseWatch {
    /// Takes step `step`'s scores; returns the collapse the first step the median of the last
    /// [`COLLAPSE_STEPS`] scores is below the line, and again only after it has been above
    /// and fallen again. A score that is not a number counts as no rejection.
    pub fn observe(&mut self, step: u64, losses: &StepLosses) -> Option<Collapse> {
        if self.recent.len() == COLLAPSE_STEPS {
            self.recent.pop_front();
        }
        let score = if losses.fake_score.is_nan() {
            f32::INFINITY
        } else {
            losses.fake_score
        };
        self.recent.push_back(score);
        if self.recent.len() < COLLAPSE_STEPS {
            return None;
        }
        let mut sorted: Vec<f32> = self.recent.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[COLLAPSE_STEPS / 2];
        if median >= COLLAPSED_FAKE_SCORE {
            self.reported = false;
            return None;
        }
        if self.reported {
            return None;
        }
        self.reported = true;
        Some(Collapse {
            step,
            median_fake_score: median,
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
            mismatched_score: None,
            class_real: None,
            class_generated: None,
            low_resolution_discriminator: None,
            low_resolution_generator: None,
        }
    }

    /// The steps of `steps` at which the watch speaks, every score `score(step)`.
    fn spoken(
        watch: &mut CollapseWatch,
        steps: std::ops::Range<u64>,
        score: impl Fn(u64) -> f32,
    ) -> Vec<u64> {
        steps
            .filter_map(|step| watch.observe(step, &scores(score(step))))
            .map(|collapse| collapse.step)
            .collect()
    }

    #[test]
    fn speaks_once_when_the_median_falls_and_again_after_a_recovery() {
        let mut watch = CollapseWatch::default();
        let window = COLLAPSE_STEPS as u64;
        assert!(spoken(&mut watch, 0..100, |_| 0.3).is_empty(), "healthy");
        // From step 100 on every score is below the line: the median of the last 200 falls
        // below it when more than half of them are, at step 100 + 100.
        let seen = spoken(&mut watch, 100..1000, |_| 0.001);
        assert_eq!(seen, vec![100 + window / 2]);
        let collapse = watch.clone().observe(1000, &scores(0.001));
        assert_eq!(collapse, None, "said once");
        // Recovered (the median back above), then collapsed again: said again.
        assert!(spoken(&mut watch, 1000..1000 + window, |_| 0.4).is_empty());
        let again = spoken(&mut watch, 1000 + window..2000, |_| 0.005);
        assert_eq!(again, vec![1000 + window + window / 2]);
    }

    #[test]
    fn an_odd_image_passed_now_and_then_does_not_hide_a_collapse() {
        // A collapsed discriminator measured here (W = 8, learning rate 0.05): mostly 0.000,
        // and every few steps 0.03–0.1 when one or two of 64 images pass.
        let mut watch = CollapseWatch::default();
        let seen = spoken(&mut watch, 0..400, |step| {
            if step % 7 == 0 { 0.05 } else { 0.0005 }
        });
        assert_eq!(seen.len(), 1, "{seen:?}");
        let mut watch = CollapseWatch::default();
        let found = (0..400)
            .find_map(|step| watch.observe(step, &scores(0.0005)))
            .expect("collapsed");
        let advice = found.advice();
        assert!(
            advice.contains("over steps 0–199") && advice.contains("--diff-augment"),
            "{advice}"
        );
    }

    #[test]
    fn a_healthy_run_dips_and_nan_do_not_count() {
        let mut watch = CollapseWatch::default();
        // Below the line half the time minus one step in every window, or not a number.
        let seen = spoken(&mut watch, 0..2000, |step| match step % 4 {
            0 => 0.001,
            1 => f32::NAN,
            _ => 0.3,
        });
        assert!(seen.is_empty(), "{seen:?}");
    }
}
