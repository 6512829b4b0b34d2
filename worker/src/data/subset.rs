//! Per-class subsets: the long-tailed benchmark sets of BENCHMARK.md and user-given counts.

use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// Long-tailed training set, imbalance ratio 100 (GAMO / DeepSMOTE protocol).
pub const LONG_TAIL_TRAIN_COUNTS: [usize; 10] = anygan_proto::job::LONG_TAIL_TRAIN_COUNTS;
/// Imbalanced test subset with the same profile.
pub const LONG_TAIL_TEST_COUNTS: [usize; 10] = [1000, 500, 250, 187, 125, 87, 50, 25, 15, 10];
/// Fashion-MNIST class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

/// Picks `counts[k]` records of every class k without replacement, deterministically from `seed`.
/// Returns record indices in ascending order.
pub fn per_class_subset(labels: &[u16], counts: &[usize], seed: u64) -> Result<Vec<usize>> {
    let num_classes = counts.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (index, &label) in labels.iter().enumerate() {
        let class = usize::from(label);
        let Some(members) = by_class.get_mut(class) else {
            return Err(Error::config(
                "class_counts",
                format!(
                    "record {index} has label {label} but only {num_classes} counts were given"
                ),
            ));
        };
        members.push(index);
    }
    let mut chosen = Vec::with_capacity(counts.iter().sum());
    for (class, (members, &want)) in by_class.iter_mut().zip(counts).enumerate() {
        if members.len() < want {
            return Err(Error::config(
                "class_counts",
                format!(
                    "class {class} has {} records, {want} were asked for",
                    members.len()
                ),
            ));
        }
        let mut rng = stream(seed, Purpose::ClassSubset, class as u64, 0);
        let (picked, _) = members.partial_shuffle(&mut rng, want);
        chosen.extend_from_slice(picked);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced_labels(classes: u16, per_class: usize) -> Vec<u16> {
        (0..per_class).flat_map(|_| 0..classes).collect()
    }

    #[test]
    fn exact_long_tail_counts() {
        let labels = balanced_labels(10, 6000);
        let chosen = per_class_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 42).expect("enough data");
        let mut counts = [0usize; 10];
        for &i in &chosen {
            counts[usize::from(labels[i])] += 1;
        }
        assert_eq!(counts, LONG_TAIL_TRAIN_COUNTS);
        assert_eq!(chosen.len(), 9000);
        let mut unique = chosen.clone();
        unique.dedup();
        assert_eq!(unique.len(), chosen.len(), "drawn without replacement");
    }

    #[test]
    fn same_seed_same_subset_other_seed_differs() {
        let labels = balanced_labels(10, 1000);
        let a = per_class_subset(&labels, &LONG_TAIL_TEST_COUNTS, 7).expect("subset");
        let b = per_class_subset(&labels, &LONG_TAIL_TEST_COUNTS, 7).expect("subset");
        let c = per_class_subset(&labels, &LONG_TAIL_TEST_COUNTS, 8).expect("subset");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn refuses_impossible_counts() {
        let labels = balanced_labels(2, 3);
        let err = per_class_subset(&labels, &[3, 4], 0).expect_err("class 1 has 3");
        assert!(
            err.to_string().contains("class 1 has 3 records, 4"),
            "{err}"
        );
        let err = per_class_subset(&labels, &[1], 0).expect_err("label 1 without count");
        assert!(err.to_string().contains("label 1"), "{err}");
    }
}
