use super::*;
use anygan_proto::job::{DatasetFormat, DatasetSource, ModelSpec};

fn spec(min: usize, max: usize) -> JobSpec {
    JobSpec {
        job_id: "job".into(),
        dataset: DatasetSource {
            location: "/d".into(),
            format: DatasetFormat::Folder,
            class_counts: None,
            subset_seed: 0,
        },
        model: ModelSpec::default(),
        steps: 2,
        global_batch: 8,
        learning_rate: 1e-3,
        seed: 1,
        uniform_fake_labels: false,
        real_sampling: Default::default(),
        output: "out".into(),
        store_options: vec![],
        sample_every: 0,
        checksum_every: 0,
        checkpoint_every: 0,
        keep_checkpoints: 3,
        generation: None,
        evaluation: None,
        generate_from: None,
        min_workers: min,
        max_workers: max,
        collective_timeout_ms: 1000,
        shard_world_size: None,
    }
}

fn register(id: &str) -> v1::RegisterRequest {
    v1::RegisterRequest {
        protocol_version: anygan_proto::PROTOCOL_VERSION,
        worker_id: id.into(),
        collective_address: "127.0.0.1:1".into(),
        device: "cpu".into(),
    }
}

fn report(id: &str, generation: u64, step: u64, checksum: &str) -> v1::StepReport {
    v1::StepReport {
        worker_id: id.into(),
        generation,
        step,
        parameter_checksum: checksum.into(),
        ..Default::default()
    }
}

fn state(min: usize, max: usize) -> JobState {
    JobState::new(
        spec(min, max),
        Duration::from_secs(5),
        Duration::from_secs(1),
    )
    .expect("valid")
}

#[test]
fn registration_refusals() {
    let now = Instant::now();
    let mut job = state(2, 2);
    let wrong = v1::RegisterRequest {
        protocol_version: 99,
        ..register("a")
    };
    assert!(matches!(
        job.register(&wrong, now),
        Err(Error::ProtocolVersion { .. })
    ));
    job.register(&register("a"), now).expect("first");
    assert!(matches!(
        job.register(&register("a"), now),
        Err(Error::DuplicateWorker(_))
    ));
    job.register(&register("b"), now).expect("second");
    assert!(matches!(
        job.register(&register("c"), now),
        Err(Error::JobFull(_))
    ));
    let bad = v1::RegisterRequest {
        collective_address: "nowhere".into(),
        ..register("d")
    };
    assert!(matches!(
        job.register(&bad, now),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn starts_at_max_or_after_grace() {
    let now = Instant::now();
    let mut job = state(1, 3);
    job.register(&register("a"), now).expect("a");
    assert!(!job.tick(now), "grace period has not elapsed");
    assert!(job.assignment("a").expect("known").is_none());
    assert!(job.tick(now + Duration::from_secs(2)));
    let assignment = job.assignment("a").expect("known").expect("training");
    assert_eq!(
        (
            assignment.rank,
            assignment.world_size,
            assignment.generation
        ),
        (0, 1, 1)
    );
    assert!(matches!(
        job.register(&register("late"), now),
        Err(Error::JobFull(_))
    ));

    let mut full = state(1, 2);
    full.register(&register("a"), now).expect("a");
    full.register(&register("b"), now).expect("b");
    assert!(full.tick(now), "max reached starts at once");
    let b = full.assignment("b").expect("known").expect("training");
    assert_eq!(b.rank, 1);
    assert_eq!(b.peers.len(), 2);
}

#[test]
fn done_when_all_agree_failed_when_they_differ() {
    let now = Instant::now();
    let mut job = state(2, 2);
    job.register(&register("a"), now).expect("a");
    job.register(&register("b"), now).expect("b");
    job.tick(now);
    assert!(matches!(
        job.report_step(&report("a", 0, 1, ""), now),
        Err(Error::StaleGeneration { .. })
    ));
    assert!(job.report_step(&report("a", 1, 1, "x"), now).expect("ok"));
    assert!(job.report_step(&report("b", 1, 1, "x"), now).expect("ok"));
    job.report_step(&report("a", 1, 2, "y"), now).expect("ok");
    assert!(!job.is_finished());
    job.report_step(&report("b", 1, 2, "y"), now).expect("ok");
    assert!(matches!(
        job.phase,
        Phase::Done {
            replicas_identical: true
        }
    ));

    let mut diverging = state(2, 2);
    diverging.register(&register("a"), now).expect("a");
    diverging.register(&register("b"), now).expect("b");
    diverging.tick(now);
    diverging
        .report_step(&report("a", 1, 1, "x"), now)
        .expect("ok");
    let go_on = diverging
        .report_step(&report("b", 1, 1, "z"), now)
        .expect("ok");
    assert!(!go_on);
    assert!(matches!(&diverging.phase, Phase::Failed { reason } if reason.contains("step 1")));
}

#[test]
fn a_world_that_cannot_split_the_batch_fails_at_start() {
    let now = Instant::now();
    let mut job = JobState::new(
        JobSpec {
            global_batch: 8,
            ..spec(1, 3)
        },
        Duration::from_secs(5),
        Duration::from_secs(1),
    )
    .expect("valid");
    for id in ["a", "b", "c"] {
        job.register(&register(id), now).expect("registers");
    }
    assert!(job.tick(now));
    assert!(
        matches!(&job.phase, Phase::Failed { reason } if reason.contains("not divisible by 3"))
    );
}

#[test]
fn a_silent_worker_fails_the_job() {
    let now = Instant::now();
    let mut job = state(1, 1);
    job.register(&register("a"), now).expect("a");
    job.tick(now);
    assert!(!job.tick(now + Duration::from_secs(4)));
    assert!(job.tick(now + Duration::from_secs(6)));
    assert!(matches!(&job.phase, Phase::Failed { reason } if reason.contains("worker a")));
}
