//! Checkpoint throughput for the standard model (W = 128, 10 classes, Adam moments filled by one
//! step) against a real S3 server (s3s-fs on loopback, installed by `.ci/run`) and local disk,
//! beside the same store's raw PUT/GET of the same bytes as one object.
//!
//! `cargo bench -p anygan-worker --bench checkpoint -- [--width 128] [--repeats 5]
//! [--multipart-mib 16]` prints:
//! - what the training thread pays per checkpoint (capturing the state as bytes and the
//!   parameter checksum), which is all a step ever waits for;
//! - commit (4 objects in parallel, multipart above 16 MiB, manifest, pointer, cleanup) and
//!   verified load (every object's SHA-256) in MB/s, against raw PUT and GET.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark fails loudly on broken setup

use std::time::{Duration, Instant};

use anygan_store::{CheckpointOptions, CheckpointStore, StoreLocation};
use anygan_tests::{S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};
use anygan_worker::backend::{BACKEND_NAME, TrainBackend, device};
use anygan_worker::checkpointing::{Checkpointer, RunDescription};
use anygan_worker::gan::{Batch, GanConfig, GanTrainer, TrainConfig};
use bytes::Bytes;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

struct Row {
    store: &'static str,
    what: &'static str,
    seconds: f64,
    bytes: u64,
}

fn main() {
    let width = arg("--width", 128);
    let repeats = arg("--repeats", 5).max(1);
    let device = device(0);
    let config = TrainConfig::new(GanConfig::new(10).with_width(width)).with_batch_size(8);
    let counts = vec![8usize; 10];
    let mut trainer = GanTrainer::<TrainBackend>::new(config, &counts, &device).unwrap();
    // One step, so the optimizers hold their moments (an untrained Adam saves nothing).
    let images = vec![0.0f32; 8 * 28 * 28];
    let labels: Vec<u16> = (0..8).map(|i| i % 10).collect();
    trainer.train_step(&Batch { images, labels }).unwrap();

    // What the training thread pays.
    let mut capture = Vec::new();
    let mut checksum = Vec::new();
    let mut snapshot = None;
    for _ in 0..repeats {
        let started = Instant::now();
        snapshot = Some(trainer.snapshot(&[], &counts).unwrap());
        capture.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let _ = trainer.parameter_checksum();
        checksum.push(started.elapsed().as_secs_f64());
    }
    let snapshot = snapshot.unwrap();
    let total: u64 = snapshot.blobs.iter().map(|(_, b)| b.len() as u64).sum();
    let largest = snapshot.blobs.iter().map(|(_, b)| b.len()).max().unwrap();
    println!(
        "standard model W={width} on {BACKEND_NAME}: checkpoint {:.2} MB in {} objects (largest {:.2} MB)",
        total as f64 / 1e6,
        snapshot.blobs.len(),
        largest as f64 / 1e6
    );
    println!(
        "training thread per checkpoint (median of {repeats}): capture {:.1} ms + parameter checksum {:.1} ms",
        median(capture) * 1e3,
        median(checksum) * 1e3
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = S3Server::start(&["bench"], Duration::from_secs(30)).expect("s3s-fs");
    let options: Vec<(String, String)> = [
        ("aws_endpoint", server.endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", S3_ACCESS_KEY),
        ("aws_secret_access_key", S3_SECRET_KEY),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let local_dir = tempfile::tempdir().unwrap();
    let stores = [
        (
            "s3s-fs (loopback)",
            StoreLocation::parse("s3://bench/run", options, false).unwrap(),
        ),
        (
            "local disk",
            StoreLocation::local(local_dir.path(), true).unwrap(),
        ),
    ];
    let one_object = Bytes::from(
        snapshot
            .blobs
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect::<Vec<u8>>(),
    );
    let mut rows = Vec::new();
    for (name, location) in &stores {
        let time = |f: &mut dyn FnMut()| -> f64 {
            median(
                (0..repeats)
                    .map(|_| {
                        let started = Instant::now();
                        f();
                        started.elapsed().as_secs_f64()
                    })
                    .collect(),
            )
        };
        let raw = location.join("raw");
        let seconds = time(&mut || {
            runtime
                .block_on(raw.put("state.bin", one_object.clone()))
                .unwrap()
        });
        rows.push(Row {
            store: name,
            what: "raw PUT, one object",
            seconds,
            bytes: total,
        });
        let seconds = time(&mut || {
            runtime.block_on(raw.get("state.bin")).unwrap();
        });
        rows.push(Row {
            store: name,
            what: "raw GET, one object",
            seconds,
            bytes: total,
        });

        let checkpoint_options = CheckpointOptions {
            keep: 2,
            multipart_threshold: arg("--multipart-mib", 16) << 20,
            ..CheckpointOptions::default()
        };
        let mut checkpointer = Checkpointer::new(
            location,
            checkpoint_options,
            RunDescription {
                writer: "bench".into(),
                job: serde_json::Value::Null,
                world_size: 1,
                class_names: Vec::new(),
                class_counts: counts.clone(),
            },
            runtime.handle().clone(),
        )
        .unwrap();
        let mut committed_bytes = 0;
        let mut store_side = Vec::new();
        let seconds = time(&mut || {
            let committed = checkpointer.save_and_wait(&trainer, 0, Vec::new()).unwrap();
            committed_bytes = committed.bytes;
            store_side.push(committed.seconds);
        });
        rows.push(Row {
            store: name,
            what: "checkpoint commit, capture to pointer",
            seconds,
            bytes: committed_bytes,
        });
        rows.push(Row {
            store: name,
            what: "checkpoint commit, background part",
            seconds: median(store_side),
            bytes: committed_bytes,
        });
        let store = CheckpointStore::new(location.join("checkpoints"), checkpoint_options).unwrap();
        let seconds = time(&mut || {
            let (loaded, _) = runtime.block_on(store.load_newest_valid()).unwrap();
            assert!(loaded.is_some());
        });
        rows.push(Row {
            store: name,
            what: "checkpoint load, verified",
            seconds,
            bytes: committed_bytes,
        });
    }
    println!();
    println!("| store | operation | median ms | MB/s |");
    println!("|---|---|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.1} | {:.0} |",
            row.store,
            row.what,
            row.seconds * 1e3,
            mb_per_s(row.bytes, row.seconds)
        );
    }
}
