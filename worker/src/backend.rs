//! The burn backend, chosen once at the edge by cargo feature: `cuda` when built with it,
//! otherwise the CPU backend (burn-flex by default, burn-ndarray for comparison).

#[cfg(feature = "cuda")]
mod selected {
    pub type Compute = burn_cuda::Cuda;
    pub const NAME: &str = "cuda";
}

#[cfg(all(not(feature = "cuda"), feature = "flex"))]
mod selected {
    pub type Compute = burn_flex::Flex;
    pub const NAME: &str = "flex";
}

#[cfg(all(not(feature = "cuda"), not(feature = "flex"), feature = "ndarray"))]
mod selected {
    pub type Compute = burn_ndarray::NdArray<f32>;
    pub const NAME: &str = "ndarray";
}

#[cfg(not(any(feature = "cuda", feature = "flex", feature = "ndarray")))]
compile_error!("anygan-worker needs one backend feature: `flex` (default), `ndarray` or `cuda`");

/// The backend tensors are computed on.
pub type ComputeBackend = selected::Compute;
/// The same backend with automatic differentiation, for training.
pub type TrainBackend = burn::backend::Autodiff<ComputeBackend>;
/// Name of the selected backend, for logs and benchmark tables.
pub const BACKEND_NAME: &str = selected::NAME;

/// The GPU this process computes on (`--device cuda:N`); 0 unless chosen.
static DEVICE_ORDINAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Parses `--device`: `cuda:N` (or `cuda`) when built with the `cuda` feature, `cpu` otherwise;
/// the error names what this build can do.
pub fn parse_device(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let cuda = BACKEND_NAME == "cuda";
    match (text, cuda) {
        ("cpu", false) => Ok(0),
        ("cuda", true) => Ok(0),
        (t, true) if t.starts_with("cuda:") => t["cuda:".len()..]
            .parse::<usize>()
            .map_err(|_| format!("--device {t}: expected cuda:N with N a GPU index")),
        (t, true) => Err(format!(
            "--device {t}: this worker is built with the cuda backend; use cuda:N"
        )),
        (t, false) => Err(format!(
            "--device {t}: this worker is built for the CPU ({BACKEND_NAME}); build it with \
             `--features cuda` for GPUs, or use --device cpu"
        )),
    }
}

/// Chooses the device of this process (call once, at start-up).
pub fn select_device(ordinal: usize) {
    DEVICE_ORDINAL.store(ordinal, std::sync::atomic::Ordering::Relaxed);
}

/// How this process's generators compute their layers, once chosen.
static GENERATOR_KERNELS: std::sync::Mutex<Option<crate::gan::kernels::GeneratorKernels>> =
    std::sync::Mutex::new(None);

/// Chooses how the generators this process builds compute their layers (call once, at start-up,
/// like [`select_device`]): a choice of kernels, not of model — the weights and checkpoints are
/// the same either way (`gan::kernels`).
pub fn select_generator_kernels(kernels: crate::gan::kernels::GeneratorKernels) {
    let mut chosen = GENERATOR_KERNELS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *chosen = Some(kernels);
}

/// The choice made with [`select_generator_kernels`], else this backend's defaults.
pub fn selected_generator_kernels() -> crate::gan::kernels::GeneratorKernels {
    GENERATOR_KERNELS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .unwrap_or_default()
}

/// The device chosen with [`select_device`].
pub fn selected_device() -> burn::prelude::Device<ComputeBackend> {
    device(DEVICE_ORDINAL.load(std::sync::atomic::Ordering::Relaxed))
}

/// How this process's device is named in logs and to the coordinator (`cuda:1`, `flex`).
pub fn device_name() -> String {
    if BACKEND_NAME == "cuda" {
        format!(
            "cuda:{}",
            DEVICE_ORDINAL.load(std::sync::atomic::Ordering::Relaxed)
        )
    } else {
        BACKEND_NAME.to_string()
    }
}

/// Runs one tiny computation on the selected device, so that a GPU that cannot be used (no
/// driver, no NVRTC, no such ordinal) stops the process at start with an error that names the
/// device, before it joins a job, rather than as a panic in its training thread.
pub fn check_device() -> Result<(), String> {
    use burn::prelude::Tensor;
    let device = selected_device();
    // The backend reports a device it cannot open by panicking (in its own thread; the hook
    // prints that message, which names the library or call that failed).
    let outcome = std::panic::catch_unwind(move || {
        Tensor::<ComputeBackend, 1>::ones([4], &device)
            .sum()
            .into_scalar()
    });
    match outcome {
        Ok(4.0) => Ok(()),
        Ok(sum) => Err(format!(
            "device {}: a test sum of four ones gave {sum}",
            device_name()
        )),
        Err(_) => Err(format!(
            "device {}: cannot compute on it (the message above says why). A cuda worker needs \
             the NVIDIA driver's libcuda.so and the CUDA toolkit's NVRTC (libnvrtc.so) \
             loadable, e.g. through LD_LIBRARY_PATH, and the GPU index to exist",
            device_name()
        )),
    }
}

/// The folder a cuda worker keeps its compiled kernels and autotune results in when
/// `--kernel-cache` is not given: `$XDG_CACHE_HOME/anygan/kernels`, else
/// `$HOME/.cache/anygan/kernels`; `None` on CPU builds (nothing to compile) or without either
/// variable.
pub fn default_kernel_cache() -> Option<std::path::PathBuf> {
    if BACKEND_NAME != "cuda" {
        return None;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| std::path::PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("anygan").join("kernels"))
}

/// Keeps the GPU kernels this process compiles (PTX) and the winners of their autotuning in
/// `dir`, so that a later worker on the same machine starts computing at once instead of
/// compiling and tuning again (minutes on first use of a shape; see bench/gpu.sh). Must run
/// before the device is first used; the folder is created and must be writable (the error
/// names it). CPU builds compile no kernels and ignore it. The cache is specific to the GPU
/// model and the pinned burn/cubecl version: share it only between alike machines.
pub fn use_kernel_cache(dir: &std::path::Path) -> Result<(), String> {
    #[cfg(feature = "cuda")]
    {
        use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig, cache::CacheConfig};
        prepare_kernel_cache_folder(dir)?;
        if CubeClRuntimeConfig::storage().lock().is_some() {
            return Err(format!(
                "--kernel-cache {}: the GPU runtime is already configured (set the cache before \
                 the device is first used)",
                dir.display()
            ));
        }
        // Whatever a cubecl.toml or CUBECL_* variables say, but with both caches in `dir`.
        // cubecl panics on a malformed cubecl.toml (its hook prints what is wrong).
        let mut config = std::panic::catch_unwind(|| {
            CubeClRuntimeConfig::from_current_dir().override_from_env()
        })
        .map_err(|_| {
            "a cubecl.toml (or burn.toml [cubecl] section) in the working folder or above is \
             malformed: the message above says where"
                .to_string()
        })?;
        config.autotune.cache = CacheConfig::File(dir.to_path_buf());
        config.compilation.cache = Some(CacheConfig::File(dir.to_path_buf()));
        CubeClRuntimeConfig::set(config);
    }
    #[cfg(not(feature = "cuda"))]
    let _ = dir;
    Ok(())
}

/// Creates the kernel cache's folder and checks that this process can write in it.
pub fn prepare_kernel_cache_folder(dir: &std::path::Path) -> Result<(), String> {
    let unusable = |what: &str, error: std::io::Error| {
        format!("--kernel-cache {}: {what}: {error}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(|error| unusable("cannot create it", error))?;
    let probe = dir.join(format!(".anygan-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|error| unusable("cannot write in it", error))
}

/// The device of the selected backend; `ordinal` picks the GPU under `cuda`.
pub fn device(ordinal: usize) -> burn::prelude::Device<ComputeBackend> {
    #[cfg(feature = "cuda")]
    {
        burn_cuda::CudaDevice::new(ordinal)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal; // one CPU device
        Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selected_cpu_device_computes() {
        if BACKEND_NAME != "cuda" {
            assert_eq!(check_device(), Ok(()));
        }
    }

    #[test]
    fn an_unusable_kernel_cache_folder_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").expect("write");
        let error = prepare_kernel_cache_folder(&file.join("kernels")).expect_err("under a file");
        assert!(error.contains("not-a-folder/kernels"), "{error}");
        assert!(error.contains("cannot create it"), "{error}");
        // A usable folder is created and left empty.
        let usable = dir.path().join("cache/kernels");
        assert_eq!(prepare_kernel_cache_folder(&usable), Ok(()));
        assert_eq!(std::fs::read_dir(&usable).expect("read").count(), 0);
    }

    #[test]
    fn cpu_builds_ignore_the_kernel_cache() {
        if BACKEND_NAME != "cuda" {
            let dir = tempfile::tempdir().expect("temp dir");
            let never_made = dir.path().join("kernels");
            assert_eq!(use_kernel_cache(&never_made), Ok(()));
            assert!(!never_made.exists());
            assert_eq!(default_kernel_cache(), None);
        }
    }

    #[test]
    fn device_flags_match_the_build() {
        if BACKEND_NAME == "cuda" {
            assert_eq!(parse_device("cuda:3"), Ok(3));
            assert!(parse_device("cpu").is_err());
        } else {
            assert_eq!(parse_device("cpu"), Ok(0));
            let error = parse_device("cuda:0").expect_err("no GPU backend");
            assert!(error.contains("--features cuda"), "{error}");
        }
        assert!(parse_device("cuda:x").is_err());
    }
}
