//! The generation task board: which tasks are open, held by whom, done. Pure state, owned by
//! the job state. Workers pull tasks; a task held by a worker that is lost goes back to the
//! queue; a task that fails is retried elsewhere a few times before the job fails. Once every
//! generation task is done, one assemble task (contact sheet, rebalanced set, manifest) runs.

use std::time::Instant;

use anygan_proto::generation::{EvaluationSettings, GenerationPlan, class_folder};
use anygan_proto::v1;

/// A task that failed this many times fails the job: the error is not the worker's.
pub const MAX_TASK_FAILURES: u32 = 3;

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Open,
    Held { worker_id: String, since: Instant },
    Done,
}

#[derive(Debug, Clone)]
struct Task {
    kind: Kind,
    /// Tasks of a stage are handed out once every task of earlier stages is done.
    stage: usize,
    slot: Slot,
    failures: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `plan.anchor_tasks[index]`.
    Invert(usize),
    /// `plan.tasks[index]`.
    Generate(usize),
    Assemble,
    Evaluate {
        method: String,
        seed: u64,
    },
    Report,
}

impl Kind {
    /// Within a stage, tasks go out by this rank, then by id. Evaluation runs go longest
    /// first (`EvaluationSettings::longest_first_rank`), so that the runs still going when the
    /// others are done are short ones and no worker idles long beside one training the
    /// largest set (longest-processing-time-first list scheduling). Every other task: 0.
    fn hand_out_rank(&self, evaluation: Option<&EvaluationSettings>) -> u8 {
        match (self, evaluation) {
            (Kind::Evaluate { method, .. }, Some(evaluation)) => {
                evaluation.longest_first_rank(method)
            }
            _ => 0,
        }
    }
}

/// What a worker asking for work gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Task(Box<v1::TaskResponse>),
    /// Every open task is held by someone else (or waits for an earlier stage): ask again
    /// when something changes.
    Wait,
    /// All done.
    Finished,
}

/// The tasks of one generation plan: invert tasks (anchored generation only), generation tasks,
/// then the assemble task, then (when the plan asks for it) one evaluation task per method and seed, then the report. Task ids are
/// positions in that order.
#[derive(Debug, Clone)]
pub struct Board {
    plan: GenerationPlan,
    plan_json: String,
    tasks: Vec<Task>,
}

impl Board {
    pub fn new(plan: GenerationPlan) -> Self {
        let plan_json = serde_json::to_string(&plan).unwrap_or_default(); // plain data
        let task = |kind, stage| Task {
            kind,
            stage,
            slot: Slot::Open,
            failures: 0,
        };
        // Anchored generation inverts its anchors first: one stage more.
        let mut tasks: Vec<Task> = (0..plan.anchor_tasks.len())
            .map(|index| task(Kind::Invert(index), 0))
            .collect();
        let first = usize::from(!plan.anchor_tasks.is_empty());
        tasks.extend((0..plan.tasks.len()).map(|index| task(Kind::Generate(index), first)));
        tasks.push(task(Kind::Assemble, first + 1));
        if let Some(evaluation) = &plan.evaluation {
            for (method, seed) in evaluation.runs() {
                tasks.push(task(Kind::Evaluate { method, seed }, first + 2));
            }
            tasks.push(task(Kind::Report, first + 3));
        }
        Self {
            plan,
            plan_json,
            tasks,
        }
    }

    pub fn plan(&self) -> &GenerationPlan {
        &self.plan
    }

    pub fn finished(&self) -> bool {
        self.tasks.iter().all(|t| t.slot == Slot::Done)
    }

    /// The earliest stage with a task not done.
    fn current_stage(&self) -> Option<usize> {
        self.tasks
            .iter()
            .filter(|t| t.slot != Slot::Done)
            .map(|t| t.stage)
            .min()
    }

    /// Hands `worker_id` the next open task of the current stage.
    pub fn next(&mut self, worker_id: &str, now: Instant) -> Next {
        let Some(stage) = self.current_stage() else {
            return Next::Finished;
        };
        let Some(id) = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.stage == stage && t.slot == Slot::Open)
            .min_by_key(|(id, t)| (t.kind.hand_out_rank(self.plan.evaluation.as_ref()), *id))
            .map(|(id, _)| id)
        else {
            return Next::Wait;
        };
        self.tasks[id].slot = Slot::Held {
            worker_id: worker_id.to_string(),
            since: now,
        };
        Next::Task(Box::new(self.describe(id)))
    }

    fn describe(&self, id: usize) -> v1::TaskResponse {
        use v1::task_response::Task as Wire;
        let task_id = id as u64;
        let wire = match &self.tasks[id].kind {
            Kind::Invert(index) => Wire::Invert(v1::InvertTask {
                task_id,
                plan_json: self.plan_json.clone(),
                anchor_task: *index as u64,
            }),
            Kind::Generate(index) => {
                let range = self.plan.tasks[*index];
                let class = &self.plan.classes[range.class];
                Wire::Generate(v1::GenerationTask {
                    task_id,
                    checkpoint: self.plan.checkpoint.clone(),
                    root: self.plan.root.clone(),
                    class_index: range.class as u32,
                    class_folder: class_folder(class.index, &class.name),
                    first_index: range.first,
                    count: range.count,
                    seed: self.plan.spec.seed,
                    batch_size: self.plan.spec.batch as u32,
                    truncation: self.plan.spec.truncation,
                    as_trained_weights: self.plan.spec.weights
                        == anygan_proto::generation::GeneratorWeights::AsTrained,
                    candidates: self.plan.spec.candidates as u32,
                    anchors: self
                        .plan
                        .anchor_tasks
                        .iter()
                        .filter(|anchors| anchors.class == range.class)
                        .map(|anchors| anchors.count)
                        .sum(),
                })
            }
            Kind::Assemble => Wire::Assemble(v1::AssembleTask {
                task_id,
                plan_json: self.plan_json.clone(),
            }),
            Kind::Evaluate { method, seed } => Wire::Evaluate(v1::EvaluateTask {
                task_id,
                plan_json: self.plan_json.clone(),
                method: method.clone(),
                seed: *seed,
            }),
            Kind::Report => Wire::Report(v1::ReportTask {
                task_id,
                plan_json: self.plan_json.clone(),
            }),
        };
        v1::TaskResponse {
            task: Some(wire),
            finished: false,
        }
    }

    /// Records a task's outcome. A success counts whoever reports it (a re-run writes the same
    /// bytes); a failure reopens the task if the reporter held it. Returns an error (which fails
    /// the job) when a task failed too often.
    pub fn report(&mut self, report: &v1::TaskReport) -> Result<(), String> {
        let Some(task) = self.tasks.get_mut(report.task_id as usize) else {
            return Err(format!(
                "worker {} reported unknown task {}",
                report.worker_id, report.task_id
            ));
        };
        if report.error.is_empty() {
            task.slot = Slot::Done;
            return Ok(());
        }
        let held_by_reporter =
            matches!(&task.slot, Slot::Held { worker_id, .. } if *worker_id == report.worker_id);
        if held_by_reporter {
            task.failures += 1;
            task.slot = Slot::Open;
            if task.failures >= MAX_TASK_FAILURES {
                return Err(format!(
                    "task {} failed {} times, last on worker {}: {}",
                    report.task_id, task.failures, report.worker_id, report.error
                ));
            }
        }
        Ok(())
    }

    /// Reopens every task `worker_id` holds (it was lost); returns their ids.
    pub fn release(&mut self, worker_id: &str) -> Vec<u64> {
        let mut released = Vec::new();
        for (id, task) in self.tasks.iter_mut().enumerate() {
            if matches!(&task.slot, Slot::Held { worker_id: holder, .. } if holder == worker_id) {
                task.slot = Slot::Open;
                released.push(id as u64);
            }
        }
        released
    }

    /// Workers holding a task.
    pub fn holders(&self) -> Vec<String> {
        self.tasks
            .iter()
            .filter_map(|t| match &t.slot {
                Slot::Held { worker_id, .. } => Some(worker_id.clone()),
                _ => None,
            })
            .collect()
    }

    /// Images done and wanted per class.
    pub fn progress(&self) -> Vec<v1::ClassProgress> {
        self.plan
            .classes
            .iter()
            .map(|class| v1::ClassProgress {
                class_name: class.name.clone(),
                done: self
                    .tasks
                    .iter()
                    .filter(|task| task.slot == Slot::Done)
                    .filter_map(|task| match task.kind {
                        Kind::Generate(index) => Some(self.plan.tasks[index]),
                        _ => None,
                    })
                    .filter(|range| range.class == class.index)
                    .map(|range| range.count)
                    .sum(),
                wanted: class.generate as u64,
            })
            .collect()
    }
}

/// A small plan for tests: two classes of 200 and 40 images, tasks of 64 images.
#[cfg(test)]
pub(crate) fn test_plan() -> GenerationPlan {
    use anygan_proto::generation::{GenerationSpec, Targets, class_plans, split_tasks};
    use anygan_proto::job::{DatasetFormat, DatasetSource, ModelSpec};

    let names = vec!["a".to_string(), "b".to_string()];
    let classes = class_plans(&names, &[200, 40], &Targets::Largest).unwrap_or_default();
    let spec = GenerationSpec {
        batch: 32,
        task_images: 64,
        ..GenerationSpec::default()
    };
    GenerationPlan {
        checkpoint: "step-1".into(),
        checkpoint_step: 1,
        root: "generations/x".into(),
        tasks: split_tasks(&classes, spec.task_images),
        anchor_tasks: Vec::new(),
        spec,
        classes,
        dataset: DatasetSource {
            location: "d".into(),
            format: DatasetFormat::Folder,
            class_counts: None,
            subset_seed: 0,
        },
        model: ModelSpec::default(),
        evaluation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_id(next: &Next) -> u64 {
        match next {
            Next::Task(response) => match &response.task {
                Some(v1::task_response::Task::Generate(t)) => t.task_id,
                Some(v1::task_response::Task::Assemble(t)) => t.task_id,
                Some(v1::task_response::Task::Evaluate(t)) => t.task_id,
                Some(v1::task_response::Task::Report(t)) => t.task_id,
                Some(v1::task_response::Task::Invert(t)) => t.task_id,
                None => u64::MAX,
            },
            _ => u64::MAX,
        }
    }

    fn done(worker: &str, id: u64) -> v1::TaskReport {
        v1::TaskReport {
            worker_id: worker.into(),
            task_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn tasks_go_out_once_then_assemble_then_finished() {
        let mut board = Board::new(test_plan());
        let now = Instant::now();
        // 160 images of class b in tasks of 64: 64, 64, 32.
        assert_eq!(board.plan().tasks.len(), 3);
        let first = board.next("w0", now);
        let second = board.next("w1", now);
        let third = board.next("w0", now);
        assert_eq!(
            (task_id(&first), task_id(&second), task_id(&third)),
            (0, 1, 2)
        );
        assert_eq!(
            board.next("w1", now),
            Next::Wait,
            "assemble waits for generation"
        );
        for id in 0..3 {
            board.report(&done("w0", id)).unwrap();
        }
        assert_eq!(board.progress()[1].done, 160);
        assert_eq!(board.progress()[1].wanted, 160);
        assert_eq!(board.progress()[0].wanted, 0);
        let assemble = board.next("w1", now);
        assert!(
            matches!(&assemble, Next::Task(r) if matches!(r.task, Some(v1::task_response::Task::Assemble(_))))
        );
        assert_eq!(board.next("w0", now), Next::Wait);
        board.report(&done("w1", 3)).unwrap();
        assert!(board.finished());
        assert_eq!(board.next("w0", now), Next::Finished);
    }

    #[test]
    fn evaluation_runs_after_assembly_and_the_report_last() {
        let mut plan = test_plan();
        plan.evaluation = Some(anygan_proto::generation::EvaluationSettings {
            methods: vec!["long-tail".into(), "anygan".into()],
            seeds: vec![0, 1],
            quality: false,
            ..Default::default()
        });
        let mut board = Board::new(plan);
        let now = Instant::now();
        for id in 0..4 {
            assert_eq!(task_id(&board.next("w", now)), id);
            board.report(&done("w", id)).unwrap();
        }
        // Four evaluation tasks may run at once, the longer (d) runs first; the report waits
        // for all of them.
        let evaluations: Vec<u64> = (0..4).map(|_| task_id(&board.next("w", now))).collect();
        assert_eq!(evaluations, vec![6, 7, 4, 5]);
        assert_eq!(board.next("w", now), Next::Wait);
        for id in 4..8 {
            board.report(&done("w", id)).unwrap();
        }
        let report = board.next("w", now);
        assert!(
            matches!(&report, Next::Task(r) if matches!(r.task, Some(v1::task_response::Task::Report(_))))
        );
        board.report(&done("w", 8)).unwrap();
        assert_eq!(board.next("w", now), Next::Finished);
    }

    /// The evaluation runs of a board with `evaluation`, as `method/seed` in hand-out order.
    fn evaluation_hand_out_order(evaluation: EvaluationSettings) -> Vec<String> {
        let mut plan = test_plan();
        plan.evaluation = Some(evaluation);
        let mut board = Board::new(plan);
        let now = Instant::now();
        for id in 0..4 {
            board.next("w", now);
            board.report(&done("w", id)).unwrap();
        }
        let mut handed_out = Vec::new();
        while let Next::Task(response) = board.next("w", now) {
            let Some(v1::task_response::Task::Evaluate(task)) = &response.task else {
                break; // the report
            };
            handed_out.push(format!("{}/{}", task.method, task.seed));
        }
        handed_out
    }

    #[test]
    fn evaluation_runs_go_out_longest_first() {
        let handed_out = evaluation_hand_out_order(EvaluationSettings {
            seeds: vec![0, 1],
            ..Default::default() // every method, and the quality runs once
        });
        assert_eq!(
            handed_out,
            [
                "full-real/0",
                "random-oversampling/0",
                "random-oversampling/1",
                "anygan/0",
                "anygan/1",
                "smote/0",
                "smote/1",
                "shifted-oversampling/0",
                "shifted-oversampling/1",
                "cas/0",
                "long-tail/0",
                "long-tail/1",
                "class-weighted/0",
                "class-weighted/1",
            ]
        );
    }

    #[test]
    fn a_judged_anygan_run_goes_out_with_the_full_split() {
        let handed_out = evaluation_hand_out_order(EvaluationSettings {
            methods: vec![
                "long-tail".into(),
                "random-oversampling".into(),
                "anygan".into(),
            ],
            seeds: vec![0],
            filter_generated: true, // (d) trains a judge classifier first
            ..Default::default()
        });
        assert_eq!(
            handed_out,
            [
                "anygan/0",
                "full-real/0",
                "random-oversampling/0",
                "cas/0",
                "long-tail/0"
            ]
        );
    }

    #[test]
    fn anchored_generation_inverts_first_and_tells_generation_the_class_anchors() {
        let mut plan = test_plan();
        plan.spec.anchors = 100;
        // Class b: 40 originals, all of them anchors, in one task (at most 64 per task).
        plan.anchor_tasks =
            anygan_proto::generation::split_anchor_tasks(&plan.classes, 100).expect("anchors");
        assert_eq!(plan.anchor_tasks.len(), 1);
        let mut board = Board::new(plan);
        let now = Instant::now();
        let invert = board.next("w0", now);
        let Next::Task(response) = &invert else {
            panic!("{invert:?}")
        };
        let Some(v1::task_response::Task::Invert(task)) = &response.task else {
            panic!("{response:?}")
        };
        assert_eq!((task.task_id, task.anchor_task), (0, 0));
        assert_eq!(board.next("w1", now), Next::Wait, "generation waits");
        board.report(&done("w0", 0)).unwrap();
        let generate = board.next("w1", now);
        let Next::Task(response) = &generate else {
            panic!("{generate:?}")
        };
        let Some(v1::task_response::Task::Generate(task)) = &response.task else {
            panic!("{response:?}")
        };
        assert_eq!((task.task_id, task.class_index, task.anchors), (1, 1, 40));
    }

    #[test]
    fn a_lost_workers_tasks_are_handed_out_again() {
        let mut board = Board::new(test_plan());
        let now = Instant::now();
        let held = task_id(&board.next("dead", now));
        assert_eq!(board.release("dead"), vec![held]);
        assert_eq!(task_id(&board.next("alive", now)), held, "reassigned");
        // The dead worker's late success still counts (same bytes); a late failure does not
        // reopen a task it no longer holds.
        let failed = v1::TaskReport {
            error: "disk full".into(),
            ..done("dead", held)
        };
        board.report(&failed).unwrap();
        assert_eq!(board.holders(), vec!["alive".to_string()]);
    }

    #[test]
    fn a_task_failing_everywhere_fails_the_job() {
        let mut board = Board::new(test_plan());
        let now = Instant::now();
        for attempt in 1..=MAX_TASK_FAILURES {
            let id = task_id(&board.next("w", now));
            assert_eq!(id, 0);
            let result = board.report(&v1::TaskReport {
                error: "cannot decode generator.mpk".into(),
                ..done("w", id)
            });
            assert_eq!(result.is_err(), attempt == MAX_TASK_FAILURES, "{result:?}");
        }
        assert!(board.report(&done("w", 99)).is_err(), "unknown task");
    }
}
