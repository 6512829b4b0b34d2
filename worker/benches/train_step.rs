//! Benchmark of one cDCGAN training step (D update + G update) on the selected backend.
//!
//! `cargo bench -p anygan-worker --bench train_step -- [--widths 64,128] [--batch 64]
//! [--warmup 2] [--steps 10] [--keep-states 2] [--generator-ema 0,0.999]
//! [--diff-augment none,color,translation,cutout] [--projection off,on] [--mode-seeking 0,1]`
//! prints, per width, generator-average decay (0: none, the default), DiffAugment policy
//! (`+`-separated transforms, e.g. `none,color+translation+cutout`), discriminator projection
//! term (off, the default) and mode-seeking weight (0: off, the default), and, with
//! `--upsampling transposed,phases` and `--output-layer convolution,transposed`, how the
//! generator computes its up-sampling layers and its output layer (`worker join --upsampling
//! --output-layer`; the backend's defaults unless given): parameter counts, median
//! step time, images per second and peak heap memory during the measured steps;
//! `--keep-states N` keeps the trainer's state before each of the last N steps, as a worker in
//! a ring does to roll back after a lost peer. `--host-round-trip off,on`: `on` makes the
//! trainer one of 2 replicas whose all-reduce peer is itself (no network; `--batch` is then the
//! replica's share), so the step pays exactly the gradients' trips between the device and the
//! host that a worker in a ring pays; the difference to `off` is what those trips cost.
//! `first step (s)` is the first warm-up step alone: on a GPU it carries the kernels'
//! compilation and autotuning (what a worker pays once per process, or once per machine with a
//! kernel cache). `--kernel-cache DIR` keeps compiled GPU kernels and autotune winners in DIR,
//! as `worker join --kernel-cache` does. `--real-shift N` shifts the real images by up to N
//! pixels (`--real-shift` of a job) in every run, `--auxiliary-classifier W` adds AC-GAN's
//! auxiliary classifier with weight W (0: none, the default) and `--mismatched-labels W` the
//! discriminator's mismatched-label term (0: off) to every run, `--spectral-norm` and
//! `--hinge-loss` switch those on, and `--unconditional-low-resolution W` adds UTLO's
//! half-resolution terms with weight W (0: none); the header line says which.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup
#![allow(unsafe_code)] // the counting allocator below must implement GlobalAlloc

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anygan_worker::backend::{BACKEND_NAME, TrainBackend, device};
use anygan_worker::collective::GradientAllReduce;
use anygan_worker::gan::augment::DiffAugment;
use anygan_worker::gan::kernels::{GeneratorKernels, OutputLayer, Upsampling};
use anygan_worker::gan::params::parameter_count;
use anygan_worker::gan::{AdversarialLoss, Batch, GanConfig, GanTrainer, TrainConfig};

/// Counts live heap bytes and their high-water mark.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters only observe.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct Options {
    widths: Vec<usize>,
    batch: usize,
    warmup: usize,
    steps: usize,
    /// Clones of the trainer kept from step to step, as a worker in a ring keeps them.
    keep_states: usize,
    /// Decays of the generator's moving average to measure; 0 keeps none.
    generator_ema: Vec<f32>,
    /// DiffAugment policies to measure, transforms joined by `+`.
    diff_augment: Vec<String>,
    /// Whether the discriminator has the projection term, each value measured.
    projection: Vec<bool>,
    /// Mode-seeking weights to measure; 0 is off.
    mode_seeking: Vec<f32>,
    /// Whether gradients go to the host and back through a 2-replica all-reduce, each measured.
    host_round_trip: Vec<bool>,
    /// Where compiled GPU kernels and autotune results are kept (`--kernel-cache`, as a worker).
    kernel_cache: Option<std::path::PathBuf>,
    /// Shift of the real images (`--real-shift`) in every run; 0 is off.
    real_shift: usize,
    /// Weight of the auxiliary classifier (`--auxiliary-classifier`) in every run; 0 is none.
    auxiliary_classifier: f32,
    /// Weight of the discriminator's mismatched-label term (`--mismatched-labels`) in every
    /// run; 0 is off.
    mismatched_labels: f32,
    /// The discriminator spectrally normalized (`--spectral-norm`) in every run.
    spectral_norm: bool,
    /// The hinge loss (`--hinge-loss`) in every run.
    hinge_loss: bool,
    /// Weight of UTLO's unconditional half-resolution terms (`--unconditional-low-resolution`)
    /// in every run; 0 is none.
    unconditional_low_resolution: f32,
    /// How the generator's up-sampling layers are computed, each measured.
    upsampling: Vec<Upsampling>,
    /// How the generator's output layer is computed, each measured.
    output_layer: Vec<OutputLayer>,
}

/// One measured combination of the settings.
#[derive(Clone)]
struct Run {
    width: usize,
    decay: f32,
    policy: String,
    projection: bool,
    seeking: f32,
    round_trip: bool,
    kernels: GeneratorKernels,
}

impl Run {
    /// The row's settings columns, up to the generator's output layer.
    fn columns(&self, kept_states: usize) -> String {
        format!(
            "{} | {} | {} | {} | {} | {kept_states} | {} | {} | {}",
            self.width,
            self.decay,
            self.policy,
            if self.projection { "on" } else { "off" },
            self.seeking,
            if self.round_trip { "on" } else { "off" },
            self.kernels.upsampling,
            self.kernels.output_layer
        )
    }
}

/// The all-reduce of a replica whose one peer holds the same gradients: the mean is the
/// gradient itself, so nothing changes but the trips between the device and the host.
struct SelfPeerAllReduce;

impl GradientAllReduce for SelfPeerAllReduce {
    fn average(&mut self, values: &mut [f32]) -> anygan_worker::error::Result<()> {
        // Touch the values as a transport would read them, so no copy can be skipped.
        std::hint::black_box(values);
        Ok(())
    }

    fn world_size(&self) -> usize {
        2
    }
}

fn options() -> Options {
    let mut options = Options {
        widths: vec![64, 128],
        batch: 64,
        warmup: 2,
        steps: 10,
        keep_states: 0,
        generator_ema: vec![0.0],
        diff_augment: vec!["none".into()],
        projection: vec![false],
        mode_seeking: vec![0.0],
        host_round_trip: vec![false],
        kernel_cache: None,
        real_shift: 0,
        auxiliary_classifier: 0.0,
        mismatched_labels: 0.0,
        spectral_norm: false,
        hinge_loss: false,
        unconditional_low_resolution: 0.0,
        upsampling: vec![GeneratorKernels::default().upsampling],
        output_layer: vec![GeneratorKernels::default().output_layer],
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(widths) = value("--widths") {
        options.widths = widths.split(',').filter_map(|w| w.parse().ok()).collect();
    }
    let number =
        |name: &str, default: usize| value(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    options.batch = number("--batch", options.batch);
    options.warmup = number("--warmup", options.warmup);
    options.steps = number("--steps", options.steps).max(1);
    options.keep_states = number("--keep-states", options.keep_states);
    options.real_shift = number("--real-shift", options.real_shift);
    if let Some(weight) = value("--auxiliary-classifier").and_then(|w| w.parse().ok()) {
        options.auxiliary_classifier = weight;
    }
    if let Some(weight) = value("--mismatched-labels").and_then(|w| w.parse().ok()) {
        options.mismatched_labels = weight;
    }
    if let Some(weight) = value("--unconditional-low-resolution").and_then(|w| w.parse().ok()) {
        options.unconditional_low_resolution = weight;
    }
    if let Some(policies) = value("--diff-augment") {
        options.diff_augment = policies.split(',').map(str::to_string).collect();
    }
    if let Some(settings) = value("--projection") {
        options.projection = settings.split(',').map(|s| s == "on").collect();
    }
    if let Some(weights) = value("--mode-seeking") {
        options.mode_seeking = weights.split(',').filter_map(|w| w.parse().ok()).collect();
    }
    if let Some(settings) = value("--host-round-trip") {
        options.host_round_trip = settings.split(',').map(|s| s == "on").collect();
    }
    if let Some(decays) = value("--generator-ema") {
        options.generator_ema = decays.split(',').filter_map(|d| d.parse().ok()).collect();
    }
    if let Some(methods) = value("--upsampling") {
        options.upsampling = methods
            .split(',')
            .map(|m| m.parse().expect("--upsampling"))
            .collect();
    }
    if let Some(methods) = value("--output-layer") {
        options.output_layer = methods
            .split(',')
            .map(|m| m.parse().expect("--output-layer"))
            .collect();
    }
    options.spectral_norm = args.iter().any(|a| a == "--spectral-norm");
    options.hinge_loss = args.iter().any(|a| a == "--hinge-loss");
    options.kernel_cache = value("--kernel-cache").map(std::path::PathBuf::from);
    options
}

/// A batch of random-looking images with labels spread over 10 classes.
fn synthetic_batch(batch: usize) -> Batch {
    let images = (0..batch * 784)
        .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    let labels = (0..batch).map(|i| (i % 10) as u16).collect();
    Batch { images, labels }
}

fn main() {
    let options = options();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "cdcgan-28 training step (D + G update), backend {BACKEND_NAME}, batch {}, threads {threads}, {} measured steps after {} warm-up, real images shifted by up to {} pixels, auxiliary classifier weight {}, mismatched-label weight {}, spectral norm {}, hinge loss {}, unconditional half-resolution weight {}",
        options.batch,
        options.steps,
        options.warmup,
        options.real_shift,
        options.auxiliary_classifier,
        options.mismatched_labels,
        options.spectral_norm,
        options.hinge_loss,
        options.unconditional_low_resolution
    );
    println!(
        "| width | G average decay | DiffAugment | D projection | mode seeking | kept states | host round trip | G up-sampling | G output layer | G params | D params | first step (s) | median step (s) | min step (s) | images/s | peak heap (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    if let Some(dir) = &options.kernel_cache {
        anygan_worker::backend::use_kernel_cache(dir).expect("--kernel-cache");
    }
    let device = device(0);
    // Every combination of the measured settings, widths outermost.
    let mut runs = Vec::new();
    for &width in &options.widths {
        for &decay in &options.generator_ema {
            for policy in &options.diff_augment {
                for &projection in &options.projection {
                    for &seeking in &options.mode_seeking {
                        for &round_trip in &options.host_round_trip {
                            for &upsampling in &options.upsampling {
                                for &output_layer in &options.output_layer {
                                    runs.push(Run {
                                        width,
                                        decay,
                                        policy: policy.clone(),
                                        projection,
                                        seeking,
                                        round_trip,
                                        kernels: GeneratorKernels {
                                            upsampling,
                                            output_layer,
                                        },
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for run in runs {
        let columns = run.columns(options.keep_states);
        // A run that panics (a kernel the device cannot run, say) is reported and the next
        // runs still measured: on a short GPU loan every row counts.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            measure(run, &options, &device)
        }))
        .is_err()
        {
            println!("| {columns} | failed: the message above says why |");
        }
    }
}

/// Measures one combination and prints its row.
fn measure(run: Run, options: &Options, device: &burn::prelude::Device<TrainBackend>) {
    let columns = run.columns(options.keep_states);
    let Run {
        width,
        decay,
        policy,
        projection,
        seeking,
        round_trip,
        kernels,
    } = run;
    // The generator reads the process's choice when it is built.
    anygan_worker::backend::select_generator_kernels(kernels);
    let gan = GanConfig::new(10)
        .with_width(width)
        .with_projection(projection.then_some(true))
        .with_auxiliary_classifier(
            (options.auxiliary_classifier != 0.0).then_some(options.auxiliary_classifier),
        )
        .with_spectral_norm(options.spectral_norm.then_some(true))
        .with_unconditional_low_resolution(
            (options.unconditional_low_resolution != 0.0)
                .then_some(options.unconditional_low_resolution),
        );
    // With the round trip the trainer is rank 0 of 2, so its own share is `--batch`.
    let replicas = if round_trip { 2 } else { 1 };
    let config = TrainConfig::new(gan)
        .with_batch_size(options.batch * replicas)
        .with_real_shift((options.real_shift != 0).then_some(options.real_shift))
        .with_adversarial_loss(options.hinge_loss.then_some(AdversarialLoss::Hinge));
    let mut trainer = match GanTrainer::<TrainBackend>::new(config, &[1; 10], device) {
        Ok(trainer) => trainer,
        Err(error) => {
            eprintln!("width {width}: {error}");
            return;
        }
    };
    trainer.set_replica(0, replicas).expect("replica");
    let mut all_reduce: Box<dyn GradientAllReduce> = if round_trip {
        Box::new(SelfPeerAllReduce)
    } else {
        Box::new(anygan_worker::collective::SingleReplica)
    };
    trainer
        .set_generator_ema((decay != 0.0).then_some(decay))
        .expect("decay");
    trainer.set_diff_augment(DiffAugment::parse(&policy.replace('+', ",")).expect("policy"));
    trainer
        .set_mode_seeking((seeking != 0.0).then_some(seeking))
        .expect("weight");
    let mismatched = options.mismatched_labels;
    trainer
        .set_mismatched_labels((mismatched != 0.0).then_some(mismatched))
        .expect("--mismatched-labels");
    let g_params = parameter_count(&trainer.generator());
    let d_params = parameter_count(&trainer.discriminator());
    let batch = synthetic_batch(options.batch);
    let mut first_step = None;
    for _ in 0..options.warmup {
        let started = Instant::now();
        trainer
            .train_step_with(&batch, all_reduce.as_mut())
            .expect("warm-up step");
        first_step.get_or_insert(started.elapsed().as_secs_f64());
    }
    let first_step = first_step.map_or_else(|| "–".to_owned(), |s| format!("{s:.3}"));
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let mut times = Vec::with_capacity(options.steps);
    // What a worker in a ring keeps to roll back after a lost peer: the state before each
    // of its last steps (`--keep-states 2` is what `worker join` does).
    let mut kept = std::collections::VecDeque::new();
    for _ in 0..options.steps {
        let started = Instant::now();
        if options.keep_states > 0 {
            kept.push_back(trainer.clone());
            if kept.len() > options.keep_states {
                kept.pop_front();
            }
        }
        trainer
            .train_step_with(&batch, all_reduce.as_mut())
            .expect("measured step");
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let peak_mib = PEAK.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    println!(
        "| {columns} | {g_params} | {d_params} | {first_step} | {median:.4} | {:.4} | {:.1} | {peak_mib:.0} |",
        times[0],
        options.batch as f64 / median
    );
}
