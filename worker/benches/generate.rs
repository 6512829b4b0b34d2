//! Generation throughput of one worker for the standard model (W = 128, 10 classes): the
//! generator's forward pass alone, and whole generation tasks (noise, forward, PNG encoding,
//! writing every image to a local-disk store), in images per second.
//!
//! `cargo bench -p anygan-worker --bench generate -- [--width 128] [--images 1024]
//! [--batches 64,256] [--candidates 1] [--output-layer convolution|transposed]`
//! (`--candidates K`: every image the best of K candidates to the discriminator, as
//! `--generation-candidates K` generates; `--output-layer` as `worker join --output-layer`, the
//! backend's default unless given). A second table times anchored
//! generation's inversion: one invert task's batch of anchors through `--inversion-steps`
//! optimizer steps (`--anchors 64 --inversion-steps 20`).
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark fails loudly on broken setup

use std::time::Instant;

use anygan_proto::generation::{ANCHORS_PER_TASK, DEFAULT_INVERSION_STEPS, GeneratorWeights};
use anygan_proto::v1;
use anygan_store::{CheckpointOptions, StoreLocation};
use anygan_worker::backend::{BACKEND_NAME, ComputeBackend, TrainBackend, device};
use anygan_worker::checkpointing::{Checkpointer, RunDescription};
use anygan_worker::gan::invert::{InversionSettings, StartKey, invert};
use anygan_worker::gan::kernels::GeneratorKernels;
use anygan_worker::gan::sample::generate_from_noise;
use anygan_worker::gan::{GanConfig, GanTrainer, Generator, TrainConfig};
use anygan_worker::generate::{LoadedGenerator, run_generation_task};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let width: usize = arg("--width", "128").parse().unwrap();
    let images: u64 = arg("--images", "1024").parse().unwrap();
    let batches: Vec<usize> = arg("--batches", "64,256")
        .split(',')
        .map(|b| b.parse().unwrap())
        .collect();
    let candidates: u32 = arg("--candidates", "1").parse().unwrap();
    let mut kernels = GeneratorKernels::default();
    let output_layer = arg("--output-layer", kernels.output_layer.name());
    kernels.output_layer = output_layer.parse().expect("--output-layer");
    // Every generator built from here on (the loaded one included) computes this way.
    anygan_worker::backend::select_generator_kernels(kernels);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let device = device(0);
    let dir = tempfile::tempdir().unwrap();
    let output = StoreLocation::local(dir.path(), true).unwrap();
    let gan = GanConfig::new(10).with_width(width);
    let trainer =
        GanTrainer::<TrainBackend>::new(TrainConfig::new(gan.clone()), &[1; 10], &device).unwrap();
    let mut checkpointer = Checkpointer::new(
        &output,
        CheckpointOptions::default(),
        RunDescription {
            writer: "bench".into(),
            job: serde_json::Value::Null,
            world_size: 1,
            class_names: (0..10).map(|c| c.to_string()).collect(),
            class_counts: vec![1; 10],
        },
        runtime.handle().clone(),
    )
    .unwrap();
    let checkpoint = checkpointer
        .save_and_wait(&trainer, 0, Vec::new())
        .unwrap()
        .prefix;
    drop(trainer);
    let generator = LoadedGenerator::load(
        &output,
        &checkpoint,
        GeneratorWeights::Averaged,
        runtime.handle(),
        &device,
    )
    .unwrap();

    println!(
        "generation, W={width}, {images} images per measurement, {candidates} candidate(s) per image, backend {BACKEND_NAME}, {kernels}, one worker"
    );
    println!();
    println!("| batch | forward only (img/s) | whole task: forward + PNG + write (img/s) |");
    println!("|---:|---:|---:|");
    let mut cache = Some(generator);
    for &batch in &batches {
        // Forward only, on the same noise a task draws.
        let model: Generator<ComputeBackend> = cache.as_ref().unwrap().generator().clone();
        let labels = vec![3u16; batch];
        let noise = vec![0.1f32; batch * gan.latent_dim];
        let _ = generate_from_noise(&model, &gan, &labels, noise.clone(), &device); // warm-up
        let rounds = (images as usize).div_ceil(batch);
        let started = Instant::now();
        for _ in 0..rounds {
            let _ = generate_from_noise(&model, &gan, &labels, noise.clone(), &device);
        }
        let forward = (rounds * batch) as f64 / started.elapsed().as_secs_f64();

        let task = v1::GenerationTask {
            anchors: 0,
            task_id: 0,
            checkpoint: checkpoint.clone(),
            root: format!("generations/bench-{batch}"),
            class_index: 3,
            class_folder: "03-3".into(),
            first_index: 0,
            count: images,
            seed: 1,
            batch_size: batch as u32,
            truncation: 0.0,
            as_trained_weights: false,
            candidates,
        };
        let outcome =
            run_generation_task(&task, &output, &mut cache, runtime.handle(), &device).unwrap();
        let whole = outcome.images as f64 / outcome.seconds;
        println!("| {batch} | {forward:.0} | {whole:.0} |");
    }

    // Anchored generation's inversion: forward and backward through the frozen generator.
    let anchors: usize = arg("--anchors", &ANCHORS_PER_TASK.to_string())
        .parse()
        .unwrap();
    let steps: usize = arg("--inversion-steps", "20").parse().unwrap();
    let (generator, _) = gan.init::<TrainBackend>(&device).unwrap();
    let targets = vec![0.25f32; anchors * gan.image_shape().pixel_count()];
    let labels = vec![3u16; anchors];
    let key = StartKey {
        seed: 0,
        class: 3,
        first: 0,
    };
    let time = |steps| {
        let settings = InversionSettings {
            steps,
            ..InversionSettings::default()
        };
        let started = Instant::now();
        invert(&generator, &gan, &targets, &labels, settings, key, &device).unwrap();
        started.elapsed().as_secs_f64()
    };
    // The random starts alone, then with the optimizer steps: the difference is the steps'.
    let starts_seconds = time(0);
    let with_steps = time(steps);
    let per_step_ms = 1000.0 * (with_steps - starts_seconds) / steps.max(1) as f64;
    let default_steps = DEFAULT_INVERSION_STEPS;
    println!();
    println!(
        "inversion (anchored generation), {anchors} anchors, {} random starts each",
        InversionSettings::default().starts
    );
    println!();
    println!(
        "| anchors | starts (s) | ms per optimizer step | one invert task at {default_steps} steps (s) |"
    );
    println!("|---:|---:|---:|---:|");
    println!(
        "| {anchors} | {starts_seconds:.1} | {per_step_ms:.0} | {:.0} |",
        starts_seconds + per_step_ms * default_steps as f64 / 1000.0
    );
}
