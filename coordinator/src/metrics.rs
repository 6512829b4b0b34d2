//! The coordinator's Prometheus metrics, rendered from the job state at scrape time: nothing
//! is kept twice, and a scrape sees the same numbers `coordinator status` does.

use anygan_proto::metrics::{Exposition, record_step};
use anygan_proto::v1;

use crate::state::JobState;

/// Every phase a job can be in, as `anygan_job_phase{phase=...}` reports them (1 for the
/// current one, 0 for the others, so a dashboard can graph transitions).
const PHASES: [(v1::JobPhase, &str); 6] = [
    (v1::JobPhase::WaitingForWorkers, "waiting_for_workers"),
    (v1::JobPhase::Training, "training"),
    (v1::JobPhase::Paused, "paused"),
    (v1::JobPhase::Generating, "generating"),
    (v1::JobPhase::Done, "done"),
    (v1::JobPhase::Failed, "failed"),
];

pub fn render(state: &JobState) -> String {
    let status = state.status();
    let mut m = Exposition::default();
    let phase = state.phase_code();
    for (code, name) in PHASES {
        m.gauge(
            "anygan_job_phase",
            "1 for the phase the job is in, 0 for the others.",
            &[("phase", name)],
            f64::from(u8::from(code == phase)),
        );
    }
    m.gauge(
        "anygan_membership_generation",
        "Membership generation; bumped whenever the ring is formed again.",
        &[],
        status.generation as f64,
    );
    m.gauge(
        "anygan_target_steps",
        "Steps the job trains for.",
        &[],
        status.target_steps as f64,
    );
    m.gauge(
        "anygan_completed_steps",
        "The lowest step every live worker has completed.",
        &[],
        status.completed_steps as f64,
    );
    m.gauge(
        "anygan_live_workers",
        "Workers in the job now.",
        &[],
        status.workers.len() as f64,
    );
    m.gauge(
        "anygan_images_per_second",
        "Training throughput over all workers (smoothed).",
        &[],
        status.images_per_second,
    );
    let events = &state.events;
    m.counter(
        "anygan_workers_lost_total",
        "Workers declared lost (no heartbeat within the timeout).",
        &[],
        events.workers_lost as f64,
    );
    m.counter(
        "anygan_workers_left_total",
        "Workers that said they stop (an error, SIGTERM) or, started by the coordinator, exited with a failure.",
        &[],
        events.workers_left as f64,
    );
    m.counter(
        "anygan_ring_reforms_total",
        "Times the survivors were re-formed into a new ring.",
        &[],
        events.reforms as f64,
    );
    m.counter(
        "anygan_workers_dropped_total",
        "Healthy survivors left out of a re-formed ring (the global batch did not divide).",
        &[],
        events.workers_dropped as f64,
    );
    m.gauge(
        "anygan_last_detection_seconds",
        "Silence of the last lost worker when it was declared lost.",
        &[],
        events.last_detection_seconds,
    );
    m.gauge(
        "anygan_last_recovery_seconds",
        "From declaring a worker lost to every survivor completing a step in the new ring.",
        &[],
        events.last_recovery_seconds,
    );
    for member in &state.members {
        let worker = [("worker", member.worker_id.as_str())];
        match &member.last_report {
            Some(report) => record_step(&mut m, report, &worker),
            None => m.gauge(
                "anygan_worker_step",
                "Steps the worker has completed.",
                &worker,
                member.step as f64,
            ),
        }
    }
    for class in &status.generation_progress {
        let labels = [("class", class.class_name.as_str())];
        m.gauge(
            "anygan_generation_images_done",
            "Images generated so far, by class.",
            &labels,
            class.done as f64,
        );
        m.gauge(
            "anygan_generation_images_wanted",
            "Images the generation run makes, by class.",
            &labels,
            class.wanted as f64,
        );
    }
    m.render()
}
