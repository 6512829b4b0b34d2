//! The Prometheus endpoints of a real coordinator and a real worker during a real job: the
//! named series are there and their values move as training goes on.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::time::{Duration, Instant};

use anygan_proto::metrics::{sample, scrape};
use anygan_tests::{CoordinatorProcess, WorkerProcess, tiny_job_args, write_tiny_idx};

const DEADLINE: Duration = Duration::from_secs(120);

/// The address a worker logged for its metrics endpoint.
fn logged_metrics_address(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("metrics listening"))?;
    let start = line.find("address=")? + "address=".len();
    Some(line[start..].split_whitespace().next()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoints_serve_the_named_series_with_moving_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_idx(dir.path(), 64).expect("data");
    let data = dir.path().to_str().expect("utf-8");
    let output = dir.path().join("out");
    // Long enough that training is still on while the loop below sees its values move (a
    // step takes a few milliseconds), and the endpoint stays up a while after the end.
    let mut args = tiny_job_args(data, output.to_str().expect("utf-8"), "300", "2");
    args.extend([
        "--metrics-listen",
        "127.0.0.1:0",
        "--checkpoint-every",
        "20",
        "--linger-s",
        "5",
        // So that the auxiliary classifier's losses are reported too.
        "--auxiliary-classifier",
        "1",
    ]);
    let coordinator = CoordinatorProcess::start(&args, DEADLINE).expect("coordinator");
    let metrics = coordinator
        .metrics_address
        .clone()
        .expect("the coordinator printed its metrics address");
    let log = dir.path().join("w0.log");
    let _workers = [
        WorkerProcess::join_with(
            &coordinator.address,
            "w0",
            &["--metrics-listen", "127.0.0.1:0"],
            &[],
            Some(&log),
        )
        .expect("worker"),
        WorkerProcess::join(&coordinator.address, "w1").expect("worker"),
    ];
    assert_eq!(scrape(&metrics, "/healthz").await.expect("health").0, 200);

    // Scrape until training is well under way, remembering what moved.
    let until = Instant::now() + DEADLINE;
    let mut first_step: Option<f64> = None;
    let mut seen_losses = std::collections::BTreeSet::new();
    let mut text = String::new();
    let mut worker_text = String::new();
    loop {
        assert!(
            Instant::now() < until,
            "training metrics never moved:\n{text}"
        );
        let (status, body) = scrape(&metrics, "/metrics").await.expect("scrape");
        assert_eq!(status, 200);
        text = body;
        if let Some(step) = sample(&text, "anygan_worker_step", &[("worker", "w0")])
            && sample(&text, "anygan_step_seconds", &[("worker", "w0")]).is_some()
        {
            first_step.get_or_insert(step);
            if let Some(loss) = sample(&text, "anygan_discriminator_loss", &[("worker", "w0")]) {
                seen_losses.insert(loss.to_bits());
            }
            if let Some(address) = logged_metrics_address(&log)
                && let Ok((200, body)) = scrape(&address, "/metrics").await
            {
                worker_text = body;
            }
            let moved = first_step.is_some_and(|first| step >= first + 20.0);
            if moved
                && seen_losses.len() > 2
                // Rank 0 (w0 or w1, whichever registered first) commits checkpoints.
                && text.contains("anygan_checkpoint_seconds{")
                && sample(&worker_text, "anygan_worker_step", &[]).is_some()
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let w0 = [("worker", "w0")];
    assert_eq!(
        sample(&text, "anygan_live_workers", &[]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "anygan_job_phase", &[("phase", "training")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "anygan_target_steps", &[]), Some(300.0));
    for name in [
        "anygan_all_reduce_seconds",
        "anygan_all_reduce_bytes",
        "anygan_generator_loss",
        "anygan_class_loss_real",
        "anygan_class_loss_generated",
    ] {
        assert!(
            sample(&text, name, &w0).is_some(),
            "{name} missing:\n{text}"
        );
    }
    let committed: f64 = ["w0", "w1"]
        .iter()
        .filter_map(|w| {
            sample(
                &text,
                "anygan_checkpoints_committed_total",
                &[("worker", w)],
            )
        })
        .sum();
    assert!(committed >= 1.0, "{text}");
    assert!(sample(&text, "anygan_all_reduce_bytes", &w0).expect("bytes") > 0.0);
    assert!(
        sample(&text, "anygan_all_reduce_bytes_per_second", &w0).expect("bandwidth") > 0.0,
        "{text}"
    );
    assert!(sample(&text, "anygan_images_per_second", &[]).expect("throughput") > 0.0);
    // The worker's own endpoint: its step and cumulative traffic.
    assert!(sample(&worker_text, "anygan_worker_step", &[]).expect("step") > 0.0);
    assert!(
        sample(&worker_text, "anygan_all_reduce_bytes_total", &[]).expect("bytes total") > 0.0,
        "{worker_text}"
    );
    for name in ["anygan_class_loss_real", "anygan_class_loss_generated"] {
        let loss = sample(&worker_text, name, &[]).expect(name);
        assert!(
            loss.is_finite() && loss > 0.0,
            "{name} {loss}:\n{worker_text}"
        );
    }

    // Generation after training: its progress reaches what was wanted.
    let mut generated = false;
    while Instant::now() < until {
        let Ok((200, body)) = scrape(&metrics, "/metrics").await else {
            break; // the coordinator exited after the job
        };
        let done = body
            .lines()
            .filter(|l| l.starts_with("anygan_generation_images_done{"))
            .count();
        let complete = sample(&body, "anygan_job_phase", &[("phase", "done")]) == Some(1.0);
        if done > 0 && complete {
            let wanted: f64 = sum_of(&body, "anygan_generation_images_wanted{");
            assert_eq!(sum_of(&body, "anygan_generation_images_done{"), wanted);
            generated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(generated, "never saw the finished generation's progress");
    let (status, success) = tokio::task::spawn_blocking(move || coordinator.wait(DEADLINE))
        .await
        .expect("join")
        .expect("job ends");
    assert!(success, "{status}");
}

fn sum_of(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
