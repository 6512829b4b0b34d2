//! What the coordinator learns from the object store before it serves a job: that the output
//! location is writable (wrong credentials or a missing bucket fail here, before any training),
//! and where a job started again resumes: the newest checkpoint that verifies, object by object.
//! Nothing else is kept: the store is the job's memory.

use anygan_proto::generation::{
    GenerationPlan, class_plans, plan_root, split_anchor_tasks, split_tasks,
};
use anygan_proto::job::{DatasetFormat, JobSpec};
use anygan_store::{CheckpointOptions, CheckpointStore, StoreLocation};

use crate::error::{Error, Result};

/// A verified checkpoint to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// Prefix under `<output>/checkpoints/`.
    pub prefix: String,
    pub step: u64,
}

/// Checks the output location and finds the checkpoint to resume from, if any.
pub async fn prepare_output(spec: &JobSpec) -> Result<Option<ResumePoint>> {
    let output = StoreLocation::parse(&spec.output, spec.store_options.iter().cloned(), true)?;
    output.check_writable().await?;
    let store = CheckpointStore::for_output(
        &output,
        CheckpointOptions {
            keep: spec.keep_checkpoints,
            ..CheckpointOptions::default()
        },
    )?;
    let (loaded, refusals) = store.load_newest_valid().await?;
    for refusal in &refusals {
        tracing::warn!(%refusal, "checkpoint refused; using an older one");
    }
    let Some(checkpoint) = loaded else {
        return Ok(None);
    };
    let location = store.location().describe(&checkpoint.prefix);
    let saved: JobSpec =
        serde_json::from_value(checkpoint.manifest.job.clone()).map_err(|e| Error::Checkpoint {
            location: location.clone(),
            reason: format!("its manifest holds no job spec this coordinator reads: {e}"),
        })?;
    if let Some(conflict) = spec.resume_conflict(&saved) {
        return Err(Error::Checkpoint {
            location,
            reason: format!(
                "cannot continue this job: {conflict}; use another --output or the same settings"
            ),
        });
    }
    let step = checkpoint.manifest.step;
    if step >= spec.steps {
        return Err(Error::Checkpoint {
            location,
            reason: format!(
                "is already at step {step}, the job asks for {}: raise --steps to train further",
                spec.steps
            ),
        });
    }
    tracing::info!(step, checkpoint = %location, "resuming from checkpoint");
    Ok(Some(ResumePoint {
        prefix: checkpoint.prefix,
        step,
    }))
}

/// The generation plan of `spec`: the checkpoint (`generate_from`, else the one `latest`
/// names, which is the final one once training is over), its classes and counts from the
/// manifest, and the tasks.
pub async fn generation_plan(spec: &JobSpec) -> Result<GenerationPlan> {
    let generation = spec
        .generation
        .clone()
        .ok_or_else(|| Error::InvalidJob("generation was not asked for in this job".into()))?;
    let output = StoreLocation::parse(&spec.output, spec.store_options.iter().cloned(), false)?;
    let store = CheckpointStore::for_output(
        &output,
        CheckpointOptions {
            keep: spec.keep_checkpoints,
            ..CheckpointOptions::default()
        },
    )?;
    let checkpoint = match &spec.generate_from {
        Some(prefix) => prefix.clone(),
        None => {
            store
                .latest()
                .await?
                .ok_or_else(|| Error::Checkpoint {
                    location: store.location().to_string(),
                    reason: "holds no committed checkpoint to generate from".into(),
                })?
                .prefix
        }
    };
    let (manifest, _) = store.manifest(&checkpoint).await?;
    let location = store.location().describe(&checkpoint);
    let field = |name: &str| -> Result<serde_json::Value> {
        manifest
            .trainer
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Checkpoint {
                location: location.clone(),
                reason: format!("its manifest's trainer description lacks `{name}`"),
            })
    };
    let names: Vec<String> =
        serde_json::from_value(field("class_names")?).map_err(|e| Error::Checkpoint {
            location: location.clone(),
            reason: format!("class_names: {e}"),
        })?;
    let counts: Vec<usize> =
        serde_json::from_value(field("class_counts")?).map_err(|e| Error::Checkpoint {
            location: location.clone(),
            reason: format!("class_counts: {e}"),
        })?;
    let classes = class_plans(&names, &counts, &generation.targets).map_err(|reason| {
        Error::InvalidJob(format!("generation targets for {location}: {reason}"))
    })?;
    let tasks = split_tasks(&classes, generation.task_images);
    let anchor_tasks = split_anchor_tasks(&classes, generation.anchors).map_err(|reason| {
        Error::InvalidJob(format!("anchored generation from {location}: {reason}"))
    })?;
    // The evaluation's test sets are Fashion-MNIST's test split; other data is not evaluated.
    let evaluation = match (&spec.evaluation, &spec.dataset.format) {
        (Some(settings), DatasetFormat::FashionMnist { .. }) => Some(settings.clone()),
        (Some(_), _) => {
            tracing::warn!(
                "evaluation needs a dataset with a test split (--format fashion-mnist); skipping it"
            );
            None
        }
        (None, _) => None,
    };
    Ok(GenerationPlan {
        evaluation,
        root: plan_root(&checkpoint, &generation),
        checkpoint,
        checkpoint_step: manifest.step,
        spec: generation,
        classes,
        tasks,
        anchor_tasks,
        dataset: spec.dataset.clone(),
        model: spec.model.clone(),
    })
}
