//! Class-targeted generation on a worker: generation tasks (a range of one class's images from
//! a checkpoint's generator) and the final assemble task (count check, contact sheet,
//! rebalanced dataset, manifest). Blocking functions: they run on a thread that may block and
//! use `io` for the object store.
//!
//! Layout under `<output>/<plan root>/`:
//! - `images/<NN-class>/gen-<index:06>.png`: the generated images;
//! - `contact_sheet.png`: one row per class, the first generated images;
//! - `rebalanced/folder/<NN-class>/{orig,gen}-<index:06>.png` and
//!   `rebalanced/idx/{images.idx,labels.idx,classes.txt}`: originals + generated, readable by
//!   anygan (`--format folder` / `--format idx`) and by most training scripts;
//! - `MANIFEST.json`, written last: the plan, the checkpoint, the seed, the counts.

pub mod anchored;

use std::collections::BTreeSet;
use std::time::Instant;

use anygan_proto::generation::{GenerationPlan, GeneratorWeights, class_folder, image_name};
use anygan_proto::v1;
use anygan_store::{CheckpointOptions, StoreLocation};
use bytes::Bytes;
use futures::StreamExt;

use crate::backend::ComputeBackend;
use crate::checkpointing::checkpoint_store;
use crate::data::{ImageDataset, ImageShape, chw_to_dynamic_image, idx_set_files, load_source};
use crate::error::{Error, Result};
use crate::gan::sample::{encode_png, generate_ranked, grid_png};
use crate::gan::state::{Snapshot, load_discriminator_only, load_generator_only};
use crate::gan::{Discriminator, GanConfig, Generator};
use crate::rng::{Purpose, fill_standard_normal, stream};

/// Uploads in flight while writing a batch's images.
const UPLOADS_IN_FLIGHT: usize = 16;
/// Samples per class on the contact sheet.
const SHEET_COLUMNS: usize = 10;
/// The run's manifest under its root.
pub const GENERATION_MANIFEST: &str = "MANIFEST.json";

/// A checkpoint's generator, kept between tasks of the same checkpoint and weights.
pub struct LoadedGenerator {
    checkpoint: String,
    /// The weights asked for (the ones loaded may be the weights as trained, when the
    /// checkpoint keeps no average).
    asked: GeneratorWeights,
    generator: Generator<ComputeBackend>,
    /// The checkpoint's discriminator, which ranks candidates when a task draws several.
    discriminator: Discriminator<ComputeBackend>,
    config: GanConfig,
}

impl LoadedGenerator {
    pub fn generator(&self) -> &Generator<ComputeBackend> {
        &self.generator
    }

    pub fn config(&self) -> &GanConfig {
        &self.config
    }

    /// Loads (and verifies) the generator of `checkpoint` under `output`.
    pub fn load(
        output: &StoreLocation,
        checkpoint: &str,
        weights: GeneratorWeights,
        io: &tokio::runtime::Handle,
        device: &burn::tensor::Device<ComputeBackend>,
    ) -> Result<Self> {
        let store = checkpoint_store(output, CheckpointOptions::default())?;
        let loaded = io.block_on(store.load(checkpoint, None))?;
        let snapshot = Snapshot::from_checkpoint(&loaded)?;
        let (generator, used) = load_generator_only::<ComputeBackend>(&snapshot, weights, device)?;
        let discriminator = load_discriminator_only::<ComputeBackend>(&snapshot, device)?;
        tracing::info!(checkpoint, weights = used.name(), "generator loaded");
        Ok(Self {
            checkpoint: checkpoint.to_string(),
            asked: weights,
            generator,
            discriminator,
            config: snapshot.description.config.gan,
        })
    }
}

/// The noise of generated image `index` of `class`: its own stream, so an image does not depend
/// on which batch or task carries it. With `truncation` > 0, components beyond ±truncation are
/// drawn again from the same stream (the truncation trick), so the image stays reproducible.
pub fn image_noise(seed: u64, class: u64, index: u64, truncation: f32, out: &mut [f32]) {
    truncated_normal(
        &mut stream(seed, Purpose::Generation, class, index),
        truncation,
        out,
    );
}

/// The noise of all `candidates` of image `index` of `class`, one row after another: the first
/// is [`image_noise`] (so one candidate is plain generation), the others come from the image's
/// own candidate stream.
pub fn candidate_noise(
    seed: u64,
    class: u64,
    index: u64,
    truncation: f32,
    candidates: usize,
    out: &mut [f32],
) {
    let latent = out.len() / candidates.max(1);
    let (first, others) = out.split_at_mut(latent);
    image_noise(seed, class, index, truncation, first);
    let mut rng = stream(seed, Purpose::GenerationCandidates, class, index);
    for row in others.chunks_mut(latent) {
        truncated_normal(&mut rng, truncation, row);
    }
}

fn truncated_normal(rng: &mut impl rand::Rng, truncation: f32, out: &mut [f32]) {
    fill_standard_normal(rng, out);
    if truncation <= 0.0 {
        return;
    }
    let mut redraw = [0f32; 2];
    for value in out.iter_mut() {
        while value.abs() > truncation {
            fill_standard_normal(rng, &mut redraw);
            *value = redraw[0];
        }
    }
}

/// What a finished task reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskOutcome {
    /// Images the task handled (generated, assembled, or trained a classifier on): its
    /// throughput in the task's log line and report.
    pub images: u64,
    /// Images the task generated: a generation task's count, 0 for every other kind.
    pub generated: u64,
    pub seconds: f64,
}

/// Generates `task.count` images of one class in batches aligned to `task.batch_size` and
/// writes them as PNGs. Running it again writes the same bytes to the same names.
pub fn run_generation_task(
    task: &v1::GenerationTask,
    output: &StoreLocation,
    cache: &mut Option<LoadedGenerator>,
    io: &tokio::runtime::Handle,
    device: &burn::tensor::Device<ComputeBackend>,
) -> Result<TaskOutcome> {
    let started = Instant::now();
    let weights = if task.as_trained_weights {
        GeneratorWeights::AsTrained
    } else {
        GeneratorWeights::Averaged
    };
    if cache
        .as_ref()
        .is_none_or(|c| c.checkpoint != task.checkpoint || c.asked != weights)
    {
        *cache = Some(LoadedGenerator::load(
            output,
            &task.checkpoint,
            weights,
            io,
            device,
        )?);
    }
    let Some(loaded) = cache.as_ref() else {
        return Err(Error::config("checkpoint", "generator not loaded"));
    };
    let config = &loaded.config;
    if task.class_index as usize >= config.num_classes {
        return Err(Error::config(
            "class_index",
            format!(
                "class {} is outside the generator's {} classes",
                task.class_index, config.num_classes
            ),
        ));
    }
    let batch = task.batch_size.max(1) as u64;
    let candidates = (task.candidates as usize).max(1);
    if candidates > anygan_proto::generation::MAX_CANDIDATES {
        return Err(Error::config(
            "candidates",
            format!(
                "{candidates} is above the most, {}",
                anygan_proto::generation::MAX_CANDIDATES
            ),
        ));
    }
    // Anchored generation: the codes of every anchor of the class, and each one's neighbours
    // (truncation does not apply to anchored codes).
    if task.anchors > 0 && candidates > 1 {
        return Err(Error::config(
            "candidates",
            format!("{candidates} with anchored generation, which draws one image per code"),
        ));
    }
    let anchors = if task.anchors > 0 {
        let codes = anchored::read_class_codes(
            &output.join(&task.root),
            &task.class_folder,
            task.anchors,
            config.latent_dim,
            io,
        )?;
        let neighbours = anchored::nearest_anchors(&codes, config.latent_dim, anchored::NEIGHBOURS);
        Some((codes, neighbours))
    } else {
        None
    };
    let shape = config.image_shape();
    let folder = output
        .join(&task.root)
        .join("images")
        .join(&task.class_folder);
    let end = task.first_index + task.count;
    let mut start = task.first_index;
    while start < end {
        // Batches end at multiples of the batch size, whatever task carries them.
        let stop = ((start / batch + 1) * batch).min(end);
        let count = (stop - start) as usize;
        let mut noise = vec![0f32; count * candidates * config.latent_dim];
        for (offset, rows) in noise.chunks_mut(candidates * config.latent_dim).enumerate() {
            let (class, index) = (u64::from(task.class_index), start + offset as u64);
            match &anchors {
                Some((codes, neighbours)) => {
                    anchored::anchored_noise(task.seed, class, index, codes, neighbours, rows)
                }
                None => candidate_noise(task.seed, class, index, task.truncation, candidates, rows),
            }
        }
        let labels = vec![task.class_index as u16; count];
        let pixels = generate_ranked(
            &loaded.generator,
            &loaded.discriminator,
            config,
            &labels,
            candidates,
            noise,
            device,
        );
        let files = pixels
            .chunks_exact(shape.pixel_count())
            .enumerate()
            .map(|(offset, chw)| {
                let png = encode_png(&chw_to_dynamic_image(chw, shape)?, "generated image")?;
                Ok((image_name(start + offset as u64), Bytes::from(png)))
            })
            .collect::<Result<Vec<_>>>()?;
        io.block_on(put_all(&folder, files))?;
        anygan_store::failpoint::hit_nth("abort-mid-generation");
        start = stop;
    }
    Ok(TaskOutcome {
        images: task.count,
        generated: task.count,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn put_all(location: &StoreLocation, files: Vec<(String, Bytes)>) -> Result<()> {
    let results = futures::stream::iter(files.into_iter().map(|(name, bytes)| {
        let location = location.clone();
        async move { location.put(&name, bytes).await }
    }))
    .buffer_unordered(UPLOADS_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    for result in results {
        result?;
    }
    Ok(())
}

async fn get_all(location: &StoreLocation, names: Vec<String>) -> Result<Vec<Bytes>> {
    let results = futures::stream::iter(names.into_iter().map(|name| {
        let location = location.clone();
        async move { location.get(&name).await }
    }))
    .buffered(UPLOADS_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    results
        .into_iter()
        .map(|r| r.map_err(Error::from))
        .collect()
}

/// Per-class numbers the manifest records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClassCounts {
    pub class: String,
    pub folder: String,
    pub original: usize,
    pub generated: usize,
    pub total: usize,
}

/// The run's manifest, written last.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GenerationManifest {
    pub plan: GenerationPlan,
    pub counts: Vec<ClassCounts>,
    /// Paths (relative to the root) of the rebalanced set's layouts, when written.
    pub rebalanced: Vec<String>,
    /// The generator weights the images were sampled from, e.g. `averaged (decay 0.999 since
    /// step 6000)` or `as trained`.
    #[serde(default)]
    pub sampled_weights: String,
    pub created_unix_ms: u64,
}

/// What a plan's images were sampled from: the checkpoint's average when asked for and kept.
fn sampled_weights(
    plan: &GenerationPlan,
    output: &StoreLocation,
    io: &tokio::runtime::Handle,
) -> Result<String> {
    let store = checkpoint_store(output, CheckpointOptions::default())?;
    let loaded = io.block_on(store.load(&plan.checkpoint, None))?;
    let description = Snapshot::from_checkpoint(&loaded)?.description;
    Ok(match (plan.spec.weights, description.generator_ema) {
        (GeneratorWeights::Averaged, Some(ema)) => format!(
            "averaged (decay {} since step {})",
            ema.decay, ema.since_step
        ),
        _ => "as trained".to_string(),
    })
}

fn decode_png(bytes: &[u8], shape: ImageShape, name: &str) -> Result<Vec<u8>> {
    let image = image::load_from_memory(bytes).map_err(|e| Error::ImageDecode {
        source_name: "generated images".into(),
        image: name.into(),
        reason: e.to_string(),
    })?;
    let (w, h) = (shape.width as u32, shape.height as u32);
    if (image.width(), image.height()) != (w, h) {
        return Err(Error::ImageDecode {
            source_name: "generated images".into(),
            image: name.into(),
            reason: format!("{}x{}, expected {w}x{h}", image.width(), image.height()),
        });
    }
    Ok(if shape.channels == 1 {
        image.to_luma8().into_raw()
    } else {
        let rgb = image.to_rgb8();
        let plane = shape.height * shape.width;
        let mut chw = vec![0u8; 3 * plane];
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                chw[c * plane + i] = px[c];
            }
        }
        chw
    })
}

/// Checks every class holds exactly its planned images, then writes the contact sheet, the
/// rebalanced set (when asked) and the manifest (last).
pub fn run_assemble(
    plan: &GenerationPlan,
    output: &StoreLocation,
    store_options: &[(String, String)],
    io: &tokio::runtime::Handle,
) -> Result<TaskOutcome> {
    let started = Instant::now();
    let root = output.join(&plan.root);
    let shape = ImageShape {
        channels: plan.model.channels,
        height: plan.model.image_size,
        width: plan.model.image_size,
    };
    let folders: Vec<String> = plan
        .classes
        .iter()
        .map(|c| class_folder(c.index, &c.name))
        .collect();

    // No gaps, no strays: the folder holds exactly gen-000000 .. gen-(n-1).
    let listed = io.block_on(root.list("images"))?;
    for (class, folder) in plan.classes.iter().zip(&folders) {
        let prefix = format!("images/{folder}/");
        let found: BTreeSet<&str> = listed
            .iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix))
            .collect();
        let expected: BTreeSet<String> = (0..class.generate as u64).map(image_name).collect();
        if let Some(missing) = expected.iter().find(|name| !found.contains(name.as_str())) {
            return Err(Error::checkpoint(
                root.describe(&format!("{prefix}{missing}")),
                format!(
                    "is missing: class {} has {} of its {} images",
                    class.name,
                    found.len(),
                    class.generate
                ),
            ));
        }
        if let Some(stray) = found.iter().find(|name| !expected.contains(**name)) {
            return Err(Error::checkpoint(
                root.describe(&format!("{prefix}{stray}")),
                "is not part of this generation plan",
            ));
        }
    }

    // Generated pixels per class, read back (PNG is lossless).
    let mut generated: Vec<Vec<(String, Bytes)>> = Vec::new();
    for (class, folder) in plan.classes.iter().zip(&folders) {
        let names: Vec<String> = (0..class.generate as u64).map(image_name).collect();
        let bytes = io.block_on(get_all(
            &root.join(&format!("images/{folder}")),
            names.clone(),
        ))?;
        generated.push(names.into_iter().zip(bytes).collect());
    }

    // Contact sheet: a row per class, its first generated images (blank where it has none).
    let mut sheet = vec![0u8; plan.classes.len() * SHEET_COLUMNS * shape.pixel_count()];
    for (row, images) in generated.iter().enumerate() {
        for (column, (name, png)) in images.iter().take(SHEET_COLUMNS).enumerate() {
            let at = (row * SHEET_COLUMNS + column) * shape.pixel_count();
            sheet[at..at + shape.pixel_count()].copy_from_slice(&decode_png(png, shape, name)?);
        }
    }
    let sheet = grid_png(&sheet, shape, plan.classes.len(), SHEET_COLUMNS)?;
    io.block_on(root.put("contact_sheet.png", sheet))?;

    let originals = plan.classes.iter().map(|c| c.original).collect::<Vec<_>>();
    let mut rebalanced = Vec::new();
    if plan.spec.rebalanced_set {
        let dataset = io.block_on(load_source(&plan.dataset, shape, store_options))?;
        if dataset.class_counts() != originals {
            return Err(Error::dataset(
                plan.dataset.location.clone(),
                format!(
                    "holds {:?} images per class, the checkpoint was trained on {:?}",
                    dataset.class_counts(),
                    originals
                ),
            ));
        }
        write_rebalanced(
            &root,
            &dataset,
            &folders,
            &generated,
            shape,
            io,
            &mut rebalanced,
        )?;
    }

    let manifest = GenerationManifest {
        plan: plan.clone(),
        counts: plan
            .classes
            .iter()
            .zip(&folders)
            .map(|(c, folder)| ClassCounts {
                class: c.name.clone(),
                folder: folder.clone(),
                original: c.original,
                generated: c.generate,
                total: c.original + c.generate,
            })
            .collect(),
        rebalanced,
        sampled_weights: sampled_weights(plan, output, io)?,
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Encode {
        what: "generation manifest".into(),
        reason: e.to_string(),
    })?;
    io.block_on(root.put(GENERATION_MANIFEST, json))?;
    Ok(TaskOutcome {
        images: generated.iter().map(|g| g.len() as u64).sum(),
        generated: 0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Originals + generated as image folders and (gray images, at most 256 classes) IDX.
fn write_rebalanced(
    root: &StoreLocation,
    dataset: &ImageDataset,
    folders: &[String],
    generated: &[Vec<(String, Bytes)>],
    shape: ImageShape,
    io: &tokio::runtime::Handle,
    written: &mut Vec<String>,
) -> Result<()> {
    let folder_root = root.join("rebalanced/folder");
    let mut idx_pixels = Vec::new();
    let mut idx_labels = Vec::new();
    for (class, folder) in folders.iter().enumerate() {
        let mut files = Vec::new();
        let originals = (0..dataset.len()).filter(|&i| usize::from(dataset.labels()[i]) == class);
        for (n, record) in originals.enumerate() {
            let chw = dataset.image(record);
            let png = encode_png(&chw_to_dynamic_image(chw, shape)?, "original image")?;
            files.push((format!("{folder}/orig-{n:06}.png"), Bytes::from(png)));
            idx_pixels.extend_from_slice(chw);
            idx_labels.push(class as u16);
        }
        for (name, png) in &generated[class] {
            files.push((format!("{folder}/{name}"), png.clone()));
            idx_pixels.extend(decode_png(png, shape, name)?);
            idx_labels.push(class as u16);
        }
        io.block_on(put_all(&folder_root, files))?;
    }
    written.push("rebalanced/folder".into());
    if shape.channels == 1 && folders.len() <= 256 {
        let idx = root.join("rebalanced/idx");
        let rebalanced = ImageDataset::new(
            shape,
            idx_pixels,
            idx_labels,
            dataset.class_names().to_vec(),
        )?;
        for (name, bytes) in idx_set_files(&rebalanced)? {
            io.block_on(idx.put(name, bytes))?;
        }
        written.push("rebalanced/idx".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{candidate_noise, image_noise};

    #[test]
    fn an_images_first_candidate_is_its_plain_noise_and_the_others_its_own() {
        let mut plain = vec![0f32; 16];
        image_noise(5, 2, 9, 0.5, &mut plain);
        let mut one = vec![0f32; 16];
        candidate_noise(5, 2, 9, 0.5, 1, &mut one);
        assert_eq!(one, plain, "one candidate is plain generation");
        let mut three = vec![0f32; 48];
        candidate_noise(5, 2, 9, 0.5, 3, &mut three);
        assert_eq!(three[..16], plain[..]);
        assert_ne!(three[16..32], three[..16]);
        assert_ne!(three[32..], three[16..32]);
        assert!(
            three.iter().all(|z| z.abs() <= 0.5),
            "truncated like the first"
        );
        let mut again = vec![0f32; 48];
        candidate_noise(5, 2, 9, 0.5, 3, &mut again);
        assert_eq!(again, three, "reproducible");
        let mut other_image = vec![0f32; 48];
        candidate_noise(5, 2, 10, 0.5, 3, &mut other_image);
        assert_ne!(other_image[16..], three[16..]);
    }

    fn noise(truncation: f32, index: u64) -> Vec<f32> {
        let mut out = vec![0f32; 4096];
        image_noise(5, 2, index, truncation, &mut out);
        out
    }

    #[test]
    fn truncated_noise_stays_within_bounds_and_is_reproducible() {
        let plain = noise(0.0, 9);
        assert!(
            plain.iter().any(|z| z.abs() > 1.0),
            "4096 standard normal draws exceed 1 somewhere"
        );
        let truncated = noise(1.0, 9);
        assert!(truncated.iter().all(|z| z.abs() <= 1.0));
        assert_eq!(
            truncated,
            noise(1.0, 9),
            "the same image gets the same noise"
        );
        assert_ne!(truncated, noise(1.0, 10), "another image gets other noise");
        // Components already inside the bound are kept as drawn.
        let kept = plain.iter().zip(&truncated).filter(|(p, t)| p == t).count();
        let inside = plain.iter().filter(|z| z.abs() <= 1.0).count();
        assert!(kept >= inside, "{kept} kept, {inside} inside");
        // Spread: a uniform-looking fill of [-1, 1], not a collapse to 0.
        let variance = truncated.iter().map(|z| z * z).sum::<f32>() / truncated.len() as f32;
        assert!((0.2..0.4).contains(&variance), "variance {variance}");
    }
}
