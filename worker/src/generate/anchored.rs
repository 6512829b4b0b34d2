//! Anchored generation: each minority class's real images (up to a cap, a seeded choice) are
//! inverted into the generator's noise space — their *anchors* — and every generated image is
//! drawn on the segment between an anchor and one of its nearest anchors (SMOTE in noise space,
//! what DeepSMOTE does with an autoencoder's codes). Plain sampling covers what the generator
//! draws most often, the typical part of a class; anchored images follow where the class's real
//! images are, the atypical ones included (short-sleeved and sleeveless shirts, for instance).
//!
//! Two stages of tasks: invert tasks, each a range of one class's anchors, write the codes
//! under `<root>/anchors/<class folder>/`; generation tasks then read all codes of their class.
//! Every choice is keyed by the seed, the class and the image index, so an image does not depend
//! on which task or worker carries it.

use std::time::Instant;

use anygan_proto::generation::{ANCHORS_PER_TASK, GenerationPlan, class_folder, ranges};
use anygan_store::{CheckpointOptions, StoreLocation};
use bytes::Bytes;
use rand::Rng;

use super::TaskOutcome;
use crate::backend::{ComputeBackend, TrainBackend};
use crate::checkpointing::checkpoint_store;
use crate::data::load_source;
use crate::error::{Error, Result};
use crate::gan::invert::{InversionSettings, StartKey, invert};
use crate::gan::state::{Snapshot, load_generator_only};
use crate::rng::{Purpose, stream};

/// Nearest anchors an image may be drawn toward (SMOTE's k).
pub const NEIGHBOURS: usize = 5;

/// Which of a class's `originals` images (by their order in the class) anchor it: all of them
/// when there are at most `cap`, else a seeded random `cap` of them, in the class's order.
pub fn anchor_choice(seed: u64, class: u64, originals: usize, cap: usize) -> Vec<usize> {
    if originals <= cap {
        return (0..originals).collect();
    }
    // A partial Fisher–Yates shuffle: the first `cap` positions are a uniform random choice.
    let mut rng = stream(seed, Purpose::AnchorChoice, class, 0);
    let mut order: Vec<usize> = (0..originals).collect();
    for position in 0..cap {
        let other = rng.random_range(position..originals);
        order.swap(position, other);
    }
    let mut chosen = order[..cap].to_vec();
    chosen.sort_unstable();
    chosen
}

/// For each anchor, its `k` nearest other anchors by squared distance between codes (ties go
/// to the lower index); an anchor alone in its class has none.
pub fn nearest_anchors(codes: &[f32], latent: usize, k: usize) -> Vec<Vec<usize>> {
    let rows: Vec<&[f32]> = codes.chunks_exact(latent.max(1)).collect();
    let distance =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    (0..rows.len())
        .map(|anchor| {
            let mut others: Vec<(f32, usize)> = (0..rows.len())
                .filter(|&other| other != anchor)
                .map(|other| (distance(rows[anchor], rows[other]), other))
                .collect();
            others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            others.into_iter().take(k).map(|(_, other)| other).collect()
        })
        .collect()
}

/// The noise of anchored image `index` of `class`: anchor `index mod anchors` (so every anchor
/// is used as evenly as the count allows), moved toward one of its nearest anchors by a
/// fraction drawn from U(0, 1); both draws come from the image's own stream.
pub fn anchored_noise(
    seed: u64,
    class: u64,
    index: u64,
    codes: &[f32],
    neighbours: &[Vec<usize>],
    out: &mut [f32],
) {
    let latent = out.len();
    let anchors = neighbours.len();
    if anchors == 0 || codes.len() != anchors * latent {
        out.fill(0.0);
        return;
    }
    let anchor = (index % anchors as u64) as usize;
    let mut rng = stream(seed, Purpose::Generation, class, index);
    let toward = match neighbours[anchor].as_slice() {
        [] => anchor,
        near => near[rng.random_range(0..near.len())],
    };
    let fraction: f32 = rng.random();
    let from = &codes[anchor * latent..(anchor + 1) * latent];
    let to = &codes[toward * latent..(toward + 1) * latent];
    for ((value, a), b) in out.iter_mut().zip(from).zip(to) {
        *value = a + fraction * (b - a);
    }
}

/// Inverts one range of one class's anchors (`plan.anchor_tasks[index]`) and writes their codes.
/// The anchors are the class's training images as the plan's dataset holds them, chosen by
/// [`anchor_choice`]; the generator is the checkpoint's, with the plan's weights.
pub fn run_invert_task(
    plan: &GenerationPlan,
    index: usize,
    output: &StoreLocation,
    store_options: &[(String, String)],
    io: &tokio::runtime::Handle,
    device: &burn::tensor::Device<ComputeBackend>,
) -> Result<TaskOutcome> {
    let started = Instant::now();
    let range = *plan.anchor_tasks.get(index).ok_or_else(|| {
        Error::config(
            "anchor_task",
            format!(
                "{index} is outside the plan's {} invert tasks",
                plan.anchor_tasks.len()
            ),
        )
    })?;
    let class = plan.classes.get(range.class).ok_or_else(|| {
        Error::config(
            "anchor_task",
            format!("class {} is not in the plan", range.class),
        )
    })?;
    let store = checkpoint_store(output, CheckpointOptions::default())?;
    let loaded = io.block_on(store.load(&plan.checkpoint, None))?;
    let snapshot = Snapshot::from_checkpoint(&loaded)?;
    let (generator, _) = load_generator_only::<TrainBackend>(&snapshot, plan.spec.weights, device)?;
    let config = &snapshot.description.config.gan;
    let shape = config.image_shape();

    let dataset = io.block_on(load_source(&plan.dataset, shape, store_options))?;
    let members: Vec<usize> = dataset
        .labels()
        .iter()
        .enumerate()
        .filter(|(_, label)| usize::from(**label) == class.index)
        .map(|(position, _)| position)
        .collect();
    if members.len() != class.original {
        return Err(Error::dataset(
            plan.dataset.location.clone(),
            format!(
                "holds {} images of class {}, the plan was made for {}",
                members.len(),
                class.name,
                class.original
            ),
        ));
    }
    let choice = anchor_choice(
        plan.spec.seed,
        class.index as u64,
        class.original,
        plan.spec.anchors,
    );
    let positions = choice
        .get(range.first as usize..(range.first + range.count) as usize)
        .ok_or_else(|| {
            Error::config(
                "anchor_task",
                format!(
                    "anchors {}..{} of class {}, which has {}",
                    range.first,
                    range.first + range.count,
                    class.name,
                    choice.len()
                ),
            )
        })?;
    let indices: Vec<usize> = positions.iter().map(|&p| members[p]).collect();
    let (images, labels) = dataset.normalized_batch(&indices);
    let settings = InversionSettings {
        steps: plan.spec.inversion_steps,
        ..InversionSettings::default()
    };
    let inversion = invert(
        &generator,
        config,
        &images,
        &labels,
        settings,
        StartKey {
            seed: plan.spec.seed,
            class: class.index as u64,
            first: range.first,
        },
        device,
    )?;
    let folder = class_folder(class.index, &class.name);
    let root = output.join(&plan.root);
    io.block_on(root.put(
        &codes_name(&folder, range.first),
        encode_codes(&inversion.latents),
    ))?;
    let mean_error = inversion.errors.iter().sum::<f32>() / inversion.errors.len().max(1) as f32;
    tracing::info!(
        class = %class.name,
        first = range.first,
        anchors = range.count,
        steps = settings.steps,
        mean_squared_error = format!("{mean_error:.4}"),
        "anchors inverted"
    );
    Ok(TaskOutcome {
        images: 0,
        generated: 0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where the codes of the anchors from position `first` of a class are kept, under the
/// generation root.
pub fn codes_name(class_folder: &str, first: u64) -> String {
    format!("anchors/{class_folder}/codes-{first:06}.f32")
}

/// Codes as little-endian f32, `latent` per anchor.
pub fn encode_codes(codes: &[f32]) -> Bytes {
    Bytes::from(
        codes
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

/// Reads the codes of all `anchors` anchors of a class, in anchor order, from the files its
/// invert tasks wrote ([`ANCHORS_PER_TASK`] anchors each), checking each file's size.
pub fn read_class_codes(
    root: &StoreLocation,
    class_folder: &str,
    anchors: u64,
    latent: usize,
    io: &tokio::runtime::Handle,
) -> Result<Vec<f32>> {
    let mut codes = Vec::with_capacity(anchors as usize * latent);
    for (first, count) in ranges(anchors, ANCHORS_PER_TASK as u64) {
        let name = codes_name(class_folder, first);
        let bytes = io.block_on(root.get(&name))?;
        let expected = count as usize * latent * 4;
        if bytes.len() != expected {
            return Err(Error::checkpoint(
                root.describe(&name),
                format!(
                    "holds {} bytes; {count} anchors of {latent} values need {expected}",
                    bytes.len()
                ),
            ));
        }
        codes.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    Ok(codes)
}

#[cfg(test)]
mod tests;
