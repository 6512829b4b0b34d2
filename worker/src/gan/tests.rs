//! Tests of the cDCGAN: shapes, determinism, exact resume, serialization, and learning.

use burn::prelude::*;

use super::params::{force_init, named_tensors, parameter_bits, parameter_count};
use super::sample::generate_images;
use super::state::{Snapshot, generator_safetensors, load_generator_only};
use super::*;
use crate::backend::{ComputeBackend, TrainBackend};
use crate::rng::Purpose;
use anygan_proto::generation::GeneratorWeights;
use anygan_store::StoreLocation;

type Train = TrainBackend;

/// Training options beyond the recipe: each changes training as it says and resumes exactly.
mod options;

/// Both networks, initialized under the init lock (other tests seed the shared RNG meanwhile).
pub(crate) fn locked_init(
    config: &GanConfig,
) -> (Generator<ComputeBackend>, Discriminator<ComputeBackend>) {
    super::train::seeded_init::<ComputeBackend, _>(&Default::default(), 0, || {
        let (g, d) = config
            .init::<ComputeBackend>(&Default::default())
            .expect("init");
        (force_init(g), force_init(d))
    })
}

fn tiny_config(seed: u64) -> TrainConfig {
    TrainConfig::new(GanConfig::new(2).with_width(8).with_latent_dim(16))
        .with_batch_size(8)
        .with_seed(seed)
}

/// A two-class set: class 0 dark images with a bright left half, class 1 bright with a dark
/// top half, so the classes differ in content and not only in brightness.
fn two_class_batch(step: u64) -> Batch {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..8u64 {
        let class = ((i + step) % 2) as u16;
        for y in 0..28 {
            for x in 0..28 {
                let on = if class == 0 { x < 14 } else { y >= 14 };
                images.push(if on { 0.8 } else { -0.8 });
            }
        }
        labels.push(class);
    }
    Batch { images, labels }
}

/// A tiny model that learns the two-class set within a hundred or so steps: no dropout, a
/// higher rate than the recipe's.
fn learning_config(seed: u64) -> TrainConfig {
    TrainConfig::new(
        GanConfig::new(2)
            .with_width(8)
            .with_latent_dim(16)
            .with_dropout(0.0),
    )
    .with_batch_size(8)
    .with_learning_rate(1e-3)
    .with_seed(seed)
}

fn trained(seed: u64, steps: u64) -> GanTrainer<Train> {
    let device = Default::default();
    let mut trainer =
        GanTrainer::<Train>::new(tiny_config(seed), &[4, 4], &device).expect("trainer");
    for _ in 0..steps {
        let step = trainer.step();
        trainer.train_step(&two_class_batch(step)).expect("step");
    }
    trainer
}

fn all_bits(trainer: &GanTrainer<Train>) -> (Vec<u32>, Vec<u32>) {
    (
        parameter_bits(&trainer.generator()),
        parameter_bits(&trainer.discriminator()),
    )
}

#[test]
fn output_shapes_for_both_presets() {
    let device = Default::default();
    for (config, side, channels) in [
        (GanConfig::new(10).with_width(16), 28, 1),
        (
            GanConfig::new(3)
                .with_width(16)
                .with_image_size(32)
                .with_channels(3),
            32,
            3,
        ),
    ] {
        let (generator, discriminator) = locked_init(&config);
        let noise = Tensor::<ComputeBackend, 2>::zeros([5, config.latent_dim], &device);
        let labels = Tensor::<ComputeBackend, 1, Int>::from_data(
            TensorData::new(vec![0i32, 1, 2, 0, 1], [5]),
            &device,
        );
        let images = generator.forward(noise, labels.clone());
        assert_eq!(images.dims(), [5, channels, side, side]);
        let logits = discriminator.forward(images, labels, None);
        assert_eq!(logits.dims(), [5, 1]);
    }
}

#[test]
fn standard_model_parameter_count_matches_the_recipe() {
    // Hand count of BENCHMARK.md's cdcgan-28 at W=128, C=10.
    let w = 128;
    let generator = 10 * 50
        + (50 * 49 + 49)
        + (100 * w * 49 + w * 49)
        + ((w + 1) * w * 16 + w)
        + (w * w * 16 + w)
        + (w * 49 + 1);
    let discriminator =
        10 * 50 + (50 * 784 + 784) + (2 * w * 9 + w) + (w * w * 9 + w) + (w * 49 + 1);
    let (g, d) = locked_init(&GanConfig::new(10));
    assert_eq!(parameter_count(&g), generator);
    assert_eq!(parameter_count(&d), discriminator);
}

#[test]
fn invalid_configs_are_refused() {
    assert!(GanConfig::new(10).with_image_size(30).validate().is_err());
    assert!(GanConfig::new(10).with_channels(2).validate().is_err());
    assert!(GanConfig::new(0).validate().is_err());
    assert!(GanConfig::new(10).with_dropout(1.0).validate().is_err());
    let device = Default::default();
    let err = GanTrainer::<Train>::new(tiny_config(0), &[1, 2, 3], &device)
        .err()
        .expect("3 counts, 2 classes");
    assert!(err.to_string().contains("num_classes"), "{err}");
    let mut trainer = GanTrainer::<Train>::new(tiny_config(0), &[4, 4], &device).expect("trainer");
    let mut short = two_class_batch(0);
    short.labels.pop();
    assert!(trainer.train_step(&short).is_err());
}

#[test]
fn same_seed_gives_identical_parameters() {
    let a = trained(3, 3);
    let b = trained(3, 3);
    let c = trained(4, 3);
    assert_eq!(all_bits(&a), all_bits(&b));
    assert_ne!(all_bits(&a), all_bits(&c));
}

/// Commits `trainer` as a checkpoint under `dir` the way a run does and reads it back.
fn through_checkpoint(trainer: &GanTrainer<Train>, dir: &std::path::Path) -> Snapshot {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let output = StoreLocation::local(dir, true).expect("store");
    let mut checkpointer = crate::checkpointing::Checkpointer::new(
        &output,
        anygan_store::CheckpointOptions::default(),
        crate::checkpointing::RunDescription {
            writer: "test".into(),
            job: serde_json::Value::Null,
            world_size: 1,
            class_names: vec!["a".into(), "b".into()],
            class_counts: vec![4, 4],
        },
        runtime.handle().clone(),
    )
    .expect("checkpointer");
    checkpointer
        .save_and_wait(trainer, 0, Vec::new())
        .expect("commit");
    let (snapshot, _) = runtime
        .block_on(crate::checkpointing::newest_snapshot(
            &output,
            anygan_store::CheckpointOptions::default(),
        ))
        .expect("load")
        .expect("a checkpoint");
    snapshot
}

#[test]
fn save_load_continue_equals_uninterrupted() {
    let uninterrupted = trained(11, 6);

    let first_half = trained(11, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = through_checkpoint(&first_half, dir.path());
    drop(first_half);

    let mut resumed = GanTrainer::<Train>::restore(loaded, &Default::default()).expect("restore");
    assert_eq!(resumed.step(), 3);
    while resumed.step() < 6 {
        let step = resumed.step();
        resumed.train_step(&two_class_batch(step)).expect("step");
    }
    assert_eq!(
        all_bits(&resumed),
        all_bits(&uninterrupted),
        "resume must be bit-exact"
    );
}

#[test]
fn a_snapshot_missing_a_blob_is_refused_by_name() {
    let trainer = trained(5, 1);
    let mut snapshot = trainer
        .snapshot(&["a".into(), "b".into()], &[4, 4])
        .expect("snapshot");
    snapshot
        .blobs
        .retain(|(name, _)| name != "discriminator_optim.mpk");
    let err = GanTrainer::<Train>::restore(snapshot, &Default::default())
        .err()
        .expect("incomplete");
    assert!(err.to_string().contains("discriminator_optim.mpk"), "{err}");
}

#[test]
fn generator_alone_loads_from_a_snapshot() {
    let trainer = trained(6, 2);
    let snapshot = trainer
        .snapshot(&["a".into(), "b".into()], &[4, 4])
        .expect("snapshot");
    let device = Default::default();
    let (generator, loaded) =
        load_generator_only::<ComputeBackend>(&snapshot, GeneratorWeights::Averaged, &device)
            .expect("load");
    assert_eq!(
        loaded,
        GeneratorWeights::AsTrained,
        "no average kept, so the weights as trained"
    );
    assert_eq!(
        parameter_bits(&generator),
        parameter_bits(&trainer.generator())
    );
}

fn trained_with_average(seed: u64, steps: u64, decay: f32) -> GanTrainer<Train> {
    let device = Default::default();
    let mut trainer =
        GanTrainer::<Train>::new(tiny_config(seed), &[4, 4], &device).expect("trainer");
    trainer.set_generator_ema(Some(decay)).expect("decay");
    for _ in 0..steps {
        let step = trainer.step();
        trainer.train_step(&two_class_batch(step)).expect("step");
    }
    trainer
}

#[test]
fn the_generator_average_leaves_training_alone_and_trails_the_weights() {
    let plain = trained(12, 4);
    let averaged = trained_with_average(12, 4, 0.5);
    assert_eq!(
        all_bits(&plain),
        all_bits(&averaged),
        "training never reads the average"
    );
    let average = parameter_bits(&averaged.sampling_generator());
    assert_ne!(average, parameter_bits(&averaged.generator()));
    assert_ne!(
        plain.parameter_checksum(),
        averaged.parameter_checksum(),
        "the replicas' checksum covers the average"
    );
    let settings = averaged.generator_ema().expect("kept");
    assert_eq!((settings.decay, settings.since_step), (0.5, 0));
}

#[test]
fn the_generator_average_resumes_bit_for_bit_and_generation_can_pick_either_weights() {
    let uninterrupted = trained_with_average(13, 6, 0.9);
    let first_half = trained_with_average(13, 3, 0.9);
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = through_checkpoint(&first_half, dir.path());
    drop(first_half);
    let device = Default::default();
    let (averaged, which) =
        load_generator_only::<ComputeBackend>(&loaded, GeneratorWeights::Averaged, &device)
            .expect("load");
    assert_eq!(which, GeneratorWeights::Averaged);
    let (as_trained, which) =
        load_generator_only::<ComputeBackend>(&loaded, GeneratorWeights::AsTrained, &device)
            .expect("load");
    assert_eq!(which, GeneratorWeights::AsTrained);
    assert_ne!(parameter_bits(&averaged), parameter_bits(&as_trained));

    let mut resumed = GanTrainer::<Train>::restore(loaded, &device).expect("restore");
    // The run asks again for the same average: it continues, it does not restart.
    resumed.set_generator_ema(Some(0.9)).expect("decay");
    while resumed.step() < 6 {
        let step = resumed.step();
        resumed.train_step(&two_class_batch(step)).expect("step");
    }
    assert_eq!(
        parameter_bits(&resumed.sampling_generator()),
        parameter_bits(&uninterrupted.sampling_generator()),
        "the average must resume bit for bit"
    );
    assert_eq!(
        resumed.parameter_checksum(),
        uninterrupted.parameter_checksum()
    );
}

#[test]
fn a_run_resumed_with_an_average_starts_it_at_the_resumed_weights() {
    let mut trainer = trained(14, 3);
    trainer.set_generator_ema(Some(0.99)).expect("decay");
    assert_eq!(trainer.generator_ema().expect("kept").since_step, 3);
    assert_eq!(
        parameter_bits(&trainer.sampling_generator()),
        parameter_bits(&trainer.generator())
    );
    let snapshot = trainer
        .snapshot(&["a".into(), "b".into()], &[4, 4])
        .expect("snapshot");
    let mut without_blob = snapshot.clone();
    without_blob
        .blobs
        .retain(|(name, _)| name != "generator_ema.mpk");
    let err = GanTrainer::<Train>::restore(without_blob, &Default::default())
        .err()
        .expect("the description promises an average");
    assert!(err.to_string().contains("generator_ema.mpk"), "{err}");
    trainer.set_generator_ema(None).expect("off");
    assert!(trainer.generator_ema().is_none());
    assert!(trainer.set_generator_ema(Some(1.0)).is_err());
}

#[test]
fn safetensors_export_has_pytorch_layout() {
    let trainer = trained(7, 1);
    let generator = trainer.generator();
    let bytes = generator_safetensors(&generator, &trainer.config().gan).expect("export");
    let loaded = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let burn_tensors = named_tensors(&generator);
    assert_eq!(loaded.len(), burn_tensors.len());
    let projection = loaded
        .tensor("noise_projection.weight")
        .expect("named like PyTorch");
    // burn stores Linear weights [in, out]; PyTorch wants [out, in].
    assert_eq!(projection.shape(), &[8 * 49, 16]);
    let burn_projection = burn_tensors
        .iter()
        .find(|t| t.name == "noise_projection.weight")
        .expect("present");
    let exported: Vec<f32> = projection
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // element [out=o, in=i] of the export equals burn's [i, o]
    let (o, i) = (5, 3);
    assert_eq!(
        exported[o * 16 + i],
        burn_projection.values[i * (8 * 49) + o]
    );
    assert_eq!(
        loaded.tensor("upsample.0.weight").expect("conv").shape(),
        &[9, 8, 4, 4]
    );
    assert_eq!(
        loaded.tensor("output.weight").expect("conv").shape(),
        &[1, 8, 7, 7]
    );
}

#[test]
fn training_moves_losses_and_learns_the_classes() {
    let device = Default::default();
    let config = learning_config(1);
    let mut trainer = GanTrainer::<Train>::new(config.clone(), &[4, 4], &device).expect("trainer");
    let first = trainer.train_step(&two_class_batch(0)).expect("step");
    assert_eq!(
        (first.class_real, first.class_generated),
        (None, None),
        "no auxiliary classifier, no class losses"
    );
    // The losses start at the no-information values (ln 4 and ln 2) and must leave them: the
    // mean over the last 30 steps, not the last step alone, which swings from step to step.
    let mut late = (0.0f32, 0.0f32);
    for step in 1..150 {
        let losses = trainer.train_step(&two_class_batch(step)).expect("step");
        if step >= 120 {
            late = (
                late.0 + losses.discriminator / 30.0,
                late.1 + losses.generator / 30.0,
            );
        }
    }
    assert!(
        (late.0 - first.discriminator).abs() > 0.05 && (late.1 - first.generator).abs() > 0.05,
        "losses did not move: {first:?} -> last 30 steps' mean (D, G) {late:?}"
    );
    // The generator must have learned each class's pattern: class 0's left half bright,
    // class 1's bottom half bright.
    let generator = trainer.generator();
    let labels: Vec<u16> = (0..32).map(|i| (i % 2) as u16).collect();
    let pixels = generate_images(
        &generator,
        &config.gan,
        &labels,
        (9, Purpose::SampleGrid, 0, 0),
        &device,
    );
    let (mut left_minus_right, mut bottom_minus_top) = ([0f64; 2], [0f64; 2]);
    for (image, &label) in pixels.chunks_exact(784).zip(&labels) {
        for (p, &v) in image.iter().enumerate() {
            let (y, x, v) = (p / 28, p % 28, f64::from(v));
            left_minus_right[usize::from(label)] += if x < 14 { v } else { -v };
            bottom_minus_top[usize::from(label)] += if y >= 14 { v } else { -v };
        }
    }
    // Per-pixel contrast between the classes; the real data's is (229 - 25) / 2 = 102 gray
    // levels, an untrained generator's is near 0.
    let pixels_per_class = 16.0 * 784.0;
    let left_contrast = (left_minus_right[0] - left_minus_right[1]) / pixels_per_class;
    let bottom_contrast = (bottom_minus_top[1] - bottom_minus_top[0]) / pixels_per_class;
    assert!(
        left_contrast > 40.0 && bottom_contrast > 40.0,
        "the classes' patterns were not learned: left contrast {left_contrast:.1}, bottom contrast {bottom_contrast:.1}"
    );
}

#[test]
fn blobs_of_another_architecture_are_refused() {
    let trainer = trained(8, 1);
    let mut snapshot = trainer
        .snapshot(&["a".into(), "b".into()], &[4, 4])
        .expect("snapshot");
    // A description edited to claim a wider model than its blobs hold.
    snapshot.description.config.gan.width = 16;
    let result = GanTrainer::<Train>::restore(snapshot, &Default::default());
    let error = result.err().expect("shapes differ");
    assert!(error.to_string().contains("generator.mpk"), "{error}");
}

#[test]
fn ranked_generation_keeps_the_candidate_the_discriminator_scores_highest() {
    use super::sample::{generate_from_noise, generate_ranked};
    let trainer = trained(15, 3);
    let (generator, discriminator) = (trainer.generator(), trainer.discriminator());
    let config = &trainer.config().gan;
    let device = Default::default();
    let (images, candidates, latent) = (4usize, 3usize, config.latent_dim);
    let labels: Vec<u16> = (0..images).map(|i| (i % 2) as u16).collect();
    let mut noise = vec![0f32; images * candidates * latent];
    crate::rng::fill_standard_normal(
        &mut crate::rng::stream(3, Purpose::Generation, 0, 0),
        &mut noise,
    );

    let size = config.image_shape().pixel_count();
    let ranked = generate_ranked(
        &generator,
        &discriminator,
        config,
        &labels,
        candidates,
        noise.clone(),
        &device,
    );
    assert_eq!(ranked.len(), images * size);
    // Every candidate generated and scored in one batch of the same shape (a conv's last bits
    // can depend on the batch shape).
    let candidate_labels: Vec<u16> = labels
        .iter()
        .flat_map(|&l| std::iter::repeat_n(l, candidates))
        .collect();
    let all_pixels = generate_from_noise(
        &generator,
        config,
        &candidate_labels,
        noise.clone(),
        &device,
    );
    let label_tensor = super::train::labels_tensor::<ComputeBackend>(&candidate_labels, &device);
    let z = Tensor::<ComputeBackend, 2>::from_data(
        TensorData::new(noise.clone(), [images * candidates, latent]),
        &device,
    );
    let scores: Vec<f32> = discriminator
        .forward(
            generator.forward(z, label_tensor.clone()),
            label_tensor,
            None,
        )
        .into_data()
        .into_vec::<f32>()
        .expect("f32 logits");
    let mut picked_other_than_first = false;
    for image in 0..images {
        let scores = &scores[image * candidates..(image + 1) * candidates];
        let best = (0..candidates)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
            .expect("candidates");
        picked_other_than_first |= best != 0;
        let row = image * candidates + best;
        assert_eq!(
            &ranked[image * size..(image + 1) * size],
            &all_pixels[row * size..(row + 1) * size],
            "image {image}: scores {scores:?}"
        );
    }
    assert!(picked_other_than_first, "the ranking chose something");
    // One candidate is plain generation.
    let first_rows: Vec<f32> = noise
        .chunks(candidates * latent)
        .flat_map(|rows| rows[..latent].to_vec())
        .collect();
    assert_eq!(
        generate_ranked(
            &generator,
            &discriminator,
            config,
            &labels,
            1,
            first_rows.clone(),
            &device
        ),
        generate_from_noise(&generator, config, &labels, first_rows, &device)
    );
}
