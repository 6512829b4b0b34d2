use super::*;
use anygan_proto::job::{DatasetFormat, DatasetSource};

fn spec(min: usize, max: usize) -> JobSpec {
    JobSpec {
        job_id: "job".into(),
        dataset: DatasetSource {
            location: "/d".into(),
            format: DatasetFormat::Folder,
            class_counts: None,
            subset_seed: 0,
        },
        steps: 2,
        global_batch: 8,
        learning_rate: 1e-3,
        seed: 1,
        min_workers: min,
        max_workers: max,
        ..JobSpec::for_tests()
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
    job_of(spec(min, max))
}

/// A job of `spec`: heartbeat timeout 5 s, start grace 1 s.
fn job_of(spec: JobSpec) -> JobState {
    JobState::new(spec, Duration::from_secs(5), Duration::from_secs(1)).expect("valid")
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
    // Elastic join: a late worker is admitted into a re-formed ring with rank 0's state.
    job.report_step(&report("a", 1, 1, ""), now).expect("a1");
    job.register(&register("late"), now)
        .expect("admitted while training");
    let late = job.assignment("late").expect("known").expect("assigned");
    assert_eq!((late.rank, late.world_size, late.generation), (1, 2, 2));
    assert_eq!(late.start_step, 1, "from the step the ring had completed");
    assert_eq!(
        late.state_source, "127.0.0.1:1",
        "rank 0's collective address"
    );
    assert_eq!(
        job.assignment("a")
            .expect("a")
            .expect("assigned")
            .state_source,
        "",
        "rank 0 has its state"
    );
    assert_eq!(job.events.joins, 1);
    // A third cannot split the global batch of 8; a fourth would pass max_workers anyway.
    assert!(matches!(
        job.register(&register("third"), now),
        Err(Error::JobFull(reason)) if reason.contains("ring of 3")
    ));

    let mut full = state(1, 2);
    full.register(&register("a"), now).expect("a");
    full.register(&register("b"), now).expect("b");
    assert!(full.tick(now), "max reached starts at once");
    let b = full.assignment("b").expect("known").expect("training");
    assert_eq!(b.rank, 1);
    assert_eq!(b.peers.len(), 2);
    assert!(matches!(
        full.register(&register("late"), now),
        Err(Error::JobFull(_))
    ));
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
    let mut job = job_of(JobSpec {
        global_batch: 8,
        ..spec(1, 3)
    });
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
    assert!(
        matches!(&job.phase, Phase::Failed { reason } if reason.contains("0 worker(s) remain")),
        "{:?}",
        job.phase
    );
    assert_eq!(job.events.workers_lost, 1);
}

/// Three workers training 10 steps at global batch 8; `a` and `b` finished step 4 and 5, `c`
/// step 4 and then went silent.
fn three_training() -> (JobState, Instant) {
    let now = Instant::now();
    let mut job = job_of(JobSpec {
        steps: 10,
        global_batch: 12,
        ..spec(2, 3)
    });
    for id in ["a", "b", "c"] {
        job.register(&register(id), now).expect("register");
    }
    assert!(job.tick(now));
    assert_eq!(job.generation(), 1);
    job.report_step(&report("a", 1, 4, "x4"), now).expect("a4");
    job.report_step(&report("b", 1, 4, "x4"), now).expect("b4");
    job.report_step(&report("c", 1, 4, "x4"), now).expect("c4");
    job.report_step(&report("a", 1, 5, "x5"), now).expect("a5");
    (job, now)
}

#[test]
fn survivors_are_re_formed_from_the_lowest_completed_step() {
    let (mut job, now) = three_training();
    // a and b keep beating; c is silent.
    let later = now + Duration::from_secs(6);
    job.heartbeat("a", later).expect("a");
    job.heartbeat("b", later).expect("b");
    assert!(job.tick(later));
    assert!(matches!(job.phase, Phase::Training), "{:?}", job.phase);
    assert_eq!(job.generation(), 2, "a new ring");
    assert_eq!(job.events.workers_lost, 1);
    assert_eq!(job.events.reforms, 1);
    let assignment = job.assignment("b").expect("b").expect("assigned");
    assert_eq!(
        (
            assignment.generation,
            assignment.rank,
            assignment.world_size
        ),
        (2, 1, 2)
    );
    assert_eq!(
        assignment.start_step, 4,
        "the lowest step a survivor completed"
    );
    assert!(matches!(job.assignment("c"), Err(Error::UnknownWorker(_))));
    // The old ring's reports are refused (fencing), a's step-5 checksum is forgotten, and
    // step 5 is run again in the new ring with other numbers without looking like divergence.
    assert!(matches!(
        job.report_step(&report("b", 1, 5, "x5"), later),
        Err(Error::StaleGeneration { .. })
    ));
    job.report_step(&report("a", 2, 5, "y5"), later)
        .expect("a5'");
    assert!(job.events.recovering.is_some(), "b has not stepped yet");
    job.report_step(&report("b", 2, 5, "y5"), later + Duration::from_millis(300))
        .expect("b5'");
    assert!(matches!(job.phase, Phase::Training), "{:?}", job.phase);
    assert!(job.events.recovering.is_none());
    assert!((job.events.last_recovery_seconds - 0.3).abs() < 1e-6);
    assert!(job.events.last_detection_seconds >= 6.0);
}

#[test]
fn a_survivor_the_batch_cannot_include_is_dropped_and_too_few_pause_the_job() {
    let (mut job, now) = three_training();
    // Losing c and b leaves a alone: below min_workers 2, the job pauses; a keeps the state.
    let later = now + Duration::from_secs(6);
    job.heartbeat("a", later).expect("a");
    assert!(job.tick(later));
    assert_eq!(job.phase_code(), v1::JobPhase::Paused, "{:?}", job.phase);

    // 4 workers at global batch 8 (min 2): losing one leaves 3, which cannot split 8; the ring
    // goes on with 2 and the third survivor is left out.
    let now = Instant::now();
    let mut job = state(2, 4);
    for id in ["a", "b", "c", "d"] {
        job.register(&register(id), now).expect("register");
    }
    assert!(job.tick(now));
    let later = now + Duration::from_secs(6);
    for id in ["a", "b", "c"] {
        job.heartbeat(id, later).expect("beat");
    }
    assert!(job.tick(later));
    assert_eq!(job.members.len(), 2);
    assert_eq!(job.events.workers_dropped, 1);
    assert_eq!(
        job.assignment("a")
            .expect("a")
            .expect("assigned")
            .world_size,
        2
    );
}

#[test]
fn below_min_workers_the_job_pauses_and_resumes_when_a_worker_joins() {
    let now = Instant::now();
    let mut job = state(2, 2);
    for id in ["a", "b"] {
        job.register(&register(id), now).expect("register");
    }
    assert!(job.tick(now));
    job.report_step(&report("a", 1, 1, ""), now).expect("a1");
    job.report_step(&report("b", 1, 1, ""), now).expect("b1");
    // b goes silent: a alone is below min_workers 2, but holds the state.
    let later = now + Duration::from_secs(6);
    job.heartbeat("a", later).expect("a");
    assert!(job.tick(later));
    assert_eq!(job.phase_code(), v1::JobPhase::Paused, "{:?}", job.phase);
    assert!(
        job.assignment("a").expect("a").is_none(),
        "no ring while paused"
    );
    assert!(
        !job.tick(later + Duration::from_secs(1)),
        "a is within its timeout"
    );
    // A new worker brings the job back to two: training resumes, the newcomer fetches a's state.
    job.register(&register("c"), later)
        .expect("admitted while paused");
    assert_eq!(job.phase_code(), v1::JobPhase::Training);
    let c = job.assignment("c").expect("c").expect("assigned");
    assert_eq!((c.world_size, c.start_step), (2, 1));
    assert_eq!(c.state_source, "127.0.0.1:1");

    // Paused again, and then the last holder of the state is lost too: the job fails, saying
    // how to go on.
    let mut alone = state(2, 2);
    for id in ["a", "b"] {
        alone.register(&register(id), now).expect("register");
    }
    assert!(alone.tick(now));
    alone.heartbeat("a", later).expect("a");
    assert!(alone.tick(later));
    assert_eq!(alone.phase_code(), v1::JobPhase::Paused);
    assert!(alone.tick(later + Duration::from_secs(6)));
    assert!(
        matches!(&alone.phase, Phase::Failed { reason } if reason.contains("newest checkpoint")),
        "{:?}",
        alone.phase
    );
}

#[test]
fn a_worker_that_leaves_while_training_is_dropped_at_once_and_the_survivors_re_form() {
    let (mut job, now) = three_training();
    // No time passes: c is well within its heartbeat timeout, but says it stops.
    assert!(job.leave("c", "file /data/labels.idx: permission denied", now));
    assert!(matches!(job.phase, Phase::Training), "{:?}", job.phase);
    assert_eq!(job.generation(), 2, "a new ring at once");
    assert_eq!((job.events.workers_lost, job.events.workers_left), (0, 1));
    let metrics = crate::metrics::render(&job);
    assert!(
        metrics.contains("anygan_workers_left_total 1\n")
            && metrics.contains("anygan_workers_lost_total 0\n"),
        "{metrics}"
    );
    let b = job.assignment("b").expect("b").expect("assigned");
    assert_eq!((b.world_size, b.start_step), (2, 4));
    assert!(matches!(job.assignment("c"), Err(Error::UnknownWorker(_))));
    // Leaving twice, or a worker never seen, changes nothing.
    assert!(!job.leave("c", "again", now));
    assert!(!job.leave("stranger", "?", now));
    assert_eq!((job.generation(), job.events.workers_left), (2, 1));
}

#[test]
fn a_job_that_fails_for_want_of_workers_names_who_stopped_and_why() {
    let now = Instant::now();
    let mut job = state(1, 1);
    job.register(&register("a"), now).expect("a");
    assert!(job.tick(now));
    job.report_step(&report("a", 1, 1, ""), now).expect("a1");
    assert!(job.leave(
        "a",
        "object store /nonexistent: No such file or directory (os error 2)",
        now
    ));
    let Phase::Failed { reason } = &job.phase else {
        panic!("the job goes on without workers: {:?}", job.phase);
    };
    assert!(reason.contains("0 worker(s) remain"), "{reason}");
    assert!(
        reason.contains("a stopped: object store /nonexistent: No such file or directory"),
        "{reason}"
    );
    assert_eq!(
        job.status().completed_steps,
        1,
        "the steps done are still reported with nobody left"
    );
    // A silent worker's loss names nobody: it said nothing.
    let mut silent = state(1, 1);
    silent.register(&register("a"), now).expect("a");
    silent.tick(now);
    assert!(silent.tick(now + Duration::from_secs(6)));
    assert!(
        matches!(&silent.phase, Phase::Failed { reason } if !reason.contains("stopped")),
        "{:?}",
        silent.phase
    );
}

#[test]
fn a_failure_names_the_newest_departures_with_each_reason_cut_to_length() {
    let now = Instant::now();
    // A global batch every ring of 1 to 6 splits, so nobody is left out of a re-formed ring.
    let mut job = job_of(JobSpec {
        global_batch: 60,
        ..spec(1, 6)
    });
    let ids = ["a", "b", "c", "d", "e", "f"];
    for id in ids {
        job.register(&register(id), now).expect("register");
    }
    assert!(job.tick(now));
    let long = "x".repeat(10_000);
    for id in ids {
        job.leave(id, &format!("{id} {long}"), now);
    }
    let Phase::Failed { reason } = &job.phase else {
        panic!("{:?}", job.phase);
    };
    assert_eq!(job.events.workers_left, 6);
    assert!(
        !reason.contains("a stopped") && !reason.contains("b stopped"),
        "{reason}"
    );
    for id in ["c", "d", "e", "f"] {
        assert!(reason.contains(&format!("{id} stopped: {id} xxx")), "{id}");
    }
    assert!(reason.len() < 4 * 2100 + 200, "{} bytes", reason.len());
}

#[test]
fn a_worker_that_leaves_before_training_is_forgotten_and_the_grace_starts_again() {
    let now = Instant::now();
    let mut job = state(2, 3);
    for id in ["a", "b"] {
        job.register(&register(id), now).expect("register");
    }
    assert!(!job.tick(now), "minimum reached: the grace period starts");
    assert!(job.leave("b", "stopped by SIGTERM before the job was done", now));
    assert_eq!(job.members.len(), 1);
    // b's id is free again, and training waits for the minimum and a whole grace period anew.
    let later = now + Duration::from_millis(900);
    job.register(&register("b"), later).expect("b again");
    assert!(!job.tick(later));
    // 1.4 s after the minimum was first reached, but 0.5 s after it was reached again.
    assert!(
        !job.tick(later + Duration::from_millis(500)),
        "the grace period counts from the return"
    );
    assert!(job.tick(later + Duration::from_secs(1)));
    assert_eq!(job.phase_code(), v1::JobPhase::Training);
}

#[test]
fn a_replica_that_finished_training_may_leave_without_a_new_ring() {
    let now = Instant::now();
    let mut job = state(2, 2);
    for id in ["a", "b"] {
        job.register(&register(id), now).expect("register");
    }
    assert!(job.tick(now));
    job.report_step(&report("a", 1, 2, "z"), now)
        .expect("a done");
    assert!(!job.leave("a", "exiting", now));
    assert_eq!((job.generation(), job.members.len()), (1, 2));
    job.report_step(&report("b", 1, 2, "z"), now)
        .expect("b done");
    assert!(
        matches!(
            job.phase,
            Phase::Done {
                replicas_identical: true
            }
        ),
        "{:?}",
        job.phase
    );
}

#[test]
fn a_worker_that_leaves_during_generation_hands_its_tasks_back_and_the_last_fails_the_job() {
    let now = Instant::now();
    let mut job = job_of(JobSpec {
        generate_from: Some("step-1".into()),
        generation: Some(anygan_proto::generation::GenerationSpec::default()),
        ..spec(2, 2)
    });
    for id in ["a", "b"] {
        job.register(&register(id), now).expect("register");
    }
    assert!(job.tick(now));
    assert_eq!(job.phase_code(), v1::JobPhase::Generating);
    job.start_generation(crate::generation::test_plan());
    let held = job.next_task("a", now).expect("a").expect("a task");
    assert!(held.task.is_some());
    assert!(job.leave("a", "out of memory", now));
    let Phase::Generating {
        board: Some(board), ..
    } = &job.phase
    else {
        panic!("{:?}", job.phase);
    };
    assert!(board.holders().is_empty(), "a's task is free again");
    assert!(job.leave("b", "disk full", now));
    let Phase::Failed { reason } = &job.phase else {
        panic!("{:?}", job.phase);
    };
    assert!(
        reason.contains("every worker left")
            && reason.contains("a stopped: out of memory; b stopped: disk full"),
        "{reason}"
    );
}

#[test]
fn a_worker_silent_while_the_job_waits_gets_no_rank() {
    let now = Instant::now();
    let mut job = state(2, 3);
    for id in ["a", "b", "c"] {
        job.register(&register(id), now).expect("register");
    }
    // Full at once, but c died before the first tick looked: only a and b beat.
    let later = now + Duration::from_secs(6);
    job.heartbeat("a", later).expect("a");
    job.heartbeat("b", later).expect("b");
    assert!(job.tick(later), "c is dropped");
    assert_eq!(job.events.workers_lost, 1);
    assert!(matches!(job.assignment("c"), Err(Error::UnknownWorker(_))));
    assert_eq!(job.phase_code(), v1::JobPhase::WaitingForWorkers);
    // The minimum is in, the grace period runs from here.
    assert!(!job.tick(later + Duration::from_millis(500)));
    assert!(job.tick(later + Duration::from_secs(1)));
    let b = job.assignment("b").expect("b").expect("assigned");
    assert_eq!(b.world_size, 2);
    // Below the minimum nobody starts, however long it waits.
    let mut alone = state(2, 2);
    alone.register(&register("a"), now).expect("a");
    alone.register(&register("b"), now).expect("b");
    alone.heartbeat("a", later).expect("a");
    assert!(alone.tick(later));
    assert!(!alone.tick(later + Duration::from_secs(1)));
    assert_eq!(alone.phase_code(), v1::JobPhase::WaitingForWorkers);
}
