//! The evaluation classifier's speed: the fixed small CNN every method is judged with
//! (`eval::classifier`), trained and scored on synthetic 28×28 gray images of 10 classes. The
//! evaluation is most of the main job's time on a CPU (one classifier per method and seed), so
//! this is the number to watch when its training loop or burn's kernels change.
//! `cargo bench -p anygan-worker --bench classifier [-- --batch 128 --steps 40 --images 8192]`
#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench fails loudly on broken setup

use std::time::Instant;

use anygan_worker::backend::{BACKEND_NAME, ComputeBackend, TrainBackend, device};
use anygan_worker::data::{ImageDataset, ImageShape};
use anygan_worker::eval::classifier::{
    ClassifierConfig, ClassifierTraining, predict, train_classifier,
};
use rand::{Rng, SeedableRng};

const CLASSES: usize = 10;
const REPEATS: usize = 3;

struct Options {
    batch: usize,
    steps: usize,
    images: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        batch: value("--batch", 128),
        steps: value("--steps", 40),
        images: value("--images", 8192),
    }
}

/// Random gray images with random labels: the classifier's cost does not depend on content.
fn synthetic(images: usize) -> ImageDataset {
    let shape = ImageShape::GRAY_28;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let pixels = (0..images * shape.pixel_count())
        .map(|_| rng.random::<u8>())
        .collect();
    let labels = (0..images)
        .map(|_| rng.random_range(0..CLASSES as u16))
        .collect();
    let names = (0..CLASSES).map(|c| format!("class-{c}")).collect();
    ImageDataset::new(shape, pixels, labels, names).expect("synthetic dataset")
}

fn main() {
    let options = options();
    let device = device(0);
    let config = ClassifierConfig::new(CLASSES);
    // Exactly `steps` batches: one epoch over a set of steps × batch images.
    let training_set = synthetic(options.steps * options.batch);
    let training = ClassifierTraining::new()
        .with_epochs(1)
        .with_batch_size(options.batch);
    let scoring_set = synthetic(options.images);

    println!(
        "evaluation classifier (28×28 gray, {CLASSES} classes, {} backend), best of {REPEATS}",
        BACKEND_NAME
    );
    println!(
        "| batch | training steps | training (s) | ms per step | images/s trained | images scored | scoring (s) | images/s scored |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut best_training = f64::INFINITY;
    let mut best_scoring = f64::INFINITY;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let model =
            train_classifier::<TrainBackend>(&training_set, &config, &training, None, &device)
                .expect("training");
        best_training = best_training.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        std::hint::black_box(predict::<ComputeBackend>(&model, &scoring_set, &device));
        best_scoring = best_scoring.min(started.elapsed().as_secs_f64());
    }
    println!(
        "| {} | {} | {best_training:.2} | {:.1} | {:.0} | {} | {best_scoring:.2} | {:.0} |",
        options.batch,
        options.steps,
        best_training * 1e3 / options.steps as f64,
        (options.steps * options.batch) as f64 / best_training,
        options.images,
        options.images as f64 / best_scoring,
    );
}
