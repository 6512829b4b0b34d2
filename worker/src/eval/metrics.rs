//! Imbalance metrics of BENCHMARK.md, from a confusion matrix: per-class recall, ACSA (mean
//! per-class recall = balanced accuracy), GM (geometric mean of the recalls), GM-ovr (mean over
//! classes of √(TPR·TNR)), macro-F1; the effective-number class weights of Cui et al. (CVPR
//! 2019); mean ± standard deviation over seeds.

/// `counts[truth][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfusionMatrix {
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Tallies `(truth, predicted)` pairs over `classes` classes; labels out of range are an
    /// error naming the record.
    pub fn from_labels(truth: &[u16], predicted: &[u16], classes: usize) -> Result<Self, String> {
        if truth.len() != predicted.len() {
            return Err(format!(
                "{} true labels for {} predictions",
                truth.len(),
                predicted.len()
            ));
        }
        let mut counts = vec![vec![0u64; classes]; classes];
        for (record, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
            let (t, p) = (usize::from(t), usize::from(p));
            if t >= classes || p >= classes {
                return Err(format!(
                    "record {record}: label {t} or prediction {p} outside 0..{classes}"
                ));
            }
            counts[t][p] += 1;
        }
        Ok(Self { counts })
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn true_positives(&self, class: usize) -> u64 {
        self.counts[class][class]
    }

    fn actual(&self, class: usize) -> u64 {
        self.counts[class].iter().sum()
    }

    fn predicted(&self, class: usize) -> u64 {
        self.counts.iter().map(|row| row[class]).sum()
    }

    /// Recall (TPR) of every class; a class absent from the test set has recall 0.
    pub fn recalls(&self) -> Vec<f64> {
        (0..self.classes())
            .map(|k| ratio(self.true_positives(k), self.actual(k)))
            .collect()
    }

    /// Specificity (TNR) of every class.
    pub fn specificities(&self) -> Vec<f64> {
        let total = self.total();
        (0..self.classes())
            .map(|k| {
                let negatives = total - self.actual(k);
                let false_positives = self.predicted(k) - self.true_positives(k);
                ratio(negatives - false_positives, negatives)
            })
            .collect()
    }

    /// F1 of every class; 0 when the class is neither predicted nor recalled.
    pub fn f1s(&self) -> Vec<f64> {
        (0..self.classes())
            .map(|k| {
                let tp = self.true_positives(k);
                let denominator = self.actual(k) + self.predicted(k);
                ratio(2 * tp, denominator)
            })
            .collect()
    }

    pub fn accuracy(&self) -> f64 {
        ratio(
            (0..self.classes()).map(|k| self.true_positives(k)).sum(),
            self.total(),
        )
    }

    /// Every metric at once.
    pub fn metrics(&self) -> Metrics {
        let recalls = self.recalls();
        let specificities = self.specificities();
        let f1s = self.f1s();
        let classes = self.classes().max(1) as f64;
        Metrics {
            acsa: recalls.iter().sum::<f64>() / classes,
            gm: geometric_mean(&recalls),
            gm_ovr: recalls
                .iter()
                .zip(&specificities)
                .map(|(r, s)| (r * s).sqrt())
                .sum::<f64>()
                / classes,
            macro_f1: f1s.iter().sum::<f64>() / classes,
            accuracy: self.accuracy(),
            recalls,
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Geometric mean; 0 as soon as one value is 0 (a class never recognised sinks GM).
pub fn geometric_mean(values: &[f64]) -> f64 {
    if values.is_empty() || values.iter().any(|v| *v <= 0.0) {
        return 0.0;
    }
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// The metrics of one classifier on one test set, as fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub acsa: f64,
    pub gm: f64,
    pub gm_ovr: f64,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub recalls: Vec<f64>,
}

/// Class weights by effective number of samples: w_k ∝ (1 − β) / (1 − β^{n_k}), scaled so
/// they sum to the number of classes (Cui et al., CVPR 2019). A class with no samples gets 0.
pub fn effective_number_weights(counts: &[usize], beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                (1.0 - beta) / (1.0 - beta.powf(n as f64))
            }
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    if sum == 0.0 {
        return raw;
    }
    raw.iter().map(|w| w * counts.len() as f64 / sum).collect()
}

/// Mean and sample standard deviation (n − 1); the deviation of one value is 0.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() == 1 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// 3 classes, 10 test images:
    ///   truth 0 (4 images): predicted 0,0,0,1
    ///   truth 1 (4 images): predicted 1,1,0,0
    ///   truth 2 (2 images): predicted 1,1        ← class 2 never recognised
    fn example() -> ConfusionMatrix {
        let truth = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2];
        let predicted = [0, 0, 0, 1, 1, 1, 0, 0, 1, 1];
        ConfusionMatrix::from_labels(&truth, &predicted, 3).unwrap()
    }

    #[test]
    fn confusion_counts() {
        assert_eq!(
            example().counts,
            vec![vec![3, 1, 0], vec![2, 2, 0], vec![0, 2, 0]]
        );
        assert!(
            ConfusionMatrix::from_labels(&[0, 3], &[0, 0], 3)
                .unwrap_err()
                .contains("record 1")
        );
        assert!(ConfusionMatrix::from_labels(&[0], &[0, 1], 3).is_err());
    }

    #[test]
    fn metrics_by_hand() {
        let m = example().metrics();
        // Recalls: 3/4, 2/4, 0/2.
        assert_eq!(m.recalls, vec![0.75, 0.5, 0.0]);
        assert!(close(m.acsa, (0.75 + 0.5 + 0.0) / 3.0));
        assert_eq!(m.gm, 0.0, "a class with zero recall sinks GM");
        // TNR: class 0: negatives 6, FP 2 → 4/6; class 1: negatives 6, FP 3 → 3/6;
        // class 2: negatives 8, FP 0 → 1.
        let gm_ovr = ((0.75f64 * 4.0 / 6.0).sqrt() + (0.5f64 * 0.5).sqrt() + 0.0) / 3.0;
        assert!(close(m.gm_ovr, gm_ovr), "{} vs {gm_ovr}", m.gm_ovr);
        // F1 = 2TP / (actual + predicted): class 0: 6/(4+5); class 1: 4/(4+5); class 2: 0.
        let macro_f1 = (6.0 / 9.0 + 4.0 / 9.0 + 0.0) / 3.0;
        assert!(close(m.macro_f1, macro_f1));
        assert!(close(m.accuracy, 0.5));
    }

    #[test]
    fn perfect_and_geometric() {
        let perfect = ConfusionMatrix::from_labels(&[0, 1, 2], &[0, 1, 2], 3)
            .unwrap()
            .metrics();
        assert_eq!(
            (perfect.acsa, perfect.gm, perfect.gm_ovr, perfect.macro_f1),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert!(close(geometric_mean(&[0.25, 1.0]), 0.5));
    }

    #[test]
    fn effective_number_weights_by_hand() {
        // β = 0.9: raw weights 0.1/(1-0.9^n): n=1 → 1, n=2 → 0.1/0.19.
        let weights = effective_number_weights(&[1, 2], 0.9);
        let raw = [1.0, 0.1 / 0.19];
        let sum: f64 = raw.iter().sum();
        assert!(close(weights[0], 2.0 * raw[0] / sum));
        assert!(close(weights[1], 2.0 * raw[1] / sum));
        assert!(close(weights.iter().sum::<f64>(), 2.0));
        // BENCHMARK's long tail with β = 0.9999: rarer classes weigh more, 40 vs 4000 ≈ 63×.
        let long_tail =
            effective_number_weights(&[4000, 2000, 1000, 750, 500, 350, 200, 100, 60, 40], 0.9999);
        assert!(long_tail.windows(2).all(|w| w[0] < w[1]));
        let ratio = long_tail[9] / long_tail[0];
        let expected = (1.0 - 0.9999f64.powi(4000)) / (1.0 - 0.9999f64.powi(40));
        assert!(close(ratio, expected), "{ratio} vs {expected}");
        assert_eq!(effective_number_weights(&[0, 5], 0.9)[0], 0.0);
    }

    #[test]
    fn mean_and_sample_deviation() {
        let (mean, std) = mean_std(&[1.0, 2.0, 3.0]);
        assert!(close(mean, 2.0) && close(std, 1.0));
        assert_eq!(mean_std(&[0.7]), (0.7, 0.0));
    }
}
