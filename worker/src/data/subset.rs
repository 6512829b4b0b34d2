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
    draw_per_class(
        &mut by_class,
        |class| counts[class],
        (seed, Purpose::ClassSubset),
        "class_counts",
        "records",
    )
}

/// A balanced held-out set: `per_class` records of every class drawn from those that
/// `per_class_subset(labels, used_counts, seed)` leaves out, so it shares no record with the
/// training subset. Choosing settings on it (a generator checkpoint, a real share) keeps the
/// test sets unseen. Returns record indices in ascending order.
pub fn held_out_subset(
    labels: &[u16],
    used_counts: &[usize],
    per_class: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    let used = per_class_subset(labels, used_counts, seed)?;
    validation_draw(labels, &used, used_counts.len(), per_class, seed)
}

/// The validation draw of [`held_out_subset`] beside the already drawn training records `used`
/// (ascending).
fn validation_draw(
    labels: &[u16],
    used: &[usize],
    num_classes: usize,
    per_class: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    draw_per_class(
        &mut members_outside(labels, num_classes, used),
        |_| per_class,
        (seed, Purpose::ValidationSubset),
        "validation_per_class",
        "records outside the training subset",
    )
}

/// Every class's records outside `taken` (ascending), in ascending order. Labels without a
/// class have been refused by `per_class_subset` before.
fn members_outside(labels: &[u16], num_classes: usize, taken: &[usize]) -> Vec<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (index, &label) in labels.iter().enumerate() {
        if taken.binary_search(&index).is_err() {
            by_class[usize::from(label)].push(index);
        }
    }
    by_class
}

/// Stand-ins for generated images: `per_class[k]` records of every class k drawn from those
/// that neither the training subset (`per_class_subset(labels, used_counts, seed)`) nor the
/// validation set (`held_out_subset(labels, used_counts, validation_per_class, seed)`, none
/// when 0) holds — real images no classifier of the evaluation trains or is scored on
/// otherwise. Returns record indices in ascending order.
pub fn stand_in_subset(
    labels: &[u16],
    used_counts: &[usize],
    validation_per_class: usize,
    per_class: &[usize],
    seed: u64,
) -> Result<Vec<usize>> {
    if per_class.len() != used_counts.len() {
        return Err(Error::config(
            "stand_ins",
            format!(
                "{} per-class counts were given for {} classes",
                per_class.len(),
                used_counts.len()
            ),
        ));
    }
    let mut taken = per_class_subset(labels, used_counts, seed)?;
    if validation_per_class > 0 {
        let validation = validation_draw(
            labels,
            &taken,
            used_counts.len(),
            validation_per_class,
            seed,
        )?;
        taken.extend(validation);
        taken.sort_unstable();
    }
    let mut by_class = members_outside(labels, used_counts.len(), &taken);
    draw_per_class(
        &mut by_class,
        |class| per_class[class],
        (seed, Purpose::StandInSubset),
        "stand_ins",
        "records outside the training subset and the validation set",
    )
}

/// Draws `want(k)` of class k's `members` without replacement, from the stream keyed by
/// `(seed, purpose)` and the class; record indices in ascending order. A class with too few
/// is refused, naming `field` and what its `pool` of members is.
fn draw_per_class(
    by_class: &mut [Vec<usize>],
    want: impl Fn(usize) -> usize,
    (seed, purpose): (u64, Purpose),
    field: &'static str,
    pool: &str,
) -> Result<Vec<usize>> {
    let mut chosen = Vec::new();
    for (class, members) in by_class.iter_mut().enumerate() {
        let want = want(class);
        if members.len() < want {
            return Err(Error::config(
                field,
                format!(
                    "class {class} has {} {pool}, {want} were asked for",
                    members.len()
                ),
            ));
        }
        let mut rng = stream(seed, purpose, class as u64, 0);
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

    #[test]
    fn held_out_is_balanced_and_disjoint_from_the_training_subset() {
        let labels = balanced_labels(10, 6000);
        let train = per_class_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 3).expect("train");
        let held = held_out_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 1000, 3).expect("held out");
        let mut counts = [0usize; 10];
        for &i in &held {
            counts[usize::from(labels[i])] += 1;
        }
        assert_eq!(counts, [1000; 10]);
        let train: std::collections::HashSet<usize> = train.into_iter().collect();
        assert!(held.iter().all(|i| !train.contains(i)), "shares a record");
        assert!(
            held.windows(2).all(|w| w[0] < w[1]),
            "ascending, no repeats"
        );
        let again = held_out_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 1000, 3).expect("again");
        assert_eq!(held, again);
    }

    #[test]
    fn held_out_refuses_a_class_without_enough_left() {
        // Class 0 keeps 4000 of its 4500 for training: 500 left, 600 asked for.
        let labels = balanced_labels(10, 4500);
        let err = held_out_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 600, 0).expect_err("too few");
        assert!(
            err.to_string().contains("class 0 has 500 records outside"),
            "{err}"
        );
    }

    #[test]
    fn stand_ins_share_no_record_with_the_training_or_validation_sets() {
        let labels = balanced_labels(10, 6000);
        let train = per_class_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 3).expect("train");
        let held = held_out_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 1000, 3).expect("held out");
        // Class 0 has exactly 6000 − 4000 − 1000 left; every other class more.
        let wanted = [1000, 7, 0, 3, 3, 3, 3, 3, 3, 3960];
        let stand_ins =
            stand_in_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 1000, &wanted, 3).expect("stand-ins");
        let mut counts = [0usize; 10];
        for &i in &stand_ins {
            counts[usize::from(labels[i])] += 1;
        }
        assert_eq!(counts, wanted);
        let taken: std::collections::HashSet<usize> = train.into_iter().chain(held).collect();
        assert!(
            stand_ins.iter().all(|i| !taken.contains(i)),
            "shares a record"
        );
        assert!(
            stand_ins.windows(2).all(|w| w[0] < w[1]),
            "ascending, no repeats"
        );
        let without_validation = stand_in_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 0, &wanted, 3)
            .expect("no validation");
        assert_ne!(
            without_validation, stand_ins,
            "the validation set is left out"
        );
    }

    #[test]
    fn stand_ins_refuse_a_class_the_other_sets_have_used_up() {
        let labels = balanced_labels(10, 6000);
        let mut wanted = [0; 10];
        wanted[0] = 1001;
        let err = stand_in_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 1000, &wanted, 0)
            .expect_err("class 0 has 1000 left");
        let message = err.to_string();
        assert!(message.contains("stand_ins"), "{message}");
        assert!(
            message.contains("class 0 has 1000 records outside the training subset and the validation set, 1001 were asked for"),
            "{message}"
        );
        let err = stand_in_subset(&labels, &LONG_TAIL_TRAIN_COUNTS, 0, &[1; 9], 0)
            .expect_err("one count short");
        assert!(
            err.to_string()
                .contains("9 per-class counts were given for 10 classes"),
            "{err}"
        );
    }
}
