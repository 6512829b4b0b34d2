//! Host time to draw the discriminator's dropout masks (three per training step), against the
//! draw anygan used before: one f64 per element over the whole global batch on every replica,
//! the replica's rows kept. `cargo bench -p anygan-worker --bench dropout_mask`
#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench fails loudly on broken setup

use std::time::Instant;

use anygan_worker::gan::dropout::keep_mask;
use anygan_worker::rng::{Purpose, stream};
use rand::Rng;

const P: f64 = 0.4;
const REPEATS: u64 = 7;

/// The previous draw, kept here as the baseline.
fn previous(global_batch: usize, features: usize, rows: std::ops::Range<usize>) -> Vec<f32> {
    let mut rng = stream(0, Purpose::Dropout, 1, 0);
    let keep = (1.0 / (1.0 - P)) as f32;
    (0..global_batch * features)
        .map(|_| if rng.random::<f64>() < P { 0.0 } else { keep })
        .skip(rows.start * features)
        .take(rows.len() * features)
        .collect()
}

/// Best of `REPEATS` runs, in milliseconds.
fn best_ms(mut draw: impl FnMut() -> Vec<f32>) -> f64 {
    (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(draw());
            started.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!(
        "dropout masks, p = {P}: host milliseconds per mask for the last rank (best of {REPEATS}); a step draws 3"
    );
    println!(
        "| width | features | global batch | world size | previous (ms) | now (ms) | saved per step (ms) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for width in [64usize, 128] {
        let features = width * 7 * 7; // the 28×28 discriminator's last feature map
        for global_batch in [64usize, 256, 512] {
            for world_size in [1usize, 8] {
                let rows_per_replica = global_batch / world_size;
                // The last rank: the previous draw generated every row before its own, and the
                // ring waits for its slowest replica.
                let rows = (world_size - 1) * rows_per_replica..global_batch;
                let before = best_ms(|| previous(global_batch, features, rows.clone()));
                let now = best_ms(|| {
                    keep_mask(
                        stream(0, Purpose::Dropout, 1, 0),
                        P,
                        rows.start * features,
                        rows.len() * features,
                    )
                });
                println!(
                    "| {width} | {features} | {global_batch} | {world_size} | {before:.2} | {now:.2} | {:.1} |",
                    3.0 * (before - now)
                );
            }
        }
    }
}
