//! Saving and restoring a trainer: both models and both optimizers as bytes (named MessagePack
//! records, which restore ParamIds so Adam's moments line up) plus a description. Storing them,
//! checksummed, is the checkpoint store's job (`anygan_store::checkpoint`). Also the generator
//! alone as safetensors for PyTorch users.

use std::collections::HashMap;

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;

use anygan_proto::generation::GeneratorWeights;

use super::ema::{EmaSettings, GeneratorEma};
use super::model::{Discriminator, GanConfig, Generator};
use super::params::{named_tensors, parameter_shapes};
use super::train::{GanTrainer, TrainConfig};
use crate::error::{Error, Result};

/// Version of the snapshot layout; bumped when the layout changes.
pub const SNAPSHOT_FORMAT: u32 = 1;
/// Where the description is shown in messages (it is the manifest's `trainer` field).
pub const SNAPSHOT_DESCRIPTION: &str = "MANIFEST.json:trainer";

type ByteRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// What a snapshot holds besides the blobs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotDescription {
    pub format: u32,
    pub step: u64,
    pub config: TrainConfig,
    pub class_names: Vec<String>,
    pub class_counts: Vec<usize>,
    /// The moving average of the generator's weights, when the run keeps one (its weights are
    /// the `generator_ema.mpk` blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ema: Option<EmaSettings>,
    /// The transforms the discriminator's inputs went through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_augment: Option<super::augment::DiffAugment>,
    /// The weight of the mode-seeking term in the generator's loss, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_seeking: Option<f32>,
    /// The weight of the discriminator's mismatched-label term, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatched_labels: Option<f32>,
}

/// A trainer's full state in memory: description plus named blobs.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub description: SnapshotDescription,
    pub blobs: Vec<(String, bytes::Bytes)>,
}

impl Snapshot {
    /// The snapshot inside a checkpoint whose objects the store has verified.
    pub fn from_checkpoint(checkpoint: &anygan_store::LoadedCheckpoint) -> Result<Self> {
        let description: SnapshotDescription =
            serde_json::from_value(checkpoint.manifest.trainer.clone()).map_err(|e| {
                Error::checkpoint(
                    format!("{}/{SNAPSHOT_DESCRIPTION}", checkpoint.prefix),
                    format!("is not a trainer description: {e}"),
                )
            })?;
        let averaged = description.generator_ema.is_some().then_some(GENERATOR_EMA);
        let blobs = [
            GENERATOR,
            DISCRIMINATOR,
            GENERATOR_OPTIM,
            DISCRIMINATOR_OPTIM,
        ]
        .into_iter()
        .chain(averaged)
        .map(|name| Ok((name.to_string(), checkpoint.object(name)?.clone())))
        .collect::<Result<Vec<_>>>()?;
        Ok(Self { description, blobs })
    }

    fn blob(&self, name: &str) -> Result<Vec<u8>> {
        self.blobs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| bytes.to_vec())
            .ok_or_else(|| Error::checkpoint(name, "is missing from the snapshot"))
    }
}

const GENERATOR: &str = "generator.mpk";
const DISCRIMINATOR: &str = "discriminator.mpk";
const GENERATOR_OPTIM: &str = "generator_optim.mpk";
const DISCRIMINATOR_OPTIM: &str = "discriminator_optim.mpk";
const GENERATOR_EMA: &str = "generator_ema.mpk";

fn encode<B: burn::prelude::Backend, R: burn::record::Record<B>>(
    record: R,
    what: &str,
) -> Result<Vec<u8>> {
    Recorder::<B>::record(&ByteRecorder::default(), record, ())
        .map_err(|e| Error::checkpoint(what, format!("cannot encode: {e}")))
}

fn decode<B: burn::prelude::Backend, R: burn::record::Record<B>>(
    bytes: Vec<u8>,
    what: &str,
    device: &B::Device,
) -> Result<R> {
    Recorder::<B>::load(&ByteRecorder::default(), bytes, device)
        .map_err(|e| Error::checkpoint(what, format!("cannot decode: {e}")))
}

impl<B: AutodiffBackend> GanTrainer<B> {
    /// SHA-256 over the bits of every parameter value, generator, discriminator and the
    /// generator's average (if kept), in module order. Unlike the records' bytes (which carry per-process ParamIds), it is equal across
    /// processes exactly when the parameters are.
    pub fn parameter_checksum(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let averaged = self
            .generator_ema
            .as_ref()
            .map(|(_, ema)| super::params::parameter_bits(&ema.generator))
            .unwrap_or_default();
        for bits in super::params::parameter_bits(&self.generator)
            .into_iter()
            .chain(super::params::parameter_bits(&self.discriminator))
            .chain(averaged)
        {
            hasher.update(bits.to_le_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Captures models, optimizers and position. `class_names`/`class_counts` describe the data.
    pub fn snapshot(&self, class_names: &[String], class_counts: &[usize]) -> Result<Snapshot> {
        let mut blobs: Vec<(String, Vec<u8>)> = vec![
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
        if let Some((_, ema)) = &self.generator_ema {
            blobs.push((
                GENERATOR_EMA.to_string(),
                encode::<B::InnerBackend, _>(ema.generator.clone().into_record(), GENERATOR_EMA)?,
            ));
        }
        Ok(Snapshot {
            description: SnapshotDescription {
                format: SNAPSHOT_FORMAT,
                step: self.step,
                config: self.config.clone(),
                class_names: class_names.to_vec(),
                class_counts: class_counts.to_vec(),
                generator_ema: self.generator_ema(),
                diff_augment: self.diff_augment,
                mode_seeking: self.mode_seeking,
                mismatched_labels: self.mismatched_labels,
            },
            blobs: blobs
                .into_iter()
                .map(|(name, bytes)| (name, bytes::Bytes::from(bytes)))
                .collect(),
        })
    }

    /// Rebuilds a trainer from a snapshot (whose blobs the checkpoint store verified), refusing
    /// blobs that do not fit the described model.
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
        let generator_optim = snapshot.blob(GENERATOR_OPTIM)?;
        let discriminator_optim = snapshot.blob(DISCRIMINATOR_OPTIM)?;

        let mut trainer = Self::new(
            description.config.clone(),
            &description.class_counts,
            device,
        )?;
        trainer.generator = load_blob_into(trainer.generator, &snapshot, GENERATOR, device)?;
        trainer.discriminator =
            load_blob_into(trainer.discriminator, &snapshot, DISCRIMINATOR, device)?;
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
        trainer.diff_augment = description.diff_augment;
        trainer.mode_seeking = description.mode_seeking;
        // Through the setter: a description edited by hand is refused by name, not obeyed.
        trainer.set_mismatched_labels(description.mismatched_labels)?;
        if let Some(settings) = description.generator_ema {
            let averaged = decode_generator::<B::InnerBackend>(&snapshot, GENERATOR_EMA, device)?;
            trainer.generator_ema = Some((settings, GeneratorEma::starting_at(averaged)));
        }
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

/// The generator of a snapshot to sample from, on any backend (generation needs no autodiff or
/// optimizer): its weights' moving average when asked for and kept, else the generator as
/// trained. Returns which weights it loaded.
pub fn load_generator_only<B: burn::prelude::Backend>(
    snapshot: &Snapshot,
    weights: GeneratorWeights,
    device: &B::Device,
) -> Result<(Generator<B>, GeneratorWeights)> {
    let loaded = match (weights, snapshot.description.generator_ema) {
        (GeneratorWeights::Averaged, Some(_)) => GeneratorWeights::Averaged,
        _ => GeneratorWeights::AsTrained,
    };
    let blob = match loaded {
        GeneratorWeights::Averaged => GENERATOR_EMA,
        GeneratorWeights::AsTrained => GENERATOR,
    };
    Ok((decode_generator(snapshot, blob, device)?, loaded))
}

/// A generator blob (`generator.mpk` or `generator_ema.mpk`) decoded into the described model.
fn decode_generator<B: burn::prelude::Backend>(
    snapshot: &Snapshot,
    blob: &str,
    device: &B::Device,
) -> Result<Generator<B>> {
    let (generator, _) = described_models::<B>(snapshot, device)?;
    load_blob_into(generator, snapshot, blob, device)
}

/// The discriminator of a snapshot, on any backend (for ranking generated candidates).
pub fn load_discriminator_only<B: burn::prelude::Backend>(
    snapshot: &Snapshot,
    device: &B::Device,
) -> Result<Discriminator<B>> {
    let (_, discriminator) = described_models::<B>(snapshot, device)?;
    load_blob_into(discriminator, snapshot, DISCRIMINATOR, device)
}

/// Both networks of the described architecture, to load blobs into. Their initial values are
/// overwritten, but drawing them must not interleave with another thread's seeded
/// initialization.
fn described_models<B: burn::prelude::Backend>(
    snapshot: &Snapshot,
    device: &B::Device,
) -> Result<(Generator<B>, Discriminator<B>)> {
    super::train::seeded_init::<B, _>(device, 0, || {
        snapshot
            .description
            .config
            .gan
            .init::<B>(device)
            .map(|(g, d)| (super::params::force_init(g), super::params::force_init(d)))
    })
}

/// `model` with the weights of `blob`, refused unless every parameter's shape fits.
fn load_blob_into<B: burn::prelude::Backend, M: Module<B>>(
    model: M,
    snapshot: &Snapshot,
    blob: &str,
    device: &B::Device,
) -> Result<M> {
    let expected = parameter_shapes(&model);
    let model = model.load_record(decode::<B, M::Record>(snapshot.blob(blob)?, blob, device)?);
    check_shapes(blob, &expected, &parameter_shapes(&model))?;
    Ok(model)
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
