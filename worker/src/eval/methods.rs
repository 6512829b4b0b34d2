//! The rebalancing methods compared by the evaluation, each turning the long-tailed training
//! set into what the classifier trains on: (a) as it is, (b) random oversampling, (c) class
//! weights by effective number, (d) plus anygan's generated images, (e) pixel-space SMOTE.

use rand::Rng;

use super::metrics::effective_number_weights;
use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// β of the effective-number weights (BENCHMARK.md).
pub const EFFECTIVE_NUMBER_BETA: f64 = 0.9999;
/// Neighbours SMOTE interpolates towards (Chawla et al.'s default).
pub const SMOTE_NEIGHBOURS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    LongTail,
    RandomOversampling,
    ClassWeighted,
    Anygan,
    Smote,
    /// CAS: the classifier trained on anygan's generated images only.
    Cas,
    /// Reference: the classifier trained on the full real training split (6,000 per class);
    /// it also labels the generated images (the per-class fidelity of the generator).
    FullReal,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::LongTail,
        Method::RandomOversampling,
        Method::ClassWeighted,
        Method::Anygan,
        Method::Smote,
    ];

    /// The method's name on command lines and in file names (`random-oversampling`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Method::LongTail => "long-tail",
            Method::RandomOversampling => "random-oversampling",
            Method::ClassWeighted => "class-weighted",
            Method::Anygan => "anygan",
            Method::Smote => "smote",
            Method::Cas => "cas",
            Method::FullReal => "full-real",
        }
    }

    /// Measurements of the generator itself rather than remedies to compare.
    pub const QUALITY: [Method; 2] = [Method::Cas, Method::FullReal];

    /// The method named `key`.
    pub fn parse(key: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .chain(Method::QUALITY)
            .find(|m| m.key() == key)
    }

    pub fn label(self) -> &'static str {
        match self {
            Method::LongTail => "(a) long-tailed as is",
            Method::RandomOversampling => "(b) random oversampling",
            Method::ClassWeighted => "(c) class-weighted CE (β=0.9999)",
            Method::Anygan => "(d) anygan cDCGAN",
            Method::Smote => "(e) pixel SMOTE",
            Method::Cas => "(CAS) generated images only",
            Method::FullReal => "(ref) full real training split",
        }
    }
}

/// What the classifier trains on for one method.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub data: ImageDataset,
    pub class_weights: Option<Vec<f32>>,
}

/// The data an evaluation draws its training sets from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub long_tail: &'a ImageDataset,
    /// Originals + generated, as the generation run wrote them: (d) and CAS.
    pub rebalanced: Option<&'a ImageDataset>,
    /// The whole real training split: the reference classifier.
    pub full_real: Option<&'a ImageDataset>,
    /// The generated images (d)'s judge kept; when given, (d) draws on these instead of all.
    pub judged: Option<&'a ImageDataset>,
}

impl Sources<'_> {
    /// The generated images alone (the rebalanced set minus the originals).
    pub fn generated(&self) -> Result<ImageDataset> {
        let rebalanced = self.rebalanced.ok_or_else(|| {
            Error::config(
                "generation",
                "the generated images need anygan's rebalanced set",
            )
        })?;
        generated_only(rebalanced, &self.long_tail.class_counts())
    }
}

/// How the rebalancing methods fill the classes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balance {
    /// Per-class count oversampling, SMOTE and (d) reach (the largest class's by default).
    pub target: usize,
    /// (d): the share of each class's `target` that is real images, the rare classes' originals
    /// repeated to reach it; generated images fill the rest. 0 is the long-tailed set plus
    /// every generated image as the generation run wrote it.
    pub real_share: f64,
    /// (d): every class, those at or above the target included, is `real_share` real and the
    /// rest generated; a class with more originals than its real part uses a seeded random
    /// subset of them. Whether an image is generated then says nothing about its class.
    pub same_mix: bool,
}

/// Builds the training set of `method`.
pub fn training_set(
    method: Method,
    sources: Sources<'_>,
    balance: Balance,
    seed: u64,
) -> Result<TrainingSet> {
    let long_tail = sources.long_tail;
    let target = balance.target;
    let data = match method {
        Method::LongTail | Method::ClassWeighted => long_tail.clone(),
        Method::RandomOversampling => random_oversample(long_tail, target, seed)?,
        Method::Anygan => {
            let all;
            let generated = match sources.judged {
                Some(kept) => kept,
                None => {
                    all = sources.generated()?;
                    &all
                }
            };
            mix_generated(long_tail, generated, balance, seed)?
        }
        Method::Smote => smote(long_tail, target, SMOTE_NEIGHBOURS, seed)?,
        Method::Cas => sources.generated()?,
        Method::FullReal => sources
            .full_real
            .ok_or_else(|| {
                Error::config(
                    "evaluation",
                    "the reference needs the full real training split",
                )
            })?
            .clone(),
    };
    let class_weights = (method == Method::ClassWeighted).then(|| {
        effective_number_weights(&long_tail.class_counts(), EFFECTIVE_NUMBER_BETA)
            .into_iter()
            .map(|w| w as f32)
            .collect()
    });
    Ok(TrainingSet {
        data,
        class_weights,
    })
}

/// The records of `rebalanced` past the first `originals[k]` of each class k: the generation
/// run writes every class's originals first, then its generated images.
pub fn generated_only(rebalanced: &ImageDataset, originals: &[usize]) -> Result<ImageDataset> {
    let mut seen = vec![0usize; rebalanced.num_classes().max(originals.len())];
    let mut chosen = Vec::new();
    for (index, &label) in rebalanced.labels().iter().enumerate() {
        let class = usize::from(label);
        if seen[class] >= originals.get(class).copied().unwrap_or(0) {
            chosen.push(index);
        }
        seen[class] += 1;
    }
    if let Some(class) = (0..originals.len()).find(|&k| seen[k] < originals[k]) {
        return Err(Error::config(
            "generation",
            format!(
                "the rebalanced set holds {} images of class {class}, fewer than its {} originals",
                seen[class], originals[class]
            ),
        ));
    }
    rebalanced.select(&chosen)
}

fn indices_by_class(data: &ImageDataset) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); data.num_classes()];
    for (i, &label) in data.labels().iter().enumerate() {
        by_class[usize::from(label)].push(i);
    }
    by_class
}

/// Every original plus copies drawn with replacement until each class holds `target`.
pub fn random_oversample(data: &ImageDataset, target: usize, seed: u64) -> Result<ImageDataset> {
    let mut chosen: Vec<usize> = (0..data.len()).collect();
    for (class, members) in indices_by_class(data).iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        let mut rng = stream(seed, Purpose::Oversampling, class as u64, 0);
        for _ in members.len()..target {
            chosen.push(members[rng.random_range(0..members.len())]);
        }
    }
    data.select(&chosen)
}

/// Method (d)'s training set: every class below the target keeps its originals, repeats them
/// (drawn with replacement) until real images make up the real share of the target, and takes
/// generated images of its class (a seeded random choice) for the rest; where too few were
/// generated, more real copies fill the gap. Classes at or above the target stay as they are.
///
/// Why real copies at all: with a real share of 0 a class of 40 originals is 99 % generated, and
/// the classifier learns what the generator draws rather than what the test set holds wherever
/// the two differ (shirts, coats); the copies keep the real images as present as random
/// oversampling does while the generated ones add the variety copies cannot.
pub fn mix_generated(
    long_tail: &ImageDataset,
    generated: &ImageDataset,
    balance: Balance,
    seed: u64,
) -> Result<ImageDataset> {
    let Balance {
        target,
        real_share,
        same_mix,
    } = balance;
    if !(0.0..=1.0).contains(&real_share) {
        return Err(Error::config(
            "real_share",
            format!("{real_share} is not a share between 0 and 1"),
        ));
    }
    let real_by_class = indices_by_class(long_tail);
    let generated_by_class = indices_by_class(generated);
    // Originals stay in the set's order, copies follow, class after class.
    let mut original_kept = vec![true; long_tail.len()];
    let mut copies = Vec::new();
    let mut generated_chosen = Vec::new();
    for (class, members) in real_by_class.iter().enumerate() {
        if members.is_empty() || members.len() >= target && !same_mix {
            continue;
        }
        let mut rng = stream(seed, Purpose::Oversampling, class as u64, 2);
        let real_part = ((real_share * target as f64).round() as usize).min(target);
        // Without the same mix a class keeps every original, however many that is.
        let real_floor = if same_mix {
            real_part
        } else {
            real_part.max(members.len())
        };
        let mut candidates = generated_by_class.get(class).cloned().unwrap_or_default();
        let take = candidates.len().min(target - real_floor);
        partial_shuffle(&mut candidates, take, &mut rng);
        generated_chosen.extend_from_slice(&candidates[..take]);
        let real_wanted = target - take;
        if members.len() > real_wanted {
            // Only with the same mix: a uniform subset of the originals stays.
            let mut dropped = members.clone();
            partial_shuffle(&mut dropped, members.len() - real_wanted, &mut rng);
            for &i in &dropped[..members.len() - real_wanted] {
                original_kept[i] = false;
            }
        }
        for _ in members.len()..real_wanted {
            copies.push(members[rng.random_range(0..members.len())]);
        }
    }
    let real_chosen: Vec<usize> = (0..long_tail.len())
        .filter(|&i| original_kept[i])
        .chain(copies)
        .collect();
    let mut mixed = long_tail.select(&real_chosen)?;
    mixed.extend(&generated.select(&generated_chosen)?)?;
    Ok(mixed)
}

/// Moves a uniform random choice of `take` elements to the front (partial Fisher–Yates).
fn partial_shuffle(items: &mut [usize], take: usize, rng: &mut impl rand::Rng) {
    for i in 0..take.min(items.len()) {
        let j = rng.random_range(i..items.len());
        items.swap(i, j);
    }
}

/// Pixel-space SMOTE: each class gets `target - n` synthetic images, each a random point on the
/// segment between a random member and one of its `k` nearest same-class neighbours
/// (Euclidean distance on pixels). A class with one image gets copies of it.
pub fn smote(data: &ImageDataset, target: usize, k: usize, seed: u64) -> Result<ImageDataset> {
    let size = data.shape().pixel_count();
    let mut pixels: Vec<u8> = (0..data.len())
        .flat_map(|i| data.image(i).iter().copied())
        .collect();
    let mut labels = data.labels().to_vec();
    for (class, members) in indices_by_class(data).iter().enumerate() {
        if members.is_empty() || members.len() >= target {
            continue;
        }
        let neighbours = nearest_neighbours(data, members, k);
        let mut rng = stream(seed, Purpose::Oversampling, class as u64, 1);
        for _ in members.len()..target {
            let pick = rng.random_range(0..members.len());
            let base = data.image(members[pick]);
            let synthetic: Vec<u8> = match neighbours[pick].as_slice() {
                [] => base.to_vec(),
                near => {
                    let other = data.image(members[near[rng.random_range(0..near.len())]]);
                    let gap: f32 = rng.random();
                    base.iter()
                        .zip(other)
                        .map(|(&a, &b)| {
                            (f32::from(a) + gap * (f32::from(b) - f32::from(a))).round() as u8
                        })
                        .collect()
                }
            };
            debug_assert_eq!(synthetic.len(), size);
            pixels.extend(synthetic);
            labels.push(class as u16);
        }
    }
    ImageDataset::new(data.shape(), pixels, labels, data.class_names().to_vec())
}

/// For each member (by position in `members`), the positions of its `k` nearest other members.
fn nearest_neighbours(data: &ImageDataset, members: &[usize], k: usize) -> Vec<Vec<usize>> {
    members
        .iter()
        .enumerate()
        .map(|(me, &record)| {
            let mine = data.image(record);
            let mut distances: Vec<(u64, usize)> = members
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != me)
                .map(|(other, &r)| {
                    let d = mine
                        .iter()
                        .zip(data.image(r))
                        .map(|(&a, &b)| {
                            let d = i64::from(a) - i64::from(b);
                            (d * d) as u64
                        })
                        .sum();
                    (d, other)
                })
                .collect();
            distances.sort_unstable();
            distances
                .into_iter()
                .take(k)
                .map(|(_, other)| other)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    /// Class 0: 6 images of level 10·i; class 1: 2 images, levels 100 and 200. 2×2 pixels.
    fn tiny() -> ImageDataset {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..6u8 {
            pixels.extend([10 * i; 4]);
            labels.push(0);
        }
        for level in [100u8, 200] {
            pixels.extend([level; 4]);
            labels.push(1);
        }
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        ImageDataset::new(shape, pixels, labels, vec!["a".into(), "b".into()]).unwrap()
    }

    #[test]
    fn oversampling_reaches_the_target_with_copies_of_members() {
        let data = random_oversample(&tiny(), 6, 1).unwrap();
        assert_eq!(data.class_counts(), vec![6, 6]);
        for i in 0..data.len() {
            if data.labels()[i] == 1 {
                assert!(matches!(data.image(i)[0], 100 | 200));
            }
        }
        assert_eq!(random_oversample(&tiny(), 6, 1).unwrap(), data, "seeded");
    }

    #[test]
    fn smote_interpolates_between_same_class_neighbours() {
        let data = smote(&tiny(), 6, 5, 3).unwrap();
        assert_eq!(data.class_counts(), vec![6, 6]);
        for i in 8..12 {
            assert_eq!(data.labels()[i], 1);
            let level = data.image(i)[0];
            assert!((100..=200).contains(&level), "on the segment: {level}");
            assert!(
                data.image(i).iter().all(|&p| p == level),
                "same gap for every pixel"
            );
        }
        // The 6 originals of class 0 are kept and nothing is added to it.
        assert_eq!(&data.labels()[..6], &[0; 6]);
    }

    fn balance(target: usize) -> Balance {
        Balance {
            target,
            real_share: 0.0,
            same_mix: false,
        }
    }

    /// Target 6 with `real_share`.
    fn share(real_share: f64) -> Balance {
        Balance {
            target: 6,
            real_share,
            same_mix: false,
        }
    }

    fn only(data: &ImageDataset) -> Sources<'_> {
        Sources {
            long_tail: data,
            rebalanced: None,
            full_real: None,
            judged: None,
        }
    }

    #[test]
    fn methods_build_their_sets() {
        let data = tiny();
        let weighted = training_set(Method::ClassWeighted, only(&data), balance(6), 0).unwrap();
        let weights = weighted.class_weights.unwrap();
        assert!(weights[1] > weights[0], "the rare class weighs more");
        assert_eq!(weighted.data, data);
        assert!(
            training_set(Method::LongTail, only(&data), balance(6), 0)
                .unwrap()
                .class_weights
                .is_none()
        );
        let err = training_set(Method::Anygan, only(&data), balance(6), 0).unwrap_err();
        assert!(err.to_string().contains("rebalanced"), "{err}");
        let err = training_set(Method::FullReal, only(&data), balance(6), 0).unwrap_err();
        assert!(err.to_string().contains("full real"), "{err}");
    }

    /// `count` generated images of class 1 at levels 150, 151, ...
    fn generated_of_class_1(count: u8) -> ImageDataset {
        let data = tiny();
        let mut pixels = Vec::new();
        for i in 0..count {
            pixels.extend([150 + i; 4]);
        }
        ImageDataset::new(
            data.shape(),
            pixels,
            vec![1; usize::from(count)],
            data.class_names().to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn mix_keeps_the_real_share_and_fills_with_generated() {
        let data = tiny();
        let levels_of_class_1 = |mixed: &ImageDataset| -> Vec<u8> {
            (0..mixed.len())
                .filter(|&i| mixed.labels()[i] == 1)
                .map(|i| mixed.image(i)[0])
                .collect()
        };
        // Target 6, half real: class 1 (2 originals) gets 3 real (one a copy) + 3 generated;
        // class 0 already holds 6 and is untouched.
        let generated = generated_of_class_1(10);
        let mixed = mix_generated(&data, &generated, share(0.5), 7).unwrap();
        assert_eq!(mixed.class_counts(), vec![6, 6]);
        let levels = levels_of_class_1(&mixed);
        let real = levels.iter().filter(|&&l| l == 100 || l == 200).count();
        assert_eq!(real, 3);
        assert!(
            levels.contains(&100) && levels.contains(&200),
            "every original kept"
        );
        let mut chosen: Vec<u8> = levels
            .iter()
            .copied()
            .filter(|l| (150..160).contains(l))
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        assert_eq!(
            chosen.len(),
            3,
            "three different generated images: {levels:?}"
        );
        assert_eq!(
            mix_generated(&data, &generated, share(0.5), 7).unwrap(),
            mixed
        );
        assert_ne!(
            levels_of_class_1(&mix_generated(&data, &generated, share(0.5), 8).unwrap()),
            levels,
            "another seed chooses other generated images"
        );
        // Share 0: the originals once, generated images for the rest.
        let none = mix_generated(&data, &generated, share(0.0), 7).unwrap();
        let levels = levels_of_class_1(&none);
        assert_eq!(levels.iter().filter(|&&l| l == 100 || l == 200).count(), 2);
        // Too few generated images: real copies fill the gap.
        let scarce = mix_generated(&data, &generated_of_class_1(1), share(0.0), 7).unwrap();
        assert_eq!(scarce.class_counts(), vec![6, 6]);
        assert_eq!(
            levels_of_class_1(&scarce)
                .iter()
                .filter(|&&l| l == 150)
                .count(),
            1
        );
        // Share 1 is random oversampling; a share outside [0, 1] is refused by name.
        let all_real = mix_generated(&data, &generated, share(1.0), 7).unwrap();
        assert!(
            levels_of_class_1(&all_real)
                .iter()
                .all(|&l| l == 100 || l == 200)
        );
        let err = mix_generated(&data, &generated, share(1.5), 7).unwrap_err();
        assert!(err.to_string().contains("real_share"), "{err}");
    }

    #[test]
    fn the_same_mix_gives_every_class_the_same_real_share() {
        let data = tiny();
        // Generated: class 0 at levels 71..=74, class 1 at 150..=159.
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for level in 71..=74u8 {
            pixels.extend([level; 4]);
            labels.push(0);
        }
        for level in 150..160u8 {
            pixels.extend([level; 4]);
            labels.push(1);
        }
        let generated =
            ImageDataset::new(data.shape(), pixels, labels, data.class_names().to_vec()).unwrap();
        let same_mix = Balance {
            same_mix: true,
            ..share(0.5)
        };
        let mixed = mix_generated(&data, &generated, same_mix, 7).unwrap();
        assert_eq!(mixed.class_counts(), vec![6, 6]);
        let levels = |class: u16| -> Vec<u8> {
            (0..mixed.len())
                .filter(|&i| mixed.labels()[i] == class)
                .map(|i| mixed.image(i)[0])
                .collect()
        };
        // Class 0: 3 of its 6 originals (a subset, no copies) and 3 of its generated images.
        let class_0 = levels(0);
        let mut originals: Vec<u8> = class_0.iter().copied().filter(|l| l % 10 == 0).collect();
        originals.sort_unstable();
        originals.dedup();
        assert_eq!(originals.len(), 3, "three different originals: {class_0:?}");
        assert_eq!(
            class_0.iter().filter(|l| (71..=74).contains(*l)).count(),
            3,
            "{class_0:?}"
        );
        // Class 1: both originals, one copy, 3 generated.
        let class_1 = levels(1);
        assert_eq!(class_1.iter().filter(|&&l| l == 100 || l == 200).count(), 3);
        assert!(class_1.contains(&100) && class_1.contains(&200));
        assert_eq!(
            class_1.iter().filter(|l| (150..160).contains(*l)).count(),
            3
        );
        // Another seed keeps other originals of class 0.
        let reseeded = mix_generated(&data, &generated, same_mix, 8).unwrap();
        assert_ne!(reseeded, mixed);
        // Without the same mix class 0 keeps its 6 originals and takes nothing generated.
        let rare_only = mix_generated(&data, &generated, share(0.5), 7).unwrap();
        let class_0: Vec<u8> = (0..rare_only.len())
            .filter(|&i| rare_only.labels()[i] == 0)
            .map(|i| rare_only.image(i)[0])
            .collect();
        assert_eq!(class_0, vec![0, 10, 20, 30, 40, 50]);
    }

    #[test]
    fn generated_only_drops_each_class_originals() {
        // As the generation run writes it: class 0's 6 originals then 1 generated (level 77),
        // class 1's 2 originals then 3 generated (levels 150, 160, 170).
        let data = tiny();
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..data.len() {
            if data.labels()[i] == 0 {
                pixels.extend_from_slice(data.image(i));
                labels.push(0);
            }
        }
        pixels.extend([77u8; 4]);
        labels.push(0);
        for i in 6..8 {
            pixels.extend_from_slice(data.image(i));
            labels.push(1);
        }
        for level in [150u8, 160, 170] {
            pixels.extend([level; 4]);
            labels.push(1);
        }
        let rebalanced =
            ImageDataset::new(data.shape(), pixels, labels, data.class_names().to_vec()).unwrap();
        let sources = Sources {
            long_tail: &data,
            rebalanced: Some(&rebalanced),
            full_real: None,
            judged: None,
        };
        let generated = training_set(Method::Cas, sources, balance(6), 0)
            .unwrap()
            .data;
        assert_eq!(generated.class_counts(), vec![1, 3]);
        let levels: Vec<u8> = (0..generated.len())
            .map(|i| generated.image(i)[0])
            .collect();
        assert_eq!(levels, vec![77, 150, 160, 170]);
        // A rebalanced set with fewer images of a class than its originals is refused.
        let err = generated_only(&generated, &[6, 2]).unwrap_err();
        assert!(err.to_string().contains("class 0"), "{err}");
        assert_eq!(Method::parse("cas"), Some(Method::Cas));
        // The names the coordinator accepts are the ones the worker runs.
        for name in anygan_proto::generation::EVALUATION_METHODS
            .iter()
            .chain(&anygan_proto::generation::QUALITY_METHODS)
        {
            assert!(Method::parse(name).is_some(), "{name}");
        }
        assert_eq!(Method::parse("full-real"), Some(Method::FullReal));
    }
}
