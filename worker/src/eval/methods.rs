//! The rebalancing methods compared by the evaluation, each turning the long-tailed training
//! set into what the classifier trains on: (a) as it is, (b) random oversampling, (c) class
//! weights by effective number, (d) plus anygan's generated images, (e) pixel-space SMOTE,
//! (f) random oversampling with shifted copies.

use rand::Rng;

use super::metrics::effective_number_weights;
use crate::data::ImageDataset;
use crate::data::moves::{Move, largest_shift};
use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// β of the effective-number weights (BENCHMARK.md).
pub const EFFECTIVE_NUMBER_BETA: f64 = 0.9999;
/// Neighbours SMOTE interpolates towards (Chawla et al.'s default).
pub const SMOTE_NEIGHBOURS: usize = 5;
/// (f): the share of each rare class's target filled with shifted copies; originals and exact
/// copies make the rest. Chosen on the validation set over 0.5 (thirteenth session,
/// docs/evaluation-investigation.md).
pub const SHIFTED_COPIES_SHARE: f64 = 0.25;
/// (f): the largest shift of a copy, in pixels along each axis.
pub const SHIFTED_COPIES_MAX_SHIFT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    LongTail,
    RandomOversampling,
    ClassWeighted,
    Anygan,
    Smote,
    /// (f) random oversampling where a quarter of each rare class is shifted copies: the
    /// simplest variety there is, and the bar a generator's images have to clear.
    ShiftedOversampling,
    /// CAS: the classifier trained on anygan's generated images only.
    Cas,
    /// Reference: the classifier trained on the full real training split (6,000 per class);
    /// it also labels the generated images (the per-class fidelity of the generator).
    FullReal,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::LongTail,
        Method::RandomOversampling,
        Method::ClassWeighted,
        Method::Anygan,
        Method::Smote,
        Method::ShiftedOversampling,
    ];

    /// The method's name on command lines and in file names (`random-oversampling`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Method::LongTail => "long-tail",
            Method::RandomOversampling => "random-oversampling",
            Method::ClassWeighted => "class-weighted",
            Method::Anygan => "anygan",
            Method::Smote => "smote",
            Method::ShiftedOversampling => "shifted-oversampling",
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
            Method::ShiftedOversampling => "(f) oversampling, shifted copies",
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

    /// The generated images (d) draws on: those its judge kept when there is one, else all.
    pub fn generated_for_anygan(&self) -> Result<std::borrow::Cow<'_, ImageDataset>> {
        Ok(match self.judged {
            Some(kept) => std::borrow::Cow::Borrowed(kept),
            None => std::borrow::Cow::Owned(self.generated()?),
        })
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
    /// (d): when above 0, random oversampling's set (the same draws as (b) for the seed) plus
    /// this many generated images of every class, the largest included; `real_share` and
    /// `same_mix` then do not apply. Generated images add variety without replacing any of
    /// (b)'s real copies, and being generated says nothing about an image's class.
    pub added_generated: usize,
    /// (d): the real copies beyond each class's originals are drawn as (f) draws its own: the
    /// last [`shifted_part`] of the target (or as many as there are copies) shifted by up to
    /// [`SHIFTED_COPIES_MAX_SHIFT`] pixels, the rest exact; with `added_generated`, (f)'s set
    /// takes the place of (b)'s. Whether generated images add anything on top of (f)'s prior
    /// that a garment shifted by two pixels is the same garment.
    pub shifted_copies: bool,
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
            let generated = sources.generated_for_anygan()?;
            if balance.added_generated > 0 {
                add_generated(long_tail, &generated, balance, seed)?
            } else {
                mix_generated(long_tail, &generated, balance, seed)?
            }
        }
        Method::Smote => smote(long_tail, target, SMOTE_NEIGHBOURS, seed)?,
        Method::ShiftedOversampling => shifted_oversample(long_tail, target, seed)?,
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

/// Every class's records, in the set's order.
pub(super) fn indices_by_class(data: &ImageDataset) -> Vec<Vec<usize>> {
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

/// Method (f): every class below the target keeps its originals, repeats them (drawn with
/// replacement) until they fill all but [`SHIFTED_COPIES_SHARE`] of the target, and fills the
/// rest with copies of random originals shifted by up to [`SHIFTED_COPIES_MAX_SHIFT`] pixels
/// each way, pixel value 0 (the background) coming in; a draw of no shift is an exact copy.
/// Images too small for such a shift move by less, so none leaves its frame. Classes at or above
/// the target stay as they are. The originals come first, in the set's order, then the exact
/// copies, then the shifted ones.
///
/// Why: shifted copies of the rare classes in the re-balanced set alone measured well above
/// exact copies (the ninth and thirteenth sessions' control), and above anygan's generated
/// images in the same places: a user should see that bar in the report.
pub fn shifted_oversample(data: &ImageDataset, target: usize, seed: u64) -> Result<ImageDataset> {
    let mut exact: Vec<usize> = (0..data.len()).collect();
    let mut shifted = ShiftedCopies::of(data);
    for (class, members) in indices_by_class(data).iter().enumerate() {
        if members.is_empty() || members.len() >= target {
            continue;
        }
        let mut rng = stream(seed, Purpose::Oversampling, class as u64, 4);
        let exact_until = (target - shifted_part(target)).max(members.len());
        for _ in members.len()..exact_until {
            exact.push(members[rng.random_range(0..members.len())]);
        }
        for _ in exact_until..target {
            shifted.push(members, class, &mut rng);
        }
    }
    let mut set = data.select(&exact)?;
    set.extend(&shifted.into_dataset()?)?;
    Ok(set)
}

/// How many of a rare class's `target` images (f) fills with shifted copies.
pub fn shifted_part(target: usize) -> usize {
    target - ((1.0 - SHIFTED_COPIES_SHARE) * target as f64).round() as usize
}

/// Copies of random members of a class, each shifted as (f) shifts them, gathered into one set.
struct ShiftedCopies<'a> {
    source: &'a ImageDataset,
    max_shift: usize,
    pixels: Vec<u8>,
    labels: Vec<u16>,
    scratch: Vec<u8>,
}

impl<'a> ShiftedCopies<'a> {
    fn of(source: &'a ImageDataset) -> Self {
        Self {
            source,
            max_shift: SHIFTED_COPIES_MAX_SHIFT.min(largest_shift(source.shape())),
            pixels: Vec::new(),
            labels: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// One more copy: a random member of `class` (its index in `members`, then the move, both
    /// drawn from `rng`), shifted with the background (0) coming in.
    fn push(&mut self, members: &[usize], class: usize, rng: &mut impl Rng) {
        let original = members[rng.random_range(0..members.len())];
        let mut image = self.source.image(original).to_vec();
        Move::draw(rng, self.max_shift, 0.0).apply(
            &mut image,
            self.source.shape(),
            0u8,
            &mut self.scratch,
        );
        self.pixels.extend(image);
        self.labels.push(class as u16);
    }

    fn into_dataset(self) -> Result<ImageDataset> {
        ImageDataset::new(
            self.source.shape(),
            self.pixels,
            self.labels,
            self.source.class_names().to_vec(),
        )
    }
}

/// Method (d)'s training set: every class below the target keeps its originals, repeats them
/// (drawn with replacement) until real images make up the real share of the target, and takes
/// generated images of its class (a seeded random choice) for the rest; where too few were
/// generated, more real copies fill the gap. Classes at or above the target stay as they are.
///
/// Why real copies at all: with a real share of 0 a class of 40 originals is 99 % generated, and
/// the classifier learns what the generator draws rather than what the test set holds wherever
/// the two differ (shirts, coats); the copies keep the real images as present as random
/// oversampling does while the generated ones add the variety copies cannot. With
/// `shifted_copies` the last of a class's copies are shifted as (f) shifts its own.
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
        added_generated: _,
        shifted_copies,
    } = balance;
    if !(0.0..=1.0).contains(&real_share) {
        return Err(Error::config(
            "real_share",
            format!("{real_share} is not a share between 0 and 1"),
        ));
    }
    let real_by_class = indices_by_class(long_tail);
    let generated_by_class = indices_by_class(generated);
    // Originals stay in the set's order; exact copies, shifted copies and generated images
    // follow, each class after class.
    let mut original_kept = vec![true; long_tail.len()];
    let mut copies = Vec::new();
    let mut shifted = ShiftedCopies::of(long_tail);
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
        let shifted_wanted = if shifted_copies {
            shifted_part(target).min(real_wanted.saturating_sub(members.len()))
        } else {
            0
        };
        for _ in members.len()..real_wanted - shifted_wanted {
            copies.push(members[rng.random_range(0..members.len())]);
        }
        for _ in 0..shifted_wanted {
            shifted.push(members, class, &mut rng);
        }
    }
    let real_chosen: Vec<usize> = (0..long_tail.len())
        .filter(|&i| original_kept[i])
        .chain(copies)
        .collect();
    let mut mixed = long_tail.select(&real_chosen)?;
    mixed.extend(&shifted.into_dataset()?)?;
    mixed.extend(&generated.select(&generated_chosen)?)?;
    Ok(mixed)
}

/// Method (d) with `added_generated`: random oversampling's set, drawn exactly as (b) draws it
/// for `seed`, followed by `added_generated` generated images of every class (a seeded random
/// choice). With `shifted_copies`, (f)'s set as (f) draws it for `seed` instead of (b)'s. A
/// class the generation run gave fewer generated images is an error naming it.
pub fn add_generated(
    long_tail: &ImageDataset,
    generated: &ImageDataset,
    balance: Balance,
    seed: u64,
) -> Result<ImageDataset> {
    if balance.same_mix {
        return Err(Error::config(
            "same_mix",
            "adding generated images to the oversampled set already gives every class the same mix; \
             the two cannot be combined",
        ));
    }
    if generated.num_classes() < long_tail.num_classes() {
        return Err(Error::config(
            "added_generated",
            format!(
                "the generated images cover {} classes, the long-tailed set {}",
                generated.num_classes(),
                long_tail.num_classes()
            ),
        ));
    }
    let per_class = balance.added_generated;
    let mut generated_chosen = Vec::new();
    for (class, mut candidates) in indices_by_class(generated).into_iter().enumerate() {
        if candidates.len() < per_class {
            let name = generated
                .class_names()
                .get(class)
                .cloned()
                .unwrap_or_default();
            return Err(Error::config(
                "added_generated",
                format!(
                    "{per_class} generated images of every class are wanted, but class {class} \
                     ({name}) has {}; generate more (--generation-targets: the class's count plus \
                     {per_class}, the largest class included)",
                    candidates.len()
                ),
            ));
        }
        let mut rng = stream(seed, Purpose::Oversampling, class as u64, 3);
        partial_shuffle(&mut candidates, per_class, &mut rng);
        generated_chosen.extend_from_slice(&candidates[..per_class]);
    }
    let mut data = if balance.shifted_copies {
        shifted_oversample(long_tail, balance.target, seed)?
    } else {
        random_oversample(long_tail, balance.target, seed)?
    };
    data.extend(&generated.select(&generated_chosen)?)?;
    Ok(data)
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
mod shifted_tests;
#[cfg(test)]
mod tests;
