//! The work a worker pulls from the coordinator after training (or in a generation-only job):
//! generation, assembly, evaluation and report tasks, each run on a blocking thread while the
//! heartbeats go on.

use std::time::Duration;

use anygan_proto::job::JobSpec;
use anygan_proto::metrics::Registry;
use anygan_proto::security::AuthedChannel;
use anygan_proto::v1;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_store::StoreLocation;

use crate::error::{Error, Result};
use crate::join::coordinator_call_error;

fn parse_plan(json: &str) -> Result<anygan_proto::generation::GenerationPlan> {
    serde_json::from_str(json).map_err(|e| Error::config("plan_json", e.to_string()))
}

/// What this worker's generation tasks came to.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskSummary {
    pub tasks: u64,
    /// Images generated (assembly and evaluation tasks generate none).
    pub generated: u64,
    pub seconds: f64,
}

/// Pulls tasks until the coordinator says the work is over; each runs on a blocking thread
/// (the generator is CPU/GPU bound) while heartbeats go on. A task's error is reported, not
/// fatal: the coordinator retries it elsewhere and fails the job if it keeps failing.
const TASKS_METRIC: &str = "anygan_tasks_total";
const TASKS_HELP: &str = "Tasks this worker finished, by outcome.";

pub(crate) async fn run_tasks(
    client: &mut CoordinatorClient<AuthedChannel>,
    worker_id: &str,
    address: &str,
    spec: &JobSpec,
    runtime: &tokio::runtime::Handle,
    metrics: &Registry,
) -> Result<TaskSummary> {
    let output = StoreLocation::parse(&spec.output, spec.store_options.iter().cloned(), true)?;
    let mut summary = TaskSummary::default();
    let mut cache: Option<crate::generate::LoadedGenerator> = None;
    loop {
        let mut request = tonic::Request::new(v1::TaskRequest {
            worker_id: worker_id.to_string(),
        });
        request.set_timeout(Duration::from_secs(30));
        let response = match client.next_task(request).await {
            Ok(response) => response.into_inner(),
            // A client-side timeout surfaces as CANCELLED ("Timeout expired").
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ) =>
            {
                continue;
            }
            Err(status) => {
                return Err(coordinator_call_error(address, "gave no task", &status));
            }
        };
        if response.finished {
            return Ok(summary);
        }
        let Some(task) = response.task else {
            continue;
        };
        let output = output.clone();
        let io = runtime.clone();
        let store_options = spec.store_options.clone();
        let (task_id, result, returned_cache) = tokio::task::spawn_blocking(move || {
            let device = crate::backend::selected_device();
            match task {
                v1::task_response::Task::Generate(task) => {
                    let result = crate::generate::run_generation_task(
                        &task, &output, &mut cache, &io, &device,
                    );
                    (task.task_id, result, cache)
                }
                v1::task_response::Task::Invert(task) => {
                    let result = parse_plan(&task.plan_json).and_then(|plan| {
                        crate::generate::anchored::run_invert_task(
                            &plan,
                            task.anchor_task as usize,
                            &output,
                            &store_options,
                            &io,
                            &device,
                        )
                    });
                    (task.task_id, result, cache)
                }
                v1::task_response::Task::Assemble(task) => {
                    let result = parse_plan(&task.plan_json).and_then(|plan| {
                        crate::generate::run_assemble(&plan, &output, &store_options, &io)
                    });
                    (task.task_id, result, cache)
                }
                v1::task_response::Task::Evaluate(task) => {
                    let result = parse_plan(&task.plan_json).and_then(|plan| {
                        crate::eval::tasks::run_evaluate_task(
                            &plan,
                            &task.method,
                            task.seed,
                            &output,
                            &store_options,
                            &io,
                        )
                    });
                    (task.task_id, result, cache)
                }
                v1::task_response::Task::Report(task) => {
                    let result = parse_plan(&task.plan_json)
                        .and_then(|plan| crate::eval::tasks::run_report_task(&plan, &output, &io));
                    (task.task_id, result, cache)
                }
            }
        })
        .await
        .map_err(|e| Error::config("generation", format!("the task thread panicked: {e}")))?;
        cache = returned_cache;
        let report = match &result {
            Ok(outcome) => {
                summary.tasks += 1;
                summary.generated += outcome.generated;
                summary.seconds += outcome.seconds;
                metrics.update(|m| {
                    m.add(TASKS_METRIC, TASKS_HELP, &[("outcome", "ok")], 1.0);
                    m.add(
                        "anygan_generated_images_total",
                        "Images this worker generated in tasks.",
                        &[],
                        outcome.generated as f64,
                    );
                });
                tracing::info!(
                    task = task_id,
                    images = outcome.images,
                    seconds = format!("{:.2}", outcome.seconds),
                    images_per_s =
                        format!("{:.0}", outcome.images as f64 / outcome.seconds.max(1e-9)),
                    "task done"
                );
                v1::TaskReport {
                    worker_id: worker_id.to_string(),
                    task_id,
                    error: String::new(),
                    images: outcome.images,
                    seconds: outcome.seconds,
                }
            }
            Err(error) => {
                tracing::error!(task = task_id, %error, "task failed");
                metrics.update(|m| m.add(TASKS_METRIC, TASKS_HELP, &[("outcome", "failed")], 1.0));
                v1::TaskReport {
                    worker_id: worker_id.to_string(),
                    task_id,
                    error: error.to_string(),
                    images: 0,
                    seconds: 0.0,
                }
            }
        };
        client
            .report_task(report)
            .await
            .map_err(|status| coordinator_call_error(address, "refused a task report", &status))?;
    }
}
