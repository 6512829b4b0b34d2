//! The ring all-reduce over real gRPC on loopback against a reference sum.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::time::Duration;

use anygan_worker::collective::{DEFAULT_CHUNK_VALUES, LoopbackRing};

/// Integer-valued inputs: their sums are exact in f32 whatever the order of additions, so the
/// ring must match the reference bit for bit.
fn input(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((rank * 7919 + i * 31) % 2003) as f32 - 1000.0)
        .collect()
}

async fn check(world: usize, len: usize, chunk_values: usize) {
    let mut ring = LoopbackRing::start(world, Duration::from_secs(20), chunk_values)
        .await
        .expect("ring starts");
    let inputs: Vec<Vec<f32>> = (0..world).map(|r| input(r, len)).collect();
    let reference: Vec<f32> = (0..len)
        .map(|i| inputs.iter().map(|v| v[i]).sum())
        .collect();
    // Twice, so operation numbering across calls is exercised too.
    for _ in 0..2 {
        let outputs = ring.sum_all(inputs.clone()).await.expect("all-reduce");
        for (rank, output) in outputs.iter().enumerate() {
            assert!(
                output == &reference,
                "world {world}, length {len}: rank {rank} differs from the reference"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_reference_for_small_lengths() {
    for world in 1..=5usize {
        for len in [0, 1, world.saturating_sub(1), world + 1, 10_007] {
            check(world, len, DEFAULT_CHUNK_VALUES).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_reference_with_many_small_chunks() {
    // Chunks of 7 values: segments split into many chunks, the last one short.
    for world in [2, 3, 5] {
        check(world, 1009, 7).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_reference_for_a_standard_gradient_size() {
    // ~5.5 M values (22 MiB): many chunks per segment, far past tonic's 4 MiB message cap.
    for world in 1..=5 {
        check(world, 5_500_003, DEFAULT_CHUNK_VALUES).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_an_error_not_a_hang() {
    let mut ring = LoopbackRing::start(2, Duration::from_millis(300), DEFAULT_CHUNK_VALUES)
        .await
        .expect("ring starts");
    // Only rank 0 calls the all-reduce; rank 1 never sends.
    let mut rank0 = ring.ranks.remove(0);
    let mut data = vec![1.0f32; 100];
    let error = rank0
        .sum(&mut data)
        .await
        .expect_err("rank 1 never answers");
    assert!(error.to_string().contains("rank 1"), "{error}");
}
