//! Does (d) beat the other remedies? The benchmark's question answered from the numbers, so
//! that nobody has to read it off the tables: per scored set and per other remedy, (d)'s ACSA
//! against the other's, with the rule BENCHMARK.md's evaluation issue set — ahead (or behind)
//! only by more than the seeds' standard deviation — and the paired difference over the seeds
//! both ran (the same seed draws the same initialization and epoch order for every method, so
//! the per-seed difference removes the part of the spread the methods share).

use serde::{Deserialize, Serialize};

use super::methods::Method;
use super::metrics::mean_std;
use super::run::{RunResult, methods_and_tests, runs_of};

/// Mean and sample standard deviation of one method's ACSA (a fraction) over `seeds` seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    pub mean: f64,
    pub std: f64,
    pub seeds: usize,
}

impl SeedSummary {
    fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_std(values);
        Self {
            mean,
            std,
            seeds: values.len(),
        }
    }
}

/// Where (d) stands against another remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// (d)'s mean ACSA exceeds the other's by more than the larger of the two standard
    /// deviations over seeds.
    Ahead,
    /// The means differ by no more than that.
    Level,
    /// The other's mean exceeds (d)'s by more than that.
    Behind,
    /// One of the two ran a single seed: there is no spread to measure the difference by.
    OneSeed,
}

impl Standing {
    fn text(self) -> &'static str {
        match self {
            Standing::Ahead => "**ahead**",
            Standing::Level => "level",
            Standing::Behind => "behind",
            Standing::OneSeed => "one seed: cannot tell",
        }
    }
}

/// (d) against one other remedy on one scored set, by balanced accuracy (ACSA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The scored set ("balanced", "imbalanced", "validation").
    pub test_set: String,
    /// The other remedy's key (`random-oversampling`, ...).
    pub against: String,
    pub anygan: SeedSummary,
    pub other: SeedSummary,
    /// (d) minus the other, seed by seed, over the seeds both ran; None when they share none.
    pub paired_difference: Option<SeedSummary>,
    pub standing: Standing,
}

impl Comparison {
    /// (d)'s mean minus the other's.
    pub fn difference(&self) -> f64 {
        self.anygan.mean - self.other.mean
    }
}

/// The rule: a difference of means counts only beyond the larger standard deviation over seeds.
pub fn standing(anygan: SeedSummary, other: SeedSummary) -> Standing {
    if anygan.seeds < 2 || other.seeds < 2 {
        return Standing::OneSeed;
    }
    let margin = anygan.std.max(other.std);
    let difference = anygan.mean - other.mean;
    if difference > margin {
        Standing::Ahead
    } else if -difference > margin {
        Standing::Behind
    } else {
        Standing::Level
    }
}

/// Every comparison `results` allow: per scored set (in order of appearance), (d) against each
/// other remedy that was run (not the generator's quality runs, CAS and the reference). Empty
/// without (d).
pub fn compare_with_other_remedies(results: &[RunResult]) -> Vec<Comparison> {
    let (_, test_sets) = methods_and_tests(results);
    let mut comparisons = Vec::new();
    for test in &test_sets {
        let anygan_runs = runs_of(results, Method::Anygan, test);
        if anygan_runs.is_empty() {
            continue;
        }
        let anygan_acsa: Vec<f64> = anygan_runs.iter().map(|r| r.metrics.acsa).collect();
        for other in Method::ALL.into_iter().filter(|&m| m != Method::Anygan) {
            let other_runs = runs_of(results, other, test);
            if other_runs.is_empty() {
                continue;
            }
            let other_acsa: Vec<f64> = other_runs.iter().map(|r| r.metrics.acsa).collect();
            let paired: Vec<f64> = anygan_runs
                .iter()
                .filter_map(|d| {
                    other_runs
                        .iter()
                        .find(|o| o.seed == d.seed)
                        .map(|o| d.metrics.acsa - o.metrics.acsa)
                })
                .collect();
            let anygan = SeedSummary::of(&anygan_acsa);
            let other_summary = SeedSummary::of(&other_acsa);
            comparisons.push(Comparison {
                test_set: test.clone(),
                against: other.key().to_string(),
                anygan,
                other: other_summary,
                paired_difference: (!paired.is_empty()).then(|| SeedSummary::of(&paired)),
                standing: standing(anygan, other_summary),
            });
        }
    }
    comparisons
}

/// The report's answer, as a markdown section; empty when there is nothing to compare.
pub fn verdict_report(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let percent = |s: &SeedSummary| format!("{:.2} ± {:.2}", 100.0 * s.mean, 100.0 * s.std);
    let mut out = String::from(
        "\n#### Does (d) beat the other remedies? (ACSA, %)\n\n\
         Ahead or behind only when the means differ by more than the larger of the two \
         standard deviations over seeds; level otherwise. Paired: (d) minus the other, seed by \
         seed, over the seeds both ran (mean ± std, number of seeds).\n\n\
         | set | against | (d) | other | difference | paired | standing |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for c in comparisons {
        let against = Method::parse(&c.against).map_or(c.against.as_str(), |m| m.label());
        let paired = c.paired_difference.map_or("–".to_string(), |p| {
            format!(
                "{:+.2} ± {:.2} ({})",
                100.0 * p.mean,
                100.0 * p.std,
                p.seeds
            )
        });
        out.push_str(&format!(
            "| {} | {against} | {} | {} | {:+.2} | {paired} | {} |\n",
            c.test_set,
            percent(&c.anygan),
            percent(&c.other),
            100.0 * c.difference(),
            c.standing.text(),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
