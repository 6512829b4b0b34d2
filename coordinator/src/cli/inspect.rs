//! The commands that look at a job rather than run one: `status` (a summary or JSON) and
//! `credentials` (what a cluster's TLS and token Secrets hold).

use std::path::PathBuf;
use std::process::ExitCode;

use anygan_proto::cli::SecurityArgs;
use anygan_proto::v1;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use clap::Args;

#[derive(Args, Debug)]
pub(super) struct CredentialsArgs {
    /// Directory to write into (files are created readable by their owner only).
    #[arg(long)]
    out: PathBuf,
    /// Name the certificate is issued for; clients check it.
    #[arg(long, default_value = anygan_proto::security::DEFAULT_SERVER_NAME)]
    server_name: String,
}

#[derive(Args, Debug)]
pub(super) struct StatusArgs {
    /// The coordinator's host:port.
    #[arg(long, env = "ANYGAN_COORDINATOR", default_value = "127.0.0.1:7070")]
    coordinator: String,
    #[command(flatten)]
    security: SecurityArgs,
    /// Print the status as JSON (for scripts) instead of a summary.
    #[arg(long)]
    json: bool,
}

/// One line of JSON with the job's outcome, for scripts and tests.
pub(super) fn status_json(status: &v1::JobStatus) -> serde_json::Value {
    let phase = v1::JobPhase::try_from(status.phase)
        .map(|p| {
            p.as_str_name()
                .trim_start_matches("JOB_PHASE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    serde_json::json!({
        "job_id": status.job_id,
        "phase": phase,
        "membership_generation": status.generation,
        "target_steps": status.target_steps,
        "start_step": status.start_step,
        "resumed_checkpoint": status.resumed_checkpoint,
        "completed_steps": status.completed_steps,
        "replicas_identical": status.replicas_identical,
        "failure": status.failure,
        "images_per_second": status.images_per_second,
        "generation_root": status.generation_root,
        "generation": status.generation_progress.iter().map(|c| serde_json::json!({
            "class": c.class_name, "done": c.done, "wanted": c.wanted,
        })).collect::<Vec<_>>(),
        "workers": status.workers.iter().map(|w| serde_json::json!({
            "worker_id": w.worker_id, "rank": w.rank, "step": w.step, "device": w.device,
            "final_checksum": w.final_checksum,
        })).collect::<Vec<_>>(),
    })
}

pub(super) async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let security = args.security.security().map_err(anyhow::Error::msg)?;
    let channel = security
        .connect(&args.coordinator)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut client = CoordinatorClient::new(channel);
    let status = client.get_status(v1::StatusRequest {}).await?.into_inner();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
    } else {
        print!("{}", status_summary(&status));
    }
    Ok(ExitCode::SUCCESS)
}

/// The status for people: job, phase, steps, throughput, one line per worker, generation.
fn status_summary(status: &v1::JobStatus) -> String {
    let json = status_json(status);
    let mut text = format!(
        "job {}: {} (membership generation {})\nsteps {}/{} (started at {}), {:.1} images/s\n",
        status.job_id,
        json["phase"].as_str().unwrap_or("?"),
        status.generation,
        status.completed_steps,
        status.target_steps,
        status.start_step,
        status.images_per_second
    );
    if !status.failure.is_empty() {
        text.push_str(&format!("failure: {}\n", status.failure));
    }
    text.push_str(&format!(
        "{:<6} {:<24} {:>10}  {}\n",
        "rank", "worker", "step", "device"
    ));
    for worker in &status.workers {
        text.push_str(&format!(
            "{:<6} {:<24} {:>10}  {}\n",
            worker.rank, worker.worker_id, worker.step, worker.device
        ));
    }
    if !status.generation_progress.is_empty() {
        let classes: Vec<String> = status
            .generation_progress
            .iter()
            .map(|c| format!("{} {}/{}", c.class_name, c.done, c.wanted))
            .collect();
        text.push_str(&format!("generated: {}\n", classes.join(", ")));
    }
    text
}

pub(super) fn credentials(args: &CredentialsArgs) -> anyhow::Result<ExitCode> {
    use anygan_proto::security::{GeneratedCredentials, generate_token, write_private};
    let generated =
        GeneratedCredentials::generate(&args.server_name).map_err(anyhow::Error::msg)?;
    let [ca, cert, key] = generated.write_to(&args.out).map_err(anyhow::Error::msg)?;
    let token = args.out.join("token");
    write_private(&token, generate_token().as_bytes()).map_err(anyhow::Error::msg)?;
    println!(
        "wrote {}, {}, {} and {} (certificate for {:?})",
        ca.display(),
        cert.display(),
        key.display(),
        token.display(),
        args.server_name
    );
    Ok(ExitCode::SUCCESS)
}
