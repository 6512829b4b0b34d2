//! Saving and restoring a trainer: both models and both optimizers as bytes (named MessagePack
//! records, which restore ParamIds so Adam's moments line up), each checksummed, plus a JSON
//! description written last. Also the generator alone as safetensors for PyTorch users.

use std::collections::HashMap;

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use sha2::{Digest, Sha256};

use super::model::{GanConfig, Generator};
use super::params::{named_tensors, parameter_shapes};
use super::train::{GanTrainer, TrainConfig};
use crate::error::{Error, Result};
use crate::storage::StoreLocation;

/// Version of the snapshot layout; bumped when the layout changes.
pub const SNAPSHOT_FORMAT: u32 = 1;
/// The description object, written after every blob it lists.
pub const SNAPSHOT_DESCRIPTION: &str = "state.json";

type ByteRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// One stored blob of a snapshot and how to verify it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlobEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What a snapshot holds besides the blobs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotDescription {
    pub format: u32,
    pub step: u64,
    pub config: TrainConfig,
    pub class_names: Vec<String>,
    pub class_counts: Vec<usize>,
    pub blobs: Vec<BlobEntry>,
}

/// A trainer's full state in memory: description plus named blobs.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub description: SnapshotDescription,
    pub blobs: Vec<(String, Vec<u8>)>,
}

const GENERATOR: &str = "generator.mpk";
const DISCRIMINATOR: &str = "discriminator.mpk";
const GENERATOR_OPTIM: &str = "generator_optim.mpk";
const DISCRIMINATOR_OPTIM: &str = "discriminator_optim.mpk";

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn encode<B: AutodiffBackend, R: burn::record::Record<B>>(
    record: R,
    what: &str,
) -> Result<Vec<u8>> {
    Recorder::<B>::record(&ByteRecorder::default(), record, ())
        .map_err(|e| Error::checkpoint(what, format!("cannot encode: {e}")))
}

fn decode<B: AutodiffBackend, R: burn::record::Record<B>>(
    bytes: Vec<u8>,
    what: &str,
    device: &B::Device,
) -> Result<R> {
    Recorder::<B>::load(&ByteRecorder::default(), bytes, device)
        .map_err(|e| Error::checkpoint(what, format!("cannot decode: {e}")))
}

impl<B: AutodiffBackend> GanTrainer<B> {
    /// Captures models, optimizers and position. `class_names`/`class_counts` describe the data.
    pub fn snapshot(&self, class_names: &[String], class_counts: &[usize]) -> Result<Snapshot> {
        let blobs = vec![
            (
                GENERATOR.to_string(),
                encode::<B, _>(self.generator.clone().into_record(), GENERATOR)?,
            ),
            (
                DISCRIMINATOR.to_string(),
                encode::<B, _>(self.discriminator.clone().into_record(), DISCRIMINATOR)?,
            ),
            (
                GENERATOR_OPTIM.to_string(),
                encode::<B, _>(self.generator_optim.to_record(), GENERATOR_OPTIM)?,
            ),
            (
                DISCRIMINATOR_OPTIM.to_string(),
                encode::<B, _>(self.discriminator_optim.to_record(), DISCRIMINATOR_OPTIM)?,
            ),
        ];
        let entries = blobs
            .iter()
            .map(|(name, bytes)| BlobEntry {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect();
        Ok(Snapshot {
            description: SnapshotDescription {
                format: SNAPSHOT_FORMAT,
                step: self.step,
                config: self.config.clone(),
                class_names: class_names.to_vec(),
                class_counts: class_counts.to_vec(),
                blobs: entries,
            },
            blobs,
        })
    }

    /// Rebuilds a trainer from a snapshot after verifying every blob's size and checksum.
    pub fn restore(snapshot: Snapshot, device: &B::Device) -> Result<Self> {
        let description = &snapshot.description;
        if description.format != SNAPSHOT_FORMAT {
            return Err(Error::checkpoint(
                SNAPSHOT_DESCRIPTION,
                format!(
                    "format {} is not the supported {SNAPSHOT_FORMAT}",
                    description.format
                ),
            ));
        }
        let mut blobs: HashMap<String, Vec<u8>> = snapshot.blobs.into_iter().collect();
        let mut take = |name: &str| -> Result<Vec<u8>> {
            let entry = description
                .blobs
                .iter()
                .find(|e| e.name == name)
                .ok_or_else(|| {
                    Error::checkpoint(SNAPSHOT_DESCRIPTION, format!("lists no `{name}`"))
                })?;
            let bytes = blobs
                .remove(name)
                .ok_or_else(|| Error::checkpoint(name, "is missing"))?;
            verify(entry, &bytes)?;
            Ok(bytes)
        };
        let generator = take(GENERATOR)?;
        let discriminator = take(DISCRIMINATOR)?;
        let generator_optim = take(GENERATOR_OPTIM)?;
        let discriminator_optim = take(DISCRIMINATOR_OPTIM)?;

        let mut trainer = Self::new(
            description.config.clone(),
            &description.class_counts,
            device,
        )?;
        let expected = parameter_shapes(&trainer.generator);
        trainer.generator = trainer
            .generator
            .load_record(decode::<B, _>(generator, GENERATOR, device)?);
        check_shapes(GENERATOR, &expected, &parameter_shapes(&trainer.generator))?;
        let expected = parameter_shapes(&trainer.discriminator);
        trainer.discriminator = trainer.discriminator.load_record(decode::<B, _>(
            discriminator,
            DISCRIMINATOR,
            device,
        )?);
        check_shapes(
            DISCRIMINATOR,
            &expected,
            &parameter_shapes(&trainer.discriminator),
        )?;
        trainer.generator_optim = trainer.generator_optim.load_record(decode::<B, _>(
            generator_optim,
            GENERATOR_OPTIM,
            device,
        )?);
        trainer.discriminator_optim = trainer.discriminator_optim.load_record(decode::<B, _>(
            discriminator_optim,
            DISCRIMINATOR_OPTIM,
            device,
        )?);
        trainer.step = description.step;
        Ok(trainer)
    }
}

/// burn loads a record of any shape; refuse one that does not fit the described model.
fn check_shapes(blob: &str, expected: &[Vec<usize>], loaded: &[Vec<usize>]) -> Result<()> {
    if expected != loaded {
        return Err(Error::checkpoint(
            blob,
            format!(
                "holds parameters of shapes {loaded:?}, the described model needs {expected:?}"
            ),
        ));
    }
    Ok(())
}

fn verify(entry: &BlobEntry, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != entry.size {
        return Err(Error::checkpoint(
            &entry.name,
            format!(
                "is {} bytes, the description says {}",
                bytes.len(),
                entry.size
            ),
        ));
    }
    let actual = sha256_hex(bytes);
    if actual != entry.sha256 {
        return Err(Error::checkpoint(
            &entry.name,
            format!(
                "SHA-256 {actual} does not match the recorded {}",
                entry.sha256
            ),
        ));
    }
    Ok(())
}

/// Writes every blob, then the description (last, so a reader that finds it finds all blobs).
pub async fn save_snapshot(location: &StoreLocation, snapshot: &Snapshot) -> Result<()> {
    for (name, bytes) in &snapshot.blobs {
        location.put(name, bytes.clone()).await?;
    }
    let description = serde_json::to_vec_pretty(&snapshot.description)
        .map_err(|e| Error::checkpoint(location.describe(SNAPSHOT_DESCRIPTION), e.to_string()))?;
    location.put(SNAPSHOT_DESCRIPTION, description).await
}

/// Reads a snapshot written by [`save_snapshot`]; checksums are verified by
/// [`GanTrainer::restore`] and by [`load_generator_only`].
pub async fn load_snapshot(location: &StoreLocation) -> Result<Snapshot> {
    let raw = location.get(SNAPSHOT_DESCRIPTION).await?;
    let description: SnapshotDescription = serde_json::from_slice(&raw).map_err(|e| {
        Error::checkpoint(
            location.describe(SNAPSHOT_DESCRIPTION),
            format!("is not valid: {e}"),
        )
    })?;
    let mut blobs = Vec::with_capacity(description.blobs.len());
    for entry in &description.blobs {
        blobs.push((
            entry.name.clone(),
            location.get(&entry.name).await?.to_vec(),
        ));
    }
    Ok(Snapshot { description, blobs })
}

/// The generator of a snapshot, on any backend (generation needs no autodiff or optimizer).
pub fn load_generator_only<B: burn::prelude::Backend>(
    snapshot: &Snapshot,
    device: &B::Device,
) -> Result<Generator<B>> {
    let entry = snapshot
        .description
        .blobs
        .iter()
        .find(|e| e.name == GENERATOR)
        .ok_or_else(|| Error::checkpoint(SNAPSHOT_DESCRIPTION, "lists no generator"))?;
    let bytes = snapshot
        .blobs
        .iter()
        .find(|(name, _)| name == GENERATOR)
        .map(|(_, bytes)| bytes.clone())
        .ok_or_else(|| Error::checkpoint(GENERATOR, "is missing"))?;
    verify(entry, &bytes)?;
    let (generator, _) = snapshot.description.config.gan.init::<B>(device)?;
    let expected = parameter_shapes(&generator);
    let record = Recorder::<B>::load(&ByteRecorder::default(), bytes, device)
        .map_err(|e| Error::checkpoint(GENERATOR, format!("cannot decode: {e}")))?;
    let generator = generator.load_record(record);
    check_shapes(GENERATOR, &expected, &parameter_shapes(&generator))?;
    Ok(generator)
}

/// The generator's weights as safetensors with PyTorch's conventions: keys are module paths
/// (`noise_projection.weight`, `upsample.0.weight`, ...), Linear weights transposed to
/// `[out, in]`; conv and embedding weights already match PyTorch's layout. The model config is
/// stored in the metadata under `anygan.gan_config`.
pub fn generator_safetensors<B: burn::prelude::Backend>(
    generator: &Generator<B>,
    config: &GanConfig,
) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = named_tensors(generator)
        .into_iter()
        .map(|t| {
            let (shape, values) =
                if t.owner == "Struct:Linear" && t.name.ends_with("weight") && t.shape.len() == 2 {
                    let (rows, cols) = (t.shape[0], t.shape[1]);
                    let mut transposed = vec![0f32; t.values.len()];
                    for r in 0..rows {
                        for c in 0..cols {
                            transposed[c * rows + r] = t.values[r * cols + c];
                        }
                    }
                    (vec![cols, rows], transposed)
                } else {
                    (t.shape, t.values)
                };
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name, shape, bytes)
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::Encode {
                    what: format!("safetensors tensor {name}"),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("anygan.gan_config".to_string(), config.to_json_string()),
    ]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Encode {
        what: "generator safetensors".into(),
        reason: e.to_string(),
    })
}

trait ConfigJson {
    fn to_json_string(&self) -> String;
}

impl ConfigJson for GanConfig {
    fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() // a plain struct of numbers always serializes
    }
}
