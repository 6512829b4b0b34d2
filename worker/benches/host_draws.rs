//! Host time of a training step's random draws, against how anygan drew them before: the
//! discriminator's dropout masks (three per step; before, one f64 per element over the whole
//! global batch on every replica, the replica's rows kept) and the noise vectors (two per step;
//! before, the whole global batch's on every replica). `cargo bench -p anygan-worker --bench
//! host_draws`
#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench fails loudly on broken setup

use std::time::Instant;

use anygan_worker::gan::dropout::keep_mask;
use anygan_worker::rng::{Purpose, fill_standard_normal, fill_standard_normal_at, stream};
use rand::Rng;

const P: f64 = 0.4;
const REPEATS: u64 = 7;

const LATENT: usize = 100;

/// The previous mask draw, kept here as the baseline.
fn previous_mask(global_batch: usize, features: usize, rows: std::ops::Range<usize>) -> Vec<f32> {
    let mut rng = stream(0, Purpose::Dropout, 1, 0);
    let keep = (1.0 / (1.0 - P)) as f32;
    (0..global_batch * features)
        .map(|_| if rng.random::<f64>() < P { 0.0 } else { keep })
        .skip(rows.start * features)
        .take(rows.len() * features)
        .collect()
}

/// The previous noise draw: the global batch's, the replica's rows kept.
fn previous_noise(global_batch: usize, rows: std::ops::Range<usize>) -> Vec<f32> {
    let mut noise = vec![0f32; global_batch * LATENT];
    fill_standard_normal(&mut stream(0, Purpose::GeneratorNoise, 1, 0), &mut noise);
    noise[rows.start * LATENT..rows.end * LATENT].to_vec()
}

fn noise(rows: std::ops::Range<usize>) -> Vec<f32> {
    let mut noise = vec![0f32; rows.len() * LATENT];
    let mut rng = stream(0, Purpose::GeneratorNoise, 1, 0);
    fill_standard_normal_at(&mut rng, rows.start * LATENT, &mut noise);
    noise
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
                let before = best_ms(|| previous_mask(global_batch, features, rows.clone()));
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
    println!();
    println!(
        "noise, latent {LATENT}: host milliseconds per draw for the last rank (best of {REPEATS}); a step draws 2"
    );
    println!("| global batch | world size | previous (ms) | now (ms) | saved per step (ms) |");
    println!("|---|---|---|---|---|");
    for global_batch in [64usize, 256, 512] {
        for world_size in [1usize, 8] {
            let rows = (world_size - 1) * global_batch / world_size..global_batch;
            let before = best_ms(|| previous_noise(global_batch, rows.clone()));
            let now = best_ms(|| noise(rows.clone()));
            println!(
                "| {global_batch} | {world_size} | {before:.3} | {now:.3} | {:.2} |",
                2.0 * (before - now)
            );
        }
    }
}
